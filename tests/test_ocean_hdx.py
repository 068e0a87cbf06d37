"""The simulated Ocean Insight HDX (sim_devices/wire/ocean_hdx_*.py) against python-seabreeze's
own client, unmodified, and the project's driver against it: real TCP on 127.0.0.1. The OBP
codec (devices/drivers/obp.py) against bytes laid out by hand and against seabreeze's parser.

seabreeze's ``list_devices()`` multicasts a discovery datagram and waits 1 s for answers; the
tests give it ``network_adapter="127.0.0.1"`` (a seabreeze option) so the datagram stays on
loopback and the listing works on a machine without a network.
"""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest
from seabreeze.pyseabreeze import SeaBreezeAPI
from seabreeze.pyseabreeze.protocol import OBPProtocol
from seabreeze.pyseabreeze.transport import IPv4Transport

from operando.devices.drivers import obp
from operando.devices.drivers.obp import ObpError
from operando.devices.drivers.ocean_hdx import OceanHdxClient, OceanHdxError, select_pyseabreeze
from operando.sim_devices.clock import SimClock
from operando.sim_devices.lab import build_sim_lab
from operando.sim_devices.raman import SimRamanPhysics
from operando.sim_devices.wire import ocean_hdx_server
from operando.sim_devices.wire.ocean_hdx_firmware import OceanHdxFirmware
from operando.sim_devices.wire.ocean_hdx_server import OceanHdxServer
from operando.sim_devices.wire.registry import wire_simulators

SPEED = 50.0  # simulated s per wall s: a 8 s exposure takes 0.16 s
DEADLINE_S = 30.0
# A bad MD5 from the simulator would only be a warning in seabreeze: make it fail the test.
pytestmark = pytest.mark.filterwarnings("error:WARNING OBP", "ignore::ResourceWarning")


@pytest.fixture(scope="module")
def lab():
    return build_sim_lab(speed=SPEED, soc=0.5)


@pytest.fixture(scope="module")
def hdx(lab):
    """The simulator as a profile's ``address: sim`` starts it: through its registration."""
    served = wire_simulators()[("raman", "ocean_hdx")].start(lab)
    yield served.address
    served.stop()


@pytest.fixture
def reference(lab):
    """The physics the simulator measures with, built independently: its axis and bands."""
    return SimRamanPhysics(lab.cell, n_pixels=2068, laser_nm=lab.raman.laser_nm)


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def _seabreeze_spectrometer(port: int):
    assert select_pyseabreeze() == "pyseabreeze"
    from seabreeze.spectrometers import Spectrometer

    api = SeaBreezeAPI(network_adapter="127.0.0.1")
    api.add_ipv4_device_location("HDX", "127.0.0.1", port)
    devices = [d for d in api.list_devices() if d.model == "HDX"]
    assert [d.serial_number for d in devices] == ["HDXS0001"]
    return Spectrometer(devices[0])


def _peak_nm(wl: np.ndarray, counts: np.ndarray, centre_nm: float, half_nm: float) -> tuple[float, float]:
    """(wavelength of the smoothed maximum near centre_nm, its height over the window's edges)."""
    smooth = np.convolve(counts, np.ones(5) / 5, mode="same")
    window = np.flatnonzero(np.abs(wl - centre_nm) <= half_nm)
    top = window[np.argmax(smooth[window])]
    return float(wl[top]), float(smooth[top] / max(smooth[window[0]], smooth[window[-1]]))


def _check_bands(reference: SimRamanPhysics, wl: np.ndarray, counts: np.ndarray) -> None:
    laser = reference.laser_nm
    to_nm = lambda shift: 1e7 / (1e7 / laser - shift)
    checked = 0
    for name, centre, fwhm, peak in reference.bands():
        if peak < 300:
            continue  # too weak against the fluorescence to place by its maximum
        centre_nm = to_nm(centre)
        fwhm_nm = to_nm(centre + fwhm / 2) - to_nm(centre - fwhm / 2)
        found, contrast = _peak_nm(wl, counts, centre_nm, fwhm_nm)
        assert found == pytest.approx(centre_nm, abs=0.25 * fwhm_nm), name
        assert contrast > 1.2, name
        checked += 1
    assert checked >= 4


