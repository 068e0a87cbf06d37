"""Storage on both catalog backends (SQLite in the data dir, PostgreSQL): write, replay, import,
search — the same code, the same assertions.

PostgreSQL runs when $OPERANDO_TEST_POSTGRES_URI names a server (`make postgres` starts one; CI
always does); each test module gets its own scratch database.
"""

from __future__ import annotations

import math
import os
import textwrap
import uuid

import numpy as np
import orjson
import pytest

from operando.acquisition.cli import main as cli_main
from operando.acquisition.config import load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.analysis.summary import echem_capacities
from operando.storage import postgres
from operando.storage.catalog import CATALOG_URI_ENV, open_catalog
from operando.storage.importers import ImportFormatError, import_file
from operando.storage.replay import replay, replay_run, run_documents
from operando.storage.runs import RunNotFound, find_run, search_runs

PG_ENV = "OPERANDO_TEST_POSTGRES_URI"
PROTOCOL = textwrap.dedent(
    """
    name: short_cycling
    steps:
      - {kind: rest, duration_min: 2}
      - kind: loop
        repeat: 2
        steps:
          - {kind: cc, c_rate: 2, e_max_V: 3.0, max_duration_h: 1}
          - {kind: cc, c_rate: -2, e_min_V: 0.01, max_duration_h: 1}
    """
)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request):
    """Sets $OPERANDO_CATALOG_URI for the module's tests: unset (SQLite) or a scratch database."""
    old = os.environ.pop(CATALOG_URI_ENV, None)
    name = None
    if request.param == "postgresql":
        server = os.environ.get(PG_ENV)
        if not server:
            pytest.skip(f"no PostgreSQL server given (set {PG_ENV}; `make postgres` starts one)")
        assert postgres.reachable(server), f"{PG_ENV}={server} is set but not reachable"
        name = f"operando_storage_{uuid.uuid4().hex[:10]}"
        os.environ[CATALOG_URI_ENV] = postgres.create_database(server, name)
    yield request.param
    os.environ.pop(CATALOG_URI_ENV, None)
    if old is not None:
        os.environ[CATALOG_URI_ENV] = old
    if name:
        postgres.drop_database(os.environ[PG_ENV], name)


@pytest.fixture(scope="module")
def stored(backend, tmp_path_factory):
    base = tmp_path_factory.mktemp(f"storage-{backend}")
    (base / "short.yaml").write_text(PROTOCOL)
    data = base / "data"
    data.mkdir()
    docs = []
    result = run_experiment(
        load_profile("sim"),
        load_protocol(base / "short.yaml"),
        data,
        speed=20000,
        callbacks=[lambda name, doc: docs.append((name, doc))],
        report=False,
    )
    return data, result, docs


def _json(docs):
    """Documents as JSON sees them (numpy arrays → lists): what any serialised replay carries."""
    return [orjson.loads(orjson.dumps([n, d], option=orjson.OPT_SERIALIZE_NUMPY)) for n, d in docs]


def test_replay_gives_the_same_documents_in_the_same_order(stored):
    data, result, original = stored
    with open_catalog(data) as cat:
        run = find_run(cat.client, result.uid)
        got = []
        count = replay_run(run, [lambda n, d: got.append((n, d))], data_dir=data, speed=math.inf)
    assert count == len(original) > 10
    assert _json(got) == _json(original)
    names = [n for n, _ in got]
    assert "stream_resource" in names and "stream_datum" in names  # the fast path replays too


def test_replay_from_the_catalog_export_when_there_is_no_journal(stored):
    data, result, original = stored
    with open_catalog(data) as cat:
        run = find_run(cat.client, result.uid)
        got = list(run_documents(run, data_dir=None))  # catalog's json-seq export
    assert got[0][1]["uid"] == original[0][1]["uid"] and got[-1][0] == "stop"
    events = lambda docs: [(d["seq_num"], d["data"]) for n, d in docs if n == "event"]
    assert _json([("e", events(got))]) == _json([("e", events(original))])


def test_replay_keeps_the_original_timing_scaled(stored):
    _, result, original = stored
    now = [0.0]
    waits = []

    def sleep(s):
        waits.append(s)
        now[0] += s

    times = []
    replay(original, [lambda n, d: times.append(now[0])], speed=4.0, sleep=sleep, clock=lambda: now[0])
    span = max(d["time"] for n, d in original if "time" in d) - original[0][1]["time"]
    assert now[0] == pytest.approx(span / 4.0, rel=1e-6)
    stamped = [(t, d["time"]) for t, (n, d) in zip(times, original) if "time" in d]
    for t, doc_time in stamped:
        assert t == pytest.approx((doc_time - original[0][1]["time"]) / 4.0, abs=1e-6)


