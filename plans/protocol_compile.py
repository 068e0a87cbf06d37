"""One protocol step (user's units) -> one SI technique, with every problem named by field.

Each ``compile_<kind>`` appends (field path, message, value) to ``problems`` and returns the
technique, or None when the step cannot be compiled. Limits are checked here so the user sees
the field that is wrong; the device checks the compiled techniques again before the start.
"""

from __future__ import annotations

from typing import Optional

from operando.devices.configuration import NOTHING
from operando.devices.techniques import (
    ConstantCurrent,
    ConstantCurrentConstantVoltage,
    ConstantPotential,
    CyclicVoltammetry,
    GalvanostaticEis,
    Gitt,
    Limits,
    LinearSweep,
    OpenCircuit,
    PotentiostaticEis,
)

from .protocol_steps import (
    CURRENT_KEYS,
    CaStep,
    CccvStep,
    ConstantCurrentStep,
    CvStep,
    GeisStep,
    GittStep,
    LsvStep,
    PeisStep,
    Rest,
)
from .sample import Sample

_UNITS_S = {"s": 1.0, "min": 60.0, "h": 3600.0}


class _Context:
    def __init__(self, here: str, sample: Sample, limits: Limits, problems: list):
        self.here, self.sample, self.limits, self.problems = here, sample, limits, problems
        self._n0 = len(problems)

    @property
    def ok(self) -> bool:
        return len(self.problems) == self._n0

    def problem(self, field: Optional[str], message: str, value=NOTHING) -> None:
        self.problems.append((f"{self.here}.{field}" if field else self.here, message, value))

    # -- units -------------------------------------------------------------------------------
    def seconds(self, step, prefix: str) -> tuple[Optional[float], str]:
        """The one ``<prefix>_s|_min|_h`` given, in seconds, and how the user wrote it."""
        given = [(u, getattr(step, f"{prefix}_{u}")) for u in _UNITS_S]
        given = [(u, v) for u, v in given if v is not None]
        if len(given) > 1:
            unit, value = given[1]
            self.problem(
                f"{prefix}_{unit}",
                f"give only one of {prefix}_s, {prefix}_min, {prefix}_h; {prefix}_{given[0][0]} is also set",
                value,
            )
            return None, "conflict"
        if not given:
            return None, ""
        unit, value = given[0]
        return value * _UNITS_S[unit], f"{value:g} {unit}"

    def amps(self, step, required: bool = True) -> tuple[Optional[float], str]:
        """The step's current from current_A / current_A_g / c_rate, in A, and as written."""
        specs = [(k, getattr(step, k)) for k in CURRENT_KEYS if getattr(step, k) is not None]
        if not specs:
            if required:
                self.problem(None, f"a {step.kind} step needs one of current_A, current_A_g, c_rate")
            return None, ""
        if len(specs) > 1:
            self.problem(
                specs[1][0], f"give only one of current_A, current_A_g, c_rate; {specs[0][0]} is also set", specs[1][1]
            )
            return None, ""
        key, value = specs[0]
        if key == "current_A":
            amps, what = value, f"{abs(value) * 1e3:.4g} mA"
        elif key == "current_A_g":
            amps, what = value * self.sample.active_mass_g, f"{abs(value):g} A/g"
        else:  # 1C = capacity (mAh) in 1 h = capacity mA
            amps, what = self.c_rate_amps(value), f"{abs(value):g}C"
        self.check_current(key, amps, value, what)
        return amps, what

    def c_rate_amps(self, c_rate: float) -> float:
        return c_rate * self.sample.capacity_mAh / 1000.0

    def cutoff_amps(self, step) -> Optional[float]:
        """An optional current cut-off from i_cutoff_A or i_cutoff_c_rate."""
        if step.i_cutoff_A is not None and step.i_cutoff_c_rate is not None:
            self.problem("i_cutoff_c_rate", "give only one of i_cutoff_A, i_cutoff_c_rate", step.i_cutoff_c_rate)
            return None
        if step.i_cutoff_c_rate is not None:
            return self.c_rate_amps(step.i_cutoff_c_rate)
        return step.i_cutoff_A

    def check_current(self, key: str, amps: float, value, what: str) -> None:
        if abs(amps) > self.limits.i_max_A * (1 + 1e-9):  # c_rate arithmetic may round up
            self.problem(
                key,
                f"{what} is {abs(amps):.4g} A, above the potentiostat limit i_max_A = {self.limits.i_max_A:g} A",
                value,
            )

    def check_potential(self, field: str, volts: Optional[float]) -> None:
        lim = self.limits
        if volts is not None and not lim.e_min_V <= volts <= lim.e_max_V:
            self.problem(field, f"outside the potentiostat limits window {lim.e_min_V:g} to {lim.e_max_V:g} V", volts)

    def scan_rate(self, step) -> Optional[float]:
        if step.scan_rate_V_s is not None and step.scan_rate_mV_s is not None:
            self.problem("scan_rate_mV_s", "give only one of scan_rate_V_s, scan_rate_mV_s", step.scan_rate_mV_s)
            return None
        if step.scan_rate_V_s is None and step.scan_rate_mV_s is None:
            self.problem(None, f"a {step.kind} step needs scan_rate_V_s or scan_rate_mV_s")
            return None
        return step.scan_rate_V_s if step.scan_rate_V_s is not None else step.scan_rate_mV_s / 1e3


