"""Several cells in one run: a profile's ``cells:`` section, validated as data.

Each cell is one potentiostat channel with its own sample, limits and (optionally) protocol::

    cells:
      ch01: {instrument: vmp, channel: 1}
      ch02: {instrument: vmp, channel: 2, sample: {name: bare-02, active_mass_g: 0.0021}}
      ch03: {instrument: vmp, channel: 3, protocol: rate_capability, limits: {...}}

``sample`` holds only what differs from the profile's ``sample:`` (merged, then validated as a
whole sample; its name defaults to ``<profile sample>-<cell>``); ``limits`` replaces the
instrument's; ``protocol`` replaces the run's; ``seed`` and ``soc`` set a simulated cell's noise
and starting state; ``position_um`` is where a stage puts a shared probe over this cell;
``schedule`` gives a shared detector other rules for this cell. The cell's name is its device
name and the suffix of its streams (``echem_ch03``, ``raman_ch03``).
"""

from __future__ import annotations

from typing import Optional

from pydantic import Field, JsonValue, ValidationError

from operando.devices.configuration import StrictModel
from operando.devices.kinds import DETECTOR_KINDS as DETECTORS
from operando.devices.techniques import Limits
from operando.plans.sample import Sample
from operando.plans.schedules import Rule

MAX_CELLS = 64


class Cell(StrictModel):
    """One cell on one potentiostat channel."""

    instrument: Optional[str] = None  # the potentiostat; default: the profile's only one
    channel: int = Field(1, ge=1, le=MAX_CELLS)
    sample: dict[str, JsonValue] = {}  # what differs from the profile's sample
    limits: Optional[Limits] = None  # default: the instrument's
    protocol: Optional[str] = None  # a protocol name or path; default: the run's
    seed: Optional[int] = None  # simulated cell: default sim.seed + the cell's index
    soc: Optional[float] = Field(None, ge=0.0, le=1.0)  # simulated cell: default sim.soc
    position_um: Optional[tuple[float, float]] = None  # (x, y) where a stage finds this cell
    # a shared detector's schedule for this cell, instead of the detector's own (a detector
    # name -> rules; [] : this detector never measures this cell)
    schedule: dict[str, list[Rule]] = {}


def cell_sample(base: Sample, name: str, cell: Cell) -> Sample:
    """The cell's sample: the profile's with the cell's differences (a ValidationError if bad);
    named ``<profile sample>-<cell>`` unless the cell names it."""
    return Sample.model_validate({**base.model_dump(), "name": f"{base.name}-{name}", **cell.sample})


def cell_problems(cells: dict[str, Cell], instruments: dict, base: Sample, channels_of) -> list[str]:
    """Each problem as ``cells.<name>.<field>: message``; ``channels_of(instrument)`` is how many
    channels the instrument's backend has."""
    pots = [n for n, i in instruments.items() if i.kind == "potentiostat" and i.enabled]
    problems, taken = [], {}
    for name, cell in cells.items():
        where = f"cells.{name}"
        if not (name.isidentifier() and name == name.lower()):
            problems.append(f"{where}: a cell name must be lower-case letters, digits, _ (it names streams)")
        if name in instruments:
            problems.append(f"{where}: an instrument has this name too; cells and instruments need distinct names")
        inst_name = cell.instrument
        if inst_name is None:
            if len(pots) != 1:
                problems.append(f"{where}.instrument: required with {len(pots)} potentiostats ({', '.join(pots)})")
                continue
            inst_name = pots[0]
        inst = instruments.get(inst_name)
        if inst is None or inst.kind != "potentiostat":
            problems.append(f"{where}.instrument: no potentiostat named {inst_name!r} (have {', '.join(pots)})")
            continue
        if not inst.enabled:
            problems.append(f"{where}.instrument: {inst_name} is disabled")
            continue
        n = channels_of(inst)
        if cell.channel > n:
            problems.append(
                f"{where}.channel: {inst_name} ({inst.backend}) has {n} channel{'s' * (n > 1)}; got {cell.channel}"
            )
        key = (inst_name, cell.channel)
        if key in taken:
            problems.append(f"{where}.channel: {inst_name} channel {cell.channel} is already {taken[key]}'s")
        taken[key] = name
        for detector in cell.schedule:
            if detector not in instruments or instruments[detector].kind not in DETECTORS:
                problems.append(f"{where}.schedule.{detector}: not a detector of this profile")
        try:
            cell_sample(base, name, cell)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                path = ".".join(str(p) for p in err["loc"])
                problems.append(f"{where}.sample.{path}: {err['msg']}")
    used = {inst for inst, _ in taken}
    for pot in pots:
        if pot not in used:
            problems.append(f"cells: no cell is on potentiostat {pot!r}; give it one, or disable it")
    return problems


def shared_detector_problems(cells: dict[str, Cell], instruments: dict) -> list[str]:
    """A detector serving several cells must reach each: with its stage, every cell needs a
    position; a real detector without a stage cannot move between cells; wire-level simulators
    and hardware triggers serve one cell."""
    problems = []
    for name, inst in instruments.items():
        where = f"instruments.{name}"
        if inst.kind not in DETECTORS:
            if inst.stage is not None:
                problems.append(f"{where}.stage: only a detector's probe is carried by a stage")
            continue
        if not inst.enabled:
            continue
        if inst.address == "sim":
            problems.append(f"{where}.address: a wire-level simulator serves one cell; with cells: use backend: sim")
        if getattr(inst.typed_settings, "trigger", "software") == "hardware":
            problems.append(
                f"{where}.settings.trigger: hardware triggering serves one cell, not cells: (got 'hardware')"
            )
        if inst.stage is None:
            if not inst.simulated and len(cells) > 1:
                need = f"a real detector shared by {len(cells)} cells needs a stage to reach each"
                problems.append(f"{where}.stage: {need}")
            continue
        stage = instruments.get(inst.stage)
        if stage is None or stage.kind != "stage":
            have = ", ".join(n for n, i in instruments.items() if i.kind == "stage") or "none"
            problems.append(f"{where}.stage: no stage named {inst.stage!r} (stages: {have})")
            continue
        missing = [c for c, cell in cells.items() if cell.position_um is None]
        if missing:
            problems.append(f"{where}.stage: cells {', '.join(missing)} have no position_um for {inst.stage} to go to")
    return problems
