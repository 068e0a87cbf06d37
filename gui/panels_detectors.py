"""Detector panels: moment with E overlaid, Raman waterfall and spectrum, any 2-D map, status.

Streams are found by their data keys, not by instrument names: a moment is any scalar key ending
``-moment``, a spectrum any 1-D key ending ``-spectrum`` (its axis the configuration key ending
``-raman_shift``), and a map any 2-D key of any stream — so an SKPM (or any imaging) device shows
up without changes here.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from .formatting import fmt, missing
from .model import RunData, key_ending
from .overview import SUBSET_ROWS
from .panels_echem import Panel, hours, show_series
from .plots import COLOURS, SeriesCurve, cursor_line, curve, place_cursor, plot, right_axis
from .skpm_profile_fit import ProfileFit


def find_key(data: RunData, suffix: str, ndim: int):
    """(stream, key) of the detector stream with a ``ndim``-D key ending ``suffix`` that began
    first (an M–T run's ``zfc`` before its ``fc``, whatever order the streams were stored in)."""
    found = []
    for s in data.detector_streams():
        key = key_ending([k for k in s.keys_of_ndim(ndim)], suffix)
        if key:
            t = s.experiment_time() if s.rows else ()
            found.append((float(t[0]) if len(t) else math.inf, len(found), s, key))
    return min(found)[2:] if found else (None, None)


class MomentPanel(Panel):
    DOTS = 1500  # readings are marked with dots while no more than this many are in view

    def __init__(self):
        super().__init__()
        self.plot = plot("Magnetic moment (E overlaid)", "time", "moment", "h", "emu")
        self.plot.getPlotItem().getAxis("left").setLabel("moment", units="emu", color=COLOURS["moment"])
        vb = self.plot.getPlotItem().vb
        # A week of readings every 5 s is 120,960 points: a min/max envelope like E's, and dots
        # only once few enough are in view (pyqtgraph's symbols cost ~50 µs each to set).
        self.m_series = SeriesCurve(self.plot, vb, COLOURS["moment"])
        self.m = self.m_series.item
        self.dots = pg.ScatterPlotItem(size=4, brush=pg.mkBrush(COLOURS["moment"]), pen=None)
        self.plot.addItem(self.dots)
        self.e_view = right_axis(self.plot, "E", "V", COLOURS["E"])
        self.e_series = SeriesCurve(self.e_view, vb, COLOURS["E"])
        self.e = self.e_series.item
        self.e.setOpacity(0.45)
        self._data: RunData | None = None
        self._moment = None  # (stream, key) drawn
        self._dots_for = None
        vb.sigXRangeChanged.connect(self._range_changed)
        self.cursor = cursor_line(self.plot)
        self.value_at_cursor: float | None = None
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)

    def depends(self, data):
        return data.version, data.background_version(detectors=False)

    def _range_changed(self, *_):
        data = self._data
        if data is None:
            return
        t0, e = data.t0(), data.echem
        if t0 is not None and e is not None and e.rows:
            show_series(self.e_series, data, "Ewe", t0)
        if t0 is not None and self._moment is not None:
            self._show_moment(*self._moment, t0)

    def _show_moment(self, stream, key, t0):
        t, m = stream.experiment_time(), stream[key]
        self.m_series.show(t, m, t0, stream)
        vb = self.plot.getPlotItem().vb
        i0, i1 = 0, len(t)
        if not vb.autoRangeEnabled()[0]:
            lo, hi = vb.viewRange()[0]
            i0 = int(np.searchsorted(t, t0 + lo * 3600.0, "left"))
            i1 = int(np.searchsorted(t, t0 + hi * 3600.0, "right"))
        shown = (id(stream), len(t), i0, i1, t0) if i1 - i0 <= self.DOTS else None
        if shown != self._dots_for:
            self._dots_for = shown
            if shown is None:
                self.dots.setData([], [])
            else:
                self.dots.setData(hours(t[i0:i1], t0), m[i0:i1])

    def draw(self, data):
        self._data = data
        t0 = data.t0()
        stream, key = find_key(data, "moment", 0)
        e = data.echem
        if t0 is None:
            return
        if e is not None and e.rows:
            show_series(self.e_series, data, "Ewe", t0)
        self._moment = (stream, key) if stream is not None and stream.rows else None
        if self._moment is not None:
            self._show_moment(stream, key, t0)
            i = data.row_at(stream, data.at())
            self.value_at_cursor = None if i is None else float(stream[key][i])
        else:  # a run without moments (yet)
            self.m_series.show(np.empty(0), np.empty(0), t0)
            self.dots.setData([], [])
            self._dots_for = self.value_at_cursor = None
        place_cursor(self.cursor, None if data.cursor is None else (data.cursor - t0) / 3600)


