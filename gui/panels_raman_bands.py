"""Raman bands against time: each band's centre shift (from its mean) and the area ratio of two
bands, beside the Raman waterfall; a line per band with its mean centre, FWHM and shift per unit
state of charge. A map run (``plans/raman_map.py``) also shows the ratio where each spectrum
was taken (``raman_map_view.py``).

The fit is ``analysis.raman_bands.fit_bands`` per spectrum, the call ``track_bands`` makes for
each row (Lorentzian on a linear baseline), so a stored run's numbers are those of ``operando
analyse``; the band guesses come from ``find_bands`` on the mean spectrum, and the ratio shown by
default is ``run_raman``'s choice (the band whose area varies most over the one that varies
least), or the user's from the two lists.

Fitting costs ~50 ms a spectrum (measured, CPU time: 1024 pixels, the simulator's 5 bands, two
pairs of which overlap and are fitted together; 6–8 ms a band fitted alone; a fit whose band is
absent iterates to lmfit's limit, 0.2–0.3 s). So it is done in the GUI thread, a time budget per
drawing, never twice for a spectrum: a drawing fits spectra not fitted yet, spread over the run
first (the first, the last, then halving the gaps), until its budget would be exceeded
(``OPEN_BUDGET_S`` while none is fitted, ``FILL_BUDGET_S`` after), and leaves the rest to the next
refreshes (the window's 10 Hz timer): ``depends`` counts the drawings that left work, so the
next tick draws again. A live run's new spectrum is the only one left: fitted at once. A run's
first drawing neither fits nor imports lmfit (~1.4 s, once per process): opening a run costs
what it did, and the bands come on the refreshes from ``SETTLE_S`` later. Nothing is fitted
while the panel is hidden. The guesses are found once, from the mean of the spectra there are
when there are at least ``MIN_SPECTRA`` (a stored run: all of them, as ``operando analyse``), and
kept until *Refit guesses*.
"""

from __future__ import annotations

import html
import math
import time
import weakref
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from .formatting import fmt
from .model import RunData, Stream, key_ending
from .panels_detectors import detector_rows, find_key
from .panels_echem import Panel, hours
from .plots import COLOURS, CYCLE_COLOURS, cursor_line, place_cursor, plot
from .raman_map_view import RamanMapView, map_layout

if TYPE_CHECKING:
    from operando.analysis.raman_bands import BandGuess, RamanTracking

SHAPE = "lorentzian"  # what ``operando analyse`` fits by default
MIN_SPECTRA = 5  # spectra averaged before the bands are looked for
OPEN_BUDGET_S = 0.5  # fitting in a drawing while none is fitted (a run, new guesses): a spread subset
FILL_BUDGET_S = 0.1  # fitting in each later drawing: the GUI stays responsive meanwhile
SETTLE_S = 0.3  # after a run's first drawing: it is painted before the first fits
SYMBOLS_UP_TO = 1000  # points per band marked with symbols (each costs ~50 µs to draw)
FIELDS = ("centre_cm1", "centre_err", "fwhm_cm1", "area", "area_err")
EMPTY_TEXT = "No Raman spectra in this run (a detector stream with a key ending -spectrum)."
NO_AXIS_TEXT = "The Raman stream has no Raman-shift axis in its configuration (-raman_shift): bands not fitted."
NO_BAND_TEXT = (
    "No band stands out of the mean of {n} spectra (find_bands: no peak above 200 cm⁻¹ with a "
    "prominence of 8× the noise): nothing to track."
)
WAIT_TEXT = "Waiting for {need} spectra to find the bands in their mean ({n} so far)."
FINDING_TEXT = "Finding the bands in the mean of {n} spectra…"


def find_spectra(data: RunData) -> tuple[Stream | None, str | None]:
    """(stream, key) of the run's spectra, as the Raman panel finds them."""
    return find_key(data, "spectrum", 1)


def shift_axis(stream: Stream, width: int) -> np.ndarray | None:
    key = key_ending(stream.configuration, "raman_shift")
    if key is None:
        return None
    shift = np.asarray(stream.configuration[key], float)
    return shift if shift.shape == (width,) else None