# ---- (a) python-seabreeze's own client ----------------------------------------------------------
def test_seabreeze_reads_serial_wavelengths_and_spectra(hdx, reference):
    port = _port(hdx)
    spec = _seabreeze_spectrometer(port)
    try:
        assert (spec.model, spec.serial_number, spec.pixels) == ("HDX", "HDXS0001", 2068)
        wl = spec.wavelengths()
        np.testing.assert_allclose(wl, reference.wavelength_nm, atol=1e-3)  # float32 coefficients
        spec.integration_time_micros(2_000_000)
        start = time.monotonic()
        short = spec.intensities()
        assert time.monotonic() - start >= 2.0 / SPEED  # the exposure lasted its time
        spec.integration_time_micros(8_000_000)
        long = spec.intensities()
    finally:
        spec.close()
        IPv4Transport.devices_ip_port.pop(("127.0.0.1", port), None)
    assert short.shape == long.shape == (2068,)
    assert long.max() < 65535
    assert long.sum() / short.sum() == pytest.approx(4.0, rel=0.03)
    _check_bands(reference, wl, long)


# ---- (b) the project's driver -------------------------------------------------------------------
def test_driver_reads_serial_wavelengths_and_spectra(hdx, reference):
    with OceanHdxClient(hdx, name="raman-1") as spec:
        assert spec.serial_number == "HDXS0001"
        assert spec.integration_time_limits_us == (6000, 10_000_000)
        wl = spec.wavelengths_nm()
        np.testing.assert_allclose(wl, reference.wavelength_nm, atol=1e-3)
        spec.set_integration_time_us(1_000_000)
        short = spec.intensities()
        spec.set_integration_time_us(4_000_000)
        long = spec.intensities()
        for bad in (5999, 10_000_000, 1.5e6, True):
            with pytest.raises(ValueError, match="raman-1: integration time must be an integer from 6000 to 9999999"):
                spec.set_integration_time_us(bad)
    assert not spec.connected
    spec.close()  # idempotent
    assert long.dtype == np.float64 and np.all(long == np.round(long))
    assert long.sum() / short.sum() == pytest.approx(4.0, rel=0.03)
    _check_bands(reference, wl, long)
    assert ("127.0.0.1", _port(hdx)) not in IPv4Transport.devices_ip_port  # left as found


# ---- (c) the codec --------------------------------------------------------------------------------
SET_ITIME_100MS = (
    bytes.fromhex("c1c0")  # start bytes 0xC0C1, little-endian
    + bytes.fromhex("0011")  # protocol version 0x1100
    + bytes.fromhex("0400")  # flags: request ACK
    + bytes.fromhex("0000")  # error number
    + bytes.fromhex("10001100")  # message type 0x00110010 (SET_ITIME_USEC)
    + bytes.fromhex("00000000")  # regarding
    + bytes(6)  # reserved
    + bytes.fromhex("00")  # checksum type: none
    + bytes.fromhex("04")  # immediate data length
    + bytes.fromhex("a0860100")  # 100000 µs
    + bytes(12)  # rest of the immediate data
    + bytes.fromhex("14000000")  # bytes remaining: the 20-byte footer
    + bytes(16)  # checksum (none)
    + bytes.fromhex("c5c4c3c2")  # end 0xC2C3C4C5
)


def test_request_is_byte_exact():
    assert len(SET_ITIME_100MS) == 64
    ours = obp.encode_request(obp.SET_ITIME_USEC, struct.pack("<L", 100_000), request_ack=True)
    assert ours == SET_ITIME_100MS
    seabreeze = OBPProtocol(IPv4Transport(OBPProtocol))
    assert seabreeze._construct_outgoing_message(0x00110010, struct.pack("<L", 100_000), request_ack=True) == ours
    request = obp.decode_request(SET_ITIME_100MS)
    assert (request.name, request.flags, obp.request_values(request)) == (
        "SET_ITIME_USEC",
        obp.FLAG_REQUEST_ACK,
        (100_000,),
    )


