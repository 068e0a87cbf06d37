"""SKPM on a Nanonis controller (backend ``nanonis``): the device's frames through the Nanonis TCP
interface (``devices/drivers/nanonis.py``).

At connect the backend looks up the topography and CPD channels by name (``Signals.NamesGet``)
and sets the Kelvin controller up — bias limits first, then modulation, gains, setpoint, and on
— reading each back. A frame is ``Scan.FrameSet`` (centre, size, angle), ``Scan.BufferSet``
(the two channels, pixels, lines), ``Scan.SpeedSet`` (half the line period forward, half
backward: a line rate counts trace and retrace), ``Scan.Action`` start, ``Scan.WaitEndOfScan``
in steps of at most ``WAIT_STEP_S`` until the scan ends or its expected duration plus
``timeout_s`` has passed, then ``Scan.FrameDataGrab`` of both channels, forward. A scan that
outlives its time is stopped and its finished lines returned as a partial frame, flagged with
the reason naming ``Scan.WaitEndOfScan`` (the device stores and logs it); the controller's
errors name their command (``NanonisError``) and fail the frame.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import threading
from typing import Optional

import numpy as np
from pydantic import Field, PositiveFloat, StrictBool, model_validator

from operando.devices.clock import Clock, WallClock
from operando.devices.drivers.nanonis import NanonisClient, NanonisError, NanonisTimeout, ScanFrame
from operando.devices.drivers.nanonis_protocol import NanonisProtocolError
from operando.devices.kinds import SkpmSettings
from operando.devices.registry import BackendSpec, BuildContext, Capability, register
from operando.devices.skpm import SkpmFrame, SkpmScan

log = logging.getLogger(__name__)

WAIT_STEP_S = 1.0  # wall seconds per Scan.WaitEndOfScan: short enough to notice a closed link


class NanonisSettings(SkpmSettings):
    # Pixels: the controller's scan module coerces them to a multiple of 16 (its RT-to-host
    # packets); asking for anything else would store maps of another shape than configured.
    pixels: int = Field(64, ge=16, le=4096, multiple_of=16)
    centre_x_m: float = 0.0
    centre_y_m: float = 0.0
    angle_deg: float = Field(0.0, gt=-90.0, lt=90.0)
    topography_channel: str = "Z (m)"  # signal names as the controller's Signals Manager lists them
    cpd_channel: str = "Bias (V)"  # the Kelvin controller's output: the nulling bias is the CPD
    kelvin_setpoint: float = 0.0
    kelvin_p_gain: PositiveFloat = 1.0
    kelvin_time_constant_s: PositiveFloat = 1e-3
    modulation_hz: PositiveFloat = 70e3
    modulation_V: float = Field(0.5, gt=0.0, le=5.0)
    # the bias the Kelvin controller may apply to the tip; a battery electrode's CPD is within
    # ±2 V of the tip's, and a larger bias can drive electrochemistry under the tip
    bias_limits_V: tuple[float, float] = (-2.0, 2.0)
    timeout_s: PositiveFloat = 10.0  # per exchange; a scan gets its expected duration on top
    # further maps: the backward pass of both channels, and more channels' forward maps (e.g. the
    # Kelvin controller's amplitude and phase), each stored under its name's slug
    # ("Kelvin Amplitude (V)" -> skpm-kelvin_amplitude, in V)
    backward: StrictBool = False
    extra_channels: list[str] = Field(default_factory=list, max_length=8)

    @model_validator(mode="after")
    def _extra_channels_have_names(self):
        for name in self.extra_channels:
            key = channel_key(name)
            if not key.isidentifier() or key in RESERVED_KEYS:
                raise ValueError(f"extra_channels: {name!r} cannot be stored as {key!r} (a name like 'Phase (deg)')")
        if len({channel_key(n) for n in self.extra_channels}) != len(self.extra_channels):
            raise ValueError(f"extra_channels: two channels would be stored under one name ({self.extra_channels})")
        return self

    @model_validator(mode="after")
    def _limits_ordered(self):
        low, high = self.bias_limits_V
        if not (math.isfinite(low) and math.isfinite(high) and -10.0 <= low < high <= 10.0):
            raise ValueError(f"bias_limits_V must be [low, high] within ±10 V, low < high (got [{low:g}, {high:g}])")
        return self


class NanonisSkpmBackend:
    capabilities = frozenset({Capability.MAPPING})

    def __init__(self, client: NanonisClient, settings: NanonisSettings, clock: Optional[Clock] = None):
        self.client, self.settings = client, settings
        self.clock = clock or WallClock()
        self.description = f"Nanonis SPM controller at {client.host}:{client.port} (Kelvin probe)"
        self._io = threading.Lock()
        self.channels: tuple[int, int] | None = None  # (topography, cpd) signal indexes
        low, high = settings.bias_limits_V
        # a plan may change these between frames (the device hands them to apply)
        self.settable = frozenset(SETTABLE)
        self.extra_maps = {}
        if settings.backward:
            self.extra_maps.update(topography_backward="m", cpd_backward="V")
        for name in settings.extra_channels:
            self.extra_maps[channel_key(name)] = _units_of(name)
        self.extra_indexes: dict[str, int] = {}  # map key -> the channel's signal index
        self._applied: dict = {}
        self._previous: tuple[np.ndarray, np.ndarray] | None = None  # the last frame's maps, as grabbed
        self.configuration = {  # recorded with every run (the device's configuration signals)
            "centre_x": (float(settings.centre_x_m), "m"),
            "centre_y": (float(settings.centre_y_m), "m"),
            "angle": (float(settings.angle_deg), "deg"),
            "scan_direction": ("up", ""),
            "kelvin_on": (True, ""),
            "topography_channel": (settings.topography_channel, ""),
            "cpd_channel": (settings.cpd_channel, ""),
            "kelvin_setpoint": (float(settings.kelvin_setpoint), ""),
            "kelvin_p_gain": (float(settings.kelvin_p_gain), ""),
            "kelvin_time_constant": (float(settings.kelvin_time_constant_s), "s"),
            "modulation_frequency": (float(settings.modulation_hz), "Hz"),
            "modulation_amplitude": (float(settings.modulation_V), "V"),
            "bias_limit_low": (float(low), "V"),
            "bias_limit_high": (float(high), "V"),
        }

    # ---- set-up ------------------------------------------------------------------------------
    def open(self) -> NanonisSkpmBackend:
        with self._io:
            c, s = self.client, self.settings
            c.connect()
            names = c.signals_names_get()
            self.channels = tuple(
                self._index(names, n, f)
                for n, f in ((s.topography_channel, "topography_channel"), (s.cpd_channel, "cpd_channel"))
            )
            self.extra_indexes = {channel_key(n): self._index(names, n, "extra_channels") for n in s.extra_channels}
            self._apply_now({k: v for k, (v, _units) in self.configuration.items() if k in SETTABLE})
        return self

    async def apply(self, values: dict) -> None:
        """Set what a plan changed (Kelvin controller, frame position) before the next frame."""
        await asyncio.to_thread(self._apply_locked, values)

    def _apply_locked(self, values: dict) -> None:
        with self._io:
            self._apply_now(values)

    def _apply_now(self, values: dict) -> None:
        """Send the Kelvin commands whose values changed since they were last sent (all, the
        first time); the limits are checked first, before anything is sent."""
        v = {**{k: val for k, (val, _u) in self.configuration.items() if k in SETTABLE}, **self._applied, **values}
        if not (-10.0 <= v["bias_limit_low"] < v["bias_limit_high"] <= 10.0):
            raise ValueError(
                f"{self.client.name}: bias limits must be low < high within ±10 V "
                f"(got {v['bias_limit_low']:g}, {v['bias_limit_high']:g})"
            )
        if not (v["modulation_frequency"] > 0 and 0 < v["modulation_amplitude"] <= 5.0):
            raise ValueError(f"{self.client.name}: modulation must be > 0 Hz and 0-5 V")
        if not (v["kelvin_p_gain"] > 0 and v["kelvin_time_constant"] > 0):
            raise ValueError(f"{self.client.name}: Kelvin gain and time constant must be > 0")
        if v["scan_direction"] not in ("up", "down"):
            raise ValueError(f"{self.client.name}: scan_direction must be up or down (got {v['scan_direction']!r})")
        if not -90.0 < v["angle"] < 90.0:
            raise ValueError(f"{self.client.name}: the scan angle must be within ±90° (got {v['angle']:g})")
        changed = lambda *keys: any(self._applied.get(k) != v[k] for k in keys)
        c = self.client
        if changed("bias_limit_low", "bias_limit_high"):
            c.kelvin_bias_limits_set(v["bias_limit_high"], v["bias_limit_low"])
        if changed("modulation_frequency", "modulation_amplitude"):
            c.kelvin_modulation_set(v["modulation_frequency"], v["modulation_amplitude"], 0.0)
        if changed("kelvin_p_gain", "kelvin_time_constant"):
            c.kelvin_gain_set(v["kelvin_p_gain"], v["kelvin_time_constant"])
        if changed("kelvin_setpoint"):
            c.kelvin_setpoint_set(v["kelvin_setpoint"])
        if changed("kelvin_on"):
            c.kelvin_on_off_set(bool(v["kelvin_on"]))
            if c.kelvin_on_off_get() != bool(v["kelvin_on"]):
                raise RuntimeError(f"{c.name}: the Kelvin controller did not switch (KelvinCtrl.CtrlOnOffGet)")
        self._applied = v  # centre and angle go out with the next Scan.FrameSet

    def _index(self, names: list[str], wanted: str, field: str) -> int:
        if wanted not in names:
            raise ValueError(
                f"{self.client.name}: settings.{field}: no signal {wanted!r} (the controller has: {', '.join(names)})"
            )
        return names.index(wanted)

    def close(self) -> None:
        with self._io:
            try:
                if self.client.scan_status_get():
                    self.client.scan_action("stop")
            except (OSError, RuntimeError):
                pass  # closing: the controller may be gone already
            self.client.close()

    # ---- a frame -----------------------------------------------------------------------------
    async def scan(self, scan: SkpmScan, on_line=None) -> SkpmFrame:
        return await asyncio.to_thread(self._scan, scan, on_line)

    def _scan(self, scan: SkpmScan, on_line=None) -> SkpmFrame:
        s, c = self.settings, self.client
        if scan.pixels % 16:
            raise ValueError(
                f"{c.name}: pixels must be a multiple of 16 "
                f"(the scan module sends lines in packets of 16; got {scan.pixels})"
            )
        with self._io:
            topo_ch, cpd_ch = self.channels
            a = self._applied
            c.scan_frame_set(ScanFrame(a["centre_x"], a["centre_y"], scan.width_m, scan.height_m, a["angle"]))
            recorded = [topo_ch, cpd_ch, *self.extra_indexes.values()]
            c.scan_buffer_set(recorded, scan.pixels, scan.lines)
            half = 0.5 / scan.line_rate_hz
            c.scan_speed_set(half, half)
            start = self.clock.time()
            up = a["scan_direction"] == "up"
            c.scan_action("start", up=up)
            lines = _LineReporter(c, (topo_ch, cpd_ch), on_line, up, self._previous)
            try:
                problem = self._wait_for_the_end(scan, lines)
            except (NanonisError, NanonisProtocolError, NanonisTimeout, ConnectionError) as exc:
                # the link broke mid-scan; the controller still holds the lines it scanned: ask
                # again on a fresh connection (the driver reconnects), stop, keep what there is
                problem = str(exc)
                log.error("%s; stopping the scan and keeping its finished lines", exc)
                try:
                    c.scan_action("stop")
                except (NanonisError, NanonisProtocolError, NanonisTimeout, ConnectionError):
                    raise exc from None
            end = self.clock.time()
            topography = c.scan_frame_data_grab(topo_ch, forward=True).data
            cpd = c.scan_frame_data_grab(cpd_ch, forward=True).data
            lines.check_fresh(topography, cpd)
            extra = {}
            if s.backward:
                extra["topography_backward"] = c.scan_frame_data_grab(topo_ch, forward=False).data
                extra["cpd_backward"] = c.scan_frame_data_grab(cpd_ch, forward=False).data
            for key, index in self.extra_indexes.items():
                extra[key] = c.scan_frame_data_grab(index, forward=True).data
        lines.report(topography, cpd)  # the lines not reported while waiting
        self._previous = (topography, cpd)
        done = _finished_lines(topography, cpd, up)
        if not problem and done < scan.lines:
            # the scan ended, yet the data lacks lines: what came is not this scan's whole map
            problem = f"{c.name}: Scan.FrameDataGrab: the scan ended but only {done} of {scan.lines} lines have data"
            log.error("%s", problem)
        if not problem:
            return SkpmFrame(start, end, topography, cpd, extra=extra)
        # the lines the controller finished (from the bottom going up, from the top going down)
        return SkpmFrame(start, end, topography, cpd, lines_done=done, problem=problem, extra=extra)

    def _wait_for_the_end(self, scan: SkpmScan, lines: _LineReporter) -> str:
        """Empty when the scan ended; else it is stopped, and the reason, naming the command.
        Between waits, the lines finished so far are reported."""
        wall = self.clock.wall_seconds(scan.duration_s) + self.settings.timeout_s
        waited = 0.0
        while waited < wall:
            step = min(WAIT_STEP_S, wall - waited)
            timed_out, _path = self.client.scan_wait_end_of_scan(step)
            if not timed_out:
                return ""
            waited += step
            lines.grab_and_report()
        self.client.scan_action("stop")
        return (
            f"{self.client.name}: Scan.WaitEndOfScan: the scan did not end in {wall:.1f} s "
            f"({scan.lines} lines at {scan.line_rate_hz:g} Hz plus {self.settings.timeout_s:g} s); stopped"
        )


SETTABLE = (
    "scan_direction",
    "kelvin_on",
    "centre_x",
    "centre_y",
    "angle",
    "kelvin_setpoint",
    "kelvin_p_gain",
    "kelvin_time_constant",
    "modulation_frequency",
    "modulation_amplitude",
    "bias_limit_low",
    "bias_limit_high",
)


def _units_of(signal_name: str) -> str:
    """ "Kelvin Amplitude (V)" -> "V": Nanonis names carry their units in parentheses."""
    inside = signal_name.rsplit("(", 1)[-1]
    return inside.rstrip(")").strip() if "(" in signal_name else ""


RESERVED_KEYS = {"cpd", "topography", "exposure_start", "exposure_end", "lines_done", "problem", "time"}


def channel_key(signal_name: str) -> str:
    """The map's name for a channel: "Kelvin Amplitude (V)" -> "kelvin_amplitude"."""
    bare = signal_name.split("(", 1)[0].strip().lower()
    return "_".join(part for part in re.split(r"[^a-z0-9]+", bare) if part)


