"""Build a profile's instruments as connected ophyd-async devices.

Backends are chosen by name from the profile; the simulated ones all share one ``SimLab`` (one
cell, one clock). The potentiostat may be real (MethodSCRIPT, Keithley 2450) or its wire-level
simulator (``acquisition/potentiostat_backends.py``); detectors are simulated for now.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from bluesky.run_engine import call_in_bluesky_event_loop

from operando.devices.clock import Clock, WallClock
from operando.devices.magnetometer import Magnetometer
from operando.devices.potentiostat import Potentiostat
from operando.devices.raman import RamanSpectrometer
from operando.devices.skpm import Skpm
from operando.plans.operando import DetectorSchedule

from .catalog import files_dir
from .config import ConfigError, Profile
from .potentiostat_backends import build_potentiostat_backend, check_potentiostat

# Default acquisition periods (experiment seconds) when a profile gives no period_s.
DEFAULT_PERIOD_S = {"magnetometer": 10.0, "raman": 60.0, "skpm": 900.0}


DEFAULT_SIM_MATERIAL = "fe_li2o"


def check_buildable(profile: Profile) -> None:
    """Raise ConfigError (naming file and field) if this profile's instruments cannot be built.

    Called before the catalog opens, so a bad profile starts nothing.
    """
    from operando.sim_devices.materials import PRESETS

    where = profile.source or profile.name
    problems = [
        f"{where}: instruments.{name}.backend: not available yet for a {inst.kind}, only 'sim' "
        f"(got {inst.backend!r})"
        for name, inst in profile.instruments.items()
        if inst.enabled and inst.backend != "sim" and inst.kind != "potentiostat"
    ]
    problems += check_potentiostat(profile)
    if profile.potentiostat.backend != "sim":
        problems += [
            f"{where}: instruments.{name}.settings.trigger: hardware triggering needs the "
            f"potentiostat's trigger output, which only the sim backend wires up (got 'hardware')"
            for name, inst in profile.instruments.items()
            if inst.enabled and (inst.settings or {}).get("trigger") == "hardware"
        ]
    material = profile.sim_material or DEFAULT_SIM_MATERIAL
    if material not in PRESETS:
        field = "sim.material" if profile.sim and profile.sim.material else "sample.sim_preset"
        problems.append(
            f"{where}: {field}: unknown simulated material (got {material!r}); "
            f"choose one of {', '.join(sorted(PRESETS))}"
        )
    if problems:
        raise ConfigError("\n".join(problems))


@dataclass
class Instruments:
    clock: Clock
    potentiostat: Potentiostat
    detectors: list[DetectorSchedule] = field(default_factory=list)
    sim_lab: object | None = None
    closers: list = field(default_factory=list)  # stop what building started (simulators, ports)

    def close(self) -> None:
        """Close ports and stop in-process simulators; safe to call twice."""
        closers, self.closers = self.closers, []
        for close in closers:
            try:
                close()
            except Exception:  # closing must go on: one failure must not leave a port open
                import logging

                logging.getLogger(__name__).exception("closing %s failed", close)

    @property
    def devices(self) -> list:
        return [self.potentiostat, *[d.device for d in self.detectors]]


def build_instruments(
    profile: Profile,
    data_dir: Path,
    speed: float | None = None,
    sample_interval_s: float | None = None,
) -> Instruments:
    """Devices for every enabled instrument of ``profile``, connected, sharing one clock.

    ``sample_interval_s`` (from a protocol's ``sampling``) overrides the profile's setting.
    Must be called after a RunEngine exists (devices connect in its event loop).
    """
    from operando.sim_devices.backends import SimMagnetometerBackend, SimRamanBackend
    from operando.sim_devices.faults import FaultSchedule, inject_faults
    from operando.sim_devices.skpm_backend import SimSkpmBackend

    check_buildable(profile)
    lab = _sim_lab(profile, speed, sample_interval_s)
    clock: Clock = lab.clock if lab is not None else WallClock()
    pstat_name = profile.potentiostat_name
    faults = FaultSchedule(faults=list(profile.sim.faults)) if profile.sim else FaultSchedule()
    closers: list = []
    pstat_backend = inject_faults(
        build_potentiostat_backend(profile, lab, closers, sample_interval_s), pstat_name, faults, clock
    )
    potentiostat = Potentiostat(
        pstat_backend, profile.limits, lambda: files_dir(data_dir), name=pstat_name, clock=clock
    )
    detectors: list[DetectorSchedule] = []
    for name, inst in profile.instruments.items():
        if not inst.enabled or inst.kind == "potentiostat":
            continue
        settings = dict(inst.settings or {})
        # `trigger: hardware`: exposures start on the potentiostat's trigger output (TTL).
        trigger = pstat_backend if settings.get("trigger", "software") == "hardware" else None
        if inst.kind == "magnetometer":
            backend = inject_faults(
                SimMagnetometerBackend(
                    lab,
                    float(settings.get("field_T", 1.0)),
                    float(settings.get("temperature_K", 300.0)),
                    trigger_source=trigger,
                ),
                name,
                faults,
                clock,
            )
            device = Magnetometer(backend, float(settings.get("averaging_s", 1.0)), name=name)
        elif inst.kind == "raman":
            device = RamanSpectrometer(
                inject_faults(SimRamanBackend(lab, trigger_source=trigger), name, faults, clock),
                float(settings.get("exposure_s", 10.0)),
                int(settings.get("accumulations", 1)),
                name=name,
            )
        elif inst.kind == "skpm":
            device = Skpm(
                inject_faults(SimSkpmBackend(lab), name, faults, clock),
                pixels=int(settings.get("pixels", 64)),
                lines=int(settings.get("lines", 64)),
                line_rate_hz=float(settings.get("line_rate_hz", 1.0)),
                name=name,
            )
        else:  # pragma: no cover - the profile schema admits only these kinds
            raise ConfigError(f"instruments.{name}.kind: unsupported {inst.kind!r}")
        detectors.append(_schedule(device, inst, name, settings))
    instruments = Instruments(clock, potentiostat, detectors, lab, closers)
    try:
        call_in_bluesky_event_loop(_connect_all(instruments.devices))
    except BaseException:
        instruments.close()
        raise
    return instruments


async def _connect_all(devices) -> None:
    await asyncio.gather(*(d.connect() for d in devices))


def _schedule(device, inst, name: str, settings: dict) -> DetectorSchedule:
    if inst.schedule:
        return DetectorSchedule(device, tuple(inst.schedule), name)
    return DetectorSchedule.every(device, float(settings.get("period_s", DEFAULT_PERIOD_S[inst.kind])), name)


def _sim_lab(profile: Profile, speed: float | None, sample_interval_s: float | None):
    from operando.sim_devices.lab import build_sim_lab
    sim = profile.sim
    sample = profile.sample
    settings = profile.potentiostat.settings or {}
    return build_sim_lab(
        material=profile.sim_material or DEFAULT_SIM_MATERIAL,
        active_mass_g=sample.active_mass_g,
        speed=speed if speed is not None else (sim.speed if sim else 1.0),
        sample_interval_s=sample_interval_s or float(settings.get("sample_interval_s", 1.0)),
        seed=sim.seed if sim else 0,
        clock=sim.clock if sim else "scaled",
    )
