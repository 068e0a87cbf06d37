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
from types import SimpleNamespace
from typing import Any, Optional

from bluesky.run_engine import call_in_bluesky_event_loop

from operando.devices.cell_changer import CellChanger
from operando.devices.clock import Clock, WallClock
from operando.devices.kinds import DETECTOR_KINDS, make_stage
from operando.devices.potentiostat import Potentiostat
from operando.devices.registry import BackendSpec, BuildContext
from operando.plans.multichannel import SharedDetector
from operando.plans.operando import DetectorSchedule
from operando.plans.schedules import EveryTime
from operando.storage.catalog import files_dir

from .backends import WIRE_SIM_ADDRESS, backend_spec, wire_simulator
from .config import Instrument, Profile
from .raman_calibration import apply_raman_calibration

log = logging.getLogger(__name__)

DEFAULT_SIM_MATERIAL = "fe_li2o"
MULTICELL_TICK_S = 0.1


@dataclass
class Instruments:
    clock: Clock
    potentiostat: Potentiostat  # the only one; with cells:, the first cell's channel
    detectors: list[DetectorSchedule] = field(default_factory=list)
    # with cells: each cell's potentiostat channel (a device named as the cell), in profile order,
    # and the detectors shared between the cells
    channels: dict[str, Potentiostat] = field(default_factory=dict)
    shared: list[SharedDetector] = field(default_factory=list)
    specs: dict[str, BackendSpec] = field(default_factory=dict)  # instrument name -> its backend
    stages: dict[str, Any] = field(default_factory=dict)  # instrument name -> Stage (not scheduled)
    sim_lab: Any = None  # the simulated lab, when something is simulated
    closers: list = field(default_factory=list)  # stop what building started (simulators, ports)
    # instrument name -> the FaultInjector of its sim.wire_faults relay (what it did: .events)
    wire_faults: dict[str, Any] = field(default_factory=dict)

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
        if self.channels:
            changers = [d.changer for d in self.shared]
            return [*self.channels.values(), *[d.device for d in self.shared], *changers, *self.stages.values()]
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

    def backend_for(name: str, inst: Instrument, settings, trigger_source=None, *, lab=lab, channel=1, limits=None):
        spec = backend_spec(inst.kind, inst.backend)
        built.specs[name] = spec
        address = inst.address
        if address == WIRE_SIM_ADDRESS:
            served = wire_simulator(inst.kind, inst.backend).start(lab)
            wire_fault = (
                next((f for f in profile.sim.wire_faults if f.instrument == name), None) if profile.sim else None
            )
            if wire_fault is not None:  # imported only then: a hardware run holds no simulation object
                from operando.sim_devices.wire.fault_protocols import protocol_for
                from operando.sim_devices.wire.fault_relay import relay

                served, built.wire_faults[name] = relay(served, wire_fault, protocol_for(inst.backend), lab, name)
            built.closers.append(served.stop)  # after the driver's port has closed (first=True)
            address = served.address
        ctx = BuildContext(
            name,
            address,
            settings,
            clock,
            limits=limits or inst.limits,
            lab=lab if spec.simulated else None,
            trigger_source=trigger_source,
            closers=built.closers,
            channel=channel,
        )
        backend = spec.build(ctx)
        return inject_faults(backend, name, faults, clock) if spec.simulated else backend

    try:
        if profile.multichannel:
            _build_cells(profile, data_dir, sample_interval_s, built, backend_for)
            call_in_bluesky_event_loop(_connect_all(built.devices))
            return built
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