def detector_rows(data: RunData):
    """Names and row counts of the detector streams: what changes when a detector acquires.

    Panels that show only detector data depend on this instead of on every echem row, so a new
    spectrum or map (every ~10 s to minutes) redraws them, not each new potentiostat sample.
    """
    return tuple((s.name, s.rows) for s in data.detector_streams())


class RamanPanel(Panel):
    def __init__(self):
        super().__init__()
        self.waterfall = plot("Raman waterfall", "time", "Raman shift", "h", "cm⁻¹")
        self.image = pg.ImageItem()
        self.image.setColorMap(pg.colormap.get("viridis"))
        self.waterfall.addItem(self.image)
        bar = pg.ColorBarItem(colorMap=pg.colormap.get("viridis"), interactive=False, width=10, label="counts")
        bar.setImageItem(self.image, insert_in=self.waterfall.getPlotItem())
        self.bar = bar
        self.cursor = cursor_line(self.waterfall)
        self.spectrum_plot = plot("Spectrum", "Raman shift", "intensity", "cm⁻¹", "counts")
        self.spectrum = curve(self.spectrum_plot, "#5b2c83")
        self.shown_row: int | None = None
        self._data: RunData | None = None
        self._sampled = False  # the spectra are a long run's SampledColumn
        self.waterfall.getPlotItem().vb.sigXRangeChanged.connect(self._range_changed)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.waterfall, 3)
        lay.addWidget(self.spectrum_plot, 2)

    def depends(self, data):
        # the image's time axis starts at the first sample; spectra of a long run arrive later
        return detector_rows(data), data.t0(), data.background_version(echem=False)

    def _range_changed(self, *_):
        if self._data is not None and self._sampled:
            self.draw(self._data)

    def draw(self, data):
        self._data = data
        stream, key = find_key(data, "spectrum", 1)
        t0 = data.t0()
        if stream is None or not stream.rows or t0 is None:
            self.image.clear()
            self.spectrum.setData([], [])
            self.shown_row = None
            return
        self._sampled = key in stream.sampled
        t = hours(stream.experiment_time(), t0)
        index, spectra = stream.array_rows(key)
        width = spectra.shape[1] if spectra.ndim == 2 else int((stream.data_keys[key].get("shape") or [0])[0])
        shift_key = key_ending(stream.configuration, "raman_shift")
        shift = np.asarray(stream.configuration[shift_key], float) if shift_key else np.arange(width, dtype=float)
        if self._sampled:  # a long run: the spectra read so far, on an even time grid
            image, times = self._sampled_image(stream, key, index, spectra, t)
        else:
            image, times = spectra, t
        if len(image):
            self.image.setImage(image.T, autoLevels=False)  # rows: shift, columns: time
            lo, hi = np.percentile(image, [1, 99.5])
            self.bar.setLevels((lo, max(hi, lo + 1e-9)))
            dt = (times[-1] - times[0]) / max(len(times) - 1, 1) if len(times) > 1 else 1 / 60
            self.image.setRect(
                QtCore.QRectF(
                    times[0] - dt / 2, shift.min(), max(times[-1] - times[0] + dt, 1e-9), shift.max() - shift.min()
                )
            )
            if shift[0] > shift[-1]:  # image rows follow pixel order
                self.image.setTransform(self.image.transform().scale(1, -1))
        i = data.row_at(stream, data.at())
        self.shown_row = i
        row = stream.row_value(key, i) if i is not None else None
        if row is None:
            self.spectrum.setData([], [])
        else:
            self.spectrum.setData(shift, row)
        if i is not None:
            at = "" if missing(t[i]) else f" at {fmt(t[i], '.2f')} h"
            wait = " (reading…)" if row is None else ""
            self.spectrum_plot.getPlotItem().setTitle(
                f"<span style='font-size:10pt; font-weight:600'>Spectrum {i + 1}{at}{wait}</span>"
            )
        place_cursor(self.cursor, None if data.cursor is None else (data.cursor - t0) / 3600)

    def _sampled_image(self, stream, key, index, spectra, t):
        """Columns on an even time grid from the spectra read (each the nearest read), over the
        visible time range; a zoomed range asks for its own spectra."""
        a, b = 0, len(index)
        vb = self.waterfall.getPlotItem().vb
        if not vb.autoRangeEnabled()[0] and len(index):
            lo, hi = vb.viewRange()[0]
            r0 = max(int(np.searchsorted(t, lo, "left")) - 1, 0)
            r1 = min(int(np.searchsorted(t, hi, "right")) + 1, stream.rows)
            a = max(int(np.searchsorted(index, r0, "left")) - 1, 0)
            b = min(int(np.searchsorted(index, r1, "right")) + 1, len(index))
            want = min(r1 - r0, SUBSET_ROWS)
            if b - a < want:  # fewer read there than the panel can show: read that window
                stream.sampled[key].window(r0, r1, max(1, math.ceil((r1 - r0) / SUBSET_ROWS)))
        if b <= a:
            return spectra[:0], t[:0]
        index, spectra = index[a:b], spectra[a:b]
        times = t[index]
        if len(index) == 1:
            return spectra, times
        grid = np.linspace(times[0], times[-1], min(len(index), 2 * SUBSET_ROWS))
        j = np.clip(np.searchsorted(times, grid), 1, len(times) - 1)
        pick = np.where(grid - times[j - 1] <= times[j] - grid, j - 1, j)
        return spectra[pick], grid


