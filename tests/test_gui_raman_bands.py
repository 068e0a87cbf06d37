"""The Raman bands panel (offscreen): an operando run of the simulated lab with Raman frames, stored
and opened from the run browser, shows each band's centre and an area ratio against time, fitted
as `operando analyse` fits them (the same guesses, the same numbers), each spectrum once; the
same run's documents fed live add a point per new spectrum, fitting only it; a run without Raman
shows the placeholder."""

import html
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # CI has no display

import re
import time

import numpy as np
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop
from PySide6 import QtWidgets

from operando.acquisition.session import OperandoRunEngine
from operando.analysis import raman_bands
from operando.analysis.run_raman import analyse_raman
from operando.analysis.stored_columns import find_column
from operando.devices.potentiostat import Potentiostat
from operando.devices.raman import RamanSpectrometer
from operando.devices.techniques import ConstantCurrent, Limits, OpenCircuit, ScheduledStep
from operando.gui import panels_raman_bands
from operando.gui.model import RunData
from operando.gui.panels_raman_bands import EMPTY_TEXT, FINDING_TEXT, MIN_SPECTRA, RamanBandsPanel, spread_order
from operando.gui.plots import configure
from operando.gui.window import MainWindow
from operando.plans.operando import DetectorSchedule, operando_cycling
from operando.sim_devices.backends.detectors import SimRamanBackend
from operando.sim_devices.backends.potentiostat import SimPotentiostatBackend
from operando.sim_devices.lab import build_sim_lab
from operando.storage.catalog import open_catalog
from operando.storage.catalog_writer import FlushingTiledWriter

gui = pytest.mark.usefixtures("gc_on_the_gui_thread")  # every test with widgets

