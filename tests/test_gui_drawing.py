"""Cheap drawing paths of the GUI: thinned capacity curves and opaque grid lines."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402

from operando.gui.curves import thin_monotonic  # noqa: E402


def test_thin_monotonic_keeps_every_bins_extremes():
    rng = np.random.default_rng(3)
    x = np.cumsum(rng.uniform(0, 1, 20_000))
    y = np.sin(x / 300) + rng.normal(0, 0.05, len(x))
    tx, ty = thin_monotonic(x, y, bins=500)
    assert len(tx) <= 2 * 500 + 1
    assert np.all(np.diff(tx) >= 0)
    assert ty.min() == y.min() and ty.max() == y.max()
    assert (tx[0], ty[-1], tx[-1]) == (x[0], y[-1], x[-1])
    # each x bin's lowest and highest sample are among the points drawn
    edges = x[0] + (x[-1] - x[0]) * np.arange(1, 500) / 500
    k = 137
    inside = (x >= edges[k - 1]) & (x < edges[k])
    assert y[inside].min() in ty and y[inside].max() in ty


def test_thin_monotonic_leaves_short_or_backward_pieces():
    x = np.linspace(0, 1, 100)
    y = x**2
    assert thin_monotonic(x, y, bins=100)[0] is x  # no more points than 2 per bin: as it is
    assert len(thin_monotonic(x, y, bins=10)[0]) == 21
    back = np.r_[np.linspace(0, 1, 5000), np.linspace(1, 0.5, 5000)]  # a CV's capacity turns back
    assert thin_monotonic(back, back, bins=100)[0] is back


def test_grid_lines_are_opaque_and_look_like_the_translucent_ones(qtbot):
    from operando.gui.plots import configure, plot

    configure()
    w = plot("t", "x", "y")
    qtbot.addWidget(w)
    w.resize(400, 300)
    w.getPlotItem().setXRange(0, 10)
    axis = w.getPlotItem().getAxis("bottom")
    image = w.grab()  # lays out and paints once
    assert not image.isNull()
    from PySide6 import QtGui

    canvas = QtGui.QImage(10, 10, QtGui.QImage.Format.Format_ARGB32)  # kept alive while painted on
    painter = QtGui.QPainter(canvas)
    try:
        _, ticks, _ = axis.generateDrawSpecs(painter)
        # the same lines, translucent, as pyqtgraph draws them
        _, translucent, _ = super(type(axis), axis).generateDrawSpecs(painter)
    finally:
        painter.end()
    assert ticks, "the grid has lines"
    assert all(pen.color().alpha() == 255 for pen, _, _ in ticks)
    # each opaque colour is the translucent one blended over the white background
    for (flat, *_), (faint, *_) in zip(ticks, translucent):
        a = faint.color().alphaF()
        assert a < 1
        expect = round(a * faint.color().red() + (1 - a) * 255)
        assert abs(flat.color().red() - expect) <= 1
