"""M–T and M–H magnetometry: moment against temperature (ZFC, FC) and against field, and a
Curie–Weiss fit of each M–T branch when the run's sample metadata gives molar units.

Curves are found by data keys, not instrument names: a stream with scalar keys ending
``-moment`` and ``-temperature`` is an M–T branch when it is named ``zfc`` or ``fc`` (what
``mt_sweep`` writes) or when its temperature was swept; one with ``-moment`` and ``-field`` is an
M–H loop when it is named ``mh`` (``mh_loop``) or when its field was swept. An in-situ stream,
measured at a held temperature and field, is neither: the moment-vs-time panel shows it.

The fit is ``analysis.magnetometry.fit_curie_weiss`` applied as ``operando analyse`` applies it
(``analysis/run_magnetometry.py``): the moles of magnetic ion from the sample
(``moles_from_sample``), the branch's median ``-field_Oe``, a superparamagnetic term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from .formatting import fmt
from .model import RunData, Stream, key_ending
from .panels_detectors import detector_rows
from .panels_echem import Panel
from .plots import CYCLE_COLOURS, plot

if TYPE_CHECKING:
    from operando.analysis.magnetometry import CurieWeissFit

M_T_STREAMS = {"zfc": "ZFC", "fc": "FC"}  # stream name -> legend label, in measurement order
M_H_STREAMS = {"mh": "M–H"}
# A swept quantity spans more than this; a held one (an in-situ frame's 300 K) stays within it.
SWEPT_K = 1.0
SWEPT_T = 1e-3  # 10 Oe
SYMBOLS = ["o", "s", "t", "d"]  # ZFC and FC often coincide: told apart by their markers too
FIT_POINTS = 300  # of each fitted curve drawn
EMPTY_TEXT = "No M–T or M–H data in this run (mt_sweep and mh_loop record them)."
SAMPLE_KEYS = {"active_mass_g": "active mass", "magnetic_ion_mol_per_g": "moles of magnetic ion per gram"}


@dataclass(frozen=True)
class Sweep:
    """One curve: a stream's moment against its temperature (M–T) or its field (M–H)."""

    label: str
    x: np.ndarray  # K (M–T) or T (M–H), in measurement order
    moment: np.ndarray  # emu
    error: np.ndarray | None  # emu, the moment's standard error (None: the backend gives none)
    field_Oe: np.ndarray | None  # the field of each point (the Curie–Weiss fit's H)


def _swept(stream: Stream, key: str, span: float) -> bool:
    values = stream[key][np.isfinite(stream[key])]
    return values.size > 1 and float(np.ptp(values)) > span


def _sweep(stream: Stream, label: str, x_key: str, moment_key: str, rows: int) -> Sweep:
    error_key, field_key = key_ending(stream.data_keys, "moment_err"), key_ending(stream.data_keys, "field_Oe")
    error = stream[error_key][:rows] if error_key else None
    if error is not None and not np.isfinite(error).any():
        error = None  # a backend without standard errors stores NaN
    field = stream[field_key][:rows] if field_key else None
    return Sweep(label, stream[x_key][:rows], stream[moment_key][:rows], error, field)


def find_sweeps(data: RunData, at: float | None = None) -> tuple[list[Sweep], list[Sweep]]:
    """(M–T branches, M–H loops) of the run, each with its rows acquired at or before ``at``
    (None: all). ZFC comes before FC, then other branches by stream name."""
    m_t: list[tuple[int, str, Sweep]] = []
    m_h: list[Sweep] = []
    for s in data.detector_streams():
        scalars = s.keys_of_ndim(0)
        moment = key_ending(scalars, "moment")
        temperature, field = key_ending(scalars, "temperature"), key_ending(scalars, "field")
        if moment is None:
            continue
        i = data.row_at(s, at) if at is not None else s.rows - 1
        rows = 0 if i is None else i + 1
        if temperature and (s.name in M_T_STREAMS or (s.name not in M_H_STREAMS and _swept(s, temperature, SWEPT_K))):
            order = list(M_T_STREAMS).index(s.name) if s.name in M_T_STREAMS else len(M_T_STREAMS)
            m_t.append((order, s.name, _sweep(s, M_T_STREAMS.get(s.name, s.name), temperature, moment, rows)))
        elif field and (s.name in M_H_STREAMS or _swept(s, field, SWEPT_T)):
            m_h.append(_sweep(s, M_H_STREAMS.get(s.name, s.name), field, moment, rows))
    return [sweep for *_, sweep in sorted(m_t, key=lambda found: found[:2])], m_h


def _missing_sample_text(sample: dict) -> str:
    lacking = [f"{what} ({key})" for key, what in SAMPLE_KEYS.items() if not sample.get(key)]
    verb = "is" if len(lacking) == 1 else "are"
    return f"no Curie–Weiss fit: the sample's {' and '.join(lacking)} {verb} not in the run's metadata"


