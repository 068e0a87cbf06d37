"""Fuzzing every parser of the project with hypothesis: only its typed errors may come out.

    python -m operando.benchmarks.fuzz [--examples 100000] [--jobs 2] [--only NAME ...] [--markdown FILE]

Each target feeds one parser, in the direction(s) the project parses, with arbitrary input
(bytes or text) and with structured mutations of valid messages (made by the project's own
encoders and simulators: a byte flipped or replaced, the message truncated, bytes inserted,
deleted or repeated, two messages spliced). The property: the parser returns, or raises one of
the errors the module documents (``allowed``); anything else (a bare KeyError, IndexError,
struct.error, UnicodeDecodeError, ZeroDivisionError, RecursionError, ...) is a bug. Simulators
that answer a client must never raise at all: they answer an error instead.

tests/test_fuzz.py runs every target with a bounded number of examples (CI, 200 each, the same
ones every run); ``make fuzz`` runs this module with 100,000 examples per target (new ones every
run) and prints a table (target, examples, failures, seconds), written as docs/fuzz.md with
``--markdown``. The inputs that found the bugs fixed so far are always run first (``regressions``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import math
import os
import struct
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

DEFAULT_EXAMPLES = 100_000
CI_EXAMPLES = 200
EXAMPLES_ENV = "OPERANDO_FUZZ_EXAMPLES"

# ---- inputs ----------------------------------------------------------------------------------------
# Bytes that mean something to one grammar or another: separators, quotes, line ends, signs,
# the first bytes of the binary headers, numbers at the edges.
_TOKENS = [
    b"\x00", b"\xff", b"\x7f", b"\x80", b"\n", b"\r", b"\r\n", b" ", b",", b";", b":", b"#", b'"', b"'",
    b"?", b"*", b"!", b"[", b"]", b"(", b")", b"{", b"}", b"-", b"+", b".", b"e", b"i", b"nan", b"inf",
    b"-inf", b"1e999", b"0x", b"\xc0\xc1", b"\xc2\xc3\xc4\xc5", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00",
    b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00", b"9" * 12, "é".encode(), b"\xe9", b"\t", b"!!python/name:x",
]  # fmt: skip


@st.composite
def mutated(draw, seeds: list[bytes]) -> bytes:
    """A valid message, then 0 to 6 edits: flip or replace a byte, truncate, insert (random bytes,
    a token, or a token repeated up to 3000 times: deep nesting, long runs), delete or repeat a
    slice (up to 2000 times), splice in another message."""
    data = bytearray(draw(st.sampled_from(seeds)))
    ops = ["flip", "set", "truncate", "insert", "token", "run", "delete", "repeat", "splice"]
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(ops))
        at = draw(st.integers(0, len(data)))
        if op in ("flip", "set") and data:
            at = min(at, len(data) - 1)
            data[at] = data[at] ^ (1 << draw(st.integers(0, 7))) if op == "flip" else draw(st.integers(0, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "token":
            data[at:at] = draw(st.sampled_from(_TOKENS))
        elif op == "run":
            data[at:at] = draw(st.sampled_from(_TOKENS)) * draw(st.integers(100, 3000))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif op == "repeat":
            piece = bytes(data[at : at + draw(st.integers(1, 8))])
            data[at:at] = piece * draw(st.one_of(st.integers(1, 8), st.integers(100, 2000)))
        elif op == "splice":
            other = draw(st.sampled_from(seeds))
            cut = draw(st.integers(0, len(other)))
            data[at:] = other[cut:]
    return bytes(data)


def byte_inputs(seeds: list[bytes], max_size: int = 512) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=max_size), mutated(seeds), mutated(seeds))


def text_inputs(seeds: list[str], max_size: int = 256) -> st.SearchStrategy[str]:
    """Arbitrary text, and mutations of the seeds read back as Latin-1 (every byte a character)
    or UTF-8 (invalid sequences replaced)."""
    encoded = [s.encode("utf-8") for s in seeds]
    as_text = st.one_of(
        mutated(encoded).map(lambda b: b.decode("latin-1")),
        mutated(encoded).map(lambda b: b.decode("utf-8", "replace")),
    )
    return st.one_of(st.text(max_size=max_size), as_text, as_text)


# ---- targets --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """``setup()`` -> (strategy, check); ``check(input)`` runs the parser. Raising one of
    ``allowed`` is the parser refusing the input; anything else is a failure."""

    name: str
    what: str
    allowed: Callable[[], tuple[type[BaseException], ...]]
    setup: Callable[[Path], tuple[st.SearchStrategy, Callable[[object], None]]]
    regressions: Callable[[], list] = list  # -> the inputs that found bugs (fixed), run first


class _Replay:
    """A connected socket whose peer answers anything with ``data`` (then closes); what is sent
    is kept in ``sent``."""

    def __init__(self, data: bytes = b""):
        self.data, self.sent = bytes(data), []

    def settimeout(self, _s) -> None:
        pass

    def setsockopt(self, *_a) -> None:
        pass

    def sendall(self, message: bytes) -> None:
        self.sent.append(bytes(message))

    def recv(self, n: int) -> bytes:
        out, self.data = self.data[:n], self.data[n:]
        return out

    def shutdown(self, _how) -> None:
        pass

    def close(self) -> None:
        pass


class _Loopback(_Replay):
    """A socket whose peer is ``answer(message) -> bytes`` (an in-process simulator); ``stream``
    is everything the peer sent."""

    def __init__(self, answer: Callable[[bytes], bytes], greeting: bytes = b""):
        super().__init__(greeting)
        self._answer = answer
        self.stream = bytes(greeting)

    def sendall(self, message: bytes) -> None:
        super().sendall(message)
        reply = self._answer(bytes(message))
        self.data += reply
        self.stream += reply


_LAB = {}


def _sim_lab():
    """One simulated lab (cell, Raman and SKPM physics) shared by the simulator targets."""
    if "lab" not in _LAB:
        from operando.sim_devices.lab import build_sim_lab

        _LAB["lab"] = build_sim_lab(speed=1000.0, soc=0.5)
    return _LAB["lab"]


# -- MethodSCRIPT --------------------------------------------------------------------------------------
def _methodscript_reply_seeds() -> list[str]:
    from operando.devices.drivers.methodscript_values import PackageVariable, format_variable

    package = ";".join(
        format_variable(v)
        for v in (
            PackageVariable("eb", 12.5),
            PackageVariable("da", -0.25, status=0, range_code=11),
            PackageVariable("ba", 1.234e-6, status=2, range_code=0x2B),
            PackageVariable("ee", 7.0, is_integer=True),
        )
    )
    return [
        "e", "M000B", "M0005", "P" + package, "Pda80001F4m;ba80004D2n,10,20B", "Pba     nan", "*", "L", "+",
        "C0001", "-", "Z", "Z!0006", "e!4001: Line 3, Col 1", "Thello", "eM0000", "", "t1.3.0#2023", "i12345",
    ]  # fmt: skip


def _methodscript_replies(_tmp: Path):
    from operando.devices.drivers.methodscript_replies import parse_reply_line

    def check(text: str) -> None:
        for line in text.split("\n"):
            parse_reply_line(line)

    return text_inputs(_methodscript_reply_seeds()), check


def _methodscript_script_seeds() -> list[str]:
    from operando.devices.drivers import methodscript_scripts as ms

    body = [
        *ms.pgstat_mode(ms.PGSTAT_MODE_GALVANOSTAT, 5.85),
        "cell_on",
        *ms.cp_loop(-1e-4, 1.0, 3600.0, ms.if_break("ewe <= 10m")),
        *ms.ocp_loop(1.0, 60.0),
        *ms.ca_loop("ewe", 0.5, 600.0, ms.if_break(*ms.current_cutoff(1e-6))),
        *ms.lsv_loop(0.1, 1.0, 1e-3, 1e-3),
        *ms.cv_loop(0.5, 1.0, 0.1, 1e-3, 1e-3, 2),
        *ms.eis_loop(0.01, 1e5, 0.1, 20),
        *ms.geis_loop(1e-5, 1e4, 1.0, 10, 0.0),
        "store_var n 0i ja",
        "loop n < 3i",
        "add_var n 1i",
        "if n == 2i",
        "breakloop",
        "elseif n > 5i",
        "set_e 0x1F",
        "else",
        "set_i 100u",
        "endif",
        "endloop",
    ]
    script = ms.upload_bytes(ms.wrap_script(body)).decode("ascii")
    short = ms.upload_bytes(ms.wrap_script(ms.ocp_loop(1.0, 10.0))).decode("ascii")
    return [script, short]


def _methodscript_script(_tmp: Path):
    from operando.sim_devices.wire.methodscript_language import parse_script

    def check(text: str) -> None:
        lines = text.split("\n")
        parse_script(lines[1:] if lines[:1] == ["e"] else lines)  # the simulator gets the lines after "e"

    return text_inputs(_methodscript_script_seeds(), max_size=2048), check


# -- Keithley 2450 -----------------------------------------------------------------------------------
_SCPI_SEEDS = [
    "*IDN?", "*RST", "*CLS", "*OPC?", ":SYST:ERR?", ":SYSTem:ERRor:NEXT?", ":OUTP:CURR:SMOD HIMP",
    ":OUTP:VOLT:SMOD HIMP", ":SOUR:CURR:READ:BACK ON", ":SOUR:VOLT:READ:BACK ON", ":SENS:VOLT:NPLC 1",
    ':SENS:FUNC "VOLT"', ':SENS:FUNC "CURR"', ":SOUR:FUNC CURR", ":SOUR:FUNC VOLT", ":SOUR:CURR 0.001",
    ":SOUR:CURR:VLIM 4.2", ":SOUR:VOLT:ILIM 0.01", ":SOUR:VOLT 2.5", ":OUTP ON", ":OUTP OFF", ":OUTP?",
    ':READ? "defbuffer1", READ, SOUR', ':READ? "defbuffer1", READ, SOUR, REL, SEC', ":MEAS:VOLT?",
    ":MEAS:CURR?", ":TRAC:STAT:AVER?", ":TRAC:CLE", ":SOUR:CURR:RANG:AUTO ON", "SOUR:CURR:LEV 1e-3;:OUTP ON",
    ":SOUR:CURR MIN", ":SOUR:VOLT:ILIM DEF", "OUTP ON;OUTP?;:SOUR:FUNC?",
]  # fmt: skip


def _keithley_scpi(_tmp: Path):
    from operando.sim_devices.cell import SimCell, preset
    from operando.sim_devices.clock import SimClock
    from operando.sim_devices.wire.keithley2450_protocol import Keithley2450Simulator

    def check(lines: list[str]) -> None:
        sim = Keithley2450Simulator(SimCell(preset("fe_li2o"), soc=0.5), SimClock(speed=1000.0))
        for line in lines:  # as the server hands them over: one line each, CR dropped
            reply = sim.handle(line.rstrip("\r"))
            if reply is not None and not isinstance(reply, str):
                raise TypeError(f"a reply that is no text: {reply!r}")

    lines = text_inputs(_SCPI_SEEDS, max_size=128).map(lambda t: t.replace("\n", " "))
    return st.lists(lines, min_size=1, max_size=6), check


def _keithley_replies(_tmp: Path):
    from pymeasure.instruments.common_base import CommonBase

    from operando.devices.drivers.keithley2450_smu import Keithley2450Smu

    class Replying:  # what pymeasure's Keithley2450 does with a reply: CommonBase.values
        values = CommonBase.values

        def __init__(self, reply: str):
            self.reply = reply

        def ask(self, command: str, **_kwargs) -> str:
            return self.reply

    def check(case: tuple[str, str]) -> None:
        function, reply = case
        smu = Keithley2450Smu(Replying(reply))
        smu.function = function
        ewe, current = smu.measure()
        if not all(isinstance(x, float) and math.isfinite(x) for x in (ewe, current)):
            raise TypeError(f"measure() gave {ewe!r}, {current!r} for the reply {reply!r}")

    seeds = ["2.903000E+00,-1.000000E-04", "-1.000000E-03,3.100000E+00", "0.000000E+00,0.000000E+00"]
    return st.tuples(st.sampled_from(["CURR", "VOLT"]), text_inputs(seeds, max_size=64)), check


# -- Nanonis -------------------------------------------------------------------------------------------
def _nanonis_request_seeds() -> list[tuple[str, bytes]]:
    from operando.devices.drivers.nanonis_protocol import BodyWriter as W

    return [
        ("Bias.Set", W().f32(0.5).bytes()),
        ("Bias.Get", b""),
        ("KelvinCtrl.CtrlOnOffSet", W().u32(1).bytes()),
        ("KelvinCtrl.CtrlOnOffGet", b""),
        ("KelvinCtrl.SetpntSet", W().f32(0.0).bytes()),
        ("KelvinCtrl.SetpntGet", b""),
        ("KelvinCtrl.GainSet", W().f32(1.0).f32(1e-3).u16(0).bytes()),
        ("KelvinCtrl.GainGet", b""),
        ("KelvinCtrl.ModParamsSet", W().f32(7e4).f32(0.5).f32(0.0).bytes()),
        ("KelvinCtrl.ModParamsGet", b""),
        ("KelvinCtrl.ModOnOffSet", W().u16(1).u16(1).bytes()),
        ("KelvinCtrl.ModOnOffGet", b""),
        ("KelvinCtrl.BiasLimitsSet", W().f32(5.0).f32(-5.0).bytes()),
        ("KelvinCtrl.BiasLimitsGet", b""),
        ("KelvinCtrl.AmpGet", b""),
        ("Scan.FrameSet", W().f32(0).f32(0).f32(2e-7).f32(2e-7).f32(0).bytes()),
        ("Scan.FrameGet", b""),
        ("Scan.BufferSet", W().i32_array([1, 2]).i32(32).i32(4).bytes()),
        ("Scan.BufferGet", b""),
        ("Scan.SpeedSet", W().f32(0).f32(0).f32(0.1).f32(0.1).u16(2).f32(1.0).bytes()),
        ("Scan.SpeedSet", W().f32(1e-6).f32(2e-6).f32(0).f32(0).u16(1).f32(1.0).bytes()),
        ("Scan.SpeedGet", b""),
        ("Scan.Action", W().u16(0).u32(1).bytes()),
        ("Scan.StatusGet", b""),
        ("Scan.WaitEndOfScan", W().i32(0).bytes()),
        ("Scan.FrameDataGrab", W().u32(2).u32(1).bytes()),
        ("Signals.NamesGet", b""),
        ("Signals.ValsGet", W().i32_array([1, 2, 3]).u32(1).bytes()),
    ]


def _nanonis_controller(sleep=lambda _s: False):
    from operando.sim_devices.wire.nanonis_firmware import NanonisController

    lab = _sim_lab()
    controller = NanonisController(lab.skpm, lab.clock, sleep=sleep)
    # A started scan runs in a thread of its own: not here (its request is parsed all the same).
    controller._start_scan = lambda up: None
    return controller


def _nanonis_simulator(_tmp: Path):
    from operando.devices.drivers.nanonis_protocol import encode_message
    from operando.sim_devices.wire.nanonis_server import NanonisServer

    lab = _sim_lab()
    seeds = [encode_message(command, body) for command, body in _nanonis_request_seeds()]

    def check(stream: bytes) -> None:
        # The server's own loop over one connection: a header, a body, the controller's answer.
        server = NanonisServer(lab.skpm, lab.clock)
        server.controller._start_scan = lambda up: None
        server._talk(_Replay(stream))

    streams = st.lists(byte_inputs(seeds, max_size=128), min_size=1, max_size=5).map(b"".join)
    return streams, check


_NANONIS_GETTERS = {
    "Bias.Get": lambda c: c.bias_get(),
    "KelvinCtrl.CtrlOnOffGet": lambda c: c.kelvin_on_off_get(),
    "KelvinCtrl.SetpntGet": lambda c: c.kelvin_setpoint_get(),
    "KelvinCtrl.GainGet": lambda c: c.kelvin_gain_get(),
    "KelvinCtrl.ModParamsGet": lambda c: c.kelvin_modulation_get(),
    "KelvinCtrl.BiasLimitsGet": lambda c: c.kelvin_bias_limits_get(),
    "KelvinCtrl.AmpGet": lambda c: c.kelvin_amplitude_get(),
    "Scan.FrameGet": lambda c: c.scan_frame_get(),
    "Scan.BufferGet": lambda c: c.scan_buffer_get(),
    "Scan.SpeedGet": lambda c: c.scan_speed_get(),
    "Scan.StatusGet": lambda c: c.scan_status_get(),
    "Scan.WaitEndOfScan": lambda c: c.scan_wait_end_of_scan(0.0),
    "Scan.FrameDataGrab": lambda c: c.scan_frame_data_grab(2, True),
    "Signals.NamesGet": lambda c: c.signals_names_get(),
    "Signals.ValsGet": lambda c: c.signals_vals_get([1, 2, 3]),
    "Bias.Set": lambda c: c.bias_set(0.5),
    "Scan.Action": lambda c: c.scan_action("start"),
}


def _nanonis_replies(_tmp: Path):
    from operando.devices.drivers.nanonis import NanonisClient
    from operando.devices.drivers.nanonis_protocol import BodyWriter, encode_message

    controller = _nanonis_controller()
    bodies = dict(_nanonis_request_seeds())
    bodies["Scan.FrameDataGrab"] = BodyWriter().u32(2).u32(1).bytes()
    seeds = {}
    for command in _NANONIS_GETTERS:
        controller.handle("Scan.BufferSet", BodyWriter().i32_array([1, 2]).i32(16).i32(2).bytes())
        seeds[command] = encode_message(command, controller.handle(command, bodies[command]), send_response=False)

    def check(case: tuple[str, bytes]) -> None:
        command, stream = case
        client = NanonisClient("127.0.0.1", 6501, timeout_s=1.0, name="fuzz")
        client._sock = _Replay(stream)
        _NANONIS_GETTERS[command](client)

    cases = st.sampled_from(sorted(seeds)).flatmap(
        lambda command: st.tuples(st.just(command), byte_inputs([seeds[command]], max_size=256))
    )
    return cases, check


# -- LabSpec 6 -----------------------------------------------------------------------------------------
_LABSPEC_CALLS = {
    "open": lambda c: None,
    "wavelengths": lambda c: c.wavelengths_nm(),
    "parameter": lambda c: c.parameter("LaserWavelength"),
    "lasers": lambda c: c.lasers(),
    "acquire": lambda c: c.acquire(),
    "close": lambda c: c.close(),
}


def _labspec_instrument():
    from operando.sim_devices.wire.labspec_protocol_sim import LabSpecInstrument

    lab = _sim_lab()
    return LabSpecInstrument(lab.raman, lab.clock, sleep=lambda _s: True)


def _labspec_transcripts() -> dict[str, tuple[bytes, list[bytes]]]:
    """For each driver call (after ``open()``): (what the simulator sent, what the driver sent)."""
    from operando.devices.drivers import labspec

    out = {}
    for name, call in _LABSPEC_CALLS.items():
        session = _labspec_instrument().session()
        peer = _Loopback(lambda m, s=session: b"".join(s.handle(m)[0]), session.greeting())
        with mock.patch.object(labspec.socket, "create_connection", lambda *a, p=peer, **k: p):
            call(labspec.LabSpecClient("127.0.0.1:1234", name="fuzz", exposure_s=0.01).open())
        out[name] = (peer.stream, peer.sent)
    return out


def _labspec_replies(_tmp: Path):
    from operando.devices.drivers import labspec

    transcripts = _labspec_transcripts()

    def check(case: tuple[str, bytes]) -> None:
        name, stream = case
        peer = _Replay(stream)
        with mock.patch.object(labspec.socket, "create_connection", lambda *a, **k: peer):
            client = labspec.LabSpecClient("127.0.0.1:1234", name="fuzz", exposure_s=0.01).open()
            _LABSPEC_CALLS[name](client)

    cases = st.sampled_from(sorted(transcripts)).flatmap(
        lambda name: st.tuples(st.just(name), byte_inputs([transcripts[name][0]], max_size=256))
    )
    return cases, check


def _labspec_simulator(_tmp: Path):
    transcripts = _labspec_transcripts()
    seeds = [b"\n".join(sent) + b"\n" for _, sent in transcripts.values()]

    def check(stream: bytes) -> None:
        session = _labspec_instrument().session()
        for message in stream.split(b"\n"):  # the server's framing: a line, CR dropped
            message = message.rstrip(b"\r")
            if message.strip():
                replies, close = session.handle(message)
                if close:
                    return

    return byte_inputs(seeds, max_size=256), check


# -- Ocean Insight HDX (OBP) ---------------------------------------------------------------------------
def _obp_requests() -> list[bytes]:
    from operando.devices.drivers import obp

    data = {obp.GET_MC_ENABLED: b"\x00", obp.SET_ITIME_USEC: struct.pack("<L", 10_000)}
    data.update({obp.SET_TRIG_MODE: b"\x00", obp.GET_WL_COEFF: b"\x01", obp.GET_NL_COEFF: b"\x02"})
    out = []
    for message_type in obp.REQUEST_FORMATS:
        ack = message_type in (obp.SET_ITIME_USEC, obp.SET_TRIG_MODE)
        out.append(obp.encode_request(message_type, data.get(message_type, b""), request_ack=ack))
    out.append(obp.encode_request(obp.GET_SERIAL, md5=True))
    return out


def _hdx_server():
    from operando.sim_devices.cell import SimCell, preset
    from operando.sim_devices.clock import SimClock
    from operando.sim_devices.wire.ocean_hdx_server import OceanHdxServer

    server = OceanHdxServer(SimCell(preset("fe_li2o"), soc=0.5), SimClock(speed=1000.0))
    server.firmware._sleep = lambda _s: True  # exposures take no wall time here
    return server


def _obp_simulator(_tmp: Path):
    from operando.devices.drivers import obp

    server = _hdx_server()

    def check(stream: bytes) -> None:
        frames = obp.FrameBuffer()
        frames.feed(stream)
        for reply in server._replies(frames):  # the server's loop over what arrived
            obp.decode_reply(reply)  # every answer is a well-formed reply

    streams = st.lists(byte_inputs(_obp_requests(), max_size=128), min_size=1, max_size=4).map(b"".join)
    return streams, check


def _obp_replies(_tmp: Path):
    from operando.devices.drivers import obp

    server = _hdx_server()
    seeds = []
    for request in _obp_requests():
        if obp.decode(request).message_type != obp.GET_RAW_SPECTRUM_NOW_HDX:
            seeds.extend(server._replies(_fed(obp.FrameBuffer(), request)))
    seeds.append(obp.encode_reply(obp.Message(obp.GET_SERIAL), error=obp.ERR_UNKNOWN_MESSAGE_TYPE))

    def check(stream: bytes) -> None:
        frames = _fed(obp.FrameBuffer(), stream)
        for frame in frames.frames():
            message = obp.decode_reply(frame)
            if message.message_type in obp.REQUEST_FORMATS:
                message.error_name, message.nack, message.name  # noqa: B018 - properties must not fail
        obp.decode_reply(stream)

    return byte_inputs(seeds, max_size=256), check


def _fed(frames, data: bytes):
    frames.feed(data)
    return frames


class _ObpPeer:
    """The socket python-seabreeze reads the HDX through (``send``, ``recv_into``): answered by the
    simulated HDX (``server``) or, replaying, with ``stream`` then a closed connection."""

    def __init__(self, server=None, stream: bytes = b""):
        from operando.devices.drivers import obp

        self.server, self.frames = server, obp.FrameBuffer()
        self.pending, self.stream = bytearray(stream), bytearray()
        self.timeout = 1.0

    def settimeout(self, t) -> None:
        self.timeout = t

    def gettimeout(self):
        return self.timeout

    def setsockopt(self, *_a) -> None:
        pass

    def send(self, data: bytes) -> int:
        if self.server is not None:
            self.frames.feed(bytes(data))
            for reply in self.server._replies(self.frames):
                self.pending += reply
                self.stream += reply
        return len(data)

    def recv_into(self, view, nbytes: int = 0) -> int:
        n = min(nbytes or len(view), len(self.pending))
        if n == 0:  # as the driver's own socket: a closed connection is an error
            raise ConnectionResetError("the instrument closed the connection")
        view[:n] = self.pending[:n]
        del self.pending[:n]
        return n

    def close(self) -> None:
        pass


_HDX_CALLS = {
    "open": lambda c: None,
    "serial": lambda c: c.serial_number,
    "wavelengths": lambda c: c.wavelengths_nm(),
    "spectrum": lambda c: c.intensities(),
    "integration": lambda c: c.set_integration_time_us(20_000),
}


@contextlib.contextmanager
def _hdx_on(peer: _ObpPeer):
    """The HDX driver's connection, on ``peer`` instead of a TCP socket. python-seabreeze
    allocates whatever a reply header's "bytes remaining" announces (up to 4 GiB) before it
    reads: here a read announced beyond ``obp.MAX_MESSAGE_SIZE`` is a lost link instead, so that
    fuzzing does not exhaust the machine's memory (the driver itself does not cap it)."""
    from seabreeze.pyseabreeze.transport import IPv4Transport

    from operando.devices.drivers import obp, ocean_hdx

    def open_(handle) -> None:
        handle.socket = peer

    read = IPv4Transport.read

    def capped_read(transport, size=None, *args, **kwargs):
        if size is not None and size > obp.MAX_MESSAGE_SIZE:
            raise ConnectionResetError(f"a reply of {size} bytes announced")
        return read(transport, size, *args, **kwargs)

    with mock.patch.object(ocean_hdx._Handle, "open", open_), mock.patch.object(IPv4Transport, "read", capped_read):
        client = ocean_hdx.OceanHdxClient("127.0.0.1:57357", name="fuzz", timeout_s=1.0)
        try:
            yield client
        finally:
            client.close()