def compile_rest(step: Rest, cx: _Context):
    seconds, given = cx.seconds(step, "duration")
    if seconds is None:
        if not given:
            cx.problem(None, "a rest needs one of duration_s, duration_min, duration_h")
        return None
    return OpenCircuit(duration_s=seconds, label=step.label or f"rest {given}")


def compile_cc(step: ConstantCurrentStep, cx: _Context):
    amps, what = cx.amps(step)
    if amps == 0:
        cx.problem(
            next(k for k in CURRENT_KEYS if getattr(step, k) is not None), "a zero current is a rest: use kind: rest", 0
        )
        return None
    for name in ("e_min_V", "e_max_V"):
        cx.check_potential(name, getattr(step, name))
    if step.e_min_V is not None and step.e_max_V is not None and step.e_min_V >= step.e_max_V:
        cx.problem("e_max_V", f"must be above e_min_V ({step.e_min_V:g} V)", step.e_max_V)
    max_s, _ = cx.seconds(step, "max_duration")
    if step.max_capacity_mAh is not None and step.max_capacity_fraction is not None:
        cx.problem(
            "max_capacity_fraction",
            "give only one of max_capacity_mAh, max_capacity_fraction",
            step.max_capacity_fraction,
        )
    if amps is None or not cx.ok:
        return None
    capacity = step.max_capacity_mAh
    if step.max_capacity_fraction is not None:
        capacity = step.max_capacity_fraction * cx.sample.capacity_mAh
    if capacity is not None:  # constant current: a charge limit is exactly a time limit
        t_cap = capacity * 3.6 / abs(amps)
        max_s = t_cap if max_s is None else min(max_s, t_cap)
    ends_at, end_key = (step.e_max_V, "e_max_V") if amps > 0 else (step.e_min_V, "e_min_V")
    if ends_at is None and max_s is None:
        direction = "charge (current > 0)" if amps > 0 else "discharge (current < 0)"
        cx.problem(
            None,
            f"a {direction} needs {end_key}, max_duration_s/_min/_h or "
            "max_capacity_mAh/_fraction to end; otherwise only the safety limit stops it",
        )
        return None
    direction = "charge" if amps > 0 else "discharge"
    return ConstantCurrent(
        current_A=amps,
        # the unused cut-off still gets the window edge: the potentiostat always has both stops
        e_min_V=step.e_min_V if step.e_min_V is not None else cx.limits.e_min_V,
        e_max_V=step.e_max_V if step.e_max_V is not None else cx.limits.e_max_V,
        max_duration_s=max_s,
        label=step.label or f"{direction} {what}",
    )


