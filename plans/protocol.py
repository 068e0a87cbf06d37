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
- ``loop``: ``repeat: N`` times its own ``steps`` (loops nest).

Cycle rule: every repetition of an *outermost* loop starts a new cycle (1, 2, ... counted across
the whole protocol); loops nested inside it stay in that cycle; steps outside any loop are cycle 0
(formation, initial rest). Step numbers count the compiled steps 1, 2, ... over the whole run.

Loading checks the structure (keys, types); ``compile_protocol`` checks the meaning against a
sample and the potentiostat's limits, so nothing that violates the limits is ever compiled.
"""

from __future__ import annotations

from typing import Annotated, Iterable, Literal, Optional, Union

from pydantic import Field, PositiveFloat, PositiveInt, PrivateAttr

from .sample import _NOTHING, ConfigError, Sample, _Model
from operando.devices.techniques import (
    ConstantCurrent,
    Limits,
    OpenCircuit,
    ScheduledStep,
    Technique,
)

MAX_COMPILED_STEPS = 1_000_000  # guards against a typo like repeat: 10000000

_UNITS_S = {"s": 1.0, "min": 60.0, "h": 3600.0}
_CURRENT_KEYS = ("current_A", "current_A_g", "c_rate")


class ProtocolError(ConfigError):
    """A protocol that cannot run on this sample and potentiostat."""


class _Step(_Model):
    label: str = ""  # shown in the GUI and stored with the data; generated when empty


class Rest(_Step):
    kind: Literal["rest"]
    duration_s: Optional[PositiveFloat] = None
    duration_min: Optional[PositiveFloat] = None
    duration_h: Optional[PositiveFloat] = None


class ConstantCurrentStep(_Step):
    kind: Literal["cc"]
    current_A: Optional[float] = None
    current_A_g: Optional[float] = None
    c_rate: Optional[float] = None
    e_min_V: Optional[float] = None
    e_max_V: Optional[float] = None
    max_duration_s: Optional[PositiveFloat] = None
    max_duration_min: Optional[PositiveFloat] = None
    max_duration_h: Optional[PositiveFloat] = None


class Loop(_Step):
    kind: Literal["loop"]
    repeat: PositiveInt
    steps: list[Step] = Field(min_length=1)


Step = Annotated[Union[Rest, ConstantCurrentStep, Loop], Field(discriminator="kind")]
Loop.model_rebuild()


class Sampling(_Model):
    interval_s: PositiveFloat


class Protocol(_Model):
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
    """Rough run time for an ETA: each cc step passes the full capacity unless its time limit ends it."""
    total = 0.0
    for step in steps:
        tech = step.technique if isinstance(step, ScheduledStep) else step
        if isinstance(tech, OpenCircuit):
            total += tech.duration_s
        elif isinstance(tech, ConstantCurrent):
            t = capacity_mAh * 3.6 / abs(tech.current_A)  # mAh -> C, over A
            total += min(t, tech.max_duration_s) if tech.max_duration_s else t
    return total


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
        elif isinstance(step, Rest):
            seconds, given = _seconds(step, "duration", here, problems)
            if seconds is None and not given:
                problems.append((here, "a rest needs one of duration_s, duration_min, duration_h", _NOTHING))
            elif seconds is not None:
                tree.append(OpenCircuit(duration_s=seconds, label=step.label or f"rest {given}"))
        else:
            tech = _compile_cc(step, here, sample, limits, problems)
            if tech is not None:
                tree.append(tech)
    return tree


def _seconds(step, prefix: str, here: str, problems) -> tuple[Optional[float], str]:
    """The one ``<prefix>_s|_min|_h`` given, in seconds, and how the user wrote it."""
    given = [(unit, getattr(step, f"{prefix}_{unit}")) for unit in _UNITS_S]
    given = [(unit, v) for unit, v in given if v is not None]
    if len(given) > 1:
        unit, value = given[1]
        problems.append((f"{here}.{prefix}_{unit}",
                         f"give only one of {prefix}_s, {prefix}_min, {prefix}_h; "
                         f"{prefix}_{given[0][0]} is also set", value))
        return None, "conflict"
    if not given:
        return None, ""
    unit, value = given[0]
    return value * _UNITS_S[unit], f"{value:g} {unit}"


def _compile_cc(step: ConstantCurrentStep, here: str, sample: Sample, limits: Limits, problems):
    n_before = len(problems)
    specs = [(key, getattr(step, key)) for key in _CURRENT_KEYS if getattr(step, key) is not None]
    if not specs:
        problems.append((here, "a cc step needs one of current_A, current_A_g, c_rate", _NOTHING))
        return None
    if len(specs) > 1:
        problems.append((f"{here}.{specs[1][0]}",
                         f"give only one of current_A, current_A_g, c_rate; {specs[0][0]} is also set",
                         specs[1][1]))
        return None
    key, value = specs[0]
    if key == "current_A":
        amps, what = value, f"{abs(value) * 1e3:.4g} mA"
    elif key == "current_A_g":
        amps, what = value * sample.active_mass_g, f"{abs(value):g} A/g"
    else:  # 1C = capacity (mAh) in 1 h = capacity mA
        amps, what = value * sample.capacity_mAh / 1000.0, f"{abs(value):g}C"
    if amps == 0:
        problems.append((f"{here}.{key}", "a zero current is a rest: use kind: rest", value))
        return None
    if abs(amps) > limits.i_max_A * (1 + 1e-9):  # tolerance: c_rate arithmetic may round up
        problems.append((f"{here}.{key}", f"{what} is {abs(amps):.4g} A, above the potentiostat limit "
                         f"i_max_A = {limits.i_max_A:g} A", value))

    for name in ("e_min_V", "e_max_V"):
        v = getattr(step, name)
        if v is not None and not limits.e_min_V <= v <= limits.e_max_V:
            problems.append((f"{here}.{name}", f"outside the potentiostat limits window "
                             f"{limits.e_min_V:g} to {limits.e_max_V:g} V", v))
    if step.e_min_V is not None and step.e_max_V is not None and step.e_min_V >= step.e_max_V:
        problems.append((f"{here}.e_max_V", f"must be above e_min_V ({step.e_min_V:g} V)", step.e_max_V))

    max_s, _ = _seconds(step, "max_duration", here, problems)
    ends_at, end_key = (step.e_max_V, "e_max_V") if amps > 0 else (step.e_min_V, "e_min_V")
    if ends_at is None and max_s is None and len(problems) == n_before:
        direction = "charge (current > 0)" if amps > 0 else "discharge (current < 0)"
        problems.append((here, f"a {direction} needs {end_key} or max_duration_s/_min/_h to end; "
                         "otherwise only the safety limit stops it", _NOTHING))
    if len(problems) > n_before:
        return None
    direction = "charge" if amps > 0 else "discharge"
    return ConstantCurrent(
        current_A=amps,
        # the unused cut-off still gets the window edge: the potentiostat always has both stops
        e_min_V=step.e_min_V if step.e_min_V is not None else limits.e_min_V,
        e_max_V=step.e_max_V if step.e_max_V is not None else limits.e_max_V,
        max_duration_s=max_s,
        label=step.label or f"{direction} {what}",
    )
