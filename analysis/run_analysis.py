"""`operando analyse RUN`: CV b-values and Dunn split, GITT diffusion, EIS fits, and magnetometry
(ΔM/ΔQ of an in-situ run, Curie–Weiss of an M–T run: ``run_magnetometry.py``) of a stored run.

Reads the run's ``echem`` stream (technique column picks the cv and gitt steps) and its
``impedance`` stream (one spectrum per step), runs the analyses that apply, and returns a report
that prints as a table, serialises to JSON and draws one figure under DATA/reports/.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from operando.analysis.cycling import CycleMetrics, galvanostatic_cycles
from operando.analysis.eis import EisFit, fit_spectrum
from operando.analysis.gitt import GittPulse, analyse_gitt
from operando.analysis.run_cycling import cycling_json, draw_cycling, format_cycling
from operando.analysis.run_magnetometry import (
    MagnetometryResult,
    analyse_magnetometry,
    draw_moment_against_charge,
    format_magnetometry,
    magnetometry_json,
)
from operando.analysis.run_raman import RamanResult, analyse_raman, draw_band_positions, format_raman, raman_json
from operando.analysis.run_skpm import SkpmResult, analyse_skpm, draw_steps, format_skpm, skpm_json
from operando.analysis.voltammetry import (
    CvScan,
    DunnSplit,
    PowerLawFit,
    dunn_split,
    last_scan,
    peak_currents,
    power_law_fit,
)


class AnalysisError(ValueError):
    """Nothing in the run can be analysed, or the input is unusable; names the run."""


@dataclass
class CvResult:
    scans: list[CvScan]
    anodic_A: list[float]
    cathodic_A: list[float]
    anodic: PowerLawFit
    cathodic: PowerLawFit
    dunn: DunnSplit


@dataclass
class Analysis:
    run_label: str
    cv: CvResult | None = None
    gitt: dict[int, list[GittPulse]] = field(default_factory=dict)  # by step
    eis: dict[int, EisFit] = field(default_factory=dict)  # by step
    diffusion_length_m: float | None = None
    capacity_mAh: float | None = None
    magnetometry: MagnetometryResult | None = None
    raman: RamanResult | None = None
    skpm: SkpmResult | None = None
    cycling: list[CycleMetrics] = field(default_factory=list)  # cycles that passed charge
    active_mass_g: float | None = None
    notes: list[str] = field(default_factory=list)  # analyses that did not apply, and why


def _column(stream, name: str) -> np.ndarray:
    """A column by name, with or without the device prefix (``impedance-Z_re``)."""
    keys = list(stream)
    for key in (name, *[k for k in keys if k.endswith("-" + name)]):
        if key in keys:
            return np.asarray(stream[key].read())
    raise KeyError(name)


def _technique_codes(stream) -> dict[str, int]:
    """Technique name -> the integer stored in the ``technique`` column, as the stream's own
    descriptor lists them (``choices``: the code is the position)."""
    keys = stream.metadata.get("data_keys", {})
    key = next((k for k in keys if k == "technique" or k.endswith("-technique")), None)
    choices = keys.get(key, {}).get("choices") or []
    return {name: code for code, name in enumerate(choices)}


def _step_slices(step: np.ndarray) -> dict[int, np.ndarray]:
    return {int(s): np.flatnonzero(step == s) for s in np.unique(step)}


def analyse_run(
    run,
    diffusion_length_m: float | None = None,
    curie_weiss_K: tuple[float, float] = (0.0, math.inf),
    raman_bands_cm1: list[float] | None = None,
    raman_shape: str = "lorentzian",
    skpm_tip_sigma_m: float = 0.0,
) -> Analysis:
    start = run.metadata["start"]
    label = f"run {start.get('uid', '?')[:8]}" + (f" cell {start['cell']}" if start.get("cell") else "")
    out = Analysis(label, diffusion_length_m=diffusion_length_m, capacity_mAh=start.get("capacity_mAh"))
    if "echem" in run and not list(run["echem"]):
        out.notes.append("the echem stream is empty (a run recovered before its first samples)")
    elif "echem" in run:
        s = run["echem"]
        try:
            cols = {k: _column(s, k) for k in ("timestamp", "Ewe", "I", "charge", "step", "technique", "cycle")}
        except KeyError as exc:
            raise AnalysisError(f"{label}: the echem stream has no {exc.args[0]!r} column") from None
        cols["codes"] = _technique_codes(s)
        choices = sorted(cols["codes"], key=cols["codes"].get)
        out.cycling = galvanostatic_cycles(
            cols["cycle"], cols["I"], cols["charge"], cols["Ewe"], cols["technique"], choices
        )
        mass = (start.get("sample") or {}).get("active_mass_g")
        out.active_mass_g = float(mass) if isinstance(mass, (int, float)) and mass > 0 else None
        _cv(out, cols)
        _gitt(out, cols, diffusion_length_m)
    else:
        out.notes.append("no echem stream")
    _eis(out, run)
    out.magnetometry = analyse_magnetometry(run, out.notes, curie_weiss_K=curie_weiss_K)
    out.raman = analyse_raman(run, out.notes, raman_bands_cm1, raman_shape)
    out.skpm = analyse_skpm(run, out.notes, skpm_tip_sigma_m)
    found = (out.cycling, out.cv, out.gitt, out.eis, out.magnetometry, out.raman, out.skpm)
    if not any(f is not None and f != {} and f != [] for f in found):
        raise AnalysisError(f"{label}: nothing to analyse: " + "; ".join(out.notes))
    return out


def echem_cycling(stream) -> list[CycleMetrics]:
    """The galvanostatic cycles of an echem stream (as ``analyse_run``'s cycling table); a
    KeyError naming a missing column."""
    cols = {k: _column(stream, k) for k in ("I", "charge", "Ewe", "technique", "cycle")}
    codes = _technique_codes(stream)
    choices = sorted(codes, key=codes.get)
    return galvanostatic_cycles(cols["cycle"], cols["I"], cols["charge"], cols["Ewe"], cols["technique"], choices)


def _cv(out: Analysis, c: dict) -> None:
    by_step = _step_slices(c["step"][c["technique"] == c["codes"].get("cv", -1)])
    idx_all = np.flatnonzero(c["technique"] == c["codes"].get("cv", -1))
    by_rate: dict[float, CvScan] = {}
    for step in by_step:
        idx = idx_all[c["step"][idx_all] == step]
        try:
            scan = last_scan(step, c["timestamp"][idx], c["Ewe"][idx], c["I"][idx])
        except ValueError as exc:
            out.notes.append(f"cv step {step} skipped: {exc}")
            continue
        by_rate[float(f"{scan.scan_rate_V_s:.3g}")] = scan  # the last step at each rate counts
    if len(by_rate) < 2:
        out.notes.append(f"no cv steps at two or more scan rates (cv steps: {sorted(by_step) or 'none'})")
        return
    scans = [by_rate[v] for v in sorted(by_rate)]
    peaks = [peak_currents(s) for s in scans]
    an, ca = [p[0] for p in peaks], [p[1] for p in peaks]
    if min(an) <= 0 or max(ca) >= 0:
        out.notes.append("cv: a scan has no anodic or no cathodic current; no b-value")
        return
    out.cv = CvResult(
        scans,
        an,
        ca,
        power_law_fit([s.scan_rate_V_s for s in scans], an),
        power_law_fit([s.scan_rate_V_s for s in scans], ca),
        dunn_split(scans),
    )


def _gitt(out: Analysis, c: dict, length_m: float | None) -> None:
    idx_all = np.flatnonzero(c["technique"] == c["codes"].get("gitt", -1))
    if idx_all.size == 0:
        out.notes.append("no gitt step")
        return
    for step in np.unique(c["step"][idx_all]):
        idx = idx_all[c["step"][idx_all] == step]
        # The sample before the step is the cell at rest before the first pulse, if it was at rest.
        first = idx[0]
        if first > 0 and abs(c["I"][first - 1]) < 1e-12:
            idx = np.concatenate([[first - 1], idx])
        try:
            pulses = analyse_gitt(
                c["timestamp"][idx], c["Ewe"][idx], c["I"][idx], c["charge"][idx], length_m if length_m else 1.0
            )
        except ValueError as exc:
            out.notes.append(f"gitt step {int(step)} skipped: {exc}")
            continue
        out.gitt[int(step)] = pulses


def _eis(out: Analysis, run) -> None:
    if "impedance" not in run:
        out.notes.append("no impedance stream")
        return
    s = run["impedance"]
    try:
        f, zr, zi, step = (_column(s, k) for k in ("frequency", "Z_re", "Z_im", "step"))
    except KeyError as exc:
        raise AnalysisError(f"{out.run_label}: the impedance stream has no {exc.args[0]!r} column") from None
    for st, idx in _step_slices(step).items():
        try:
            out.eis[st] = fit_spectrum(f[idx], zr[idx], zi[idx])
        except (ValueError, RuntimeError) as exc:
            out.notes.append(f"impedance step {st} not fitted: {exc}")


# ---- output: table, JSON, figure ------------------------------------------------------------
def _pm(v: float, e: float, fmt: str = ".4g") -> str:
    return f"{v:{fmt}} ± {e:.2g}" if np.isfinite(e) else f"{v:{fmt}} ± n/a"


def _soc(a: Analysis, q: float) -> float | None:
    return q / a.capacity_mAh if a.capacity_mAh else None


def format_analysis(a: Analysis) -> str:
    lines = [f"Analysis of {a.run_label}"]
    if a.cycling:
        lines += ["", *format_cycling(a.cycling, a.active_mass_g)]
    if a.cv:
        cv = a.cv
        lines += [
            "",
            "Cyclic voltammetry (last scan of each step; i_p = a v^b)",
            f"  {'step':>4}  {'v/mV s-1':>9}  {'i_pa/mA':>9}  {'i_pc/mA':>9}  {'capacitive (Dunn)':>17}",
        ]
        for s, ia, ic, cap in zip(cv.scans, cv.anodic_A, cv.cathodic_A, cv.dunn.capacitive_fraction):
            lines.append(
                f"  {s.step:>4}  {s.scan_rate_V_s * 1e3:9.3g}  {ia * 1e3:9.4f}  {ic * 1e3:9.4f}  {cap * 100:16.1f}%"
            )
        lines.append(f"  b anodic   = {_pm(cv.anodic.b, cv.anodic.b_stderr, '.3f')}  ({cv.anodic.n} rates)")
        lines.append(f"  b cathodic = {_pm(cv.cathodic.b, cv.cathodic.b_stderr, '.3f')}")
        lines.append("  (b ~ 0.5 diffusion-limited bulk storage, b ~ 1 capacitive/interfacial)")
    for step, pulses in a.gitt.items():
        unit = "D/m2 s-1" if a.diffusion_length_m else "D/L2 s-1"
        lines += [
            "",
            f"GITT step {step} (Weppner-Huggins; "
            + (
                f"L = {a.diffusion_length_m * 1e6:g} um)"
                if a.diffusion_length_m
                else "no --diffusion-length-um: D/L^2 shown)"
            ),
            f"  {'pulse':>5}  {'tau/s':>7}  {'dEs/mV':>8}  {'dEt/mV':>8}  {unit:>10}  "
            f"{'OCV/V':>7}  {'Q/mAh':>8}  {'SOC':>6}",
        ]
        for p in pulses:
            soc = _soc(a, p.charge_mAh)
            lines.append(
                f"  {p.index:>5}  {p.tau_s:7.1f}  {p.dE_s_V * 1e3:8.2f}  {p.dE_t_V * 1e3:8.2f}  "
                f"{p.D_m2_s:10.3e}  {p.E_relaxed_V:7.4f}  {p.charge_mAh:8.4f}  "
                + (f"{soc:6.3f}" if soc is not None else "     -")
            )
    for step, fit in a.eis.items():
        lines += [
            "",
            f"Impedance step {step}: {fit.model}, {fit.frequency_Hz.size} frequencies "
            f"({fit.frequency_Hz.min():.3g}-{fit.frequency_Hz.max():.3g} Hz), "
            f"rms misfit {fit.rms_relative * 100:.2f}% of |Z|",
        ]
        for n, u, v, e in zip(fit.names, fit.units, fit.values, fit.stderr):
            shaky = "  (not identifiable in this band)" if not e < abs(v) else ""
            lines.append(f"  {n:10} {_pm(v, e):>24} {u}{shaky}")
    if a.magnetometry:
        lines += format_magnetometry(a.magnetometry)
    if a.raman:
        lines += ["", *format_raman(a.raman)]
    if a.skpm:
        lines += ["", *format_skpm(a.skpm)]
    if a.notes:
        lines += ["", "Not analysed: " + "; ".join(a.notes)]
    return "\n".join(lines)


def analysis_json(a: Analysis) -> dict:
    def num(x):
        return None if x is None or not np.isfinite(x) else float(x)

    out: dict = {"run": a.run_label, "notes": a.notes, "diffusion_length_m": a.diffusion_length_m}
    out["cycling"] = cycling_json(a.cycling, a.active_mass_g)
    if a.cv:
        cv = a.cv
        out["cv"] = {
            "scan_rate_V_s": [s.scan_rate_V_s for s in cv.scans],
            "steps": [s.step for s in cv.scans],
            "anodic_peak_A": cv.anodic_A,
            "cathodic_peak_A": cv.cathodic_A,
            "b_anodic": num(cv.anodic.b),
            "b_anodic_stderr": num(cv.anodic.b_stderr),
            "b_cathodic": num(cv.cathodic.b),
            "b_cathodic_stderr": num(cv.cathodic.b_stderr),
            "capacitive_fraction": [num(x) for x in cv.dunn.capacitive_fraction],
        }
    key = "D_m2_s" if a.diffusion_length_m else "D_over_L2_per_s"
    out["gitt"] = {
        str(step): [
            {
                "pulse": p.index,
                "tau_s": p.tau_s,
                "current_A": p.current_A,
                "dE_s_V": p.dE_s_V,
                "dE_t_V": p.dE_t_V,
                key: p.D_m2_s,
                "ocv_V": p.E_relaxed_V,
                "charge_mAh": p.charge_mAh,
                "soc": _soc(a, p.charge_mAh),
            }
            for p in pulses
        ]
        for step, pulses in a.gitt.items()
    }
    out["eis"] = {
        str(step): {
            "model": f.model,
            "rms_relative": f.rms_relative,
            **{
                n: {"value": num(v), "stderr": num(e), "unit": u}
                for n, u, v, e in zip(f.names, f.units, f.values, f.stderr)
            },
        }
        for step, f in a.eis.items()
    }
    if a.magnetometry:
        out["magnetometry"] = magnetometry_json(a.magnetometry)
    if a.raman:
        out["raman"] = raman_json(a.raman)
    if a.skpm:
        out["skpm"] = skpm_json(a.skpm)
    return out


def write_analysis_figure(a: Analysis, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mag = a.magnetometry is not None and bool(a.magnetometry.points)
    skpm = a.skpm is not None and any(m.fit for m in a.skpm.maps)
    shown = (
        ("cycling", len(a.cycling) >= 1),
        ("eis", a.eis),
        ("cv", a.cv),
        ("gitt", a.gitt),
        ("mag", mag),
        ("raman", a.raman),
        ("skpm", skpm),
    )
    panels = [p for p, on in shown if on]
    panels = panels or ["none"]  # e.g. a Curie–Weiss fit only: its numbers are in the table
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        if panel == "eis":
            for step, f in a.eis.items():
                dots = ax.plot(f.Z.real, -f.Z.imag, "o", ms=4, label=f"step {step}")[0]
                ax.plot(f.Z_fit_dense.real, -f.Z_fit_dense.imag, "-", color=dots.get_color(), lw=1)
            ax.set(xlabel="Z' / ohm", ylabel="-Z'' / ohm", title="Nyquist (dots) with fits (lines)")
            ax.set_aspect("equal", adjustable="datalim")
        elif panel == "cv":
            v = np.array([s.scan_rate_V_s for s in a.cv.scans])
            for name, peaks, fit, mark in (
                ("anodic", a.cv.anodic_A, a.cv.anodic, "o"),
                ("cathodic", a.cv.cathodic_A, a.cv.cathodic, "s"),
            ):
                ax.loglog(v * 1e3, np.abs(peaks) * 1e3, mark, mfc="none", label=f"{name}: b = {fit.b:.3f}")
                ax.loglog(v * 1e3, fit.a * v**fit.b * 1e3, "-", lw=1, color=ax.lines[-1].get_color())
            ax.set(xlabel="scan rate / mV s$^{-1}$", ylabel="|i$_p$| / mA", title="CV peak currents")
        elif panel == "none":
            ax.text(0.5, 0.5, "nothing to draw: see the table", ha="center", va="center")
            ax.axis("off")
            continue
        elif panel == "mag":
            draw_moment_against_charge(ax, a.magnetometry)
        elif panel == "raman":
            draw_band_positions(ax, a.raman)
            continue
        elif panel == "skpm":
            draw_steps(ax, a.skpm)
            continue
        elif panel == "cycling":
            draw_cycling(ax, a.cycling, a.active_mass_g)
            continue
        else:
            for step, pulses in a.gitt.items():
                x = [(_soc(a, p.charge_mAh) if a.capacity_mAh else p.charge_mAh) for p in pulses]
                ax.semilogy(x, [p.D_m2_s for p in pulses], "o-", label=f"step {step}")
            ax.set(
                xlabel="SOC" if a.capacity_mAh else "charge / mAh",
                ylabel="D / m$^2$ s$^{-1}$" if a.diffusion_length_m else "D/L$^2$ / s$^{-1}$",
                title="GITT (Weppner-Huggins)",
            )
        ax.legend(fontsize=8)
    fig.suptitle(f"Analysis of {a.run_label}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
