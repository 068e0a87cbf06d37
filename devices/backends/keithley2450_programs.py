"""Each technique as a host-timed programme of source settings and readings on a Keithley 2450.

Mixed into ``Keithley2450Backend``, which provides ``smu``, ``clock``, ``exchange``, ``record``,
the stop/wake events and the limits. Times inside a step are "elapsed": experiment seconds since
the step began, minus any time it was held, so a hold freezes the step where it stands.
"""

from __future__ import annotations

import math

from operando.devices.techniques import (
    ConstantCurrent,
    ConstantCurrentConstantVoltage,
    ConstantPotential,
    CyclicVoltammetry,
    Gitt,
    LinearSweep,
    OpenCircuit,
    ScheduledStep,
    at_rest_potential,
    starts_at_rest,
)

# A current source's voltage limit sits this far beyond its cut-off: protection, not control.
VLIM_MARGIN_V = 0.05


class Stopped(Exception):
    """open_circuit() asked the programme to stop."""


class StepPrograms:
    # ---- running one step ----------------------------------------------------------------
    def run_step(self, step: ScheduledStep) -> None:
        self._step = step
        self._t0, self._held_s = self.clock.time(), 0.0
        self._applied = None
        t = step.technique
        if starts_at_rest(t):  # measure where the cell rests (0 A source), then start there
            self.apply(self.smu.source_current, 0.0, self.v_limit_V)
            rest_V, _ = self.sample()
            t = at_rest_potential(t, rest_V)
        if isinstance(t, OpenCircuit):
            self.apply(self.smu.source_current, 0.0, self.v_limit_V)
            self.run_for(t.duration_s)
        elif isinstance(t, ConstantCurrent):
            self.apply(self.smu.source_current, t.current_A, self._vlim(t.current_A, t.e_max_V))
            self.run_for(t.max_duration_s, self._cutoff(t.current_A, t.e_min_V, t.e_max_V))
        elif isinstance(t, ConstantCurrentConstantVoltage):
            self._cccv(t)
        elif isinstance(t, ConstantPotential):
            self.apply(self.smu.source_voltage, t.e_V, self.i_limit_A)
            ends = None if t.i_cutoff_A is None else (lambda e, i: abs(i) <= t.i_cutoff_A)
            self.run_for(t.duration_s, ends)
        elif isinstance(t, LinearSweep):
            sign = 1.0 if t.e_end_V > t.e_start_V else -1.0
            self._sweep(lambda s: t.e_start_V + sign * s, t.duration_s * t.scan_rate_V_s, t)
        elif isinstance(t, CyclicVoltammetry):
            self._sweep(_triangle(t), t.duration_s * t.scan_rate_V_s, t)
        elif isinstance(t, Gitt):
            self._gitt(t)
        else:  # check() refuses these before anything is sent
            raise ValueError(f"{self.description}: no programme for {t.kind}")

    def _vlim(self, current: float, e_max: float | None) -> float:
        if current > 0 and e_max is not None and e_max > 0:
            return e_max + VLIM_MARGIN_V
        return self.v_limit_V

    @staticmethod
    def _cutoff(current: float, e_min: float | None, e_max: float | None):
        if current > 0 and e_max is not None:
            return lambda e, i: e >= e_max
        if current < 0 and e_min is not None:
            return lambda e, i: e <= e_min
        return None

    def _cccv(self, t: ConstantCurrentConstantVoltage) -> None:
        tapered = lambda e, i: abs(i) <= t.i_cutoff_A
        if t.current_A > 0 and t.e_hold_V > 0:
            # the instrument's own compliance holds e_hold_V: no gap between CC and CV
            self.apply(self.smu.source_current, t.current_A, t.e_hold_V)
            self.run_for(t.max_duration_s, tapered)
            return
        reached = self._cutoff(t.current_A, t.e_hold_V, t.e_hold_V)
        self.apply(self.smu.source_current, t.current_A, self.v_limit_V)
        if self.run_for(t.max_duration_s, reached):
            left = None if t.max_duration_s is None else t.max_duration_s - self.elapsed()
            if left is None or left > 0:
                self.apply(self.smu.source_voltage, t.e_hold_V, abs(t.current_A))
                self.run_for(left, tapered)

    def _sweep(self, e_of_path, path_V: float, t) -> None:
        """Staircase along the path (V travelled -> Ewe): one level and one reading per stair."""
        rate = t.scan_rate_V_s
        stair_s = max(t.e_step_V / rate, self.min_stair_s())
        step_V = max(t.e_step_V, stair_s * rate)
        duration = path_V / rate
        k = 0
        while k * stair_s < duration - 1e-9:
            travelled = math.floor(k * stair_s * rate / step_V + 1e-9) * step_V
            self.apply(self.smu.source_voltage, e_of_path(min(travelled, path_V)), self.i_limit_A)
            self.wait_elapsed(min((k + 1) * stair_s, duration))
            self.sample()
            k += 1
        self.apply(self.smu.source_voltage, e_of_path(path_V), self.i_limit_A)
        self.sample()

    def _gitt(self, t: Gitt) -> None:
        cutoff = self._cutoff(t.current_A, t.e_min_V, t.e_max_V)
        pulses = 0
        while True:
            self.apply(self.smu.source_current, t.current_A, self._vlim(t.current_A, t.e_max_V))
            crossed = self.run_for(t.pulse_s, cutoff)
            pulses += 1
            self.apply(self.smu.source_current, 0.0, self.v_limit_V)
            self.run_for(t.relax_s)
            if crossed or (t.max_pulses is not None and pulses >= t.max_pulses):
                return

    # ---- primitives --------------------------------------------------------------------------
    def apply(self, fn, *args) -> None:
        """Set the source (remembered, to be set again after a hold)."""
        self._check_stop()
        self._applied = (fn, args)
        self.exchange(fn, *args)

    def elapsed(self) -> float:
        return self.clock.time() - self._t0 - self._held_s

    def sample(self) -> tuple[float, float]:
        self._check_stop()
        ewe, current = self.exchange(self.smu.measure)
        self.record(self._step, ewe, current, self.clock.time())
        return ewe, current

    def run_for(self, duration_s: float | None, ends=None) -> bool:
        """Sample every ``sample_interval_s`` for ``duration_s`` (None: until ``ends``); True if
        ``ends(Ewe, I)`` ended it. The first sample is taken at once, the last at the end."""
        start = self.elapsed()
        k = 0
        while True:
            ewe, current = self.sample()
            if ends is not None and ends(ewe, current):
                return True
            if duration_s is not None and self.elapsed() - start >= duration_s - 1e-9:
                return False
            k += 1
            target = start + k * self.sample_interval_s
            if duration_s is not None:
                target = min(target, start + duration_s)
            self.wait_elapsed(target)

    def wait_elapsed(self, target: float) -> None:
        while True:
            self._check_stop()
            if self._hold_wanted:
                self._hold()
            left = target - self.elapsed()
            if left <= 0:
                return
            self._wake.wait(self.clock.wall_seconds(left))
            self._wake.clear()

    def _hold(self) -> None:
        began = self.clock.time()
        self.exchange(self.smu.source_current, 0.0, self.v_limit_V)
        while self._hold_wanted:
            self._check_stop()
            ewe, current = self.exchange(self.smu.measure)
            self.record(self._step, ewe, current, self.clock.time())
            self._wake.wait(self.clock.wall_seconds(self.sample_interval_s))
            self._wake.clear()
        self._held_s += self.clock.time() - began
        if self._applied is not None:
            self.exchange(*((self._applied[0],) + self._applied[1]))

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise Stopped()


def _triangle(t: CyclicVoltammetry):
    """Path travelled (V) -> Ewe for start -> vertex1 -> vertex2 -> start, repeated."""
    legs = [(t.e_start_V, t.e_vertex1_V), (t.e_vertex1_V, t.e_vertex2_V), (t.e_vertex2_V, t.e_start_V)]
    scan = sum(abs(b - a) for a, b in legs)

    def e_of_path(s: float) -> float:
        s = s % scan if s < t.cycles * scan - 1e-12 else scan  # the very end: back at e_start
        for a, b in legs:
            span = abs(b - a)
            if s <= span:
                return a + math.copysign(s, b - a)
            s -= span
        return t.e_start_V

    return e_of_path