def _hdx_replies(_tmp: Path):
    server = _hdx_server()
    transcripts = {}
    for name, call in _HDX_CALLS.items():
        peer = _ObpPeer(server)
        with _hdx_on(peer) as client:
            call(client.open())
        transcripts[name] = bytes(peer.stream)

    def check(case: tuple[str, bytes]) -> None:
        name, stream = case
        with _hdx_on(_ObpPeer(stream=stream)) as client:
            _HDX_CALLS[name](client.open())

    cases = st.sampled_from(sorted(transcripts)).flatmap(
        lambda name: st.tuples(st.just(name), byte_inputs([transcripts[name]], max_size=256))
    )
    return cases, check


# -- MultiVu .dat ----------------------------------------------------------------------------------------
def _dat_seed(tmp: Path) -> bytes:
    from zoneinfo import ZoneInfo

    from operando.sim_devices.wire.mpms3_datafile import SimMultiVuDataFile

    path = tmp / "seed.dat"
    zone = ZoneInfo("Europe/Berlin")
    opened = dt.datetime(2026, 10, 25, 2, 30, tzinfo=dt.UTC).timestamp()  # a DST change
    f = SimMultiVuDataFile(path, opened, zone)
    for k in range(4):
        f.append(opened + 600 * k, 0.5, (300.0, 299.9, 300.1), (1e4, 9999.0, 10001.0), 1.2e-4 * k, 1e-8, 4, 1)
    text = path.read_bytes()
    path.unlink()
    return text