def _build_cells(profile: Profile, data_dir: Path, sample_interval_s, built: Instruments, backend_for) -> None:
    """Each cell's potentiostat channel, then the stages and the detectors shared by the cells."""
    lab, clock = built.sim_lab, built.clock
    for cell_name, cell in profile.cells.items():
        inst_name = profile.cell_instrument(cell_name)
        inst = profile.instruments[inst_name]
        settings = inst.typed_settings
        if sample_interval_s:
            settings = settings.model_copy(update={"sample_interval_s": sample_interval_s})
        limits = profile.cell_limits(cell_name)
        cell_lab = lab.cell_lab(cell_name) if lab is not None else None
        backend = backend_for(cell_name, inst, settings, lab=cell_lab, channel=cell.channel, limits=limits)
        built.specs.setdefault(inst_name, built.specs[cell_name])
        built.channels[cell_name] = Potentiostat(
            backend, limits, lambda: files_dir(data_dir), name=cell_name, clock=clock
        )
    built.potentiostat = next(iter(built.channels.values()))
    for name, inst in enabled_instruments(profile).items():
        if inst.kind == "stage":
            # A simulated stage here carries a probe between cells; the Raman spot within a cell
            # (what it moves in a one-cell map) stays at each cell's own centre.
            stage_lab = SimpleNamespace(clock=clock, raman=SimpleNamespace(spot_um=None)) if lab else None
            backend = backend_for(name, inst, inst.typed_settings, lab=stage_lab)
            built.stages[name] = make_stage(backend, inst.typed_settings, name)
    for name, inst in enabled_instruments(profile).items():
        if inst.kind not in DETECTOR_KINDS:
            continue
        settings = inst.typed_settings
        spec = backend_spec(inst.kind, inst.backend)
        probe = lab.probe() if (lab is not None and spec.simulated) else None
        device = DETECTOR_KINDS[inst.kind].make_device(backend_for(name, inst, settings, lab=probe), settings, name)
        if inst.kind == "raman":
            apply_raman_calibration(device, name, inst, settings, data_dir)
        rules = tuple(inst.schedule) if inst.schedule else (EveryTime(every_s=settings.period_s),)
        per_cell = {}
        for cell_name, cell in profile.cells.items():
            own = cell.schedule.get(name)
            if own is None or own:  # [] : this detector never measures the cell
                per_cell[cell_name] = tuple(own) if own else rules
        changer = CellChanger(
            {c: cell.position_um for c, cell in profile.cells.items() if c in per_cell},
            clock,
            stage=built.stages.get(inst.stage) if inst.stage else None,
            on_arrival=probe.select if probe is not None else None,
            name=f"{name}_changer",
        )
        built.shared.append(SharedDetector(device, name, per_cell, changer))


def _sim_lab(profile: Profile, speed: Optional[float], sample_interval_s: float):
    from operando.sim_devices.lab import build_sim_lab

    sim = profile.sim
    # Real instruments keep real time; the simulation then runs on the same wall clock.
    clock = WallClock() if has_hardware(profile) else (sim.clock if sim else "scaled")
    if profile.multichannel:
        return _multicell_lab(profile, clock, speed, sample_interval_s)
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


def _multicell_lab(profile: Profile, clock, speed: Optional[float], sample_interval_s: float):
    """One simulated cell per cell of the profile (its sample's preset and mass, its seed and
    starting state), all on one clock."""
    from operando.sim_devices.clock import make_clock
    from operando.sim_devices.multicell import CellSpec, build_multicell_lab

    sim = profile.sim
    if isinstance(clock, str):
        # The virtual clock's idle tick: at least 0.1 s, so that fast channels (1 kHz) are polled
        # in blocks of samples rather than moving time one sample at a time.
        tick_s = max(sample_interval_s, MULTICELL_TICK_S)
        clock = make_clock(clock, speed if speed is not None else (sim.speed if sim else 1.0), None, tick_s)
    base_seed = sim.seed if sim and sim.seed is not None else 0
    specs = {}
    for i, (name, cell) in enumerate(profile.cells.items()):
        sample = profile.cell_sample(name)
        specs[name] = CellSpec(
            material=sample.sim_preset or sim_material(profile),
            active_mass_g=sample.active_mass_g,
            seed=cell.seed if cell.seed is not None else base_seed + 10 * i,  # 3 noise streams each
            soc=cell.soc if cell.soc is not None else (sim.soc if sim else None),
        )
    return build_multicell_lab(
        specs, clock, sample_interval_s, raman_axis_error_cm1=sim.raman_axis_error_cm1 if sim else 0.0
    )
