"""A run killed after its stop document reached the journal but before the catalog writer stored
it (the post-stop drain): recovery replays its closed journal into the catalog.

The child runs a short simulated experiment in which the catalog writer blocks at the stop
document (``FlushingTiledWriter.__call__`` patched in the child only), so the kill always lands
after the journal was closed (``<uid>.jsonl``) and before the stop reached the catalog: the catalog
entry is left without a stop, holding part of the echem rows, as a SIGKILL during a several-cell
run's drain leaves it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

from operando.acquisition.cli import main as cli_main
from operando.storage.catalog import CATALOG_URI_ENV, open_catalog
from operando.storage.journal import (
    closed_journal_path,
    compacted_journal_path,
    encode,
    journal_dir,
    read_journal,
)
from operando.storage.recovery import (
    REPAIR_AFTER_S,
    maintain_journals,
    recover_data_dir,
    stop_in_catalog,
)

PROTOCOL = textwrap.dedent(
    """
    name: short
    steps:
      - {kind: rest, duration_min: 10}
      - {kind: cc, c_rate: 2, e_max_V: 3.0, max_duration_h: 1}
    """
)

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from operando.acquisition.config import load_profile, load_protocol
    from operando.acquisition.experiment import run_experiment
    from operando.storage import catalog_writer

    write = catalog_writer.FlushingTiledWriter.__call__

    def stuck_at_the_stop(self, name, doc):
        if name == "stop":  # the journal has it (closed); the catalog never will: killed here
            time.sleep(3600)
        return write(self, name, doc)

    catalog_writer.FlushingTiledWriter.__call__ = stuck_at_the_stop
    run_experiment(load_profile("sim"), load_protocol(sys.argv[2]), Path(sys.argv[1]), speed=300, report=False)
    """
)


def _closed_journals(data):
    return [p for p in journal_dir(data).glob("*.jsonl") if not p.name.endswith(".open.jsonl")]


def _kill_in_drain(folder):
    """Run the child; SIGKILL it once the closed journal exists. Returns the data directory."""
    data = folder / "data"
    (folder / "short.yaml").write_text(PROTOCOL)
    env = {k: v for k, v in os.environ.items() if k != CATALOG_URI_ENV}  # SQLite in the data dir
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data), str(folder / "short.yaml")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 180
        while not _closed_journals(data):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.time() < deadline, "the run did not stop within 180 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return data


@pytest.fixture(scope="module")
def killed_in_drain(tmp_path_factory):
    data = _kill_in_drain(tmp_path_factory.mktemp("drain"))
    (journal,) = _closed_journals(data)
    docs = list(read_journal(journal))
    return data, docs[0][1]["uid"], docs


def _age(path, seconds):
    """As if ``seconds`` had passed since the journal was closed."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def _h5_timestamps(data):
    (h5,) = (data / "files").glob("potentiostat-*.h5")
    with h5py.File(h5, "r") as f:
        return np.asarray(f["entry/timestamp"][:])


def _rows(run, stream):
    keys = list(run[stream]) if stream in run else []
    return int(run[stream][keys[0]].shape[0]) if keys else 0


def test_a_run_killed_during_the_post_stop_catalog_drain_is_replayed_whole(killed_in_drain, capsys):
    data, uid, docs = killed_in_drain
    journal = closed_journal_path(data, uid)
    name, stop = docs[-1]
    assert name == "stop" and not list(journal_dir(data).glob("*.open.jsonl"))
    rows = {}  # rows per stream the journal announced
    streams = {d["uid"]: d["name"] for n, d in docs if n == "descriptor"}
    for n, d in docs:
        if n == "stream_datum":
            rows[streams[d["descriptor"]]] = max(rows.get(streams[d["descriptor"]], 0), d["indices"]["stop"])
        elif n == "event":
            rows[streams[d["descriptor"]]] = rows.get(streams[d["descriptor"]], 0) + 1
    assert rows["echem"] > 0

    # What the kill left: the run in the catalog without its stop, echem rows missing.
    with open_catalog(data) as catalog:
        run = catalog.client[uid]
        assert not run.metadata.get("stop")
        assert _rows(run, "echem") < rows["echem"]
        # Compaction leaves the journal of a run whose stop is not in the catalog, however old.
        assert maintain_journals(data, lambda u: stop_in_catalog(catalog.client, u), min_age_s=0) == []
    assert journal.exists()

    # Just closed: possibly a process still draining; left alone (the catalog not even opened).
    assert recover_data_dir(data) == []

    # Later, any command repairs it, saying so.
    _age(journal, REPAIR_AFTER_S + 1)
    assert cli_main(["runs", "--data", str(data)]) == 0
    err = capsys.readouterr().err
    assert f"repaired run {uid[:8]}" in err, err
    assert f"replayed {len(docs)} documents from its closed journal (stop 'success'" in err

    on_disk = _h5_timestamps(data)  # a plain h5py reader: the file's SWMR flags were cleared
    assert len(on_disk) == rows["echem"]
    with open_catalog(data) as catalog:
        run = catalog.client[uid]
        assert dict(run.metadata["stop"]) == stop  # the journal's own stop, not a recovery's
        assert stop["exit_status"] == "success"
        for stream, n in rows.items():
            assert _rows(run, stream) == n, stream  # every row, none twice
        assert np.array_equal(np.asarray(run["echem"]["timestamp"].read()), on_disk)
    # Stored now: its journal is compacted; a second command finds nothing to do.
    assert compacted_journal_path(data, uid).exists() and not journal.exists()
    assert cli_main(["runs", "--data", str(data)]) == 0
    assert "repaired" not in capsys.readouterr().err
    assert recover_data_dir(data, repair_after_s=0) == []


def test_a_closed_run_missing_from_the_catalog_is_replayed(killed_in_drain, tmp_path):
    """A closed journal, not compacted, of a run the catalog does not hold at all."""
    source, uid, docs = killed_in_drain
    data = tmp_path / "data"
    journal_dir(data).mkdir(parents=True)
    shutil.copytree(source / "files", data / "files", ignore=shutil.ignore_patterns(uid))
    old, new = source.absolute().as_uri(), data.absolute().as_uri()
    moved = [(n, {**d, "uri": d["uri"].replace(old, new)} if n == "stream_resource" else d) for n, d in docs]
    closed_journal_path(data, uid).write_bytes(b"".join(encode(n, d) for n, d in moved))
    _age(closed_journal_path(data, uid), REPAIR_AFTER_S + 1)

    (run,) = recover_data_dir(data)
    assert run.uid == uid and run.exit_status == "success" and run.documents == len(docs)
    with open_catalog(data) as catalog:
        stored = catalog.client[uid]
        assert stored.metadata["stop"]["exit_status"] == "success"
        assert np.array_equal(np.asarray(stored["echem"]["timestamp"].read()), _h5_timestamps(data))
