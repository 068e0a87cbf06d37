"""Safety checks that run before anything touches the cell."""

from __future__ import annotations

from collections.abc import Sequence

from .techniques import ConstantCurrent, Limits, ScheduledStep


class LimitError(ValueError):
    """A requested technique would leave the instrument's safety limits; nothing was started."""


def check_steps(instrument: str, steps: Sequence[ScheduledStep], limits: Limits) -> None:
    """Refuse the whole sequence if any step leaves the limits (named by step number and field)."""
    if not steps:
        raise LimitError(f"{instrument}: the technique sequence is empty")
    problems = []
    for s in steps:
        t = s.technique
        where = f"{instrument}: step {s.step} (cycle {s.cycle}{', ' + t.label if t.label else ''})"
        if not isinstance(t, ConstantCurrent):
            continue
        if abs(t.current_A) > limits.i_max_A:
            problems.append(f"{where}: current_A {t.current_A:g} A exceeds |I| max {limits.i_max_A:g} A")
        for field in ("e_min_V", "e_max_V"):
            value = getattr(t, field)
            if value is not None and not limits.e_min_V <= value <= limits.e_max_V:
                problems.append(
                    f"{where}: {field} {value:g} V is outside the window "
                    f"[{limits.e_min_V:g}, {limits.e_max_V:g}] V"
                )
        if t.current_A > 0 and t.e_max_V is None and t.max_duration_s is None:
            problems.append(f"{where}: a charge needs e_max_V or max_duration_s")
        if t.current_A < 0 and t.e_min_V is None and t.max_duration_s is None:
            problems.append(f"{where}: a discharge needs e_min_V or max_duration_s")
    if problems:
        raise LimitError("refused before start:\n" + "\n".join(problems))


def excursion(ewe_V, current_A, limits: Limits) -> str | None:
    """Describe the first sample outside the limits, or None. Arrays of one block of samples."""
    import numpy as np

    ewe = np.asarray(ewe_V)
    cur = np.asarray(current_A)
    # A small tolerance: a galvanostatic step stops at its cut-off one sample late.
    margin = 0.02 * (limits.e_max_V - limits.e_min_V)
    bad_e = (ewe > limits.e_max_V + margin) | (ewe < limits.e_min_V - margin)
    bad_i = np.abs(cur) > limits.i_max_A * 1.001
    bad = np.flatnonzero(bad_e | bad_i)
    if bad.size == 0:
        return None
    i = bad[0]
    return (
        f"excursion beyond limits: Ewe={ewe[i]:.4f} V, I={cur[i]:.4g} A "
        f"(window [{limits.e_min_V:g}, {limits.e_max_V:g}] V, |I| max {limits.i_max_A:g} A)"
    )
