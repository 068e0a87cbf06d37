"""Experiment configuration as validated data: profiles (instruments + sample) and protocol files.

Users edit YAML; it is parsed as plain data (a ``yaml.SafeLoader``, never code) and validated by
pydantic models with ``extra="forbid"``, so a misspelt key or a wrong type stops the run before any
instrument moves. Every problem becomes one line of a single ``ConfigError``::

    <file>: <field.path>: <message> (got <value>)

A bare name such as ``"sim"`` resolves to ``config/profiles/sim.yaml`` (or ``config/protocols/``)
inside the installed package; anything with a ``.yaml``/``.yml`` suffix or a directory is a path.
"""

from __future__ import annotations

import difflib
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional, Union, get_args

import yaml
from pydantic import (
    BaseModel,
    Field,
    JsonValue,
    PositiveFloat,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

import operando
from operando.devices.configuration import NOTHING, ConfigError, StrictModel, show_value
from operando.devices.techniques import Limits
from operando.plans.sample import Sample
from operando.plans.schedules import Rule
from operando.plans.suspenders import SuspenderRule
from operando.sim_devices.faults import Fault
from operando.sim_devices.wire.wire_faults import WireFault

from .backends import WIRE_SIM_ADDRESS, backend_names, backend_spec, wire_simulator
from .cells import Cell, cell_problems, cell_sample, shared_detector_problems

if TYPE_CHECKING:
    from operando.plans.protocol import Protocol

CONFIG_DIR = Path(operando.__file__).parent / "config"
PROFILES_DIR = CONFIG_DIR / "profiles"
PROTOCOLS_DIR = CONFIG_DIR / "protocols"

InstrumentKind = Literal["potentiostat", "magnetometer", "raman", "skpm", "stage"]


class Instrument(StrictModel):
    """One instrument of a profile: which backend drives it, where it is, with which settings.

    ``backend`` names a registered backend of the kind (``acquisition/backends.py``);
    ``settings`` is checked against that backend's settings model, so a misspelt key stops the
    run and the error lists the keys the backend knows. ``address`` says where a hardware
    instrument is, or ``sim`` to start its wire-level simulator in-process.
    """

    kind: InstrumentKind
    backend: str
    address: Optional[str] = None  # serial port, VISA resource, host:port... (backend-specific)
    enabled: bool = True
    limits: Optional[Limits] = Field(default=None, validate_default=True)
    settings: dict[str, JsonValue] = {}  # as written; typed_settings holds them validated
    # When a detector acquires (plans/schedules.py); default: every settings.period_s seconds.
    schedule: Optional[list[Rule]] = None
    # A detector shared by several cells (cells:): the stage that carries its probe from cell to
    # cell (each cell's position_um); none: a simulated detector switches cells at once.
    stage: Optional[str] = None
    _typed_settings: Any = PrivateAttr(None)

    @field_validator("schedule")
    @classmethod
    def _schedule_for_detectors(cls, schedule, info: ValidationInfo):
        if schedule is not None and info.data.get("kind") == "potentiostat":
            raise ValueError("a potentiostat has no acquisition schedule (it streams)")
        if schedule is not None and info.data.get("kind") == "stage":
            raise ValueError("a stage has no acquisition schedule (a map moves it: lab.raman_area_map)")
        if schedule is not None and not schedule:
            raise ValueError("a schedule needs at least one rule, e.g. {every_s: 60}")
        return schedule

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, backend: str, info: ValidationInfo) -> str:
        kind = info.data.get("kind")
        if kind is not None and backend_spec(kind, backend) is None:
            raise ValueError(f"expected one of {', '.join(backend_names(kind))} for kind {kind}")
        return backend

    @model_validator(mode="after")
    def _settings_and_address_fit_backend(self):
        spec = backend_spec(self.kind, self.backend)
        try:
            typed = spec.settings.model_validate(self.settings)
        except ValidationError as exc:
            raise ValidationError.from_exception_data(
                "settings", [_settings_error(err, spec.settings) for err in exc.errors()]
            ) from None
        self._typed_settings = typed
        wire = wire_simulator(self.kind, self.backend)
        problem = None
        if spec.address is None and self.address is not None:
            problem = f"the {self.backend} backend takes no address"
        elif spec.address is not None and not self.address:
            sim = f", or '{WIRE_SIM_ADDRESS}' for its wire-level simulator" if wire else ""
            problem = f"the {self.backend} backend needs {spec.address}{sim}"
        elif self.address == WIRE_SIM_ADDRESS and wire is None:
            problem = f"the {self.backend} backend has no wire-level simulator yet; give {spec.address}"
        if problem:
            raise ValidationError.from_exception_data(
                "address",
                [
                    InitErrorDetails(
                        type=PydanticCustomError("address", problem),
                        loc=("address",),
                        input=self.address if self.address is not None else NOTHING,
                    )
                ],
            )
        return self

    @property
    def typed_settings(self):
        """``settings`` validated by the backend's settings model (defaults filled in)."""
        return self._typed_settings

    @property
    def simulated(self) -> bool:
        """In-process simulation or a wire-level simulator: the run needs the simulated lab."""
        return backend_spec(self.kind, self.backend).simulated or self.address == WIRE_SIM_ADDRESS

    @field_validator("limits")
    @classmethod
    def _limits_fit_kind(cls, limits: Optional[Limits], info: ValidationInfo) -> Optional[Limits]:
        kind = info.data.get("kind")
        if kind == "potentiostat":
            if limits is None:
                raise ValueError("a potentiostat needs limits: e_min_V, e_max_V, i_max_A")
            if not (math.isfinite(limits.e_min_V) and math.isfinite(limits.e_max_V) and math.isfinite(limits.i_max_A)):
                raise ValueError("limits must be finite numbers")
            if limits.e_min_V >= limits.e_max_V:
                raise ValueError(f"e_max_V ({limits.e_max_V:g}) must be above e_min_V ({limits.e_min_V:g})")
        elif kind is not None and limits is not None:
            raise ValueError("limits (E window, |I| max) apply only to a potentiostat")
        return limits