_DAT_DOC = (
    b"[Header]\r\n; MPMS3 Data File (default extension .dat)\r\nTITLE,\r\n"
    b"FILEOPENTIME,3874585280.96031,10/10/2022,5:41 pm\r\nINFO,1.38,SAMPLE_MASS\r\n[Data]\r\n"
    b"Comment,Time Stamp (sec),Temperature (K),Magnetic Field (Oe),Moment (emu),M. Std. Err. (emu)\r\n"
    b'"FC, 100",3874585281.0761\r\n,3874585365.15242,309.991149902344,99.8893203735352,0.000194550475802654,'
    b"2.21782626314636E-8\r\n"
)


def _multivu_tail(tmp: Path):
    from zoneinfo import ZoneInfo

    from operando.devices.drivers.multivu_tail import DatTail

    path = tmp / "followed.dat"
    zone = ZoneInfo("Europe/Berlin")

    def check(case: tuple[bytes, int]) -> None:
        content, cut = case
        cut = min(cut, len(content))
        path.write_bytes(content[:cut])  # MultiVu has written this much so far
        tail = DatTail(path, zone=zone)
        rows = tail.poll()
        with open(path, "ab") as f:
            f.write(content[cut:])
        rows += tail.poll()
        for row in rows:
            tail.run_time(row)

    seeds = [_dat_seed(tmp), _DAT_DOC]
    return st.tuples(byte_inputs(seeds, max_size=2048), st.integers(0, 4096)), check


