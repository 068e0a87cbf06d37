"""`operando analyse RUN` of a several-cell run without ``--cell``: one table of every cell's
cycles (capacity in mAh and mAh g⁻¹ of its own active mass, coulombic and energy efficiency),
how each cell ended, and one figure overlaying the cells' discharge capacity per cycle.

Each cell is read as a one-cell run (``run_cells.CellRun``) and its cycles come from the same
``galvanostatic_cycles`` as a one-cell run's cycling table; ``--cell`` gives the full analysis
of one cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from .cycling import CycleMetrics
from .run_analysis import echem_cycling
from .run_cells import cell_outcomes, cell_runs
from .run_cycling import cycling_json


@dataclass
class CellCycling:
    cell: str
    sample: str
    status: str  # completed | fault | stopped | no outcome
    reason: str
    active_mass_g: float | None
    cycles: list[CycleMetrics] = field(default_factory=list)
    note: str = ""  # why there are no cycles


@dataclass
class CellsCycling:
    run_label: str
    cells: list[CellCycling]


def _mass(sample) -> float | None:
    mass = sample.get("active_mass_g") if isinstance(sample, dict) else None
    return float(mass) if isinstance(mass, (int, float)) and mass > 0 else None


def analyse_cells(run) -> CellsCycling:
    """Every cell's galvanostatic cycles; a cell without echem data gets a note instead."""
    start = run.metadata["start"]
    outcomes = cell_outcomes(run)
    out = []
    for cell, view in cell_runs(run).items():
        sample = view.metadata["start"].get("sample") or {}
        ended = outcomes.get(cell) or {"status": "no outcome", "reason": "the run did not end normally"}
        row = CellCycling(
            cell,
            str(sample.get("name", "")) if isinstance(sample, dict) else str(sample),
            str(ended["status"]),
            "" if ended["status"] == "completed" else str(ended["reason"]),
            _mass(sample),
        )
        if "echem" not in view or not list(view["echem"]):
            row.note = "no echem data"
        else:
            try:
                row.cycles = echem_cycling(view["echem"])
            except KeyError as exc:
                row.note = f"the echem stream has no {exc.args[0]!r} column"
            if not row.cycles and not row.note:
                row.note = "no galvanostatic cycle passed charge"
        out.append(row)
    return CellsCycling(f"run {str(start.get('uid', '?'))[:8]}", out)


def _num(x: float, fmt: str, scale: float = 1.0) -> str:
    return f"{x * scale:{fmt}}" if math.isfinite(x) else "-"


def format_cells_cycling(result: CellsCycling) -> str:
    n = len(result.cells)
    lines = [
        f"Cycling of {result.run_label}, {n} cells (one row per cell and cycle; `--cell NAME` analyses one cell)",
        f"  {'cell':6}  {'status':10}  {'cycle':>5}  {'Q_ch/mAh':>9}  {'Q_dis/mAh':>9}  {'Q_ch mAh/g':>10}  "
        f"{'Q_dis mAh/g':>11}  {'CE/%':>6}  {'EE/%':>6}",
    ]
    for c in result.cells:
        if not c.cycles:
            lines.append(f"  {c.cell:6}  {c.status:10}  {'-':>5}  {c.note}")
        for m in c.cycles:
            per_g = lambda q, mass=c.active_mass_g: _num(q / mass, ".1f") if mass else "-"
            lines.append(
                f"  {c.cell:6}  {c.status:10}  {m.cycle:>5}  {m.charge_mAh:9.4f}  {m.discharge_mAh:9.4f}  "
                f"{per_g(m.charge_mAh):>10}  {per_g(m.discharge_mAh):>11}  "
                f"{_num(m.coulombic_efficiency, '6.2f', 100):>6}  {_num(m.energy_efficiency, '6.2f', 100):>6}"
            )
    ended = [c for c in result.cells if c.status != "completed"]
    if ended:
        lines += ["", "Cells that did not complete:"]
        lines += [f"  {c.cell}: {c.status}: {c.reason}" for c in ended]
    lines.append("  (CE in each cycle's own order, EE = E_dis/E_ch; mAh/g: the cell's own active mass)")
    return "\n".join(lines)


def cells_cycling_json(result: CellsCycling) -> dict:
    return {
        "run": result.run_label,
        "cells": {
            c.cell: {
                "sample": c.sample,
                "status": c.status,
                "reason": c.reason,
                "active_mass_g": c.active_mass_g,
                "note": c.note,
                "cycling": cycling_json(c.cycles, c.active_mass_g),
            }
            for c in result.cells
        },
    }


def draw_cells_capacity(ax, result: CellsCycling) -> None:
    """Discharge capacity per cycle, one line per cell (mAh g⁻¹ when every cell has a mass)."""
    specific = all(c.active_mass_g for c in result.cells if c.cycles)
    for c in result.cells:
        if not c.cycles:
            continue
        q = [m.discharge_mAh / c.active_mass_g if specific else m.discharge_mAh for m in c.cycles]
        ax.plot([m.cycle for m in c.cycles], q, "o-", ms=3, lw=1, label=c.cell)
    ax.set(
        xlabel="cycle",
        ylabel="discharge / mAh g$^{-1}$" if specific else "discharge / mAh",
        title=f"Discharge capacity per cycle, {len(result.cells)} cells",
    )
    if any(c.cycles for c in result.cells):
        ax.legend(fontsize=7, ncol=2 if len(result.cells) > 8 else 1)


def write_cells_figure(result: CellsCycling, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    draw_cells_capacity(ax, result)
    fig.suptitle(f"Cells of {result.run_label}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
