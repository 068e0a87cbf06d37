"""`operando export --format pyprobe` opens in PyProBE (the pinned pyprobe-data) through its own
API, and its per-cycle capacities are operando's; the general CSV keeps its stored columns and
adds times from the run's start and technique names."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

from operando.acquisition.cli import main
from operando.acquisition.config import load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.analysis.run_analysis import analyse_run
from operando.storage.catalog import open_catalog
from operando.storage.export import export_run
from operando.storage.export_battery import program_steps
from operando.storage.runs import find_run

# PyProBE infers cycles from Step without a README (as meant); its pydantic/polars deprecations
pytestmark = [
    pytest.mark.filterwarnings("ignore:No cycle information provided"),
    pytest.mark.filterwarnings("ignore:Support for class-based `config` is deprecated"),
    pytest.mark.filterwarnings("ignore:use of `how='outer_coalesce'`"),
]
PROFILE = Path(__file__).parents[1] / "config" / "profiles" / "sim.yaml"
# A rest outside the loop, two cycles of a CCCV charge and a CC discharge at 1C, a rest after.
PROTOCOL = {
    "name": "two cycles for pyprobe",
    "steps": [
        {"kind": "rest", "duration_min": 5},
        {
            "kind": "loop",
            "repeat": 2,
            "steps": [
                {"kind": "cccv", "c_rate": 1, "e_hold_V": 2.9, "i_cutoff_c_rate": 0.1, "max_duration_h": 2},
                {"kind": "cc", "c_rate": -1, "e_min_V": 0.05, "max_duration_h": 2},
            ],
        },
        {"kind": "rest", "duration_min": 2},
    ],
}


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """A cycling run of the simulated potentiostat alone, on the virtual clock: (data dir, uid)."""
    tmp = tmp_path_factory.mktemp("pyprobe")
    profile = yaml.safe_load(PROFILE.read_text())
    profile["sim"]["soc"] = 0.0  # empty, so each cycle charges first (the cell as assembled is charged)
    profile["instruments"] = {"potentiostat": profile["instruments"]["potentiostat"]}
    profile["suspenders"] = []
    profile["sim"]["clock"] = "virtual"
    (tmp / "profile.yaml").write_text(yaml.safe_dump(profile))
    (tmp / "protocol.yaml").write_text(yaml.safe_dump(PROTOCOL))
    data = tmp / "data"
    result = run_experiment(
        load_profile(tmp / "profile.yaml"), load_protocol(tmp / "protocol.yaml"), data, speed=100000, report=False
    )
    assert result.exit_status == "success"
    return data, result.uid


@pytest.fixture(scope="module")
def exported(stored, tmp_path_factory):
    """The pyprobe export through export_run (what `operando export` calls), and operando's own
    cycling metrics of the same run."""
    data, uid = stored
    out = tmp_path_factory.mktemp("export")
    with open_catalog(data) as cat:
        run = find_run(cat.client, uid)
        paths = export_run(run, out, "pyprobe")
        cycles = analyse_run(run).cycling
    return {p.suffix: p for p in paths}, cycles


def _pyprobe_capacities(procedure) -> list[tuple[float, float]]:
    """Charge and discharge capacity (mAh) per cycle, from PyProBE's own cycling summary."""
    from pyprobe.analysis import cycling

    summary = cycling.summary(procedure).data.sort("Cycle")
    charge = summary["Charge Capacity [Ah]"].fill_null(0.0).to_list()
    discharge = summary["Discharge Capacity [Ah]"].fill_null(0.0).to_list()
    return [(c * 1e3, d * 1e3) for c, d in zip(charge, discharge)]


def _assert_same_cycles(pyprobe_caps, cycles):
    # PyProBE counts a new cycle where Step goes down; the rest before the loop falls in its first.
    assert len(pyprobe_caps) == len(cycles) == 2
    for (charge, discharge), ours in zip(pyprobe_caps, cycles):
        assert charge == pytest.approx(ours.charge_mAh, rel=1e-3)
        assert discharge == pytest.approx(ours.discharge_mAh, rel=1e-3)


def test_pyprobe_reads_the_parquet_and_finds_operandos_capacities_per_cycle(exported):
    import pyprobe

    files, cycles = exported
    cell = pyprobe.Cell(info={"Name": "demo"})
    cell.import_data("run", str(files[".parquet"]))  # PyProBE-format parquet, read as it is
    procedure = cell.procedure["run"]
    caps = _pyprobe_capacities(procedure)
    _assert_same_cycles(caps, cycles)
    # and through the cycle filter a PyProBE user would call
    for i, ours in enumerate(cycles):
        charge = procedure.cycle(i).charge().get("Capacity [Ah]")
        assert (charge.max() - charge.min()) * 1e3 == pytest.approx(ours.charge_mAh, rel=1e-3)
    assert set(procedure.data["Technique"].unique()) == {"ocv", "cccv", "cc"}


def test_pyprobe_generic_importer_reads_the_csv(exported, tmp_path):
    import polars as pl
    import pyprobe
    from pyprobe.cyclers.column_maps import CastAndRenameMap, DateTimeMap

    files, cycles = exported
    importers = [
        DateTimeMap("Date", "%Y-%m-%dT%H:%M:%S%.f%:z"),
        *(CastAndRenameMap(c, c, pl.Float64) for c in ("Time [s]", "Current [A]", "Voltage [V]", "Capacity [Ah]")),
        *(CastAndRenameMap(c, c, pl.Int64) for c in ("Step", "Cycle", "Protocol Step")),
        CastAndRenameMap("Technique", "Technique", pl.String),
    ]
    cell = pyprobe.Cell(info={"Name": "demo"})
    cell.import_from_cycler(
        "run",
        "generic",
        str(files[".csv"]),
        output_data_path=str(tmp_path / "from-csv.parquet"),
        column_importers=importers,
    )
    _assert_same_cycles(_pyprobe_capacities(cell.procedure["run"]), cycles)
    dates = cell.procedure["run"].data["Date"]
    assert str(dates.dtype.time_zone) == "UTC"


