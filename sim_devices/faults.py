"""Fault injection for simulated instruments, driven by configuration.

A ``FaultSchedule`` (data: YAML or dicts, validated) lists faults per instrument, each active
from ``at_s`` experiment seconds after the schedule is armed for ``duration_s`` (or for good).
``inject_faults(backend, instrument, schedule, clock)`` wraps any simulated backend so its
calls misbehave while a fault is active; everything else passes through unchanged.

Kinds and what the device layer sees (every error names the instrument):
- ``disconnect``: every call raises ``InstrumentDisconnected``. A simulated potentiostat's
  watchdog opens its cell when the host link drops (the wrapper does it), so the cell is safe.
- ``timeout``: the call waits ``delay_s`` on the clock, then raises ``InstrumentTimeout``
  (what a driver's read timeout does).
- ``garbled`` / ``truncated``: the instrument did the work but its reply cannot be parsed:
  ``GarbledReply`` / ``TruncatedReply`` (a ValueError, as a driver's parser raises).
- ``slow``: the reply comes ``delay_s`` later, otherwise correct.
- ``clock_drift``: the instrument's own time stamps run ``drift_ppm`` fast from the moment the
  fault starts (exposure/scan times, the echem time column).
- ``stuck``: the measured values freeze at the last good reading; time stamps still advance.
Slow, drift and stuck are silent: nothing raises, the data are wrong in a known way.
- ``interlock_open`` (a Raman spectrometer): the laser interlock reads open (``status()`` says
  ``interlock_closed: False``) and exposures are refused, as a real instrument does while its
  enclosure is open; what the profile's suspenders make of that is theirs to decide.

Wire level: ``WireFault`` is a hook for ``MethodScriptSimulator.wire_fault`` that garbles,
truncates or drops reply lines on the pty. Every wire-level simulator takes a profile's
``sim.wire_faults`` (``wire/wire_faults.py``): faults in the bytes its real driver reads.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat

FaultKind = Literal["disconnect", "timeout", "garbled", "truncated", "slow", "clock_drift", "stuck", "interlock_open"]
# calls that talk to the instrument; anything else (attributes, properties) passes through
CALLS = ("start", "poll", "measure", "acquire", "scan", "status", "open_circuit", "hold", "release", "move", "position")
VALUE_FIELDS = ("moment_emu", "counts", "frames", "topography_m", "cpd_V")
TIME_FIELDS = ("exposure_start", "exposure_end", "scan_start", "scan_end")


class InstrumentFault(RuntimeError):
    def __init__(self, instrument: str, kind: str, detail: str):
        super().__init__(f"{instrument}: {detail} (injected {kind} fault)")
        self.instrument, self.kind = instrument, kind


class InstrumentDisconnected(InstrumentFault, ConnectionError):
    pass


class InstrumentTimeout(InstrumentFault, TimeoutError):
    pass


class GarbledReply(InstrumentFault, ValueError):
    pass


class TruncatedReply(InstrumentFault, ValueError):
    pass


class Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    instrument: str
    kind: FaultKind
    at_s: NonNegativeFloat = 0.0  # experiment seconds after the schedule is armed
    duration_s: PositiveFloat | None = None  # None: until the end
    delay_s: NonNegativeFloat = 30.0  # slow: extra reply time; timeout: time before giving up
    drift_ppm: float = 500.0  # clock_drift

    def active(self, elapsed_s: float) -> bool:
        end = float("inf") if self.duration_s is None else self.at_s + self.duration_s
        return self.at_s <= elapsed_s < end


class FaultSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    faults: list[Fault] = Field(default_factory=list)

    @classmethod
    def from_yaml(cls, source: str | Path) -> FaultSchedule:
        """From a YAML file path or YAML text (``faults: [{instrument: ..., kind: ...}]``)."""
        text = Path(source).read_text() if isinstance(source, Path) else source
        return cls.model_validate(yaml.safe_load(text) or {})

    def for_instrument(self, instrument: str) -> list[Fault]:
        return [f for f in self.faults if f.instrument == instrument]


def inject_faults(backend, instrument: str, schedule: FaultSchedule, clock):
    """``backend`` wrapped so the schedule's faults for ``instrument`` happen; or as is if none."""
    faults = schedule.for_instrument(instrument)
    return FaultyBackend(backend, instrument, faults, clock) if faults else backend