class MapPanel(Panel):
    """The latest (or the cursor's) frame of any 2-D stream, with a draggable line profile; for a
    CPD map, also the interface fit (``skpm_profile_fit.py``)."""

    def __init__(self):
        super().__init__()
        self.choice = QtWidgets.QComboBox()
        self.choice.currentIndexChanged.connect(lambda _: self._seen and self.redraw())
        self.view = plot("Map", "x", "y", "px", "px")
        self.view.getPlotItem().setAspectLocked(True)
        self.image = pg.ImageItem()
        self.image.setColorMap(pg.colormap.get("CET-D1A" if "CET-D1A" in pg.colormap.listMaps() else "viridis"))
        self.view.addItem(self.image)
        self.bar = pg.ColorBarItem(colorMap=self.image.getColorMap(), interactive=False, width=10)
        self.bar.setImageItem(self.image, insert_in=self.view.getPlotItem())
        self.row_line = pg.InfiniteLine(angle=0, movable=True, pen=pg.mkPen(COLOURS["cursor"], width=1.5))
        self.row_line.sigPositionChanged.connect(lambda *_: self._draw_profile())
        self.view.addItem(self.row_line)
        self.profile_plot = plot("Line profile", "x", "value", "px", None)
        self.profile = curve(self.profile_plot, COLOURS["cursor"], gaps=True)
        self.fit_label = QtWidgets.QLabel()
        self.fit_label.setWordWrap(True)
        self.fit_label.setStyleSheet("font-size: 8pt")
        self.profile_fit = ProfileFit(self.profile_plot, self.fit_label)
        self.empty = QtWidgets.QLabel("No 2-D stream in this run (e.g. SKPM maps).")
        self.empty.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: #777")
        self.frame: np.ndarray | None = None
        self.frame_index: int | None = None
        self._data = None
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.choice)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.view, 3)
        row.addWidget(self.profile_plot, 2)
        lay.addLayout(row)
        lay.addWidget(self.fit_label)
        lay.addWidget(self.empty)

    def depends(self, data):
        return detector_rows(data), data.background_version(echem=False)  # a long run's frames arrive

    def redraw(self):
        if self._data is not None:
            self.draw(self._data)

    def draw(self, data):
        self._data = data
        options = [f"{s.name}: {k}" for s in data.detector_streams() for k in s.keys_of_ndim(2)]
        if options != [self.choice.itemText(i) for i in range(self.choice.count())]:
            self.choice.blockSignals(True)
            self.choice.clear()
            self.choice.addItems(options)
            self.choice.blockSignals(False)
        has = bool(options)
        for w in (self.choice, self.view, self.profile_plot):
            w.setVisible(has)
        self.empty.setVisible(not has)
        if not has:
            self.frame = self.frame_index = None
            self.profile_fit.clear()
            return
        name, key = self.choice.currentText().split(": ", 1)
        stream = data.streams[name]
        i = data.row_at(stream, data.at())
        self.frame_index = i
        if i is None:
            self.image.clear()
            self.frame = None
            self.profile_fit.clear()
            return
        frame = stream.row_value(key, i)  # None while a long run's frame is read
        if frame is None:
            self.image.clear()
            self.frame = None
            self.view.getPlotItem().setTitle(
                f"<span style='font-size:10pt; font-weight:600'>{key} — frame {i + 1} (reading…)</span>"
            )
            self._draw_profile()
            return
        first = self.frame is None
        self.frame = np.asarray(frame, float)
        self.image.setImage(self.frame, autoLevels=False)
        finite = self.frame[np.isfinite(self.frame)]
        if finite.size:
            self.bar.setLevels((float(finite.min()), float(max(finite.max(), finite.min() + 1e-12))))
        units = stream.data_keys.get(key, {}).get("units")
        self.profile_plot.getPlotItem().setLabel("left", key, units=units)
        self.view.getPlotItem().setTitle(f"<span style='font-size:10pt; font-weight:600'>{key} — frame {i + 1}</span>")
        if first:
            self.row_line.setValue(self.frame.shape[0] / 2)
        self._draw_profile()
        self.profile_fit.show(stream, key, i, self.frame)

    def profile_row(self) -> int | None:
        if self.frame is None:
            return None
        return int(np.clip(np.floor(self.row_line.value()), 0, self.frame.shape[0] - 1))

    def _draw_profile(self):
        row = self.profile_row()
        if row is None:
            self.profile.setData([], [])
        else:
            self.profile.setData(np.arange(self.frame.shape[1]), self.frame[row])


