"""Cycling metrics from an echem stream: capacity per cycle and coulombic efficiency."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CycleCapacity:
    cycle: int
    charge_mAh: float  # charge passed while I > 0
    discharge_mAh: float  # charge passed while I < 0 (positive number)
    discharge_first: bool = False  # the cycle began with a discharge (e.g. an anode against Li)

    @property
    def coulombic_efficiency(self) -> float:
        """What came out over what went in, in the cycle's own order (see ``_out_over_in``)."""
        return _out_over_in(self.charge_mAh, self.discharge_mAh, self.discharge_first)


def _out_over_in(charge: float, discharge: float, discharge_first: bool) -> float:
    """Efficiency in the cycle's order: discharge / charge when the cycle charges first (a
    cathode), charge / discharge when it discharges first (a conversion or alloy electrode
    against lithium, whose first step is the lithiation)."""
    taken_in, given_out = (discharge, charge) if discharge_first else (charge, discharge)
    return given_out / taken_in if taken_in > 0 else float("nan")


def _discharges_first(current: np.ndarray) -> bool:
    moving = current[current != 0]
    return bool(moving.size and moving[0] < 0)


def cycle_capacities(cycle, current_A, charge_mAh) -> list[CycleCapacity]:
    """Charge and discharge capacity of each cycle, from the running charge column.

    Each sample's increment of ``charge`` is attributed to the cycle and current sign of that
    sample, so rests and cycle boundaries need no special handling.
    """
    cycle = np.asarray(cycle)
    current = np.asarray(current_A, dtype=float)
    q = np.asarray(charge_mAh, dtype=float)
    if q.size < 2:
        return []
    dq = np.diff(q)
    c = cycle[1:]
    i = current[1:]
    result = []
    for n in np.unique(c):
        sel = c == n
        result.append(
            CycleCapacity(
                int(n),
                float(dq[sel & (i > 0)].sum()),
                float(-dq[sel & (i < 0)].sum()),
                _discharges_first(i[sel]),
            )
        )
    return result


@dataclass(frozen=True)
class CycleMetrics:
    """One cycle's charge and discharge: capacity, energy, mean voltages, efficiencies."""

    cycle: int
    charge_mAh: float
    discharge_mAh: float
    charge_mWh: float  # energy put in while I > 0
    discharge_mWh: float  # energy taken out while I < 0 (positive number)
    retention: float  # this cycle's discharge capacity over the first cycle's that discharged
    discharge_first: bool = False  # the cycle began with a discharge (e.g. an anode against Li)

    @property
    def coulombic_efficiency(self) -> float:
        return _out_over_in(self.charge_mAh, self.discharge_mAh, self.discharge_first)

    @property
    def energy_efficiency(self) -> float:
        """Energy the cell delivered (discharge) over the energy it took (charge), in any order."""
        return self.discharge_mWh / self.charge_mWh if self.charge_mWh > 0 else float("nan")

    @property
    def mean_charge_V(self) -> float:
        return self.charge_mWh / self.charge_mAh if self.charge_mAh > 0 else float("nan")

    @property
    def mean_discharge_V(self) -> float:
        return self.discharge_mWh / self.discharge_mAh if self.discharge_mAh > 0 else float("nan")

    @property
    def hysteresis_V(self) -> float:
        """Mean charge voltage minus mean discharge voltage."""
        return self.mean_charge_V - self.mean_discharge_V


def cycle_metrics(cycle, current_A, charge_mAh, ewe_V, include=None) -> list[CycleMetrics]:
    """Per cycle, as ``cycle_capacities``, with each charge increment's energy taken at the mean
    of the potentials at its two ends (trapezoids: exact for a linear E(Q) between samples).
    ``include`` (per sample): count only the increments that end on an included sample (e.g. the
    galvanostatic steps of a run that also has CVs or rests)."""
    cycle = np.asarray(cycle)
    current = np.asarray(current_A, dtype=float)
    q = np.asarray(charge_mAh, dtype=float)
    e = np.asarray(ewe_V, dtype=float)
    if q.size < 2:
        return []
    dq = np.diff(q)
    de = dq * 0.5 * (e[1:] + e[:-1])  # mWh
    c, i = cycle[1:], current[1:]
    counted = np.ones(dq.size, bool) if include is None else np.asarray(include, bool)[1:]
    out, first = [], None
    for n in np.unique(c[counted]):
        sel = (c == n) & counted
        up, down = sel & (i > 0), sel & (i < 0)
        discharge = float(-dq[down].sum())
        if first is None and discharge > 0:
            first = discharge
        out.append(
            CycleMetrics(
                int(n),
                float(dq[up].sum()),
                discharge,
                float(de[up].sum()),
                float(-de[down].sum()),
                discharge / first if first else float("nan"),
                _discharges_first(i[sel]),
            )
        )
    return out


GALVANOSTATIC = ("cc", "cccv")  # the steps whose charge counts as cycling capacity


def galvanostatic_cycles(cycle, current_A, charge_mAh, ewe_V, technique, choices) -> list[CycleMetrics]:
    """``cycle_metrics`` over the galvanostatic steps only (CVs, holds and rests do not count),
    the cycles that passed no charge left out. ``technique``: the stored codes; ``choices``: the
    technique names in code order, as the echem stream's descriptor lists them."""
    codes = [code for code, name in enumerate(choices) if name in GALVANOSTATIC]
    metrics = cycle_metrics(cycle, current_A, charge_mAh, ewe_V, include=np.isin(technique, codes))
    return [m for m in metrics if m.charge_mAh or m.discharge_mAh]
