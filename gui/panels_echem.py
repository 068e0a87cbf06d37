"""Electrochemistry panels: E and I vs time, E vs capacity per cycle, dQ/dV per cycle."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from .curves import CycleCurves, capacity_curve, dqdv_curve, dqdv_spread
from .model import RunData
from .plots import COLOURS, CYCLE_COLOURS, SeriesCurve, cursor_line, curve, place_cursor, plot, right_axis


class Panel(QtWidgets.QWidget):
    """A panel redraws only when its run's data or the time cursor changed."""

    def __init__(self):
        super().__init__()
        self._seen = None

    def refresh(self, data: RunData, force: bool = False) -> bool:
        key = (id(data), self.depends(data), data.cursor)
        if key == self._seen and not force:
            return False
        if not self.isVisible() and not force:
            return False  # hidden: drawn once shown again (the key is still unseen)
        self._seen = key
        self.draw(data)
        return True

    def depends(self, data: RunData):
        """What this panel's picture depends on besides the cursor: any change of the run."""
        return data.version

    def draw(self, data: RunData) -> None:
        raise NotImplementedError


def hours(t: np.ndarray, t0: float) -> np.ndarray:
    return (np.asarray(t, float) - t0) / 3600.0


def show_series(series: SeriesCurve, data: RunData, key: str, t0: float) -> bool:
    """An echem key against time: every row, or a long stored run's overview (and detail)."""
    e = data.echem
    if data.overview is not None:
        return series.show_overview(data.overview, key, t0, e, data.echem_upto())
    return series.show(e["timestamp"], e[key], t0, e)


class EchemTimePanel(Panel):
    def __init__(self):
        super().__init__()
        self.plot = plot("Potential and current", "time", "E", "h", "V")
        self.plot.getPlotItem().getAxis("left").setLabel("E", units="V", color=COLOURS["E"])
        vb = self.plot.getPlotItem().vb
        self.e_series = SeriesCurve(self.plot, vb, COLOURS["E"])
        self.i_view = right_axis(self.plot, "I", "A", COLOURS["I"])
        self.i_series = SeriesCurve(self.i_view, vb, COLOURS["I"])
        self.e, self.i = self.e_series.item, self.i_series.item
        self.cursor = cursor_line(self.plot)
        self._data: RunData | None = None
        vb.sigXRangeChanged.connect(self._range_changed)  # zoom/pan: redraw the visible rows
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)

    def _range_changed(self, *_):
        if self._data is not None:
            self.draw(self._data)

    def depends(self, data):
        return data.version, data.background_version(detectors=False)  # zoomed-in rows arriving

    def draw(self, data):
        self._data = data
        e = data.echem
        if e is None or not e.rows:
            for s in (self.e_series, self.i_series):
                s.show(np.empty(0), np.empty(0), 0.0)
            return
        t0 = data.t0()
        show_series(self.e_series, data, "Ewe", t0)
        show_series(self.i_series, data, "I", t0)
        place_cursor(self.cursor, None if data.cursor is None else (data.cursor - t0) / 3600)


class CyclePanel(Panel):
    """Curves of the last cycles, one colour each; the cursor's sample marked."""

    def __init__(self, title, x_label, y_label, x_units, y_units, fn, last=8):
        super().__init__()
        self.plot = plot(title, x_label, y_label, x_units, y_units)
        self.legend = self.plot.getPlotItem().addLegend(offset=(-5, 5), labelTextSize="8pt")
        self.curves = CycleCurves(fn)
        self.items = [curve(self.plot, CYCLE_COLOURS[k % len(CYCLE_COLOURS)], gaps=True) for k in range(last)]
        self._drawn: list = [None] * last  # (cycle, x array) per item: only changed curves are set
        self._stream = None  # the echem stream the cached curves belong to
        self.marker = pg.ScatterPlotItem(size=9, brush=pg.mkBrush(COLOURS["cursor"]), pen=None)
        self.marker.setZValue(60)
        self.plot.addItem(self.marker)
        self.shown: list[int] = []  # cycle numbers drawn, oldest first
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot)

    def draw(self, data):
        e = data.echem
        if e is not self._stream:  # another run (or replay restarted): nothing cached applies
            self.curves = CycleCurves(self.curves.fn)
            self._drawn = [None] * len(self.items)
            self._stream = e
        found = self.curves.curves(e, data.active_mass_g, len(self.items)) if e is not None and e.rows else []
        for k, item in enumerate(self.items):
            cycle, x, y = found[k] if k < len(found) else (None, None, None)
            drawn = self._drawn[k]
            if drawn is None or drawn[0] != cycle or drawn[1] is not x:
                item.setData([] if x is None else x, [] if y is None else y)
                self._drawn[k] = (cycle, x)
        shown = [c for c, _, _ in found]
        if shown != self.shown:  # rebuilding a legend is slow: only when the cycles shown change
            self.legend.clear()
            for item, c in zip(self.items, shown):
                self.legend.addItem(item, f"cycle {c}")
        self.shown = shown
        self.mark(data)

    def mark(self, data):
        self.marker.setData([], [])


class CapacityPanel(CyclePanel):
    def __init__(self):
        super().__init__("E vs capacity", "capacity", "E", "mAh/g", "V", capacity_curve)

    def draw(self, data):
        unit = "mAh/g" if data.active_mass_g else "mAh"
        self.plot.getPlotItem().setLabel("bottom", "capacity", units=unit)
        super().draw(data)

    def depends(self, data):
        return data.version, data.background_version(detectors=False)  # the cursor's own sample

    def mark(self, data):
        e = data.echem
        i, at = data.echem_at(data.cursor) if (e is not None and data.cursor is not None) else (None, None)
        if i is None:
            self.marker.setData([], [])
            return
        idx = self.curves.index
        # the cursor's sample: capacity since the start of its step, as the curves are drawn
        start = max((s for s in idx.step_starts if s <= i), default=0)
        scale = 1.0 / data.active_mass_g if data.active_mass_g else 1.0
        self.marker.setData([abs(at["charge"] - e["charge"][start]) * scale], [at["Ewe"]])


class DqDvPanel(CyclePanel):
    def __init__(self):
        super().__init__("dQ/dV", "E", "dQ/dV", "V", "mAh/g/V", dqdv_curve)

    def draw(self, data):
        # A long stored run's decimated table: each segment's charge spread over its E range
        # (curves.dqdv_spread); every row otherwise, as live.
        fn = dqdv_spread if data.overview is not None else dqdv_curve
        if self.curves.fn is not fn:
            self.curves = CycleCurves(fn)
            self._drawn = [None] * len(self.items)
        super().draw(data)
