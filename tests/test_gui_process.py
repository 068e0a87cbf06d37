"""The window's acquisition in a child process (gui/process_control.py, gui/run_process.py).

One test, two acquisitions at once (each pays the imports once): one is controlled
(pause → resume → abort) and watched through its documents; the other is started by a GUI
process that dies at once (``os._exit``: no clean-up, as in a crash), and must still finish and
store its whole run.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # CI has no display
os.environ.setdefault("MPLBACKEND", "Agg")

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from PySide6 import QtCore
from tiled.client.utils import ClientError

from operando.acquisition.config import load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.gui.controller import FAILED, PAUSED, RUNNING
from operando.gui.plots import configure
from operando.gui.process_control import ProcessRunControl
from operando.gui.window import MainWindow
from operando.storage.catalog import open_catalog

LEFT = QtCore.Qt.MouseButton.LeftButton

SHORT = textwrap.dedent(
    """
    name: gui_process_short
    steps:
      - {kind: rest, duration_min: 5}
      - {kind: cc, c_rate: 2, e_max_V: 3.0, max_duration_h: 1}
    """
)


CRASHING_GUI = """
import os, sys
from operando.acquisition.config import load_profile, load_protocol  # noqa: E402
from operando.gui.process_control import ProcessRunControl  # noqa: E402
control = ProcessRunControl()
control.start(load_profile("sim"), load_protocol(sys.argv[1]), sys.argv[2], speed=20000)
print(control._proc.pid, flush=True)
os._exit(3)
"""


pytestmark = pytest.mark.usefixtures("gc_on_the_gui_thread")


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaps in a container counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def until(condition, timeout, what):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def rows(w):
    e = w.data.echem
    return 0 if e is None else e.rows


def test_child_process_run_is_controlled_watched_and_survives_its_window(qtbot, tmp_path):
    data = tmp_path / "data"
    (tmp_path / "short.yaml").write_text(SHORT)
    (data / "orphan").mkdir(parents=True)  # the window hands over a resolved, existing directory
    crash = subprocess.run(
        [sys.executable, "-c", CRASHING_GUI, str(tmp_path / "short.yaml"), str(data / "orphan")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crash.returncode == 3, crash.stderr
    orphan_pid = int(crash.stdout.split()[-1])

    # A window that has a stored run open keeps reading the catalog while a child process
    # writes it (event tables in SQLite, write-ahead log): both see every row.
    stored = run_experiment(
        load_profile("sim"), load_protocol(tmp_path / "short.yaml"), data / "watched", speed=20000, report=False
    )
    configure()
    w = MainWindow(data / "watched", ProcessRunControl())
    qtbot.addWidget(w)
    w.resize(1200, 800)
    w.show()
    w.open_run(stored.uid)
    assert w.data.start["uid"] == stored.uid and rows(w) > 100
    w.setup.protocol_box.setCurrentText("galvanostatic_cycling")
    w.setup.speed.setValue(1500)
    assert w.setup.check()
    control = w.control
    try:
        w.start_run()
        qtbot.waitUntil(
            lambda: control.status.state == FAILED or (control.status.state == RUNNING and rows(w) > 100), timeout=60000
        )
        assert control.status.state == RUNNING, control.status.message
        assert w.data.start["uid"] == control.status.uid  # the live run, from the child's documents
        assert control.status.instruments and all(v == "connected" for v in control.status.instruments.values())
        w.browser.search()  # the stored runs, and the one being written, while it is written
        assert not w.browser.notice.text()
        assert {r.uid for r in w.browser.rows} == {stored.uid, control.status.uid}
        w.open_run(stored.uid)  # a stored run opens while the child acquires
        assert w.data.start["uid"] == stored.uid and rows(w) > 100 and not w.viewing_live

        def live_rows():  # the running run is readable, too, once its writer has flushed (1 s)
            try:
                return len(w.catalog_client()[control.status.uid]["echem"]["Ewe"].read())
            except KeyError:
                return 0
            except ClientError as exc:  # 422: rows announced but not all readable yet: "retry"
                if exc.response.status_code != 422:
                    raise
                return 0

        qtbot.waitUntil(lambda: live_rows() > 0, timeout=15000)
        w.follow_latest()  # back to the live run
        assert w.viewing_live and w.data.start["uid"] == control.status.uid

        qtbot.mouseClick(w.run_panel.pause, LEFT)
        qtbot.waitUntil(lambda: control.status.state == PAUSED, timeout=30000)
        held = control.status.progress.samples
        qtbot.wait(500)
        assert control.status.progress.samples == held  # paused: nothing acquired
        qtbot.mouseClick(w.run_panel.resume, LEFT)
        qtbot.waitUntil(
            lambda: control.status.state == RUNNING and control.status.progress.samples > held + 200, timeout=30000
        )
        qtbot.mouseClick(w.run_panel.abort, LEFT)
        qtbot.waitUntil(lambda: not control.busy, timeout=60000)
        assert control.wait(10)
        qtbot.waitUntil(lambda: w.data.stop is not None, timeout=5000)
        assert control.status.state == FAILED and control.status.exit_status == "abort"
        assert w.data.stop["exit_status"] == "abort"
        w.browser.search()  # the catalog is the window's again: both runs, everything stored
        assert not w.browser.notice.text()
        assert {r.uid for r in w.browser.rows} == {stored.uid, control.status.uid}
        run = w.catalog_client()[control.status.uid]
        assert run.metadata["stop"]["exit_status"] == "abort"
        assert len(run["echem"]["Ewe"].read()) >= rows(w) > 0
        assert len(run["magnetometer"].read()) > 0  # event tables written by the child
    finally:
        if control.busy:
            control.abort("test teardown")
            control.wait(60)
        w.close()

    until(lambda: not alive(orphan_pid), 120, "the orphaned acquisition to end")
    with open_catalog(data / "orphan") as cat:
        run = cat.client[-1]
        assert run.metadata["stop"]["exit_status"] == "success"
        assert run.metadata["start"]["protocol"] == "gui_process_short"
        t = run["echem"]["timestamp"].read()
        assert t[-1] - t[0] > 300  # the rest and the charge are both there
