"""What a simulated Nanonis SPM controller answers: the Bias, KelvinCtrl, Scan and Signals commands
of its TCP interface, over a heterointerface whose surface potential follows the simulated cell.

``handle(command, body)`` returns the reply body (return arguments, then the error section); the
server (``nanonis_server.py``) frames it. A scan runs in its own thread, line by line on the
lab's clock: each line takes the forward plus backward time per line (``Scan.SpeedSet``), and
its data appear in ``Scan.FrameDataGrab`` when the line is done (NaN before, as the real frame
buffer shows an unfinished scan). Rows are stored bottom (row 0) to top whatever the direction;
an "up" scan fills them from row 0. The Kelvin controller nulls the CPD by the bias: with it on,
the ``Bias (V)`` channel is the measured CPD (``SimSkpmPhysics``) clipped to the bias limits and
the amplitude channel is the residual; with it off, the bias is what ``Bias.Set`` set.

Guessed (not from Nanonis documentation; see docs/skpm.md): the signal names and their order,
the error texts, that an unknown command or a malformed body gets an error reply (status 1)
rather than silence, that pixels are coerced up to a multiple of 16 (documented for the real
scan module) while lines are kept, and the scan rotation used for the surface's roughness (the
interface position is rotated exactly; the roughness uses the line's centre).
"""

from __future__ import annotations

import math
import struct
import threading
from collections.abc import Callable

import numpy as np

from operando.devices.drivers.nanonis_protocol import BodyReader, BodyWriter, NanonisProtocolError, error_section

SIGNALS = [
    "Current (A)",
    "Z (m)",
    "Bias (V)",
    "Kelvin Amplitude (V)",
    "Amplitude (m)",
    "Phase (deg)",
    "Frequency Shift (Hz)",
    "X (m)",
    "Y (m)",
]
Z, BIAS, KELVIN_AMP = 1, 2, 3


class Refused(Exception):
    """An error reply: the controller refuses a command (status 1, this description)."""