def spread_order(n: int) -> np.ndarray:
    """0..n-1 in an order whose every prefix is spread over the range: the first, the last, then
    each coarser grid's points before the finer ones (0, n-1, 2^k, 2^(k-1), 3·2^(k-1), ...)."""
    if n <= 2:
        return np.arange(n)
    i = np.arange(n)
    level = np.zeros(n)
    nz = i > 0
    level[nz] = -np.log2(i[nz] & -i[nz])  # minus the trailing zero bits: coarse grids first
    level[0] = -np.inf
    level[n - 1] = -1e9  # the latest spectrum second
    return np.argsort(level, kind="stable")


class BandFitter:
    """Fits of one run's spectra with fixed guesses: a row per spectrum (NaN until fitted or
    where the fit failed), fitted once each."""

    def __init__(self, guesses: list[BandGuess], from_spectra: int):
        self.guesses = list(guesses)
        self.from_spectra = from_spectra  # spectra averaged for the guesses
        self.done = np.zeros(0, bool)
        self.values = np.full((0, len(self.guesses), len(FIELDS)), math.nan)
        self.cost_s: float | None = None  # seconds per spectrum, a running average
        self.fitted = 0  # spectra fitted (done)

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.guesses]

    def _grow(self, rows: int) -> None:
        if rows > len(self.done):
            extra = rows - len(self.done)
            self.done = np.concatenate([self.done, np.zeros(extra, bool)])
            pad = np.full((extra, *self.values.shape[1:]), math.nan)
            self.values = np.concatenate([self.values, pad])

    def pending(self, index: np.ndarray) -> int:
        """Spectra of ``index`` (row numbers) not fitted yet."""
        self._grow(int(index[-1]) + 1 if len(index) else 0)
        return int((~self.done[index]).sum()) if len(index) else 0

    def fit(self, shift: np.ndarray, index: np.ndarray, spectra: np.ndarray, rows: int, budget_s: float) -> int:
        """Fit spectra not fitted yet (row ``index[p]`` is ``spectra[p]``), spread over the run,
        until ``budget_s`` would be exceeded (at least one); returns how many were fitted."""
        from operando.analysis import raman_bands  # lmfit: imported once a run has spectra

        self._grow(rows)
        todo = [p for p in spread_order(len(index)) if not self.done[index[p]]]
        start, n = time.perf_counter(), 0
        for p in todo:
            t = time.perf_counter()
            fits = raman_bands.fit_bands(shift, spectra[p], self.guesses, SHAPE)
            dt = time.perf_counter() - t
            self.cost_s = dt if self.cost_s is None else 0.8 * self.cost_s + 0.2 * dt
            row = int(index[p])
            self.values[row] = [[getattr(f, k) for k in FIELDS] for f in fits]
            self.done[row] = True
            n += 1
            if time.perf_counter() - start + self.cost_s > budget_s:
                break
        self.fitted += n
        return n

    def tracking(self, rows: int, time_s: np.ndarray, soc: np.ndarray | None) -> RamanTracking:
        """The fits as ``track_bands`` returns them (NaN rows: not fitted yet or failed)."""
        from operando.analysis.raman_bands import BandTrack, RamanTracking

        self._grow(rows)
        v = self.values[:rows]
        tracks = [
            BandTrack(name, *(v[:, b, k].copy() for k in range(len(FIELDS)))) for b, name in enumerate(self.names)
        ]
        return RamanTracking(SHAPE, tracks, time_s=time_s, soc=soc)


def default_ratio(tracking: RamanTracking) -> tuple[str, str] | None:
    """``operando analyse``'s ratio (analysis/run_raman.py)."""
    from operando.analysis.run_raman import default_ratio as analyse_ratio  # lmfit: only when fitting

    return analyse_ratio(tracking)


def band_line(tracking: RamanTracking, b, rows: int) -> str:
    ok = np.isfinite(b.centre_cm1)
    if not ok.any():
        return f"{b.name}: not fitted in any of {rows} spectra"
    line = (
        f"{b.name}: {fmt(float(np.mean(b.centre_cm1[ok])), '.2f')} ± "
        f"{fmt(float(np.nanmedian(b.centre_err[ok])), '.2f')} cm⁻¹, "
        f"FWHM {fmt(float(np.nanmean(b.fwhm_cm1[ok])), '.1f')} cm⁻¹"
    )
    if tracking.soc is not None and np.isfinite(tracking.soc).any():
        try:
            slope, err = tracking.against_soc(b.name)
            line += f", {fmt(slope, '+.2f')} ± {fmt(err, '.2f')} cm⁻¹ per unit SOC"
        except ValueError:  # fewer than three fitted spectra with a state of charge (yet)
            pass
    return line


