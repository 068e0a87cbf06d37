"""Recent electrochemical samples in memory: what schedules and frame stamps look at.

The HDF5 file holds everything; this keeps the last ``capacity`` samples so that a detector
frame can be given the echem state at its exposure midpoint (interpolated) and schedules can
scan new samples for threshold crossings, without touching the disk. The capacity bounds the
memory of a run of any length (72 bytes a sample, twice the capacity at most: 14 MB for the
default 100,000); an instant older than that is looked up in the file (``Potentiostat.state_at``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .techniques import ECHEM_COLUMNS


@dataclass(frozen=True)
class EchemState:
    """The cell at one instant of the experiment clock (interpolated between samples)."""

    time: float
    Ewe: float
    I: float  # noqa: E741 - the column's name
    charge: float
    cycle: int
    step: int
    instrument_time: float = float("nan")  # the potentiostat's own clock at this instant


class EchemHistory:
    def __init__(self, capacity: int = 100_000, columns: dict = ECHEM_COLUMNS):
        self.capacity = capacity
        # Storage of twice the capacity: appends are copies into free room, and only when it
        # is full are the newest ``capacity`` samples moved to the front (amortised O(1)).
        self._store = {k: np.empty(2 * capacity, dtype=dt) for k, (_, dt) in columns.items()}
        self._fill = 0
        self._first = 0  # global index of the first sample kept
        self._count = 0  # samples ever added

    @property
    def _cols(self) -> dict[str, np.ndarray]:
        return {k: v[: self._fill] for k, v in self._store.items()}

    @property
    def count(self) -> int:
        return self._count

    @property
    def last_time(self) -> float | None:
        t = self._cols["timestamp"]
        return float(t[-1]) if t.size else None

    def first_time(self, time_column: str = "timestamp") -> float | None:
        """The oldest instant still kept (None when empty)."""
        return float(self._store[time_column][0]) if self._fill else None

    def append(self, block: dict[str, np.ndarray]) -> None:
        n = len(block["timestamp"])
        if n == 0:
            return
        if n > self.capacity:  # keep only what fits
            block = {k: np.asarray(v)[-self.capacity :] for k, v in block.items()}
            self._first += n - self.capacity
            self._count += n - self.capacity
            n = self.capacity
        if self._fill + n > 2 * self.capacity:
            keep = self.capacity - n
            for arr in self._store.values():
                arr[:keep] = arr[self._fill - keep : self._fill]
            self._first += self._fill - keep
            self._fill = keep
        for key, arr in self._store.items():
            arr[self._fill : self._fill + n] = block[key]
        self._fill += n
        self._count += n

    def since(self, index: int) -> tuple[int, dict[str, np.ndarray]]:
        """Samples with global index >= ``index`` (as many as are still kept), and the next index."""
        start = max(index - self._first, 0)
        return self._count, {k: v[start:] for k, v in self._cols.items()}

    def state_at(self, t: float, time_column: str = "timestamp") -> EchemState | None:
        """Linear interpolation at ``t`` of ``time_column``; integers (cycle, step) from the
        sample at or before t.

        Outside the kept samples the nearest sample is used; None when there are none.
        """
        ts = self._cols[time_column]
        if ts.size == 0:
            return None
        i = int(np.searchsorted(ts, t, side="right") - 1)
        lo, hi = max(i, 0), min(i + 2, ts.size)  # the two samples around t: O(log n) a lookup
        return interpolate_state(t, {k: v[lo:hi] for k, v in self._cols.items()}, time_column, i - lo)


def interpolate_state(t: float, rows: dict[str, np.ndarray], time_column: str, at: int) -> EchemState:
    """The state at ``t`` from a few consecutive rows around it; ``at`` is the row at or before
    ``t`` (-1 if ``t`` is before them all)."""
    ts = rows[time_column]
    at = int(np.clip(at, 0, ts.size - 1))
    interp = {k: float(np.interp(t, ts, rows[k])) for k in ("Ewe", "charge")}
    inst = rows.get("instrument_time")
    return EchemState(
        instrument_time=float(np.interp(t, ts, inst)) if inst is not None else float("nan"),
        time=float(t),
        Ewe=interp["Ewe"],
        # Current is a step function: take the sample's own value, not a blend across a step.
        I=float(rows["I"][at]),
        charge=interp["charge"],
        cycle=int(rows["cycle"][at]),
        step=int(rows["step"][at]),
    )
