"""The set-up a stored run was made with, read from its start and stop documents (read-only).

Shown in place of the set-up panel while the window shows a stored run, so what is on the left
belongs to the run on the right: profile, instruments and their schedules, sample, protocol,
clock speed, and how the run ended. Runs imported from files lack most of these keys: only what
the documents hold is shown (profile and protocol read "—" when absent).
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from .formatting import DASH, duration_text, fmt, missing, time_text
from .setup_panel import SAMPLE_FIELDS

BANNER_STYLE = "background: #e8eef8; border: 1px solid #1f4e9c; border-radius: 3px; padding: 4px 6px"
# start-document keys shown in their own place (the rest are listed under "Other keys")
SHOWN = {
    "uid",
    "time",
    "scan_id",
    "plan_name",
    "sample",
    "profile",
    "protocol",
    "protocol_file",
    "instruments",
    "schedules",
    "detectors",
    "clock_speed",
    "total_steps",
    "total_cycles",
    "capacity_mAh",
    "imported_from",
    "imported_at",
    "hints",
}
ELIDE = 160  # characters of an "other" value shown (all of it in the tooltip)


def schedule_text(rules) -> str:
    """A detector's schedule rules (``plans/schedules.describe``) as ``every_s: 60; at: step_end``."""
    if not isinstance(rules, list):
        return fmt(rules)
    parts = []
    for rule in rules:
        if isinstance(rule, dict):
            parts.append(
                ", ".join(f"{k}: {fmt(v)}" for k, v in rule.items() if not (k == "hold" and v in ("none", None)))
            )
        else:
            parts.append(fmt(rule))
    return "; ".join(parts) or DASH


def _value_label(text: str, tooltip: str = "") -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setToolTip(tooltip)
    return label


def _clear(form: QtWidgets.QFormLayout) -> None:
    while form.rowCount():
        form.removeRow(0)


