"""MethodSCRIPT protocol: values, reply parsing and byte-exact transcripts (PyMeasure style)."""

import math

import pytest

from operando.devices.backends.methodscript_steps import build_script
from operando.devices.drivers.methodscript import MethodScriptDriver, MethodScriptError
from operando.devices.drivers.methodscript_protocol import (
    AbortAccepted,
    DataPackage,
    EndOfScript,
    ErrorReply,
    MeasLoopEnd,
    MeasLoopStart,
    ScriptAccepted,
    UnknownLine,
    decode_value,
    encode_value,
    format_literal,
    format_variable,
    parse_package,
    parse_reply_line,
    parse_variable,
)
from operando.devices.techniques import ConstantCurrent, OpenCircuit, ScheduledStep


# ---- a tiny transcript helper: exact bytes out, scripted bytes back ---------------------------
class Transcript:
    """A fake serial port: each write must equal the next expected bytes; then its reply is
    readable. Fails on the first wrong byte."""

    def __init__(self, exchanges):
        self._exchanges = list(exchanges)
        self._rx = bytearray()
        self.closed = False

    def write(self, data: bytes) -> int:
        assert self._exchanges, f"unexpected write {data!r}"
        expected, reply = self._exchanges.pop(0)
        assert data == expected, f"wrote {data!r}, transcript expects {expected!r}"
        self._rx += reply
        return len(data)

    @property
    def in_waiting(self) -> int:
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        chunk = bytes(self._rx[:size])
        del self._rx[:size]
        return chunk

    def close(self) -> None:
        self.closed = True

    def assert_done(self) -> None:
        assert not self._exchanges, f"never written: {self._exchanges[0][0]!r}"
        assert not self._rx, f"reply never read: {bytes(self._rx)!r}"


def driver(exchanges):
    transcript = Transcript(exchanges)
    return MethodScriptDriver("/dev/ttyFAKE0", timeout_s=0.2, transport=transcript), transcript


# ---- values -------------------------------------------------------------------------------
def test_documented_package_example():
    (package,) = parse_reply_line("Pda80001F4m;ba80004D2n,10,20B")
    da, ba = package.variables
    assert (da.type, da.value, da.unit) == ("da", pytest.approx(0.5), "V")
    assert (ba.type, ba.value, ba.unit) == ("ba", pytest.approx(1.234e-6), "A")
    assert (ba.status, ba.range_code) == (0, 0x0B)
    assert (da.status, da.range_code) == (None, None)


def test_palmsens_readme_package():
    # PalmSens C example README: -4.999E-01 V, 288 = range code 0x88, status OK
    package = parse_package("Pda7F85F3Fu;ba48D503Dp,10,288")
    da, ba = package.variables
    assert da.value == pytest.approx(-0.499905)
    assert ba.value == pytest.approx(-57.847747e-6)
    assert (ba.status, ba.range_code) == (0, 0x88)


@pytest.mark.parametrize("value", [0.0, 0.5, -0.5, 1.234e-6, -4.2e-3, 3.0, 12345.678, 1e-15, -2.5e-12, 86400.0])
def test_encode_decode_round_trip(value):
    field = encode_value(value)
    assert len(field) == 8
    decoded, is_int = decode_value(field)
    assert not is_int
    # 27 bits at the finest fitting prefix: relative error below 1e-7 (or exact zero)
    assert decoded == pytest.approx(value, rel=1e-7, abs=0)


def test_encode_is_byte_exact_and_signed():
    assert encode_value(0.5) == "807A120u"  # finest prefix that holds 0.5: 500000 u
    assert encode_value(-0.5) == "7F85EE0u"
    assert encode_value(0.0) == "8000000 "
    assert encode_value(7, integer=True) == "8000007i"
    assert decode_value("8000007i") == (7.0, True)
    assert math.isnan(decode_value("     nan")[0])


def test_variable_round_trip_with_metadata():
    for token in ("ba80004D2n,10,20B", "ab807A120u", "ja8000003i", "ba48D503Dp,18,288"):
        var = parse_variable(token)
        assert parse_variable(format_variable(var)) == var
    assert format_variable(parse_variable("ba80004D2n,10,20B")) == "ba812D450p,10,20B"


