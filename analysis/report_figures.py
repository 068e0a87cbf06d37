"""The figures of `operando report` (``run_report.py``), each a matplotlib Figure drawn with the
Agg backend and embedded as a PNG data URI. The panels are those of the overview and operando
figures (``report.py``) and of `operando analyse` (``run_*.py``), one figure per subject; new here
are voltage against capacity per cycle and dQ/dV."""

from __future__ import annotations

import base64
import dataclasses
import io
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .cycling import GALVANOSTATIC
from .report import draw_echem_time, draw_moment_time, draw_raman_waterfall
from .run_analysis import Analysis, _technique_codes, write_analysis_figure
from .run_cycling import draw_cycling
from .run_magnetometry import draw_moment_against_charge
from .run_raman import draw_band_positions
from .run_skpm import draw_steps
from .skpm_profile import step_model
from .stored_columns import find_column, raman_shift_axis

DPI = 100
DQDV_BIN_V = 0.010  # dQ/dV: charge increments summed in bins of Ewe this wide
DQDV_SMOOTH_BINS = 3  # then a moving average over this many bins
DQDV_SMOOTHING = (
    f"each branch's charge increments summed in {DQDV_BIN_V * 1e3:g} mV bins of Ewe (an increment at the "
    f"mean of its two potentials), then a {DQDV_SMOOTH_BINS}-bin ({DQDV_SMOOTH_BINS * DQDV_BIN_V * 1e3:g} mV) "
    "moving average"
)
STACKED_SPECTRA = 12  # the Raman waterfall shows at most this many spectra, evenly spread in time


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png_data_uri(fig) -> str:
    """The figure as a ``data:image/png;base64,...`` URI; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


@dataclass
class Echem:
    """A run's echem stream, the columns the report draws."""

    t_s: np.ndarray
    ewe_V: np.ndarray
    current_A: np.ndarray
    charge_mAh: np.ndarray
    cycle: np.ndarray
    galvanostatic: np.ndarray  # per sample: a cc or cccv step (the steps cycling counts)

    @property
    def hours(self) -> np.ndarray:
        return (self.t_s - self.t_s[0]) / 3600.0


def read_echem(run) -> Optional[Echem]:
    """None when the run has no echem stream, an empty one, or one without these columns."""
    name = run.metadata["start"].get("echem_stream", "echem")
    if name not in run or not list(run[name]):
        return None
    s = run[name]
    cols = [find_column(s, k, float) for k in ("timestamp", "Ewe", "I", "charge", "cycle", "technique")]
    if any(c is None for c in cols) or cols[0].size < 2:
        return None
    codes = _technique_codes(s)
    galvanostatic = np.isin(cols[5], [codes[k] for k in GALVANOSTATIC if k in codes])
    return Echem(*cols[:5], galvanostatic)


def echem_time_figure(e: Echem):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 3.4))
    draw_echem_time(ax, e.hours, e.ewe_V, e.current_A)
    ax.set_xlabel("experiment time / h")
    ax.set_title("Potential and current")
    fig.tight_layout()
    return fig


def branches(e: Echem, cycles: list[int]):
    """Per cycle, its charge (I > 0) and discharge (I < 0) branch in galvanostatic steps: the
    charge increments (mAh, positive) and the mean potential of each, attributed as in
    ``cycle_metrics`` (an increment belongs to the sample it ends on)."""
    dq = np.abs(np.diff(e.charge_mAh))
    e_mid = 0.5 * (e.ewe_V[1:] + e.ewe_V[:-1])
    c, i, g = e.cycle[1:], e.current_A[1:], e.galvanostatic[1:]
    for n in cycles:
        for sign, name in ((1, "charge"), (-1, "discharge")):
            sel = (c == n) & g & (np.sign(i) == sign)
            if sel.sum() >= 2:
                yield n, name, dq[sel], e_mid[sel]


