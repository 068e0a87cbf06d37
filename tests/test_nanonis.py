"""The Nanonis TCP interface: the simulator against two third-party clients (SPECS' nanonis_spm
and nanonisTCP, unmodified) and the project's driver; the driver's bytes on the wire; its errors
for a garbled header, a wrong body size, the controller's error and a timeout, each naming the
command; `operando sim serve nanonis` on loopback."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time

import nanonis_spm
import numpy as np
import psutil
import pytest
from nanonisTCP import nanonisTCP
from nanonisTCP.Bias import Bias
from nanonisTCP.Scan import Scan

from operando.devices.drivers.nanonis import (
    NanonisClient,
    NanonisError,
    NanonisTimeout,
    ScanFrame,
)
from operando.devices.drivers.nanonis_protocol import NanonisProtocolError, encode_header, error_section
from operando.sim_devices.lab import build_sim_lab
from operando.sim_devices.wire import nanonis_server
from operando.sim_devices.wire.nanonis_firmware import BIAS, SIGNALS, Z
from operando.sim_devices.wire.nanonis_server import NanonisServer
from operando.sim_devices.wire.registry import wire_simulators

SPEED = 200.0  # simulated s per wall s: a 16-line map at 0.1 s per line takes 8 ms


@pytest.fixture
def lab():
    return build_sim_lab("fe_li2o", 1e-3, speed=SPEED, soc=0.5, seed=3)


@pytest.fixture
def served(lab):
    with NanonisServer(lab.skpm, lab.clock) as server:
        yield server


def _host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def _step(cpd: np.ndarray, x: np.ndarray, interface_x: float = 0.0) -> float:
    """CPD far right minus far left of the interface, averaged over the lines."""
    profile = np.nanmean(cpd, axis=0)
    return float(profile[x > interface_x + 50e-9].mean() - profile[x < interface_x - 50e-9].mean())


# ---- (a) SPECS' nanonis_spm, unmodified ------------------------------------------------------------
def test_specs_client_sets_bias_kelvin_and_scan_and_grabs_the_cpd_map(lab, served):
    host, port = _host_port(served.address)
    conn = socket.create_connection((host, port))
    n = nanonis_spm.Nanonis(conn)
    try:
        no_error = lambda reply: reply[0] == ""  # its replies: [error text, raw body, values]
        assert no_error(n.Bias_Set(0.25)) and n.Bias_Get()[2] == [0.25]
        assert no_error(n.KelvinCtrl_SetpntSet(0.0))
        assert no_error(n.KelvinCtrl_GainSet(2.0, 0.01, 1))
        assert n.KelvinCtrl_GainGet()[2] == pytest.approx([2.0, 0.01, 1])
        assert no_error(n.KelvinCtrl_ModParamsSet(70e3, 0.5, 10.0))
        assert n.KelvinCtrl_ModParamsGet()[2] == pytest.approx([70e3, 0.5, 10.0])
        assert no_error(n.KelvinCtrl_BiasLimitsSet(3.0, -3.0))
        assert no_error(n.KelvinCtrl_CtrlOnOffSet(1)) and n.KelvinCtrl_CtrlOnOffGet()[2] == [1]
        assert no_error(n.Scan_FrameSet(0.0, 0.0, 200e-9, 100e-9, 0.0))
        assert n.Scan_FrameGet()[2] == pytest.approx([0.0, 0.0, 200e-9, 100e-9, 0.0])
        assert no_error(n.Scan_BufferSet([Z, BIAS], 64, 16))
        assert n.Scan_BufferGet()[2][2:] == [64, 16]
        assert no_error(n.Scan_SpeedSet(0, 0, 0.05, 0.05, 2, 1.0))
        assert no_error(n.Scan_Action(0, 1))
        timed_out, _, path = n.Scan_WaitEndOfScan(20000)[2]
        assert timed_out == 0 and path == ""
        _, name, rows, cols, cpd, up = n.Scan_FrameDataGrab(BIAS, 1)[2]
        assert (name, rows, cols, up) == ("Bias (V)", 16, 64, 1)
        # the Kelvin controller nulls the CPD: the bias map steps by the built-in potential
        x = np.linspace(-100e-9, 100e-9, 64)
        assert _step(np.asarray(cpd, float), x) == pytest.approx(lab.skpm.built_in_potential_V(), rel=0.05)
        # the controller's error, as SPECS' client reports it (the error text, no exception)
        assert "not acquired" in n.Scan_FrameDataGrab(5, 1)[0]
    finally:
        conn.close()


# ---- (b) nanonisTCP, unmodified (its Bias and Scan modules; KelvinCtrl through its own framing) ---
def test_nanonistcp_client_sets_bias_kelvin_and_scan_and_grabs_frames(lab, served):
    host, port = _host_port(served.address)
    client = nanonisTCP(host, port, max_buf_size=1 << 20)
    try:
        bias = Bias(client)
        bias.Set(-0.4)
        assert bias.Get() == pytest.approx(-0.4)
        # nanonisTCP has no KelvinCtrl module: its documented header/body helpers send it
        message = client.make_header("KelvinCtrl.CtrlOnOffSet", body_size=4) + client.to_hex(1, 4)
        client.send_command(message)
        client.receive_response(0)  # checks the error section
        client.send_command(client.make_header("KelvinCtrl.CtrlOnOffGet", body_size=0))
        assert client.hex_to_uint32(client.receive_response(4)[0:4]) == 1
        scan = Scan(client)
        scan.FrameSet(0, 0, 200e-9, 200e-9)
        scan.BufferSet([Z, BIAS], 32, 8)
        assert scan.BufferGet() == [2, [Z, BIAS], 32, 8]
        scan.Action("start", "up")
        assert scan.WaitEndOfScan(20000)[0] is False
        name, topography, up = scan.FrameDataGrab(Z, 1)
        assert name == "Z (m)" and topography.shape == (8, 32) and up == "up"
        assert np.isfinite(topography).all() and 5e-9 < np.ptp(topography) < 30e-9  # the 8 nm step, rough
    finally:
        client.close_connection()


# ---- (c) the project's driver ------------------------------------------------------------------------
def test_driver_scans_a_frame_and_reads_both_channels(lab, served):
    with NanonisClient.from_address(served.address, name="skpm") as c:
        assert c.signals_names_get() == SIGNALS
        c.kelvin_bias_limits_set(2.0, -2.0)
        c.kelvin_on_off_set(True)
        c.scan_frame_set(ScanFrame(0.0, 0.0, 200e-9, 200e-9, 0.0))
        c.scan_buffer_set([Z, BIAS], 40, 6)  # pixels coerced up to a multiple of 16
        assert c.scan_buffer_get().pixels == 48
        c.scan_speed_set(0.05, 0.05)
        c.scan_action("start")
        assert c.scan_wait_end_of_scan(20) == (False, "")
        cpd = c.scan_frame_data_grab(BIAS)
        assert cpd.channel == "Bias (V)" and cpd.data.shape == (6, 48) and np.isfinite(cpd.data).all()
        x = np.linspace(-100e-9, 100e-9, 48)
        assert _step(cpd.data, x) == pytest.approx(lab.skpm.built_in_potential_V(), rel=0.05)
        assert c.kelvin_amplitude_get() >= 0


def test_a_frame_grabbed_mid_scan_has_the_finished_lines_and_nan_after(lab):
    slow = build_sim_lab("fe_li2o", 1e-3, speed=2.0, soc=0.5)
    with NanonisServer(slow.skpm, slow.clock) as server, NanonisClient.from_address(server.address) as c:
        c.scan_buffer_set([Z, BIAS], 16, 20)
        c.scan_speed_set(0.1, 0.1)  # 0.2 s a line at 2x: 0.1 s of wall time, 2 s for the frame
        c.scan_action("start")
        deadline = time.monotonic() + 10
        part = c.scan_frame_data_grab(Z).data
        while not np.isfinite(part[0]).all() and time.monotonic() < deadline:  # the first line done
            time.sleep(0.02)
            part = c.scan_frame_data_grab(Z).data
        timed_out, _ = c.scan_wait_end_of_scan(0.0)
        assert timed_out and c.scan_status_get()
        done = np.isfinite(part).all(axis=1)
        assert 0 < done.sum() < 20 and not done[done.argmin() :].any()  # rows from the bottom, then NaN
        c.scan_action("stop")
        assert not c.scan_status_get()


# ---- (d) bytes on the wire ---------------------------------------------------------------------------
class ScriptedNanonis:
    """One connection, answered from a script: each request must be the expected bytes; the reply
    is sent as given (None: no reply)."""

    def __init__(self, script: list[tuple[bytes, bytes | None]]):
        self.script, self.received, self.mismatch = script, [], None
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        conn, _ = self.listener.accept()
        try:
            self._answer(conn)
        except OSError:
            pass  # the client closed first (it gave up on a bad reply)
        finally:
            conn.close()

    def _answer(self, conn):
        for expected, reply in self.script:
            got = b""
            while len(got) < len(expected):
                chunk = conn.recv(len(expected) - len(got))
                if not chunk:
                    return
                got += chunk
            self.received.append(got)
            if got != expected:
                self.mismatch = (expected, got)
                return
            if reply is not None:
                conn.sendall(reply)
        conn.recv(1)  # hold the connection until the client closes


def _reply(command: str, body: bytes = b"", status: int = 0, text: str = "") -> bytes:
    payload = body + error_section(status, text)
    return encode_header(command, len(payload), False) + payload


def _request(command: str, body: bytes = b"") -> bytes:
    return encode_header(command, len(body), True) + body


def test_the_drivers_requests_are_byte_exact():
    frame = struct.pack(">5f", 1e-6, -2e-6, 500e-9, 250e-9, 15.0)
    script = [
        (_request("Scan.FrameSet", frame), _reply("Scan.FrameSet")),
        (
            _request("Scan.BufferSet", struct.pack(">3i", 2, 1, 2) + struct.pack(">2i", 64, 32)),
            _reply("Scan.BufferSet"),
        ),
        (_request("Scan.SpeedSet", struct.pack(">4fHf", 0, 0, 0.5, 0.25, 2, 0.5)), _reply("Scan.SpeedSet")),
        (_request("KelvinCtrl.GainSet", struct.pack(">2fH", 3.0, 0.002, 1)), _reply("KelvinCtrl.GainSet")),
        (_request("Scan.Action", struct.pack(">HI", 0, 1)), _reply("Scan.Action")),
        (
            _request("Scan.WaitEndOfScan", struct.pack(">i", 1500)),
            _reply("Scan.WaitEndOfScan", struct.pack(">II", 0, 0)),
        ),
    ]
    fake = ScriptedNanonis(script)
    with NanonisClient.from_address(fake.address) as c:
        c.scan_frame_set(ScanFrame(1e-6, -2e-6, 500e-9, 250e-9, 15.0))
        c.scan_buffer_set([1, 2], 64, 32)
        c.scan_speed_set(0.5, 0.25)
        c.kelvin_gain_set(3.0, 0.002, 1)
        c.scan_action("start", up=True)
        assert c.scan_wait_end_of_scan(1.5) == (False, "")
    assert fake.mismatch is None and len(fake.received) == len(script)
    assert fake.received[0][:40] == b"Scan.FrameSet" + b"\0" * 19 + struct.pack(">IHH", 20, 1, 0)


# ---- (e) errors, each naming the command --------------------------------------------------------------
GRAB = struct.pack(">II", 2, 1)
GOOD_GRAB_BODY = struct.pack(">i", 8) + b"Bias (V)" + struct.pack(">ii", 1, 2) + struct.pack(">2f", 0.1, 0.2)
GOOD_GRAB_BODY += struct.pack(">I", 1)


@pytest.mark.parametrize(
    "reply, error, said",
    [
        (b"\xff" * 40, NanonisProtocolError, r"Scan.FrameDataGrab: garbled command name"),
        (
            _reply("Bias.Get", struct.pack(">f", 0.0)),
            NanonisProtocolError,
            r"Scan.FrameDataGrab: the reply is for Bias.Get",
        ),
        (
            _reply("Scan.FrameDataGrab", GOOD_GRAB_BODY[:-6]),
            NanonisProtocolError,
            r"Scan.FrameDataGrab: body too short",
        ),
        (
            _reply("Scan.FrameDataGrab", GOOD_GRAB_BODY + b"\0\0\0\0"),
            NanonisProtocolError,
            r"Scan.FrameDataGrab: error section says",
        ),
        (
            _reply("Scan.FrameDataGrab", status=1, text="Invalid channel"),
            NanonisError,
            r"Scan.FrameDataGrab failed: Invalid channel",
        ),
        (None, NanonisTimeout, r"Scan.FrameDataGrab: no reply in 0.3 s"),
    ],
    ids=["garbled header", "other command", "body too short", "body too long", "controller error", "timeout"],
)
def test_a_bad_reply_is_an_error_naming_instrument_and_command(reply, error, said):
    fake = ScriptedNanonis([(_request("Scan.FrameDataGrab", GRAB), reply)])
    c = NanonisClient.from_address(fake.address, timeout_s=0.3, name="skpm-1")
    with pytest.raises(error, match=r"skpm-1 at 127\.0\.0\.1:\d+: " + said):
        c.scan_frame_data_grab(BIAS)
    c.close()


def test_the_good_reply_of_that_script_parses():
    fake = ScriptedNanonis([(_request("Scan.FrameDataGrab", GRAB), _reply("Scan.FrameDataGrab", GOOD_GRAB_BODY))])
    with NanonisClient.from_address(fake.address) as c:
        grabbed = c.scan_frame_data_grab(BIAS)
    assert grabbed.channel == "Bias (V)" and grabbed.data.tolist() == [[pytest.approx(0.1), pytest.approx(0.2)]]


def test_the_simulator_refuses_what_the_controller_would(served):
    with NanonisClient.from_address(served.address, name="skpm") as c:
        with pytest.raises(NanonisError, match=r"Scan.BufferSet failed: .*channel indexes must be 0..8"):
            c.scan_buffer_set([42], 64, 64)
        with pytest.raises(NanonisError, match=r"Scan.FrameSet failed: width and height must be > 0"):
            c.scan_frame_set(ScanFrame(0, 0, 0, 1e-7, 0))
        with pytest.raises(NanonisError, match=r"Nope.Nothing failed: unknown command Nope.Nothing"):
            c._set("Nope.Nothing")
        c.kelvin_on_off_set(True)
        with pytest.raises(NanonisError, match=r"Bias.Set failed: .*Kelvin controller is on"):
            c.bias_set(0.1)
        assert c.bias_get() != 0.1  # still the controller's, and the connection still answers


def test_a_stopped_controller_is_a_connection_error_naming_it(lab):
    server = NanonisServer(lab.skpm, lab.clock)
    address = server.start()
    c = NanonisClient.from_address(address, timeout_s=1.0, name="skpm-2")
    c.bias_get()
    server.stop()
    with pytest.raises((ConnectionError, NanonisProtocolError), match=r"skpm-2 at .*: Bias.Get"):
        c.bias_get()
    c.close()


# ---- (f) `operando sim serve nanonis`, loopback only ----------------------------------------------------
def test_cli_serves_on_loopback_only():
    cmd = [sys.executable, "-m", "operando.acquisition.cli", "sim", "serve", "nanonis", "--port", "0", "--speed", "200"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("Serving nanonis on 127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        listening = [
            (c.laddr.ip, c.laddr.port)
            for c in psutil.Process(proc.pid).net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN
        ]
        assert listening == [("127.0.0.1", port)]
        with NanonisClient("127.0.0.1", port) as c:
            assert c.signals_names_get()[Z] == "Z (m)"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_registered_for_sim_serve():
    sim = wire_simulators()[("skpm", "nanonis")]
    assert (sim.command, sim.main, sim.virtual_clock) == ("nanonis", nanonis_server.main, False)
