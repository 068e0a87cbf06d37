"""SKPM maps of a stored run for `operando analyse`: each CPD map's line profile fitted for the
potential step and the space-charge width (``skpm_profile.py``), against the frame's
electrochemical state (time, potential, state of charge)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .skpm_profile import InterfaceStep, ProfileError, fit_interface_step, line_profile
from .stored_columns import find_column


@dataclass
class SkpmMapFit:
    index: int
    time_s: float
    ewe_V: float
    soc: float
    fit: Optional[InterfaceStep]  # None: not fitted (the note says why)
    lines_done: Optional[int] = None  # a partial map's finished lines (None: whole)
    profile: tuple[np.ndarray, np.ndarray] = field(default=None, repr=False)  # x m, mean CPD V


@dataclass
class SkpmResult:
    stream: str
    width_m: float  # scan width: the profile's x range
    tip_sigma_m: float
    maps: list[SkpmMapFit]


def _config_value(run, stream: str, suffix: str) -> Optional[float]:
    for device in (run[stream].metadata.get("configuration") or {}).values():
        for key, value in (device.get("data") or {}).items():
            if key.endswith("-" + suffix):
                return float(value)
    return None


def analyse_skpm(run, notes: list[str], tip_sigma_m: float = 0.0) -> Optional[SkpmResult]:
    start = run.metadata["start"]
    names = [n for n, i in start.get("instruments", {}).items() if i.get("kind") == "skpm"]
    # an operando run stores each detector in its own stream; a map run (plans/skpm.py) in primary
    found = [(n, n) for n in names if n in run]
    found += [(n, "primary") for n in names if n in (start.get("detectors") or []) and "primary" in run]
    if not found:
        return None
    name, stream = found[0]
    s = run[stream]
    cpd = find_column(s, "cpd", float)
    if cpd is None or cpd.ndim != 3 or cpd.shape[0] == 0:
        notes.append(f"{name}: no CPD maps")
        return None
    width = _config_value(run, stream, "width")
    if width is None:
        notes.append(f"{name}: no scan width in the stream's configuration; maps not fitted")
        return None
    n = cpd.shape[0]
    columns = {k: find_column(s, f"frame-{k}", float) for k in ("time", "Ewe", "soc")}
    lines_done = find_column(s, "lines_done", int)
    value = lambda k, i: float(columns[k][i]) if columns[k] is not None else math.nan
    maps = []
    for i in range(n):
        try:
            x, mean, sem = line_profile(cpd[i], width)
            fit = fit_interface_step(x, mean, sem, tip_sigma_m)
        except ProfileError as exc:
            notes.append(f"{name}: map {i + 1}: {exc}")
            x, mean, fit = np.empty(0), np.empty(0), None
        partial = lines_done is not None and int(lines_done[i]) < cpd.shape[1]
        if partial:
            notes.append(f"{name}: map {i + 1} is partial ({int(lines_done[i])} of {cpd.shape[1]} lines)")
        done = int(lines_done[i]) if partial else None
        maps.append(
            SkpmMapFit(i, value("time", i), value("Ewe", i), value("soc", i), fit, lines_done=done, profile=(x, mean))
        )
    return SkpmResult(name, width, tip_sigma_m, maps)


def format_skpm(r: SkpmResult) -> list[str]:
    tip = (
        f"tip σ {r.tip_sigma_m * 1e9:g} nm deconvolved"
        if r.tip_sigma_m > 0
        else "apparent widths (no tip deconvolution)"
    )
    lines = [f"SKPM interface ({r.stream}, {len(r.maps)} maps, {r.width_m * 1e9:g} nm wide, {tip}):"]
    for m in r.maps:
        where = f"map {m.index + 1}: E {m.ewe_V:.3f} V, SOC {m.soc:.3f}"
        if m.lines_done is not None:
            where += f" (partial: {m.lines_done} lines)"
        if m.fit is None:
            lines.append(f"  {where}: not fitted")
            continue
        f = m.fit
        lines.append(
            f"  {where}: step {f.step_V:+.4f} ± {f.step_err:.4f} V, space-charge width "
            f"{f.width_m * 1e9:.2f} ± {f.width_err * 1e9:.2f} nm, centre {f.centre_m * 1e9:+.1f} nm"
        )
    return lines


def skpm_json(r: SkpmResult) -> dict:
    def num(v):
        return None if v is None or not math.isfinite(v) else float(v)

    return {
        "stream": r.stream,
        "scan_width_m": r.width_m,
        "tip_sigma_m": r.tip_sigma_m,
        "maps": [
            {
                "frame_time": num(m.time_s),
                "frame_Ewe": num(m.ewe_V),
                "frame_soc": num(m.soc),
                "lines_done": m.lines_done,
                **(
                    {
                        "step_V": num(m.fit.step_V),
                        "step_stderr": num(m.fit.step_err),
                        "width_m": num(m.fit.width_m),
                        "width_stderr": num(m.fit.width_err),
                        "centre_m": num(m.fit.centre_m),
                        "residual_V": num(m.fit.residual_V),
                    }
                    if m.fit
                    else {"step_V": None, "width_m": None}
                ),
            }
            for m in r.maps
        ],
    }


def draw_steps(ax, r: SkpmResult) -> None:
    """The potential step (left axis) and the space-charge width (right) of each map."""
    fitted = [m for m in r.maps if m.fit is not None]
    use_soc = all(math.isfinite(m.soc) for m in fitted) and fitted
    x = [m.soc if use_soc else m.index + 1 for m in fitted]
    ax.errorbar(x, [m.fit.step_V for m in fitted], [m.fit.step_err for m in fitted], fmt="o-", color="C0")
    ax.set(xlabel="SOC" if use_soc else "map", ylabel="potential step / V", title="SKPM: interface step")
    twin = ax.twinx()
    twin.errorbar(
        x, [m.fit.width_m * 1e9 for m in fitted], [m.fit.width_err * 1e9 for m in fitted], fmt="s--", color="C1"
    )
    twin.set_ylabel("space-charge width / nm", color="C1")
