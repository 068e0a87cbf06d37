"""Safety checks that run before anything touches the cell, and the excursion test during a run."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .techniques import (
    ConstantCurrent,
    ConstantCurrentConstantVoltage,
    ConstantPotential,
    CyclicVoltammetry,
    GalvanostaticEis,
    Gitt,
    Limits,
    LinearSweep,
    PotentiostaticEis,
    ScheduledStep,
)


class LimitError(ValueError):
    """A requested technique would leave the instrument's safety limits; nothing was started."""


class UnsupportedTechnique(LimitError):
    """The instrument cannot run this technique (e.g. impedance on a source-measure unit)."""


def _potentials(t) -> list[tuple[str, float]]:
    """Every potential a technique imposes or stops at, by field name."""
    if isinstance(t, (ConstantCurrent, Gitt)):
        return [(f, getattr(t, f)) for f in ("e_min_V", "e_max_V") if getattr(t, f) is not None]
    if isinstance(t, ConstantCurrentConstantVoltage):
        return [("e_hold_V", t.e_hold_V)]
    # a start taken at open circuit (None) is where the cell already rests: nothing to check
    if isinstance(t, LinearSweep):
        return [(f, v) for f, v in (("e_start_V", t.e_start_V), ("e_end_V", t.e_end_V)) if v is not None]
    if isinstance(t, CyclicVoltammetry):
        fields = ("e_start_V", "e_vertex1_V", "e_vertex2_V")
        return [(f, getattr(t, f)) for f in fields if getattr(t, f) is not None]
    if isinstance(t, ConstantPotential):
        return [("e_V", t.e_V)] if t.e_V is not None else []
    if isinstance(t, PotentiostaticEis) and t.e_dc_V is not None:
        # the sine's peaks must stay inside the window too
        return [("e_dc_V - amplitude_V", t.e_dc_V - t.amplitude_V), ("e_dc_V + amplitude_V", t.e_dc_V + t.amplitude_V)]
    return []


def _currents(t) -> list[tuple[str, float]]:
    """Every current a technique imposes, by field name."""
    if isinstance(t, (ConstantCurrent, ConstantCurrentConstantVoltage, Gitt)):
        return [("current_A", t.current_A)]
    if isinstance(t, GalvanostaticEis):
        return [("|i_dc_A| + amplitude_A", abs(t.i_dc_A) + t.amplitude_A)]
    return []


def check_steps(instrument: str, steps: Sequence[ScheduledStep], limits: Limits) -> None:
    """Refuse the whole sequence if any step leaves the limits (named by step number and field)."""
    if not steps:
        raise LimitError(f"{instrument}: the technique sequence is empty")
    problems = []
    for s in steps:
        t = s.technique
        where = f"{instrument}: step {s.step} (cycle {s.cycle}, {t.kind}{', ' + t.label if t.label else ''})"
        for field, amps in _currents(t):
            if abs(amps) > limits.i_max_A:
                problems.append(f"{where}: {field} {amps:g} A exceeds |I| max {limits.i_max_A:g} A")
        for field, volts in _potentials(t):
            if not limits.e_min_V <= volts <= limits.e_max_V:
                problems.append(
                    f"{where}: {field} {volts:g} V is outside the window [{limits.e_min_V:g}, {limits.e_max_V:g}] V"
                )
        if isinstance(t, ConstantCurrent):
            if t.current_A > 0 and t.e_max_V is None and t.max_duration_s is None:
                problems.append(f"{where}: a charge needs e_max_V or max_duration_s")
            if t.current_A < 0 and t.e_min_V is None and t.max_duration_s is None:
                problems.append(f"{where}: a discharge needs e_min_V or max_duration_s")
    if problems:
        raise LimitError("refused before start:\n" + "\n".join(problems))


def excursion_mask(ewe_V, current_A, limits: Limits) -> np.ndarray:
    """True for each sample outside the limits (with a small tolerance, see below)."""
    ewe = np.asarray(ewe_V)
    cur = np.asarray(current_A)
    # A small tolerance: a galvanostatic step stops at its cut-off one sample late.
    margin = 0.02 * (limits.e_max_V - limits.e_min_V)
    bad_e = (ewe > limits.e_max_V + margin) | (ewe < limits.e_min_V - margin)
    return bad_e | (np.abs(cur) > limits.i_max_A * 1.001)


def describe_sample(ewe: float, current: float, limits: Limits) -> str:
    return (
        f"excursion beyond limits: Ewe={ewe:.4f} V, I={current:.4g} A "
        f"(window [{limits.e_min_V:g}, {limits.e_max_V:g}] V, |I| max {limits.i_max_A:g} A)"
    )


def excursion(ewe_V, current_A, limits: Limits) -> str | None:
    """Describe the first sample outside the limits, or None. Arrays of one block of samples."""
    bad = np.flatnonzero(excursion_mask(ewe_V, current_A, limits))
    if bad.size == 0:
        return None
    i = bad[0]
    return describe_sample(float(np.asarray(ewe_V)[i]), float(np.asarray(current_A)[i]), limits)


class ExcursionWatch:
    """Opens the circuit only when samples stay beyond the limits for ``limits.excursion_s``.

    Fed blocks of (time, Ewe, I) in order; ``feed`` returns a description once an excursion has
    lasted long enough, measured on the samples' own time stamps (the instrument's clock).
    """

    def __init__(self, limits: Limits):
        self.limits = limits
        self._since: float | None = None  # time of the first sample of the current excursion

    def feed(self, t, ewe_V, current_A) -> str | None:
        t = np.asarray(t, dtype=float)
        bad = excursion_mask(ewe_V, current_A, self.limits)
        for i in range(len(t)) if bad.any() or self._since is not None else ():
            if not bad[i]:
                self._since = None
                continue
            if self._since is None:
                self._since = float(t[i])
            if t[i] - self._since >= self.limits.excursion_s:
                lasted = t[i] - self._since
                return (
                    describe_sample(float(np.asarray(ewe_V)[i]), float(np.asarray(current_A)[i]), self.limits)
                    + f", lasting {lasted:.3g} s (allowed {self.limits.excursion_s:g} s)"
                )
        return None
