"""Per-cycle curves from the echem columns (no Qt): E vs capacity and dQ/dV.

Both are recomputed only for cycles whose rows changed: with millions of samples, only the cycle
being measured grows, and finished cycles are cached.
"""

from __future__ import annotations

import numpy as np

DQDV_BIN_V = 0.01  # 10 mV bins: smooth enough for 1 s sampling, fine enough to separate peaks
CAPACITY_BINS = 500  # per step: 1,001 points, 2 or more per pixel column of the panel's width


def thin_monotonic(x: np.ndarray, y: np.ndarray, bins: int = CAPACITY_BINS):
    """A piece whose x never decreases, as min/max pairs of y per x bin (at most 2*bins+1 points).

    What a plot a few hundred pixels wide can show of it, extremes included: an hour of 1 s
    samples is 3,600 line segments to paint on every frame, 2,000 after this. A piece whose x
    goes back (a CV's capacity) is returned as it is.
    """
    n = len(x)
    if n <= 2 * bins + 1 or not (x[-1] > x[0]) or np.any(np.diff(x) < 0):
        return x, y
    idx = np.minimum(((x - x[0]) * (bins / (x[-1] - x[0]))).astype(np.int64), bins - 1)
    starts = np.flatnonzero(np.r_[True, np.diff(idx) != 0])
    xs = np.repeat(x[starts], 2)
    ys = np.empty(2 * len(starts))
    ys[0::2] = np.minimum.reduceat(y, starts)
    ys[1::2] = np.maximum.reduceat(y, starts)
    return np.append(xs, x[-1]), np.append(ys, y[-1])


class CycleIndex:
    """Row ranges of each cycle and step, extended incrementally as rows arrive."""

    def __init__(self):
        self.n = 0
        self.cycle_starts: list[int] = []
        self.cycles: list[int] = []
        self.step_starts: list[int] = []

    def update(self, cycle: np.ndarray, step: np.ndarray) -> None:
        if len(cycle) < self.n:  # a new run
            self.__init__()
        if len(cycle) == self.n:
            return
        lo = max(self.n - 1, 0)
        if self.n == 0:
            self.cycle_starts, self.cycles, self.step_starts = [0], [int(cycle[0])], [0]
        new_c = lo + 1 + np.flatnonzero(np.diff(cycle[lo:]))
        new_s = lo + 1 + np.flatnonzero(np.diff(step[lo:]))
        self.cycle_starts += new_c.tolist()
        self.cycles += [int(cycle[i]) for i in new_c]
        self.step_starts += new_s.tolist()
        self.n = len(cycle)

    def cycle_range(self, k: int) -> tuple[int, int]:
        """Rows [start, stop) of the k-th cycle seen (not the cycle number)."""
        stop = self.cycle_starts[k + 1] if k + 1 < len(self.cycle_starts) else self.n
        return self.cycle_starts[k], stop

    def steps_in(self, start: int, stop: int) -> list[tuple[int, int]]:
        bounds = [s for s in self.step_starts if start < s < stop]
        edges = [start, *bounds, stop]
        return list(zip(edges[:-1], edges[1:]))


def capacity_curve(ewe, current, charge, steps, mass_g: float | None):
    """E vs capacity of one cycle: each current step starts at 0, rests left out; NaN-separated."""
    xs, ys = [], []
    scale = 1.0 / mass_g if mass_g else 1.0
    for a, b in steps:
        if b - a < 2 or not np.any(current[a:b] != 0):
            continue
        x, y = thin_monotonic(np.abs(charge[a:b] - charge[a]) * scale, ewe[a:b])
        xs.append(x)
        ys.append(y)
        xs.append([np.nan])
        ys.append([np.nan])
    if not xs:
        return np.empty(0), np.empty(0)
    return np.concatenate(xs), np.concatenate(ys)


def dqdv_curve(ewe, current, charge, steps, mass_g: float | None, bin_v: float = DQDV_BIN_V):
    """dQ/dV of one cycle per current step (charge > 0, discharge < 0), binned on E; NaN-separated."""
    xs, ys = [], []
    scale = 1.0 / mass_g if mass_g else 1.0
    for a, b in steps:
        if b - a < 3 or not np.any(current[a:b] != 0):
            continue
        e, q = ewe[a:b], charge[a:b] * scale
        dq = np.diff(q)
        mid = 0.5 * (e[1:] + e[:-1])
        lo = np.floor(mid.min() / bin_v)
        idx = (np.floor(mid / bin_v) - lo).astype(np.int64)
        sums = np.bincount(idx, weights=dq)
        counts = np.bincount(idx)
        keep = counts > 0
        centres = (np.arange(len(sums)) + lo + 0.5) * bin_v
        xs += [centres[keep], [np.nan]]
        ys += [sums[keep] / bin_v, [np.nan]]
    if not xs:
        return np.empty(0), np.empty(0)
    return np.concatenate(xs), np.concatenate(ys)


