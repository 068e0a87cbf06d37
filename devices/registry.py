"""The backend registry: one entry per (instrument kind, backend name).

A backend is what a device drives: a simulated instrument, or an adapter from a driver to the
device's backend interface. Each one registers itself, next to its code, with::

    register(BackendSpec(kind="potentiostat", name="methodscript", settings=MethodScriptSettings,
                         build=build_methodscript, capabilities=..., techniques=...))

``settings`` is a strict pydantic model (unknown keys are errors) of everything the profile's
``settings:`` mapping may hold for that backend; ``capabilities`` and ``techniques`` say what it
can do, and are checked against a protocol and a profile before any instrument is touched;
``build`` makes the backend from a ``BuildContext``. Nothing else in the project names a backend:
``acquisition/backends.py`` finds every registration by importing the backend packages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Optional

from .clock import Clock
from .configuration import StrictModel
from .techniques import Limits


class Capability(StrEnum):
    """What a backend can do beyond its kind's basics (streaming echem, taking a frame)."""

    HOLD = "hold"  # potentiostat: open circuit now, keep measuring, resume the frozen step later
    IMPEDANCE = "impedance"  # potentiostat: a frequency-response analyser (PEIS/GEIS)
    TRIGGER_OUT = "trigger_out"  # potentiostat: a TTL edge on a sample instant, for detectors
    TRIGGER_IN = "trigger_in"  # detector: an exposure can start on an external edge
    FIELD_CONTROL = "field_control"  # magnetometer: sets and ramps the field
    TEMPERATURE_CONTROL = "temperature_control"  # magnetometer: sets the temperature
    MAPPING = "mapping"  # detector: scans an area (a stage or a probe)


@dataclass
class BuildContext:
    """What a backend's ``build`` gets: the profile entry and the run's shared resources."""

    name: str  # the instrument's name in the profile (also the device's name)
    address: Optional[str]  # where the instrument is; a wire simulator's when it was 'sim'
    settings: Any  # an instance of the spec's settings model
    clock: Clock  # the run's experiment clock (wall clock unless something is simulated)
    limits: Optional[Limits] = None  # a potentiostat's safety limits
    lab: Any = None  # the simulated lab: given to simulated backends only
    trigger_source: Any = None  # the potentiostat's backend, for `trigger: hardware` detectors
    closers: list[Callable[[], None]] = field(default_factory=list)
    channel: int = 1  # a multichannel potentiostat's channel (1-based)

    def on_close(self, close: Callable[[], None], *, first: bool = False) -> None:
        """Run ``close`` when the run's instruments close (``first``: before the others)."""
        if first:
            self.closers.insert(0, close)
        else:
            self.closers.append(close)


@dataclass(frozen=True)
class BackendSpec:
    kind: str  # potentiostat, magnetometer, raman, skpm
    name: str  # what a profile writes as `backend:`
    settings: type[StrictModel]
    build: Callable[[BuildContext], Any]
    summary: str  # one line for documentation and error messages
    capabilities: frozenset[Capability] = frozenset()
    techniques: frozenset[str] = frozenset()  # potentiostat: technique kinds it can run
    simulated: bool = False  # an in-process simulation: it needs the simulated lab
    # A hardware backend says what its address is (e.g. "a serial port such as /dev/ttyACM0");
    # None: it takes none.
    address: Optional[str] = None
    # potentiostat: how many channels (cells) one instrument drives; each is built on its own
    # with BuildContext.channel, and behaves as a single-channel instrument
    channels: int = 1

    @property
    def key(self) -> tuple[str, str]:
        return self.kind, self.name


_REGISTRY: dict[tuple[str, str], BackendSpec] = {}


def register(spec: BackendSpec) -> BackendSpec:
    """Add ``spec``; a second backend under the same (kind, name) is a programming error."""
    existing = _REGISTRY.get(spec.key)
    if existing is not None and existing is not spec:
        raise ValueError(f"backend {spec.name!r} for kind {spec.kind!r} is registered twice")
    _REGISTRY[spec.key] = spec
    return spec


def registered() -> dict[tuple[str, str], BackendSpec]:
    """Every backend registered so far (``acquisition/backends.py`` loads them all first)."""
    return dict(_REGISTRY)
