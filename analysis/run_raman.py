"""Raman bands of a stored run for `operando analyse`: every spectrum of the run's Raman stream
fitted (``raman_bands.py``), each band's position, width and area against time, potential and
state of charge, the shift of each band against state of charge, and a band-area ratio. For a
map run (``plans/raman_map.py``) the same fits, each at the stage position it was taken at."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .raman_bands import BandGuess, RamanTracking, find_bands, track_bands
from .stored_columns import find_column, raman_shift_axis

DEFAULT_FWHM_CM1 = 20.0


@dataclass
class RamanResult:
    stream: str
    shift_cm1: np.ndarray
    tracking: RamanTracking
    soc_slopes: dict[str, tuple[float, float]] = field(default_factory=dict)  # cm-1 per unit SOC, ±
    ratio: Optional[tuple[str, str]] = None  # (numerator, denominator) band names
    map: Optional[RamanMap] = None  # a map run: where each spectrum was taken


@dataclass
class RamanMap:
    kind: str  # "line" or "area"
    shape: list[int]  # [points] or [rows (y), columns (x)]
    x_um: np.ndarray  # the stage's readback at each spectrum
    y_um: np.ndarray


def analyse_raman(
    run, notes: list[str], bands_cm1: Optional[list[float]] = None, shape: str = "lorentzian"
) -> Optional[RamanResult]:
    """Fit the bands of the run's Raman stream (given centres, else the most prominent peaks of
    its mean spectrum); None with a note when there is nothing to fit."""
    start = run.metadata["start"]
    map_md = start.get("map") if start.get("plan_name") == "raman_map" else None
    if map_md is not None:
        name, stream = (start.get("detectors") or ["raman"])[0], "primary"
        if stream not in run:
            return None
    else:
        names = [n for n, i in start.get("instruments", {}).items() if i.get("kind") == "raman" and n in run]
        if not names:
            return None
        name = stream = names[0]
    s = run[stream]
    spectra = find_column(s, "spectrum", float)
    if spectra is None or spectra.ndim != 2 or spectra.shape[0] == 0:
        notes.append(f"{name}: no spectra")
        return None
    shift = raman_shift_axis(run, stream, spectra.shape[1])
    if shift is None:
        notes.append(f"{name}: no Raman-shift axis in the stream's configuration; bands not fitted")
        return None
    guesses = (
        [BandGuess(f"band {c:g}", float(c), DEFAULT_FWHM_CM1) for c in bands_cm1]
        if bands_cm1
        else find_bands(shift, spectra.mean(axis=0))
    )
    if not guesses:
        notes.append(f"{name}: no band stands out of the mean spectrum; give --raman-bands")
        return None
    soc = find_column(s, "frame-soc", float)
    tracking = track_bands(
        shift,
        spectra,
        guesses,
        shape,
        time_s=find_column(s, "frame-time" if map_md is None else "exposure_start", float),
        ewe_V=find_column(s, "frame-Ewe", float),
        soc=soc,
    )
    result = RamanResult(name, shift, tracking)
    if map_md is not None:
        stage = map_md.get("stage", "stage")
        xy = [find_column(s, f"{stage}-{axis}", float) for axis in ("x", "y")]
        if any(v is None for v in xy):
            notes.append(f"{name}: a map without the stage's {stage}-x/{stage}-y columns")
        else:
            result.map = RamanMap(str(map_md.get("kind")), list(map_md.get("shape") or []), *xy)
    for t in tracking.tracks:
        if t.fitted < len(t.centre_cm1):
            notes.append(
                f"{name}: {t.name} not fitted in {len(t.centre_cm1) - t.fitted} of {len(t.centre_cm1)} spectra"
            )
        if soc is not None and np.isfinite(soc).sum() >= 3:
            try:
                result.soc_slopes[t.name] = tracking.against_soc(t.name)
            except ValueError as exc:
                notes.append(str(exc))
    result.ratio = default_ratio(tracking)
    return result


def default_ratio(tracking: RamanTracking) -> Optional[tuple[str, str]]:
    """The band whose area changes most over the one that changes least (an interface band over
    a reference band, when the user has not said which); None with fewer than two bands."""
    if len(tracking.tracks) < 2:
        return None
    spread = {t.name: _relative_spread(t.area) for t in tracking.tracks}
    ordered = sorted(spread, key=spread.get)
    return ordered[-1], ordered[0]


def _relative_spread(area: np.ndarray) -> float:
    a = area[np.isfinite(area)]
    return float(np.std(a) / abs(np.mean(a))) if a.size >= 2 and np.mean(a) else -math.inf


def format_raman(r: RamanResult) -> list[str]:
    t = r.tracking
    lines = [f"Raman bands ({r.stream}, {len(t.tracks[0].centre_cm1)} spectra, {t.shape} on a linear baseline):"]
    m = r.map
    if m is not None:
        lines.append(
            f"  {m.kind} map, {' × '.join(map(str, m.shape))} points: x {m.x_um.min():g}…{m.x_um.max():g} µm, "
            f"y {m.y_um.min():g}…{m.y_um.max():g} µm (the stage's readbacks)"
        )
    for b in t.tracks:
        ok = np.isfinite(b.centre_cm1)
        if not ok.any():
            lines.append(f"  {b.name}: not fitted")
            continue
        c, e = b.centre_cm1[ok], b.centre_err[ok]
        line = (
            f"  {b.name}: centre {np.mean(c):.2f} cm⁻¹ (range {c.min():.2f}–{c.max():.2f}, median ± "
            f"{np.median(e):.2f}), FWHM {np.nanmean(b.fwhm_cm1):.1f} cm⁻¹"
        )
        if b.name in r.soc_slopes:
            slope, err = r.soc_slopes[b.name]
            line += f", shift {slope:+.2f} ± {err:.2f} cm⁻¹ per unit SOC"
        lines.append(line)
    if r.ratio:
        ratio, err = t.ratio(*r.ratio)
        ok = np.isfinite(ratio)
        if ok.any() and m is not None:
            low, high = (int(np.flatnonzero(ok)[f(ratio[ok])]) for f in (np.argmin, np.argmax))
            at = lambda i: f"({m.x_um[i]:g}, {m.y_um[i]:g}) µm"
            lines.append(
                f"  area ratio {r.ratio[0]} / {r.ratio[1]}: lowest {ratio[low]:.3f} ± {err[low]:.3f} at "
                f"{at(low)}, highest {ratio[high]:.3f} ± {err[high]:.3f} at {at(high)}"
            )
        elif ok.any():
            first, last = np.flatnonzero(ok)[[0, -1]]
            lines.append(
                f"  area ratio {r.ratio[0]} / {r.ratio[1]}: {ratio[first]:.3f} ± {err[first]:.3f} (first) → "
                f"{ratio[last]:.3f} ± {err[last]:.3f} (last), range {np.min(ratio[ok]):.3f}–{np.max(ratio[ok]):.3f}"
            )
    return lines


def raman_json(r: RamanResult) -> dict:
    def nums(a) -> list:
        return [None if not math.isfinite(v) else float(v) for v in np.asarray(a, float)]

    t = r.tracking
    out = {
        "stream": r.stream,
        "shape": t.shape,
        "bands": {
            b.name: {
                "centre_cm1": nums(b.centre_cm1),
                "centre_stderr": nums(b.centre_err),
                "fwhm_cm1": nums(b.fwhm_cm1),
                "area": nums(b.area),
                "area_stderr": nums(b.area_err),
                "shift_per_soc_cm1": r.soc_slopes.get(b.name, (None, None))[0],
                "shift_per_soc_stderr": r.soc_slopes.get(b.name, (None, None))[1],
            }
            for b in t.tracks
        },
        "frame_time": nums(t.time_s) if t.time_s is not None else None,
        "frame_Ewe": nums(t.ewe_V) if t.ewe_V is not None else None,
        "frame_soc": nums(t.soc) if t.soc is not None else None,
    }
    if r.map is not None:
        m = r.map
        out["map"] = {"kind": m.kind, "shape": m.shape, "x_um": nums(m.x_um), "y_um": nums(m.y_um)}
    if r.ratio:
        ratio, err = t.ratio(*r.ratio)
        out["area_ratio"] = {"bands": list(r.ratio), "value": nums(ratio), "stderr": nums(err)}
    return out


def draw_band_positions(ax, r: RamanResult) -> None:
    """Each band's centre shift from its mean, against state of charge (or time), with errors;
    for a map, the band-area ratio where each spectrum was taken."""
    t = r.tracking
    if r.map is not None:
        return _draw_map(ax, r)
    x = t.soc if t.soc is not None and np.isfinite(t.soc).any() else t.time_s
    label = "SOC" if x is t.soc else "time / s"
    for b in t.tracks:
        ok = np.isfinite(b.centre_cm1)
        if ok.any() and x is not None:
            ax.errorbar(
                x[ok], b.centre_cm1[ok] - np.mean(b.centre_cm1[ok]), b.centre_err[ok], fmt=".", ms=3, label=b.name
            )
    ax.set_xlabel(label)
    ax.set_ylabel("band centre − mean / cm⁻¹")
    ax.legend(fontsize=7)


def _draw_map(ax, r: RamanResult) -> None:
    m, t = r.map, r.tracking
    value, label = (
        (t.ratio(*r.ratio)[0], f"{r.ratio[0]} / {r.ratio[1]}") if r.ratio else (t.tracks[0].area, t.tracks[0].name)
    )
    if m.kind == "line":
        along = np.hypot(m.x_um - m.x_um[0], m.y_um - m.y_um[0])
        ax.plot(along, value, "o-", ms=3)
        ax.set(xlabel="distance along the line / µm", ylabel=f"area {label}", title="Raman line map")
        return
    points = ax.scatter(m.x_um, m.y_um, c=value, s=60, marker="s", cmap="viridis")
    ax.figure.colorbar(points, ax=ax, label=f"area {label}")
    ax.set(xlabel="x / µm", ylabel="y / µm", title="Raman area map")
    ax.set_aspect("equal", adjustable="datalim")
