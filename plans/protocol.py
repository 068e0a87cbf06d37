"""Protocol files: what the cell should do, in the user's units, compiled to potentiostat techniques.

A protocol YAML holds ``name``, ``description``, optional ``sampling: {interval_s}`` (overrides the
potentiostat's ``sample_interval_s``) and ``steps``, a list of mappings chosen by ``kind``:

- ``rest``: open circuit for exactly one of ``duration_s`` / ``duration_min`` / ``duration_h``.
- ``cc``: galvanostatic, exactly one of ``current_A`` (amps), ``current_A_g`` (amps per gram of
  active mass) or ``c_rate`` (1C passes the sample's theoretical capacity in 1 h). Sign: > 0
  charges, < 0 discharges. Cut-offs ``e_min_V`` / ``e_max_V`` must lie inside the potentiostat's
  limits window; an omitted one becomes the window's edge. A step must say how it ends: a charge
  needs ``e_max_V`` or a time limit (``max_duration_s`` / ``_min`` / ``_h``), a discharge
  ``e_min_V`` or a time limit.
- ``cc`` may also end on charge passed: ``max_capacity_mAh`` or ``max_capacity_fraction`` (of the
  theoretical capacity); for a constant current that is exactly a time limit.
- ``cccv``: a current as for ``cc``, ``e_hold_V``, and ``i_cutoff_A`` or ``i_cutoff_c_rate``
  (0.05 = C/20) to end the CV phase; optional ``max_duration_*`` over the whole step.
- ``lsv``: ``e_start_V``, ``e_end_V``, ``scan_rate_mV_s`` (or ``scan_rate_V_s``), ``e_step_mV``.
- ``cv``: ``e_start_V``, ``e_vertex1_V``, ``e_vertex2_V``, scan rate as lsv, ``cycles``.
- ``ca``: ``e_V``, ``duration_*``, optional ``i_cutoff_A`` / ``i_cutoff_c_rate``.
- ``gitt``: a current, ``pulse_*`` and ``relax_*`` durations, the cut-off in the current's
  direction and/or ``max_pulses``.
- ``peis``: ``e_dc_V`` (omitted: at OCV), ``amplitude_mV`` (10), ``f_max_Hz``, ``f_min_Hz``,
  ``points_per_decade``; ``geis``: a DC current (omitted: 0), ``amplitude_A`` or
  ``amplitude_c_rate``, and the same frequencies.
- ``loop``: ``repeat: N`` times its own ``steps`` (loops nest).

The step models are in ``plans/protocol_steps.py``, their compilers in ``plans/protocol_compile.py``.

Cycle rule: every repetition of an *outermost* loop starts a new cycle (1, 2, ... counted across
the whole protocol); loops nested inside it stay in that cycle; steps outside any loop are cycle 0
(formation, initial rest). Step numbers count the compiled steps 1, 2, ... over the whole run.

Loading checks the structure (keys, types); ``compile_protocol`` checks the meaning against a
sample and the potentiostat's limits, so nothing that violates the limits is ever compiled.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Optional, Union

from pydantic import Field, PositiveFloat, PrivateAttr

from operando.devices.configuration import ConfigError, StrictModel
from operando.devices.techniques import (
    ConstantCurrent,
    ConstantCurrentConstantVoltage,
    ConstantPotential,
    CyclicVoltammetry,
    Gitt,
    ImpedanceSweep,
    Limits,
    LinearSweep,
    OpenCircuit,
    ScheduledStep,
    Technique,
)

from .protocol_compile import compile_step
from .protocol_steps import (  # noqa: F401  (re-exported: the step kinds a protocol may hold)
    CaStep,
    CccvStep,
    ConstantCurrentStep,
    CvStep,
    GeisStep,
    GittStep,
    Loop,
    LsvStep,
    PeisStep,
    Rest,
    Step,
)
from .sample import Sample

MAX_COMPILED_STEPS = 1_000_000  # guards against a typo like repeat: 10000000


class ProtocolError(ConfigError):
    """A protocol that cannot run on this sample and potentiostat."""


class Sampling(StrictModel):
    interval_s: PositiveFloat


class Protocol(StrictModel):
    name: str = Field(min_length=1)
    description: str = ""
    sampling: Optional[Sampling] = None
    steps: list[Step] = Field(min_length=1)
    _source: Optional[object] = PrivateAttr(None)

    @property
    def source(self):
        """The file this protocol was loaded from, if any."""
        return self._source


# ---------------------------------------------------------------------------------- compiling

# A compiled tree before numbering: techniques, and (repeat, subtree) for loops.
_Tree = list[Union[Technique, tuple[int, "_Tree"]]]


def compile_protocol(protocol: Protocol, sample: Sample, limits: Limits) -> list[ScheduledStep]:
    """Flatten ``protocol`` into numbered SI techniques; raise ProtocolError listing every problem."""
    problems: list[tuple[str, str, object]] = []
    tree = _compile_steps(protocol.steps, "steps", sample, limits, problems)
    total = _count(tree)
    if total > MAX_COMPILED_STEPS:
        problems.append(("steps", f"expands to {total} steps, more than {MAX_COMPILED_STEPS}", total))
    if problems:
        raise ProtocolError.from_problems(protocol.source or f"<protocol {protocol.name}>", problems)
    out: list[ScheduledStep] = []
    cycle = 0
    for item in tree:
        if isinstance(item, tuple):
            for _ in range(item[0]):
                cycle += 1  # each repetition of an outermost loop is one cycle
                _emit(item[1], cycle, out)
        else:
            _emit([item], 0, out)
    return out


def estimate_duration_s(steps: Iterable[Union[ScheduledStep, Technique]], capacity_mAh: float) -> float:
    """Rough run time for an ETA: a current step passes the full capacity unless its time limit
    ends it first; a CV phase is guessed at a quarter of its CC phase; sweeps, holds and impedance
    sweeps take their programmed time."""
    total = 0.0
    for step in steps:
        tech = step.technique if isinstance(step, ScheduledStep) else step
        total += _technique_duration_s(tech, capacity_mAh)
    return total


def _technique_duration_s(tech: Technique, capacity_mAh: float) -> float:
    if isinstance(tech, (OpenCircuit, ConstantPotential, LinearSweep, CyclicVoltammetry)):
        return tech.duration_s
    full = capacity_mAh * 3.6 / abs(tech.current_A) if hasattr(tech, "current_A") else 0.0
    if isinstance(tech, ConstantCurrent):
        return min(full, tech.max_duration_s) if tech.max_duration_s else full
    if isinstance(tech, ConstantCurrentConstantVoltage):
        return min(1.25 * full, tech.max_duration_s) if tech.max_duration_s else 1.25 * full
    if isinstance(tech, Gitt):
        pulses = max(1, int(full / tech.pulse_s))
        if tech.max_pulses:
            pulses = min(pulses, tech.max_pulses)
        return pulses * (tech.pulse_s + tech.relax_s)
    if isinstance(tech, ImpedanceSweep):
        return tech.sweep_duration_s
    return 0.0


def _emit(tree: _Tree, cycle: int, out: list[ScheduledStep]) -> None:
    for item in tree:
        if isinstance(item, tuple):
            for _ in range(item[0]):
                _emit(item[1], cycle, out)
        else:
            out.append(ScheduledStep(technique=item, cycle=cycle, step=len(out) + 1))


def _count(tree: _Tree) -> int:
    return sum(item[0] * _count(item[1]) if isinstance(item, tuple) else 1 for item in tree)


def _compile_steps(steps, path: str, sample: Sample, limits: Limits, problems) -> _Tree:
    tree: _Tree = []
    for i, step in enumerate(steps):
        here = f"{path}[{i}]"
        if isinstance(step, Loop):
            tree.append((step.repeat, _compile_steps(step.steps, f"{here}.steps", sample, limits, problems)))
        else:
            tech = compile_step(step, here, sample, limits, problems)
            if tech is not None:
                tree.append(tech)
    return tree
