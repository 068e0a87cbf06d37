"""SKPM device (scanning Kelvin probe microscopy): topography and CPD maps, one frame per trigger.

The scan parameters are configuration signals; each trigger scans one frame line by line on
the backend (Nanonis, simulated...) and publishes both maps with the experiment-clock times
at which the scan started and ended (``exposure_start``/``exposure_end``, as every detector).

Lines as they arrive: the backend reports each finished line (``on_line``), and the device keeps
them for ``drain_lines``; the operando plan stores them at once in the stream ``<skpm>_lines``
(one event per line: frame, row, time, both channels), so a process killed mid-map keeps the
lines already scanned. The map itself is stored whole, as one event, when it is done.

A scan the backend could not finish (it outlived its time, the feedback was lost) comes back
with the lines it has (NaN after them) and what went wrong: the frame is stored flagged —
``lines_done`` below ``lines``, ``problem`` naming the command that failed — and logged, never
dropped. A backend that cannot return anything (the connection is gone) raises, and the frame
fails as any detector's does.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Optional, Protocol

import numpy as np
from ophyd_async.core import Array1D, AsyncStatus, StandardReadable, soft_signal_r_and_setter, soft_signal_rw
from ophyd_async.core import StandardReadableFormat as Format

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SkpmScan:
    """One frame: ``lines`` x ``pixels`` over ``width_m`` x ``height_m``, ``line_rate_hz`` lines/s."""

    pixels: int
    lines: int
    width_m: float
    height_m: float
    line_rate_hz: float  # trace + retrace (topography and lift/CPD pass) per line

    def problems(self) -> list[str]:
        out = []
        if not 2 <= self.pixels <= 4096:
            out.append(f"pixels must be 2..4096 (got {self.pixels})")
        if not 1 <= self.lines <= 4096:
            out.append(f"lines must be 1..4096 (got {self.lines})")
        if not (self.width_m > 0 and self.height_m > 0):
            out.append(f"scan size must be > 0 (got {self.width_m} x {self.height_m} m)")
        if not self.line_rate_hz > 0:
            out.append(f"line_rate must be > 0 Hz (got {self.line_rate_hz})")
        return out

    @property
    def duration_s(self) -> float:
        return self.lines / self.line_rate_hz


@dataclass(frozen=True)
class SkpmFrame:
    scan_start: float  # experiment-clock seconds since the epoch
    scan_end: float
    topography_m: np.ndarray  # (lines, pixels), height in m
    cpd_V: np.ndarray  # (lines, pixels), contact potential difference in V
    lines_done: Optional[int] = None  # a partial frame: the lines scanned (None: all of them)
    problem: str = ""  # why it is partial, naming the command that failed
    # further maps the backend records (backward passes, the Kelvin amplitude...), by the names
    # in its ``extra_maps``
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SkpmLine:
    """One finished scan line, as it arrives: stored at once (the plan drains them), so a crash
    mid-map keeps the lines already scanned."""

    frame: int  # the device's frame count in this run, from 1
    row: int  # 0 = the bottom line
    time: float  # experiment clock, when the line was reported
    topography_m: np.ndarray
    cpd_V: np.ndarray


class SkpmBackend(Protocol):
    description: str
    # Optional: what the backend set up and a run should record (the scan frame's centre and
    # angle, the Kelvin controller's parameters...): name -> (value, units); the device makes
    # each a configuration signal, so it is stored with every run's configuration.
    # configuration: dict[str, tuple[object, str]]
    # Optional: which of those a plan may change (``settable``; the device makes them writable
    # and hands their values to ``apply`` before each frame), and further maps it records,
    # name -> units (``extra_maps``; the device reads them from ``SkpmFrame.extra``).
    # settable: frozenset[str]; extra_maps: dict[str, str]
    # async def apply(self, values: dict) -> None

    async def scan(self, scan: SkpmScan, on_line=None) -> SkpmFrame:
        """Scan one frame (experiment time: ``scan.duration_s``) and return both maps; call
        ``on_line(row, topography, cpd)`` (from any thread) for each line as it is finished."""


class Skpm(StandardReadable):
    def __init__(
        self,
        backend: SkpmBackend,
        pixels: int = 64,
        lines: int = 64,
        width_m: float = 200e-9,
        height_m: float = 200e-9,
        line_rate_hz: float = 1.0,
        name: str = "",
    ):
        self._backend = backend
        with self.add_children_as_readables(Format.HINTED_SIGNAL):
            self.cpd, self._set_cpd = soft_signal_r_and_setter(np.ndarray, units="V")
        with self.add_children_as_readables():
            self.topography, self._set_topography = soft_signal_r_and_setter(np.ndarray, units="m")
            # named like every detector's, so plans stamp frames the same way
            self.exposure_start, self._set_start = soft_signal_r_and_setter(float, units="s")
            self.exposure_end, self._set_end = soft_signal_r_and_setter(float, units="s")
            # lines scanned (== lines for a whole frame) and, for a partial one, why
            self.lines_done, self._set_lines_done = soft_signal_r_and_setter(int, 0)
            self.problem, self._set_problem = soft_signal_r_and_setter(str, "")
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.pixels = soft_signal_rw(int, pixels)
            self.lines = soft_signal_rw(int, lines)
            self.width = soft_signal_rw(float, width_m, units="m")
            self.height = soft_signal_rw(float, height_m, units="m")
            self.line_rate = soft_signal_rw(float, line_rate_hz, units="Hz")
            self.backend_description, _ = soft_signal_r_and_setter(str, backend.description)
            settable = set(getattr(backend, "settable", ()))
            for key, (value, units) in getattr(backend, "configuration", {}).items():
                if key in settable:
                    signal = soft_signal_rw(type(value), value, units=units or None)
                else:
                    signal, _ = soft_signal_r_and_setter(type(value), value, units=units or None)
                setattr(self, key, signal)
        self.settable_names = tuple(sorted(settable))
        self._extra_setters = {}
        with self.add_children_as_readables():
            for key, units in getattr(backend, "extra_maps", {}).items():
                signal, self._extra_setters[key] = soft_signal_r_and_setter(np.ndarray, units=units or None)
                setattr(self, key, signal)
        super().__init__(name=name)
        self._lines: list[SkpmLine] = []
        self._lines_lock = threading.Lock()
        self._frames = 0

    def drain_lines(self) -> list[SkpmLine]:
        """The lines finished since the last call, oldest first (the plan stores each at once)."""
        with self._lines_lock:
            lines, self._lines = self._lines, []
        return lines

    @AsyncStatus.wrap
    async def stage(self) -> None:
        self._frames = 0
        self.drain_lines()  # a new run: nothing of the last one
        await super().stage()

    def _line_reporter(self, frame: int, clock_time):
        def on_line(row: int, topography, cpd) -> None:
            line = SkpmLine(frame, int(row), clock_time(), np.asarray(topography, float), np.asarray(cpd, float))
            with self._lines_lock:
                self._lines.append(line)

        return on_line

    async def scan_parameters(self) -> SkpmScan:
        return SkpmScan(
            pixels=await self.pixels.get_value(),
            lines=await self.lines.get_value(),
            width_m=await self.width.get_value(),
            height_m=await self.height.get_value(),
            line_rate_hz=await self.line_rate.get_value(),
        )

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        scan = await self.scan_parameters()
        problems = scan.problems()
        if problems:
            raise ValueError(f"{self.name}: " + "; ".join(problems))
        if self.settable_names:
            await self._backend.apply({k: await getattr(self, k).get_value() for k in self.settable_names})
        self._frames += 1
        clock = getattr(self._backend, "clock", None)
        clock_time = clock.time if clock is not None else time.time
        frame = await self._backend.scan(scan, on_line=self._line_reporter(self._frames, clock_time))
        shape = (scan.lines, scan.pixels)
        for label, image in (("topography", frame.topography_m), ("cpd", frame.cpd_V)):
            if np.shape(image) != shape:
                raise RuntimeError(f"{self.name}: {label} map has shape {np.shape(image)}, expected {shape}")
        done = scan.lines if frame.lines_done is None else int(frame.lines_done)
        if done < scan.lines:
            log.error("%s: partial map, %d of %d lines kept: %s", self.name, done, scan.lines, frame.problem)
        self._set_lines_done(done)
        self._set_problem(frame.problem)
        self._set_start(frame.scan_start)
        self._set_end(frame.scan_end)
        self._set_topography(np.asarray(frame.topography_m, dtype=np.float64))
        self._set_cpd(np.asarray(frame.cpd_V, dtype=np.float64))
        for key, setter in self._extra_setters.items():
            image = np.asarray(frame.extra.get(key, np.full(shape, np.nan)), dtype=np.float64)
            if image.shape != shape:
                raise RuntimeError(f"{self.name}: {key} map has shape {image.shape}, expected {shape}")
            setter(image)


class SkpmLineRecord(StandardReadable):
    """One finished line of a map, read into the ``<skpm>_lines`` stream: ``frame`` (the map it
    belongs to, counted from 1 in the run), ``row`` (0 = bottom), ``time`` (s, experiment clock),
    ``topography`` (m) and ``cpd`` (V), one value per pixel."""

    def __init__(self, name: str):
        with self.add_children_as_readables():
            self.frame, self._set_frame = soft_signal_r_and_setter(int, 0)
            self.row, self._set_row = soft_signal_r_and_setter(int, 0)
            self.time, self._set_time = soft_signal_r_and_setter(float, units="s")
            self.topography, self._set_topography = soft_signal_r_and_setter(Array1D[np.float64], units="m")
            self.cpd, self._set_cpd = soft_signal_r_and_setter(Array1D[np.float64], units="V")
        super().__init__(name=name)

    def record(self, line: SkpmLine) -> None:
        self._set_frame(line.frame)
        self._set_row(line.row)
        self._set_time(line.time)
        self._set_topography(np.asarray(line.topography_m, np.float64))
        self._set_cpd(np.asarray(line.cpd_V, np.float64))
