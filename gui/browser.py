"""Run browser: search the catalog by sample, plan, status and date; open a run."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from .formatting import duration_text, fmt, time_text
from .stored import search_runs

COLUMNS = ["scan", "uid", "start", "plan", "sample", "duration", "status"]


class BrowserPanel(QtWidgets.QWidget):
    open_requested = QtCore.Signal(str)  # uid

    def __init__(self, client_factory):
        super().__init__()
        self._client_factory = client_factory  # opens the catalog on first use
        self.rows = []
        self.text = QtWidgets.QLineEdit(placeholderText="sample or uid contains…")
        self.plan = QtWidgets.QComboBox()
        self.status = QtWidgets.QComboBox()
        self.status.addItems(["", "success", "abort", "fail", "running"])
        self.since = QtWidgets.QDateEdit(calendarPopup=True)
        self.since.setDate(QtCore.QDate(2000, 1, 1))
        self.until = QtWidgets.QDateEdit(calendarPopup=True)
        self.until.setDate(QtCore.QDate(2100, 1, 1))
        search = QtWidgets.QPushButton("Search")
        search.clicked.connect(self.search)
        self.text.returnPressed.connect(self.search)
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.cellDoubleClicked.connect(lambda r, _: self.open_row(r))
        open_button = QtWidgets.QPushButton("Open selected run")
        open_button.clicked.connect(lambda: self.open_row(self.table.currentRow()))
        form = QtWidgets.QFormLayout()
        form.addRow("sample / uid", self.text)
        form.addRow("plan", self.plan)
        form.addRow("status", self.status)
        dates = QtWidgets.QHBoxLayout()
        dates.addWidget(self.since)
        dates.addWidget(QtWidgets.QLabel("to"))
        dates.addWidget(self.until)
        form.addRow("started", dates)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(search)
        lay.addWidget(self.table, 1)
        self.notice = QtWidgets.QLabel()  # why the catalog cannot be searched now, if it cannot
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("color: #a04000")
        lay.addWidget(self.notice)
        lay.addWidget(open_button)

    def search(self) -> None:
        try:
            client = self._client_factory()
        except RuntimeError as exc:  # e.g. the catalog is being written by a run's own process
            self.table.setRowCount(0)
            self.rows = []
            self.notice.setText(str(exc))
            return
        self.notice.setText("")
        plans = sorted({r.plan for r in search_runs(client)})
        current = self.plan.currentText()
        if [self.plan.itemText(i) for i in range(self.plan.count())] != ["", *plans]:
            self.plan.clear()
            self.plan.addItems(["", *plans])
            self.plan.setCurrentText(current)
        self.rows = search_runs(
            client,
            self.text.text(),
            self.plan.currentText(),
            self.status.currentText(),
            self.since.date().toPython(),
            self.until.date().toPython(),
        )
        self.table.setRowCount(len(self.rows))
        for i, r in enumerate(self.rows):
            values = [
                fmt(r.scan_id, "d"),
                fmt(r.uid[:8] or None),
                time_text(r.start),
                fmt(r.plan),
                fmt(r.sample),
                duration_text(r.duration_s),
                fmt(r.status),
            ]
            for c, v in enumerate(values):
                self.table.setItem(i, c, QtWidgets.QTableWidgetItem(v))
        self.table.resizeColumnsToContents()

    def open_row(self, row: int) -> None:
        if 0 <= row < len(self.rows):
            self.open_requested.emit(self.rows[row].uid)
