"""The magnetometry part of `operando analyse RUN`: ΔM/ΔQ of an in-situ run, Curie–Weiss of an M–T run.

- In-situ (a magnetometer stream whose frames carry their echem state, ``frame-charge``,
  ``frame-Ewe``, ``frame-I``, ``frame-cycle``): the moment change against the charge passed per
  cycle and branch, and per voltage window (``moment_against_charge``).
- M–T (``zfc`` / ``fc`` streams of ``mt_sweep``): a Curie–Weiss fit of each branch, with a
  superparamagnetic term (a lithiated conversion electrode holds metallic nanoparticles), molar
  units from the sample's ``active_mass_g`` and ``magnetic_ion_mol_per_g``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .magnetometry import CurieWeissFit, MomentChange, fit_curie_weiss, moles_from_sample, moment_against_charge
from .stored_columns import find_column

WINDOW_STEP_V = 0.5  # default voltage windows: this wide, on a grid of this step
FRAME_KEYS = ("frame-charge", "frame-Ewe", "frame-I", "frame-cycle")


@dataclass
class MagnetometryResult:
    stream: Optional[str] = None  # the in-situ stream analysed
    changes: list[MomentChange] = field(default_factory=list)
    # the frames themselves, for the figure: charge (mAh), moment (emu), current (A), cycle
    points: dict[str, np.ndarray] = field(default_factory=dict)
    curie_weiss: dict[str, CurieWeissFit] = field(default_factory=dict)  # by branch: zfc, fc


def _find(stream, suffix: str) -> Optional[np.ndarray]:
    return find_column(stream, suffix, float)


def default_windows(ewe_V: np.ndarray, step_V: float = WINDOW_STEP_V) -> list[float]:
    e = ewe_V[np.isfinite(ewe_V)]
    if e.size == 0:
        return []
    lo = math.floor(e.min() / step_V) * step_V
    hi = math.floor(e.max() / step_V) * step_V + step_V
    return [round(x, 6) for x in np.arange(lo, hi + step_V / 2, step_V)]


def analyse_magnetometry(
    run,
    notes: list[str],
    windows_V: Optional[list[float]] = None,
    curie_weiss_K: tuple[float, float] = (0.0, math.inf),
) -> Optional[MagnetometryResult]:
    """What of the run's magnetometry can be analysed (None: nothing); reasons go to ``notes``."""
    start = run.metadata["start"]
    result = MagnetometryResult()
    names = [n for n, i in start.get("instruments", {}).items() if i.get("kind") == "magnetometer" and n in run]
    for name in names:
        s = run[name]
        if not all(k in s for k in FRAME_KEYS) or _find(s, "moment") is None:
            notes.append(f"{name}: frames without their echem state; no ΔM/ΔQ")
            continue
        q, e, i, c = (np.asarray(s[k].read(), float) for k in FRAME_KEYS)
        m = _find(s, "moment")
        windows = windows_V if windows_V is not None else default_windows(e)
        result.stream, result.changes = name, moment_against_charge(m, q, e, i, c, windows)
        result.points = {"charge_mAh": q, "moment_emu": m, "current_A": i, "cycle": c}
        if not result.changes:
            notes.append(f"{name}: no cycle with two frames while charging or discharging; no ΔM/ΔQ")
        break
    _curie_weiss(run, start, result, notes, curie_weiss_K)
    return result if (result.changes or result.curie_weiss) else None


def _curie_weiss(run, start: dict, result: MagnetometryResult, notes: list[str], t_range_K) -> None:
    """Fit each M–T branch over ``t_range_K`` (K, inclusive)."""
    branches = [b for b in ("zfc", "fc") if b in run]
    if not branches:
        return
    try:
        moles = moles_from_sample(start.get("sample", {}))
    except ValueError as exc:
        notes.append(f"Curie–Weiss: {exc}")
        return
    for branch in branches:
        s = run[branch]
        t, m, h = (_find(s, k) for k in ("temperature", "moment", "field_Oe"))
        if t is None or m is None or h is None:
            notes.append(f"Curie–Weiss: the {branch} stream has no temperature, moment or field_Oe")
            continue
        try:
            result.curie_weiss[branch] = fit_curie_weiss(
                t, m, float(np.median(h)), moles, superparamagnetic=True, t_min_K=t_range_K[0], t_max_K=t_range_K[1]
            )
        except (ValueError, RuntimeError) as exc:
            notes.append(f"Curie–Weiss {branch} not fitted: {exc}")


