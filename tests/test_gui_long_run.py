"""A long stored run opened as the window opens it (``gui/overview.py``): what is drawn is right.

The run (4 h at 10 Hz, a spectrum every 10 s) is written by ``benchmarks/long_run.py`` the way
real runs are stored; the window keeps 5,000 echem rows of its 144,000 (buckets of 29), so what
the panels show is checked against the full arrays read from the catalog.
"""

import os
import threading
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # CI has no display

import numpy as np
import pytest

from operando.benchmarks.long_run import make_long_run
from operando.gui import stored as stored_module
from operando.gui.curves import CycleIndex, _spread_dq, dqdv_curve, dqdv_spread
from operando.gui.overview import Background, HDF5Columns, TiledColumns, scan, source_for
from operando.gui.plots import configure
from operando.gui.window import MainWindow
from operando.storage.catalog import open_catalog, resolve_data_dir

HOURS, RATE_HZ, TABLE = 4.0, 10.0, 5_000
KEYS = ("timestamp", "Ewe", "I", "charge", "cycle", "step")


pytestmark = pytest.mark.usefixtures("gc_on_the_gui_thread")


@pytest.fixture(scope="module")
def long_run(tmp_path_factory):
    data_dir = resolve_data_dir(tmp_path_factory.mktemp("gui-long") / "data")
    with open_catalog(data_dir) as cat:
        made = make_long_run(
            cat.client, data_dir, hours=HOURS, rate_hz=RATE_HZ, raman_every_s=10.0, spectrum_points=256, seed=3
        )
        run = cat.client[made.uid]
        full = {k: np.asarray(run["echem"][k].read()) for k in KEYS}
        last_spectrum = np.asarray(run["raman"]["raman-spectrum"][made.rows["raman"] - 1])
        moments = np.asarray(run["magnetometer"]["magnetometer-moment"].read())
    return data_dir, made, full, last_spectrum, moments


@pytest.fixture
def window(qtbot, long_run, monkeypatch):
    monkeypatch.setattr(stored_module, "TABLE_ROWS", TABLE)
    configure()
    data_dir, made, *_ = long_run
    w = MainWindow(data_dir)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    w.open_run(made.uid)
    yield w
    w.close()


def step_capacities(full, mass_g):
    """|charge at a step's last row - at its first| per (cycle, step) with current: what each
    piece of E vs capacity must reach, from every row."""
    out = {}
    change = np.flatnonzero(np.diff(full["step"]) != 0) + 1
    for a, b in zip(np.r_[0, change], np.r_[change, len(full["step"])]):
        if np.any(full["I"][a:b] != 0) and b - a >= 2:
            out[int(full["cycle"][a]), int(full["step"][a])] = abs(full["charge"][b - 1] - full["charge"][a]) / mass_g
    return out


def pieces(x, y):
    """The NaN-separated pieces of a curve."""
    cut = np.flatnonzero(np.isnan(x))
    starts = np.r_[0, cut + 1]
    return [(x[a:b], y[a:b]) for a, b in zip(starts, np.r_[cut, len(x)]) if b > a]


def test_the_run_looks_like_a_simulated_run(long_run):
    data_dir, made, full, _, moments = long_run
    assert made.rows == {"interruptions": 0, "echem": 144_000, "magnetometer": 2_880, "raman": 1_440, "timebase": 1}
    assert np.all(np.diff(full["timestamp"]) > 0) and np.allclose(np.diff(full["timestamp"]), 0.1)
    assert 0.0 < full["Ewe"].min() < 0.05 and 2.95 < full["Ewe"].max() < 3.05  # cycled between 0.01 and 3 V
    assert np.all(np.diff(full["cycle"]) >= 0) and np.all(np.diff(full["step"]) >= 0) and full["cycle"][-1] >= 2
    assert set(np.unique(np.sign(full["I"]))) == {-1.0, 0.0, 1.0}
    np.testing.assert_allclose(np.diff(full["charge"]), full["I"][1:] * 0.1 / 3.6, atol=1e-12)  # mAh of I dt
    assert 0.0 < moments.min() < moments.max() < 0.2  # emu, following the cycling
    with open_catalog(data_dir) as cat:
        run = cat.client[made.uid]
        assert sorted(run) == ["echem", "interruptions", "magnetometer", "raman", "timebase"]
        assert run.metadata["start"]["plan_name"] == "operando_cycling"
        raman = run["raman"].metadata
        assert len(raman["configuration"]["raman"]["data"]["raman-raman_shift"]) == 256
        assert raman["data_keys"]["raman-spectrum"]["shape"] == [256]


