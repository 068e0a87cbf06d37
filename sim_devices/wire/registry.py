"""Wire-level simulators a profile can start in-process with ``address: sim``.

One entry per (kind, backend): ``start(lab)`` serves the instrument's real protocol on the lab's
cell and clock and returns where the real driver should connect, and how to stop it. The run then
builds the hardware backend exactly as for a real instrument, at that address, so the driver code
that runs is the one a real instrument meets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Served:
    address: str  # what the backend's driver opens: a pty path, a VISA resource...
    stop: Callable[[], None]


@dataclass(frozen=True)
class WireSimulator:
    kind: str
    backend: str
    start: Callable[[object], Served]  # (SimLab) -> Served
    summary: str
    # `operando sim serve <command> [args]` runs main(args) as a standalone simulator
    command: str
    main: Callable[[list[str]], None]
    virtual_clock: bool = True  # False: it serves from threads that a virtual clock cannot pace


_WIRE_SIMULATORS: dict[tuple[str, str], WireSimulator] = {}


def register_wire_simulator(sim: WireSimulator) -> WireSimulator:
    key = (sim.kind, sim.backend)
    if key in _WIRE_SIMULATORS and _WIRE_SIMULATORS[key] is not sim:
        raise ValueError(f"a wire simulator for {sim.backend!r} ({sim.kind}) is registered twice")
    _WIRE_SIMULATORS[key] = sim
    return sim


def wire_simulators() -> dict[tuple[str, str], WireSimulator]:
    return dict(_WIRE_SIMULATORS)