def _finished_lines(topography: np.ndarray, cpd: np.ndarray, up: bool) -> int:
    """How many lines are finished in both channels, counted in the scan's direction."""
    finished = np.isfinite(topography).all(axis=1) & np.isfinite(cpd).all(axis=1)
    ordered = finished if up else finished[::-1]
    return len(ordered) if ordered.all() else int(np.argmin(ordered))


class _LineReporter:
    """Reports each finished line once, in the order scanned (an "up" scan fills the rows from
    row 0, a "down" scan from the top), grabbed while the scan runs."""

    def __init__(self, client: NanonisClient, channels: tuple[int, int], on_line, up: bool = True, previous=None):
        self.client, self.channels, self.on_line, self.up = client, channels, on_line, up
        self.previous = previous  # the last frame's maps: a new scan's data never repeats them
        self.reported = 0

    def grab_and_report(self) -> None:
        if self.on_line is None:
            return
        topo_ch, cpd_ch = self.channels
        topography = self.client.scan_frame_data_grab(topo_ch, forward=True).data
        cpd = self.client.scan_frame_data_grab(cpd_ch, forward=True).data
        self.check_fresh(topography, cpd)
        self.report(topography, cpd)

    def check_fresh(self, topography: np.ndarray, cpd: np.ndarray) -> None:
        """A scan's data equal, value for value, to the last frame's is no measurement (noise
        alone makes two scans differ): the controller repeats an old answer. Never reported."""
        if self.previous is None or not (np.isfinite(topography).any() or np.isfinite(cpd).any()):
            return
        old_topography, old_cpd = self.previous
        same = lambda a, b: np.shape(a) == np.shape(b) and np.array_equal(a, b, equal_nan=True)
        if same(topography, old_topography) and same(cpd, old_cpd):
            raise NanonisError(
                f"{self.client.name}: Scan.FrameDataGrab returned the last frame's maps again, value for "
                "value: its data is stuck (not this scan's)"
            )

    def report(self, topography: np.ndarray, cpd: np.ndarray) -> None:
        if self.on_line is None:
            return
        done = _finished_lines(topography, cpd, self.up)
        last = len(topography) - 1
        for k in range(self.reported, done):
            row = k if self.up else last - k
            self.on_line(row, topography[row], cpd[row])
        self.reported = max(self.reported, done)


def build(ctx: BuildContext) -> NanonisSkpmBackend:
    s: NanonisSettings = ctx.settings
    client = NanonisClient.from_address(ctx.address, s.timeout_s, name=ctx.name)
    backend = NanonisSkpmBackend(client, s, ctx.clock)
    try:
        backend.open()
    except Exception:
        client.close()
        raise
    ctx.on_close(backend.close, first=True)  # the client closes before its simulator stops
    return backend


register(
    BackendSpec(
        kind="skpm",
        name="nanonis",
        settings=NanonisSettings,
        build=build,
        summary="a Nanonis SPM controller in Kelvin probe mode (its TCP programming interface)",
        capabilities=NanonisSkpmBackend.capabilities,
        address="the controller's host:port (e.g. 192.168.1.60:6501)",
    )
)