def compile_cccv(step: CccvStep, cx: _Context):
    amps, what = cx.amps(step)
    cx.check_potential("e_hold_V", step.e_hold_V)
    max_s, _ = cx.seconds(step, "max_duration")
    cutoff = cx.cutoff_amps(step)
    if cutoff is None and cx.ok:
        cx.problem(None, "a cccv step needs i_cutoff_A or i_cutoff_c_rate to end its CV phase")
    if amps is None or not cx.ok:
        return None
    if amps == 0 or cutoff >= abs(amps):
        cx.problem(
            "i_cutoff_A" if step.i_cutoff_A is not None else "i_cutoff_c_rate",
            f"the current cut-off {cutoff:.4g} A must be below |current| {abs(amps):.4g} A",
            step.i_cutoff_A if step.i_cutoff_A is not None else step.i_cutoff_c_rate,
        )
        return None
    direction = "charge" if amps > 0 else "discharge"
    return ConstantCurrentConstantVoltage(
        current_A=amps,
        e_hold_V=step.e_hold_V,
        i_cutoff_A=cutoff,
        max_duration_s=max_s,
        label=step.label or f"CCCV {direction} {what} to {step.e_hold_V:g} V",
    )


def _start(cx: _Context, step, field: str, at_rest: Optional[str], at_rest_key: str) -> Optional[float]:
    """A potentiostatic step's start: the volts given, or None for 'ocv' (exactly one of the two)."""
    volts = getattr(step, field)
    if (volts is None) == (at_rest is None):
        cx.problem(field, f"give exactly one of {field} (volts) and {at_rest_key}: ocv (where the cell rests)")
        return None
    cx.check_potential(field, volts)
    return volts


def _volts(v: Optional[float]) -> str:
    return "OCV" if v is None else f"{v:g}"


def compile_lsv(step: LsvStep, cx: _Context):
    start = _start(cx, step, "e_start_V", step.e_start, "e_start")
    cx.check_potential("e_end_V", step.e_end_V)
    if start is not None and start == step.e_end_V:
        cx.problem("e_end_V", "must differ from e_start_V", step.e_end_V)
    rate = cx.scan_rate(step)
    if not cx.ok:
        return None
    return LinearSweep(
        e_start_V=start,
        e_end_V=step.e_end_V,
        scan_rate_V_s=rate,
        e_step_V=step.e_step_mV / 1e3,
        label=step.label or f"LSV {_volts(start)}->{step.e_end_V:g} V at {rate * 1e3:g} mV/s",
    )


def compile_cv(step: CvStep, cx: _Context):
    start = _start(cx, step, "e_start_V", step.e_start, "e_start")
    for name in ("e_vertex1_V", "e_vertex2_V"):
        cx.check_potential(name, getattr(step, name))
    if step.e_vertex1_V == step.e_vertex2_V:
        cx.problem("e_vertex2_V", "must differ from e_vertex1_V", step.e_vertex2_V)
    lo, hi = sorted((step.e_vertex1_V, step.e_vertex2_V))
    if start is not None and not lo <= start <= hi:
        cx.problem("e_start_V", f"must lie between the vertices ({lo:g} and {hi:g} V)", start)
    rate = cx.scan_rate(step)
    if not cx.ok:
        return None
    return CyclicVoltammetry(
        e_start_V=start,
        e_vertex1_V=step.e_vertex1_V,
        e_vertex2_V=step.e_vertex2_V,
        scan_rate_V_s=rate,
        cycles=step.cycles,
        e_step_V=step.e_step_mV / 1e3,
        label=step.label or f"CV {rate * 1e3:g} mV/s x{step.cycles}",
    )


def compile_ca(step: CaStep, cx: _Context):
    volts = _start(cx, step, "e_V", step.e, "e")
    seconds, given = cx.seconds(step, "duration")
    if seconds is None and not given:
        cx.problem(None, "a ca step needs one of duration_s, duration_min, duration_h")
    cutoff = cx.cutoff_amps(step)
    if not cx.ok:
        return None
    return ConstantPotential(
        e_V=volts, duration_s=seconds, i_cutoff_A=cutoff, label=step.label or f"hold {_volts(volts)} V for {given}"
    )


