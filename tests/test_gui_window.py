"""The GUI driven as a user would (offscreen): set-up → start → pause → resume → abort against the
simulated lab, and browser → open → replay → scrub on a stored run."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # CI has no display
os.environ.setdefault("MPLBACKEND", "Agg")

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PySide6 import QtCore

from operando.acquisition.config import PROFILES_DIR, load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.gui.controller import FAILED, PAUSED, RUNNING
from operando.gui.plots import configure
from operando.gui.window import MainWindow
from operando.storage.catalog import open_catalog

LEFT = QtCore.Qt.MouseButton.LeftButton
SHORT = textwrap.dedent(
    """
    name: gui_replay
    steps:
      - {kind: rest, duration_min: 5}
      - kind: loop
        repeat: 2
        steps:
          - {kind: cc, c_rate: 2, e_max_V: 3.0, max_duration_h: 1}
          - {kind: cc, c_rate: -2, e_min_V: 0.01, max_duration_h: 1}
    """
)


pytestmark = pytest.mark.usefixtures("gc_on_the_gui_thread")


@pytest.fixture
def window(qtbot, tmp_path):
    configure()
    w = MainWindow(tmp_path / "data")
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    yield w
    if w.control.busy:
        w.control.abort("test teardown")
    assert w.control.wait(60)
    w.close()


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("gui-replay")
    (base / "short.yaml").write_text(SHORT)
    (base / "data").mkdir()
    # The virtual clock: every frame is taken at its scheduled experiment time however loaded the
    # machine is (on the scaled clock at 20000x a busy machine skipped most: 2 spectra of ~25).
    profile = base / "sim-virtual.yaml"
    profile.write_text((PROFILES_DIR / "sim.yaml").read_text().replace("  seed: 0\n", "  seed: 0\n  clock: virtual\n"))
    result = run_experiment(
        load_profile(profile), load_protocol(base / "short.yaml"), base / "data", speed=20000, report=False
    )
    return base / "data", result


def rows(w):
    e = w.data.echem
    return 0 if e is None else e.rows


def test_setup_start_pause_resume_abort(window, qtbot):
    w = window
    setup = w.setup
    setup.protocol_box.setCurrentText("galvanostatic_cycling")
    # a bad edit is shown at its line and blocks Start
    text = setup.editor.toPlainText()
    setup.editor.setPlainText(text.replace("c_rate: 1,", "c_rate: 40,"))
    setup.check()
    assert not w.run_panel.start.isEnabled()
    bad = [p for p in setup.problems if p.field.endswith("c_rate")]
    assert bad and "above the potentiostat limit" in bad[0].message
    assert setup.editor.toPlainText().splitlines()[bad[0].line - 1].lstrip().startswith("- {kind: cc, c_rate: 40")
    setup.editor.setPlainText(text)
    setup.sample_edits["active_mass_g"].setText("-1")
    setup.check()
    assert "active_mass_g" in setup.sample_errors and not w.run_panel.start.isEnabled()
    setup.sample_edits["active_mass_g"].setText("0.002")
    setup.speed.setValue(1500)
    assert setup.check() and "estimated" in setup.estimate.text()
    assert w.run_panel.start.isEnabled()

    qtbot.mouseClick(w.run_panel.start, LEFT)
    qtbot.waitUntil(lambda: w.control.status.state == RUNNING and rows(w) > 100, timeout=30000)
    qtbot.waitUntil(lambda: w.echem.e.getData()[0] is not None and len(w.echem.e.getData()[0]) > 100, timeout=5000)
    assert w.status.table.item(0, 3).text() == "connected"
    # the bar counts whole percent of the run: wait for the first (100 rows may still be 0 %)
    qtbot.waitUntil(lambda: w.run_panel.progress.value() > 0, timeout=15000)
    assert "cycle" in w.run_panel.detail.text()

    qtbot.mouseClick(w.run_panel.pause, LEFT)
    qtbot.waitUntil(lambda: w.control.status.state == PAUSED and w.run_panel.resume.isEnabled(), timeout=15000)
    assert not w.run_panel.pause.isEnabled() and "PAUSED" in w.run_panel.state.text()
    pot = w.control.prepared.instruments.sim_lab.potentiostat
    assert pot.held and pot.last_current == 0.0  # paused = cell at open circuit
    qtbot.wait(300)
    paused_rows = rows(w)

    qtbot.mouseClick(w.run_panel.resume, LEFT)
    qtbot.waitUntil(lambda: w.control.status.state == RUNNING and rows(w) > paused_rows + 200, timeout=30000)
    assert not pot.held

    qtbot.mouseClick(w.run_panel.abort, LEFT)
    qtbot.waitUntil(lambda: not w.control.busy, timeout=60000)
    assert w.control.status.state == FAILED and w.control.status.exit_status == "abort"
    assert not pot.running and pot.last_current == 0.0  # aborted: open circuit
    qtbot.waitUntil(lambda: w.data.stop is not None, timeout=5000)
    assert w.data.stop["exit_status"] == "abort"
    with open_catalog(w.data_dir) as cat:  # everything shown was stored
        run = cat.client[w.control.status.uid]
        assert run.metadata["stop"]["exit_status"] == "abort"
        assert len(run["echem"]["Ewe"].read()) >= rows(w)


def test_browse_open_replay_scrub(window, qtbot, stored_run):
    data_dir, result = stored_run
    w = window
    w.data_dir = data_dir
    w.browser.text.setText("Fe3O4")
    w.browser.search()
    assert w.browser.table.rowCount() == 1 and w.browser.table.item(0, 1).text() == result.uid[:8]
    w.browser.open_row(0)
    full = w.stored.times["echem"].size
    assert rows(w) == full and w.data.stop["exit_status"] == "success"

    # scrub to 60 % of the run: every panel shows the state at that moment
    w.scrub(0.6)
    t = w.data.cursor
    raman = w.data.streams["raman"]
    i = w.raman.shown_row
    assert raman.experiment_time()[i] <= t < (raman.experiment_time()[i + 1] if i + 1 < raman.rows else np.inf)
    np.testing.assert_array_equal(w.raman.spectrum.getData()[1], raman["raman-spectrum"][i])
    mag = w.data.streams["magnetometer"]
    j = w.data.row_at(mag, t)
    assert w.moment.value_at_cursor == mag["magnetometer-moment"][j]
    assert w.echem.cursor.isVisible() and w.echem.cursor.value() == pytest.approx((t - w.data.t0()) / 3600)
    e = w.data.echem
    k = w.data.row_at(e, t)
    assert f"E = {e['Ewe'][k]:.4f} V" in w.status.table.item(0, 4).text()
    marker_y = w.capacity.marker.getData()[1]
    assert marker_y[0] == e["Ewe"][k]

    # replay from the cursor at 3600x (about 1.3 s here): rows arrive in time order until the end
    w.timebar.speed.setCurrentIndex(w.timebar.speed.findData(3600))
    w.timebar.play.setChecked(True)
    assert rows(w) < full
    seen = []
    qtbot.waitUntil(lambda: seen.append(rows(w)) or not w.timebar.play.isChecked(), timeout=30000)
    assert rows(w) == full and seen == sorted(seen) and len(set(seen)) > 2


def test_map_panel_shows_any_2d_stream(window):
    from event_model import compose_run

    w = window
    h = w.handler
    bundle = compose_run(metadata={"instruments": {"skpm": {"kind": "skpm", "backend": "sim"}}})
    h("start", bundle.start_doc)
    w.data = h.data
    desc = bundle.compose_descriptor(
        name="skpm",
        data_keys={
            "skpm-cpd": {"source": "sim", "dtype": "array", "shape": [20, 30], "units": "V"},
            "skpm-exposure_start": {"source": "sim", "dtype": "number", "shape": []},
            "skpm-exposure_end": {"source": "sim", "dtype": "number", "shape": []},
        },
    )
    h("descriptor", desc.descriptor_doc)
    for k in range(2):
        frame = np.add.outer(np.arange(20.0), np.arange(30.0) * (k + 1))
        h(
            "event",
            desc.compose_event(
                data={"skpm-cpd": frame, "skpm-exposure_start": 10.0 * k, "skpm-exposure_end": 10.0 * k + 5},
                timestamps={"skpm-cpd": 0, "skpm-exposure_start": 0, "skpm-exposure_end": 0},
            ),
        )
    w.refresh()
    assert w.map.choice.currentText() == "skpm: skpm-cpd" and w.map.frame_index == 1
    w.map.row_line.setValue(7.5)
    x, y = w.map.profile.getData()
    np.testing.assert_array_equal(y, 7 + np.arange(30.0) * 2)  # row 7 of the latest frame
    w.set_cursor(7.0)  # during the first frame's exposure window's end → first frame
    assert w.map.frame_index == 0


def test_cli_screenshot_of_a_stored_run(stored_run, tmp_path):
    data_dir, result = stored_run
    out = tmp_path / "shot.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "operando.acquisition.cli",
            "gui",
            "--data",
            str(data_dir),
            "--replay",
            result.uid[:8],
            "--screenshot",
            str(out),
            "--at",
            "0.5",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr  # and no abort at interpreter exit
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 50_000
