"""Potential programmes for ``SimCell.run_potential``: holds, linear sweeps and staircases (CV).

A programme is any function of the time since it started (s) -> Ewe (V); these helpers also
know how long they last, so a technique can sample them to the end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LinearSweep:
    """Piecewise-linear Ewe(t): from ``e_start`` through each vertex at ``rate_V_s``.

    ``LinearSweep(0.5, [1.0, 0.5], 1e-3)`` is one CV cycle 0.5 -> 1.0 -> 0.5 V at 1 mV/s.
    """

    e_start_V: float
    vertices_V: tuple[float, ...]
    rate_V_s: float

    def __post_init__(self):
        if not self.rate_V_s > 0:
            raise ValueError(f"rate_V_s must be > 0, got {self.rate_V_s!r}")
        object.__setattr__(self, "vertices_V", tuple(float(v) for v in self.vertices_V))
        points = np.array((self.e_start_V, *self.vertices_V), dtype=float)
        times = np.concatenate(([0.0], np.cumsum(np.abs(np.diff(points)) / self.rate_V_s)))
        object.__setattr__(self, "_points", points)
        object.__setattr__(self, "_times", times)

    @property
    def duration_s(self) -> float:
        return float(self._times[-1])

    def __call__(self, t: float) -> float:
        return float(np.interp(t, self._times, self._points))

    def sample_times(self, interval_s: float) -> np.ndarray:
        """Sample times after the start, every ``interval_s``, up to the end of the sweep."""
        n = int(self.duration_s / interval_s + 1e-9)
        return np.arange(1, n + 1) * interval_s


def linear_sweep(e_start_V: float, vertices_V: Sequence[float], rate_V_s: float) -> LinearSweep:
    return LinearSweep(float(e_start_V), tuple(vertices_V), float(rate_V_s))


@dataclass(frozen=True)
class Staircase:
    """A sweep as a digital potentiostat applies it: steps of ``e_step_V`` every e_step/rate s.

    Step k covers (k tau, (k + 1) tau] and holds the sweep's value at k tau: e_start for the
    first step, then the sweep (vertices and all) one step behind. A sample at a step's end
    (where instruments measure the current) thus still sees that step's potential.
    """

    sweep: LinearSweep
    e_step_V: float

    def __post_init__(self):
        if not self.e_step_V > 0:
            raise ValueError(f"e_step_V must be > 0, got {self.e_step_V!r}")

    @property
    def step_s(self) -> float:
        return self.e_step_V / self.sweep.rate_V_s

    @property
    def duration_s(self) -> float:
        return self.sweep.duration_s

    def __call__(self, t: float) -> float:
        tau = self.step_s
        k = max(0, math.ceil(t / tau - 1e-9) - 1)  # tolerance: grid times on a step edge
        return self.sweep(k * tau)


def staircase(e_start_V: float, vertices_V: Sequence[float], rate_V_s: float, e_step_V: float) -> Staircase:
    return Staircase(linear_sweep(e_start_V, vertices_V, rate_V_s), float(e_step_V))
