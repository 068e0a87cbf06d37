"""Build a profile's instruments as connected ophyd-async devices, each through its registered
backend (``acquisition/backends.py``).

The simulated lab (one cell, one clock) exists only when some instrument is simulated: a
``backend: sim`` or an ``address: sim`` (the instrument's wire-level simulator, served on the
lab's cell, with the real driver connecting to it). A run with no simulated instrument runs on
the wall clock; one that mixes hardware and simulation runs its simulation on the wall clock too.
Injected faults (``sim.faults``) wrap simulated backends only.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from bluesky.run_engine import call_in_bluesky_event_loop

from operando.devices.clock import Clock, WallClock
from operando.devices.kinds import DETECTOR_KINDS, make_stage
from operando.devices.potentiostat import Potentiostat
from operando.devices.registry import BackendSpec, BuildContext
from operando.plans.operando import DetectorSchedule
from operando.storage.catalog import files_dir

from .backends import WIRE_SIM_ADDRESS, backend_spec, wire_simulator
from .config import Instrument, Profile
from .raman_calibration import apply_raman_calibration

log = logging.getLogger(__name__)

DEFAULT_SIM_MATERIAL = "fe_li2o"


@dataclass
class Instruments:
    clock: Clock
    potentiostat: Potentiostat
    detectors: list[DetectorSchedule] = field(default_factory=list)
    specs: dict[str, BackendSpec] = field(default_factory=dict)  # instrument name -> its backend
    stages: dict[str, Any] = field(default_factory=dict)  # instrument name -> Stage (not scheduled)
    sim_lab: Any = None  # the simulated lab, when something is simulated
    closers: list = field(default_factory=list)  # stop what building started (simulators, ports)

    def close(self) -> None:
        """Close ports and stop in-process simulators; safe to call twice."""
        closers, self.closers = self.closers, []
        for close in closers:
            try:
                close()
            except Exception:  # closing must go on: one failure must not leave a port open
                log.exception("closing %s failed", close)

    @property
    def devices(self) -> list:
        return [self.potentiostat, *[d.device for d in self.detectors], *self.stages.values()]


def enabled_instruments(profile: Profile) -> dict[str, Instrument]:
    return {name: inst for name, inst in profile.instruments.items() if inst.enabled}


def needs_sim_lab(profile: Profile) -> bool:
    return any(inst.simulated for inst in enabled_instruments(profile).values())


def has_hardware(profile: Profile) -> bool:
    return not all(inst.simulated for inst in enabled_instruments(profile).values())


def sim_material(profile: Profile) -> str:
    return profile.sim_material or DEFAULT_SIM_MATERIAL


def build_instruments(
    profile: Profile,
    data_dir: Path,
    speed: Optional[float] = None,
    sample_interval_s: Optional[float] = None,
) -> Instruments:
    """Devices for every enabled instrument of ``profile``, connected, sharing one clock.

    Call ``check_run`` (``acquisition/prepare.py``) first: this assumes a profile it accepted.
    ``sample_interval_s`` (a protocol's ``sampling``) overrides the potentiostat's setting. Must
    be called after a RunEngine exists (devices connect in its event loop).
    """
    from operando.sim_devices.faults import FaultSchedule, inject_faults

    pstat_name = profile.potentiostat_name
    pstat_settings = profile.potentiostat.typed_settings
    if sample_interval_s:
        pstat_settings = pstat_settings.model_copy(update={"sample_interval_s": sample_interval_s})
    lab = _sim_lab(profile, speed, pstat_settings.sample_interval_s) if needs_sim_lab(profile) else None
    clock: Clock = lab.clock if lab is not None else WallClock()
    faults = FaultSchedule(faults=list(profile.sim.faults)) if profile.sim else FaultSchedule()
    built = Instruments(clock, None, sim_lab=lab)  # type: ignore[arg-type]  # filled below

    def backend_for(name: str, inst: Instrument, settings, trigger_source=None):
        spec = backend_spec(inst.kind, inst.backend)
        built.specs[name] = spec
        address = inst.address
        if address == WIRE_SIM_ADDRESS:
            served = wire_simulator(inst.kind, inst.backend).start(lab)
            built.closers.append(served.stop)  # after the driver's port has closed (first=True)
            address = served.address
        ctx = BuildContext(
            name,
            address,
            settings,
            clock,
            limits=inst.limits,
            lab=lab if spec.simulated else None,
            trigger_source=trigger_source,
            closers=built.closers,
        )
        backend = spec.build(ctx)
        return inject_faults(backend, name, faults, clock) if spec.simulated else backend

    try:
        pstat_backend = backend_for(pstat_name, profile.potentiostat, pstat_settings)
        built.potentiostat = Potentiostat(
            pstat_backend, profile.limits, lambda: files_dir(data_dir), name=pstat_name, clock=clock
        )
        for name, inst in enabled_instruments(profile).items():
            if inst.kind == "potentiostat":
                continue
            settings = inst.typed_settings
            if inst.kind == "stage":  # moved by map plans, never scheduled
                built.stages[name] = make_stage(backend_for(name, inst, settings), settings, name)
                continue
            trigger = pstat_backend if settings.trigger == "hardware" else None
            device = DETECTOR_KINDS[inst.kind].make_device(backend_for(name, inst, settings, trigger), settings, name)
            if inst.kind == "raman":
                apply_raman_calibration(device, name, inst, settings, data_dir)
            rules = tuple(inst.schedule) if inst.schedule else None
            schedule = (
                DetectorSchedule(device, rules, name)
                if rules
                else DetectorSchedule.every(device, settings.period_s, name)
            )
            built.detectors.append(schedule)
        call_in_bluesky_event_loop(_connect_all(built.devices))
    except BaseException:
        built.close()
        raise
    return built


async def _connect_all(devices) -> None:
    await asyncio.gather(*(d.connect() for d in devices))


def _sim_lab(profile: Profile, speed: Optional[float], sample_interval_s: float):
    from operando.sim_devices.lab import build_sim_lab

    sim = profile.sim
    # Real instruments keep real time; the simulation then runs on the same wall clock.
    clock = WallClock() if has_hardware(profile) else (sim.clock if sim else "scaled")
    return build_sim_lab(
        material=sim_material(profile),
        active_mass_g=profile.sample.active_mass_g,
        speed=speed if speed is not None else (sim.speed if sim else 1.0),
        sample_interval_s=sample_interval_s,
        seed=sim.seed if sim else 0,
        soc=sim.soc if sim else None,  # omitted: the cell as assembled
        clock=clock,
        raman_axis_error_cm1=sim.raman_axis_error_cm1 if sim else 0.0,
    )
