"""A Nanonis controller (SPM) over its TCP programming interface: the commands an SKPM map needs.

One request, one response, in order, on one socket (``nanonis_protocol.py`` frames them). Every
failure names the instrument and the command: ``NanonisError`` for the controller's own error
(its error section's description), ``NanonisProtocolError`` for a reply that breaks the framing
(a garbled header, a reply to another command, a body of the wrong size), ``NanonisTimeout``
when no reply comes in time (the connection is then closed: a late reply would answer the next
command). ``Scan.WaitEndOfScan`` gets the socket timeout plus its own.

Units are the controller's: V, m, s, Hz, degrees.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass

import numpy as np

from .nanonis_protocol import (
    DEFAULT_PORT,
    HEADER_SIZE,
    BodyReader,
    BodyWriter,
    NanonisProtocolError,
    decode_header,
    encode_message,
)

SCAN_ACTIONS = {"start": 0, "stop": 1, "pause": 2, "resume": 3}
SCAN_UP, SCAN_DOWN = 1, 0  # Scan.Action direction: 1 up, 0 down
FORWARD, BACKWARD = 1, 0  # Scan.FrameDataGrab data direction


class NanonisError(RuntimeError):
    """The controller answered a command with an error."""


class NanonisTimeout(TimeoutError):
    """No reply in time."""


@dataclass(frozen=True)
class ScanFrame:
    centre_x_m: float
    centre_y_m: float
    width_m: float
    height_m: float
    angle_deg: float


@dataclass(frozen=True)
class ScanBuffer:
    channels: list[int]
    pixels: int
    lines: int


@dataclass(frozen=True)
class FrameData:
    channel: str
    data: np.ndarray  # lines x pixels; NaN where the scan has not been yet
    scan_up: bool


class NanonisClient:
    def __init__(self, host: str, port: int = DEFAULT_PORT, timeout_s: float = 5.0, name: str = "nanonis"):
        self.host, self.port, self.timeout_s = host, int(port), float(timeout_s)
        self.name = f"{name} at {host}:{port}"
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()  # one exchange at a time

    @classmethod
    def from_address(cls, address: str, timeout_s: float = 5.0, name: str = "nanonis") -> NanonisClient:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{name}: address must be host:port, e.g. 192.168.1.60:{DEFAULT_PORT} (got {address!r})")
        return cls(host, int(port), timeout_s, name)

    # ---- connection --------------------------------------------------------------------------
    def connect(self) -> None:
        if self._sock is None:
            try:
                self._sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
            except OSError as exc:
                raise ConnectionError(f"{self.name}: cannot connect: {exc}") from exc
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- one exchange ------------------------------------------------------------------------
    def call(self, command: str, body: bytes = b"", extra_timeout_s: float = 0.0) -> BodyReader:
        """Send ``command`` and read its reply; the reader is positioned at its return arguments."""
        with self._lock:
            self.connect()
            sock = self._sock
            try:
                sock.settimeout(self.timeout_s + extra_timeout_s)
                sock.sendall(encode_message(command, body))
                header = decode_header(self._read(sock, HEADER_SIZE, command))
                if header.command != command:
                    raise NanonisProtocolError(f"the reply is for {header.command}")
                reply = self._read(sock, header.body_size, command)
            except TimeoutError:
                self.close()
                raise NanonisTimeout(
                    f"{self.name}: {command}: no reply in {self.timeout_s + extra_timeout_s:g} s"
                ) from None
            except NanonisProtocolError as exc:
                self.close()  # the stream is out of step: nothing after this can be trusted
                raise NanonisProtocolError(f"{self.name}: {command}: {exc}") from None
            except OSError as exc:
                self.close()
                raise ConnectionError(f"{self.name}: {command}: {exc}") from exc
        return BodyReader(command, reply)

    def _read(self, sock: socket.socket, n: int, command: str) -> bytes:
        chunks, got = [], 0
        while got < n:
            chunk = sock.recv(min(n - got, 1 << 20))
            if not chunk:
                raise NanonisProtocolError(f"connection closed after {got} of {n} bytes")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _done(self, reader: BodyReader) -> None:
        """The error section ends every reply: raise the controller's error, naming the command."""
        try:
            status, text = reader.error()
        except NanonisProtocolError as exc:
            self._refused_without_arguments(reader)
            self.close()
            raise NanonisProtocolError(f"{self.name}: {exc}") from None
        if status != 0:
            raise NanonisError(f"{self.name}: {reader.command} failed: {text or f'error status {status}'}")

    def _set(self, command: str, body: BodyWriter | None = None) -> None:
        self._done(self.call(command, body.bytes() if body else b""))

    def _get(self, command: str, read, body: BodyWriter | None = None, extra_timeout_s: float = 0.0):
        reader = self.call(command, body.bytes() if body else b"", extra_timeout_s)
        try:
            value = read(reader)
        except NanonisProtocolError as exc:
            self._refused_without_arguments(reader)
            self.close()
            raise NanonisProtocolError(f"{self.name}: {exc}") from None
        self._done(reader)
        return value

    def _refused_without_arguments(self, reader: BodyReader) -> None:
        """A reply that is only an error section (a controller that sends no return arguments
        with an error): that error, rather than a parse failure."""
        try:
            status, text = BodyReader(reader.command, reader.body).error()
        except NanonisProtocolError:
            return
        if status != 0:
            raise NanonisError(f"{self.name}: {reader.command} failed: {text or f'error status {status}'}")

    # ---- Bias --------------------------------------------------------------------------------
    def bias_set(self, volts: float) -> None:
        self._set("Bias.Set", BodyWriter().f32(volts))

    def bias_get(self) -> float:
        return self._get("Bias.Get", lambda r: r.f32("bias"))

    # ---- KelvinCtrl --------------------------------------------------------------------------
    def kelvin_on_off_set(self, on: bool) -> None:
        self._set("KelvinCtrl.CtrlOnOffSet", BodyWriter().u32(1 if on else 0))

    def kelvin_on_off_get(self) -> bool:
        return self._get("KelvinCtrl.CtrlOnOffGet", lambda r: r.u32("on/off") == 1)

    def kelvin_setpoint_set(self, setpoint: float) -> None:
        self._set("KelvinCtrl.SetpntSet", BodyWriter().f32(setpoint))

    def kelvin_setpoint_get(self) -> float:
        return self._get("KelvinCtrl.SetpntGet", lambda r: r.f32("setpoint"))

    def kelvin_gain_set(self, p_gain: float, time_constant_s: float, slope: int = 0) -> None:
        self._set("KelvinCtrl.GainSet", BodyWriter().f32(p_gain).f32(time_constant_s).u16(slope))

    def kelvin_gain_get(self) -> tuple[float, float, int]:
        return self._get("KelvinCtrl.GainGet", lambda r: (r.f32("P gain"), r.f32("time constant"), r.u16("slope")))

    def kelvin_modulation_set(self, frequency_hz: float, amplitude_V: float, phase_deg: float) -> None:
        self._set("KelvinCtrl.ModParamsSet", BodyWriter().f32(frequency_hz).f32(amplitude_V).f32(phase_deg))

    def kelvin_modulation_get(self) -> tuple[float, float, float]:
        return self._get("KelvinCtrl.ModParamsGet", lambda r: (r.f32("frequency"), r.f32("amplitude"), r.f32("phase")))

    def kelvin_mod_on_off_set(self, ac_mode: bool, modulation: bool) -> None:
        self._set("KelvinCtrl.ModOnOffSet", BodyWriter().u16(int(ac_mode)).u16(int(modulation)))

    def kelvin_bias_limits_set(self, high_V: float, low_V: float) -> None:
        self._set("KelvinCtrl.BiasLimitsSet", BodyWriter().f32(high_V).f32(low_V))

    def kelvin_bias_limits_get(self) -> tuple[float, float]:
        return self._get("KelvinCtrl.BiasLimitsGet", lambda r: (r.f32("high limit"), r.f32("low limit")))

    def kelvin_amplitude_get(self) -> float:
        return self._get("KelvinCtrl.AmpGet", lambda r: r.f32("amplitude"))

    # ---- Scan --------------------------------------------------------------------------------
    def scan_frame_set(self, frame: ScanFrame) -> None:
        w = BodyWriter().f32(frame.centre_x_m).f32(frame.centre_y_m).f32(frame.width_m).f32(frame.height_m)
        self._set("Scan.FrameSet", w.f32(frame.angle_deg))

    def scan_frame_get(self) -> ScanFrame:
        return self._get(
            "Scan.FrameGet", lambda r: ScanFrame(*(r.f32(k) for k in ("x", "y", "width", "height", "angle")))
        )

    def scan_buffer_set(self, channels: list[int], pixels: int, lines: int) -> None:
        self._set("Scan.BufferSet", BodyWriter().i32_array(list(channels)).i32(pixels).i32(lines))

    def scan_buffer_get(self) -> ScanBuffer:
        def read(r: BodyReader) -> ScanBuffer:
            channels = r.i32_array(r.count("number of channels", 128), "channel indexes")
            return ScanBuffer(channels, r.i32("pixels"), r.i32("lines"))

        return self._get("Scan.BufferGet", read)

    def scan_speed_set(self, forward_line_s: float, backward_line_s: float) -> None:
        """Time per line, forward and backward (the linear speed follows; keeps time constant)."""
        w = BodyWriter().f32(0.0).f32(0.0).f32(forward_line_s).f32(backward_line_s).u16(2)
        self._set("Scan.SpeedSet", w.f32(backward_line_s / forward_line_s))

    def scan_speed_get(self) -> tuple[float, float, float, float, int, float]:
        """(forward m/s, backward m/s, forward s/line, backward s/line, kept constant, ratio)."""
        return self._get("Scan.SpeedGet", lambda r: (r.f32(), r.f32(), r.f32(), r.f32(), r.u16(), r.f32()))

    def scan_action(self, action: str, up: bool = True) -> None:
        if action not in SCAN_ACTIONS:
            raise ValueError(f"{self.name}: scan action must be one of {', '.join(SCAN_ACTIONS)} (got {action!r})")
        self._set("Scan.Action", BodyWriter().u16(SCAN_ACTIONS[action]).u32(SCAN_UP if up else SCAN_DOWN))

    def scan_status_get(self) -> bool:
        """True while a scan runs."""
        return self._get("Scan.StatusGet", lambda r: r.u32("status") == 1)

    def scan_wait_end_of_scan(self, timeout_s: float) -> tuple[bool, str]:
        """(timed out, file path) after the end of the scan or ``timeout_s``, whichever is first."""
        body = BodyWriter().i32(int(timeout_s * 1000))

        def read(r: BodyReader):
            timed_out = r.u32("timeout status") == 1
            return timed_out, r.text(r.u32("file path size"), "file path")

        return self._get("Scan.WaitEndOfScan", read, body, extra_timeout_s=timeout_s)

    def scan_frame_data_grab(self, channel: int, forward: bool = True) -> FrameData:
        body = BodyWriter().u32(channel).u32(FORWARD if forward else BACKWARD)

        def read(r: BodyReader) -> FrameData:
            name = r.string("channel name")
            return FrameData(name, r.f32_2d("scan data"), r.u32("scan direction") == SCAN_UP)

        return self._get("Scan.FrameDataGrab", read, body)

    # ---- Signals -----------------------------------------------------------------------------
    def signals_names_get(self) -> list[str]:
        return self._get("Signals.NamesGet", lambda r: r.strings("signal names"))

    def signals_vals_get(self, indexes: list[int], wait_newest: bool = True) -> list[float]:
        body = BodyWriter().i32_array(list(indexes)).u32(int(wait_newest))
        return self._get("Signals.ValsGet", lambda r: list(r.f32_array(r.count("values", 128), "values")), body)
