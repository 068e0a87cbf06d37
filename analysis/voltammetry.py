"""Cyclic-voltammetry kinetics: peak currents, b-values (i_p = a v^b) and Dunn's k1/k2 split.

b ~ 0.5 means diffusion-limited (bulk) storage, b ~ 1 capacitive/interfacial storage; Dunn's
i(V) = k1 v + k2 v^1/2 gives, at each potential, the part of the current that scales with v
(capacitive). Functions take arrays (numpy only), one CV step at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CvScan:
    """The last full scan of one CV step."""

    step: int
    scan_rate_V_s: float
    potential_V: np.ndarray
    current_A: np.ndarray
    scans_in_step: int


@dataclass(frozen=True)
class PowerLawFit:
    """log10|i_p| = log10 a + b log10 v, least squares; b_stderr is nan with only two rates."""

    b: float
    b_stderr: float
    a: float  # A at v = 1 V/s
    n: int


@dataclass(frozen=True)
class DunnSplit:
    potentials_V: np.ndarray  # grid of each branch (anodic first, then cathodic)
    k1: np.ndarray  # A s/V: capacitive coefficient at each grid potential
    k2: np.ndarray  # A (s/V)^1/2: diffusion coefficient
    scan_rates_V_s: np.ndarray
    capacitive_fraction: np.ndarray  # per scan rate: sum|k1 v| / sum|i| over the grid


def scan_rate(time_s, potential_V) -> float:
    """Sweep rate from the data: median |dE/dt| over samples where E moves (a staircase sampled
    at its own period moves every sample; holds at vertices do not count)."""
    t = np.asarray(time_s, float)
    e = np.asarray(potential_V, float)
    dt, de = np.diff(t), np.diff(e)
    ok = (dt > 0) & (np.abs(de) > 0)
    if not ok.any():
        raise ValueError("the potential does not move: not a sweep")
    return float(np.median(np.abs(de[ok]) / dt[ok]))


def last_scan(step: int, time_s, potential_V, current_A) -> CvScan:
    """The last full scan of a CV step: a scan (start -> vertex -> vertex -> start) travels twice
    the potential window, so it is the stretch of the last 2*window of path."""
    t = np.asarray(time_s, float)
    e = np.asarray(potential_V, float)
    i = np.asarray(current_A, float)
    if e.size < 8:
        raise ValueError(f"step {step}: too few samples for a CV ({e.size})")
    path = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(e)))])
    per_scan = 2.0 * (e.max() - e.min())
    n_scans = max(1, int(round(path[-1] / per_scan)))
    sel = path >= path[-1] - per_scan * (1 + 1e-6)
    return CvScan(step, scan_rate(t, e), e[sel], i[sel], n_scans)


def smooth(y, window: int = 5) -> np.ndarray:
    """Centred moving average (light: takes the sample noise off the peak, keeps its height)."""
    y = np.asarray(y, float)
    if window <= 1 or y.size < window:
        return y.copy()
    pad = window // 2
    padded = np.pad(y, pad, mode="edge")
    return np.convolve(padded, np.ones(window) / window, mode="valid")


def peak_currents(scan: CvScan, window: int = 5) -> tuple[float, float]:
    """(anodic, cathodic) peak currents of a scan: the largest positive and negative current."""
    i = smooth(scan.current_A, window)
    return float(i.max()), float(i.min())


def power_law_fit(scan_rates_V_s, peak_currents_A) -> PowerLawFit:
    """b and its standard error from log|i_p| vs log v."""
    v = np.asarray(scan_rates_V_s, float)
    ip = np.abs(np.asarray(peak_currents_A, float))
    if v.size < 2 or np.unique(v).size < 2:
        raise ValueError("b-value needs peaks at two or more scan rates")
    if np.any(ip <= 0) or np.any(v <= 0):
        raise ValueError("peak currents and scan rates must be non-zero")
    x, y = np.log10(v), np.log10(ip)
    xm = x.mean()
    sxx = float(((x - xm) ** 2).sum())
    b = float(((x - xm) * (y - y.mean())).sum() / sxx)
    intercept = y.mean() - b * xm
    resid = y - (intercept + b * x)
    stderr = float(np.sqrt((resid**2).sum() / (x.size - 2) / sxx)) if x.size > 2 else float("nan")
    return PowerLawFit(b, stderr, float(10**intercept), int(x.size))


def _branch(scan: CvScan, anodic: bool, grid: np.ndarray) -> np.ndarray:
    """Current of the rising (anodic) or falling (cathodic) branch interpolated on ``grid``."""
    e = scan.potential_V
    de = np.gradient(e)
    sel = de > 0 if anodic else de < 0
    order = np.argsort(e[sel])
    es, ii = e[sel][order], smooth(scan.current_A, 5)[sel][order]
    return np.interp(grid, es, ii)


def dunn_split(scans: list[CvScan], n_points: int = 50, margin: float = 0.05) -> DunnSplit:
    """k1, k2 at ``n_points`` potentials per branch, from i/v^1/2 = k1 v^1/2 + k2 (least squares
    over the scan rates); the grid skips ``margin`` of the window at each vertex, where the
    current is dominated by the reversal."""
    if len({s.scan_rate_V_s for s in scans}) < 2:
        raise ValueError("Dunn's analysis needs scans at two or more scan rates")
    lo = max(s.potential_V.min() for s in scans)
    hi = min(s.potential_V.max() for s in scans)
    span = hi - lo
    grid = np.linspace(lo + margin * span, hi - margin * span, n_points)
    v = np.array([s.scan_rate_V_s for s in scans])
    sv = np.sqrt(v)
    currents = np.array(
        [  # (rates, 2 * n_points)
            np.concatenate([_branch(s, True, grid), _branch(s, False, grid)]) for s in scans
        ]
    )
    design = np.column_stack([sv, np.ones_like(sv)])
    coef, *_ = np.linalg.lstsq(design, currents / sv[:, None], rcond=None)
    k1, k2 = coef
    total = np.abs(currents).sum(axis=1)
    cap = np.abs(np.outer(v, k1)).sum(axis=1) / np.where(total > 0, total, np.nan)
    return DunnSplit(np.concatenate([grid, grid]), k1, k2, v, cap)
