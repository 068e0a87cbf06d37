"""The simulated MPMS3 (sim_devices/wire/mpms3_server.py) against QD's own MultiPyVu client and
data-file parser, and the project's driver against it: real TCP on 127.0.0.1, a child process.

MultiPyVu's simulation moves in wall time (a 1 s pause, then the ramp): the tests wait for
states with deadlines, they never assert durations.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import MultiPyVu
import psutil
import pytest

from operando.devices.drivers.mpms3 import Mpms3Client, Mpms3Error, confined_multipyvu_logging
from operando.devices.drivers.multivu_tail import DatTail
from operando.sim_devices.wire.mpms3_server import start_process, stop_process

DEADLINE_S = 30.0


@pytest.fixture(scope="module")
def mpms3(tmp_path_factory):
    dat = tmp_path_factory.mktemp("mpms3") / "cell.dat"
    proc, address, path = start_process(dat, extra=("--period", "0.2", "--averaging", "0.1"))
    yield proc, address, path
    stop_process(proc)


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # QD's client writes QdMultiVu.log where it runs


def _until(what, predicate, deadline_s=DEADLINE_S):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"not within {deadline_s} s: {what}")


def test_qd_client_sets_and_reads_field_and_temperature(mpms3):
    _, address, _ = mpms3
    host, port = address.split(":")
    client = MultiPyVu.Client(host=host, port=int(port))  # QD's client, unmodified
    with confined_multipyvu_logging(None):
        client.open()
    try:
        client.set_field(500.0, 1000.0, client.field.approach_mode.linear)
        # MultiVu's state stays as it was during the simulated 1 s pause: wait for value and state.
        _until("field held at 500 Oe", lambda: client.get_field() == (pytest.approx(500.0), "Holding (driven)"))
        client.set_temperature(299.5, 20.0, client.temperature.approach_mode.fast_settle)
        _until("stable at 299.5 K", lambda: client.get_temperature() == (pytest.approx(299.5), "Stable"))
    finally:
        client.close_client()


def test_driver_sets_field_and_follows_the_moment_live(mpms3):
    _, address, dat = mpms3
    tail = DatTail(dat)
    tail.poll()  # skip what is already there
    with Mpms3Client(address, name="mpms3-sim") as mpms:
        mpms.set_field(10000.0, 5000.0, "linear")
        mpms.set_temperature(300.0, 20.0)
        _until("field held", lambda: mpms.get_field() == (pytest.approx(10000.0), "Holding (driven)"))
        rows = _until("a row at 1 T", lambda: [r for r in tail.poll() if r.field_oe == pytest.approx(10000.0)])
        temperature, _ = mpms.get_temperature()
    row = rows[-1]
    assert row.has_moment and row.moment_error_emu > 0
    assert row.temperature_k == pytest.approx(temperature, abs=0.5)
    # Its time stamp, read as this computer's local time, is when it was written.
    assert tail.run_time(row) == pytest.approx(time.time(), abs=DEADLINE_S)
    assert abs(row.moment_emu) > 10 * row.moment_error_emu  # 1 T: a paramagnet well above noise


def test_qd_data_file_parser_reads_the_file_while_rows_are_appended(mpms3):
    _, _, dat = mpms3

    def parsed(more_than: int):
        df = MultiPyVu.DataFile().parse_MVu_data_file(str(dat))  # QD's own parser
        return [df] if len(df) > more_than else None

    (first,) = _until("rows", lambda: parsed(0))
    assert {"Time Stamp (sec)", "Temperature (K)", "Magnetic Field (Oe)", "Moment (emu)"} <= set(first.columns)
    (later,) = _until("more rows", lambda: parsed(len(first)))
    assert later["Moment (emu)"].notna().all()
    assert list(later["Measurement Number"]) == list(range(1, len(later) + 1))


def test_listens_on_loopback_only(mpms3):
    proc, address, _ = mpms3
    listening = [
        (c.laddr.ip, c.laddr.port)
        for c in psutil.Process(proc.pid).net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]
    assert listening == [("127.0.0.1", int(address.split(":")[1]))]


def _serve_from_cli(dat: Path) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "operando.acquisition.cli", "sim", "serve", "mpms3", "--port", "0", "--dat", str(dat)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=dat.parent)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("MultiVu data file: "):
            assert line.strip().endswith(str(dat))
            address = next(x.split()[-1] for x in lines if x.startswith("Serving mpms3 on "))
            return proc, address
    raise AssertionError("".join(lines))


def test_cli_server_that_stops_answering_is_an_error_naming_the_instrument(tmp_path):
    proc, address = _serve_from_cli(tmp_path / "cli.dat")
    try:
        mpms = Mpms3Client(address, name="squid-1").open()
        assert mpms.get_field()[0] == pytest.approx(0.0, abs=1e5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        with pytest.raises(Mpms3Error, match=f"squid-1 at {address} stopped answering"):
            mpms.get_field()
        mpms.close()
        mpms.close()  # idempotent
        with pytest.raises(Mpms3Error, match=f"squid-1: no MultiPyVu server answering at {address}"):
            Mpms3Client(address, name="squid-1").open()
    finally:
        stop_process(proc)


class ScriptedMultiVu:
    """A MultiPyVu peer on loopback that answers START as QD's server does, then answers each
    later request with ``answer(request)``: a list of messages (possibly none)."""

    def __init__(self, answer):
        import socket
        import threading

        self.answer = answer
        self.server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self.server.getsockname()[1]}"
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        from MultiPyVu.__version import __version__

        from operando.sim_devices.wire.faults_mpms3 import _frame

        try:
            conn, _ = self.server.accept()
        except OSError:  # closed before a client came
            return
        buffer = bytearray()
        while not self._stop.is_set():
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            buffer += data
            while (found := _frame(buffer)) is not None:
                end, request = found
                del buffer[:end]
                if request.get("message_type") == "confirmed":
                    continue  # the client's acknowledgement
                if request["action"] == "START":
                    done = dict(request, query=f"{__version__};s", result="Connected to MPMS3 MultiVuServer at x")
                    replies = [dict(request, message_type="confirmed"), dict(done, message_type="completed")]
                else:
                    replies = self.answer(request)
                for message in replies:
                    conn.sendall(_encode(message))

    def close(self):
        self._stop.set()
        self.server.close()


def _encode(message):
    from operando.sim_devices.wire.faults_mpms3 import encode

    return encode(message)


def test_a_server_that_confirms_but_never_completes_is_an_error_within_the_deadline():
    # Fault matrix (timeout, truncated): QD's client waits for a completion without a deadline.
    peer = ScriptedMultiVu(lambda request: [dict(request, message_type="confirmed")])
    try:
        mpms = Mpms3Client(peer.address, name="squid-1", exchange_timeout_s=2.0).open()
        started = time.monotonic()
        with pytest.raises(Mpms3Error, match=f"squid-1 at {peer.address} did not answer within 2 s"):
            mpms.get_field()
        assert time.monotonic() - started < 10.0
        assert not mpms.connected  # the link is given up: the next call reconnects
    finally:
        peer.close()


def test_a_reply_qd_client_cannot_convert_is_an_error_naming_the_instrument():
    # Fault matrix (garbled): MultiPyVu 3.8.0's get_field raises UnboundLocalError on such a reply.
    def answer(request):
        done = dict(request, result="12,Oe", message_type="completed")
        return [dict(request, message_type="confirmed"), done]

    peer = ScriptedMultiVu(answer)
    try:
        mpms = Mpms3Client(peer.address, name="squid-1", exchange_timeout_s=5.0).open()
        with pytest.raises(Mpms3Error, match="squid-1 .*read the field"):
            mpms.get_field()
    finally:
        peer.close()
