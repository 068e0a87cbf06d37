"""Journal rotation and compaction, killed (SIGKILL) at every step: what is left is recoverable.

A child process journals a run whose open journal is rotated every 3 simulated seconds (a
collect every 0.5 s: 8 StreamDatums into an HDF5 file, a magnetometer event every 2 s), its
closed segments compacted in the background, and — for the ``final:`` steps — the whole journal
compacted after the stop. It records every document once ``journal()`` has returned (the
witness) and is killed with SIGKILL when a chosen step of a rotation or a compaction is reached
(``journal._at_step``). Then, in this process: the journal reads back as the witness (every
document once, in order; at most the document in flight beyond it); recovery (as any ``operando``
command runs it) closes the run and the catalog holds every row the HDF5 file and the journal
have; the next pass compacts the journal into one ``.jsonl.gz`` that still reads back the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import h5py
import pytest

from operando.storage.catalog import open_catalog
from operando.storage.journal import (
    closed_journal_path,
    compacted_journal_path,
    is_live,
    journal_dir,
    open_journal_path,
    read_journal,
    read_journal_file,
)
from operando.storage.recovery import maintain_journals, recover_data_dir

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import numpy as np
    from event_model import compose_run
    from operando.devices.potentiostat import STREAM_COLUMNS
    from operando.devices.stream_writer import HDF5StreamWriter
    from operando.storage import journal as J

    data, step, nth, collects = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    hits = {}

    def at_step(s):
        hits[s] = hits.get(s, 0) + 1
        if s == step and hits[s] == nth:
            os.kill(os.getpid(), signal.SIGKILL)

    J._at_step = at_step
    now = [0.0]
    journal = J.DocumentJournal(data, segment_s=3.0, clock=lambda: now[0])
    witness = open(data / "witness.jsonl", "ab", buffering=0)

    def emit(name, doc):
        journal(name, doc)
        witness.write(J.encode(name, doc))

    run = compose_run(metadata={"plan_name": "rotation_test"})
    uid = run.start_doc["uid"]
    emit("start", run.start_doc)
    writer = HDF5StreamWriter(data / "files" / "echem.h5", STREAM_COLUMNS)
    writer.open()
    echem = run.compose_descriptor(name="echem", data_keys=writer.describe("test"))
    mag = run.compose_descriptor(
        name="magnetometer",
        data_keys={"magnetometer-moment": {"source": "t", "dtype": "number", "shape": [], "units": "emu"}},
    )
    emit("descriptor", echem.descriptor_doc)
    emit("descriptor", mag.descriptor_doc)
    for k in range(collects):
        now[0] = 0.5 * (k + 1)
        t = np.arange(5 * k, 5 * k + 5) / 10.0
        writer.append({key: t.astype(dtype) for key, (_u, dtype) in STREAM_COLUMNS.items()})
        for name, doc in writer.asset_docs():
            if name == "stream_resource":
                doc = dict(doc, run_start=uid)
            else:
                i = doc["indices"]
                doc = dict(doc, descriptor=echem.descriptor_doc["uid"],
                           seq_nums={"start": i["start"] + 1, "stop": i["stop"] + 1})
            emit(name, doc)
        if k % 4 == 3:
            emit("event", mag.compose_event(data={"magnetometer-moment": float(k)},
                                            timestamps={"magnetometer-moment": float(k)}))
    writer.close()
    emit("stop", run.compose_stop())
    if step.startswith("final:"):
        journal.compact(uid)
    journal.close()
    print(uid)
    """
)
COLLECTS = 40  # 20 simulated seconds: 6 rotations
ROTATION_STEPS = ["rotate:synced", "rotate:linked", "rotate:created", "rotate:renamed", "rotate:closed"]
SEGMENT_STEPS = ["segment:written", "segment:renamed", "segment:removed"]
FINAL_STEPS = ["final:segments", "final:written", "final:renamed", "final:removed"]


def _child(data, step, nth=2):
    (data / "files").mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), step, str(nth), str(COLLECTS)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    witness = list(read_journal_file(data / "witness.jsonl"))
    return proc, witness


def _files(data):
    return sorted(p.name.split(".", 1)[1] for p in journal_dir(data).iterdir())


def _rows_on_disk(data):
    with h5py.File(data / "files" / "echem.h5", "r") as f:
        return min(f[f"entry/{k}"].shape[0] for k in f["entry"])


# `make test` kills at three steps, one per kind of crash window (a link made but not renamed,
# the new open file in place, a compacted segment beside its raw one); `make crash` at every step.
FULL_MATRIX = os.environ.get("OPERANDO_FULL_MATRIX") == "1"
KILL_STEPS = ROTATION_STEPS + SEGMENT_STEPS if FULL_MATRIX else ["rotate:linked", "rotate:renamed", "segment:renamed"]


