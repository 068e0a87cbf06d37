"""Cycling metrics from an echem stream: capacity per cycle and coulombic efficiency."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CycleCapacity:
    cycle: int
    charge_mAh: float  # charge passed while I > 0
    discharge_mAh: float  # charge passed while I < 0 (positive number)

    @property
    def coulombic_efficiency(self) -> float:
        return self.discharge_mAh / self.charge_mAh if self.charge_mAh > 0 else float("nan")


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
            )
        )
    return result
