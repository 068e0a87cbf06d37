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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from operando.devices.configuration import ConfigError
from operando.devices.kinds import DETECTOR_KINDS
from operando.devices.registry import Capability
from operando.devices.techniques import ScheduledStep
from operando.plans.multichannel import Channel, echem_stream, multichannel_cycling
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
class CellRun:
    """One cell of a several-cell run, checked: its protocol compiled for its sample and limits."""

    name: str
    protocol: Protocol
    steps: list[ScheduledStep]
    capacity_mAh: float


@dataclass(frozen=True)
class CheckedRun:
    """What ``check_run`` found: the run can be built and started."""

    profile: Profile
    protocol: Protocol
    steps: list[ScheduledStep]  # with cells: the first cell's
    speed: Optional[float]  # simulation speed asked for (None: the profile's)
    total_s: float  # estimated experiment duration (with cells: the longest)
    metadata: dict  # the start document's metadata, as every entry point writes it
    cells: dict[str, CellRun] = field(default_factory=dict)  # with cells:, each one's

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
    if speed is not None and not speed > 0:
        raise ConfigError(f"speed must be > 0 (got {speed})")
    if profile.multichannel:
        return _check_cells(profile, protocol, speed)
    steps = compile_protocol(protocol, profile.sample, profile.limits)
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


def _check_cells(profile: Profile, protocol: Protocol, speed: Optional[float]) -> CheckedRun:
    """Each cell's protocol compiled for its own sample and limits, and checked against its
    instrument's backend, the way a one-cell run is."""
    cells, problems = {}, []
    for name, cell in profile.cells.items():
        own = _cell_protocol(profile, name, cell.protocol) if cell.protocol else protocol
        sample = profile.cell_sample(name)
        try:
            steps = compile_protocol(own, sample, profile.cell_limits(name))
        except ConfigError as exc:
            problems += [f"cells.{name}: {line}" for line in exc.problems]
            continue
        cells[name] = CellRun(name, own, steps, sample.capacity_mAh)
        inst_name = profile.cell_instrument(name)
        problems += _technique_problems(profile, inst_name, steps, own, f"cells.{name}: ")
    problems += _clock_problems(profile, speed) + _cell_material_problems(profile)
    if problems:
        raise CapabilityError("\n".join(problems), problems)
    first = next(iter(cells.values()))
    total = max(estimate_duration_s(c.steps, c.capacity_mAh) for c in cells.values())
    return CheckedRun(profile, protocol, first.steps, speed, total, run_metadata(profile, protocol, cells), cells)


def _cell_protocol(profile: Profile, cell: str, name_or_path: str) -> Protocol:
    """A cell's own protocol: a name, or a path (relative to the profile's folder, else as given)."""
    from .config import load_protocol

    path = Path(name_or_path)
    if profile.source is not None and path.suffix in (".yaml", ".yml") and not path.is_absolute():
        beside = profile.source.parent / path
        if beside.is_file():
            return load_protocol(beside)
    try:
        return load_protocol(name_or_path)
    except ConfigError as exc:
        raise ConfigError(f"{profile.source or profile.name}: cells.{cell}.protocol: {exc}") from None


def _cell_material_problems(profile: Profile) -> list[str]:
    if not needs_sim_lab(profile):
        return []
    from operando.sim_devices.materials import PRESETS

    where = profile.source or profile.name
    return [
        f"{where}: cells.{name}.sample.sim_preset: unknown simulated material; choose one of "
        f"{', '.join(sorted(PRESETS))} (got {preset!r})"
        for name in profile.cells
        if (preset := profile.cell_sample(name).sim_preset) and preset not in PRESETS
    ]


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
    cycling = _EveryChannel(list(instruments.channels.values())) if checked.cells else instruments.potentiostat
    suspenders = [build_suspender(rule, by_name, cycling, instruments.clock) for rule in profile.suspenders]
    if checked.cells:
        channels = [
            Channel(name, instruments.channels[name], tuple(cell.steps), cell.capacity_mAh)
            for name, cell in checked.cells.items()
        ]
        plan = multichannel_cycling(
            channels,
            instruments.shared,
            instruments.clock,
            md={**checked.metadata, **(md or {})},
            progress=progress,
            suspenders=suspenders,
        )
        return plan, suspenders
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


class _EveryChannel:
    """What a suspender tells the potentiostat, told to every cell's channel (a suspension with
    ``echem: continue`` leaves them all cycling; with ``hold``, the RunEngine pauses each)."""

    def __init__(self, channels: list):
        self._channels = channels

    def let_next_pause_pass(self) -> None:
        for channel in self._channels:
            channel.let_next_pause_pass()


def run_metadata(profile: Profile, protocol: Protocol, cells: Optional[dict[str, CellRun]] = None) -> dict:
    """The start document's description of the run (plus what the plan adds itself)."""
    md = {
        **profile_metadata(profile),
        "protocol": protocol.name,
        "protocol_file": str(protocol.source or ""),
        "suspenders": [rule.model_dump(mode="json") for rule in profile.suspenders],
    }
    if cells:
        md["cells"] = {
            name: {
                "instrument": profile.cell_instrument(name),
                "channel": profile.cells[name].channel,
                "echem_stream": echem_stream(name),
                "sample": profile.cell_sample(name).model_dump(mode="json"),
                "limits": profile.cell_limits(name).model_dump(mode="json"),
                "protocol": cell.protocol.name,
                "protocol_file": str(cell.protocol.source or ""),
                "capacity_mAh": cell.capacity_mAh,
                "total_steps": len(cell.steps),
            }
            for name, cell in cells.items()
        }
    return md


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


def _technique_problems(
    profile: Profile, pname: str, steps: list[ScheduledStep], protocol: Protocol, prefix: str = ""
) -> list[str]:
    where = profile.source or profile.name
    pinst = profile.instruments[pname]
    pspec = backend_spec(pinst.kind, pinst.backend)
    problems = []
    unsupported: dict[str, list[int]] = defaultdict(list)
    for step in steps:
        if step.technique.kind not in pspec.techniques:
            unsupported[step.technique.kind].append(step.step)
    for kind, numbers in unsupported.items():
        shown = ", ".join(map(str, numbers[:5])) + (", ..." if len(numbers) > 5 else "")
        problems.append(
            f"{where}: {prefix}instruments.{pname}.backend: {pinst.backend} cannot run {kind} (step "
            f"{shown} of protocol {protocol.name!r}): {pspec.summary}; it runs "
            f"{', '.join(sorted(pspec.techniques))} (got {pinst.backend!r})"
        )
    return problems


def _capability_problems(profile: Profile, steps: list[ScheduledStep], protocol: Protocol) -> list[str]:
    where = profile.source or profile.name
    pname = profile.potentiostat_name
    pinst = profile.potentiostat
    pspec = backend_spec(pinst.kind, pinst.backend)
    problems = _technique_problems(profile, pname, steps, protocol)
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