class NanonisController:
    def __init__(self, physics, clock, sleep: Callable[[float], bool]):
        self.physics, self.clock, self._sleep = physics, clock, sleep
        self.lock = threading.RLock()
        self.bias_V = 0.0
        self.kelvin_on = False
        self.kelvin_setpoint = 0.0
        self.kelvin_gain = (1.0, 1e-3, 0)
        self.kelvin_modulation = (70e3, 0.5, 0.0)  # Hz, V, deg
        self.kelvin_mod_on = (0, 0)
        self.kelvin_limits = (10.0, -10.0)  # high, low (V)
        self.frame = (0.0, 0.0, 200e-9, 200e-9, 0.0)  # centre x, y, width, height (m), angle (deg)
        self.channels = [Z, BIAS]
        self.pixels, self.lines = 64, 64
        self.line_time_s = (0.5, 0.5)  # forward, backward
        self.data: dict[tuple[int, int], np.ndarray] = {}  # (channel, forward=1/backward=0) -> lines x pixels
        self.scan_up = True
        self.scanning = False
        self._scan_thread: threading.Thread | None = None
        self._stop_scan = threading.Event()
        self._scan_done = threading.Event()
        self._scan_done.set()
        self.commands: list[str] = []  # every command received, in order (tests read it)
        # A fault: the scan stops progressing after this many lines (lost feedback, a crashed
        # tip), until it is stopped; None: scans finish
        self.stall_after_lines: int | None = None
        self._handlers = {
            "Bias.Set": self._bias_set,
            "Bias.Get": lambda r: BodyWriter().f32(self.bias_V),
            "KelvinCtrl.CtrlOnOffSet": self._kelvin_on_off_set,
            "KelvinCtrl.CtrlOnOffGet": lambda r: BodyWriter().u32(int(self.kelvin_on)),
            "KelvinCtrl.SetpntSet": lambda r: self._store("kelvin_setpoint", r.f32("setpoint")),
            "KelvinCtrl.SetpntGet": lambda r: BodyWriter().f32(self.kelvin_setpoint),
            "KelvinCtrl.GainSet": self._kelvin_gain_set,
            "KelvinCtrl.GainGet": lambda r: (
                BodyWriter().f32(self.kelvin_gain[0]).f32(self.kelvin_gain[1]).u16(self.kelvin_gain[2])
            ),
            "KelvinCtrl.ModParamsSet": self._kelvin_mod_set,
            "KelvinCtrl.ModParamsGet": lambda r: _f32s(*self.kelvin_modulation),
            "KelvinCtrl.ModOnOffSet": lambda r: self._store("kelvin_mod_on", (r.u16("AC mode"), r.u16("modulation"))),
            "KelvinCtrl.ModOnOffGet": lambda r: BodyWriter().u16(self.kelvin_mod_on[0]).u16(self.kelvin_mod_on[1]),
            "KelvinCtrl.BiasLimitsSet": self._kelvin_limits_set,
            "KelvinCtrl.BiasLimitsGet": lambda r: _f32s(*self.kelvin_limits),
            "KelvinCtrl.AmpGet": lambda r: BodyWriter().f32(self._kelvin_amplitude(self._cpd_here())),
            "Scan.FrameSet": self._frame_set,
            "Scan.FrameGet": lambda r: _f32s(*self.frame),
            "Scan.BufferSet": self._buffer_set,
            "Scan.BufferGet": lambda r: BodyWriter().i32_array(self.channels).i32(self.pixels).i32(self.lines),
            "Scan.SpeedSet": self._speed_set,
            "Scan.SpeedGet": self._speed_get,
            "Scan.Action": self._action,
            "Scan.StatusGet": lambda r: BodyWriter().u32(int(self.scanning)),
            "Scan.WaitEndOfScan": self._wait_end_of_scan,
            "Scan.FrameDataGrab": self._frame_data_grab,
            "Signals.NamesGet": lambda r: BodyWriter().strings(SIGNALS),
            "Signals.ValsGet": self._signals_vals_get,
        }

    # ---- dispatch ----------------------------------------------------------------------------
    def handle(self, command: str, body: bytes) -> bytes:
        """The reply body: return arguments, then the error section. A refused command still
        returns its arguments (zeros, empty strings and arrays), as clients parse them first."""
        self.commands.append(command)
        handler = self._handlers.get(command)
        if handler is None:
            return error_section(1, f"unknown command {command}")
        reader = BodyReader(command, body)
        try:
            # these two wait (for the scan, or for its thread to stop): not under the lock the
            # scan thread records its lines with
            with _NoLock() if command in ("Scan.WaitEndOfScan", "Scan.Action") else self.lock:
                out = handler(reader)
            if reader.remaining:
                raise Refused(f"{reader.remaining} bytes more than the arguments of {command}")
        except (Refused, NanonisProtocolError, struct.error) as exc:
            return EMPTY_REPLIES.get(command, b"") + error_section(1, str(exc))
        return (out.bytes() if out is not None else b"") + error_section()

    def _store(self, attr: str, value):
        setattr(self, attr, value)

    # ---- Bias and Kelvin controller ----------------------------------------------------------
    def _bias_set(self, r: BodyReader):
        v = r.f32("bias")
        if not -10.0 <= v <= 10.0:
            raise Refused(f"{v:g} V is outside the ±10 V range")
        if self.kelvin_on:
            raise Refused("the Kelvin controller is on and sets the bias")
        self.bias_V = v

    def _kelvin_on_off_set(self, r: BodyReader):
        on = r.u32("on/off")
        if on not in (0, 1):
            raise Refused(f"on/off must be 0 or 1 (got {on})")
        self.kelvin_on = bool(on)
        if self.kelvin_on:
            self.bias_V = float(self._nulled(self._cpd_here()))

    def _kelvin_gain_set(self, r: BodyReader):
        p, tc, slope = r.f32("P gain"), r.f32("time constant"), r.u16("slope")
        if not (p > 0 and tc > 0):
            raise Refused(f"P gain and time constant must be > 0 (got {p:g}, {tc:g})")
        self.kelvin_gain = (p, tc, slope)

    def _kelvin_mod_set(self, r: BodyReader):
        f, a, ph = r.f32("frequency"), r.f32("amplitude"), r.f32("phase")
        if not (f > 0 and a >= 0):
            raise Refused(f"frequency must be > 0 and amplitude >= 0 (got {f:g}, {a:g})")
        self.kelvin_modulation = (f, a, ph)

    def _kelvin_limits_set(self, r: BodyReader):
        high, low = r.f32("high limit"), r.f32("low limit")
        if not low < high:
            raise Refused(f"the low limit ({low:g} V) must be below the high ({high:g} V)")
        self.kelvin_limits = (high, low)

    def _nulled(self, cpd):
        high, low = self.kelvin_limits
        return np.clip(cpd, low, high)

    def _kelvin_amplitude(self, cpd) -> float:
        """Residual electrostatic force (arbitrary V): what the controller could not null."""
        residual = np.asarray(cpd) - (self._nulled(cpd) if self.kelvin_on else self.bias_V)
        return float(np.mean(np.abs(residual)) * self.kelvin_modulation[1])

    def _cpd_here(self) -> float:
        cx = self.frame[0]
        return float(self.physics.true_cpd_V(np.array([cx]))[0])

    # ---- scan configuration ------------------------------------------------------------------
    def _frame_set(self, r: BodyReader):
        x, y, w, h, angle = (r.f32(k) for k in ("centre x", "centre y", "width", "height", "angle"))
        if not (w > 0 and h > 0):
            raise Refused(f"width and height must be > 0 (got {w:g}, {h:g} m)")
        if not -90.0 < angle < 90.0:
            raise Refused(f"angle must be within ±90° (got {angle:g})")
        self._idle("Scan.FrameSet")
        self.frame = (x, y, w, h, angle)

    def _buffer_set(self, r: BodyReader):
        n = r.count("number of channels", len(SIGNALS))
        channels = r.i32_array(n, "channel indexes")
        pixels, lines = r.i32("pixels"), r.i32("lines")
        bad = [c for c in channels if not 0 <= c < len(SIGNALS)]
        if bad or not channels:
            raise Refused(f"channel indexes must be 0..{len(SIGNALS) - 1} (got {channels})")
        if not (1 <= pixels <= 4096 and 1 <= lines <= 4096):
            raise Refused(f"pixels and lines must be 1..4096 (got {pixels}, {lines})")
        self._idle("Scan.BufferSet")
        self.channels, self.pixels, self.lines = channels, 16 * math.ceil(pixels / 16), lines

    def _speed_set(self, r: BodyReader):
        fwd_v, bwd_v, fwd_t, bwd_t = (r.f32(k) for k in ("fwd speed", "bwd speed", "fwd time", "bwd time"))
        keep, ratio = r.u16("keep constant"), r.f32("speed ratio")
        w = self.frame[2]
        if keep == 1:  # linear speed kept: the time per line follows
            if not (fwd_v > 0 and bwd_v > 0):
                raise Refused("linear speeds must be > 0")
            fwd_t, bwd_t = w / fwd_v, w / bwd_v
        elif keep == 2:
            if not (fwd_t > 0 and bwd_t > 0):
                raise Refused("times per line must be > 0")
        else:
            return  # 0: no change
        del ratio  # the backward time is given; the ratio follows from it
        self.line_time_s = (fwd_t, bwd_t)

    def _speed_get(self, r: BodyReader):
        fwd_t, bwd_t = self.line_time_s
        w = self.frame[2]
        return _f32s(w / fwd_t, w / bwd_t, fwd_t, bwd_t).u16(2).f32(bwd_t / fwd_t)

    def _idle(self, command: str) -> None:
        if self.scanning:
            raise Refused(f"not while a scan runs ({command})")

    # ---- scanning ----------------------------------------------------------------------------
    def _action(self, r: BodyReader):
        action, direction = r.u16("action"), r.u32("direction")
        if action == 0:  # start
            self.stop_scan()
            with self.lock:
                self._start_scan(direction == 1)
        elif action == 1:  # stop
            self.stop_scan()
        elif action in (2, 3):  # pause, resume: not simulated
            raise Refused(f"pause and resume are not simulated (got action {action})")
        else:
            raise Refused(f"action must be 0..3 (got {action})")

    def _start_scan(self, up: bool) -> None:
        self.data = {
            (c, d): np.full((self.lines, self.pixels), np.nan, dtype=np.float32) for c in self.channels for d in (0, 1)
        }
        self.scan_up, self.scanning = up, True
        self._stop_scan.clear()
        self._scan_done.clear()
        self._scan_thread = threading.Thread(target=self._scan, name="nanonis-sim-scan", daemon=True)
        self._scan_thread.start()

    def stop_scan(self) -> None:
        self._stop_scan.set()
        thread = self._scan_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self._scan_thread = None

    def _scan(self) -> None:
        try:
            cx, cy, w, h, angle = self.frame
            a = math.radians(angle)
            u = np.linspace(-w / 2, w / 2, self.pixels)
            rows = range(self.lines) if self.scan_up else range(self.lines - 1, -1, -1)
            for k, row in enumerate(rows):
                if self.stall_after_lines is not None and k >= self.stall_after_lines:
                    self._stop_scan.wait()  # stuck until Scan.Action stop (or the server stops)
                    return
                v = -h / 2 + h * (row + 0.5) / self.lines
                for forward, line_s in ((1, self.line_time_s[0]), (0, self.line_time_s[1])):
                    if not self._pause(self.clock.wall_seconds(line_s)):
                        return
                    x = cx + u * math.cos(a) + v * math.sin(a)
                    y = cy + v * math.cos(a)  # the line's centre (the roughness ignores the rotation)
                    height, cpd = self.physics.line(y, x, self.clock.time(), line_s / self.pixels)
                    with self.lock:
                        self._record(row, forward, height, cpd)
        finally:
            with self.lock:
                self.scanning = False
            self._scan_done.set()

    def _pause(self, wall_s: float) -> bool:
        """Wait ``wall_s`` in short steps; False as soon as the scan or the server is stopped."""
        while wall_s > 0:
            step = min(wall_s, 0.05)
            if not self._sleep(step) or self._stop_scan.is_set():
                return False
            wall_s -= step
        return not self._stop_scan.is_set()

    def _record(self, row: int, forward: int, height: np.ndarray, cpd: np.ndarray) -> None:
        bias = self._nulled(cpd) if self.kelvin_on else np.full_like(cpd, self.bias_V)
        values = {
            Z: height,
            BIAS: bias,
            KELVIN_AMP: np.abs(cpd - bias) * self.kelvin_modulation[1],
        }
        for c in self.channels:
            self.data[(c, forward)][row] = values.get(c, np.zeros_like(cpd))

    def _wait_end_of_scan(self, r: BodyReader):
        timeout_ms = r.i32("timeout")
        wall = None if timeout_ms < 0 else timeout_ms / 1000
        done = self._scan_done.wait(wall)
        return BodyWriter().u32(0 if done else 1).u32(0)  # no autosave: an empty file path

    def _frame_data_grab(self, r: BodyReader):
        channel, direction = r.u32("channel index"), r.u32("data direction")
        if channel not in self.channels:
            raise Refused(f"channel {channel} is not acquired (acquired: {self.channels})")
        if direction not in (0, 1):
            raise Refused(f"data direction must be 0 or 1 (got {direction})")
        data = self.data.get((channel, direction))
        if data is None:
            data = np.full((self.lines, self.pixels), np.nan, dtype=np.float32)
        return BodyWriter().string(SIGNALS[channel]).f32_2d(data).u32(int(self.scan_up))

    def _signals_vals_get(self, r: BodyReader):
        indexes = r.i32_array(r.count("number of signals", len(SIGNALS)), "signal indexes")
        r.u32("wait for newest")
        cpd = self._cpd_here()
        now = {Z: 0.0, BIAS: self.bias_V, KELVIN_AMP: self._kelvin_amplitude(cpd), 7: self.frame[0], 8: self.frame[1]}
        bad = [i for i in indexes if not 0 <= i < len(SIGNALS)]
        if bad:
            raise Refused(f"no signal {bad[0]}")
        return BodyWriter().f32_array([now.get(i, 0.0) for i in indexes])


