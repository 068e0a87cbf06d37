"""The stored-run view (offscreen): the set-up area shows the set-up a stored run was made with
(its start and stop documents), not the set-up panel's choices, which come back unchanged on
leaving it; and a value that is not a number (NaN, None) reads "—", never "nan"."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # CI has no display
os.environ.setdefault("MPLBACKEND", "Agg")

import re
import textwrap

import numpy as np
import pyqtgraph as pg
import pytest
from event_model import compose_run
from PySide6 import QtCore, QtWidgets

from operando.acquisition.config import PROFILES_DIR, load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.gui.formatting import duration_text, fmt, time_text
from operando.gui.model import RunData
from operando.gui.panels_detectors import StatusPanel
from operando.gui.panels_impedance import hz
from operando.gui.plots import configure
from operando.gui.window import SETUP_TAB, STORED_SETUP_TAB, MainWindow
from operando.storage.catalog import open_catalog
from operando.storage.catalog_writer import FlushingTiledWriter

LEFT = QtCore.Qt.MouseButton.LeftButton
NOT_A_NUMBER = re.compile(r"\b(nan|none)\b", re.IGNORECASE)
SHORT = textwrap.dedent(
    """
    name: gui_stored_setup
    steps:
      - {kind: rest, duration_min: 5}
      - kind: loop
        repeat: 2
        steps:
          - {kind: cc, c_rate: 4, e_max_V: 3.0, max_duration_h: 1}
          - {kind: cc, c_rate: -4, e_min_V: 0.01, max_duration_h: 1}
    """
)


pytestmark = pytest.mark.usefixtures("gc_on_the_gui_thread")


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory):
    """A short simulated run with the "sim" profile: its Raman frames are software-timed, so
    their ``raman-trigger_instrument_time`` is NaN."""
    base = tmp_path_factory.mktemp("gui-stored-setup")
    (base / "short.yaml").write_text(SHORT)
    (base / "data").mkdir()
    # The virtual clock: every frame is taken at its scheduled experiment time however loaded the
    # machine is (on the scaled clock at 20000x a busy machine skipped most: 2 spectra of ~25).
    profile = base / "sim-virtual.yaml"
    profile.write_text((PROFILES_DIR / "sim.yaml").read_text().replace("  seed: 0\n", "  seed: 0\n  clock: virtual\n"))
    result = run_experiment(
        load_profile(profile), load_protocol(base / "short.yaml"), base / "data", speed=20000, report=False
    )
    assert result.exit_status == "success"
    return base / "data", result, base / "short.yaml"


@pytest.fixture(scope="module")
def imported_run(tmp_path_factory):
    """A run as an import stores it (no profile, protocol, instruments or schedules) whose echem
    stream has NaN and None values, written to a catalog from synthetic documents."""
    data_dir = tmp_path_factory.mktemp("gui-imported")
    bundle = compose_run(
        metadata={
            "plan_name": "import_eclab",
            "scan_id": 7,
            "echem_stream": "echem",
            "source_format": "eclab",
            "imported_from": "/lab/files/cell-7.mpr",
            "imported_at": 1.7e9,
            "sample": {"name": "imported-cell", "active_mass_g": None},
        },
        time=1.7e9,
    )
    keys = {
        k: {"source": "import", "dtype": "number", "shape": [], "units": u}
        for k, u in (
            ("timestamp", "s"),
            ("Ewe", "V"),
            ("I", "A"),
            ("charge", "mA*h"),
            ("cycle", ""),
            ("step", ""),
            ("eclab_T", "degC"),
        )
    }
    desc = bundle.compose_descriptor(name="echem", data_keys=keys)
    n = 50
    t = 1.7e9 + 10.0 * np.arange(n)
    ewe = np.linspace(2.0, 3.0, n)
    ewe[-5:] = np.nan  # the end of the file: no potential, no cycle, no temperature
    cycle = np.ones(n)
    cycle[-5:] = np.nan
    with open_catalog(data_dir) as catalog:
        writer = FlushingTiledWriter(catalog.client)
        writer("start", bundle.start_doc)
        writer("descriptor", desc.descriptor_doc)
        for i in range(n):
            values = {
                "timestamp": t[i],
                "Ewe": ewe[i],
                "I": 1e-4,
                "charge": 0.01 * i,
                "cycle": cycle[i],
                "step": 1.0,
                "eclab_T": np.nan if i >= n - 5 else 25.0,
            }
            writer("event", desc.compose_event(data=values, timestamps={k: t[i] for k in values}, time=float(t[i])))
        writer("stop", bundle.compose_stop(exit_status="success", time=1.7e9 + 600))
    return data_dir, bundle.start_doc["uid"]


@pytest.fixture
def window(qtbot, tmp_path):
    configure()
    w = MainWindow(tmp_path / "data")
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    yield w
    w.close()


def texts(root: QtWidgets.QWidget, visible_only: bool = False) -> list[str]:
    """Every text a user can read in ``root``: labels, table cells, fields, buttons, titles, tabs,
    and the plots' titles and text items."""
    out = []
    for w in [root, *root.findChildren(QtWidgets.QWidget)]:
        if visible_only and not w.isVisible():
            continue
        if isinstance(w, (QtWidgets.QLabel, QtWidgets.QLineEdit, QtWidgets.QAbstractButton)):
            out.append(w.text())
        elif isinstance(w, QtWidgets.QPlainTextEdit):
            out.append(w.toPlainText())
        elif isinstance(w, QtWidgets.QGroupBox):
            out.append(w.title())
        elif isinstance(w, QtWidgets.QTabWidget):
            out += [w.tabText(i) for i in range(w.count())]
        elif isinstance(w, QtWidgets.QComboBox):
            out += [w.itemText(i) for i in range(w.count())]
        elif isinstance(w, QtWidgets.QTableWidget):
            out += [
                w.item(r, c).text()
                for r in range(w.rowCount())
                for c in range(w.columnCount())
                if w.item(r, c) is not None
            ]
        elif isinstance(w, pg.PlotWidget):
            item = w.getPlotItem()
            out.append(item.titleLabel.text)
            out += [i.textItem.toPlainText() for i in item.items if isinstance(i, pg.TextItem) and i.isVisible()]
    return out


