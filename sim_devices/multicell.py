"""Several simulated cells on one clock: a simulated multichannel potentiostat's cells, and what a
detector shared between them sees.

Each cell is a whole ``SimLab`` (its own material, mass, seed, starting state and physics), all on
the one clock; channel N of the simulated potentiostat drives cell N exactly as the single-cell
simulator drives its cell. A shared detector reads the lab through a ``ProbeView``: the cell its
probe is at, switched by the run's cell changer when the probe arrives.
"""

from __future__ import annotations

from dataclasses import dataclass

from .clock import Clock
from .lab import SimLab, build_sim_lab


@dataclass(frozen=True)
class CellSpec:
    material: str
    active_mass_g: float
    seed: int
    soc: float | None  # None: as assembled


class MultiCellLab:
    def __init__(self, cells: dict[str, SimLab], clock: Clock):
        if not cells:
            raise ValueError("a several-cell lab needs at least one cell")
        self.cells, self.clock = dict(cells), clock

    def cell_lab(self, cell: str) -> SimLab:
        return self.cells[cell]

    def probe(self) -> ProbeView:
        """A view for one shared detector, at the first cell until the changer moves it."""
        return ProbeView(self.cells)

    def sync(self) -> float:
        for lab in self.cells.values():
            now = lab.sync()
        return now


class ProbeView:
    """The simulated lab as a shared detector sees it: the lab of the cell its probe is at.

    Attributes (``cell``, ``raman``, ``magnetometer``, ``skpm``, ``sync``...) are the current
    cell's; ``select(cell)`` moves the probe (the cell changer calls it on arrival)."""

    def __init__(self, cells: dict[str, SimLab]):
        self._cells = cells
        self._at = next(iter(cells))

    @property
    def at(self) -> str:
        return self._at

    def select(self, cell: str) -> None:
        if cell not in self._cells:
            raise ValueError(f"no simulated cell {cell!r} (cells: {', '.join(self._cells)})")
        self._at = cell

    def __getattr__(self, name: str):
        return getattr(self._cells[self._at], name)


def build_multicell_lab(
    cells: dict[str, CellSpec],
    clock: Clock,
    sample_interval_s: float,
    raman_axis_error_cm1: float = 0.0,
) -> MultiCellLab:
    labs = {
        name: build_sim_lab(
            material=spec.material,
            active_mass_g=spec.active_mass_g,
            sample_interval_s=sample_interval_s,
            seed=spec.seed,
            soc=spec.soc,
            clock=clock,
            raman_axis_error_cm1=raman_axis_error_cm1,
        )
        for name, spec in cells.items()
    }
    return MultiCellLab(labs, clock)
