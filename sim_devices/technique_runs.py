"""Each technique as a sequence of control segments on the sample grid (simulated firmware).

A segment is one constant kind of control: a current (with optional potential cut-offs) or a
potential programme (with an optional |I| end). Lengths are counted in samples of *programme
time* (the samples the step has actually run, holds excluded), so a hold freezes the programme
and a release resumes it exactly where it stopped. Every duration is rounded up to whole sample
intervals: a step lasts at least what it asks for.

Impedance (PEIS/GEIS): measuring frequency f takes ``eis_measure_s(f)`` = max(2 periods,
settle 0.1 s + integrate 0.1 s) of instrument time, frequencies one after another from high to
low. The DC point is held throughout; each segment ends at the sample in which one or more
frequencies finish, and those frequencies are reported there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from operando.devices.techniques import (
    ConstantCurrent,
    ConstantCurrentConstantVoltage,
    ConstantPotential,
    CyclicVoltammetry,
    GalvanostaticEis,
    Gitt,
    LinearSweep,
    OpenCircuit,
    PotentiostaticEis,
    at_rest_potential,
)

from .programmes import staircase

_GRID_EPS = 1e-9
EIS_SETTLE_S = 0.1  # the DC point and the sine settle before a frequency is integrated
EIS_MIN_INTEGRATION_S = 0.1  # shortest integration window at high frequencies


def eis_measure_s(frequency_Hz: float) -> float:
    """Instrument time one frequency takes: two periods, or settle + a short window if longer."""
    return max(2.0 / frequency_Hz, EIS_SETTLE_S + EIS_MIN_INTEGRATION_S)


def samples(duration_s: float, dt: float) -> int:
    """Whole samples covering ``duration_s`` (at least one)."""
    return max(1, math.ceil(duration_s / dt - _GRID_EPS))


@dataclass(frozen=True)
class Segment:
    mode: str  # "current" or "potential"
    end: int | None  # programme sample (counted from the step's start) it ends at; None: open
    current_A: float = 0.0
    e_min_V: float | None = None  # current mode: cut-off while discharging
    e_max_V: float | None = None  # current mode: cut-off while charging
    potential: Callable[[float], float] | None = None  # potential mode: E(programme time, s)
    i_stop_A: float | None = None  # potential mode: ends once |I| falls to this


class TechniqueRun:
    """The progress of one technique: its current segment and what comes after it."""

    def __init__(self, technique, dt: float, rest_potential_V: float):
        technique = at_rest_potential(technique, rest_potential_V)  # a start taken at open circuit
        self.tech = technique
        self.dt = dt
        self.segment: Segment | None = None  # None: the step is over
        self.pulses = 0  # GITT pulses run
        self._last_pulse = False
        self.eis_points: list[tuple[float, float]] = []  # PEIS/GEIS: (frequency, end time)
        self._eis_next = 0
        t = technique
        if isinstance(t, OpenCircuit):
            self.segment = Segment("current", samples(t.duration_s, dt))
        elif isinstance(t, ConstantCurrent):
            end = None if t.max_duration_s is None else samples(t.max_duration_s, dt)
            self.segment = Segment("current", end, t.current_A, t.e_min_V, t.e_max_V)
        elif isinstance(t, ConstantCurrentConstantVoltage):
            lo, hi = (None, t.e_hold_V) if t.current_A > 0 else (t.e_hold_V, None)
            self.segment = Segment("current", self._step_limit(), t.current_A, lo, hi)
        elif isinstance(t, LinearSweep):
            prog = staircase(t.e_start_V, [t.e_end_V], t.scan_rate_V_s, t.e_step_V)
            self.segment = Segment("potential", self._sweep_end(prog), potential=prog)
        elif isinstance(t, CyclicVoltammetry):
            scan = [t.e_vertex1_V, t.e_vertex2_V, t.e_start_V] * t.cycles
            prog = staircase(t.e_start_V, scan, t.scan_rate_V_s, t.e_step_V)
            self.segment = Segment("potential", self._sweep_end(prog), potential=prog)
        elif isinstance(t, ConstantPotential):
            e = float(t.e_V)
            end = samples(t.duration_s, dt)
            self.segment = Segment("potential", end, potential=lambda _t: e, i_stop_A=t.i_cutoff_A)
        elif isinstance(t, Gitt):
            self.segment = self._pulse(0)
        elif isinstance(t, (PotentiostaticEis, GalvanostaticEis)):
            end, points = 0.0, []
            for f in t.frequencies_Hz:
                end += eis_measure_s(f)
                points.append((float(f), end))
            self.eis_points = points
            if isinstance(t, PotentiostaticEis):
                e_dc = rest_potential_V if t.e_dc_V is None else float(t.e_dc_V)
                self._eis_dc = Segment("potential", None, potential=lambda _t: e_dc)
            else:
                self._eis_dc = Segment("current", None, t.i_dc_A)
            self.segment = self._eis_segment()
        else:  # pragma: no cover - guarded by the Technique union
            raise TypeError(f"unsupported technique {technique!r}")

    def _sweep_end(self, prog) -> int:
        # |dE|/e_step + 1 levels, each held one step: the final level (e_end, or e_start again
        # after a CV scan) is applied and measured too, as digital instruments sweep
        return samples(prog.duration_s + prog.step_s, self.dt)

    def _step_limit(self) -> int | None:
        limit = self.tech.max_duration_s
        return None if limit is None else samples(limit, self.dt)

    def _pulse(self, start: int) -> Segment:
        t = self.tech
        end = start + samples(t.pulse_s, self.dt)
        return Segment("current", end, t.current_A, t.e_min_V, t.e_max_V)

    def _eis_segment(self) -> Segment | None:
        if self._eis_next >= len(self.eis_points):
            return None
        end = samples(self.eis_points[self._eis_next][1], self.dt)
        dc = self._eis_dc
        return Segment(dc.mode, end, dc.current_A, potential=dc.potential)

    def finish_segment(self, at: int, cutoff: bool) -> list[tuple[float, float]]:
        """The segment ended at programme sample ``at`` (``cutoff``: its end condition fired).

        Moves to the next segment (None when the step is over); returns the impedance points
        (frequency, end time in programme seconds) completed by this segment.
        """
        t, seg = self.tech, self.segment
        done: list[tuple[float, float]] = []
        if isinstance(t, ConstantCurrentConstantVoltage) and seg.mode == "current" and cutoff:
            e = float(t.e_hold_V)
            end = seg.end if seg.end is None or seg.end > at else None
            self.segment = (
                None
                if seg.end is not None and at >= seg.end
                else Segment("potential", end, potential=lambda _t: e, i_stop_A=t.i_cutoff_A)
            )
        elif isinstance(t, Gitt):
            if seg.current_A != 0.0:  # a pulse ended: relax, then maybe pulse again
                self.pulses += 1
                last = t.max_pulses is not None and self.pulses >= t.max_pulses
                self._last_pulse = cutoff or last
                self.segment = Segment("current", at + samples(t.relax_s, self.dt))
            else:
                self.segment = None if self._last_pulse else self._pulse(at)
        elif self.eis_points:
            while self._eis_next < len(self.eis_points) and samples(self.eis_points[self._eis_next][1], self.dt) <= at:
                done.append(self.eis_points[self._eis_next])
                self._eis_next += 1
            self.segment = self._eis_segment()
        else:
            self.segment = None
        return done
