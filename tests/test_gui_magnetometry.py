"""The M–T / M–H panel (offscreen): real M–T and M–H runs of the simulated MPMS, stored and opened
from the run browser, show the stored points, the Curie–Weiss fit (or why there is none), and
choose their tab; a run measured at a held temperature and field shows the placeholder."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # CI has no display

import re

import bluesky.plans as bp
import numpy as np
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop

from operando.acquisition.session import OperandoRunEngine
from operando.devices.kinds import DETECTOR_KINDS
from operando.gui.panels_magnetometry import EMPTY_TEXT
from operando.gui.plots import configure
from operando.gui.window import MainWindow
from operando.plans.magnetometry import mh_loop, mt_sweep
from operando.sim_devices.backends.mpms import SimMpmsBackend, SimMpmsSettings
from operando.sim_devices.lab import build_sim_lab
from operando.storage.catalog import open_catalog
from operando.storage.catalog_writer import FlushingTiledWriter

pytestmark = pytest.mark.usefixtures("gc_on_the_gui_thread")

MASS_G = 1e-3
TEMPERATURES_K = np.geomspace(5.0, 300.0, 7)
FIELDS_T = [0.0, 1.0, 3.0, -3.0, -1.0, 1.0, 3.0]  # up, down through zero, up again: a loop
KEYS = ("magnetometer-temperature", "magnetometer-field", "magnetometer-moment")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Four runs of the simulated MPMS on the virtual clock, stored as the catalog stores them:
    an M–T sweep and an M–H loop with the sample's molar data, an M–T sweep whose sample lacks
    its active mass, and readings at a held temperature and field (as an in-situ run takes)."""
    data_dir = tmp_path_factory.mktemp("gui-magnetometry")
    RE = OperandoRunEngine({})  # first: it starts the event loop the device connects in
    lab = build_sim_lab("fe_li2o", MASS_G, soc=0.0, start_time=1.8e9, clock="virtual", speed=1e6, sample_interval_s=10)
    backend = SimMpmsBackend(lab, field_T=0.0, temperature_K=300.0)
    settings = SimMpmsSettings(field_T=0.0, averaging_s=10.0)
    mag = DETECTOR_KINDS["magnetometer"].make_device(backend, settings, "magnetometer")
    call_in_bluesky_event_loop(mag.connect())
    sample = {"name": "gui-Fe2O3", "active_mass_g": MASS_G, "magnetic_ion_mol_per_g": lab.magnetometer.fe_mol / MASS_G}
    no_mass = {k: v for k, v in sample.items() if k != "active_mass_g"}
    live: list[tuple[str, dict]] = []  # the M–T run's documents, as a live window receives them
    with open_catalog(data_dir) as catalog:
        writer = FlushingTiledWriter(catalog.client)
        both = lambda name, doc: (writer(name, doc), live.append((name, doc)))
        uids = {
            "m_t": RE(mt_sweep(mag, TEMPERATURES_K, 1.0, lab.clock, md={"sample": sample}), both)[0],
            "m_h": RE(mh_loop(mag, FIELDS_T, 300.0, lab.clock, relax_s=60.0, md={"sample": sample}), writer)[0],
            "no_mass": RE(mt_sweep(mag, [10, 30, 100, 300], 1.0, lab.clock, md={"sample": no_mass}), writer)[0],
            "held": RE(bp.count([mag], num=3, md={"sample": sample}), writer)[0],
        }
        tables = {  # one request per stream (one per column costs ~0.3 s each)
            (run, stream): catalog.client[uids[run]][stream].read()
            for run, stream in (("m_t", "zfc"), ("m_t", "fc"), ("m_h", "mh"))
        }
        stored = {found: {k: np.asarray(table[k].values) for k in KEYS} for found, table in tables.items()}
    # The cell is not cycled meanwhile: its Curie constant is the one every M–T run measured.
    return data_dir, uids, stored, lab.magnetometer.curie_constant_cm3K_mol(), live


@pytest.fixture(scope="module")
def window(qapp, runs):
    """One window on the runs' data directory, opening one run after another as a user does
    (a window of its own per test would cost ~1 s each)."""
    configure()
    w = MainWindow(runs[0])
    w.resize(1400, 900)
    w.show()
    yield w
    w.close()
    w.deleteLater()


def points(item):
    if item.xData is None:  # pyqtgraph keeps no arrays for an empty curve
        return np.empty(0), np.empty(0)
    return np.asarray(item.xData), np.asarray(item.yData)


