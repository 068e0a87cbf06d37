"""The LabSpec 6 driver (devices/drivers/labspec.py) against the simulated LabSpec
(sim_devices/wire/labspec_*.py) over real TCP on 127.0.0.1; the grammar
(devices/drivers/labspec_protocol.py) against lines written out by hand from the documented
format; misbehaving peers (a tiny fake server here) as errors naming the instrument.

No third-party LabSpec client runs here: the one public client (pymodaq_plugins_horiba's
``Labspec6Client``) is importable only through a package that imports pymodaq, a Qt GUI stack
(see docs/labspec.md).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest
from scipy.signal import find_peaks, medfilt

from operando.devices.drivers import labspec_protocol as lp
from operando.devices.drivers.labspec import LabSpecClient, LabSpecConnectionError
from operando.devices.drivers.labspec_protocol import LabSpecError
from operando.sim_devices.lab import build_sim_lab
from operando.sim_devices.raman import SimRamanPhysics
from operando.sim_devices.wire import labspec_server
from operando.sim_devices.wire.labspec_server import LabSpecServer
from operando.sim_devices.wire.registry import wire_simulators

SPEED = 50.0  # simulated s per wall s: an 8 s acquisition takes 0.16 s


@pytest.fixture(scope="module")
def lab():
    return build_sim_lab(speed=SPEED, soc=0.5)


@pytest.fixture(scope="module")
def served(lab):
    """The simulator as a profile's ``address: sim`` starts it: through its registration."""
    served = wire_simulators()[("raman", "labspec")].start(lab)
    yield served.address
    served.stop()


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _peaks(shift: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Pixels of the clear bands above 300 cm^-1 (clear of the laser's tail), cosmic rays removed."""
    smooth = medfilt(counts, 5)
    region = shift > 300
    found, _ = find_peaks(np.where(region, smooth, 0), prominence=0.1 * smooth[region].max())
    return found[region[found]]


# ---- (a) the driver against the simulator ---------------------------------------------------------
def test_sets_acquires_and_reads_the_physics_spectrum(lab, served):
    reference = SimRamanPhysics(lab.cell, seed=7, laser_nm=lab.raman.laser_nm)  # same axis, own noise
    with LabSpecClient(served, name="raman-1") as spec:
        assert spec.identification
        spec.set_exposure_s(2.0)
        start = time.monotonic()
        short = spec.acquire()
        assert time.monotonic() - start >= 2.0 / SPEED  # the acquisition lasted its time
        spec.set_exposure_s(8.0)
        long = spec.acquire()
        spec.set_exposure_s(2.0)
        spec.set_accumulations(4)
        assert spec.acquisition_time_s() == pytest.approx(8.0)
        start = time.monotonic()
        summed = spec.acquire()
        assert time.monotonic() - start >= 8.0 / SPEED
        assert spec.laser_wavelength_nm() == lab.raman.laser_nm
        assert spec.lasers() == (0, (f"{lab.raman.laser_nm:g}nm",))
    assert not spec.connected

    assert (short.exposure_s, long.exposure_s, summed.exposure_s, summed.accumulations) == (2.0, 8.0, 2.0, 4)
    # the axis is in nm; converted back it is the physics' own Raman-shift axis
    np.testing.assert_allclose(long.raman_shift_cm1, lab.raman.raman_shift_cm1, rtol=0, atol=1e-9)
    assert long.wavelength_nm[0] > lab.raman.laser_nm and np.all(np.diff(long.wavelength_nm) > 0)
    assert long.counts.shape == lab.raman.raman_shift_cm1.shape
    # counts grow in proportion to the exposure; 4 x 2 s gives what 1 x 8 s does
    assert long.counts.sum() / short.counts.sum() == pytest.approx(4.0, rel=0.03)
    assert summed.counts.sum() / long.counts.sum() == pytest.approx(1.0, rel=0.03)
    # the bands sit where the physics puts them
    expected = _peaks(reference.raman_shift_cm1, reference.spectrum(200.0))
    found = _peaks(long.raman_shift_cm1, long.counts)
    assert len(expected) >= 4
    for pixel in expected:
        assert np.min(np.abs(found - pixel)) <= 2, f"no band near {reference.raman_shift_cm1[pixel]:.0f} cm^-1"


def test_commands_on_the_wire_are_the_documented_ones(lab):
    with LabSpecServer(lab.raman, lab.clock) as server, LabSpecClient(server.address, exposure_s=0.5) as spec:
        spec.set_accumulations(3)
        spec.acquire()
        spec.close()
        assert server.instrument.messages == [
            "0 SetRamanParameter Exposure 0.5",
            "1 SetRamanParameter Accumulations 1",
            "2 SetRamanParameter Accumulations 3",
            "3 SetPointList 2 6",
            "0 0",
            "0 0",
            "4 EnableSpectralResponse",
            "5 SetActivePoint 0",
            "6 GetRamanParam LaserWavelength",
            "7 GetRamanParam AcquisitionTime",
            "8 StartRamanMeasurement 0",
            "9 Logout",
        ]
        assert server.instrument.acquisitions == 1


def test_settings_are_checked_before_sending(lab):
    with LabSpecServer(lab.raman, lab.clock) as server, LabSpecClient(server.address, name="raman-2") as spec:
        sent = list(server.instrument.messages)
        for bad in (0.0, 0.0005, 3601.0, float("nan"), float("inf"), True, "1"):
            with pytest.raises(ValueError, match="raman-2: exposure must be a number of seconds from 0.001 to 3600"):
                spec.set_exposure_s(bad)
        for bad in (0, -1, 10_001, 2.0, True):
            with pytest.raises(ValueError, match="raman-2: accumulations must be an integer from 1 to 10000"):
                spec.set_accumulations(bad)
        assert server.instrument.messages == sent  # nothing went out
        assert (spec.exposure_s, spec.accumulations) == (1.0, 1)


# ---- (b) the grammar, against lines written out by hand ------------------------------------------
def test_commands_are_byte_exact():
    assert lp.format_command(0, "SetRamanParameter", "Exposure", 0.5) == b"0 SetRamanParameter Exposure 0.5"
    assert lp.format_command(1, "SetRamanParameter", "Accumulations", 4) == b"1 SetRamanParameter Accumulations 4"
    assert lp.format_command(12, "SetRamanParameter", "Exposure", 2.0) == b"12 SetRamanParameter Exposure 2.0"
    assert lp.format_command(2, "GetRamanParam", "LaserWavelength") == b"2 GetRamanParam LaserWavelength"
    assert lp.format_command(3, "SetPointList", 2, 6) == b"3 SetPointList 2 6"
    assert lp.format_point(0, 0) == b"0 0"
    assert lp.format_command(4, "EnableSpectralResponse") == b"4 EnableSpectralResponse"
    assert lp.format_command(5, "StartRamanMeasurement", 0) == b"5 StartRamanMeasurement 0"
    assert lp.format_command(6, "Logout") == b"6 Logout"
    assert lp.parse_command(b"7 SetRamanParameter Exposure 0.25") == lp.Command(
        7, "SetRamanParameter", ("Exposure", "0.25")
    )
    assert lp.parse_command(b"8 Logout\r\n") == lp.Command(8, "Logout")
    assert lp.parse_point(b"0 0") == (0.0, 0.0)


def test_replies_are_byte_exact():
    assert lp.format_reply(0, "OK", "LabSpec", "6") == b"0 OK LabSpec 6\r\n"
    assert lp.format_reply(3, "OK") == b"3 OK\r\n"
    assert lp.format_array(4, [534.5, 535.0, 535.5]) == b"4 OK 3 534.5 535.0 535.5\r\n"
    assert lp.format_array(9, [1200, 1187, 1301]) == b"9 OK 3 1200 1187 1301\r\n"
    assert lp.format_parameter(6, 532.0) == b"6 532.0\r\n"
    assert lp.format_parameter(10, 1, ("532nm", "633nm")) == b"10 1 532nm#633nm#\r\n"
    assert lp.format_error(11, "Unknown", "parameter Foo") == b"11 Unknown parameter Foo\r\n"


def test_replies_parse_to_values():
    axis = lp.parse_reply(b"4 OK 3 534.5 535.0 535.5\r\n")
    assert (axis.id, axis.status, axis.ok) == ("4", "OK", True)
    np.testing.assert_array_equal(lp.parse_array(lp.check_ok(axis)), [534.5, 535.0, 535.5])
    assert lp.parse_parameter(lp.parse_reply(b"6 532.0\r\n")) == lp.Parameter(532.0)
    assert lp.parse_parameter(lp.parse_reply(b"6 OK 532.0\r\n")) == lp.Parameter(532.0)
    lasers = lp.parse_parameter(lp.parse_reply(b"10 1 532 nm#633 nm#785 nm#\r\n"))
    assert lasers == lp.Parameter(1.0, ("532 nm", "633 nm", "785 nm"))
    refusal = lp.parse_reply(b"11 Unknown parameter Foo\r\n")
    with pytest.raises(LabSpecError, match="LabSpec refused: '11 Unknown parameter Foo'") as caught:
        lp.check_ok(refusal)
    assert (caught.value.field, caught.value.expected) == ("status", "OK")
    with pytest.raises(LabSpecError, match="LabSpec refused"):
        lp.parse_parameter(refusal)
    assert lp.check_id(axis, 4) is axis


@pytest.mark.parametrize(
    "line, field, said",
    [
        (b"4 OK 3 534.5 535.0", "reply end", "expected CR LF"),
        (b"4 OK 3 534.5\n535.0\r\n", "reply", "expected one line"),
        (b"4\r\n", "reply", "expected '<id> <status> [data]', got '4'"),
        (b"4 OK 3 534.5 \xb5m\r\n", "reply", "expected ASCII text"),
    ],
)
def test_malformed_reply_lines_name_what_is_wrong(line, field, said):
    with pytest.raises(LabSpecError) as caught:
        lp.parse_reply(line)
    assert caught.value.field == field and said in str(caught.value)


@pytest.mark.parametrize(
    "fields, field, said",
    [
        (("3", "1.0", "2.0"), "spectrum length", "expected 3 values (its count), got 2"),
        (("2", "1.0", "2.0", "3.0"), "spectrum length", "expected 2 values (its count), got 3"),
        (("3", "1.0", "abc", "3.0"), "spectrum value 1", "expected a number, got 'abc'"),
        (("3", "1.0", "nan", "3.0"), "spectrum value 1", "expected a finite number, got 'nan'"),
        (("three", "1.0"), "spectrum count", "expected an integer, got 'three'"),
        (("0",), "spectrum count", "expected at least 1, got 0"),
        ((), "spectrum count", "expected a count of values, got nothing"),
    ],
)
def test_malformed_arrays_name_what_is_wrong(fields, field, said):
    with pytest.raises(LabSpecError) as caught:
        lp.parse_array(fields, "spectrum")
    assert caught.value.field == field
    assert str(caught.value) == f"LabSpec {field}: {said}"


def test_the_grammar_refuses_what_it_cannot_send():
    for bad_id in (-1, 1.0, True):
        with pytest.raises(LabSpecError, match="LabSpec command id: expected an integer >= 0"):
            lp.format_command(bad_id, "Logout")
    with pytest.raises(LabSpecError, match="LabSpec command: expected a word"):
        lp.format_command(0, "Get Param")
    for bad in (float("nan"), "two words", "", True):
        with pytest.raises(LabSpecError, match="LabSpec value: expected"):
            lp.format_command(0, "SetRamanParameter", "Exposure", bad)
    with pytest.raises(LabSpecError, match="LabSpec command id: expected an integer, got 'x'"):
        lp.parse_command(b"x Logout")


# ---- (c) the simulator's own refusals, over raw TCP -------------------------------------------
def _ask(sock: socket.socket, message: bytes) -> bytes:
    sock.sendall(message)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(65536)
        assert chunk, "the simulator closed the connection"
        data += chunk
    return data


def test_simulator_refuses_as_documented(lab):
    with LabSpecServer(lab.raman, lab.clock) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            assert _ask(sock, b"").startswith(b"0 OK ")  # the greeting comes unasked
            assert _ask(sock, b"0 StartRamanMeasurement 0") == b"0 Error no point list: send SetPointList first\r\n"
            assert _ask(sock, b"1 GetRamanParam Exposure") == b"1 Unknown parameter Exposure\r\n"
            assert _ask(sock, b"2 Shutdown") == b"2 Unknown command Shutdown\r\n"
            assert _ask(sock, b"3 SetRamanParameter Accumulations 0") == (
                b"3 Error Accumulations must be >= 1, got 0\r\n"
            )
            assert _ask(sock, b"4 SetRamanParameter Exposure fast").startswith(b"4 Error LabSpec Exposure: expected")
            assert _ask(sock, b"5 SetPointList 1 5") == b"5 OK Ready to receive\r\n"
            assert _ask(sock, b"0 0") == b"5 Error point list: expected 5 bytes, got 3\r\n"
            assert _ask(sock, b"6 GetRamanParam AcquisitionTime\r\n") == b"6 1.0\r\n"  # a line ending is fine
            assert _ask(sock, b"7 Logout") == b"7 OK\r\n"
            assert sock.recv(10) == b""  # Logout closes the connection


# ---- (d) loopback only ----------------------------------------------------------------------------
def _listening(pid: int, port: int) -> list[tuple[str, int]]:
    return [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    ]


def test_listens_on_loopback_only(served):
    assert served.startswith("127.0.0.1:")
    assert _listening(psutil.Process().pid, _port(served)) == [("127.0.0.1", _port(served))]


# ---- (e) failures are LabSpecErrors naming the instrument ---------------------------------------
CLOSE = object()


class FakeLabSpec:
    """A LabSpec stand-in on loopback, written out by hand: it answers what the driver sends
    correctly (a 3-pixel axis), except where ``override[command](id)`` says otherwise (bytes to
    send, None for silence, CLOSE to hang up, or (bytes, CLOSE))."""

    def __init__(self, greeting: bytes | None = b"0 OK fake LabSpec\r\n", **override):
        self.greeting, self.override = greeting, override
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _answer(self, command_id: int, name: str, args: list[str]):
        if name in self.override:
            return self.override[name](command_id)
        if name == "SetPointList":
            self.points = [command_id, int(args[0])]
            return f"{command_id} OK Ready to receive\r\n".encode()
        if name == "EnableSpectralResponse":
            return f"{command_id} OK 3 500.0 501.0 502.0\r\n".encode()
        if name == "GetRamanParam":
            return f"{command_id} {'488.0' if args == ['LaserWavelength'] else '0.1'}\r\n".encode()
        if name == "StartRamanMeasurement":
            return f"{command_id} OK 3 10 20 30\r\n".encode()
        return f"{command_id} OK\r\n".encode()

    def _serve(self):
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.points = None
        with conn:
            if self.greeting is not None:
                conn.sendall(self.greeting)
            while True:
                try:
                    message = conn.recv(65536).decode()
                except OSError:
                    return
                if not message:
                    return
                if self.points:  # in the middle of a point list
                    command_id, left = self.points
                    self.points = [command_id, left - 1] if left > 1 else None
                    reply = f"{command_id} OK {'Point 0' if left > 1 else '2 points'}\r\n".encode()
                else:
                    command_id, name, *args = message.split()
                    reply = self._answer(int(command_id), name, args)
                data, close = reply if isinstance(reply, tuple) else (reply, reply is CLOSE)
                if data and data is not CLOSE:
                    conn.sendall(data)
                if close:
                    return

    def close(self):
        self.listener.close()


def _acquire_from(fake: FakeLabSpec):
    with LabSpecClient(fake.address, name="raman-9", timeout_s=0.3, exposure_s=0.001) as spec:
        return spec.acquire()  # commands 0-6 prepare it, 7 is StartRamanMeasurement


def test_the_fake_is_a_good_labspec_by_default():
    fake = FakeLabSpec()
    try:
        spectrum = _acquire_from(fake)
    finally:
        fake.close()
    np.testing.assert_array_equal(spectrum.counts, [10, 20, 30])
    np.testing.assert_allclose(spectrum.raman_shift_cm1, 1e7 / 488.0 - 1e7 / np.array([500.0, 501.0, 502.0]))


@pytest.mark.parametrize(
    "override, error, said",
    [
        ({"StartRamanMeasurement": lambda i: None}, LabSpecConnectionError, r"no reply within 0\.\d+ s"),
        (
            {"StartRamanMeasurement": lambda i: f"{i + 1} OK 3 10 20 30\r\n".encode()},
            LabSpecConnectionError,
            "LabSpec reply id: expected 7, got '8'",
        ),
        ({"StartRamanMeasurement": lambda i: f"{i} Error CCD too warm\r\n".encode()}, LabSpecError, "refused"),
        (
            {"StartRamanMeasurement": lambda i: f"{i} OK 3 10 abc 30\r\n".encode()},
            LabSpecError,
            "LabSpec spectrum value 1: expected a number, got 'abc'",
        ),
        (
            {"StartRamanMeasurement": lambda i: f"{i} OK 3 10 20\r\n".encode()},
            LabSpecError,
            r"LabSpec spectrum length: expected 3 values \(its count\), got 2",
        ),
        (
            {"StartRamanMeasurement": lambda i: f"{i} OK 2 10 20\r\n".encode()},
            LabSpecError,
            r"LabSpec spectrum length: expected 3 values \(the axis's\), got 2",
        ),
        (
            {"EnableSpectralResponse": lambda i: f"{i} OK 3 500.0 499.0 502.0\r\n".encode()},
            LabSpecError,
            "LabSpec axis: expected strictly monotonic wavelengths > 0 nm",
        ),
        ({"StartRamanMeasurement": lambda i: b"\xff\xfe\r\n"}, LabSpecError, "LabSpec reply: expected ASCII text"),
        ({"StartRamanMeasurement": lambda i: CLOSE}, LabSpecConnectionError, "LabSpec closed the connection$"),
        (
            {"StartRamanMeasurement": lambda i: (f"{i} OK 3 10 2".encode(), CLOSE)},
            LabSpecConnectionError,
            "LabSpec closed the connection after 11 bytes of an unfinished line: '7 OK 3 10 2'",
        ),
        (
            {"StartRamanMeasurement": lambda i: f"{i} OK 3 10 2".encode()},
            LabSpecConnectionError,
            r"no reply within 0.5 s \(only 11 bytes of a line: '7 OK 3 10 2'\)",
        ),
        ({"SetPointList": lambda i: f"{i} OK Busy\r\n".encode()}, LabSpecError, "expected OK Ready to receive"),
    ],
    ids=[
        "silent",
        "wrong-id",
        "error-reply",
        "not-a-number",
        "count",
        "axis-length",
        "axis",
        "binary",
        "closed",
        "truncated-then-closed",
        "truncated-then-silent",
        "handshake",
    ],
)
def test_a_misbehaving_labspec_is_an_error_naming_it(override, error, said):
    fake = FakeLabSpec(**override)
    try:
        start = time.monotonic()
        with pytest.raises(error, match=f"raman-9 at {fake.address} failed to .*{said}") as caught:
            _acquire_from(fake)
        assert time.monotonic() - start < 5
    finally:
        fake.close()
    assert isinstance(caught.value, LabSpecError)


def test_the_acquisition_timeout_scales_with_the_exposure():
    fake = FakeLabSpec(StartRamanMeasurement=lambda i: None)
    try:
        with LabSpecClient(fake.address, name="raman-9", timeout_s=0.2, exposure_s=0.3) as spec:
            start = time.monotonic()
            with pytest.raises(LabSpecConnectionError, match=r"acquire \(0.3 s x 1\): no reply within 0.8 s"):
                spec.acquire()  # 0.2 s + 2 x max(0.3 s, LabSpec's 0.1 s)
            assert 0.75 <= time.monotonic() - start < 3
            assert not spec.connected  # a link out of step is closed
            with pytest.raises(LabSpecConnectionError, match=f"raman-9 at {fake.address}: not connected"):
                spec.acquire()
    finally:
        fake.close()


def test_silent_or_refusing_greeting_fails_open():
    silent = FakeLabSpec(greeting=None)
    refusing = FakeLabSpec(greeting=b"0 Busy another client is connected\r\n")
    try:
        with pytest.raises(
            LabSpecConnectionError,
            match=f"raman-9: no LabSpec answering at {silent.address}: .*its greeting: no reply within 0.3 s",
        ):
            LabSpecClient(silent.address, name="raman-9", timeout_s=0.3).open()
        with pytest.raises(LabSpecError, match="its greeting: LabSpec refused: '0 Busy another client"):
            LabSpecClient(refusing.address, name="raman-9", timeout_s=0.3).open()
    finally:
        silent.close()
        refusing.close()


def test_a_stopped_labspec_is_an_error_naming_it(lab):
    server = LabSpecServer(lab.raman, lab.clock)
    address = server.start()
    spec = LabSpecClient(address, name="raman-3", exposure_s=0.1).open()
    assert spec.acquire().counts.size == lab.raman.raman_shift_cm1.size
    server.stop()
    lost = "closed the connection|connection lost"
    with pytest.raises(LabSpecConnectionError, match=f"raman-3 at {address} failed to acquire .*({lost})"):
        spec.acquire()
    assert not spec.connected
    spec.close()
    spec.close()  # idempotent
    with pytest.raises(LabSpecConnectionError, match=f"raman-3: no LabSpec answering at {address}: connection refused"):
        LabSpecClient(address, name="raman-3").open()


# ---- (f) `operando sim serve labspec` --------------------------------------------------------------
def test_cli_serves_the_driver(lab):
    cmd = [sys.executable, "-m", "operando.acquisition.cli", "sim", "serve", "labspec", "--port", "0"]
    proc = subprocess.Popen([*cmd, "--speed", "100", "--soc", "0.5"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Serving labspec on 127.0.0.1:"), line
        port = _port(line.split()[-1])
        assert _listening(proc.pid, port) == [("127.0.0.1", port)]
        with LabSpecClient(f"127.0.0.1:{port}", name="raman-cli", exposure_s=5.0) as spec:
            spectrum = spec.acquire()
        np.testing.assert_allclose(spectrum.raman_shift_cm1, lab.raman.raman_shift_cm1, atol=1e-9)
        assert spectrum.counts.max() > 1000
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_registered_for_sim_serve():
    sim = wire_simulators()[("raman", "labspec")]
    assert (sim.command, sim.main, sim.virtual_clock) == ("labspec", labspec_server.main, False)