# -- importers ------------------------------------------------------------------------------------------
def _mpt_seed(rows: int = 6, charge: bool = True) -> bytes:
    """An EC-Lab text export as galvani's ``MPTfile`` reads one (decimal commas); without the
    (Q-Qo) column the importer integrates the current itself."""
    columns = ["mode", "ox/red", "time/s", "Ewe/V", "I/mA", "(Q-Qo)/mA.h", "cycle number", "Ns"]
    comments = ["Galvanostatic Cycling with Potential Limitation", "", "Acquisition started on : 11/20/2026 09:30:00"]
    table = [columns]
    for k in range(rows):
        table.append([1, k % 2, f"{10.0 * k:.6f}", f"{3.0 - 0.1 * k:.6f}", f"{1.0:.6f}", f"{k / 360:.6f}", 0, k % 2])
    if not charge:
        table = [row[:5] + row[6:] for row in table]
    lines = ["EC-Lab ASCII FILE", f"Nb header lines : {len(comments) + 3}", *comments, "\t".join(table[0])]
    lines += ["\t".join(str(v).replace(".", ",") for v in row) for row in table[1:]]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def _mpr_seed(rows: int = 5) -> bytes:
    """A minimal EC-Lab binary file, laid out as galvani's ``MPRfile`` reads one: the magic, a
    settings module, a data module (version 2: point count, column count, column ids, 405 bytes
    of header, then the records) and a log module carrying the start time."""
    import numpy as np
    from galvani import BioLogic

    def module(short: bytes, data: bytes, version: int, date: bytes = b"11/20/26") -> bytes:
        header = np.zeros(1, dtype=BioLogic.VMPmodule_hdr_v1)
        header["shortname"], header["longname"] = short.ljust(10), b"operando fuzz seed".ljust(25)
        header["length"], header["version"], header["date"] = len(data), version, date
        return b"MODULE" + header.tobytes() + data

    ids = [1, 4, 6, 8, 13, 24, 131]  # mode (flags), time/s, Ewe/V, I/mA, (Q-Qo)/mA.h, cycle number, Ns
    dtype, _ = BioLogic.VMPdata_dtype_from_colIDs(ids)
    records = np.zeros(rows, dtype=dtype)
    records["time/s"] = np.arange(rows) * 10.0
    records["Ewe/V"] = 3.0 - 0.1 * np.arange(rows)
    records["I/mA"] = 1.0
    head = struct.pack("<IB", rows, len(ids)) + struct.pack(f"<{len(ids)}H", *ids)
    data = head.ljust(405, b"\0") + records.tobytes()
    log = bytearray(600)
    ole_days = (dt.datetime(2026, 11, 20, 9, 30) - dt.datetime(1899, 12, 30)).total_seconds() / 86400
    log[465:473] = struct.pack("<d", ole_days)
    return (
        BioLogic.MPR_MAGIC
        + module(b"VMP Set   ", b"\0" * 16, 0)
        + module(b"VMP data  ", data, 2)
        + module(b"VMP LOG   ", bytes(log), 0)
    )