def test_an_m_t_run_shows_zfc_fc_and_the_curie_weiss_fit(window, runs, open_from_browser):
    _, uids, stored, curie_truth, _ = runs
    w, panel = window, window.magnetometry
    open_from_browser(w, uids["m_t"])
    assert w.lower_tabs.currentWidget() is panel and panel.isVisible()
    assert not w._broken  # no panel failed on a run without an echem stream
    assert w.moment._moment[0].name == "zfc"  # moment against time: the branch measured first
    assert set(panel.mt_curves) == {"ZFC", "FC"} and not panel.mh_curves
    for label, stream in (("ZFC", "zfc"), ("FC", "fc")):
        x, y = points(panel.mt_curves[label])
        want = stored[("m_t", stream)]
        assert np.array_equal(x, want["magnetometer-temperature"]) and len(x) == len(TEMPERATURES_K)
        assert np.array_equal(y, want["magnetometer-moment"])
    # points marked, ZFC's differently from FC's (the two branches of a paramagnet coincide)
    symbols = [item.opts["symbol"] for item in panel.mt_curves.values()]
    assert None not in symbols and len(set(symbols)) == 2

    # the fitted curves pass through the points they were fitted to
    for label, stream in (("ZFC", "zfc"), ("FC", "fc")):
        t, m = (stored[("m_t", stream)][k] for k in KEYS[::2])
        fx, fy = points(panel.fit_curves[label])
        assert fx.min() == pytest.approx(t.min()) and fx.max() == pytest.approx(t.max())
        assert np.interp(t, fx, fy) == pytest.approx(m, rel=0.01)
        assert panel.fits[label].moment(t) == pytest.approx(m, rel=0.005)
    text = panel.fit_text.text()
    assert panel.fit_text.isVisible() and not panel.empty.isVisible()
    for label in ("ZFC", "FC"):
        line = next(ln for ln in text.splitlines() if ln.startswith(label + ":"))
        c, c_err = (float(v) for v in re.search(r"C = ([\d.eE+-]+) ± ([\d.eE+-]+) cm³ K mol⁻¹", line).groups())
        assert c == pytest.approx(curie_truth, rel=0.02) and 0 < c_err < 0.02 * c
        assert re.search(r"θ = -?[\d.]+ ± [\d.eE+-]+ K", line) and re.search(r"μ_eff = [\d.]+ ± [\d.eE+-]+ μ_B", line)
    # scrubbed to the middle of the run: only the points measured by then
    w.scrub(0.5)
    shown = sum(len(points(item)[0]) for item in panel.mt_curves.values())
    assert 0 < shown < 2 * len(TEMPERATURES_K)
    assert not w._broken


def test_an_m_h_run_shows_its_loop_in_measurement_order(window, runs, open_from_browser):
    _, uids, stored, *_ = runs
    w, panel = window, window.magnetometry
    open_from_browser(w, uids["m_h"])
    assert w.lower_tabs.currentWidget() is panel and not w._broken
    assert list(panel.mh_curves) == ["M–H"] and not panel.mt_curves
    x, y = points(panel.mh_curves["M–H"])
    want = stored[("m_h", "mh")]
    assert np.array_equal(x, want["magnetometer-field"]) and np.array_equal(y, want["magnetometer-moment"])
    assert x == pytest.approx(FIELDS_T, abs=1e-3)  # the order measured, not sorted by field
    assert not panel.mt_plot.isVisible() and not panel.fit_text.isVisible()


def test_without_the_active_mass_the_panel_says_why_there_is_no_fit(window, runs, open_from_browser):
    _, uids, *_ = runs
    w, panel = window, window.magnetometry
    open_from_browser(w, uids["no_mass"])
    assert set(panel.mt_curves) == {"ZFC", "FC"} and not panel.fit_curves and not panel.fits
    assert panel.fit_text.isVisible()
    assert panel.fit_text.text() == (
        "no Curie–Weiss fit: the sample's active mass (active_mass_g) is not in the run's metadata"
    )


def test_a_run_at_held_temperature_and_field_shows_the_placeholder(window, runs, open_from_browser):
    _, uids, *_ = runs
    w, panel = window, window.magnetometry
    w.lower_tabs.setCurrentWidget(w.map)
    open_from_browser(w, uids["held"])
    assert w.lower_tabs.currentWidget() is w.map  # not chosen: nothing of it to show
    assert not panel.mt_curves and not panel.mh_curves and not panel.fit_text.text()
    assert panel.empty.text() == EMPTY_TEXT and "No M–T or M–H data in this run" in EMPTY_TEXT
    w.lower_tabs.setCurrentWidget(panel)
    assert panel.empty.isVisible() and not panel.mt_plot.isVisible() and not panel.mh_plot.isVisible()
    assert w.moment.value_at_cursor is not None and not w._broken  # its moments: against time


def test_a_live_m_t_run_draws_point_by_point_and_fits_once_it_can(window, runs):
    *_, live = runs
    w, panel = window, window.magnetometry
    w.lower_tabs.setCurrentWidget(w.map)
    w.show_live()
    seen = []  # (ZFC points, FC points, the fit text) after each event
    count = lambda label: len(points(panel.mt_curves[label])[0]) if label in panel.mt_curves else 0
    for name, doc in live:
        w.handler(name, doc)  # what the window's timer does with each drained document
        w.refresh()
        if name == "descriptor" and doc["name"] == "zfc":
            assert w.lower_tabs.currentWidget() is panel  # chosen before the first point
        if name == "event":
            seen.append((count("ZFC"), count("FC"), panel.fit_text.text()))  # FC's stream: at its first point
    n = len(TEMPERATURES_K)
    assert [z for z, _, _ in seen] == [*range(1, n + 1), *[n] * n]
    assert [f for _, f, _ in seen] == [0] * n + list(range(1, n + 1))
    assert "no Curie–Weiss fit of ZFC: Curie–Weiss fit needs at least 6 points, got 1" in seen[0][2]
    assert [text.startswith("ZFC: C = ") for *_, text in seen].index(True) == 5  # 5 parameters, 6 points
    assert seen[-1][2].startswith("ZFC: C = ") and "no Curie–Weiss fit" not in seen[-1][2]
    assert not w._broken
