"""Cycling results of the run on screen: per cycle the numbers `operando analyse` and the report
give (``analysis.cycling.galvanostatic_cycles``, formatted by ``analysis.run_cycling``), live
while a run goes on and for a stored one. A stored several-cell run adds an overlay of every
cell's discharge capacity per cycle (``analysis.cells_cycling``), one curve per cell."""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6 import QtWidgets

from operando.analysis.cells_cycling import CellsCycling
from operando.analysis.cycling import galvanostatic_cycles
from operando.analysis.run_cycling import cycling_json

from .model import RunData
from .panels_echem import Panel
from .plots import CYCLE_COLOURS, curve, plot

# (header, key in cycling_json, format, scale)
COLUMNS = (
    ("cycle", "cycle", "{:.0f}", 1),
    ("Q_ch / mAh", "charge_mAh", "{:.4f}", 1),
    ("Q_dis / mAh", "discharge_mAh", "{:.4f}", 1),
    ("Q_dis / mAh g⁻¹", "discharge_mAh_g", "{:.1f}", 1),
    ("CE / %", "coulombic_efficiency", "{:.2f}", 100),
    ("EE / %", "energy_efficiency", "{:.2f}", 100),
    ("<V> ch / V", "mean_charge_V", "{:.3f}", 1),
    ("<V> dis / V", "mean_discharge_V", "{:.3f}", 1),
    ("hysteresis / V", "hysteresis_V", "{:.3f}", 1),
    ("retention / %", "retention", "{:.2f}", 100),
)


def cycling_rows(data: RunData) -> list[dict]:
    """Per cycle the analysis' results from the run's echem rows; [] while there are none (or
    only a long stored run's overview is loaded: the table needs every row)."""
    e = data.echem
    if e is None or not e.rows or data.overview is not None:
        return []
    technique = e.data_keys.get("technique", {})
    cycles = galvanostatic_cycles(
        e["cycle"], e["I"], e["charge"], e["Ewe"], e["technique"], technique.get("choices") or []
    )
    return cycling_json(cycles, (data.start.get("sample") or {}).get("active_mass_g"))


def _cell(value, form: str, scale: float) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    return form.format(value * scale)


class CyclingPanel(Panel):
    def __init__(self):
        super().__init__()
        self.note = QtWidgets.QLabel("")
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([column[0] for column in COLUMNS])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.note)
        split = QtWidgets.QSplitter()
        split.addWidget(self.table)
        self.overlay = plot("Discharge capacity, every cell", "cycle", "Q_dis")
        self.overlay_legend = self.overlay.getPlotItem().addLegend(offset=(-4, 4), labelTextSize="8pt")
        self.overlay_curves: dict = {}  # cell -> curve
        self.overlay.hide()  # a several-cell run only
        split.addWidget(self.overlay)
        lay.addWidget(split)

    def show_cells(self, cells: CellsCycling | None, selected: str | None = None) -> None:
        """Overlay every cell's discharge capacity per cycle (mAh g⁻¹ when every cell has its
        mass), the selected cell drawn thicker; None hides the overlay (a one-cell run)."""
        for item in self.overlay_curves.values():
            self.overlay.removeItem(item)
        self.overlay_legend.clear()
        self.overlay_curves = {}
        if cells is None:
            self.overlay.hide()
            return
        drawn = [c for c in cells.cells if c.cycles]
        specific = bool(drawn) and all(c.active_mass_g for c in drawn)
        self.overlay.getPlotItem().setLabel("left", "Q_dis", units="mAh/g" if specific else "mAh")
        for i, c in enumerate(drawn):
            q = [m.discharge_mAh / c.active_mass_g if specific else m.discharge_mAh for m in c.cycles]
            item = curve(self.overlay, CYCLE_COLOURS[i % len(CYCLE_COLOURS)], name=c.cell)
            item.setData([m.cycle for m in c.cycles], q, symbol="o", symbolSize=5)
            self.overlay_curves[c.cell] = item
        self.select_cell(selected)
        self.overlay.show()

    def select_cell(self, cell: str | None) -> None:
        """The selected cell's curve thicker than the others'."""
        for name, item in self.overlay_curves.items():
            colour = item.opts["pen"].color()
            item.setPen(pg.mkPen(colour, width=3 if name == cell else 1))

    def draw(self, data):
        rows = cycling_rows(data)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, (_h, key, form, scale) in enumerate(COLUMNS):
                self.table.setItem(r, c, QtWidgets.QTableWidgetItem(_cell(row.get(key), form, scale)))
        if rows:
            order = "Q_ch/Q_dis" if rows[0]["discharge_first"] else "Q_dis/Q_ch"
            self.note.setText(f"galvanostatic steps only; CE = {order} of the same cycle, EE = E_dis/E_ch")
        elif data.overview is not None:
            self.note.setText("a long run: `operando analyse` or `operando report` give its cycling results")
        else:
            self.note.setText("no galvanostatic cycle yet")