MPT_COLUMNS = [
    "mode",
    "ox/red",
    "time/s",
    "Ewe/V",
    "I/mA",
    "(Q-Qo)/mA.h",
    "Q charge/discharge/mA.h",
    "cycle number",
    "Ns",
]


def write_mpt(path, cycles=3, dt=10.0, current_mA=1.0, half_cycle_s=1800):
    """A small EC-Lab text export (.mpt, the format galvani's MPTfile reads): galvanostatic
    cycles at ±1 mA, EC-Lab's decimal commas, a rest row between half cycles. We write this
    ourselves: no EC-Lab binary (.mpr) can be produced or fetched here."""
    rows, t, q = [(3, 0, 0.0, 1.5, 0.0, 0.0, 0.0, 0, 0)], 0.0, 0.0  # first point at t=0, Q=0
    for cycle in range(cycles):
        for sign, ns in ((1, 0), (-1, 1)):
            qcd = 0.0
            for k in range(int(half_cycle_s / dt)):
                i = sign * current_mA * (0.97 if sign < 0 else 1.0)  # a little irreversibility
                t += dt
                q += i * dt / 3600
                qcd += i * dt / 3600
                e = 1.5 + sign * 0.8 * k * dt / half_cycle_s
                rows.append((1, int(sign > 0), t, e, i, q, qcd, cycle, ns))
            t += dt
            rows.append((1, int(sign > 0), t, e, 0.0, q, qcd, cycle, ns))  # rest
    comments = [
        "Galvanostatic Cycling with Potential Limitation",
        "",
        "Acquisition started on : 11/20/2026 09:30:00",
        "Electrode material : NMC811",
    ]
    lines = ["EC-Lab ASCII FILE", f"Nb header lines : {len(comments) + 3}", *comments, "\t".join(MPT_COLUMNS)]
    for r in rows:
        lines.append("\t".join(f"{v:.6f}".replace(".", ",") if isinstance(v, float) else str(v) for v in r))
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("ascii"))
    return path


def galvani_capacities(path):
    """Capacity per cycle as galvani reads it, from EC-Lab's own per-half-cycle column."""
    from galvani import BioLogic

    data, _ = BioLogic.MPTfile(str(path))
    out = {}
    for n in np.unique(data["cycle number"]):
        sel = data["cycle number"] == n
        qcd = data["Q charge/discharge/mA.h"][sel]
        out[int(n)] = (float(qcd.max()), float(-qcd.min()))
    return out, len(data)


def test_import_eclab_keeps_every_row_and_the_capacity_per_cycle(stored, tmp_path):
    data, _, _ = stored
    mpt = write_mpt(tmp_path / "nmc811-cell3.mpt")
    expected, n_rows = galvani_capacities(mpt)
    with open_catalog(data) as cat:
        imported = import_file(mpt, cat.client, data, {"name": "NMC811-cell3", "tags": ["legacy"]})
        run = find_run(cat.client, imported.uid)
        assert run.metadata["stop"]["exit_status"] == "success"
        assert int(run["echem"]["Ewe"].shape[0]) == n_rows == imported.rows
        caps = {c.cycle: (c.charge_mAh, c.discharge_mAh) for c in echem_capacities(run)}
        assert caps.keys() == expected.keys()
        for cycle, (charge, discharge) in expected.items():
            assert caps[cycle][0] == pytest.approx(charge, abs=2e-6)  # .mpt keeps 6 decimals
            assert caps[cycle][1] == pytest.approx(discharge, abs=2e-6)
        # and an imported run replays like a live one
        got = []
        replay_run(run, [lambda n, d: got.append(n)], data_dir=data, speed=math.inf)
        assert got[0] == "start" and got[-1] == "stop" and "stream_datum" in got


def write_multivu(path, rows=120):
    t0 = 1795000000.0
    lines = [
        "[Header]",
        "; VSM data file",
        "TITLE,in-situ cell 7",
        "BYAPP,MultiVu",
        "[Data]",
        "Comment,Time Stamp (sec),Temperature (K),Magnetic Field (Oe),Moment (emu),M. Std. Err. (emu)",
    ]
    for i in range(rows):
        moment = "" if i == 7 else f"{1e-3 * (1 + 0.01 * i):.6e}"  # one failed reading: NaN, kept
        lines.append(f",{t0 + 5 * i:.3f},300.0,10000.0,{moment},{1e-7:.2e}")
    path.write_text("\n".join(lines) + "\n")
    return path, t0


