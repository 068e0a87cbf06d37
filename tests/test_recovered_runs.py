"""Recovered runs are ordinary runs: every command works on one whose streams are empty, its stop
document is schema-valid, and rows the device wrote to its HDF5 file after the journal's last
StreamDatum are recovered from the file."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

import shutil
import textwrap

import h5py
import numpy as np
import pytest
from event_model import DocumentNames, schema_validators

from operando.acquisition.cli import main
from operando.acquisition.config import load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.storage.catalog import open_catalog
from operando.storage.journal import closed_journal_path, encode, journal_dir, open_journal_path, read_journal

SHORT = textwrap.dedent(
    """
    name: short
    steps:
      - {kind: rest, duration_min: 10}
      - {kind: cc, c_rate: 2, e_max_V: 3.0, max_duration_h: 1}
    """
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A short simulated run and its closed journal (the crash images below are cut from it)."""
    base = tmp_path_factory.mktemp("recovered")
    (base / "short.yaml").write_text(SHORT)
    data = base / "source"
    result = run_experiment(load_profile("sim"), load_protocol(base / "short.yaml"), data, speed=20000, report=False)
    return data, result.uid, list(read_journal(closed_journal_path(data, result.uid)))


def _crash_image(tmp_path, source, docs, *, copy_files=True):
    """A data directory as a SIGKILL leaves it: an `.open` journal holding ``docs``, no catalog
    entry, and (``copy_files``) the run's HDF5 files as the device last synced them."""
    data = tmp_path / "data"
    journal_dir(data).mkdir(parents=True)
    if copy_files:
        shutil.copytree(source / "files", data / "files")
        docs = [(n, _moved(d, source, data)) if n == "stream_resource" else (n, d) for n, d in docs]
    path = open_journal_path(data, docs[0][1]["uid"])
    path.write_bytes(b"".join(encode(n, d) for n, d in docs))
    return data


def _moved(resource, source, data):
    return {**resource, "uri": resource["uri"].replace(source.absolute().as_uri(), data.absolute().as_uri())}


def _recover(data, capsys):
    assert main(["runs", "--data", str(data)]) == 0
    out = capsys.readouterr()
    assert "recovered run" in out.err, out.err
    return out


def test_a_run_recovered_before_any_data_works_with_every_command(finished, tmp_path, capsys, qtbot):
    source, uid, docs = finished
    first_data = next(i for i, (n, _) in enumerate(docs) if n in ("stream_resource", "event"))
    data = _crash_image(tmp_path, source, docs[:first_data], copy_files=False)
    out = _recover(data, capsys)
    assert "recovered" in out.out  # the runs table says how it ended

    with open_catalog(data) as catalog:
        run = catalog.client[uid]
        stop = dict(run.metadata["stop"])
    schema_validators[DocumentNames.stop].validate(stop)  # within event-model's schema
    assert stop["exit_status"] == "fail" and stop["recovered"]["at"] > 0 and "crash" in stop["reason"]
    assert main(["runs", "--status", "recovered", "--data", str(data)]) == 0
    assert uid[:8] in capsys.readouterr().out

    assert main(["show", "-1", "--data", str(data)]) == 0
    shown = capsys.readouterr().out
    assert "echem" in shown and "recovered" in shown
    for fmt in ("csv", "hdf5"):
        assert main(["export", "-1", "--format", fmt, "--out", str(tmp_path / fmt), "--data", str(data)]) == 0
        assert list((tmp_path / fmt).iterdir())
    capsys.readouterr()
    assert main(["replay", "-1", "--speed", "inf", "--data", str(data)]) == 0
    assert "replayed" in capsys.readouterr().out
    assert main(["analyse", "-1", "--data", str(data)]) == 2  # said clearly, not a traceback
    assert "nothing to analyse" in capsys.readouterr().err

    from operando.gui.plots import configure
    from operando.gui.window import MainWindow

    configure()
    w = MainWindow(data)
    qtbot.addWidget(w)
    w.open_run(uid)
    assert w.data.start["uid"] == uid and w.data.stop["exit_status"] == "fail"
    w.close()


def test_rows_the_file_holds_beyond_the_last_stream_datum_are_recovered(finished, tmp_path, capsys):
    """A crash during a long frame or a pause: the plan could not announce the last rows, but the
    device had fsync'd them to its file; recovery announces them from the file."""
    source, uid, docs = finished
    datums = [i for i, (n, d) in enumerate(docs) if n == "stream_datum"]
    # keep the journal up to the first echem StreamDatums only (one per column)
    first = docs[datums[0]][1]["indices"]["stop"]
    cut = max(i for i in datums if docs[i][1]["indices"]["stop"] == first) + 1
    data = _crash_image(tmp_path, source, docs[:cut])
    (h5,) = (data / "files").glob("potentiostat-*.h5")
    with h5py.File(h5, "r") as f:
        on_disk = f["entry/timestamp"].shape[0]
        last_t = float(f["entry/timestamp"][-1])
    assert on_disk > first  # the file holds more than the journal announced

    out = _recover(data, capsys)
    assert f"{on_disk - first} echem rows from its file" in out.err
    with open_catalog(data) as catalog:
        run = catalog.client[uid]
        t = np.asarray(run["echem"]["timestamp"].read())
        stop = dict(run.metadata["stop"])
    assert len(t) == on_disk and t[-1] == last_t and np.all(np.diff(t) > 0)
    assert stop["recovered"]["rows_from_files"] == {"echem": on_disk - first}
    assert stop["time"] >= last_t
    # the closed journal now holds the new StreamDatums and the stop, in order: replay reads them
    names = [n for n, _ in read_journal(closed_journal_path(data, uid))]
    assert names[-1] == "stop" and names.count("stream_datum") > docs[:cut].count("stream_datum")
    # a second command finds nothing more to recover
    assert main(["runs", "--data", str(data)]) == 0
    assert "recovered run" not in capsys.readouterr().err