def test_panels_show_the_full_datas_extremes_capacities_and_spectra(window, long_run):
    _, made, full, last_spectrum, moments = long_run
    w = window
    assert w.data.overview is not None and w.data.overview.bucket == 29
    assert w.data.echem.rows < TABLE + 400  # the table, not the 144,000 rows
    # E and I vs time: min/max envelope, so the extremes of every row are drawn
    for item, key in ((w.echem.e, "Ewe"), (w.echem.i, "I")):
        x, y = item.getData()
        assert y.min() == full[key].min() and y.max() == full[key].max()
        assert x[0] == 0.0 and x[-1] == pytest.approx((full["timestamp"][-1] - full["timestamp"][0]) / 3600)
    # E vs capacity: each current step reaches exactly the full data's capacity
    mass = w.data.active_mass_g
    want = step_capacities(full, mass)
    shown = 0
    for item, cycle in zip(w.capacity.items, w.capacity.shown):
        x, _ = item.getData()
        tops = [p[0].max() for p in pieces(x, _)]
        steps = sorted(s for c, s in want if c == cycle)
        np.testing.assert_allclose(tops, [want[cycle, s] for s in steps], rtol=1e-12)
        shown += len(tops)
    assert shown >= 4 and w.capacity.shown[-1] == full["cycle"][-1]
    # dQ/dV: the bins of each step add up to its charge
    for item, cycle in zip(w.dqdv.items, w.dqdv.shown):
        x, y = item.getData()
        steps = sorted(s for c, s in want if c == cycle)
        sums = [abs(np.sum(p[1])) * 0.01 for p in pieces(x, y)]
        np.testing.assert_allclose(sums, [want[cycle, s] for s in steps], rtol=1e-9)
    # moments: every reading, enveloped
    _, m = w.moment.m.getData()
    assert m.min() == moments.min() and m.max() == moments.max()
    # Raman: a waterfall of a subset of the 1,440 spectra, and the latest spectrum itself
    raman = w.data.streams["raman"]
    assert raman.rows == 1_440 and "raman-spectrum" in raman.sampled
    image = w.raman.image.image
    assert image is not None and image.shape[0] == 256 and 200 <= image.shape[1] <= 960
    assert w.raman.shown_row == 1_439
    np.testing.assert_array_equal(w.raman.spectrum.getData()[1], last_spectrum)