class FaultyBackend:
    """Proxy: same attributes and calls as the backend it wraps, misbehaving on schedule."""

    def __init__(self, backend, instrument: str, faults: list[Fault], clock):
        self._inner = backend
        self._instrument = instrument
        self._faults = list(faults)
        self._clock = clock
        self._armed_at = clock.time()
        self._last_good: dict[str, object] = {}
        for name in CALLS:
            method = getattr(backend, name, None)
            if method is not None and inspect.iscoroutinefunction(method):
                setattr(self, name, self._wrap(name, method))

    def __getattr__(self, name):
        return getattr(self._inner, name)

    @property
    def done(self) -> bool:
        return self._inner.done

    def active_fault(self) -> Fault | None:
        elapsed = self._clock.time() - self._armed_at
        return next((f for f in self._faults if f.active(elapsed)), None)

    def _wrap(self, name, method):
        async def call(*args, **kwargs):
            fault = self.active_fault()
            if fault is None or (name == "open_circuit" and fault.kind != "disconnect"):
                result = await method(*args, **kwargs)
                if name in ("poll", "measure", "acquire", "scan"):
                    self._last_good[_reading_key(name, kwargs)] = result
                return result
            return await self._misbehave(fault, name, method, args, kwargs)

        call.__name__ = name
        return call

    async def _misbehave(self, fault: Fault, name, method, args, kwargs):
        who, kind = self._instrument, fault.kind
        if kind == "disconnect":
            if name == "open_circuit":
                await method(*args, **kwargs)  # the instrument's own watchdog opens the cell
            raise InstrumentDisconnected(who, kind, f"connection lost during {name}()")
        if kind == "timeout":
            await self._clock.sleep(fault.delay_s)
            raise InstrumentTimeout(who, kind, f"no reply to {name}() within {fault.delay_s:g} s")
        if kind == "interlock_open":
            if name == "acquire":
                raise RuntimeError(f"{who}: laser interlock open, no exposure")
            result = await method(*args, **kwargs)
            return {**result, "interlock_closed": False} if name == "status" else result
        if kind == "slow":
            await self._clock.sleep(fault.delay_s)
            return await method(*args, **kwargs)
        result = await method(*args, **kwargs)
        if kind == "garbled":
            raise GarbledReply(who, kind, f"garbled reply to {name}(): could not parse it")
        if kind == "truncated":
            raise TruncatedReply(who, kind, f"truncated reply to {name}(): message ended early")
        if kind == "clock_drift":
            return self._drifted(result, fault)
        if kind == "stuck":
            return self._stuck(_reading_key(name, kwargs), result)
        raise AssertionError(kind)  # pragma: no cover - FaultKind is closed

    def _drifted(self, result, fault: Fault):
        start = self._armed_at + fault.at_s
        scale = 1.0 + fault.drift_ppm * 1e-6

        def drift(t):
            return start + (np.asarray(t) - start) * scale

        if isinstance(result, dict):  # potentiostat block: the epoch-time column
            key = "timestamp" if "timestamp" in result else "time"
            return {**result, key: drift(result[key])} if key in result else result
        if dataclasses.is_dataclass(result):
            changes = {f: float(drift(getattr(result, f))) for f in TIME_FIELDS if hasattr(result, f)}
            return dataclasses.replace(result, **changes)
        return result

    def _stuck(self, name, result):
        good = self._last_good.get(name)
        if good is None:
            self._last_good[name] = result
            return result
        if isinstance(result, dict):  # potentiostat: Ewe frozen at the last good value
            n = len(result.get("Ewe", ()))
            last = good.get("Ewe", ())
            if n and len(last):
                return {**result, "Ewe": np.full(n, last[-1])}
            return result
        if dataclasses.is_dataclass(result):
            changes = {f: getattr(good, f) for f in VALUE_FIELDS if hasattr(result, f)}
            return dataclasses.replace(result, **changes)
        return result


def _reading_key(name: str, kwargs: dict) -> str:
    """A Raman dark is frozen at the last good dark, a light frame at the last good light frame."""
    return f"{name}-dark" if kwargs.get("dark") else name


class WireFault:
    """Hook for ``MethodScriptSimulator.wire_fault``: corrupts reply lines while ``active``.

    ``kind``: "garbled" (bytes replaced), "truncated" (line cut in half), "drop" (line lost).
    ``match``: only lines starting with this prefix (e.g. "P" for data packages).
    """

    def __init__(self, kind: Literal["garbled", "truncated", "drop"], match: str = "", seed=0):
        self.kind, self.match, self.active = kind, match, True
        self._rng = np.random.default_rng(seed)
        self.hits = 0

    def __call__(self, line: str) -> str | None:
        if not self.active or not line.startswith(self.match) or not line:
            return line
        self.hits += 1
        if self.kind == "drop":
            return None
        if self.kind == "truncated":
            return line[: max(1, len(line) // 2)]
        chars = list(line)
        for i in self._rng.choice(len(chars), size=max(1, len(chars) // 4), replace=False):
            chars[i] = "\x7f#~"[int(self._rng.integers(0, 3))]
        return "".join(chars)