def test_time_starts_at_zero_techniques_are_named_and_the_sidecar_has_start_and_uid(exported, stored):
    files, _ = exported
    with files[".csv"].open(newline="") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0])
    for column in ("Time [s]", "Step", "Cycle", "Event", "Current [A]", "Voltage [V]", "Capacity [Ah]", "Technique"):
        assert column in header
    t = np.array([float(r["Time [s]"]) for r in rows])
    assert t[0] == 0.0 and np.all(np.diff(t) > 0)
    assert [r["Technique"] for r in rows][:1] == ["ocv"] and {r["Technique"] for r in rows} == {"ocv", "cccv", "cc"}
    # charge-positive current, capacity rising on charge (PyProBE's convention and operando's)
    i = np.array([float(r["Current [A]"]) for r in rows])
    q = np.array([float(r["Capacity [Ah]"]) for r in rows])
    assert np.all(np.diff(q)[i[1:] > 0] > 0) and np.all(np.diff(q)[i[1:] < 0] < 0)
    # Step repeats in each cycle as a cycler's program step; Event counts operando's steps
    step = {(int(r["Protocol Step"]), int(r["Cycle"])): int(r["Step"]) for r in rows}
    assert step == {(1, 0): 1, (2, 1): 2, (3, 1): 3, (4, 2): 2, (5, 2): 3, (6, 0): 4}
    assert rows[-1]["Event"] == "5"

    meta = json.loads(files[".json"].read_text())
    assert meta["uid"] == stored[1] and meta["format"] == "pyprobe"
    start = datetime.fromisoformat(meta["run_start_utc"])
    origin = datetime.fromisoformat(meta["time_origin_utc"])
    assert start.utcoffset().total_seconds() == 0 and rows[0]["Date"] == meta["time_origin_utc"]
    assert (origin - start).total_seconds() == pytest.approx(meta["time_origin_after_run_start_s"], abs=1e-5)
    assert set(meta["techniques"]) == {"ocv", "cccv", "cc"}


def test_cli_export_pyprobe_writes_the_same_files(stored, exported, tmp_path, capsys):
    data, uid = stored
    files, _ = exported
    assert main(["export", uid[:8], "--format", "pyprobe", "--out", str(tmp_path), "--data", str(data)]) == 0
    printed = capsys.readouterr().out.split()
    assert sorted(Path(p).name for p in printed) == sorted(p.name for p in files.values())
    assert (tmp_path / files[".csv"].name).read_bytes() == files[".csv"].read_bytes()


def test_general_csv_keeps_the_stored_columns_and_adds_start_relative_times_and_names(stored, tmp_path):
    data, uid = stored
    with open_catalog(data) as cat:
        run = find_run(cat.client, uid)
        paths = export_run(run, tmp_path, "csv")
        t0 = run.metadata["start"]["time"]
    (echem,) = [p for p in paths if p.name.endswith("-echem.csv")]
    with echem.open(newline="") as f:
        rows = list(csv.DictReader(f))
    header = list(rows[0])
    stored_columns = ["timestamp [s]", "Ewe [V]", "I [A]", "charge [mA*h]", "cycle", "step", "technique"]
    assert set(stored_columns) <= set(header[: len(header) - 2])  # as before, first
    assert header[-2:] == ["timestamp since start [s]", "technique_name"]
    for r in rows[:: max(1, len(rows) // 50)]:
        assert float(r["timestamp since start [s]"]) == pytest.approx(float(r["timestamp [s]"]) - t0, abs=1e-6)
    assert {(r["technique"], r["technique_name"]) for r in rows} == {("0", "ocv"), ("1", "cc"), ("2", "cccv")}
    (sidecar,) = [p for p in paths if p.suffix == ".json"]
    meta = json.loads(sidecar.read_text())
    assert meta["uid"] == uid and meta["run_start_epoch_s"] == t0
    assert datetime.fromisoformat(meta["run_start_utc"]).timestamp() == pytest.approx(t0, abs=1e-6)
    assert meta["streams"]["echem"]["units"]["charge"] == "mA*h"


def test_an_unknown_format_is_named_with_the_choices(stored, tmp_path, capsys):
    data, uid = stored
    with open_catalog(data) as cat:
        run = find_run(cat.client, uid)
        with pytest.raises(ValueError, match=r"'xlsx'.*csv, hdf5, pyprobe"):
            export_run(run, tmp_path, "xlsx")
    with pytest.raises(SystemExit) as exc:
        main(["export", uid, "--format", "xlsx", "--out", str(tmp_path), "--data", str(data)])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "'xlsx'" in err and "csv" in err and "hdf5" in err and "pyprobe" in err


def test_program_steps_repeat_per_cycle_like_a_cyclers():
    # rest (cycle 0), loop A x2 of two steps, a rest between, loop B x2 of three steps, a final rest
    step = np.array([1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 13])
    cycle = np.array([0, 0, 1, 1, 2, 2, 0, 3, 3, 3, 4, 4, 4, 0, 0])
    assert program_steps(step, cycle).tolist() == [1, 1, 2, 3, 2, 3, 4, 2, 3, 4, 2, 3, 4, 5, 5]
    assert program_steps(np.array([], int), np.array([], int)).size == 0