@pytest.mark.parametrize(
    ("value", "literal"),
    [(0.5, "500m"), (3600, "3600"), (1000, "1k"), (-1e-4, "-100u"), (4.2, "4200m"),
     (0.1 + 0.2, "300m"), (864000, "864k"), (0, "0"), (2.5e-9, "2500p")],
)  # fmt: skip
def test_script_literals(value, literal):
    assert format_literal(value) == literal


# ---- reply stream -----------------------------------------------------------------------------
RECORDED = """e
M000A
Peb8000001 ;ab80C5C10u;ba8003E80n,10,215;ja8000001i
Peb8000002 ;ab80D1F60u;ba8003E80n,10,215;ja8000001i
*
M000B
Peb8000003 ;ab80C3500u;ja8000002i
*

"""


def test_parse_recorded_transcript():
    events = [e for line in RECORDED.split("\n")[:-1] for e in parse_reply_line(line)]
    kinds = [type(e) for e in events]
    assert kinds == [
        ScriptAccepted, MeasLoopStart, DataPackage, DataPackage, MeasLoopEnd,
        MeasLoopStart, DataPackage, MeasLoopEnd, EndOfScript,
    ]  # fmt: skip
    assert [e.technique for e in events if isinstance(e, MeasLoopStart)] == [10, 11]
    first = events[2]
    assert first.first("eb").value == 1.0
    assert first.first("ab").value == pytest.approx(0.81)
    assert first.first("ba").value == pytest.approx(16e-6)
    assert first.first("ja").value == 1 and first.first("ja").is_integer
    assert events[6].first("ba") is None  # OCP: no current


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Z!0006", ErrorReply(6, "Z", "")),
        ("e!4001: Line 3, Col 1", ErrorReply(0x4001, "e", "Line 3, Col 1")),
        ("!0028: Line 4", ErrorReply(0x28, "", "Line 4")),
        ("Z", AbortAccepted()),
        ("bogus", UnknownLine("bogus")),
    ],
)
def test_parse_special_lines(line, expected):
    assert parse_reply_line(line) == (expected,)


def test_ack_sharing_its_line():
    # one PalmSens README shows the acknowledgement and the loop start on one line
    assert parse_reply_line("eM0000") == (ScriptAccepted(), MeasLoopStart(0))


# ---- scripts, byte-exact ------------------------------------------------------------------
HEADER = (
    b"e\n"
    b"var t\nvar ewe\nvar iwe\nvar step_no\nvar tend\nvar n\nvar cut\nvar f\nvar zre\nvar zim\n"
    b"set_pgstat_chan 0\nset_range ab 4\nset_autoranging ab 100m 4\ntimer_start\n"
)
FOOTER = b"on_finished:\ncell_off\n\n"
CP_BODY = b"timer_get t\npck_start\npck_add t\npck_add ewe\npck_add iwe\npck_add step_no\npck_end\n"
OCP_BODY = b"timer_get t\npck_start\npck_add t\npck_add ewe\npck_add step_no\npck_end\n"