def _check_table(table) -> None:
    lengths = {key: len(values) for key, (_, values) in table.columns.items()}
    if len(set(lengths.values())) > 1:
        raise AssertionError(f"columns of different lengths: {lengths}")


def _importer(suffix: str):
    def setup(tmp: Path):
        from operando.storage.importers.eclab import read_eclab
        from operando.storage.importers.multivu import read_multivu

        read = read_multivu if suffix == ".dat" else read_eclab
        path = tmp / f"imported{suffix}"
        seeds = {
            ".dat": [_dat_seed(tmp), _DAT_DOC],
            ".mpt": [_mpt_seed(), _mpt_seed(1), _mpt_seed(4, charge=False)],
            ".mpr": [_mpr_seed()],
        }

        def check(content: bytes) -> None:
            path.write_bytes(content)
            _check_table(read(path))

        return byte_inputs(seeds[suffix], max_size=2048), check

    return setup


# -- configuration files ---------------------------------------------------------------------------------
def _config(kind: str):
    def setup(tmp: Path):
        from operando.acquisition.config import PROFILES_DIR, PROTOCOLS_DIR, load_profile, load_protocol

        folder, load = (PROFILES_DIR, load_profile) if kind == "profile" else (PROTOCOLS_DIR, load_protocol)
        seeds = [p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.yaml"))]
        path = tmp / f"fuzzed-{kind}.yaml"

        def check(text: str) -> None:
            path.write_text(text, encoding="utf-8", errors="surrogateescape")
            load(path)

        return text_inputs(seeds, max_size=1024), check

    return setup


# -- documents over 0MQ ------------------------------------------------------------------------------------
def _documents(_tmp: Path):
    import numpy as np

    from operando.acquisition.queue.serialization import deserialize, serialize

    seeds = [
        serialize({"uid": "a", "time": 1.5, "data": {"raman-spectrum": np.arange(6, dtype="<u2")}}),
        serialize({"seq_nums": {"start": 1, "stop": 3}, "x": np.zeros((2, 2)), "names": ["a", "b"], "n": None}),
        serialize({"s": np.array(["ab", "c"]), "flags": np.array([True, False]), "z": np.ones(2, complex)}),
    ]
    return byte_inputs(seeds, max_size=256), deserialize


def _allowed_config():
    from operando.acquisition.config import ConfigError

    return (ConfigError,)


def _e(module: str, *names: str):
    def allowed():
        mod = __import__(module, fromlist=list(names))
        return tuple(getattr(mod, n) for n in names)

    return allowed


TARGETS: list[Target] = [
    Target(
        "methodscript-replies",
        "MethodSCRIPT reply lines and data packages (driver: methodscript_replies, methodscript_values)",
        lambda: (ValueError,),
        _methodscript_replies,
        regressions=lambda: ["e" * 3000],
    ),
    Target(
        "methodscript-script",
        "MethodSCRIPT scripts (simulator: methodscript_language.parse_script)",
        _e("operando.sim_devices.wire.methodscript_language", "ScriptSyntaxError"),
        _methodscript_script,
    ),
    Target(
        "keithley-scpi",
        "SCPI program messages to the simulated 2450 (keithley2450_scpi, keithley2450_protocol): never raises",
        lambda: (),
        _keithley_scpi,
    ),
    Target(
        "keithley-replies",
        ":READ? replies to the 2450 driver (keithley2450_smu.measure through pymeasure's values())",
        _e("operando.devices.drivers.keithley2450_smu", "Keithley2450Error"),
        _keithley_replies,
        regressions=lambda: [("CURR", "abc,1"), ("VOLT", "1,2,3"), ("CURR", "nan,1")],
    ),
    Target(
        "nanonis-requests",
        "Nanonis requests to the simulated controller (the server's loop: nanonis_protocol, nanonis_firmware)",
        lambda: (),
        _nanonis_simulator,
    ),
    Target(
        "nanonis-replies",
        "Nanonis replies to the driver (nanonis.NanonisClient, nanonis_protocol.BodyReader)",
        lambda: _nanonis_allowed(),
        _nanonis_replies,
    ),
    Target(
        "labspec-commands",
        "LabSpec commands to the simulator (labspec_protocol_sim, labspec_protocol.parse_command/point)",
        lambda: (),
        _labspec_simulator,
    ),
    Target(
        "labspec-replies",
        "LabSpec replies to the driver (labspec.LabSpecClient, labspec_protocol.parse_reply/array/parameter)",
        _e("operando.devices.drivers.labspec_protocol", "LabSpecError"),
        _labspec_replies,
    ),
    Target(
        "obp-requests",
        "OBP requests to the simulated HDX (the server's loop: obp.FrameBuffer/decode_request, ocean_hdx_firmware)",
        lambda: (),
        _obp_simulator,
    ),
    Target(
        "obp-replies",
        "OBP replies (obp.FrameBuffer, obp.decode_reply)",
        _e("operando.devices.drivers.obp", "ObpError"),
        _obp_replies,
    ),
    Target(
        "hdx-replies",
        "OBP replies to the HDX driver (ocean_hdx.OceanHdxClient through python-seabreeze's OBPProtocol)",
        _e("operando.devices.drivers.ocean_hdx", "OceanHdxError"),
        _hdx_replies,
    ),
    Target(
        "multivu-dat",
        "MultiVu .dat files followed while written (multivu_tail.DatTail, multivu_datafile)",
        _e("operando.devices.drivers.multivu_datafile", "DatFileError"),
        _multivu_tail,
        regressions=lambda: [
            (b"[Header]\n[Data]\nComment,Time Stamp (sec)\n,300000023344\n", 0),
            (b"[Header]\n[Data]\nComment,Time Stamp (sec)\na\rb,3874585281\n", 0),
        ],
    ),
    Target(
        "import-dat",
        "MultiVu .dat import (storage/importers/multivu.py)",
        _e("operando.storage.importers", "ImportFormatError"),
        _importer(".dat"),
        regressions=lambda: [
            b"[Header]\n[Data]\nTime Stamp (sec),Moment (emu)\nnoon,1e-4\n",
            b"[Header]\n[Data]\nTime Stamp (sec),Moment (emu)\n1\r2,1e-4\n",
        ],
    ),
    Target(
        "import-mpt",
        "EC-Lab .mpt import (storage/importers/eclab.py through galvani)",
        _e("operando.storage.importers", "ImportFormatError"),
        _importer(".mpt"),
        regressions=lambda: [b"EC-Lab ASCII FILE\r\n\x00", _mpt_seed(1), _mpt_seed(0, charge=False)],
    ),
    Target(
        "import-mpr",
        "EC-Lab .mpr import (storage/importers/eclab.py through galvani)",
        _e("operando.storage.importers", "ImportFormatError"),
        _importer(".mpr"),
        regressions=lambda: [b"BIO-LOGIC MODULAR FILE\x1a".ljust(48) + b"\0\0\0\0MODULE", _mpr_seed(0)],
    ),
    Target(
        "profile",
        "profiles from a file (acquisition/config.py load_profile)",
        _allowed_config,
        _config("profile"),
        regressions=lambda: ["name: " + "[" * 3000, "instruments: " + "{a: " * 2000, "name: 2024-13-45"],
    ),
    Target(
        "protocol",
        "protocols from a file (acquisition/config.py load_protocol)",
        _allowed_config,
        _config("protocol"),
        regressions=lambda: ["steps:\n- " + "[" * 3000, "9" * 4308, "name: 2024-02-30 10:00:00"],
    ),
    Target(
        "documents",
        "documents from 0MQ (acquisition/queue/serialization.py deserialize)",
        lambda: (ValueError,),
        _documents,
        regressions=lambda: [
            b"\x83\x00\x00\x00\x00\x90\x00",
            b"\xc7\x03*\x92\x00\x00",
            b"\xc7\x01*\x00",
            b"\xc7\x00*",
            b"\xc7\x04*\x92\xa1,\x00",
        ],
    ),
]


def _nanonis_allowed():
    from operando.devices.drivers.nanonis import NanonisError, NanonisTimeout
    from operando.devices.drivers.nanonis_protocol import NanonisProtocolError

    return (NanonisError, NanonisProtocolError, NanonisTimeout, ConnectionError)


def target(name: str) -> Target:
    return next(t for t in TARGETS if t.name == name)


# What the fuzzing found, each fixed in the parser, its input kept in the target's regressions:
# (target, input, what came out, what comes out now).
BUGS_FOUND = [
    ("methodscript-replies", "a reply line of 3000 `e`", "RecursionError: one call per leading `e`",
     "the events, parsed in a loop (`methodscript_replies.parse_reply_line`)"),
    ("keithley-replies", "`:READ?` answered `abc,1`", "`('abc', 1.0)`: text as the voltage",
     "Keithley2450Error (`keithley2450_smu.measure` wants two finite numbers)"),
    ("keithley-replies", "`1,2,3`; `nan,1`", "bare ValueError (unpacking); a NaN voltage, which passes every limit",
     "Keithley2450Error"),
    ("multivu-dat", "a CR inside an unquoted field of a row", "`_csv.Error`",
     "DatFileError naming the file and the line (`multivu_datafile`)"),
    ("multivu-dat", "Time Stamp (sec) 300000023344 (year 11406)", "OverflowError in `DatTail.run_time`",
     "DatFileError: not a time (stamps beyond the year 9000)"),
    ("import-dat", "a Time Stamp (sec) column of text", "KeyError: 'magnetometer-timestamp'",
     "ImportFormatError (`importers/multivu.py`)"),
    ("import-dat", "a CR inside a data row", "`_csv.Error`", "ImportFormatError"),
    ("import-mpt", "a file with one data row", "TypeError: len() of unsized object (numpy's 0-d record)",
     "the row imported (`importers/eclab.py`)"),
    ("import-mpt", "no data row and no (Q-Qo) column", "a table whose charge column had 1 value, the others 0",
     "an empty charge column"),
    ("import-mpt", "`EC-Lab ASCII FILE` then a NUL line", "AttributeError inside galvani",
     "ImportFormatError for whatever galvani stops at"),
    ("import-mpr", "the magic then `MODULE` and nothing", "OSError (galvani's IOError), AssertionError",
     "ImportFormatError; the file is read once by the importer (galvani left it open)"),
    ("documents", "`83 00 00 00 00 90 00` (a map keyed by an array)", "TypeError: unhashable type",
     "ValueError (`serialization.deserialize`)"),
    ("documents", "`c7 00 2a`, `c7 03 2a 92 00 00` (array extensions)", "msgpack OutOfData, TypeError",
     "ValueError"),
    ("documents", "`c7 04 2a 92 a1 2c 00` (an array of dtype `,`)", "SyntaxError from numpy's dtype-string parser",
     "ValueError: only the plain dtype strings `serialize` writes are read"),
    ("profile, protocol", "a value of 3000 `[`", "RecursionError inside PyYAML",
     "ConfigError naming the file (`config._read_mapping`)"),
    ("protocol, profile", "a file that is an integer of 4308 digits; `name: 2024-13-45`",
     "bare ValueError from PyYAML's constructors (Python's digit limit, a date), the file not named",
     "ConfigError naming the file"),
]  # fmt: skip


# ---- running -----------------------------------------------------------------------------------------
def examples_from_env(default: int = CI_EXAMPLES) -> int:
    return int(os.environ.get(EXAMPLES_ENV, default))


def property_test(t: Target, tmp: Path, examples: int, derandomize: bool, counter: list[int] | None = None):
    """The hypothesis test of ``t``: call it; it raises on a failure (hypothesis' report attached)."""
    strategy, check = t.setup(tmp)
    allowed = t.allowed()
    counter = counter if counter is not None else [0]

    def prop(value) -> None:
        counter[0] += 1
        try:
            with warnings.catch_warnings():  # a parser's warning about bad input is no failure
                warnings.simplefilter("ignore")
                check(value)
        except allowed:
            pass

    for regression in t.regressions():  # the inputs of bugs fixed so far, first
        prop(regression)
    test = given(strategy)(prop)
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        print_blob=True,
        phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )(test)


