"""pyqtgraph set-up shared by every panel: colours, fast curves, a second y axis, the time cursor."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

# One colour per quantity, the same in every panel.
COLOURS = {"E": "#1f4e9c", "I": "#d9730d", "moment": "#2a8a3e", "cursor": "#c0392b", "grey": "#9aa0a6"}
CYCLE_COLOURS = ["#1f4e9c", "#d9730d", "#2a8a3e", "#8e44ad", "#c0392b", "#16a085", "#7f8c8d",
                 "#b7950b", "#2c3e50", "#e84393"]


SI_UNITS = {"V", "A", "s"}


def configure() -> None:
    pg.setConfigOptions(background="w", foreground="#222", antialias=False, imageAxisOrder="row-major")


def plot(title: str, x_label: str, y_label: str, x_units=None, y_units=None) -> pg.PlotWidget:
    w = pg.PlotWidget()
    p = w.getPlotItem()
    p.setTitle(f"<span style='font-size:10pt; font-weight:600'>{title}</span>")
    p.setLabel("bottom", x_label, units=x_units)
    p.setLabel("left", y_label, units=y_units)
    for side, units in (("bottom", x_units), ("left", y_units)):
        if units not in SI_UNITS:  # no "kmAh/g" or "kcm⁻¹": prefixes only for SI units
            p.getAxis(side).enableAutoSIPrefix(False)
    p.showGrid(x=True, y=True, alpha=0.15)
    w.setMinimumSize(260, 180)
    return w


def curve(target, colour: str, width: float = 1.5, name: str | None = None,
          gaps: bool = False) -> pg.PlotDataItem:
    """A curve that stays fast with millions of points: peak downsampling, clipped to the view.

    ``gaps``: the data use NaN to separate pieces (skips the per-point finite check otherwise).
    """
    item = pg.PlotDataItem(pen=pg.mkPen(colour, width=width), name=name,
                           connect="finite" if gaps else "all", skipFiniteCheck=not gaps)
    target.addItem(item)
    # After addItem: a PlotItem imposes its own (off) downsampling on the items it adopts.
    item.setDownsampling(auto=True, method="peak")
    item.setClipToView(True)
    return item


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
    line = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(COLOURS["cursor"], width=1,
                                                                 style=QtCore.Qt.PenStyle.DashLine))
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