def compile_gitt(step: GittStep, cx: _Context):
    amps, what = cx.amps(step)
    pulse_s, pulse = cx.seconds(step, "pulse")
    relax_s, relax = cx.seconds(step, "relax")
    for name, value, prefix in (("pulse", pulse_s, pulse), ("relax", relax_s, relax)):
        if value is None and not prefix:
            cx.problem(None, f"a gitt step needs one of {name}_s, {name}_min, {name}_h")
    for name in ("e_min_V", "e_max_V"):
        cx.check_potential(name, getattr(step, name))
    if amps is None or not cx.ok:
        return None
    if amps == 0:
        cx.problem(
            next(k for k in CURRENT_KEYS if getattr(step, k) is not None), "GITT needs a non-zero pulse current", 0
        )
        return None
    end_key = "e_max_V" if amps > 0 else "e_min_V"
    if getattr(step, end_key) is None and step.max_pulses is None:
        cx.problem(None, f"a gitt step needs {end_key} (its direction's cut-off) or max_pulses to end")
        return None
    return Gitt(
        current_A=amps,
        pulse_s=pulse_s,
        relax_s=relax_s,
        e_min_V=step.e_min_V,
        e_max_V=step.e_max_V,
        max_pulses=step.max_pulses,
        label=step.label or f"GITT {what} {pulse} / {relax}",
    )


def _check_band(step, cx: _Context) -> None:
    if step.f_min_Hz >= step.f_max_Hz:
        cx.problem("f_min_Hz", f"must be below f_max_Hz ({step.f_max_Hz:g} Hz)", step.f_min_Hz)


def compile_peis(step: PeisStep, cx: _Context):
    _check_band(step, cx)
    amplitude = step.amplitude_mV / 1e3
    if step.e_dc_V is not None:
        cx.check_potential("e_dc_V", step.e_dc_V - amplitude)
        cx.check_potential("e_dc_V", step.e_dc_V + amplitude)
    if not cx.ok:
        return None
    at = "OCV" if step.e_dc_V is None else f"{step.e_dc_V:g} V"
    return PotentiostaticEis(
        e_dc_V=step.e_dc_V,
        amplitude_V=amplitude,
        f_max_Hz=step.f_max_Hz,
        f_min_Hz=step.f_min_Hz,
        points_per_decade=step.points_per_decade,
        label=step.label or f"PEIS at {at}",
    )


def compile_geis(step: GeisStep, cx: _Context):
    _check_band(step, cx)
    dc, _ = cx.amps(step, required=False)
    if (step.amplitude_A is None) == (step.amplitude_c_rate is None):
        cx.problem(None, "a geis step needs exactly one of amplitude_A, amplitude_c_rate")
        return None
    amplitude = step.amplitude_A if step.amplitude_A is not None else cx.c_rate_amps(step.amplitude_c_rate)
    cx.check_current("amplitude_A", abs(dc or 0.0) + amplitude, amplitude, "DC + amplitude")
    if not cx.ok:
        return None
    return GalvanostaticEis(
        i_dc_A=dc or 0.0,
        amplitude_A=amplitude,
        f_max_Hz=step.f_max_Hz,
        f_min_Hz=step.f_min_Hz,
        points_per_decade=step.points_per_decade,
        label=step.label or f"GEIS {amplitude * 1e3:.3g} mA",
    )


COMPILERS = {
    "rest": compile_rest,
    "cc": compile_cc,
    "cccv": compile_cccv,
    "lsv": compile_lsv,
    "cv": compile_cv,
    "ca": compile_ca,
    "gitt": compile_gitt,
    "peis": compile_peis,
    "geis": compile_geis,
}


def compile_step(step, here: str, sample: Sample, limits: Limits, problems: list):
    return COMPILERS[step.kind](step, _Context(here, sample, limits, problems))