class RamanBandsPanel(Panel):
    """Band centre shifts and an area ratio against time, fitted incrementally (see the module)."""

    def __init__(self):
        super().__init__()
        self.centre_plot = plot("Band centre − its mean", "time", "shift", "h", "cm⁻¹")
        self.ratio_plot = plot("Area ratio", "time", "area ratio", "h", None)
        self.ratio_plot.setXLink(self.centre_plot)
        self.cursor = cursor_line(self.centre_plot)
        self.ratio_cursor = cursor_line(self.ratio_plot)
        colour = COLOURS["moment"]
        self.ratio_curve = pg.PlotDataItem(pen=pg.mkPen(colour, width=1), symbol="o", symbolSize=4)
        self.ratio_curve.setSymbolPen(colour)
        self.ratio_curve.setSymbolBrush(colour)
        self.ratio_lo = pg.PlotDataItem(pen=pg.mkPen(None))
        self.ratio_hi = pg.PlotDataItem(pen=pg.mkPen(None))
        self.ratio_fill = pg.FillBetweenItem(self.ratio_lo, self.ratio_hi, brush=pg.mkBrush(42, 138, 62, 50))
        for item in (self.ratio_lo, self.ratio_hi, self.ratio_fill, self.ratio_curve):
            self.ratio_plot.addItem(item)
        # What is drawn, by band name (the tests read them); the text lines, each in its band's
        # colour, are the legend (a legend of five bands would cover a plot this size).
        self.centre_curves: dict[str, pg.PlotDataItem] = {}
        self.colours: dict[str, str] = {}
        self.lines: list[str] = []  # the text shown, as plain lines
        self.error_bars: dict[str, pg.ErrorBarItem] = {}
        self.ratio: tuple[str, str] | None = None  # (numerator, denominator) shown
        self.tracking: RamanTracking | None = None

        self.numerator, self.denominator = QtWidgets.QComboBox(), QtWidgets.QComboBox()
        for combo in (self.numerator, self.denominator):
            combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
            combo.activated.connect(self._ratio_chosen)  # the user's choice only, not ours
        self.refit_button = QtWidgets.QPushButton("Refit guesses")
        self.refit_button.setToolTip("Find the bands again in the mean of every spectrum read so far, and refit all")
        self.refit_button.clicked.connect(self.refit_guesses)
        self.band_text = QtWidgets.QLabel()
        self.band_text.setWordWrap(True)
        self.band_text.setStyleSheet("font-size: 8pt")
        self.band_text.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.empty = QtWidgets.QLabel(EMPTY_TEXT)
        self.empty.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.empty.setWordWrap(True)
        self.empty.setStyleSheet("color: #777")

        self.content = QtWidgets.QWidget()  # hidden for the placeholder
        inner = QtWidgets.QVBoxLayout(self.content)
        inner.setContentsMargins(0, 0, 0, 0)
        controls = QtWidgets.QHBoxLayout()
        controls.addWidget(QtWidgets.QLabel("area ratio"))
        controls.addWidget(self.numerator)
        controls.addWidget(QtWidgets.QLabel("/"))
        controls.addWidget(self.denominator)
        controls.addStretch(1)
        controls.addWidget(self.refit_button)
        inner.addLayout(controls)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.centre_plot, 1)
        row.addWidget(self.ratio_plot, 1)
        self.map_view = RamanMapView()  # map runs only
        self.map_view.hide()
        row.addWidget(self.map_view, 1)
        inner.addLayout(row, 1)
        inner.addWidget(self.band_text)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.content, 1)
        lay.addWidget(self.empty, 1)
        self.content.hide()

        self.fitter: BandFitter | None = None
        self._run = None  # (weak reference to the RunData, stream name, key) the fitter is for
        self._tried = None  # spectra count at which no band stood out (tried again on more)
        self._user_ratio = False
        self._data: RunData | None = None
        self._ready_at = 0.0  # monotonic time from which this run's spectra may be fitted
        self._work = 0  # counts drawings that left work for the next one
        self.pending = 0  # spectra read but not fitted yet

    # -- the Panel protocol --------------------------------------------------------------------
    def depends(self, data):
        # new spectra (or a long run's spectra read in the background), and work left by the
        # last drawing (bands to find, spectra to fit): then the next refresh draws again
        return detector_rows(data), data.t0(), data.background_version(echem=False), self._work

    def redraw(self):
        if self._data is not None:
            self.draw(self._data)

    def showEvent(self, event):
        super().showEvent(event)
        if self.pending:  # drawn while hidden (the window forces a drawing when a run opens)
            QtCore.QTimer.singleShot(0, self.redraw)

    def draw(self, data):
        self._data = data
        stream, key = find_spectra(data)
        if stream is None:
            self._run = self.fitter = None  # another run's fits: let them go
            return self._placeholder(EMPTY_TEXT)
        if self._run is None or self._run[0]() is not data or self._run[1:] != (stream.name, key):
            # A run shown for the first time: drawn without fitting (opening a run costs no
            # lmfit import and no fits), which starts on the refreshes SETTLE_S later.
            self._run = (weakref.ref(data), stream.name, key)
            self.fitter, self._tried, self._user_ratio = None, None, False
            self._ready_at = time.monotonic() + SETTLE_S
        index, spectra = stream.array_rows(key)
        shift = shift_axis(stream, spectra.shape[1])
        if shift is None:
            return self._placeholder(NO_AXIS_TEXT)
        # Hidden (the window forces a drawing when a run opens): nothing fitted until shown.
        ready = self.isVisible() and time.monotonic() >= self._ready_at
        if self.fitter is None:
            if len(index) < MIN_SPECTRA:
                return self._placeholder(WAIT_TEXT.format(need=MIN_SPECTRA, n=len(index)))
            if self._tried == len(index):
                return self._placeholder(NO_BAND_TEXT.format(n=len(index)))
            if not ready:
                self._work += 1
                return self._placeholder(FINDING_TEXT.format(n=len(index)), pending=len(index))
            self._find_guesses(shift, spectra)
            if self.fitter is None:
                return self._placeholder(NO_BAND_TEXT.format(n=len(index)))
        f = self.fitter
        if f.pending(index) and ready:
            f.fit(shift, index, spectra, stream.rows, OPEN_BUDGET_S if f.fitted == 0 else FILL_BUDGET_S)
        self.pending = f.pending(index)
        if self.pending:
            self._work += 1
        self._show(data, stream, f, len(index))

    # -- guesses ---------------------------------------------------------------------------------
    def _find_guesses(self, shift, spectra) -> None:
        from operando.analysis.raman_bands import find_bands

        guesses = find_bands(shift, np.asarray(spectra, float).mean(axis=0))
        self._tried = len(spectra)
        self.fitter = BandFitter(guesses, len(spectra)) if guesses else None
        self._user_ratio = False
        self._bands_changed()

    def refit_guesses(self):
        """The bands found again in the mean of every spectrum read so far; every fit redone."""
        data = self._data
        stream, key = find_spectra(data) if data is not None else (None, None)
        if stream is None:
            return
        index, spectra = stream.array_rows(key)
        shift = shift_axis(stream, spectra.shape[1])
        if shift is None or not len(index):
            return
        self._find_guesses(shift, spectra)
        self.draw(data)

    def _bands_changed(self) -> None:
        """New guesses: one curve per band, the ratio lists refilled."""
        plot_item = self.centre_plot.getPlotItem()
        for item in (*self.centre_curves.values(), *self.error_bars.values()):
            plot_item.removeItem(item)
        self.centre_curves, self.error_bars = {}, {}
        names = self.fitter.names if self.fitter is not None else []
        self.colours = {name: CYCLE_COLOURS[k % len(CYCLE_COLOURS)] for k, name in enumerate(names)}
        for name, colour in self.colours.items():
            curve = pg.PlotDataItem(pen=pg.mkPen(colour, width=1), name=name, symbolSize=4, symbolPen=None)
            curve.setSymbolBrush(colour)
            bars = pg.ErrorBarItem(x=np.empty(0), y=np.empty(0), height=np.empty(0), beam=0, pen=colour)
            plot_item.addItem(bars)
            plot_item.addItem(curve)
            self.centre_curves[name], self.error_bars[name] = curve, bars
        for combo in (self.numerator, self.denominator):
            combo.blockSignals(True)
            combo.clear()
            combo.addItems(names)
            combo.blockSignals(False)

    def _ratio_chosen(self, _index: int) -> None:
        self._user_ratio = True
        self.redraw()

    # -- drawing ---------------------------------------------------------------------------------
    def _marked(self, line: str) -> str:
        """A text line as rich text, a band's own line after a square of its curve's colour."""
        name = line.split(":", 1)[0]
        text = html.escape(line)
        colour = self.colours.get(name)
        return f"<span style='color:{colour}'>■</span> {text}" if colour else text

    def _placeholder(self, text: str, pending: int = 0) -> None:
        self.empty.setText(text)
        self.empty.show()
        self.content.hide()
        self.tracking, self.ratio, self.pending, self.lines = None, None, pending, []
        self.band_text.clear()
        if self.fitter is None and self.centre_curves:
            self._bands_changed()

    def _show_map(self, data: RunData, stream: Stream) -> None:
        layout = map_layout(data, stream)
        self.map_view.setVisible(layout is not None and self.tracking is not None)
        if layout is None or self.tracking is None:
            return
        if self.ratio is not None:
            values, label = self.tracking.ratio(*self.ratio)[0], f"{self.ratio[0]} / {self.ratio[1]}"
        else:
            values, label = self.tracking.tracks[0].area, self.tracking.tracks[0].name
        self.map_view.show_map(layout[0], layout[1], layout[2], values, label)

    def _show(self, data: RunData, stream: Stream, f: BandFitter, read: int) -> None:
        self.empty.hide()
        self.content.show()
        rows = stream.rows
        t0 = data.t0()
        t = stream.experiment_time()
        x = hours(t, t0) if t0 is not None else np.full(rows, math.nan)
        soc_key = key_ending(stream.data_keys, "frame-soc")
        soc = np.asarray(stream[soc_key], float) if soc_key and soc_key in stream.columns else None
        tr = self.tracking = f.tracking(rows, t, soc)
        for b in tr.tracks:
            ok = np.isfinite(b.centre_cm1) & np.isfinite(x)
            y = b.centre_cm1[ok] - (np.mean(b.centre_cm1[ok]) if ok.any() else 0.0)
            curve = self.centre_curves[b.name]
            curve.setSymbol("o" if ok.sum() <= SYMBOLS_UP_TO else None)
            curve.setData(x[ok], y)
            self.error_bars[b.name].setData(x=x[ok], y=y, height=2 * np.nan_to_num(b.centre_err[ok]))

        if not self._user_ratio:
            auto = default_ratio(tr)
            if auto is not None:
                self.numerator.setCurrentText(auto[0])
                self.denominator.setCurrentText(auto[1])
        two = len(tr.tracks) >= 2
        self.ratio_plot.setVisible(two)
        self.numerator.setEnabled(two)
        self.denominator.setEnabled(two)
        lines = [band_line(tr, b, rows) for b in tr.tracks]
        self.ratio = (self.numerator.currentText(), self.denominator.currentText()) if two else None
        if self.ratio is None:
            for item in (self.ratio_curve, self.ratio_lo, self.ratio_hi):
                item.setData([], [])
        else:
            a, b = self.ratio
            r, err = tr.ratio(a, b)
            ok = np.isfinite(r) & np.isfinite(x)
            e = np.nan_to_num(err[ok])
            self.ratio_curve.setData(x[ok], r[ok])
            self.ratio_lo.setData(x[ok], r[ok] - e)
            self.ratio_hi.setData(x[ok], r[ok] + e)
            if ok.any():
                last = np.flatnonzero(ok)[-1]
                value = f"{fmt(float(r[last]), '.3f')} ± {fmt(float(err[last]), '.3f')}"
                lines.append(f"area ratio {a} / {b}: {value} (latest fitted)")
        self._show_map(data, stream)
        status = f"{f.fitted} of {rows} spectra fitted"
        if self.pending:
            status += f" (fitting the other {self.pending}…)"
        elif read < rows:
            status += f" ({rows - read} not read yet)"
        cost = f", ≈{f.cost_s * 1e3:.0f} ms each" if f.cost_s is not None else ""
        lines.append(f"{status}{cost}; bands found in the mean of {f.from_spectra} spectra ({SHAPE})")
        self.lines = lines
        self.band_text.setText("<br>".join(self._marked(line) for line in lines))
        at = None if data.cursor is None or t0 is None else (data.cursor - t0) / 3600
        place_cursor(self.cursor, at)
        place_cursor(self.ratio_cursor, at)