def test_zooming_in_reads_the_windows_rows(window, long_run, qtbot):
    _, _, full, *_ = long_run
    w = window
    t0 = full["timestamp"][0]
    lo, hi = 1.5, 1.55  # hours: 1,800 rows, 62 buckets: fewer than pixels
    w.echem.plot.getPlotItem().vb.setXRange(lo, hi, padding=0)
    rows = (full["timestamp"] >= t0 + lo * 3600) & (full["timestamp"] <= t0 + hi * 3600)

    def shown():
        x, y = w.echem.e.getData()
        inside = (x >= lo) & (x <= hi)
        return x[inside], y[inside]

    qtbot.waitUntil(lambda: len(shown()[0]) == rows.sum(), timeout=10_000)  # read in the background
    x, y = shown()
    np.testing.assert_allclose(x, (full["timestamp"][rows] - t0) / 3600, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(y, full["Ewe"][rows])  # every row, as measured
    np.testing.assert_array_equal(w.echem.i.getData()[1][(w.echem.i.getData()[0] >= lo)][: rows.sum()], full["I"][rows])


def test_scrub_shows_the_cursors_own_sample_then_replay_to_the_end(window, long_run, qtbot):
    _, _, full, *_ = long_run
    w = window
    w.scrub(0.437)
    t = w.data.cursor
    k = int(np.searchsorted(full["timestamp"], t, side="right")) - 1  # the sample at or before
    reading = f"E = {full['Ewe'][k]:.4f} V   I = {full['I'][k] * 1e3:+.4f} mA"
    qtbot.waitUntil(lambda: reading in w.status.table.item(0, 4).text(), timeout=10_000)
    assert f"E {full['Ewe'][k]:.3f} V" in w.timebar.label.text()
    assert w.capacity.marker.getData()[1][0] == full["Ewe"][k]
    # replay from there at 3,600x (2.3 s): rows arrive in order to the end, E drawn all along
    w.timebar.speed.setCurrentIndex(w.timebar.speed.findData(3600))
    w.timebar.play.setChecked(True)
    total = len(w.stored.times["echem"])
    assert w.data.echem.rows < total
    seen = []
    qtbot.waitUntil(lambda: seen.append(w.data.echem.rows) or not w.timebar.play.isChecked(), timeout=30_000)
    assert w.data.echem.rows == total and seen == sorted(seen) and len(set(seen)) > 2
    w.refresh()
    y = w.echem.e.getData()[1]
    assert y.min() == full["Ewe"].min() and y.max() == full["Ewe"].max()


def test_background_reads_are_applied_only_when_delivered():
    """A read done on the worker changes nothing until the GUI thread delivers it (before its
    panels redraw), so all panels of one refresh see the same rows; per slot the newest wins."""
    background, got = Background(), []
    release = threading.Event()
    background.request("a", 1, lambda: release.wait(10) and "old", got.append)  # in flight
    background.request("b", 1, lambda: "b1", got.append)
    background.request("b", 2, lambda: "b2", got.append)  # replaces b1 before it is read
    release.set()
    while not background.idle:
        time.sleep(0.01)
    assert got == []
    assert background.deliver() == 2 and got == ["old", "b2"]
    assert background.deliver() == 0
    background.close()


def test_tiled_slicing_gives_the_same_table_and_overview(long_run):
    data_dir, made, full, *_ = long_run
    with open_catalog(data_dir) as cat:
        node = cat.client[made.uid]["echem"]
        arrays = dict(node.base.new_variation(include_data_sources=True).items())
        local = source_for(arrays, 144_000)
        assert isinstance(local, HDF5Columns)
        a_table, a = scan(local, list(arrays), TABLE)
        b_table, b = scan(TiledColumns(arrays, 144_000), list(arrays), TABLE)
        local.close()
    for key in a_table:
        np.testing.assert_array_equal(a_table[key], b_table[key])
    np.testing.assert_array_equal(a.rows_index, b.rows_index)
    for key in ("Ewe", "I"):
        np.testing.assert_array_equal(a.lo[key], b.lo[key])
        np.testing.assert_array_equal(a.hi[key], b.hi[key])
        bucket = a.bucket
        padded = np.pad(full[key], (0, -len(full[key]) % bucket), constant_values=np.nan)
        np.testing.assert_array_equal(a.lo[key], np.nanmin(padded.reshape(-1, bucket), axis=1))
        np.testing.assert_array_equal(a.hi[key], np.nanmax(padded.reshape(-1, bucket), axis=1))
    # every step's first and last row is in the table: boundaries and capacities exact
    index = CycleIndex()
    index.update(a_table["cycle"], a_table["step"])
    full_index = CycleIndex()
    full_index.update(full["cycle"], full["step"])
    np.testing.assert_array_equal(a.rows_index[index.step_starts], full_index.step_starts)
    np.testing.assert_array_equal(a.rows_index[np.r_[index.step_starts[1:]] - 1], np.r_[full_index.step_starts[1:]] - 1)


def test_spread_dqdv_is_exact_for_a_charge_linear_in_e():
    e = np.array([0.0, 0.034, 0.05, 0.1])  # segments across several 10 mV bins, and inside one
    q = 2.0 * e  # dQ/dV = 2 everywhere
    first, sums = _spread_dq(e, q, 0.01)
    assert first == 0
    np.testing.assert_allclose(sums / 0.01, [2.0] * 10 + [0.0], atol=1e-12)  # the last bin starts at 0.1
    ewe = np.linspace(1.0, 2.0, 1001)
    charge = np.cumsum(np.full(1001, 1e-3))
    current = np.ones(1001)
    x1, y1 = dqdv_curve(ewe, current, charge, [(0, 1001)], None)
    x2, y2 = dqdv_spread(ewe, current, charge, [(0, 1001)], None)
    assert np.nansum(y2) * 0.01 == pytest.approx(charge[-1] - charge[0])
    np.testing.assert_allclose(np.nanmedian(y1), np.nanmedian(y2), rtol=1e-6)


def test_the_rest_of_the_subset_and_a_zoomed_waterfall_are_read_in_the_background(window, qtbot):
    w = window
    column = w.data.streams["raman"].sampled["raman-spectrum"]
    assert len(column.available(1_440)[0]) >= 240  # half of the subset at open, the rest once drawn
    qtbot.waitUntil(lambda: len(column.available(1_440)[0]) == 480, timeout=10_000)
    t = (w.data.streams["raman"].experiment_time() - w.data.t0()) / 3600
    w.raman.waterfall.getPlotItem().vb.setXRange(t[100], t[160], padding=0)  # 61 spectra in view
    qtbot.waitUntil(lambda: np.all(np.isin(np.arange(100, 161), column.available(1_440)[0])), timeout=10_000)
    qtbot.waitUntil(lambda: w.raman.image.image.shape[1] >= 61, timeout=5_000)
    read = column.available(1_440)[0]
    i = int(np.setdiff1d(np.arange(700, 800), read)[0])  # a spectrum not read yet: read, then drawn
    w.set_cursor(w.data.streams["raman"].experiment_time()[i] + 1e-3)
    assert w.raman.shown_row == i and "reading" in w.raman.spectrum_plot.getPlotItem().titleLabel.text
    qtbot.waitUntil(lambda: column.get(i) is not None and w.raman.spectrum.getData()[1] is not None, timeout=10_000)
    np.testing.assert_array_equal(w.raman.spectrum.getData()[1], column.get(i))


def test_map_frames_of_a_long_run_are_read_when_shown(qtbot):
    from operando.gui.model import RunData, SampledColumn
    from operando.gui.panels_detectors import MapPanel

    configure()
    frames = np.arange(10 * 4 * 5, dtype=float).reshape(10, 4, 5)
    asked = []
    data = RunData()
    data.set_start({"uid": "x"})
    stream = data.add_stream(
        "skpm",
        {
            "skpm-cpd": {"dtype": "array", "shape": [4, 5]},
            "skpm-exposure_start": {"dtype": "number", "shape": []},
            "skpm-exposure_end": {"dtype": "number", "shape": []},
        },
    )
    column = SampledColumn(10, (4, 5), [9], frames[[9]], lambda slot, rows, done: asked.append((rows, done)))
    stream.sample("skpm-cpd", column)
    starts = np.arange(10.0) * 10
    data.append("skpm", {"skpm-exposure_start": starts, "skpm-exposure_end": starts + 5, "time": starts + 5})
    panel = MapPanel()
    qtbot.addWidget(panel)
    panel.show()
    assert panel.refresh(data) and panel.frame_index == 9
    np.testing.assert_array_equal(panel.frame, frames[9])
    data.cursor = 33.0  # frame 3: not read yet
    assert panel.refresh(data) and panel.frame is None and "reading" in panel.view.getPlotItem().titleLabel.text
    (rows, done), *_ = asked
    done(frames[rows])  # what the background read delivers
    assert panel.refresh(data) and panel.frame_index == 3  # its arrival redraws the panel
    np.testing.assert_array_equal(panel.frame, frames[3])