EXPECTED_SCRIPTS = {
    "charge to 4.2 V": (
        ConstantCurrent(current_A=1.5e-3, e_max_V=4.2, max_duration_s=7200),
        b"store_var step_no 3i ja\nset_pgstat_mode 6\nset_max_bandwidth 5850m\n"
        b"set_range db 1500u\ncell_on\nmeas_loop_cp ewe iwe 1500u 1 7200\n"
        + CP_BODY
        + b"if ewe >= 4200m\nbreakloop\nendif\nendloop\n",
    ),
    "discharge to 10 mV": (
        ConstantCurrent(current_A=-250e-6, e_min_V=0.01, e_max_V=3.0),
        b"store_var step_no 3i ja\nset_pgstat_mode 6\nset_max_bandwidth 5850m\n"
        b"set_range db 250u\ncell_on\nmeas_loop_cp ewe iwe -250u 1 864k\n"
        + CP_BODY
        + b"if ewe <= 10m\nbreakloop\nendif\nendloop\n",
    ),
    "rest": (
        OpenCircuit(duration_s=600),
        b"store_var step_no 3i ja\ncell_off\nset_pgstat_mode 3\nset_max_bandwidth 5850m\n"
        b"meas_loop_ocp ewe 1 600\n" + OCP_BODY + b"endloop\n",
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_SCRIPTS))
def test_script_for_each_technique_is_byte_exact(name):
    technique, body = EXPECTED_SCRIPTS[name]
    step = ScheduledStep(technique=technique, cycle=2, step=3)
    drv, transcript = driver([(HEADER + body + FOOTER, b"e\n")])
    drv.run_script(build_script([step]))
    assert drv.read_events(wait_s=0.1) == [ScriptAccepted()]
    transcript.assert_done()


def test_one_wrong_byte_fails_the_transcript():
    step = ScheduledStep(technique=OpenCircuit(duration_s=601), cycle=1, step=3)
    _tech, body = EXPECTED_SCRIPTS["rest"]
    drv, _transcript = driver([(HEADER + body + FOOTER, b"e\n")])
    with pytest.raises(AssertionError, match="transcript expects"):
        drv.run_script(build_script([step]))


def test_whole_sequence_is_one_script():
    steps = [
        ScheduledStep(technique=EXPECTED_SCRIPTS[n][0], cycle=2, step=3)
        for n in ("charge to 4.2 V", "rest", "discharge to 10 mV")
    ]
    lines = build_script(steps)
    assert lines.count("on_finished:") == 1 and lines.count("timer_start") == 1
    assert [ln.split()[0] for ln in lines if ln.startswith("meas_loop")] == [
        "meas_loop_cp", "meas_loop_ocp", "meas_loop_cp",
    ]  # fmt: skip


# ---- driver over transcripts ----------------------------------------------------------------
def test_identity_commands():
    drv, transcript = driver(
        [
            (b"t\n", b"tes4_hr1.3.0#Jan 01 2026\nR*\n"),
            (b"i\n", b"iES4HR0001\n"),
            (b"v\n", b"v1.8\n"),
        ]
    )
    assert drv.firmware_version() == "es4_hr1.3.0#Jan 01 2026 R"
    assert drv.serial_number() == "ES4HR0001"
    assert drv.methodscript_version() == "1.8"
    transcript.assert_done()


def test_error_names_port_and_code():
    drv, transcript = driver([(b"q\n", b"q!0003\n")])
    with pytest.raises(MethodScriptError) as info:
        drv.send_command("q")
    assert info.value.code == 0x0003 and info.value.port == "/dev/ttyFAKE0"
    assert "/dev/ttyFAKE0" in str(info.value) and "0x0003" in str(info.value)
    transcript.assert_done()


def test_abort_running_script_returns_last_events():
    drv, transcript = driver([(b"Z\n", b"Peb8000005 ;ab80C3500u;ja8000001i\nZ\n*\n\n")])
    events = drv.abort()
    assert [type(e) for e in events] == [DataPackage, AbortAccepted, MeasLoopEnd, EndOfScript]
    transcript.assert_done()


def test_abort_when_idle_is_not_an_error():
    drv, transcript = driver([(b"Z\n", b"Z!0006\n")])
    assert drv.abort() == []
    transcript.assert_done()


def test_read_packages_until_end_and_raise_on_error():
    drv, transcript = driver([(b"e\ncell_off\n\n", b"e\n" + RECORDED[2:].encode())])
    drv.run_script(["cell_off"])
    assert len(list(drv.read_packages(idle_timeout_s=0.2))) == 3
    transcript.assert_done()
    drv, _ = driver([(b"e\nbad\n\n", b"e!4001: Line 1, Col 1\n")])
    drv.run_script(["bad"])
    with pytest.raises(MethodScriptError, match="0x4001"):
        list(drv.read_packages(idle_timeout_s=0.2))