def test_replies_round_trip_and_seabreeze_parses_them():
    seabreeze = OBPProtocol(IPv4Transport(OBPProtocol))
    request = obp.Message(obp.GET_RAW_SPECTRUM_NOW_HDX, regarding=7)
    for data in (b"", b"\x08", bytes(range(16)), np.arange(2068, dtype="<u2").tobytes()):
        frame = obp.encode_reply(request, data)
        reply = obp.decode_reply(frame, expected_type=obp.GET_RAW_SPECTRUM_NOW_HDX)
        assert (reply.data, reply.regarding, reply.checksum_type, reply.nack) == (data, 7, obp.CHECKSUM_MD5, False)
        assert seabreeze._check_incoming_message_header(frame[:44]) == (len(frame) - 44, obp.CHECKSUM_MD5)
        assert seabreeze._extract_message_data(frame) == data
    nack = obp.decode_reply(obp.encode_reply(request, error=obp.ERR_UNKNOWN_MESSAGE_TYPE))
    assert nack.nack and nack.error_name == "UNKNOWN_MESSAGE_TYPE"
    ack = obp.decode_reply(obp.encode_reply(obp.decode_request(SET_ITIME_100MS)))
    assert ack.flags == obp.FLAG_RESPONSE_TO_REQUEST | obp.FLAG_ACK and ack.data == b""


def test_frames_split_from_a_stream():
    frames = [obp.encode_request(t) for t in (obp.GET_SERIAL_LENGTH, obp.GET_SERIAL)]
    frames.append(obp.encode_reply(obp.Message(obp.GET_RAW_SPECTRUM_NOW_HDX), bytes(4136)))
    stream, buffer, out = b"".join(frames), obp.FrameBuffer(), []
    for i in range(0, len(stream), 7):
        buffer.feed(stream[i : i + 7])
        out.extend(buffer.frames())
    assert out == frames and len(buffer) == 0


_GOOD = obp.encode_reply(obp.Message(obp.GET_RAW_SPECTRUM_NOW_HDX), bytes(range(40)))


@pytest.mark.parametrize(
    "bad, field, said",
    [
        (_GOOD[:30], "header", "expected 44 bytes, got 30 bytes"),
        (b"\xc1\xc1" + _GOOD[2:], "start bytes", "expected 0xC0C1, got 0xC1C1"),
        (_GOOD[:2] + b"\x00\x20" + _GOOD[4:], "protocol version", "expected 0x1100, got 0x2000"),
        (_GOOD[:-4] + b"\xc5\xc4\xc3\x00", "footer", "expected 0xC2C3C4C5, got 0x00C3C4C5"),
        (_GOOD + b"\x00", "message length", "expected 104 bytes (header + bytes remaining), got 105"),
        (_GOOD[:-1], "message length", "expected 104 bytes (header + bytes remaining), got 103"),
        (_GOOD[:50] + b"\xff" + _GOOD[51:], "checksum", "expected MD5"),
    ],
)
def test_malformed_input_names_what_is_wrong(bad, field, said):
    with pytest.raises(ObpError) as caught:
        obp.decode_reply(bad)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"OBP {field}: ") and said in str(caught.value)


def test_requests_and_replies_are_told_apart():
    with pytest.raises(ObpError, match="OBP flags: expected a request"):
        obp.decode_request(_GOOD)
    with pytest.raises(ObpError, match="OBP flags: expected a reply"):
        obp.decode_reply(SET_ITIME_100MS)
    with pytest.raises(ObpError, match="OBP message type: expected GET_SERIAL, got GET_RAW_SPECTRUM_NOW_HDX"):
        obp.decode_reply(_GOOD, expected_type=obp.GET_SERIAL)
    short = obp.decode_request(obp.encode_request(obp.SET_ITIME_USEC, b"\x01\x02"))
    with pytest.raises(ObpError, match="OBP SET_ITIME_USEC data: expected 4 bytes, got 2 bytes") as caught:
        obp.request_values(short)
    assert caught.value.code == obp.ERR_PAYLOAD_LENGTH


