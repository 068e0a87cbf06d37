"""The SKPM map panel's interface fit: for a CPD map, the mean profile of its finished lines and
the fitted step (``analysis.skpm_profile``: the same fit as ``operando analyse``, apparent width,
no tip deconvolution) drawn on the panel's profile plot, with the step and width as text.

A fit costs ~10–50 ms (and lmfit's import ~1.4 s, once per process), so it is not done while a
frame is drawn: ``SETTLE_MS`` later, once per frame, in the GUI thread; the result is kept per
(stream, key, frame)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from operando.analysis.skpm_profile import ProfileError, fit_interface_step, line_profile, step_model

from .formatting import fmt
from .model import key_ending

SETTLE_MS = 300


class ProfileFit:
    def __init__(self, profile_plot: pg.PlotWidget, label: QtWidgets.QLabel):
        self.mean = pg.PlotDataItem(pen=pg.mkPen("#888888", width=1))
        self.fit_curve = pg.PlotDataItem(pen=pg.mkPen("#c0392b", width=1.5, style=QtCore.Qt.PenStyle.DashLine))
        profile_plot.addItem(self.mean)
        profile_plot.addItem(self.fit_curve)
        self.label = label
        self.text = ""  # what the label shows (the tests read it)
        self.result = None  # the InterfaceStep shown, or None
        self._key = None  # (stream, key, frame) fitted or waiting
        self._pending = None
        self._timer = QtCore.QTimer()
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._fit)

    def clear(self) -> None:
        self._timer.stop()
        self._key, self._pending, self.result, self.text = None, None, None, ""
        self.mean.setData([], [])
        self.fit_curve.setData([], [])
        self.label.setText("")

    def show(self, stream, key: str, index: int, frame: np.ndarray) -> None:
        """A CPD map's fit (after ``SETTLE_MS``); anything else clears it."""
        width_key = key_ending(stream.configuration, "width")
        if not key.endswith("-cpd") or width_key is None:
            self.clear()
            return
        wanted = (stream.name, key, index)
        if wanted == self._key:
            return
        self.clear()
        self._key = wanted
        self._pending = (np.asarray(frame, float), float(stream.configuration[width_key]))
        self.label.setText("fitting the interface step…")
        self._timer.start(SETTLE_MS)

    def _fit(self) -> None:
        if self._pending is None:
            return
        frame, width_m = self._pending
        self._pending = None
        try:
            x, mean, sem = line_profile(frame, width_m)
            fit = fit_interface_step(x, mean, sem)
        except ProfileError as exc:
            self.text = f"no interface fit: {exc}"
            self.label.setText(self.text)
            return
        px = np.arange(frame.shape[1])
        self.mean.setData(px, mean)
        self.fit_curve.setData(px, step_model(x, fit.offset_V, fit.step_V, fit.centre_m, fit.width_m))
        self.result = fit
        self.text = (
            f"interface: step {fmt(fit.step_V, '+.4f')} ± {fmt(fit.step_err, '.4f', 'V')}, "
            f"space-charge width {fmt(fit.width_m * 1e9, '.2f')} ± {fmt(fit.width_err * 1e9, '.2f', 'nm')} "
            f"(apparent), centre {fmt(fit.centre_m * 1e9, '+.1f', 'nm')} — "
            "mean of the finished lines (grey), fit (dashed)"
        )
        self.label.setText(self.text)
