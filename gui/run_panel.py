"""Run control: start, pause, resume, abort; progress, current cycle and step, ETA."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from .controller import ABORTING, FAILED, FINISHED, IDLE, PAUSED, PAUSING, RUNNING, STARTING, RunStatus
from .formatting import DASH, duration_text, fmt

STATE_COLOURS = {
    RUNNING: "#2a8a3e",
    PAUSED: "#b7950b",
    PAUSING: "#b7950b",
    ABORTING: "#c0392b",
    FAILED: "#c0392b",
    FINISHED: "#1f4e9c",
    STARTING: "#555",
    IDLE: "#555",
}


class RunPanel(QtWidgets.QWidget):
    start_clicked = QtCore.Signal()
    pause_clicked = QtCore.Signal()
    resume_clicked = QtCore.Signal()
    abort_clicked = QtCore.Signal()

    def __init__(self):
        super().__init__()
        self.start = QtWidgets.QPushButton("▶ Start")
        self.pause = QtWidgets.QPushButton("❚❚ Pause")
        self.resume = QtWidgets.QPushButton("▶ Resume")
        self.abort = QtWidgets.QPushButton("■ Abort")
        self.abort.setStyleSheet("QPushButton:enabled { color: #c0392b; font-weight: 600 }")
        for button, signal in (
            (self.start, self.start_clicked),
            (self.pause, self.pause_clicked),
            (self.resume, self.resume_clicked),
            (self.abort, self.abort_clicked),
        ):
            button.clicked.connect(signal.emit)
        self.state = QtWidgets.QLabel()
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p%")
        self.detail = QtWidgets.QLabel()
        self.detail.setStyleSheet("color: #333")
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(6, 2, 6, 2)
        for w in (self.start, self.pause, self.resume, self.abort):
            lay.addWidget(w)
        lay.addSpacing(12)
        lay.addWidget(self.state)
        lay.addWidget(self.progress, 1)
        lay.addWidget(self.detail, 2)
        self.ready = False
        self.show_status(RunStatus())

    def show_status(self, s: RunStatus) -> None:
        active = s.state in (STARTING, RUNNING, PAUSING, PAUSED, ABORTING)
        self.start.setEnabled(self.ready and not active)
        self.pause.setEnabled(s.state == RUNNING and s.can_pause)
        self.pause.setToolTip("" if s.can_pause else "this potentiostat cannot hold the cell: abort instead")
        self.resume.setEnabled(s.state == PAUSED)
        self.abort.setEnabled(s.state in (RUNNING, PAUSING, PAUSED))
        colour = STATE_COLOURS.get(s.state, "#555")
        self.state.setText(f"<b style='color:{colour}'>{s.state.upper()}</b>")
        self.state.setToolTip(s.message)
        p = s.progress
        if p is None:
            self.progress.setValue(0)
            self.detail.setText(s.message)
            return
        frac = min(p.elapsed_s / s.total_s, 1.0) if s.total_s else 0.0
        if s.state == FINISHED:
            frac = 1.0
        self.progress.setValue(int(frac * 1000))
        eta = max((s.total_s or 0) - p.elapsed_s, 0) / (s.speed or 1)
        frames = "  ".join(f"{k} {fmt(v, 'd')}" for k, v in p.frames.items())
        self.detail.setText(
            f"cycle {fmt(p.cycle, 'd')}  step {fmt(p.step, 'd')}/{fmt(p.total_steps, 'd')}  ·  "
            f"{fmt(p.samples, ',')} samples  ·  {frames}  ·  "
            f"{duration_text(p.elapsed_s)} elapsed  ·  ETA {duration_text(eta) if active else DASH}"
            + (f"  ·  {s.message}" if s.state in (FAILED, PAUSED) else "")
        )