def test_import_multivu_dat(stored, tmp_path):
    data, _, _ = stored
    path, t0 = write_multivu(tmp_path / "cell7.dat")
    with open_catalog(data) as cat:
        imported = import_file(path, cat.client, data)
        stream = find_run(cat.client, imported.uid)["magnetometer"]
        moment = np.asarray(stream["magnetometer-moment"].read())
        assert moment.shape == (120,) and np.isnan(moment[7])
        assert moment[3] == pytest.approx(1.03e-3)
        assert np.allclose(stream["magnetometer-field"].read(), 1.0)  # Oe → T
        assert stream["magnetometer-timestamp"].read()[1] == pytest.approx(t0 + 5)


def test_import_refuses_other_files(stored, tmp_path):
    data, _, _ = stored
    bad = tmp_path / "notes.mpt"
    bad.write_text("hello\n")
    with open_catalog(data) as cat, pytest.raises(ImportFormatError, match="notes.mpt"):
        import_file(bad, cat.client, data)


def test_search_by_sample_material_plan_status_tags_and_dates(stored, tmp_path):
    data, result, _ = stored
    mpt = write_mpt(tmp_path / "old.mpt", cycles=1)
    with open_catalog(data) as cat:
        old = import_file(mpt, cat.client, data, {"name": "NMC-old-7", "material": "NMC811", "tags": ["legacy", "nmc"]})
        uids = lambda r: set(r.keys())
        assert result.uid in uids(search_runs(cat.client, sample="Fe3O4"))
        assert old.uid not in uids(search_runs(cat.client, sample="Fe3O4"))
        assert uids(search_runs(cat.client, material="NMC811")) >= {old.uid}
        assert result.uid not in uids(search_runs(cat.client, material="NMC811"))
        assert uids(search_runs(cat.client, plan="operando_cycling")) == {result.uid}
        assert old.uid in uids(search_runs(cat.client, tags=["legacy", "nmc"]))
        assert not uids(search_runs(cat.client, tags=["legacy", "no-such-tag"]))
        assert result.uid in uids(search_runs(cat.client, tags=["demo"]))
        assert result.uid in uids(search_runs(cat.client, status="success"))
        assert not uids(search_runs(cat.client, status="incomplete"))
        assert not uids(search_runs(cat.client, status="recovered"))
        # the imported run started 2026-11-20 (from the file), the live one today
        assert old.uid in uids(search_runs(cat.client, until="2026-11-20"))
        assert result.uid not in uids(search_runs(cat.client, until="2026-11-20"))
        assert old.uid not in uids(search_runs(cat.client, since="2026-11-21"))
        assert old.uid in uids(search_runs(cat.client, since="2026-11-20", until="2026-11-20", plan="import_eclab"))


def test_cli_runs_filters_replay_and_import(stored, tmp_path, capsys):
    data, result, _ = stored
    mpt = write_mpt(tmp_path / "cli.mpt", cycles=1)
    assert cli_main(["import", str(mpt), "--sample", "cli-sample", "--data", str(data)]) == 0
    assert "imported" in capsys.readouterr().out
    assert cli_main(["runs", "--sample", "cli-sample", "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "cli-sample" in out and "Fe3O4" not in out
    assert cli_main(["runs", "--status", "recovered", "--data", str(data)]) == 0
    assert "no matching runs" in capsys.readouterr().out
    assert cli_main(["runs", "--since", "not-a-date", "--data", str(data)]) == 2
    assert cli_main(["replay", result.uid[:8], "--speed", "inf", "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("start") and "replayed" in out.splitlines()[-1]
    assert cli_main(["import", str(tmp_path / "missing.mpt"), "--data", str(data)]) == 2


def test_an_all_digit_partial_uid_that_is_no_scan_id_finds_its_run():
    class Client(dict):
        # what the catalog does: an int is a scan id, a string a (partial) uid
        def __getitem__(self, key):
            if isinstance(key, int):
                return {7: "scan 7"}[key]
            for uid, run in self.items():
                if uid.startswith(key):
                    return run
            raise KeyError(key)

    client = Client({"12345678-aaaa": "run by uid", "abc": "other"})
    assert find_run(client, "7") == "scan 7"  # digits: a scan id first
    assert find_run(client, "12345678") == "run by uid"  # then a partial uid
    with pytest.raises(RunNotFound, match="'99'"):
        find_run(client, "99")