@dataclass
class Result:
    name: str
    examples: int
    failures: int
    seconds: float
    errors: list[str] = field(default_factory=list)


def run(name: str, examples: int, derandomize: bool = False) -> Result:
    t = target(name)
    counter = [0]
    start = time.perf_counter()
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix=f"operando-fuzz-{name}-") as tmp:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # a simulator's own prints
                property_test(t, Path(tmp), examples, derandomize, counter)()
        except BaseException as exc:
            found = list(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else [exc]
            errors += ["".join(traceback.format_exception_only(e)).strip() for e in found]  # with hypothesis' notes
    return Result(name, counter[0], len(errors), time.perf_counter() - start, errors)


def table(results: list[Result], markdown: bool = False) -> str:
    rows = [("target", "examples", "failures", "seconds", "examples/s")]
    for r in results:
        rows.append((r.name, f"{r.examples:,}", str(r.failures), f"{r.seconds:.1f}", f"{r.examples / r.seconds:,.0f}"))
    if markdown:
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + "|".join(["---", "--:", "--:", "--:", "--:"]) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m operando.benchmarks.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--examples", type=int, default=examples_from_env(DEFAULT_EXAMPLES), help="per target (default %(default)s)"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="targets run at once (processes)")
    parser.add_argument("--only", nargs="+", choices=[t.name for t in TARGETS], help="these targets only")
    parser.add_argument("--markdown", help="also write the table, with the date, to this file (docs/fuzz.md)")
    args = parser.parse_args(argv)
    names = args.only or [t.name for t in TARGETS]
    print(f"fuzzing {len(names)} targets, {args.examples:,} examples each, {args.jobs} at a time", flush=True)
    started = time.time()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(run, name, args.examples) for name in names]
        results = []
        for future in futures:
            result = future.result()
            results.append(result)
            print(
                f"  {result.name}: {result.examples:,} examples, {result.failures} failures, {result.seconds:.1f} s",
                flush=True,
            )
    print()
    print(table(results))
    for r in results:
        for error in r.errors:
            print(f"\n{r.name} FAILED:\n{error}")
    if args.markdown:
        _write_markdown(Path(args.markdown), results, args.examples, args.jobs, time.time() - started)
        print(f"\nwritten to {args.markdown}")
    return 1 if any(r.failures for r in results) else 0


