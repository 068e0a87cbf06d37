"""One way to put a run together, for every entry point: the CLI, the queue worker, the GUI (in a
thread or in a child process) and a scientist's IPython session.

``check_run(profile, protocol)`` touches nothing: it compiles the protocol against the sample and
the limits, and checks what the run asks of each instrument against what its backend declares
(techniques, hold, trigger lines), the clock against the hardware, and the simulated material.
``prepare_run(...)`` does that, then builds and connects the instruments, the suspenders, the
run's metadata and the operando plan. Whichever way a run starts, it is this code, so a start
document's metadata and the suspenders guarding a run cannot differ between entry points.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from operando.devices.configuration import ConfigError
from operando.devices.kinds import DETECTOR_KINDS
from operando.devices.registry import Capability
from operando.devices.techniques import ScheduledStep
from operando.plans.operando import Progress, operando_cycling
from operando.plans.protocol import Protocol, compile_protocol, estimate_duration_s
from operando.plans.suspenders import build_suspender

from .backends import WIRE_SIM_ADDRESS, backend_spec, wire_simulator
from .build import Instruments, build_instruments, enabled_instruments, has_hardware, needs_sim_lab, sim_material
from .config import Profile

__all__ = ["CapabilityError", "CheckedRun", "PreparedRun", "Progress", "check_run", "operando_plan", "prepare_run"]


class CapabilityError(ConfigError):
    """The protocol or the profile asks an instrument for something its backend cannot do."""


@dataclass(frozen=True)
class CheckedRun:
    """What ``check_run`` found: the run can be built and started."""

    profile: Profile
    protocol: Protocol
    steps: list[ScheduledStep]
    speed: Optional[float]  # simulation speed asked for (None: the profile's)
    total_s: float  # estimated experiment duration
    metadata: dict  # the start document's metadata, as every entry point writes it

    @property
    def sample_interval_s(self) -> Optional[float]:
        return self.protocol.sampling.interval_s if self.protocol.sampling else None


@dataclass
class PreparedRun:
    """Everything a run needs, built and connected. ``plan`` is a fresh generator: give it to a
    RunEngine once. ``close()`` (safe twice) closes ports and stops simulators afterwards."""

    checked: CheckedRun
    instruments: Instruments
    suspenders: list
    plan: Any

    @property
    def clock(self):
        return self.instruments.clock

    @property
    def metadata(self) -> dict:
        return self.checked.metadata

    @property
    def can_pause(self) -> bool:
        """A pause holds the cell at open circuit; without a hold the sequence would end."""
        return Capability.HOLD in self.instruments.specs[self.checked.profile.potentiostat_name].capabilities

    def close(self) -> None:
        self.instruments.close()


def check_run(profile: Profile, protocol: Protocol, *, speed: Optional[float] = None) -> CheckedRun:
    """Refuse a run that cannot go, before anything is built or touched (``ConfigError``, one line
    per problem, naming the file and field, or the instrument and step)."""
    steps = compile_protocol(protocol, profile.sample, profile.limits)
    if speed is not None and not speed > 0:
        raise ConfigError(f"speed must be > 0 (got {speed})")
    problems = _capability_problems(profile, steps, protocol) + _clock_problems(profile, speed)
    if problems:
        raise CapabilityError("\n".join(problems), problems)
    return CheckedRun(
        profile,
        protocol,
        steps,
        speed,
        estimate_duration_s(steps, profile.sample.capacity_mAh),
        run_metadata(profile, protocol),
    )


def prepare_run(
    profile: Profile,
    protocol: Protocol,
    data_dir: Path,
    *,
    speed: Optional[float] = None,
    md: Optional[dict] = None,
    progress: Optional[Callable[[Progress], None]] = None,
    checked: Optional[CheckedRun] = None,
) -> PreparedRun:
    """Check, then build the run: instruments (connected), suspenders, metadata, plan.

    Call it after a RunEngine exists (devices connect in its event loop). ``md`` adds to the
    start document (a user's own keys); ``progress`` receives the plan's ``Progress``.
    """
    checked = checked or check_run(profile, protocol, speed=speed)
    instruments = build_instruments(profile, data_dir, speed, checked.sample_interval_s)
    try:
        plan, suspenders = operando_plan(checked, instruments, md=md, progress=progress)
    except BaseException:
        instruments.close()
        raise
    return PreparedRun(checked, instruments, suspenders, plan)


def operando_plan(
    checked: CheckedRun,
    instruments: Instruments,
    *,
    md: Optional[dict] = None,
    progress: Optional[Callable[[Progress], None]] = None,
):
    """(plan, suspenders): the operando plan of a checked run on built ``instruments``, guarded by
    the profile's suspenders. ``prepare_run`` uses it; so does an IPython session's ``lab``."""
    profile = checked.profile
    by_name = {d.name: d for d in instruments.devices}
    suspenders = [
        build_suspender(rule, by_name, instruments.potentiostat, instruments.clock) for rule in profile.suspenders
    ]
    plan = operando_cycling(
        instruments.potentiostat,
        checked.steps,
        instruments.detectors,
        instruments.clock,
        capacity_mAh=profile.sample.capacity_mAh,
        md={**checked.metadata, **(md or {})},
        progress=progress,
        suspenders=suspenders,
    )
    return plan, suspenders


def run_metadata(profile: Profile, protocol: Protocol) -> dict:
    """The start document's description of the run (plus what the plan adds itself)."""
    return {
        **profile_metadata(profile),
        "protocol": protocol.name,
        "protocol_file": str(protocol.source or ""),
        "suspenders": [rule.model_dump(mode="json") for rule in profile.suspenders],
    }


def profile_metadata(profile: Profile) -> dict:
    """The sample and the instruments, for the start document of any run on the profile."""
    return {
        "sample": profile.sample.model_dump(mode="json"),
        "profile": profile.name,
        "profile_file": str(profile.source or ""),
        "instruments": {
            name: {
                "kind": inst.kind,
                "backend": inst.backend,
                "address": inst.address,
                "settings": inst.typed_settings.model_dump(mode="json"),
                "capabilities": sorted(str(c) for c in backend_spec(inst.kind, inst.backend).capabilities),
            }
            for name, inst in enabled_instruments(profile).items()
        },
    }


def _capability_problems(profile: Profile, steps: list[ScheduledStep], protocol: Protocol) -> list[str]:
    where = profile.source or profile.name
    pname = profile.potentiostat_name
    pinst = profile.potentiostat
    pspec = backend_spec(pinst.kind, pinst.backend)
    problems = []
    unsupported: dict[str, list[int]] = defaultdict(list)
    for step in steps:
        if step.technique.kind not in pspec.techniques:
            unsupported[step.technique.kind].append(step.step)
    for kind, numbers in unsupported.items():
        shown = ", ".join(map(str, numbers[:5])) + (", ..." if len(numbers) > 5 else "")
        problems.append(
            f"{where}: instruments.{pname}.backend: {pinst.backend} cannot run {kind} (step "
            f"{shown} of protocol {protocol.name!r}): {pspec.summary}; it runs "
            f"{', '.join(sorted(pspec.techniques))} (got {pinst.backend!r})"
        )
    can_hold = Capability.HOLD in pspec.capabilities
    cannot_hold = f"needs a potentiostat that can hold at open circuit; {pinst.backend} cannot"
    detectors = {n: i for n, i in enabled_instruments(profile).items() if i.kind in DETECTOR_KINDS}
    for name, inst in detectors.items():
        for i, rule in enumerate(inst.schedule or []):
            if rule.hold == "ocv" and not can_hold:
                problems.append(f"{where}: instruments.{name}.schedule[{i}].hold: {cannot_hold} (got 'ocv')")
        if inst.typed_settings.trigger == "hardware":
            spec = backend_spec(inst.kind, inst.backend)
            if Capability.TRIGGER_OUT not in pspec.capabilities:
                problems.append(
                    f"{where}: instruments.{name}.settings.trigger: hardware triggering needs "
                    f"the potentiostat's trigger output; {pinst.backend} has none (got 'hardware')"
                )
            if Capability.TRIGGER_IN not in spec.capabilities:
                problems.append(
                    f"{where}: instruments.{name}.settings.trigger: the {inst.backend} "
                    f"{inst.kind} has no trigger input (got 'hardware')"
                )
    for i, rule in enumerate(profile.suspenders):
        if rule.echem == "hold" and not can_hold:
            problems.append(
                f"{where}: suspenders[{i}].echem: suspending {rule.watch} with the cell held "
                f"{cannot_hold}; use echem: continue (got 'hold')"
            )
        inst = profile.instruments[rule.instrument]
        if not inst.enabled:
            problems.append(f"{where}: suspenders[{i}].watch: {rule.instrument} is disabled (got {rule.watch!r})")
    return problems


def _clock_problems(profile: Profile, speed: Optional[float]) -> list[str]:
    where = profile.source or profile.name
    problems = []
    sim = profile.sim
    if has_hardware(profile):
        hardware = [n for n, i in enabled_instruments(profile).items() if not i.simulated]
        if speed is not None and speed != 1.0:
            problems.append(
                f"{where}: instruments.{hardware[0]}.address: a real instrument runs in real "
                f"time; the speed asked for is {speed:g} (got {speed!r})"
            )
        if sim is not None and sim.speed != 1.0:
            problems.append(
                f"{where}: instruments.{hardware[0]}.address: a real instrument runs in real "
                f"time, but sim.speed is {sim.speed:g} (set it to 1, or use address: "
                f"{WIRE_SIM_ADDRESS}) (got {profile.instruments[hardware[0]].address!r})"
            )
        if sim is not None and sim.clock == "virtual":
            problems.append(f"{where}: sim.clock: a real instrument runs on the wall clock (got 'virtual')")
    if needs_sim_lab(profile):
        from operando.sim_devices.materials import PRESETS

        material = sim_material(profile)
        if material not in PRESETS:
            key = "sim.material" if sim and sim.material else "sample.sim_preset"
            problems.append(
                f"{where}: {key}: unknown simulated material; choose one of "
                f"{', '.join(sorted(PRESETS))} (got {material!r})"
            )
        if sim is not None and sim.clock == "virtual":
            for name, inst in enabled_instruments(profile).items():
                wire = wire_simulator(inst.kind, inst.backend) if inst.address == WIRE_SIM_ADDRESS else None
                if wire is not None and not wire.virtual_clock:
                    problems.append(
                        f"{where}: instruments.{name}.address: the {inst.backend} wire-level "
                        f"simulator runs on a scaled clock; sim.clock: virtual is not "
                        f"supported with it (got 'sim')"
                    )
    return problems
