"""The MethodSCRIPT backend meeting a faulty instrument or link (a fake serial port): a silent
instrument times out, an error line aborts the running script, packages read with a fault are
kept, a package before the acknowledgement is kept, a repeated (frozen) package and an unreadable
line are faults, a lost port says the instrument may still be running."""

import asyncio
import time

import pytest

from operando.devices.backends.methodscript import MethodScriptPotentiostatBackend
from operando.devices.backends.methodscript_steps import longest_gap_s
from operando.devices.drivers.methodscript import MethodScriptDriver, MethodScriptError, MethodScriptReplyError
from operando.devices.drivers.methodscript_protocol import ScriptOptions
from operando.devices.techniques import OpenCircuit, PotentiostaticEis, ScheduledStep


class FakePort:
    """Records writes; replies are pushed by the test. ``broken``: every call fails as a pty whose
    other side is gone does."""

    def __init__(self):
        self.written = bytearray()
        self.rx = bytearray()
        self.broken = False

    def write(self, data):
        if self.broken:
            raise OSError(5, "Input/output error")
        self.written += data
        return len(data)

    @property
    def in_waiting(self):
        if self.broken:
            raise OSError(5, "Input/output error")
        return len(self.rx)

    def read(self, size=1):
        if self.broken:
            raise OSError(5, "Input/output error")
        chunk = bytes(self.rx[:size])
        del self.rx[:size]
        return chunk

    def close(self):
        pass


class Clock:
    def __init__(self):
        self.t = 1000.0

    def time(self):
        return self.t


def package(t_s: float, step: int = 1) -> bytes:
    """An ocp-loop package: t (eb, seconds as ms), ewe 1.5 V (ab), step_no."""
    return f"Peb{int(t_s * 1000) + 2**27:07X}m;ab{1500 + 2**27:07X}m;ja{step + 2**27:07X}i\n".encode()


def backend(idle_timeout_s=30.0):
    port, clock = FakePort(), Clock()
    driver = MethodScriptDriver("/dev/ttyFAKE0", timeout_s=0.2, transport=port)
    b = MethodScriptPotentiostatBackend(driver, ScriptOptions(), clock.time, idle_timeout_s=idle_timeout_s, speed=100.0)
    steps = [ScheduledStep(technique=OpenCircuit(duration_s=60), cycle=0, step=1)]
    asyncio.run(b.start(steps))
    assert port.written.startswith(b"e\n") and port.written.endswith(b"\n\n")
    port.written.clear()
    return b, port, clock


def test_a_silent_instrument_times_out_then_its_script_is_aborted():
    b, port, _clock = backend(idle_timeout_s=0.2)
    asyncio.run(b.poll())  # nothing yet: not a fault
    time.sleep(0.3 + 2 * longest_gap_s(b._chunk, b.options) / b.speed)
    with pytest.raises(TimeoutError, match=r"MethodSCRIPT on /dev/ttyFAKE0: no reply for .*idle_timeout_s"):
        asyncio.run(b.poll())
    port.rx += b"Z\n*\n\n"
    asyncio.run(b.open_circuit("fault"))
    assert port.written == b"Z\n" and b.done


def test_packages_before_the_acknowledgement_are_kept():
    b, port, clock = backend()
    sent = clock.t
    clock.t += 50  # read late: the send time, not the reading, is t = 0
    port.rx += package(1.0) + package(2.0)  # the 'e' was lost on the way
    rows = asyncio.run(b.poll())
    assert list(rows["timestamp"]) == [sent + 1.0, sent + 2.0] and list(rows["Ewe"]) == [1.5, 1.5]


def test_an_acknowledgement_cut_short_merges_with_the_next_line_and_the_script_runs_on():
    b, port, _clock = backend()
    port.rx += b"e" + b"M000B\n" + package(1.0)  # "e\n" lost its LF
    assert len(asyncio.run(b.poll())["Ewe"]) == 1
    assert not b.done and b._running


def test_an_error_line_keeps_the_packages_read_with_it_and_aborts_the_script():
    b, port, _clock = backend()
    port.rx += b"e\nM000B\n" + package(1.0) + b"!4001: Line 19, Col 1\n" + package(2.0)
    assert len(asyncio.run(b.poll())["Ewe"]) == 2  # both measured packages come out first
    with pytest.raises(MethodScriptError, match="0x4001"):
        asyncio.run(b.poll())  # then the error
    port.rx += b"Z\n*\n\n"
    asyncio.run(b.open_circuit("fault"))
    assert port.written == b"Z\n"  # the script is stopped, not abandoned


def test_a_repeated_package_is_a_frozen_instrument():
    b, port, _clock = backend()
    port.rx += b"e\nM000B\n" + package(1.0) + package(2.0) + package(2.0)
    assert len(asyncio.run(b.poll())["Ewe"]) == 2  # the repeat is not stored
    with pytest.raises(MethodScriptReplyError, match="timer did not advance"):
        asyncio.run(b.poll())
    port.rx += package(2.0) + b"Z\n*\n\n"  # still frozen while it aborts: tolerated
    asyncio.run(b.open_circuit("fault"))
    assert port.written == b"Z\n" and len(asyncio.run(b.poll())["Ewe"]) == 0


def test_an_unreadable_line_is_a_fault_and_the_abort_reads_past_garbage():
    b, port, _clock = backend()
    port.rx += b"e\n" + package(1.0) + b"Peb[0265+)a^82C'020?~ja80_0=01i\n"
    assert len(asyncio.run(b.poll())["Ewe"]) == 1
    with pytest.raises(MethodScriptReplyError, match="unreadable reply line"):
        asyncio.run(b.poll())
    port.rx += b"P#$%\nZ\n*\n\n"
    asyncio.run(b.open_circuit("fault"))
    assert port.written == b"Z\n"


def test_a_lost_port_says_the_instrument_may_still_run_its_script():
    b, port, _clock = backend()
    port.broken = True
    with pytest.raises(ConnectionError, match="serial link lost .* may still be running"):
        asyncio.run(b.poll())
    with pytest.raises(ConnectionError, match="cannot send the abort"):
        asyncio.run(b.open_circuit("fault"))


def test_the_silence_allowed_grows_with_the_scripts_own_gaps():
    eis = PotentiostaticEis(f_max_Hz=1e4, f_min_Hz=0.01)
    steps = [ScheduledStep(technique=eis, cycle=0, step=1)]
    assert longest_gap_s(steps, ScriptOptions(sample_interval_s=1.0)) == pytest.approx(200.0)


def test_the_fault_relay_frames_methodscript_as_a_stream():
    from operando.sim_devices.wire.faults_methodscript import MethodScriptWireProtocol

    p = MethodScriptWireProtocol("methodscript")
    requests = bytearray(b"e\nvar t\nmeas_loop_ocp ewe 1 10\nendloop\n\nZ\n")
    script, abort = p.split(requests, replies=False)
    assert p.starts_run(script) and not p.starts_run(abort) and not p.detector
    replies = bytearray(b"e\nM000B\n" + package(1.0) + package(2.0) + b"*\n\nPeb")
    framed = p.split(replies, replies=True)
    assert framed == [b"e\n", b"M000B\n", package(1.0) + package(2.0), b"*\n", b"\n"] and replies == b"Peb"
    # stuck freezes the data packages only: markers and the end of the script pass
    assert [p.stuck_key(script) for _ in framed] == [None, None, b"packages", None, None]
    assert p.error_reply(script, b"e\n") == b"e!4001: Line 1, Col 1\n"
    assert p.error_reply(script, package(1.0)) == b"!4001: Line 2, Col 1\n"