def _exchange(sock: socket.socket, request: bytes) -> obp.Message:
    sock.sendall(request)
    header = _recv(sock, obp.HEADER_SIZE)
    return obp.decode_reply(header + _recv(sock, obp.frame_length(header) - obp.HEADER_SIZE))


def _recv(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, "the simulator closed the connection"
        data += chunk
    return data


def test_simulator_answers_errors_with_the_obp_error_field(hdx):
    with socket.create_connection(("127.0.0.1", _port(hdx)), timeout=5) as sock:
        unknown = _exchange(sock, obp.encode_request(0x00BADBAD))
        assert (unknown.nack, unknown.error_name, unknown.message_type) == (True, "UNKNOWN_MESSAGE_TYPE", 0x00BADBAD)
        short = _exchange(sock, obp.encode_request(obp.SET_ITIME_USEC, b"\x01\x02", request_ack=True))
        assert short.error_name == "PAYLOAD_LENGTH_MISMATCH"
        too_short = _exchange(sock, obp.encode_request(obp.SET_ITIME_USEC, struct.pack("<L", 100), request_ack=True))
        assert too_short.error_name == "PAYLOAD_DATA_INVALID"
        corrupt = bytearray(obp.encode_request(obp.GET_SERIAL, md5=True))
        corrupt[-5] ^= 0xFF  # the last byte of the MD5
        assert _exchange(sock, bytes(corrupt)).error_name == "BAD_CHECKSUM"
        # a command that asks for no ACK gets no reply: the next reply is the next query's
        sock.sendall(obp.encode_request(obp.SET_ITIME_USEC, struct.pack("<L", 50_000)))
        length = _exchange(sock, obp.encode_request(obp.GET_SERIAL_LENGTH))
        assert (length.name, length.data) == ("GET_SERIAL_LENGTH", b"\x08")
        assert _exchange(sock, b"\xde\xad" + bytes(62)).error_name == "INVALID_PROTOCOL"
        pid = _exchange(sock, obp.encode_request(obp.GET_PID))  # the link still works after it
        assert struct.unpack("<H", pid.data) == (0x2003,)


def test_counts_saturate_at_65535():
    firmware = OceanHdxFirmware(build_sim_lab().cell, SimClock(speed=1e6))
    firmware.physics.spectrum = lambda exposure_s: np.array([1e6, 65535.4, -5.0, 12.4])
    reply = obp.decode_reply(firmware.handle(obp.Message(obp.GET_RAW_SPECTRUM_NOW_HDX)))
    assert np.frombuffer(reply.data, "<u2").tolist() == [65535, 65535, 0, 12]


# ---- (d) loopback only --------------------------------------------------------------------------
def _listening(pid: int, port: int) -> list[tuple[str, int]]:
    return [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    ]


def test_listens_on_loopback_only(hdx):
    assert hdx.startswith("127.0.0.1:")
    assert _listening(psutil.Process().pid, _port(hdx)) == [("127.0.0.1", _port(hdx))]


# ---- (e) failures are OceanHdxError naming the instrument ---------------------------------------
def test_stopped_server_is_an_error_naming_the_instrument(lab):
    server = OceanHdxServer(lab.cell, lab.clock)
    address = server.start()
    spec = OceanHdxClient(address, name="hdx-1").open()
    assert spec.intensities().shape == (2068,)
    server.stop()
    with pytest.raises(OceanHdxError, match=f"hdx-1 at {address} failed to read a spectrum: connection lost"):
        spec.intensities()
    assert not spec.connected
    spec.close()
    spec.close()  # idempotent
    with pytest.raises(OceanHdxError, match=f"hdx-1 at {address}: not connected"):
        spec.wavelengths_nm()
    with pytest.raises(OceanHdxError, match=f"hdx-1: no HDX answering at {address}: .*Connection refused"):
        OceanHdxClient(address, name="hdx-1").open()
    assert ("127.0.0.1", _port(address)) not in IPv4Transport.devices_ip_port


def test_another_device_is_an_error(lab):
    with OceanHdxServer(lab.cell, lab.clock, product_id=0x1234) as server:
        with pytest.raises(
            OceanHdxError, match=r"hdx-2 at .* is not an HDX: USB product id expected 0x2003, got 0x1234"
        ):
            OceanHdxClient(server.address, name="hdx-2").open()


def test_a_stuck_readout_is_an_error_not_a_spectrum(lab):
    """A readout that repeats its last spectrum (the fault matrix's ``stuck``): the repeat is an
    error naming the instrument, never a second spectrum; a flat one (no noise to tell by) is not."""
    with OceanHdxServer(lab.cell, lab.clock) as server:
        firmware = server.firmware
        frozen = np.arange(2068, dtype=float) % 500
        firmware.physics.spectrum = lambda exposure_s, *a: frozen
        with OceanHdxClient(server.address, name="hdx-4") as spec:
            spec.set_integration_time_us(10_000)
            assert np.array_equal(spec.intensities(), frozen)
            with pytest.raises(OceanHdxError, match=f"hdx-4 at {server.address} returned the same spectrum .*stuck"):
                spec.intensities()
            firmware.physics.spectrum = lambda exposure_s, *a: np.zeros(2068)
            spec.intensities()
            assert not spec.intensities().any()  # a dark without counts may repeat


def _fake_instrument(answer):
    """A TCP peer on loopback that answers every 64 bytes it gets with ``answer(request)``."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            while True:
                try:
                    request = _recv(conn, 64)
                except (AssertionError, OSError):
                    return
                reply = answer(request)
                if reply:
                    conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    return listener, f"127.0.0.1:{listener.getsockname()[1]}"


def _bad_md5(request: bytes) -> bytes:
    frame = bytearray(obp.encode_reply(obp.decode_request(request), b"\x08"))
    frame[-5] ^= 0xFF  # the last byte of the MD5
    return bytes(frame)


@pytest.mark.parametrize(
    "answer, said",
    [
        (lambda request: None, "no answer within the timeout"),
        (_bad_md5, "bad checksum"),
        (lambda request: b"\xde\xad" + bytes(62), "Header start_bytes wrong"),
        (lambda request: request[:-4] + b"\x00\x00\x00\x00", "malformed reply"),
        (lambda request: request[:10], "no answer within the timeout"),
    ],
    ids=["silent", "bad-md5", "bad-start", "bad-footer", "truncated"],
)
def test_a_peer_that_is_no_hdx_is_an_error(answer, said):
    listener, address = _fake_instrument(answer)
    try:
        start = time.monotonic()
        with pytest.raises(OceanHdxError, match=f"hdx-3: no HDX answering at {address}: .*{said}"):
            OceanHdxClient(address, name="hdx-3", timeout_s=0.3).open()
        assert time.monotonic() - start < 5
    finally:
        listener.close()


# ---- (f) `operando sim serve ocean-hdx` ---------------------------------------------------------
def test_cli_serves_seabreeze(reference):
    cmd = [sys.executable, "-m", "operando.acquisition.cli", "sim", "serve", "ocean-hdx", "--port", "0"]
    proc = subprocess.Popen([*cmd, "--speed", "100", "--soc", "0.5"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Serving ocean-hdx on 127.0.0.1:"), line
        port = _port(line.split()[-1])
        assert _listening(proc.pid, port) == [("127.0.0.1", port)]
        spec = _seabreeze_spectrometer(port)
        try:
            spec.integration_time_micros(5_000_000)
            counts = spec.intensities()
            wl = spec.wavelengths()
        finally:
            spec.close()
            IPv4Transport.devices_ip_port.pop(("127.0.0.1", port), None)
        np.testing.assert_allclose(wl, reference.wavelength_nm, atol=1e-3)
        assert counts.shape == (2068,) and counts.max() > 1000
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_registered_for_sim_serve():
    sim = wire_simulators()[("raman", "ocean_hdx")]
    assert (sim.command, sim.main, sim.virtual_clock) == ("ocean-hdx", ocean_hdx_server.main, False)
