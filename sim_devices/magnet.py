"""Magnet and temperature control of a simulated SQUID-VSM (MPMS3-like), in experiment time.

Field: ramps linearly at ``ramp_T_s`` to a new setpoint; on arrival the superconducting magnet
relaxes (flux creep), an offset of ``relax_fraction`` of the step decaying with ``relax_tau_s``.
It counts as stable after ``SETTLE_TAUS`` time constants: 75 s x 5 = 6.25 min, the 5-7 min
users wait after a field change. Temperature: sweeps at ``temp_rate_K_s`` toward its setpoint,
then closes in with a first-order lag ``temp_tau_s`` (the sample lags the thermometer).
"""

from __future__ import annotations

import math


class MagnetDynamics:
    SETTLE_TAUS = 5.0

    def __init__(
        self,
        field_T: float,
        temperature_K: float,
        t0: float,
        *,
        ramp_T_s: float = 0.01,  # 100 Oe/s
        relax_tau_s: float = 75.0,
        relax_fraction: float = 2e-3,
        temp_rate_K_s: float = 10.0 / 60.0,  # 10 K/min
        temp_tau_s: float = 60.0,
    ):
        self._ramp = ramp_T_s
        self._tau = relax_tau_s
        self._relax_fraction = relax_fraction
        self._t_rate = temp_rate_K_s
        self._t_tau = temp_tau_s
        self._field_from, self._field_to, self._field_t0, self._field_t1 = field_T, field_T, t0, t0
        self._relax_step = 0.0
        self._temp_from, self._temp_to, self._temp_t0 = temperature_K, temperature_K, t0

    # ---- field -----------------------------------------------------------------------------
    def set_field(self, target_T: float, t: float, ramp_T_s: float | None = None) -> float:
        """Start a ramp at ``t`` from the present field (at ``ramp_T_s`` from now on, if given);
        returns when the ramp ends."""
        if ramp_T_s is not None:
            if not ramp_T_s > 0:
                raise ValueError(f"ramp_T_s must be > 0, got {ramp_T_s!r}")
            self._ramp = float(ramp_T_s)
        start = self.field_at(t)
        self._field_from, self._field_to, self._field_t0 = start, float(target_T), t
        self._field_t1 = t + abs(target_T - start) / self._ramp
        self._relax_step = target_T - start
        return self._field_t1

    @property
    def field_setpoint_T(self) -> float:
        return self._field_to

    def field_at(self, t: float) -> float:
        if t <= self._field_t0:
            return self._field_from
        if t < self._field_t1:
            frac = (t - self._field_t0) / (self._field_t1 - self._field_t0)
            return self._field_from + frac * (self._field_to - self._field_from)
        creep = self._relax_fraction * self._relax_step * math.exp(-(t - self._field_t1) / self._tau)
        return self._field_to + creep

    def field_stable_at(self, t: float) -> float:
        """Experiment time from which the field counts as stable."""
        if self._relax_step == 0.0:
            return self._field_t1
        return self._field_t1 + self.SETTLE_TAUS * self._tau

    def field_stable(self, t: float) -> bool:
        return t >= self.field_stable_at(t)

    # ---- temperature -----------------------------------------------------------------------
    def set_temperature(self, target_K: float, t: float, rate_K_s: float | None = None) -> None:
        if rate_K_s is not None:
            if not rate_K_s > 0:
                raise ValueError(f"rate_K_s must be > 0, got {rate_K_s!r}")
            self._t_rate = float(rate_K_s)
        self._temp_from, self._temp_to, self._temp_t0 = self.temperature_at(t), float(target_K), t

    @property
    def temperature_setpoint_K(self) -> float:
        return self._temp_to

    def temperature_at(self, t: float) -> float:
        """Sweep at the set rate, then an exponential approach over the last few tau."""
        span = self._temp_to - self._temp_from
        if span == 0.0 or t <= self._temp_t0:
            return self._temp_from if t <= self._temp_t0 else self._temp_to
        # linear sweep until within rate x tau of the target, then first-order approach
        lag = self._t_rate * self._t_tau
        sweep_s = max(0.0, (abs(span) - lag) / self._t_rate)
        dt = t - self._temp_t0
        sign = 1.0 if span > 0 else -1.0
        if dt <= sweep_s:
            return self._temp_from + sign * self._t_rate * dt
        remaining = min(abs(span), lag)
        return self._temp_to - sign * remaining * math.exp(-(dt - sweep_s) / self._t_tau)

    def temperature_stable_at(self, tolerance_K: float) -> float:
        """Experiment time from which the temperature is within ``tolerance_K`` of its setpoint."""
        span = abs(self._temp_to - self._temp_from)
        if span <= tolerance_K:
            return self._temp_t0
        lag = self._t_rate * self._t_tau
        sweep_s = max(0.0, (span - lag) / self._t_rate)
        remaining = min(span, lag)
        return self._temp_t0 + sweep_s + self._t_tau * math.log(max(remaining / tolerance_K, 1.0))

    def field_state(self, t: float) -> str:
        if t < self._field_t1:
            return "ramping"
        return "stable" if self.field_stable(t) else "relaxing"

    def temperature_state(self, t: float, tolerance_K: float) -> str:
        if t >= self.temperature_stable_at(tolerance_K):
            return "stable"
        return "tracking" if abs(self._temp_to - self.temperature_at(t)) <= self._t_rate * self._t_tau else "sweeping"