class StoredSetupPanel(QtWidgets.QWidget):
    back_clicked = QtCore.Signal()  # "set-up for a new run": leave the stored run

    def __init__(self):
        super().__init__()
        self.shown: dict[str, str] = {}  # "section.field" -> text, for tests and tooltips
        self.banner = QtWidgets.QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet(BANNER_STYLE)
        self.back = QtWidgets.QPushButton("← Set-up for a new run")
        self.back.setToolTip("Leave the stored run: the set-up panel, with your choices, and the live view")
        self.back.clicked.connect(self.back_clicked.emit)

        self.run_form, run_box = self._form_box("Run")
        self.profile_form, profile_box = self._form_box("Profile and instruments")
        self.instruments = QtWidgets.QTableWidget(0, 4)
        self.instruments.setHorizontalHeaderLabels(["instrument", "kind", "backend", "schedule"])
        self.instruments.verticalHeader().hide()
        self.instruments.horizontalHeader().setStretchLastSection(True)
        self.instruments.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        profile_box.layout().addWidget(self.instruments)
        self.sample_form, sample_box = self._form_box("Sample")
        self.protocol_form, protocol_box = self._form_box("Protocol")
        self.protocol_note = QtWidgets.QLabel()
        self.protocol_note.setWordWrap(True)
        self.protocol_note.setStyleSheet("color: #555")
        self.protocol_text = QtWidgets.QPlainTextEdit(readOnly=True)
        self.protocol_text.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.protocol_text.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
        self.protocol_text.setMinimumHeight(120)
        protocol_box.layout().addWidget(self.protocol_note)
        protocol_box.layout().addWidget(self.protocol_text, 1)
        self.other_form, self.other_box = self._form_box("Other keys of the start document")

        content = QtWidgets.QWidget()
        cl = QtWidgets.QVBoxLayout(content)
        cl.setContentsMargins(0, 0, 0, 0)
        for box in (run_box, profile_box, sample_box, protocol_box, self.other_box):
            cl.addWidget(box)
        cl.addStretch(1)
        self._content = cl  # the protocol's text, when shown, takes the height left
        scroll = QtWidgets.QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        scroll.setWidget(content)
        lay = QtWidgets.QVBoxLayout(self)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(self.banner, 1)
        top.addWidget(self.back)
        lay.addLayout(top)
        lay.addWidget(scroll, 1)

    @staticmethod
    def _form_box(title: str):
        box = QtWidgets.QGroupBox(title)
        v = QtWidgets.QVBoxLayout(box)
        form = QtWidgets.QFormLayout()
        form.setVerticalSpacing(3)
        v.addLayout(form)
        return form, box

    def _row(self, form, key: str, label: str, text: str, tooltip: str = "") -> None:
        self.shown[key] = text
        form.addRow(label, _value_label(text, tooltip))

    # -- showing a run -----------------------------------------------------------------------
    def show_run(self, start: dict, stop: dict | None) -> None:
        start = dict(start or {})
        self.shown = {}
        for form in (self.run_form, self.profile_form, self.sample_form, self.protocol_form, self.other_form):
            _clear(form)
        scan, uid = fmt(start.get("scan_id"), "d"), str(start.get("uid") or "")
        self.banner.setText(
            f"<b>Stored run {html.escape(scan)} · {html.escape(uid[:8]) or DASH}</b><br>"
            "the set-up it was made with, from its start document (read-only)"
        )
        self._show_run_rows(start, stop)
        self._show_profile(start)
        self._show_sample(start.get("sample"))
        self._show_protocol(start)
        self._show_other(start)

    def _show_run_rows(self, start, stop):
        f = self.run_form
        self._row(f, "run.scan_id", "scan", fmt(start.get("scan_id"), "d"))
        self._row(f, "run.uid", "uid", fmt(start.get("uid")))
        self._row(f, "run.plan", "plan", fmt(start.get("plan_name")))
        self._row(f, "run.started", "started", time_text(start.get("time")))
        if stop:
            status = fmt(stop.get("exit_status"))
            if stop.get("reason"):
                status += f": {fmt(stop['reason'])}"
            self._row(f, "run.ended", "ended", status)
            t0, t1 = start.get("time"), stop.get("time")
            wall = None if missing(t0) or missing(t1) else float(t1) - float(t0)
            self._row(f, "run.duration", "duration", f"{duration_text(wall)} wall")
        else:
            self._row(f, "run.ended", "ended", "no stop document (still running, or interrupted)")
        if "clock_speed" in start:
            self._row(f, "run.clock_speed", "clock speed", fmt(start["clock_speed"], ".10g", "×"))
        if "imported_from" in start:
            source = fmt(start["imported_from"])
            if start.get("source_format"):
                source += f" ({fmt(start['source_format'])})"
            self._row(f, "run.imported_from", "imported from", source)
        if "imported_at" in start:
            self._row(f, "run.imported_at", "imported at", time_text(start["imported_at"]))

    def _show_profile(self, start):
        self._row(self.profile_form, "profile.name", "profile", fmt(start.get("profile") or None))
        instruments = start.get("instruments") if isinstance(start.get("instruments"), dict) else {}
        schedules = start.get("schedules") if isinstance(start.get("schedules"), dict) else {}
        rows = [(name, info if isinstance(info, dict) else {}) for name, info in instruments.items()]
        rows += [(name, {}) for name in schedules if name not in instruments]  # a stream of its own name
        self.instruments.setRowCount(len(rows))
        for r, (name, info) in enumerate(rows):
            values = [
                name,
                fmt(info.get("kind")),
                fmt(info.get("backend")),
                schedule_text(schedules[name]) if name in schedules else "",
            ]
            for c, text in enumerate(values):
                self.instruments.setItem(r, c, QtWidgets.QTableWidgetItem(text))
            self.shown[f"instruments.{name}"] = " · ".join(values[1:])
        t = self.instruments
        t.setVisible(bool(rows))
        t.resizeColumnsToContents()
        t.resizeRowsToContents()
        fit = (
            t.horizontalHeader().sizeHint().height()
            + 2 * t.frameWidth()
            + 2
            + sum(t.rowHeight(r) for r in range(t.rowCount()))
        )
        t.setMaximumHeight(min(fit, 160))

    def _show_sample(self, sample):
        if not isinstance(sample, dict):
            sample = {} if missing(sample) else {"name": sample}
        labels = dict(SAMPLE_FIELDS)
        keys = [k for k, _ in SAMPLE_FIELDS if k in sample] + [k for k in sample if k not in labels]
        for key in keys:
            self._row(self.sample_form, f"sample.{key}", labels.get(key, key), fmt(sample[key]))
        if not keys:
            self._row(self.sample_form, "sample.name", "name", DASH)

    def _show_protocol(self, start):
        f = self.protocol_form
        self._row(f, "protocol.name", "protocol", fmt(start.get("protocol") or None))
        path = start.get("protocol_file")
        if "protocol_file" in start:
            self._row(f, "protocol.file", "file", fmt(path or None))
        if "total_steps" in start or "total_cycles" in start:
            steps, cycles = fmt(start.get("total_steps"), "d"), fmt(start.get("total_cycles"), "d")
            self._row(f, "protocol.steps", "steps, cycles", f"{steps} steps, {cycles} cycles")
        if "capacity_mAh" in start:
            self._row(f, "protocol.capacity", "cell capacity", fmt(start["capacity_mAh"], ".4g", "mAh"))
        text = None
        if path:
            try:
                text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                note = f"The protocol file cannot be read here ({type(exc).__name__})."
            else:
                note = "The protocol file as it is on disk now (the run recorded its path, not its text):"
        else:
            note = "This run recorded no protocol file."
        self.protocol_note.setText(note)
        self.protocol_text.setPlainText(text or "")
        self.protocol_text.setVisible(text is not None)
        self._content.setStretch(3, int(text is not None))
        self._content.setStretch(self._content.count() - 1, int(text is None))

    def _show_other(self, start):
        skip = SHOWN | ({"source_format"} if "imported_from" in start else set())  # shown with it
        keys = [k for k in start if k not in skip]
        for key in keys:
            full = fmt(start[key])
            text = full if len(full) <= ELIDE else full[:ELIDE] + " …"
            self._row(self.other_form, f"other.{key}", key, text, full if text != full else "")
        self.other_box.setVisible(bool(keys))
