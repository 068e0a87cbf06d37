"""pyqtgraph set-up shared by every panel: colours, fast curves, a second y axis, the time cursor."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from .envelope import Envelope

# One colour per quantity, the same in every panel.
COLOURS = {"E": "#1f4e9c", "I": "#d9730d", "moment": "#2a8a3e", "cursor": "#c0392b", "grey": "#9aa0a6"}
CYCLE_COLOURS = [
    "#1f4e9c",
    "#d9730d",
    "#2a8a3e",
    "#8e44ad",
    "#c0392b",
    "#16a085",
    "#7f8c8d",
    "#b7950b",
    "#2c3e50",
    "#e84393",
]


SI_UNITS = {"V", "A", "s"}


def configure() -> None:
    pg.setConfigOptions(background="w", foreground="#222", antialias=False, imageAxisOrder="row-major")


class MajorGridAxis(pg.AxisItem):
    """An axis whose grid has lines at its major ticks only (no minor ticks either).

    pyqtgraph draws a grid as translucent tick lines across the plot, at up to three tick levels,
    above the data (so they must stay translucent). Qt's raster engine draws a translucent 1-px
    line several times slower than an opaque one (measured offscreen: 80 lines across a plot,
    0.9 ms opaque, 3.0 ms at alpha 40), and every plot repainted all its axes' grid lines on every
    frame: most of a frame's cost. Keeping the major level keeps the grid that is read and drops
    most of the lines.
    """

    def generateDrawSpecs(self, p):
        specs = super().generateDrawSpecs(p)
        if specs is None or self.grid is False or not specs[1]:
            return specs
        axis_spec, tick_specs, text_specs = specs
        major = tick_specs[0][0]  # one pen per tick level, the major level first
        return axis_spec, [t for t in tick_specs if t[0] is major], text_specs


def plot(title: str, x_label: str, y_label: str, x_units=None, y_units=None) -> pg.PlotWidget:
    w = pg.PlotWidget(axisItems={side: MajorGridAxis(side) for side in ("left", "bottom", "right", "top")})
    p = w.getPlotItem()
    p.hideAxis("top")  # axes handed to a PlotItem are shown; these two are not wanted by default
    p.hideAxis("right")  # (right_axis() shows it again)
    p.setTitle(f"<span style='font-size:10pt; font-weight:600'>{title}</span>")
    p.setLabel("bottom", x_label, units=x_units)
    p.setLabel("left", y_label, units=y_units)
    for side, units in (("bottom", x_units), ("left", y_units)):
        if units not in SI_UNITS:  # no "kmAh/g" or "kcm⁻¹": prefixes only for SI units
            p.getAxis(side).enableAutoSIPrefix(False)
    p.showGrid(x=True, y=True, alpha=0.15)
    w.setMinimumSize(260, 180)
    return w


def pen(colour: str) -> QtGui.QPen:
    """A 1-px cosmetic pen: Qt draws it on its fast path (wider or fractional pens go through the
    stroker: a 2,000-point curve cost ~1.2 ms more per frame, measured offscreen)."""
    return pg.mkPen(colour, width=1)


def curve(target, colour: str, name: str | None = None, gaps: bool = False) -> pg.PlotDataItem:
    """A curve that stays fast with millions of points: peak downsampling, clipped to the view.

    ``gaps``: the data use NaN to separate pieces (skips the per-point finite check otherwise).
    """
    item = pg.PlotDataItem(pen=pen(colour), name=name, connect="finite" if gaps else "all", skipFiniteCheck=not gaps)
    target.addItem(item)
    # After addItem: a PlotItem imposes its own (off) downsampling on the items it adopts.
    item.setDownsampling(auto=True, method="peak")
    item.setClipToView(True)
    return item


class SeriesCurve:
    """A long time series (seconds) drawn in hours since ``t0`` from its min/max envelope.

    pyqtgraph gets at most eight points per pixel column of the visible range, so a frame costs
    O(new rows + pixels) instead of O(all rows); the curve is not set again when neither the
    rows nor the visible range nor the plot's width changed.
    """

    def __init__(self, target, range_view: pg.ViewBox, colour: str):
        self.item = pg.PlotDataItem(pen=pen(colour), skipFiniteCheck=True)
        target.addItem(self.item)
        self.item.setDownsampling(auto=False)  # already decimated, and exactly
        self.range_view = range_view  # whose x range and width decide the rows drawn
        self.envelope = Envelope()
        self._shown = None
        self._source = None

    def show(self, t: np.ndarray, y: np.ndarray, t0: float, source=None) -> bool:
        """Draw ``y`` against ``t``; ``source`` (the stream) changing means another series."""
        if source is not self._source:
            self.envelope, self._source, self._shown = Envelope(), source, None
        n = len(y)
        vb = self.range_view
        if vb.autoRangeEnabled()[0] or n == 0:
            i0, i1 = 0, n  # following the data: all of it
        else:  # zoomed: the visible rows and one beyond each edge
            lo, hi = vb.viewRange()[0]
            i0 = int(np.searchsorted(t, t0 + lo * 3600.0, "left")) - 1
            i1 = int(np.searchsorted(t, t0 + hi * 3600.0, "right")) + 1
        columns = max(int(vb.width()), 100)
        key = (n, i0, i1, columns, t0)
        if key == self._shown:
            return False
        self._shown = key
        if n == 0:
            self.item.setData([], [])
            return True
        # Up to 8 points per pixel column: the envelope's buckets grow 4x per level, and at 2
        # per column a bucket could be 4 px wide, which a 1-px pen shows as steps.
        x, yy = self.envelope.window(t, y, i0, i1, 8 * columns)
        self.item.setData((x - t0) / 3600.0, yy)
        return True

    def show_overview(self, overview, key: str, t0: float, table, upto: int) -> bool:
        """Draw ``key`` of a long stored run from its overview (``overview.py``).

        Its min/max pairs per bucket (every extreme kept) while a bucket is at most half a
        pixel wide; zoomed in further, the rows themselves, read in the background (the pairs
        until they arrive). ``upto``: rows of the run fed so far (replay); the buckets below it,
        then ``table``'s rows up to it.
        """
        ov, vb = overview, self.range_view
        complete = ov.complete_buckets(upto)
        columns = max(int(vb.width()), 100)
        zoomed = not vb.autoRangeEnabled()[0]
        b0, b1 = 0, complete
        if zoomed:  # the visible buckets and one beyond each edge
            lo, hi = vb.viewRange()[0]
            b0 = max(int(np.searchsorted(ov.t, t0 + lo * 3600.0, "right")) - 2, 0)
            b1 = min(int(np.searchsorted(ov.t, t0 + hi * 3600.0, "right")) + 1, complete)
        rows = None
        if zoomed and b1 - b0 < 2 * columns:
            r0, r1 = b0 * ov.bucket, min(b1 * ov.bucket, upto)
            rows = ov.detail(r0, r1) if r1 > r0 else None
        key_shown = (id(ov), key, b0, b1, columns, t0, upto, None if rows is None else id(rows))
        if key_shown == self._shown:
            return False
        self._shown = key_shown
        if rows is not None:  # full resolution (enveloped if still more rows than pixels allow)
            if self._source is not rows:
                self.envelope, self._source = Envelope(), rows
            t, y = rows.columns["timestamp"], rows.columns[key]
            x, yy = self.envelope.window(t, y, r0 - rows.start, r1 - rows.start, 8 * columns)
        else:
            if self._source != ("overview", id(ov), key):
                self.envelope, self._source = Envelope(), ("overview", id(ov), key)
            px, py = ov.pairs(key)
            x, yy = self.envelope.window(px, py, 2 * b0, 2 * b1, 8 * columns)
            if b1 == complete and upto:  # then the table's rows past them (replay), or the last
                t, y = table["timestamp"], table[key]
                j0 = int(np.searchsorted(ov.rows_index[: len(t)], complete * ov.bucket))
                j0 = min(j0, len(t) - 1)
                x, yy = np.concatenate([x, t[j0:]]), np.concatenate([yy, y[j0:]])
        self.item.setData((x - t0) / 3600.0, yy)
        return True


def right_axis(widget: pg.PlotWidget, label: str, units: str | None, colour: str) -> pg.ViewBox:
    """A second y axis on the right sharing the x axis (e.g. current beside potential)."""
    p = widget.getPlotItem()
    vb = pg.ViewBox()
    p.showAxis("right")
    p.scene().addItem(vb)
    p.getAxis("right").linkToView(vb)
    p.getAxis("right").setLabel(label, units=units, color=colour)
    if units not in SI_UNITS:
        p.getAxis("right").enableAutoSIPrefix(False)
    vb.setXLink(p)

    def sync():
        vb.setGeometry(p.vb.sceneBoundingRect())
        vb.linkedViewChanged(p.vb, vb.XAxis)

    p.vb.sigResized.connect(sync)
    sync()
    return vb


def cursor_line(widget: pg.PlotWidget) -> pg.InfiniteLine:
    line = pg.InfiniteLine(
        angle=90, movable=False, pen=pg.mkPen(COLOURS["cursor"], width=1, style=QtCore.Qt.PenStyle.DashLine)
    )
    line.setZValue(50)
    widget.addItem(line, ignoreBounds=True)
    line.hide()
    return line


def place_cursor(line: pg.InfiniteLine, x: float | None) -> None:
    if x is None or not np.isfinite(x):
        line.hide()
    else:
        line.setValue(x)
        line.show()


def boxed(title: str, *widgets: QtWidgets.QWidget) -> QtWidgets.QWidget:
    box = QtWidgets.QGroupBox(title)
    lay = QtWidgets.QVBoxLayout(box)
    lay.setContentsMargins(4, 4, 4, 4)
    for w in widgets:
        lay.addWidget(w)
    return box