def cycling_figure(e: Echem, analysis: Analysis):
    """Discharge capacity and CE per cycle (as `operando analyse` draws them), and the potential
    against the capacity of each branch of each cycle."""
    plt = _pyplot()
    mass = analysis.active_mass_g
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    draw_cycling(left, analysis.cycling, mass)
    from matplotlib.ticker import MaxNLocator

    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_ylim(0, max(left.get_ylim()[1], 1e-12) * 1.05)  # from zero: equal capacities are no offset axis
    cycles = [m.cycle for m in analysis.cycling]
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(cycles), 1)))
    colour = dict(zip(cycles, colours))
    for n, name, dq, e_mid in branches(e, cycles):
        q = np.cumsum(dq) / (mass or 1.0)
        right.plot(q, e_mid, "-" if name == "charge" else "--", lw=1, color=colour[n], label=f"cycle {n} {name}")
    unit = "mAh g$^{-1}$" if mass else "mAh"
    right.set(xlabel=f"capacity / {unit}", ylabel="Ewe / V", title="Potential against capacity")
    right.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def dq_dv(dq: np.ndarray, e_mid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres V, dQ/dV in units of dq per V): see ``DQDV_SMOOTHING``."""
    lo = math.floor(e_mid.min() / DQDV_BIN_V) * DQDV_BIN_V
    edges = np.arange(lo, e_mid.max() + DQDV_BIN_V, DQDV_BIN_V)
    if edges.size < 2:
        edges = np.array([lo, lo + DQDV_BIN_V])
    summed, _ = np.histogram(e_mid, edges, weights=dq)
    kernel = np.ones(DQDV_SMOOTH_BINS) / DQDV_SMOOTH_BINS
    return 0.5 * (edges[1:] + edges[:-1]), np.convolve(summed / DQDV_BIN_V, kernel, mode="same")


def dqdv_figure(e: Echem, analysis: Analysis):
    plt = _pyplot()
    mass = analysis.active_mass_g
    fig, ax = plt.subplots(figsize=(8, 4.2))
    cycles = [m.cycle for m in analysis.cycling]
    colours = dict(zip(cycles, plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(cycles), 1)))))
    for n, name, dq, e_mid in branches(e, cycles):
        v, d = dq_dv(dq / (mass or 1.0), e_mid)
        sign = 1 if name == "charge" else -1
        ax.plot(v, sign * d, "-" if sign > 0 else "--", lw=1, color=colours[n], label=f"cycle {n} {name}")
    ax.axhline(0, color="0.7", lw=0.5)
    unit = "mAh g$^{-1}$ V$^{-1}$" if mass else "mAh V$^{-1}$"
    ax.set(xlabel="Ewe / V", ylabel=f"dQ/dV / {unit}", title="Differential capacity (discharge negative)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def moment_figure(run, stream: str, t0_s: Optional[float], analysis: Optional[Analysis]):
    """The moment against time, and against the charge passed when ΔM/ΔQ was analysed."""
    plt = _pyplot()
    mag = analysis.magnetometry if analysis else None
    with_charge = mag is not None and bool(mag.points)
    fig, axes = plt.subplots(1, 2 if with_charge else 1, figsize=(11 if with_charge else 8, 4), squeeze=False)
    s = run[stream]
    t = find_column(s, "exposure_start", float)
    if t is None:
        t = find_column(s, "time", float)
    t0 = t0_s if t0_s is not None else t[0]
    draw_moment_time(axes[0, 0], (t - t0) / 3600.0, s)
    axes[0, 0].set(xlabel="experiment time / h", title="Moment against time")
    if with_charge:
        draw_moment_against_charge(axes[0, 1], mag)
        axes[0, 1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def moment_sweep_figure(run):
    """Moment against temperature (``zfc``, ``fc``) and against field (``mh``): M–T and M–H runs."""
    plt = _pyplot()
    sweeps = (("temperature", ("zfc", "fc")), ("field_Oe", ("mh",)))
    panels = [(x, [n for n in names if n in run]) for x, names in sweeps]
    panels = [(x, names) for x, names in panels if names]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (x, names) in zip(axes[0], panels):
        for name in names:
            xs, m = find_column(run[name], x, float), find_column(run[name], "moment", float)
            if xs is not None and m is not None:
                ax.plot(xs, m * 1e3, "o-", ms=3, lw=0.8, label=name)
        ax.set(xlabel="T / K" if x == "temperature" else "H / Oe", ylabel="moment / memu")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def raman_figure(run, stream: str, t0_s: Optional[float], analysis: Optional[Analysis]):
    """Stacked spectra (a waterfall, coloured by time), the spectra as an image against time, and
    the fitted band centres (or, for a map, the band-area ratio where each spectrum was taken)."""
    plt = _pyplot()
    s = run[stream]
    spectra = find_column(s, "spectrum", float)
    if spectra is None or spectra.ndim != 2 or spectra.shape[0] == 0:
        return None
    shift = raman_shift_axis(run, stream, spectra.shape[1])
    shift = np.arange(spectra.shape[1], dtype=float) if shift is None else shift
    t = find_column(s, "exposure_start", float)
    t0 = t0_s if t0_s is not None else (t[0] if t is not None else 0.0)
    hours = (t - t0) / 3600.0 if t is not None else np.arange(spectra.shape[0], dtype=float)
    raman = analysis.raman if analysis else None
    is_map = raman is not None and raman.map is not None
    n = 2 + (raman is not None) - is_map
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4.4), squeeze=False)
    axes = axes[0]

    pick = np.unique(np.linspace(0, spectra.shape[0] - 1, min(STACKED_SPECTRA, spectra.shape[0])).astype(int))
    step = 0.5 * np.nanpercentile(spectra, 99) if spectra.size else 1.0
    colours = plt.get_cmap("viridis")(np.linspace(0, 1, pick.size))
    for k, (row, colour) in enumerate(zip(pick, colours)):
        axes[0].plot(shift, spectra[row] + k * step, lw=0.7, color=colour)
    span = " in map order" if is_map else (f", {hours[pick[0]]:.3g}–{hours[pick[-1]]:.3g} h" if t is not None else "")
    axes[0].set(
        xlabel="Raman shift / cm⁻¹", ylabel="counts (offset)", title=f"{pick.size} of {spectra.shape[0]} spectra{span}"
    )
    if not is_map:
        draw_raman_waterfall(axes[1], hours, shift, spectra)
        axes[1].set(xlabel="experiment time / h" if t is not None else "spectrum", title="All spectra")
    if raman is not None:
        draw_band_positions(axes[-1], raman)
        axes[-1].set_title(axes[-1].get_title() or "Band centres")
    fig.tight_layout()
    return fig


def skpm_figure(analysis: Analysis):
    """Each map's profile across the interface with its fitted step, and (two maps or more) the
    step and width per map."""
    r = analysis.skpm
    plt = _pyplot()
    fitted = sum(m.fit is not None for m in r.maps) >= 2  # one map: its numbers are in the table
    fig, axes = plt.subplots(1, 2 if fitted else 1, figsize=(11 if fitted else 6, 4.2), squeeze=False)
    ax = axes[0, 0]
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(r.maps), 1)))
    for m, colour in zip(r.maps, colours):
        x, mean = m.profile if m.profile is not None else (np.empty(0), np.empty(0))
        if x.size == 0:
            continue
        ax.plot(x * 1e9, mean, ".", ms=3, color=colour, label=f"map {m.index + 1}")
        if m.fit is not None:
            f = m.fit
            model = step_model(x, f.offset_V, f.step_V, f.centre_m, f.width_m, f.tip_sigma_m)
            ax.plot(x * 1e9, model, "-", lw=1, color=colour)
    ax.set(xlabel="position across the interface / nm", ylabel="CPD / V", title="Line profiles (dots) and fits")
    ax.legend(fontsize=7, ncol=2)
    if fitted:
        draw_steps(axes[0, 1], r)
    fig.tight_layout()
    return fig


def analyse_figure(analysis: Analysis):
    """CV peak currents, GITT diffusion and Nyquist plots with fits: `operando analyse`'s own
    panels (``write_analysis_figure``), for the analyses that have no figure of their own here;
    PNG bytes, or None when the run has none of them."""
    if not (analysis.cv or analysis.gitt or analysis.eis):
        return None
    only = dataclasses.replace(analysis, cycling=[], magnetometry=None, raman=None, skpm=None, notes=[])
    with tempfile.TemporaryDirectory() as tmp:
        path = write_analysis_figure(only, Path(tmp) / "analysis.png")
        return path.read_bytes()


def png_bytes_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
