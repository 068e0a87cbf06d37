"""Min/max envelope of a growing time series (no Qt): what an oscilloscope display draws.

A plot of 10^6 samples on a 1000-pixel axis shows at most two values per pixel column: the lowest
and the highest. ``Envelope`` keeps a pyramid of per-bucket minima and maxima (buckets of 8, 32,
128 … rows), extended only by the rows that arrived since the last call, so a panel hands
pyqtgraph a few thousand points for any visible range instead of every sample: O(new rows) to
update, O(pixels) to draw, whatever the length of the run. Every extreme of the range is kept.
"""

from __future__ import annotations

import numpy as np

from .model import Column

BASE = 8  # rows per bucket of the finest level
FAN = 4  # buckets of one level per bucket of the next


class Envelope:
    def __init__(self):
        self.n = 0  # rows seen
        self.levels: list[tuple[Column, Column]] = []  # (minima, maxima); level k: BASE*FAN**k rows

    def bucket_rows(self, level: int) -> int:
        return BASE * FAN**level

    def update(self, y: np.ndarray) -> None:
        """Fold in the rows of ``y`` beyond those already seen (a shorter ``y``: a new series)."""
        if len(y) < self.n:
            self.__init__()
        self.n = len(y)
        lo_src, hi_src, size = y, y, BASE  # what the next level is built from
        k = 0
        while True:
            if k == len(self.levels):
                if len(lo_src) < size:
                    return
                self.levels.append((Column(), Column()))
            mins, maxs = self.levels[k]
            have, full = mins.n, len(lo_src) // size
            if full > have:
                a, b = have * size, full * size
                mins.append(lo_src[a:b].reshape(-1, size).min(axis=1))
                maxs.append(hi_src[a:b].reshape(-1, size).max(axis=1))
            lo_src, hi_src, size = mins.values, maxs.values, FAN
            k += 1

    def window(self, x: np.ndarray, y: np.ndarray, i0: int, i1: int, max_points: int):
        """(x, y) to draw for rows [i0, i1): the rows themselves if few, else min/max pairs.

        Each bucket becomes two points at its first row's x (minimum, then maximum), as
        pyqtgraph's own peak downsampling does; the last row is always kept as it is.
        """
        self.update(y)
        i0, i1 = max(i0, 0), min(i1, len(y))
        rows = i1 - i0
        if rows <= max_points:
            return x[i0:i1], y[i0:i1]
        level = 0
        while level + 1 < len(self.levels) and 2 * rows / self.bucket_rows(level) > max_points:
            level += 1
        s = self.bucket_rows(level)
        b0, b1 = -(-i0 // s), i1 // s  # full buckets inside the range
        mins, maxs = self.levels[level]
        b1 = min(b1, mins.n)
        xs = [x[i0 : i0 + 1], x[b0 * s : b1 * s : s], x[b1 * s : b1 * s + 1]]
        lo = [
            y[i0 : b0 * s].min(keepdims=True) if b0 * s > i0 else y[:0],
            mins.values[b0:b1],
            y[b1 * s : i1].min(keepdims=True) if i1 > b1 * s else y[:0],
        ]
        hi = [
            y[i0 : b0 * s].max(keepdims=True) if b0 * s > i0 else y[:0],
            maxs.values[b0:b1],
            y[b1 * s : i1].max(keepdims=True) if i1 > b1 * s else y[:0],
        ]
        xs = [xs[0] if len(lo[0]) else xs[0][:0], xs[1], xs[2] if len(lo[2]) else xs[2][:0]]
        bx = np.concatenate(xs)
        by = np.empty(2 * len(bx))
        by[0::2], by[1::2] = np.concatenate(lo), np.concatenate(hi)
        return np.append(np.repeat(bx, 2), x[i1 - 1]), np.append(by, y[i1 - 1])
