"""The simulated lab: one cell, one clock, and the instruments that all read that cell."""

from __future__ import annotations

from dataclasses import dataclass, field

from .cell import SimCell, preset
from .clock import Clock, make_clock
from .magnetometer import SimMagnetometerPhysics
from .potentiostat import SimPotentiostatEngine
from .raman import SimRamanPhysics
from .skpm import SimSkpmPhysics


@dataclass
class SimLab:
    cell: SimCell
    clock: Clock  # SimClock (scaled wall time) or VirtualClock (deterministic)
    potentiostat: SimPotentiostatEngine
    magnetometer: SimMagnetometerPhysics
    raman: SimRamanPhysics
    skpm: SimSkpmPhysics | None = field(default=None)
    # True when a wire-level simulator's firmware drives the cell instead of the engine (a
    # profile's potentiostat with address: sim): the engine then leaves the cell alone.
    external_potentiostat: bool = False
    # Exposures under way on the simulated detectors (read by wire faults timed "during a frame")
    frames_in_flight: int = 0

    def __post_init__(self):
        if self.skpm is None:
            self.skpm = SimSkpmPhysics(self.cell)

    def sync(self) -> float:
        """Advance the cell to the clock's now, so every instrument reads one consistent state.

        The potentiostat keeps the samples this produces until they are drained.
        """
        now = self.clock.time()
        if not self.external_potentiostat:
            self.potentiostat.advance_to(now)
        return now

    @property
    def cell_description(self) -> str:
        p = self.cell.params
        return (
            f"{p.material}, {p.active_mass_g * 1e3:g} mg, {p.nominal_capacity_mAh:.4g} mAh, "
            f"{p.e_min_V:g}-{p.e_max_V:g} V"
        )


def build_sim_lab(
    material: str = "fe_li2o",
    active_mass_g: float = 1e-3,
    speed: float = 1.0,
    sample_interval_s: float = 1.0,
    seed: int = 0,
    soc: float | None = 0.0,
    start_time: float | None = None,
    clock: str | Clock = "scaled",
    tick_s: float | None = None,
    raman_axis_error_cm1: float = 0.0,
) -> SimLab:
    """One simulated sample and its instruments on one clock.

    ``clock``: "scaled" (SimClock, wall time x speed) or "virtual" (VirtualClock: deterministic,
    see ``clock.py``); ``tick_s`` is the virtual clock's idle step (default: the sample interval).
    Or a clock object, e.g. the wall clock when the lab shares a run with real instruments.
    ``soc``: where the cell starts (0: empty); None: as assembled (profiles default to that).
    """
    cell = SimCell(preset(material, active_mass_g=active_mass_g), soc=soc)
    the_clock = make_clock(clock, speed, start_time, tick_s or sample_interval_s) if isinstance(clock, str) else clock
    return SimLab(
        cell=cell,
        clock=the_clock,
        potentiostat=SimPotentiostatEngine(cell, the_clock, sample_interval_s),
        magnetometer=SimMagnetometerPhysics(cell, seed=seed),
        raman=SimRamanPhysics(cell, seed=seed + 1, axis_error_cm1=raman_axis_error_cm1),  # own noise streams
        skpm=SimSkpmPhysics(cell, seed=seed + 2),
    )
