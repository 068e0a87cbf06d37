"""The time bar under the panels: scrubber, replay (play/pause, speed), follow-latest."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

SPEEDS = [60, 600, 3600, 36000]  # experiment seconds per wall second
STEPS = 2000  # slider resolution


class TimeBar(QtWidgets.QWidget):
    scrubbed = QtCore.Signal(float)  # fraction 0..1 of the run
    play_toggled = QtCore.Signal(bool)
    follow_latest = QtCore.Signal()

    def __init__(self):
        super().__init__()
        self.play = QtWidgets.QPushButton("▶ Replay")
        self.play.setCheckable(True)
        self.play.toggled.connect(self._toggled)
        self.speed = QtWidgets.QComboBox()
        for s in SPEEDS:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.setCurrentIndex(2)
        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setRange(0, STEPS)
        self.slider.sliderMoved.connect(lambda v: self.scrubbed.emit(v / STEPS))
        self.latest = QtWidgets.QPushButton("⇥ Latest")
        self.latest.clicked.connect(self.follow_latest.emit)
        self.label = QtWidgets.QLabel("no run")
        self.label.setMinimumWidth(430)
        lay = QtWidgets.QHBoxLayout(self)
        lay.setContentsMargins(6, 2, 6, 2)
        lay.addWidget(self.play)
        lay.addWidget(self.speed)
        lay.addWidget(self.slider, 1)
        lay.addWidget(self.latest)
        lay.addWidget(self.label)

    @property
    def speed_value(self) -> float:
        return float(self.speed.currentData())

    def _toggled(self, on: bool):
        self.play.setText("❚❚ Pause replay" if on else "▶ Replay")
        self.play_toggled.emit(on)

    def show_position(self, fraction: float, text: str) -> None:
        if not self.slider.isSliderDown():
            self.slider.blockSignals(True)
            self.slider.setValue(int(round(max(0.0, min(1.0, fraction)) * STEPS)))
            self.slider.blockSignals(False)
        self.label.setText(text)