def _spread_dq(e: np.ndarray, q: np.ndarray, bin_v: float):
    """Charge per E bin, each segment's dq spread evenly over the E range it spans.

    Exact when the charge is linear in E between two rows, which is what the rows of a decimated
    table stand for: a segment of 6 mV with 10 mV bins would otherwise put its whole dq in one
    bin and none in the next (a comb of alternate high and low bins). Returns (first bin, sums).
    """
    e0, e1, dq = e[:-1], e[1:], np.diff(q)
    lo, hi = np.minimum(e0, e1), np.maximum(e0, e1)
    first = int(np.floor(lo.min() / bin_v))
    nbins = int(np.floor(hi.max() / bin_v)) - first + 1
    edges = (first + np.arange(nbins + 1)) * bin_v
    width = hi - lo
    point = width <= 1e-9 * bin_v  # E did not move: all of dq in its bin
    sums = np.bincount(
        np.clip((np.floor(lo[point] / bin_v) - first).astype(np.int64), 0, nbins - 1),
        weights=dq[point],
        minlength=nbins,
    )
    rate, lo, hi = dq[~point] / width[~point], lo[~point], hi[~point]

    def ramp(starts):  # sum over segments of rate * max(x - start, 0), at every edge x
        order = np.argsort(starts, kind="stable")
        a = np.concatenate([[0.0], np.cumsum(rate[order])])
        b = np.concatenate([[0.0], np.cumsum(rate[order] * starts[order])])
        k = np.searchsorted(starts[order], edges, side="right")
        return edges * a[k] - b[k]

    covered = ramp(lo) - ramp(hi)  # charge from segments below each edge
    return first, sums + np.diff(covered)


def dqdv_spread(ewe, current, charge, steps, mass_g: float | None, bin_v: float = DQDV_BIN_V):
    """dQ/dV as ``dqdv_curve`` from the rows of a decimated table (``overview.py``): each
    segment's charge spread over the E range it spans (``_spread_dq``); every bin between the
    step's lowest and highest E is kept, and the bins add up to the step's charge exactly."""
    xs, ys = [], []
    scale = 1.0 / mass_g if mass_g else 1.0
    for a, b in steps:
        if b - a < 2 or not np.any(current[a:b] != 0):
            continue
        first, sums = _spread_dq(np.asarray(ewe[a:b], float), np.asarray(charge[a:b], float) * scale, bin_v)
        xs += [(np.arange(len(sums)) + first + 0.5) * bin_v, [np.nan]]
        ys += [sums / bin_v, [np.nan]]
    if not xs:
        return np.empty(0), np.empty(0)
    return np.concatenate(xs), np.concatenate(ys)


class CycleCurves:
    """Cached per-cycle curves of one kind (``capacity_curve`` or ``dqdv_curve``)."""

    def __init__(self, fn):
        self.fn = fn
        self.index = CycleIndex()
        self._cache: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}  # k -> (rows, x, y)

    def curves(self, echem, mass_g, last: int = 10) -> list[tuple[int, np.ndarray, np.ndarray]]:
        """(cycle number, x, y) of the last ``last`` cycles that have a current step."""
        cycle, step = echem["cycle"], echem["step"]
        if len(cycle) < self.index.n:
            self._cache.clear()
        self.index.update(cycle, step)
        out = []
        for k in range(len(self.index.cycle_starts) - 1, -1, -1):
            a, b = self.index.cycle_range(k)
            cached = self._cache.get(k)
            if cached is None or cached[0] != b - a:
                x, y = self.fn(echem["Ewe"], echem["I"], echem["charge"], self.index.steps_in(a, b), mass_g)
                cached = self._cache[k] = (b - a, x, y)
            if len(cached[1]):
                out.append((self.index.cycles[k], cached[1], cached[2]))
            if len(out) == last:
                break
        return out[::-1]