def _settings_error(err: dict, model: type[BaseModel]) -> InitErrorDetails:
    """A backend settings error, placed under ``settings``; an unknown key lists the known ones."""
    loc = ("settings", *err["loc"])
    if err["type"] != "extra_forbidden":
        return InitErrorDetails(type=err["type"], loc=loc, input=err["input"], ctx=err.get("ctx", {}))
    allowed = sorted(model.model_fields)
    close = difflib.get_close_matches(str(err["loc"][-1]), allowed, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    message = f"unknown key{hint} (allowed keys: {', '.join(allowed) or 'none'})"
    return InitErrorDetails(type=PydanticCustomError("unknown_setting", message), loc=loc, input=err["input"])


class SimOptions(StrictModel):
    """How the simulated backends behave."""

    material: Optional[str] = None  # simulator preset; defaults to sample.sim_preset
    speed: PositiveFloat = 1.0  # simulated seconds per wall-clock second
    seed: Optional[int] = 0  # fixed by default so a demo run is reproducible
    # The simulated cell's state of charge at the start, 0..1 (0: empty, at the preset's lowest
    # potential); omitted: as assembled (an iron-oxide electrode against lithium rests at 2.9 V).
    soc: Optional[float] = Field(None, ge=0.0, le=1.0)
    # "scaled": wall time x speed; "virtual": discrete-event, a stalled host skips no time.
    clock: Literal["scaled", "virtual"] = "scaled"
    # The simulated Raman spectrometer's axis error (cm-1; 0: exact), for calibrating against
    # the silicon reference (`operando calibrate-raman`)
    raman_axis_error_cm1: float = Field(0.0, ge=-20.0, le=20.0)
    # Injected instrument faults (sim_devices/faults.py), e.g.
    #   {instrument: raman, kind: disconnect, at_s: 3600, duration_s: 600}
    faults: list[Fault] = []  # instrument names are checked against the profile's
    # Faults in the bytes a wire-level simulator's real driver reads (sim_devices/wire/
    # wire_faults.py), e.g. {instrument: potentiostat, fault: garbled, when: mid_run, after_s: 60}
    wire_faults: list[WireFault] = []


class Profile(StrictModel):
    """A lab setup: its instruments, the sample, simulator options. One potentiostat and one cell,
    or several cells (``cells:``, acquisition/cells.py) on the channels of one or more potentiostats."""

    name: str = Field(min_length=1)
    description: str = ""
    instruments: dict[str, Instrument]
    sample: Sample
    # Several cells in one run, each on a potentiostat channel (acquisition/cells.py); none: one
    # cell, the profile's sample, on its only potentiostat.
    cells: dict[str, Cell] = Field(default_factory=dict, validate_default=True)
    sim: Optional[SimOptions] = None
    # Conditions that suspend acquisition while they hold (plans/suspenders.py).
    suspenders: list[SuspenderRule] = []
    _source: Optional[Path] = PrivateAttr(None)

    @field_validator("sim")
    @classmethod
    def _faults_name_instruments(cls, sim: Optional[SimOptions], info: ValidationInfo):
        if sim is None or "instruments" not in info.data:
            return sim
        instruments, cells = info.data["instruments"], info.data.get("cells") or {}
        for fault in sim.faults:
            cell = cells.get(fault.instrument)  # a fault on a cell: on its channel only
            pot = next(n for n, i in instruments.items() if i.kind == "potentiostat")
            inst = instruments.get((cell.instrument or pot) if cell else fault.instrument)
            if inst is None:
                raise ValueError(
                    f"faults: {fault.kind} on unknown instrument {fault.instrument!r} "
                    f"(have {', '.join(sorted([*instruments, *cells]))})"
                )
            if not backend_spec(inst.kind, inst.backend).simulated:
                raise ValueError(
                    f"faults: {fault.kind} on {fault.instrument!r}, which is not an in-process "
                    f"simulation ({inst.backend}): faults are injected into simulated backends only"
                )
            if fault.kind == "interlock_open" and inst.kind != "raman":
                raise ValueError(
                    f"faults: interlock_open on {fault.instrument!r}, a {inst.kind}: "
                    "only a Raman spectrometer has a laser interlock"
                )
        return sim

    @field_validator("sim")
    @classmethod
    def _wire_faults_name_wire_simulators(cls, sim: Optional[SimOptions], info: ValidationInfo):
        from operando.sim_devices.wire.fault_protocols import wire_protocols

        if sim is None or "instruments" not in info.data:
            return sim
        instruments, seen = info.data["instruments"], set()
        for i, fault in enumerate(sim.wire_faults):
            where = f"wire_faults[{i}] ({fault.fault} on {fault.instrument!r})"
            inst = instruments.get(fault.instrument)
            if inst is None:
                raise ValueError(f"{where}: no such instrument (have {', '.join(sorted(instruments))})")
            if inst.address != WIRE_SIM_ADDRESS:
                raise ValueError(
                    f"{where}: wire faults need the instrument's wire-level simulator "
                    f"(address: {WIRE_SIM_ADDRESS}); its address is {inst.address!r}"
                )
            if inst.backend not in wire_protocols():
                raise ValueError(f"{where}: no fault relay knows the {inst.backend!r} protocol yet")
            if fault.instrument in seen:
                raise ValueError(f"{where}: one wire fault per instrument")
            seen.add(fault.instrument)
        return sim

    @field_validator("suspenders")
    @classmethod
    def _suspenders_watch_instruments(cls, suspenders: list[SuspenderRule], info: ValidationInfo):
        if "instruments" not in info.data:
            return suspenders  # the instruments are wrong already; that is the error to show
        names = set(info.data["instruments"])
        for rule in suspenders:
            if rule.instrument not in names:
                raise ValueError(
                    f"{rule.watch}: no instrument named {rule.instrument!r} (have {', '.join(sorted(names))})"
                )
        return suspenders

    @field_validator("instruments")
    @classmethod
    def _one_potentiostat(cls, instruments: dict[str, Instrument]) -> dict[str, Instrument]:
        for name in instruments:
            # the name becomes the ophyd device name, hence a prefix of every data key
            if not (name.isidentifier() and name == name.lower()):
                raise ValueError(f"instrument name {name!r} must be lower-case letters, digits, _")
        pots = [n for n, inst in instruments.items() if inst.kind == "potentiostat"]
        if not pots:
            raise ValueError("expected an instrument of kind potentiostat, found none")
        return instruments

    @field_validator("cells")
    @classmethod
    def _cells_on_channels(cls, cells: dict[str, Cell], info: ValidationInfo) -> dict[str, Cell]:
        instruments, sample = info.data.get("instruments"), info.data.get("sample")
        if instruments is None or sample is None:
            return cells  # the instruments or the sample are wrong already: that is the error
        pots = [n for n, inst in instruments.items() if inst.kind == "potentiostat"]
        if not cells:
            staged = [n for n, inst in instruments.items() if inst.stage]
            if staged:
                raise ValueError(
                    f"instruments.{staged[0]}.stage: a stage carries a shared detector between the cells "
                    "of cells:; this profile has one cell"
                )
            if len(pots) != 1:
                raise ValueError(
                    f"expected exactly one instrument of kind potentiostat, found {len(pots)} "
                    f"({', '.join(pots)}); for several cells, say which is on which channel in cells:"
                )
            return cells
        problems = cell_problems(cells, instruments, sample, lambda i: backend_spec(i.kind, i.backend).channels)
        problems += shared_detector_problems(cells, instruments)
        if problems:
            raise ValueError("; ".join(problems))
        return cells

    @field_validator("sim")
    @classmethod
    def _one_material(cls, sim: Optional[SimOptions], info: ValidationInfo) -> Optional[SimOptions]:
        sample = info.data.get("sample")
        preset = sample.sim_preset if sample else None
        if sim and sim.material and preset and sim.material != preset:
            raise ValueError(f"sim.material {sim.material!r} contradicts sample.sim_preset {preset!r}")
        return sim

    @property
    def multichannel(self) -> bool:
        """Cells listed under ``cells:`` (even one): the run has a stream per cell."""
        return bool(self.cells)

    def cell_instrument(self, cell: str) -> str:
        """The potentiostat the cell named ``cell`` is on."""
        return self.cells[cell].instrument or self.potentiostat_name

    def cell_sample(self, cell: str) -> Sample:
        return cell_sample(self.sample, cell, self.cells[cell])

    def cell_limits(self, cell: str) -> Limits:
        return self.cells[cell].limits or self.instruments[self.cell_instrument(cell)].limits

    @property
    def potentiostat_name(self) -> str:
        """The potentiostat (of the first cell, when there are several)."""
        if self.cells:
            first = next(iter(self.cells.values()))
            if first.instrument:
                return first.instrument
        return next(n for n, inst in self.instruments.items() if inst.kind == "potentiostat")

    @property
    def potentiostat(self) -> Instrument:
        return self.instruments[self.potentiostat_name]

    @property
    def limits(self) -> Limits:
        return self.potentiostat.limits  # type: ignore[return-value]  # validated non-None

    @property
    def sim_material(self) -> Optional[str]:
        return (self.sim.material if self.sim else None) or self.sample.sim_preset

    @property
    def source(self) -> Optional[Path]:
        """The file this profile was loaded from, if any."""
        return self._source


# ---------------------------------------------------------------------------------- loading


def load_profile(name_or_path: Union[str, Path]) -> Profile:
    return _load(name_or_path, PROFILES_DIR, "profile", Profile, ConfigError)


def load_protocol(name_or_path: Union[str, Path]) -> Protocol:
    from operando.plans.protocol import Protocol, ProtocolError  # protocol.py imports this module

    return _load(name_or_path, PROTOCOLS_DIR, "protocol", Protocol, ProtocolError)


def list_profiles() -> list[str]:
    return _names(PROFILES_DIR)


def list_protocols() -> list[str]:
    return _names(PROTOCOLS_DIR)


def _names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml"))


def _load(name_or_path, folder: Path, what: str, model: type[BaseModel], error: type[ConfigError]):
    path = _resolve(name_or_path, folder, what, error)
    data = _read_mapping(path, error)
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        raise error.from_problems(path, _problems(exc, data, model)) from None
    obj._source = path
    return obj


def _resolve(name_or_path, folder: Path, what: str, error: type[ConfigError]) -> Path:
    path = Path(name_or_path)
    is_bare_name = isinstance(name_or_path, str) and path.name == name_or_path and path.suffix not in (".yaml", ".yml")
    if is_bare_name:
        path = folder / f"{name_or_path}.yaml"
        if not path.is_file():
            available = ", ".join(_names(folder)) or "none"
            raise error(f"{path}: no {what} named {name_or_path!r}; available {what}s: {available}")
    elif not path.is_file():
        raise error(f"{path}: file not found")
    return path


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader (plain data only) that rejects duplicate keys, which YAML silently overwrites."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                continue  # unhashable key: the base class reports it
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _read_mapping(path: Path, error: type[ConfigError]) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "YAML"
        raise error(f"{path}: {where}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: YAML error: {exc}") from None
    except (ValueError, RecursionError) as exc:
        # a value PyYAML's own constructors cannot build (2024-13-45, an integer of 5000 digits),
        # or collections nested deeper than Python's stack (PyYAML composes them recursively)
        what = "collections nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise error(f"{path}: invalid YAML: {what}") from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}: {show_value(data)}"
        raise error(f"{path}: top level: expected a mapping of keys to values (got {got})")
    return data


def _problems(exc: ValidationError, data: Any, model: type[BaseModel]) -> list[tuple[str, str, Any]]:
    out = []
    for err in exc.errors(include_url=False):
        kind, msg, got = err["type"], err["msg"], err.get("input", NOTHING)
        ctx = err.get("ctx", {})
        if kind == "missing":
            msg, got = "required field missing", NOTHING
        elif kind == "extra_forbidden":
            key = str(err["loc"][-1])
            close = difflib.get_close_matches(key, _known_keys(model), n=1, cutoff=0.6)
            msg = f"unknown key; did you mean {close[0]!r}?" if close else "unknown key"
        elif kind == "value_error":
            msg = str(ctx.get("error", msg))
        elif kind in ("union_tag_not_found", "union_tag_invalid"):
            key = ctx.get("discriminator", "'kind'").strip("'")
            msg = f"expected one of {', '.join(sorted(_union_tags(model)))}"
            got = ctx.get("tag", NOTHING)
            out.append((f"{_path(err['loc'], data)}.{key}", msg, got))
            continue
        out.append((_path(err["loc"], data), msg, got))
    return out


def _path(loc: tuple, data: Any) -> str:
    """``('steps', 2, 'cc', 'c_rate')`` -> ``steps[2].c_rate``: pydantic's union tags dropped."""
    out = ""
    for item in loc:
        if isinstance(item, int):
            out += f"[{item}]"
            data = data[item] if isinstance(data, list) and -len(data) <= item < len(data) else None
            continue
        if isinstance(data, dict) and item not in data and item == data.get("kind"):
            continue  # tag of the union member pydantic tried, not a key of the file
        out += f".{item}" if out else str(item)
        data = data.get(item) if isinstance(data, dict) else None
    return out or "top level"


def _known_keys(model: type[BaseModel]) -> set[str]:
    """Every key any model reachable from ``model`` accepts (for did-you-mean suggestions)."""
    return {key for sub in _all_models(model) for key in sub.model_fields}


def _union_tags(model: type[BaseModel]) -> set[str]:
    """Values of the ``kind`` discriminator accepted anywhere below ``model``."""
    tags: set[str] = set()
    for sub in _all_models(model):
        field = sub.model_fields.get("kind")
        if field is not None:
            tags.update(a for a in get_args(field.annotation) if isinstance(a, str))
    return tags


def _all_models(model: type[BaseModel], seen: Optional[set] = None) -> set[type[BaseModel]]:
    seen = set() if seen is None else seen
    if model not in seen:
        seen.add(model)
        for field in model.model_fields.values():
            for sub in _models_in(field.annotation):
                _all_models(sub, seen)
    return seen


def _models_in(annotation: Any):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
        return
    for arg in get_args(annotation):
        yield from _models_in(arg)


def one_instrument_profile(
    kind: str, backend: str, settings: dict, *, hardware: bool, speed: float, clock: str | None = None
) -> Profile:
    """The simulated potentiostat and one instrument (named as its kind): what a conformance
    suite builds a backend into. ``hardware``: the backend's wire-level simulator (``address:
    sim``, on the scaled clock: it serves from threads); else in-process, on the virtual clock
    unless ``clock`` says otherwise."""
    return Profile.model_validate(
        {
            "name": f"conformance-{backend}",
            "instruments": {
                "potentiostat": {
                    "kind": "potentiostat",
                    "backend": "sim",
                    "limits": {"e_min_V": 0.01, "e_max_V": 3.0, "i_max_A": 0.01},
                },
                kind: {
                    "kind": kind,
                    "backend": backend,
                    **({"address": WIRE_SIM_ADDRESS} if hardware else {}),
                    "settings": settings,
                },
            },
            "sample": {
                "name": "conformance",
                "material": "Fe3O4",
                "sim_preset": "fe_li2o",
                "active_mass_g": 0.002,
                "theoretical_capacity_mAh_g": 926,
                "electrolyte": "-",
                "cell_type": "-",
                "operator": "test",
            },
            "sim": {"speed": speed, "seed": 0, "clock": clock or ("scaled" if hardware else "virtual")},
        }
    )