class StatusPanel(Panel):
    """One line per instrument: what it is, its state and its latest (or the cursor's) reading."""

    COLUMNS = ["instrument", "kind", "backend", "state", "reading"]

    def __init__(self):
        super().__init__()
        self.table = QtWidgets.QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.states: dict[str, str] = {}  # set by the window from the run control
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.table)

    def draw(self, data):
        instruments = data.start.get("instruments") or {}
        self.table.setRowCount(len(instruments))
        for r, (name, info) in enumerate(instruments.items()):
            state = self.states.get(name) or ("stored" if data.stop else "—")
            values = [name, fmt(info.get("kind")), fmt(info.get("backend")), state, self.reading(data, name, info)]
            for c, v in enumerate(values):
                self.table.setItem(r, c, QtWidgets.QTableWidgetItem(v))
        self.table.resizeColumnsToContents()

    def depends(self, data):
        return data.version, data.background_version(detectors=False)  # the cursor's own sample

    @staticmethod
    def reading(data: RunData, name: str, info: dict) -> str:
        t = data.at()
        if info.get("kind") == "potentiostat":
            i, e = data.echem_at(t)
            if i is None:
                return ""
            return (
                f"E = {fmt(e['Ewe'], '.4f', 'V')}   I = {fmt(e['I'] * 1e3, '+.4f', 'mA')}   "
                f"cycle {fmt(e['cycle'], 'd')} step {fmt(e['step'], 'd')}"
            )
        stream = data.streams.get(name)
        i = data.row_at(stream, t) if stream is not None else None
        if i is None:
            return ""
        parts = []
        for key, desc in stream.data_keys.items():
            short = key.removeprefix(name + "-")
            if key == "time" or "exposure" in short or short.startswith("frame") or desc.get("shape"):
                continue
            value = stream[key][i]
            if not isinstance(value, (int, float, np.number)):
                continue  # text keys (labels, states) are not readings
            parts.append(f"{short} = {fmt(value, '.5g', desc.get('units') or '')}")  # NaN: "—"
        parts.append(f"{stream.rows} frames")
        return "   ".join(parts)
