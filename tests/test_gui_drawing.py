"""Cheap drawing paths of the GUI: thinned capacity curves, major grid lines, dirty panels."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

from operando.gui.curves import thin_monotonic

pytestmark = pytest.mark.usefixtures("gc_on_the_gui_thread")


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


def test_grid_has_the_major_lines_only(qtbot):
    from PySide6 import QtGui

    from operando.gui.plots import configure, plot

    configure()
    w = plot("t", "x", "y")
    qtbot.addWidget(w)
    w.resize(400, 300)
    w.getPlotItem().setXRange(0, 10, padding=0)
    assert not w.grab().isNull()  # lays out and paints once
    axis = w.getPlotItem().getAxis("bottom")
    canvas = QtGui.QImage(10, 10, QtGui.QImage.Format.Format_ARGB32)  # kept alive while painted on
    painter = QtGui.QPainter(canvas)
    try:
        _, ours, _ = axis.generateDrawSpecs(painter)
        _, every, _ = super(type(axis), axis).generateDrawSpecs(painter)  # pyqtgraph's own
    finally:
        painter.end()
    levels = list(dict.fromkeys(id(pen) for pen, _, _ in every))
    assert len(levels) >= 2 and len(ours) < len(every)  # there were minor lines, and they are gone
    major = [(p1.x(), p2.x()) for pen, p1, p2 in every if id(pen) == levels[0]]
    assert [(p1.x(), p2.x()) for _, p1, p2 in ours] == major  # every major line is kept, as it was
    assert len(major) >= 3  # 0 .. 10: a readable grid
    item = w.getPlotItem()
    assert item.getAxis("left").isVisible() and not item.getAxis("top").isVisible()
    assert not item.getAxis("right").isVisible()  # shown only by right_axis()


def test_detector_panels_redraw_on_new_frames_not_on_new_echem_rows(qtbot):
    from operando.gui.model import RunData
    from operando.gui.panels_detectors import MapPanel, RamanPanel
    from operando.gui.panels_echem import EchemTimePanel
    from operando.gui.plots import configure

    configure()
    data = RunData()
    data.set_start({"uid": "x"})
    data.add_stream(
        "echem", {k: {"dtype": "number", "shape": []} for k in ("timestamp", "Ewe", "I", "cycle", "step", "charge")}
    )
    data.add_stream(
        "raman",
        {
            "raman-spectrum": {"dtype": "array", "shape": [16]},
            "raman-exposure_start": {"dtype": "number", "shape": []},
            "raman-exposure_end": {"dtype": "number", "shape": []},
        },
        {"raman-raman_shift": np.linspace(200, 1800, 16)},
    )

    def echem_rows(t):
        data.append(
            "echem",
            {
                "timestamp": t,
                "Ewe": 3 + 0 * t,
                "I": 1e-3 + 0 * t,
                "cycle": 1 + 0 * t,
                "step": 1 + 0 * t,
                "charge": 1e-3 * t,
            },
        )

    def spectrum(t):
        data.append(
            "raman",
            {
                "raman-spectrum": np.arange(16.0)[None] * t,
                "raman-exposure_start": [t - 1],
                "raman-exposure_end": [t + 1],
                "time": [t],
            },
        )

    echem_rows(np.arange(0.0, 100.0))
    spectrum(50.0)
    panels = [RamanPanel(), MapPanel(), EchemTimePanel()]
    for p in panels:
        qtbot.addWidget(p)
        p.show()
        assert p.refresh(data)
    raman, map_, echem = panels
    echem_rows(np.arange(100.0, 150.0))
    assert [p.refresh(data) for p in panels] == [False, False, True]  # only E/I has something new
    spectrum(120.0)
    assert [p.refresh(data) for p in panels] == [True, True, True]
    assert raman.shown_row == 1
    data.cursor = 60.0
    assert raman.refresh(data) and raman.shown_row == 0  # the cursor's spectrum