# ---- output ----------------------------------------------------------------------------------
def _window(c: MomentChange) -> str:
    return "whole branch" if c.window_V is None else f"{c.window_V[0]:.2f}-{c.window_V[1]:.2f} V"


def format_magnetometry(r: MagnetometryResult) -> list[str]:
    lines: list[str] = []
    if r.changes:
        lines += [
            "",
            f"Moment against charge passed ({r.stream}; each frame at its own echem state)",
            f"  {'cycle':>5}  {'branch':<9}  {'window':<13}  {'n':>3}  {'dQ/mAh':>8}  {'dM/memu':>9}  "
            f"{'dM/dQ / memu mAh-1':>20}  {'muB/e-':>8}",
        ]
        for c in r.changes:
            slope = f"{c.slope_emu_mAh * 1e3:.4g} ± {c.slope_err * 1e3:.2g}" if math.isfinite(c.slope_emu_mAh) else "-"
            per_e = f"{c.muB_per_electron:8.2g}" if math.isfinite(c.slope_emu_mAh) else "       -"
            lines.append(
                f"  {c.cycle:>5}  {c.direction:<9}  {_window(c):<13}  {c.n_points:>3}  {c.dQ_mAh:8.4f}  "
                f"{c.dM_emu * 1e3:9.4f}  {slope:>20}  {per_e}"
            )
    for branch, f in r.curie_weiss.items():
        lines += [
            "",
            f"Curie–Weiss fit of the {branch} branch ({f.n_points} points at {f.field_Oe:g} Oe, "
            f"{f.moles:.4g} mol of the magnetic ion)",
            f"  C      = {f.curie_cm3K_mol:.4g} ± {f.curie_err:.2g} cm3 K mol-1",
            f"  theta  = {f.theta_K:.4g} ± {f.theta_err:.2g} K",
            f"  mu_eff = {f.mu_eff_muB:.4g} ± {f.mu_eff_err:.2g} muB",
        ]
    return lines


def magnetometry_json(r: MagnetometryResult) -> dict:
    def num(x):
        return None if x is None or not math.isfinite(x) else float(x)

    return {
        "stream": r.stream,
        "moment_against_charge": [
            {
                "cycle": c.cycle,
                "branch": c.direction,
                "window_V": list(c.window_V) if c.window_V else None,
                "n_points": c.n_points,
                "dQ_mAh": c.dQ_mAh,
                "dM_emu": c.dM_emu,
                "dM_dQ_emu_per_mAh": num(c.slope_emu_mAh),
                "dM_dQ_stderr": num(c.slope_err),
                "muB_per_electron": num(c.muB_per_electron),
            }
            for c in r.changes
        ],
        "curie_weiss": {
            b: {
                "C_cm3K_mol": f.curie_cm3K_mol,
                "C_stderr": num(f.curie_err),
                "theta_K": f.theta_K,
                "theta_stderr": num(f.theta_err),
                "mu_eff_muB": f.mu_eff_muB,
                "mu_eff_stderr": num(f.mu_eff_err),
                "field_Oe": f.field_Oe,
                "moles": f.moles,
                "n_points": f.n_points,
            }
            for b, f in r.curie_weiss.items()
        },
    }


def draw_moment_against_charge(ax, r: MagnetometryResult) -> None:
    p = r.points
    for cyc in np.unique(p["cycle"]).astype(int):
        for sign, colour, label in ((1, "tab:red", "charge"), (-1, "tab:blue", "discharge")):
            sel = (p["cycle"] == cyc) & (np.sign(p["current_A"]) == sign)
            if sel.any():
                q, m = p["charge_mAh"][sel], p["moment_emu"][sel] * 1e3
                ax.plot(q, m, ".-", ms=4, color=colour, label=f"cycle {cyc} {label}")
    ax.set(xlabel="charge passed / mAh", ylabel="moment / memu", title="Moment against charge")