def _write_markdown(path: Path, results: list[Result], examples: int, jobs: int, wall_s: float) -> None:
    rows = {t.name: t.what for t in TARGETS}
    full = ""
    if examples < DEFAULT_EXAMPLES:
        minutes = sum(DEFAULT_EXAMPLES * r.seconds / max(r.examples, 1) for r in results) / max(jobs, 1) / 60
        full = f" At these rates {DEFAULT_EXAMPLES:,} per target would take about {minutes:.0f} min."
    lines = [
        "# Fuzzing",
        "",
        "Every parser of the project, fed by [hypothesis](https://hypothesis.readthedocs.io/) with arbitrary",
        "input and with mutations of valid messages (`benchmarks/fuzz.py`): only the errors each module",
        "documents may come out; a simulator answering a client must not raise at all. CI runs 200",
        f"examples per target (`tests/test_fuzz.py`); `make fuzz` runs {DEFAULT_EXAMPLES:,} per target and",
        "prints this table (`make fuzz FUZZ_EXAMPLES=N` for another number).",
        "",
        f"Last run: {dt.date.today().isoformat()}, {examples:,} examples per target, {jobs} targets at a time,",
        f"{wall_s / 60:.0f} min in all, on {os.cpu_count()} cores (Python {sys.version.split()[0]}).{full}",
        "",
        table(results, markdown=True),
        "",
        "## Targets",
        "",
        "| target | what it parses |",
        "|---|---|",
        *(f"| {r.name} | {rows[r.name]} |" for r in results),
        "",
        "## What it found",
        "",
        "Each fixed in the parser; the input is run first by every run since (the target's regressions).",
        "",
        "| target | input | came out | now |",
        "|---|---|---|---|",
        *(f"| {' | '.join(bug)} |" for bug in BUGS_FOUND),
        "",
        "Left as they are: QD's MultiPyVu 3.8.0 server (the MPMS3's, and the `mpms3` simulator's) stops",
        "listening after the first packet that is not its JSON framing (`tests/test_security.py`, an",
        "expected failure there); the parsing inside third-party clients (pymeasure's `values`, python-seabreeze's",
        "OBP client) is fuzzed only through what the project's drivers do with their results.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