@pytest.mark.parametrize("step", KILL_STEPS)
def test_killed_mid_rotation_or_segment_compaction_the_run_is_recovered_whole(tmp_path, step):
    data = tmp_path / "data"
    proc, witness = _child(data, step)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    uid = witness[0][1]["uid"]
    open_path = open_journal_path(data, uid)
    assert open_path.exists() and not is_live(open_path), _files(data)

    # Before recovery, as any reader (replay of a running run) sees it: every document once.
    got = list(read_journal(open_path))
    assert got[: len(witness)] == witness and len(got) - len(witness) in (0, 1), (len(got), len(witness))
    merged = list(read_journal(open_path, merged=True))
    assert [d for d in merged if d[0] != "stream_datum"] == [d for d in got if d[0] != "stream_datum"]

    with open_catalog(data) as catalog:
        (recovered,) = recover_data_dir(data, client=catalog.client)
        assert recovered.uid == uid
        run = catalog.client[uid]
        magnetometer = sum(1 for n, d in got if n == "event")
        assert run.metadata["stop"]["exit_status"] == "fail"
        announced = max(d["indices"]["stop"] for n, d in got if n == "stream_datum")
        for key in ("timestamp", "Ewe", "I", "charge", "cycle", "step", "instrument_time", "technique"):
            assert len(run["echem"][key].read()) == _rows_on_disk(data) >= announced, key
        if magnetometer:
            assert len(run["magnetometer"]["magnetometer-moment"].read()) == magnetometer

    assert not open_path.exists() and not list(journal_dir(data).glob("*.tmp")), _files(data)
    closed = list(read_journal(closed_journal_path(data, uid)))
    assert closed[: len(got)] == got and closed[-1][0] == "stop"
    added = [n for n, _ in closed[len(got) : -1]]
    assert added == ["stream_datum"] * len(added) and len(added) <= 8  # rows from the file

    # The next command compacts it: one file, the same documents.
    assert maintain_journals(data, lambda u: True, min_age_s=0) == [uid]
    assert _files(data) == ["jsonl.gz"]
    assert list(read_journal(compacted_journal_path(data, uid))) == closed


@pytest.mark.parametrize("step", FINAL_STEPS)
def test_killed_mid_final_compaction_the_journal_reads_whole_and_is_compacted_later(tmp_path, step):
    data = tmp_path / "data"
    proc, witness = _child(data, step, nth=1)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    uid = witness[0][1]["uid"]
    assert witness[-1][0] == "stop" and not open_journal_path(data, uid).exists()
    assert list(read_journal(closed_journal_path(data, uid))) == witness, _files(data)
    assert recover_data_dir(data, client=object()) == []  # nothing abandoned (the catalog unused)

    assert maintain_journals(data, lambda u: True, min_age_s=0) in ([uid], [])
    assert [p.name for p in journal_dir(data).iterdir() if p.name.startswith(uid)] == [f"{uid}.jsonl.gz"]
    assert list(read_journal(compacted_journal_path(data, uid))) == witness


def test_a_run_rotated_and_compacted_without_a_kill(tmp_path):
    data = tmp_path / "data"
    proc, witness = _child(data, "final:none")
    assert proc.returncode == 0, proc.stderr
    uid = proc.stdout.strip()
    assert [p.name for p in journal_dir(data).iterdir() if p.name.startswith(uid)] == [f"{uid}.jsonl.gz"]
    assert list(read_journal(compacted_journal_path(data, uid))) == witness
    merged = list(read_journal(compacted_journal_path(data, uid), merged=True))
    datums = [d for n, d in witness if n == "stream_datum"]
    merged_datums = [d for n, d in merged if n == "stream_datum"]
    assert len(merged_datums) < len(datums) / 2
    by_resource = {}
    for d in merged_datums:
        by_resource.setdefault(d["stream_resource"], []).append(d)
    for parts in by_resource.values():  # contiguous, covering every row
        assert parts[0]["indices"]["start"] == 0 and parts[-1]["indices"]["stop"] == 5 * COLLECTS
        for a, b in zip(parts, parts[1:]):
            assert a["indices"]["stop"] == b["indices"]["start"] and a["seq_nums"]["stop"] == b["seq_nums"]["start"]


def test_an_open_journal_held_by_a_live_process_is_not_recovered(tmp_path):
    data = tmp_path / "data"
    (data / "files").mkdir(parents=True)
    code = textwrap.dedent(
        """
        import sys, time
        from pathlib import Path
        from operando.storage.journal import DocumentJournal
        now = [0.0]
        j = DocumentJournal(Path(sys.argv[1]), segment_s=1.0, clock=lambda: now[0])
        j("start", {"uid": "live-run", "time": 1.0})
        end = time.monotonic() + 4
        i = 0
        while time.monotonic() < end:  # a rotation every 10 documents, for 4 s
            i += 1
            now[0] = i / 10
            j("descriptor", {"uid": f"d{i}", "run_start": "live-run", "time": 1.0, "data_keys": {}, "name": "x"})
            if i == 5:
                print("ready", flush=True)
        print(i, flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(data)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        checks = 0
        while proc.poll() is None and checks < 100_000:  # while it rotates: never abandoned
            assert recover_data_dir(data, client=object()) == []
            checks += 1
            if len(list(journal_dir(data).glob("*.seg*"))) > 50:
                break
        rotations = int(proc.stdout.readline())
        assert rotations > 100 and checks > 100
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def test_a_rotation_that_fails_is_undone_and_the_run_goes_on(tmp_path, monkeypatch):
    from operando.storage import journal as J

    data = tmp_path / "data"
    failures = []

    def at_step(step):
        if step == "rotate:created" and not failures:
            failures.append(step)
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(J, "_at_step", at_step)
    now = [0.0]
    journal = J.DocumentJournal(data, segment_s=2.0, clock=lambda: now[0])
    docs = [("start", {"uid": "r", "time": 0.0})]
    docs += [("descriptor", {"uid": f"d{i}", "run_start": "r", "time": float(i), "name": "x"}) for i in range(12)]
    for i, (name, doc) in enumerate(docs):
        now[0] = float(i)
        journal(name, doc)
    journal("stop", {"uid": "s", "run_start": "r", "time": 20.0})
    journal.close()
    assert failures and not list(journal_dir(data).glob("*.tmp"))
    numbers = sorted(int(p.name.split(".")[1]) for p in journal_dir(data).glob("r.*.seg*"))
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 3  # went on rotating
    assert [d for _, d in read_journal(closed_journal_path(data, "r"))][:-1] == [d for _, d in docs]
