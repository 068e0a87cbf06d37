"""Set-up: profile and instruments, sample form, protocol editor, detector schedules, duration.

Everything is checked by the same code the CLI uses (``load_profile``, ``load_protocol``,
``check_run``, which also checks what the protocol and the profile ask of each instrument
against what its backend can do): problems appear at the field — a red sample field with the message, or the
protocol line marked with its message — and Start stays disabled until there are none.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from pydantic import ValidationError
from PySide6 import QtCore, QtGui, QtWidgets

from operando.acquisition.config import (
    ConfigError,
    Profile,
    Sample,
    list_profiles,
    list_protocols,
    load_profile,
    load_protocol,
)
from operando.acquisition.prepare import check_run

from .formatting import duration_text, fmt
from .validation import Problem, locate

SAMPLE_FIELDS = [
    ("name", "name"),
    ("material", "material"),
    ("active_mass_g", "active mass / g"),
    ("theoretical_capacity_mAh_g", "capacity / mAh g⁻¹"),
    ("electrolyte", "electrolyte"),
    ("cell_type", "cell type"),
    ("operator", "operator"),
    ("notes", "notes"),
    ("tags", "tags"),
]
DEFAULT_PROFILE = "sim"  # the profile `operando run` uses when none is given
ERROR_STYLE = "border: 1px solid #c0392b; background: #fdecea"


class SetupPanel(QtWidgets.QWidget):
    validity_changed = QtCore.Signal(bool)

    def __init__(self):
        super().__init__()
        self.profile: Profile | None = None
        self.protocol = None
        self.steps = None
        self.checked = None  # what check_run found for the form's profile and protocol
        self._loaded_text = ""
        self._tmp = tempfile.TemporaryDirectory(prefix="operando-gui-")
        self.problems: list[Problem] = []
        self.sample_errors: dict[str, str] = {}

        self.profile_box = QtWidgets.QComboBox()
        self.profile_box.addItems(list_profiles())
        self.profile_box.setCurrentText(DEFAULT_PROFILE)  # as `operando run`; the first one if absent
        self.profile_box.currentTextChanged.connect(self.load_profile)
        self.instruments = QtWidgets.QTableWidget(0, 6)
        self.instruments.setHorizontalHeaderLabels(
            ["instrument", "kind", "backend", "status", "limits / settings", "period / s"]
        )
        self.instruments.verticalHeader().hide()
        self.instruments.horizontalHeader().setStretchLastSection(True)
        self.instruments.setMaximumHeight(130)

        self.sample_edits: dict[str, QtWidgets.QLineEdit] = {}
        form = QtWidgets.QFormLayout()
        form.setVerticalSpacing(3)
        for key, label in SAMPLE_FIELDS:
            edit = QtWidgets.QLineEdit()
            edit.textEdited.connect(lambda *_: self._schedule_check())
            self.sample_edits[key] = edit
            form.addRow(label, edit)
        self.sample_message = QtWidgets.QLabel()
        self.sample_message.setStyleSheet("color: #c0392b")
        self.sample_message.setWordWrap(True)

        self.protocol_box = QtWidgets.QComboBox()
        self.protocol_box.addItems(list_protocols())
        self.protocol_box.setCurrentText("galvanostatic_cycling")
        self.protocol_box.currentTextChanged.connect(self.load_protocol)
        open_button = QtWidgets.QPushButton("Open…")
        open_button.clicked.connect(self._open_protocol_file)
        self.editor = QtWidgets.QPlainTextEdit()
        self.editor.setFont(QtGui.QFontDatabase.systemFont(QtGui.QFontDatabase.SystemFont.FixedFont))
        self.editor.setLineWrapMode(QtWidgets.QPlainTextEdit.LineWrapMode.NoWrap)
        self.editor.textChanged.connect(self._schedule_check)
        self.problem_list = QtWidgets.QListWidget()
        self.problem_list.setMaximumHeight(80)
        self.problem_list.itemClicked.connect(self._goto_problem)
        self.estimate = QtWidgets.QLabel()
        self.speed = QtWidgets.QDoubleSpinBox()
        self.speed.setRange(1, 1e6)
        self.speed.setDecimals(0)
        self.speed.setSuffix(" ×")
        self.speed.valueChanged.connect(lambda *_: self.check())  # a speed may not suit hardware

        self._timer = QtCore.QTimer(self, singleShot=True, interval=300)
        self._timer.timeout.connect(self.check)

        lay = QtWidgets.QVBoxLayout(self)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Profile"))
        row.addWidget(self.profile_box, 1)
        lay.addLayout(row)
        lay.addWidget(self.instruments)
        sample_box = QtWidgets.QGroupBox("Sample")
        sl = QtWidgets.QVBoxLayout(sample_box)
        sl.addLayout(form)
        sl.addWidget(self.sample_message)
        lay.addWidget(sample_box)
        proto_box = QtWidgets.QGroupBox("Protocol")
        pl = QtWidgets.QVBoxLayout(proto_box)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.protocol_box, 1)
        row.addWidget(open_button)
        pl.addLayout(row)
        pl.addWidget(self.editor, 1)
        pl.addWidget(self.problem_list)
        lay.addWidget(proto_box, 1)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Clock speed (sim)"))
        row.addWidget(self.speed)
        row.addStretch(1)
        lay.addLayout(row)
        lay.addWidget(self.estimate)

        self.load_profile(self.profile_box.currentText())
        self.load_protocol(self.protocol_box.currentText())

    # -- loading -----------------------------------------------------------------------------
    def load_profile(self, name_or_path) -> None:
        try:
            self.profile = load_profile(name_or_path)
        except ConfigError as exc:
            self.profile = None
            self.sample_message.setText(str(exc))
            self.validity_changed.emit(False)
            return
        s = self.profile.sample
        for key, edit in self.sample_edits.items():
            value = getattr(s, key)
            edit.setText(fmt(value, "", dash=""))  # editable: all digits; empty, not "—", when unset
        self.speed.setValue(self.profile.sim.speed if self.profile.sim else 1)
        self._fill_instruments()
        self.check()

    def load_protocol(self, name_or_path) -> None:
        try:
            path = load_protocol(name_or_path).source
        except ConfigError as exc:  # show the file anyway, so it can be fixed here
            path = Path(str(name_or_path))
            if not path.is_file():
                self.problem_list.clear()
                self.problem_list.addItem(str(exc))
                return
        self._loaded_text = Path(path).read_text(encoding="utf-8")
        self._loaded_path = Path(path)
        self.editor.setPlainText(self._loaded_text)
        self.check()

    def _open_protocol_file(self):
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self, "Protocol", "", "YAML (*.yaml *.yml)")
        if path:
            self.load_protocol(path)

    def set_connection(self, states: dict[str, str]) -> None:
        for r in range(self.instruments.rowCount()):
            name = self.instruments.item(r, 0).text()
            self.instruments.setItem(r, 3, QtWidgets.QTableWidgetItem(states.get(name, "not connected")))

    def _fill_instruments(self):
        items = list(self.profile.instruments.items())
        self.instruments.setRowCount(len(items))
        self.period_spins = {}
        for r, (name, inst) in enumerate(items):
            if inst.limits:
                lim = inst.limits
                detail = f"E {fmt(lim.e_min_V)}–{fmt(lim.e_max_V, 'g', 'V')}, |I| ≤ {fmt(lim.i_max_A * 1e3, 'g', 'mA')}"
            else:
                detail = fmt({k: v for k, v in (inst.settings or {}).items() if k != "period_s"})
            status = "not connected" if inst.enabled else "disabled"
            for c, text in enumerate([name, inst.kind, inst.backend, status, detail]):
                self.instruments.setItem(r, c, QtWidgets.QTableWidgetItem(text))
            if inst.kind in ("magnetometer", "raman", "skpm"):
                spin = QtWidgets.QDoubleSpinBox()
                spin.setRange(0.1, 1e6)
                spin.setValue(float((inst.settings or {}).get("period_s", 60)))
                spin.valueChanged.connect(lambda *_: self._schedule_check())
                self.instruments.setCellWidget(r, 5, spin)
                self.period_spins[name] = spin
        self.instruments.resizeColumnsToContents()

    # -- checking ----------------------------------------------------------------------------
    def _schedule_check(self):
        self._timer.start()

    def edited_profile(self) -> Profile | None:
        """The loaded profile with the form's sample and schedules; errors shown at the fields."""
        if self.profile is None:
            return None
        values = {}
        for key, edit in self.sample_edits.items():
            text = edit.text().strip()
            if key == "tags":
                values[key] = [t.strip() for t in text.split(",") if t.strip()]
            elif text or key not in ("notes",):
                values[key] = text
        values["sim_preset"] = self.profile.sample.sim_preset
        self.sample_errors = {}
        try:
            sample = Sample.model_validate(values)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                self.sample_errors[str(err["loc"][0])] = err["msg"]
            sample = None
        for key, edit in self.sample_edits.items():
            edit.setStyleSheet(ERROR_STYLE if key in self.sample_errors else "")
            edit.setToolTip(self.sample_errors.get(key, ""))
        where = self.profile.source or self.profile.name
        self.sample_message.setText("\n".join(f"{where}: sample.{k}: {m}" for k, m in self.sample_errors.items()))
        if sample is None:
            return None
        data = self.profile.model_dump(mode="json")
        data["sample"] = sample.model_dump(mode="json")
        for name, spin in getattr(self, "period_spins", {}).items():
            data["instruments"][name].setdefault("settings", {})["period_s"] = spin.value()
        profile = Profile.model_validate(data)
        profile._source = self.profile.source
        return profile

    def edited_protocol_path(self) -> Path:
        """The file to load: the loaded one if unchanged, else the editor's text in a temp file."""
        text = self.editor.toPlainText()
        if text == self._loaded_text and getattr(self, "_loaded_path", None):
            return self._loaded_path
        path = Path(self._tmp.name) / f"{getattr(self, '_loaded_path', Path('protocol')).stem}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    def check(self) -> bool:
        """Validate everything; show problems at their fields; return True if ready to start."""
        self.protocol = self.steps = self.checked = None
        self.problems = []
        profile = self.edited_profile()
        path = self.edited_protocol_path()
        try:
            protocol = load_protocol(path)
            if profile is not None:
                self.checked = check_run(profile, protocol, speed=self.speed.value())
                self.steps = self.checked.steps
            self.protocol = protocol
        except ConfigError as exc:
            self.problems = locate(exc.problems, str(path), self.editor.toPlainText())
        self._show_problems()
        self._show_estimate()
        ok = profile is not None and self.steps is not None
        self.validity_changed.emit(ok)
        return ok

    def _show_problems(self):
        self.problem_list.clear()
        marks = []
        for p in self.problems:
            where = f"line {p.line}: " if p.line else ""
            item = QtWidgets.QListWidgetItem(f"⚠ {where}{p.field + ': ' if p.field else ''}{p.message}")
            item.setForeground(QtGui.QColor("#c0392b"))
            item.setData(QtCore.Qt.ItemDataRole.UserRole, p.line)
            self.problem_list.addItem(item)
            if p.line:
                sel = QtWidgets.QTextEdit.ExtraSelection()
                sel.format.setBackground(QtGui.QColor("#fdecea"))
                sel.format.setProperty(QtGui.QTextFormat.Property.FullWidthSelection, True)
                sel.format.setToolTip(p.message)
                sel.cursor = QtGui.QTextCursor(self.editor.document().findBlockByLineNumber(p.line - 1))
                marks.append(sel)
        if not self.problems:
            self.problem_list.addItem("✓ protocol valid for this sample and these limits")
        self.editor.setExtraSelections(marks)

    def _goto_problem(self, item):
        line = item.data(QtCore.Qt.ItemDataRole.UserRole)
        if line:
            cursor = QtGui.QTextCursor(self.editor.document().findBlockByLineNumber(line - 1))
            self.editor.setTextCursor(cursor)
            self.editor.setFocus()

    def _show_estimate(self):
        if not self.steps or self.checked is None:
            self.estimate.setText("Estimated duration: —")
            return
        seconds = self.checked.total_s
        speed = self.speed.value()
        self.estimate.setText(
            f"<b>{len(self.steps)} steps, {max(s.cycle for s in self.steps)} cycles</b> · "
            f"estimated {duration_text(seconds)} experiment time"
            + (f" · {duration_text(seconds / speed)} wall at {fmt(speed)}×" if speed != 1 else "")
        )

    def selection(self):
        """(profile, protocol) to run, or None if something is wrong."""
        if not self.check():
            return None
        return self.edited_profile(), self.protocol

    def protocol_for_run(self, data_dir: Path):
        """The protocol to run; an edited one is first saved under ``data_dir/protocols`` so the
        run's ``protocol_file`` points at a file that stays."""
        path = self.edited_protocol_path()
        if path.parent != Path(self._tmp.name):
            return load_protocol(path)
        keep = Path(data_dir) / "protocols" / f"{dt.datetime.now():%Y%m%d-%H%M%S}-{path.name}"
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        return load_protocol(keep)