def _zeros(*kinds: str) -> bytes:
    """Return arguments of a refused command: zeros, empty strings (size 0), empty arrays."""
    w = BodyWriter()
    for kind in kinds:
        {"f": w.f32, "u": w.u32, "i": w.i32, "h": w.u16}[kind](0)
    return w.bytes()


EMPTY_REPLIES = {
    "Bias.Get": _zeros("f"),
    "KelvinCtrl.CtrlOnOffGet": _zeros("u"),
    "KelvinCtrl.SetpntGet": _zeros("f"),
    "KelvinCtrl.GainGet": _zeros("f", "f", "h"),
    "KelvinCtrl.ModParamsGet": _zeros("f", "f", "f"),
    "KelvinCtrl.ModOnOffGet": _zeros("h", "h"),
    "KelvinCtrl.BiasLimitsGet": _zeros("f", "f"),
    "KelvinCtrl.AmpGet": _zeros("f"),
    "Scan.FrameGet": _zeros("f", "f", "f", "f", "f"),
    "Scan.BufferGet": _zeros("i", "i", "i"),
    "Scan.SpeedGet": _zeros("f", "f", "f", "f", "h", "f"),
    "Scan.StatusGet": _zeros("u"),
    "Scan.WaitEndOfScan": _zeros("u", "u"),
    "Scan.FrameDataGrab": _zeros("i", "i", "i", "u"),  # no name, 0 x 0 data, direction
    "Signals.NamesGet": _zeros("i", "i"),
    "Signals.ValsGet": _zeros("i"),
}


def _f32s(*values) -> BodyWriter:
    w = BodyWriter()
    for v in values:
        w.f32(v)
    return w


class _NoLock:
    # Scan.WaitEndOfScan blocks: it must not hold the lock the scan thread records under
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
