"""Map an instrument's own clock onto the experiment clock: offset and drift, estimated live.

Every block of samples arrives after its last sample was measured, so each (instrument time of
the last sample, experiment time of arrival) pair lies on or above the true mapping line; the
lowest pairs bound it. The fit keeps the earliest arrival in each of several instrument-time
bins, fits a line through those minima (the drift), then lowers it onto the lowest pair (the
offset). Jitter only ever delays arrivals, so it cannot pull the line early.
"""

from __future__ import annotations

import numpy as np

_BINS = 32


class TimebaseMapper:
    def __init__(self, bin_s: float = 1.0):
        self.bin_s = bin_s
        self._minima: dict[int, tuple[float, float]] = {}  # bin -> (inst, host - inst) lowest
        self.offset_s = 0.0  # host = inst + offset + drift * (inst - inst0)
        self.drift = 0.0
        self.inst0: float | None = None
        self.pairs = 0

    def observe(self, inst_t: float, host_t: float) -> None:
        if self.inst0 is None:
            self.inst0 = inst_t
        self.pairs += 1
        key = int((inst_t - self.inst0) // self.bin_s)
        delay = host_t - inst_t
        if key not in self._minima or delay < self._minima[key][1]:
            self._minima[key] = (inst_t, delay)
        if len(self._minima) > _BINS:  # widen the bins: keep the estimate cheap for weeks
            self.bin_s *= 2
            merged: dict[int, tuple[float, float]] = {}
            for x, d in self._minima.values():
                k = int((x - self.inst0) // self.bin_s)
                if k not in merged or d < merged[k][1]:
                    merged[k] = (x, d)
            self._minima = merged
        self._fit()

    def _fit(self) -> None:
        x = np.array([p[0] for p in self._minima.values()]) - self.inst0
        d = np.array([p[1] for p in self._minima.values()])
        drift = float(np.polyfit(x, d, 1)[0]) if x.size >= 3 and np.ptp(x) > 0 else 0.0
        self.drift = drift
        self.offset_s = float(np.min(d - drift * x))

    def to_host(self, inst_t):
        if self.inst0 is None:
            return np.asarray(inst_t, dtype=float)
        inst = np.asarray(inst_t, dtype=float)
        return inst + self.offset_s + self.drift * (inst - self.inst0)

    def to_instrument(self, host_t):
        """The inverse of ``to_host``: the instrument's clock reading at experiment time ``host_t``."""
        if self.inst0 is None:
            return np.asarray(host_t, dtype=float)
        host = np.asarray(host_t, dtype=float)
        return (host - self.offset_s + self.drift * self.inst0) / (1.0 + self.drift)

    def as_dict(self) -> dict:
        return {
            "offset_s": self.offset_s,
            "drift_ppm": self.drift * 1e6,
            "instrument_time0": self.inst0,
            "pairs": self.pairs,
        }