MASS_G = 2e-3
PERIOD_S = 60.0
CHARGE_H = 0.14  # at 2C: 9 spectra, SOC 0 → 0.28
LATTICE_CM1 = 505.0  # the simulator's lattice band (505 − 6·SOC)
LATTICE_SHIFT_PER_SOC = -6.0
INSTRUMENTS = {"potentiostat": {"kind": "potentiostat", "backend": "sim"}, "raman": {"kind": "raman", "backend": "sim"}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs of the simulated lab on the virtual clock, stored as the catalog stores them: a
    2C charge with a Raman frame every minute, and an open-circuit rest without Raman; the
    first's documents as a live window receives them, and `operando analyse`'s Raman result."""
    base = tmp_path_factory.mktemp("gui-raman-bands")
    RE = OperandoRunEngine({})  # first: it starts the event loop the devices connect in
    lab = build_sim_lab("fe_li2o", MASS_G, soc=0.0, start_time=1.8e9, clock="virtual", speed=1e6, sample_interval_s=5)
    limits = Limits(e_min_V=0.01, e_max_V=3.0, i_max_A=0.01)
    pstat = Potentiostat(SimPotentiostatBackend(lab), limits, base / "files", name="potentiostat")
    raman = RamanSpectrometer(SimRamanBackend(lab), 5.0, 2, name="raman")
    for device in (pstat, raman):
        call_in_bluesky_event_loop(device.connect())
    capacity = lab.cell.params.nominal_capacity_mAh
    charge = ConstantCurrent(
        current_A=lab.cell.params.c_rate_current_A(2.0), max_duration_s=CHARGE_H * 3600, e_max_V=3.0
    )
    rest = ScheduledStep(technique=OpenCircuit(duration_s=300), cycle=0, step=1)
    live: list[tuple[str, dict]] = []
    with open_catalog(base / "data") as catalog:
        writer = FlushingTiledWriter(catalog.client)
        both = lambda name, doc: (writer(name, doc), live.append((name, doc)))
        md = {"sample": {"name": "gui-raman-bands"}, "instruments": INSTRUMENTS}
        plain = {"sample": {"name": "no-raman"}, "instruments": {"potentiostat": INSTRUMENTS["potentiostat"]}}
        frames = [DetectorSchedule.every(raman, PERIOD_S, "raman")]
        steps = [ScheduledStep(technique=charge, cycle=1, step=1)]
        uids = {
            "raman": RE(operando_cycling(pstat, steps, frames, lab.clock, capacity_mAh=capacity, md=md), both)[0],
            "plain": RE(operando_cycling(pstat, [rest], [], lab.clock, capacity_mAh=capacity, md=plain), writer)[0],
        }
        run = catalog.client[uids["raman"]]
        notes: list[str] = []
        analysed = analyse_raman(run, notes)  # what `operando analyse` reports for it
        stream = run["raman"]
        stored = {k: find_column(stream, k, float) for k in ("spectrum", "frame-time", "frame-soc")}
    assert analysed is not None and not notes, notes
    spectra, soc = stored["spectrum"], stored["frame-soc"]
    assert spectra.shape[0] >= 8 and np.isfinite(soc).all(), (spectra.shape, soc)
    return base / "data", uids, analysed, stored, live


@pytest.fixture(scope="module")
def window(qapp, runs):
    """One window on the runs' data directory, opening one run after another as a user does."""
    configure()
    w = MainWindow(runs[0])
    w.resize(1400, 900)
    w.show()
    yield w
    w.close()
    w.deleteLater()


@pytest.fixture
def fit_calls(monkeypatch):
    """Every spectrum the GUI fits (one call of ``fit_bands`` each), counted."""
    calls = []
    real = raman_bands.fit_bands

    def counting(shift, counts, *args, **kw):
        calls.append(np.asarray(counts).copy())
        return real(shift, counts, *args, **kw)

    monkeypatch.setattr(raman_bands, "fit_bands", counting)
    return calls


def points(item):
    if item.xData is None:  # pyqtgraph keeps no arrays for an empty curve
        return np.empty(0), np.empty(0)
    return np.asarray(item.xData), np.asarray(item.yData)


def progress(panel):
    return panel.fitter, panel.fitter.fitted if panel.fitter is not None else 0


def fill_in(w, panel, seconds=60.0):
    """Refresh as the window's timer does until every spectrum read is fitted (a run's spectra
    are fitted from SETTLE_S after its first drawing; then each refresh fits some)."""
    deadline = time.monotonic() + seconds
    while panel.pending:
        assert time.monotonic() < deadline, f"{panel.pending} spectra still not fitted"
        before = progress(panel)
        w.refresh()
        if progress(panel) == before:
            time.sleep(0.02)


def nearest(names, centre):
    return min(names, key=lambda n: abs(float(n.split()[-1]) - centre))


def test_spread_order_spreads_every_prefix():
    assert spread_order(0).tolist() == []
    assert spread_order(1).tolist() == [0]
    assert spread_order(9).tolist() == [0, 8, 4, 2, 6, 1, 3, 5, 7]
    order = spread_order(13)
    assert sorted(order.tolist()) == list(range(13)) and order[:3].tolist() == [0, 12, 8]


@gui
def test_a_stored_run_shows_each_band_as_operando_analyse_fits_it(
    window, runs, fit_calls, monkeypatch, open_from_browser
):
    _, uids, analysed, stored, _ = runs
    w, panel = window, window.raman_bands
    n = stored["spectrum"].shape[0]
    # a budget no fit fits in: each drawing fits one spectrum, spread over the run first
    budgets = panels_raman_bands.OPEN_BUDGET_S, panels_raman_bands.FILL_BUDGET_S
    monkeypatch.setattr(panels_raman_bands, "OPEN_BUDGET_S", 0.0)
    monkeypatch.setattr(panels_raman_bands, "FILL_BUDGET_S", 0.0)
    open_from_browser(w, uids["raman"])
    assert w.lower_tabs.currentWidget() is panel and panel.isVisible() and not w._broken
    # opening draws, fits nothing: the bands are found and fitted on the refreshes that follow
    assert panel.fitter is None and not fit_calls and panel.pending == n
    assert not panel.empty.isHidden() and panel.empty.text() == FINDING_TEXT.format(n=n)
    deadline = time.monotonic() + 30
    while panel.fitter is None and time.monotonic() < deadline:
        time.sleep(0.02)
        w.refresh()  # the window's timer
    # the guesses are `operando analyse`'s: the bands of the whole run's mean spectrum
    f = f_first = panel.fitter
    want = [t.name for t in analysed.tracking.tracks]
    assert f.names == want and f.from_spectra == n
    # ... exactly: `analysed.tracking` is track_bands on the stored spectra with these guesses
    assert f.guesses == raman_bands.find_bands(analysed.shift_cm1, stored["spectrum"].mean(axis=0))
    t0 = w.data.t0()
    frame_h = (stored["frame-time"] - t0) / 3600
    lattice = nearest(f.names, LATTICE_CM1)
    order = []  # the spectrum each drawing fitted; after each, a point per fitted spectrum at its time
    while True:
        done = np.flatnonzero(f.done)
        order += sorted(set(done) - set(order))
        assert points(panel.centre_curves[lattice])[0] == pytest.approx(frame_h[done])
        assert f"{len(done)} of {n} spectra fitted" in panel.lines[-1]
        if not panel.pending:
            break
        w.refresh()  # the window's timer
    assert order == spread_order(n).tolist()  # the first, the last, the middle, ...
    assert f.fitted == n and len(fit_calls) == n  # every spectrum fitted, each once
    assert not panel.map_view.isVisible()  # an operando run, not a map
    for b in analysed.tracking.tracks:
        x, y = points(panel.centre_curves[b.name])
        ok = np.isfinite(b.centre_cm1)
        assert x == pytest.approx(frame_h[ok]) and len(x) == ok.sum()
        assert y == pytest.approx(b.centre_cm1[ok] - b.centre_cm1[ok].mean(), abs=1e-9)
    # the lattice band: every spectrum fitted, the centres track_bands gave with these guesses
    mine, theirs = panel.tracking.track(lattice), analysed.tracking.track(lattice)
    assert np.isfinite(mine.centre_cm1).all() and len(mine.centre_cm1) == n
    np.testing.assert_allclose(mine.centre_cm1, theirs.centre_cm1, rtol=0, atol=1e-9)
    np.testing.assert_allclose(mine.centre_err, theirs.centre_err, rtol=1e-9)
    assert np.ptp(mine.centre_cm1) > 1.0  # it moves with the state of charge (−6 cm⁻¹ per unit)

    text = panel.lines  # shown in the label, each band's line marked in its curve's colour
    shown = panel.band_text.text()
    assert all(html.escape(ln) in shown for ln in text) and len(text) == len(want) + 2  # + ratio, status
    for b in analysed.tracking.tracks:
        (line,) = [ln for ln in text if ln.startswith(b.name + ":")]
        colour = panel.centre_curves[b.name].opts["pen"].color().name()
        assert f"<span style='color:{colour}'>■</span> {html.escape(line)}" in shown
        centre, err = (
            float(v) for v in re.match(rf"{b.name}: ([\d.]+) ± ([\d.]+) cm⁻¹, FWHM [\d.]+ cm⁻¹", line).groups()
        )
        ok = np.isfinite(b.centre_cm1)
        assert centre == pytest.approx(b.centre_cm1[ok].mean(), abs=0.006) and 0 < err < 1
    assert f"{n} of {n} spectra fitted" in text[-1]

    # the ratio: `operando analyse`'s pair, a point per stored spectrum, with its error band
    assert panel.ratio == analysed.ratio
    r, err = analysed.tracking.ratio(*analysed.ratio)
    x, y = points(panel.ratio_curve)
    assert len(x) == n and x == pytest.approx(frame_h) and y == pytest.approx(r, rel=1e-9)
    assert points(panel.ratio_hi)[1] - points(panel.ratio_lo)[1] == pytest.approx(2 * err, rel=1e-9)
    assert any(ln.startswith("area ratio {} / {}: ".format(*analysed.ratio)) for ln in text)

    # the user's pair from the lists, kept over later drawings
    other = next(name for name in f.names if name not in analysed.ratio)
    panel.numerator.setCurrentText(other)
    panel.numerator.activated.emit(panel.numerator.currentIndex())
    w.scrub(0.5)
    assert panel.ratio == (other, analysed.ratio[1]) and len(fit_calls) == n  # nothing refitted
    assert points(panel.ratio_curve)[1] == pytest.approx(analysed.tracking.ratio(other, analysed.ratio[1])[0])
    # the cursor line sits where the other time panels put theirs
    assert panel.cursor.isVisible() and panel.cursor.value() == pytest.approx(w.echem.cursor.value())

    # refit guesses: the same bands from the same mean, every spectrum fitted again, once
    panel.refit_button.click()
    f = panel.fitter
    assert f is not f_first and f.names == want and f.fitted == 1
    # hidden, a forced drawing (as when a run opens) fits nothing; shown again, the fitting goes on
    w.lower_tabs.setCurrentWidget(w.map)
    w.refresh(force=True)
    assert f.fitted == 1 and panel.pending == n - 1
    w.lower_tabs.setCurrentWidget(panel)
    QtWidgets.QApplication.processEvents()
    assert f.fitted >= 2  # (the window's timer may have ticked too)
    monkeypatch.setattr(panels_raman_bands, "OPEN_BUDGET_S", budgets[0])
    monkeypatch.setattr(panels_raman_bands, "FILL_BUDGET_S", budgets[1])
    fill_in(w, panel)
    assert len(fit_calls) == 2 * n and not w._broken


@gui
def test_a_live_run_fits_only_its_new_spectra(window, runs, fit_calls):
    *_, analysed, stored, live = runs
    w, panel = window, window.raman_bands
    w.lower_tabs.setCurrentWidget(w.map)
    w.show_live()
    raman_uid = next(d["uid"] for name, d in live if name == "descriptor" and d["name"] == "raman")
    seen = []  # (spectra so far, fit calls, lattice points) after each spectrum
    for name, doc in live:
        w.handler(name, doc)  # what the window's timer does with each drained document
        w.refresh()
        if name == "descriptor" and doc["name"] == "raman":
            assert w.lower_tabs.currentWidget() is panel  # chosen before the first spectrum
        if name == "event" and doc["descriptor"] == raman_uid:
            k = w.data.streams["raman"].rows
            if k < MIN_SPECTRA:
                assert panel.empty.isVisible() and f"({k} so far)" in panel.empty.text()
                seen.append((k, len(fit_calls), 0))
                continue
            fill_in(w, panel)
            lattice = nearest(panel.fitter.names, LATTICE_CM1)
            seen.append((k, len(fit_calls), len(points(panel.centre_curves[lattice])[0])))
    n = stored["spectrum"].shape[0]
    assert [k for k, *_ in seen] == list(range(1, n + 1))
    # nothing fitted before the bands are found; then the first five, then each new one, once
    assert [c for _, c, _ in seen] == [0] * (MIN_SPECTRA - 1) + list(range(MIN_SPECTRA, n + 1))
    assert [p for *_, p in seen] == [0] * (MIN_SPECTRA - 1) + list(range(MIN_SPECTRA, n + 1))
    assert panel.fitter.from_spectra == MIN_SPECTRA  # the guesses stayed those of the first five

    # the frames carry their state of charge: each band's shift per unit SOC, the lattice's −6
    text = panel.lines
    lattice = nearest(panel.fitter.names, LATTICE_CM1)
    (line,) = [ln for ln in text if ln.startswith(lattice + ":")]
    slope, err = (float(v) for v in re.search(r"([+-][\d.]+) ± ([\d.]+) cm⁻¹ per unit SOC", line).groups())
    assert slope == pytest.approx(LATTICE_SHIFT_PER_SOC, abs=0.5) and 0 < err < 0.5
    ref = analysed.soc_slopes[nearest(analysed.soc_slopes, LATTICE_CM1)]
    assert slope == pytest.approx(ref[0], abs=0.02)  # the guesses differ (five spectra), the fit not
    assert all("per unit SOC" in ln for ln in text if re.match(r"band \d+:", ln))
    assert not w._broken


@gui
def test_a_run_without_raman_shows_the_placeholder(window, runs, open_from_browser):
    _, uids, *_ = runs
    w, panel = window, window.raman_bands
    w.lower_tabs.setCurrentWidget(w.map)
    open_from_browser(w, uids["plain"])
    assert w.lower_tabs.currentWidget() is w.map  # not chosen: nothing of it to show
    w.lower_tabs.setCurrentWidget(panel)
    w.refresh()
    assert panel.empty.isVisible() and panel.empty.text() == EMPTY_TEXT and not panel.content.isVisible()
    assert panel.fitter is None and not panel.centre_curves and panel.tracking is None
    assert "No Raman spectra in this run" in EMPTY_TEXT and not w._broken


@gui
def test_the_reason_when_no_band_stands_out(qapp, monkeypatch):
    """Spectra of noise on a flat background: the panel waits for five, then says that no band
    stands out of their mean, and looks again as spectra arrive."""
    rng = np.random.default_rng(0)
    shift = np.linspace(100.0, 1800.0, 512)
    keys = {
        "raman-spectrum": {"dtype": "array", "shape": [512]},
        "raman-exposure_start": {"dtype": "number", "shape": []},
        "raman-exposure_end": {"dtype": "number", "shape": []},
    }
    data = RunData()
    data.set_start({"uid": "synthetic"})
    data.add_stream("raman", keys, {"raman-raman_shift": shift.tolist()})
    monkeypatch.setattr(panels_raman_bands, "SETTLE_S", 0.0)
    panel = RamanBandsPanel()
    panel.show()

    def add(k):
        start = 1.8e9 + 60.0 * (data.streams["raman"].rows + np.arange(k))
        spectra = rng.poisson(100.0, (k, len(shift))).astype(float)
        data.append(
            "raman", {"raman-spectrum": spectra, "raman-exposure_start": start, "raman-exposure_end": start + 10}
        )
        data.append("raman", {"time": start})
        panel.draw(data)

    add(MIN_SPECTRA - 1)
    assert not panel.empty.isHidden() and panel.content.isHidden()
    assert panel.empty.text() == f"Waiting for {MIN_SPECTRA} spectra to find the bands in their mean (4 so far)."
    add(1)
    assert not panel.empty.isHidden() and panel.content.isHidden() and panel.fitter is None
    assert panel.empty.text().startswith(f"No band stands out of the mean of {MIN_SPECTRA} spectra (find_bands: ")
    assert panel.empty.text().endswith("nothing to track.") and panel.tracking is None
    add(1)
    assert panel.empty.text().startswith(f"No band stands out of the mean of {MIN_SPECTRA + 1} spectra")
    panel.close()
    panel.deleteLater()