def curie_weiss(data: RunData, branches: list[Sweep]) -> tuple[dict[str, CurieWeissFit], list[str]]:
    """A fit per M–T branch (by label), and why a branch has none."""
    # Imported here: scipy's optimiser costs ~0.5 s, spent only when an M–T run is shown.
    from operando.analysis.magnetometry import fit_curie_weiss, moles_from_sample

    sample = data.start.get("sample")
    sample = sample if isinstance(sample, dict) else {}
    try:
        moles = moles_from_sample(sample)
    except ValueError:
        return {}, [_missing_sample_text(sample)]
    fits, reasons = {}, []
    for b in branches:
        if b.field_Oe is None:
            reasons.append(f"no Curie–Weiss fit of {b.label}: its stream has no field_Oe")
            continue
        field_Oe = float(np.median(b.field_Oe)) if len(b.field_Oe) else math.nan  # no points yet: refused below
        try:
            fits[b.label] = fit_curie_weiss(b.x, b.moment, field_Oe, moles, superparamagnetic=True)
        except (ValueError, RuntimeError) as exc:  # too few points (yet), no convergence
            reasons.append(f"no Curie–Weiss fit of {b.label}: {exc}")
    return fits, reasons


def fit_text(label: str, f: CurieWeissFit) -> str:
    return (
        f"{label}: C = {fmt(f.curie_cm3K_mol, '.4g')} ± {fmt(f.curie_err, '.2g')} cm³ K mol⁻¹, "
        f"θ = {fmt(f.theta_K, '.4g')} ± {fmt(f.theta_err, '.2g')} K, "
        f"μ_eff = {fmt(f.mu_eff_muB, '.4g')} ± {fmt(f.mu_eff_err, '.2g')} μ_B "
        f"({f.n_points} points, {fmt(f.field_Oe, '.5g')} Oe)"
    )


class MagnetometryPanel(Panel):
    """M–T (ZFC and FC, with their Curie–Weiss fits) beside M–H, up to the time cursor."""

    def __init__(self):
        super().__init__()
        self.mt_plot = plot("M–T: moment against temperature", "temperature", "moment", "K", "emu")
        self.mh_plot = plot("M–H: moment against field", "field", "moment", "T", "emu")
        for p in (self.mt_plot, self.mh_plot):
            p.getPlotItem().addLegend(offset=(-5, 5), labelTextSize="8pt")
        # What is drawn, by label (the tests read them; a legend holds the same labels).
        self.mt_curves: dict[str, pg.PlotDataItem] = {}
        self.mh_curves: dict[str, pg.PlotDataItem] = {}
        self.fit_curves: dict[str, pg.PlotDataItem] = {}
        self.fits: dict[str, CurieWeissFit] = {}
        self.fit_text = QtWidgets.QLabel()
        self.fit_text.setWordWrap(True)
        self.fit_text.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.empty = QtWidgets.QLabel(EMPTY_TEXT)
        self.empty.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: #777")
        self.content = QtWidgets.QWidget()  # the plots and the fit; hidden for the placeholder
        inner = QtWidgets.QVBoxLayout(self.content)
        inner.setContentsMargins(0, 0, 0, 0)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.mt_plot, 1)
        row.addWidget(self.mh_plot, 1)
        inner.addLayout(row, 1)
        inner.addWidget(self.fit_text)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.content, 1)
        lay.addWidget(self.empty, 1)

    def depends(self, data):
        return detector_rows(data), id(data.start)  # new points, or a start document (the sample)

    def draw(self, data):
        m_t, m_h = find_sweeps(data, data.cursor)
        self.content.setVisible(bool(m_t or m_h))
        self.empty.setVisible(not (m_t or m_h))
        self.mt_plot.setVisible(bool(m_t))
        self.mh_plot.setVisible(bool(m_h))
        self.fit_text.setVisible(bool(m_t))
        self.mt_curves = _draw_sweeps(self.mt_plot, m_t)
        self.mh_curves = _draw_sweeps(self.mh_plot, m_h)
        self.fits, reasons = curie_weiss(data, m_t) if m_t else ({}, [])
        self.fit_curves = {}
        for k, b in enumerate(m_t):
            fit = self.fits.get(b.label)
            t = b.x[np.isfinite(b.x) & (b.x > 0)]
            if fit is None or not t.size:
                continue
            grid = np.geomspace(t.min(), t.max(), FIT_POINTS)  # Curie–Weiss bends most at low T
            dashed = pg.mkPen(CYCLE_COLOURS[k % len(CYCLE_COLOURS)], width=1, style=QtCore.Qt.PenStyle.DashLine)
            item = pg.PlotDataItem(grid, fit.moment(grid), pen=dashed, name=f"{b.label} Curie–Weiss fit")
            self.mt_plot.addItem(item)
            self.fit_curves[b.label] = item
        self.fit_text.setText("\n".join([fit_text(label, f) for label, f in self.fits.items()] + reasons))


def _draw_sweeps(target: pg.PlotWidget, sweeps: list[Sweep]) -> dict[str, pg.PlotDataItem]:
    """Each sweep as points joined in measurement order (a loop shows as a loop), with its
    error bars; replaces what ``target`` showed (a handful of curves: cheap to rebuild)."""
    target.getPlotItem().clear()  # its legend entries go with the items
    items = {}
    for k, s in enumerate(sweeps):
        colour = CYCLE_COLOURS[k % len(CYCLE_COLOURS)]
        marked = {"symbol": SYMBOLS[k % len(SYMBOLS)], "symbolSize": 6, "symbolPen": colour, "symbolBrush": None}
        item = pg.PlotDataItem(s.x, s.moment, pen=pg.mkPen(colour, width=1), name=s.label, **marked)
        target.addItem(item)
        items[s.label] = item
        if s.error is not None and len(s.x):
            bars = pg.ErrorBarItem(x=s.x, y=s.moment, height=2 * np.nan_to_num(s.error), beam=0, pen=colour)
            target.addItem(bars)
    return items