def not_numbers(root) -> list[str]:
    return [t for t in texts(root) if NOT_A_NUMBER.search(t)]


def test_fmt_shows_a_dash_for_what_is_not_a_number():
    assert fmt(np.nan) == fmt(None) == fmt(np.float32("nan"), ".3f", "V") == "—"
    assert fmt(1.23456, ".3f", "V") == "1.235 V" and fmt(np.float64(3.0), "d") == "3"
    assert fmt([1.5, None, np.nan]) == "1.5, —, —"
    assert fmt({"field_T": 1.0, "x": None}) == "field_T=1, x=—"
    assert fmt(np.nan, dash="") == "" and fmt("nanometre") == "nanometre"
    assert duration_text(np.nan) == duration_text(None) == time_text(None) == "—"
    assert duration_text(3725) == "1:02:05" and hz(np.nan) == "—" and hz(1e4) == "10 kHz"


def test_status_readings_with_nan_read_as_a_dash():
    data = RunData()
    data.set_start(
        {
            "instruments": {
                "potentiostat": {"kind": "potentiostat", "backend": "sim"},
                "magnetometer": {"kind": "magnetometer", "backend": None},
            }
        }
    )
    data.add_stream(
        "echem", {k: {"dtype": "number", "shape": []} for k in ("timestamp", "Ewe", "I", "charge", "cycle", "step")}
    )
    data.append(
        "echem",
        {
            "timestamp": [0.0, 1.0],
            "Ewe": [1.0, np.nan],
            "I": [1e-3, np.nan],
            "charge": [0.0, 0.0],
            "cycle": [1.0, np.nan],
            "step": [2.0, np.nan],
        },
    )
    data.add_stream(
        "magnetometer",
        {
            f"magnetometer-{k}": {"dtype": "number", "shape": [], "units": u}
            for k, u in (("moment", "emu"), ("timestamp", "s"))
        },
    )
    data.append("magnetometer", {"magnetometer-moment": [np.nan], "magnetometer-timestamp": [0.5], "time": [0.5]})
    info = data.start["instruments"]
    potentiostat = StatusPanel.reading(data, "potentiostat", info["potentiostat"])
    assert potentiostat == "E = —   I = —   cycle — step —"
    data.cursor = 0.2
    assert StatusPanel.reading(data, "potentiostat", info["potentiostat"]) == (
        "E = 1.0000 V   I = +1.0000 mA   cycle 1 step 2"
    )
    data.cursor = None
    assert "moment = —   " in StatusPanel.reading(data, "magnetometer", info["magnetometer"])


