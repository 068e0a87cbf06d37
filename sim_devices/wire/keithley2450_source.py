"""The simulated cell behind a source-measure unit's output terminals, with compliance.

As the 2450 Reference Manual describes its source: a current source whose terminal voltage
would pass the voltage limit (VLIM, a magnitude) holds the voltage at the limit instead, and the
current falls (the instrument is "in compliance"); it returns to the set current when the cell
no longer needs the limit. A voltage source limits the current (ILIM) the same way. With the
output off (high-impedance output-off state) the cell is at open circuit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from operando.sim_devices.cell import SimCell

# Internal sample spacing (simulated s) inside one interval between commands: compliance is
# looked for at these instants.
GRID_S = 0.5
# Back from compliance only once the cell draws less than the setpoint by this fraction, so the
# source does not flip-flop at the boundary.
HYSTERESIS = 0.01


@dataclass
class SourceState:
    function: str = "VOLT"  # "CURR" | "VOLT"
    current_A: float = 0.0
    voltage_V: float = 0.0
    vlim_V: float = 21.0  # limit while sourcing current (magnitude)
    ilim_A: float = 1.05e-4  # limit while sourcing voltage (magnitude)
    output: bool = False
    in_compliance: bool = False


def _grid(duration: float) -> np.ndarray:
    n = max(1, int(np.ceil(duration / GRID_S - 1e-9)))
    return np.linspace(duration / n, duration, n)


def advance(cell: SimCell, src: SourceState, duration_s: float) -> None:
    """Run ``cell`` for ``duration_s`` under ``src`` (which the compliance state updates)."""
    if duration_s <= 0:
        return
    if not src.output:
        src.in_compliance = False
        cell.relax(duration_s)
        return
    remaining = float(duration_s)
    for _ in range(10_000):  # each pass consumes at least one grid step
        if remaining <= 1e-12:
            return
        t = _grid(remaining)
        if src.function == "CURR":
            used = _current_source(cell, src, t)
        else:
            used = _voltage_source(cell, src, t)
        remaining -= used


def _current_source(cell: SimCell, src: SourceState, t: np.ndarray) -> float:
    i_set, vlim = src.current_A, abs(src.vlim_V)
    limit = vlim if i_set >= 0 else -vlim
    if src.in_compliance:
        trace = cell.run_potential(limit, t, i_limit_A=abs(i_set) * (1 + HYSTERESIS))
        if trace.limit_reached:  # the cell takes the set current again
            src.in_compliance = False
        return float(trace.t_rel[-1])
    trace = cell.run(i_set, t, e_min_V=-vlim, e_max_V=vlim)
    if trace.cutoff_reached:
        src.in_compliance = True
    return float(trace.t_rel[-1])


def _voltage_source(cell: SimCell, src: SourceState, t: np.ndarray) -> float:
    e_set, ilim = src.voltage_V, abs(src.ilim_A)
    if src.in_compliance:
        # current-limited: push ±ILIM toward the set voltage until the cell reaches it
        i = ilim if cell.ewe_V < e_set else -ilim
        trace = cell.run(i, t, e_min_V=e_set, e_max_V=e_set)
        if trace.cutoff_reached:
            src.in_compliance = False
        return float(trace.t_rel[-1])
    trace = cell.run_potential(e_set, t, i_limit_A=ilim)
    if trace.limit_reached:
        src.in_compliance = True
    return float(trace.t_rel[-1])


def terminal_reading(cell: SimCell, src: SourceState) -> tuple[float, float]:
    """(voltage, current) at the terminals now; current 0 with the output off."""
    if not src.output:
        return cell.rest_potential_V, 0.0
    v, i = cell.ewe_V, cell.current_A
    # a reading never exceeds the limit (the simulated trace stops one grid step past it)
    if src.function == "CURR":
        return max(-src.vlim_V, min(src.vlim_V, v)), i
    return v, max(-src.ilim_A, min(src.ilim_A, i))