def test_stored_run_shows_its_own_setup_and_back(window, qtbot, stored_run):
    data_dir, result, protocol_path = stored_run
    w = window
    # the set-up panel holds another profile, protocol and sample for the next run
    w.setup.profile_box.setCurrentText("sim-keithley2450")
    w.setup.protocol_box.setCurrentText("cv_series")
    w.setup.sample_edits["name"].setText("next-sample")
    editor_text = w.setup.editor.toPlainText()
    side = w.side
    assert side.tabText(0) == SETUP_TAB and w.setup.isVisible()

    w.data_dir = data_dir
    w.browser.search()
    w.browser.open_row(0)
    assert not w.viewing_live and w.setup_stack.currentWidget() is w.stored_setup
    assert side.tabText(0) == STORED_SETUP_TAB and w.stored_setup.isVisible() and not w.setup.isVisible()
    shown = w.stored_setup.shown
    assert shown["profile.name"] == "sim"
    assert shown["protocol.name"] == "gui_stored_setup" and shown["protocol.file"] == str(protocol_path)
    assert shown["protocol.steps"] == "5 steps, 2 cycles"
    assert shown["sample.name"] == "demo-Fe3O4-01" and shown["sample.active_mass_g"] == "0.002"
    assert shown["sample.notes"] == "—"  # stored as null
    assert shown["instruments.raman"] == "raman · sim · every_s: 300"
    assert shown["instruments.potentiostat"] == "potentiostat · sim · "
    assert shown["run.uid"] == result.uid and shown["run.scan_id"] == str(result.scan_id)
    assert shown["run.ended"] == "success" and shown["run.clock_speed"] == "20000 ×"
    assert w.stored_setup.protocol_text.toPlainText() == protocol_path.read_text()
    assert "Stored run" in w.stored_setup.banner.text() and result.uid[:8] in w.stored_setup.banner.text()
    seen = " | ".join(texts(side, visible_only=True))
    for text in ("gui_stored_setup", "demo-Fe3O4-01", "operando_cycling", "every_s: 60"):
        assert text in seen
    for text in ("cv_series", "sim-keithley2450", "next-sample"):  # the panel's choices are hidden
        assert text not in seen
    assert "gui_stored_setup" in w.title.text() and w.title.text().startswith("stored run")

    # "Latest" with no live run keeps the stored run (and its set-up)
    w.follow_latest()
    assert w.setup_stack.currentWidget() is w.stored_setup

    # back to the set-up for a new run: the panel as the user left it
    qtbot.mouseClick(w.stored_setup.back, LEFT)
    assert w.viewing_live and w.setup_stack.currentWidget() is w.setup and side.tabText(0) == SETUP_TAB
    assert w.setup.isVisible() and not w.stored_setup.isVisible()
    assert w.setup.profile_box.currentText() == "sim-keithley2450"
    assert w.setup.protocol_box.currentText() == "cv_series"
    assert w.setup.sample_edits["name"].text() == "next-sample"
    assert w.setup.editor.toPlainText() == editor_text
    assert w.title.text().startswith("No run") and w.data.start == {}

    # opening a run again (by partial uid) shows its set-up again
    w.open_run(result.uid[:8])
    assert w.setup_stack.currentWidget() is w.stored_setup and side.tabText(0) == STORED_SETUP_TAB


def test_no_nan_in_a_stored_run_with_nan_readings(window, stored_run):
    data_dir, result, _ = stored_run
    w = window
    w.data_dir = data_dir
    w.open_run(result.uid)
    raman = w.data.streams["raman"]
    assert np.isnan(raman["raman-trigger_instrument_time"]).all()  # software-timed frames
    for at in (None, 0.5):
        if at is not None:
            w.scrub(at)
        w.refresh(force=True)
        row = [w.status.table.item(r, 0).text() for r in range(w.status.table.rowCount())].index("raman")
        assert "trigger_instrument_time = —   " in w.status.table.item(row, 4).text()
        assert not_numbers(w) == []


def test_imported_run_shows_what_it_has(window, imported_run):
    data_dir, uid = imported_run
    w = window
    w.data_dir = data_dir
    w.open_run(uid)
    shown = w.stored_setup.shown
    assert shown["run.plan"] == "import_eclab" and shown["run.scan_id"] == "7"
    assert shown["run.imported_from"] == "/lab/files/cell-7.mpr (eclab)"
    assert shown["profile.name"] == shown["protocol.name"] == "—"
    assert shown["sample.name"] == "imported-cell" and shown["sample.active_mass_g"] == "—"
    assert "run.clock_speed" not in shown and "protocol.file" not in shown
    assert not w.stored_setup.instruments.isVisible() and not w.stored_setup.protocol_text.isVisible()
    assert w.title.text() == f"stored run 7 · {uid[:8]} · imported-cell · import_eclab"
    # the latest rows have no potential or cycle: the time bar reads a dash
    assert "E — · cycle — step 1" in w.timebar.label.text()
    assert not_numbers(w) == []
    w.scrub(0.2)
    assert "E 2.1" in w.timebar.label.text() and not_numbers(w) == []
