"""The MultiVu `.dat` grammar and the tailer (devices/drivers/multivu_*), on files written here."""

from __future__ import annotations

import math
import os
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from operando.devices.drivers.multivu_datafile import DatFileError, stamp_to_epoch
from operando.devices.drivers.multivu_tail import DatTail
from operando.sim_devices.wire.mpms3_datafile import SimMultiVuDataFile, multivu_stamp

# The start of a real MPMS3 file (columns cut after the status codes; values as published with
# RinehartGroup/MagnetoPy's example data): a quoted comment row holding a comma and only two
# fields, then data rows with empty fields.
HEADER = """[Header]\r
; MPMS3 Data File (default extension .dat)\r
TITLE,\r
FILEOPENTIME,3874585280.96031,10/10/2022,5:41 pm\r
INFO,1.38,SAMPLE_MASS\r
DATATYPE,COMMENT,1\r
[Data]\r
Comment,Time Stamp (sec),Temperature (K),Magnetic Field (Oe),Moment (emu),M. Std. Err. (emu),AC Moment (emu)\r
"""
ROWS = [
    '"FC, 100",3874585281.0761\r\n',
    ",3874585365.15242,309.991149902344,99.8893203735352,0.000194550475802654,2.21782626314636E-8,\r\n",
    ",3874585367.91917,309.991394042969,99.8893203735352,0.000194550553309644,2.56827644437651E-8,\r\n",
]
BERLIN = ZoneInfo("Europe/Berlin")


def _write(path, text, mode="a"):
    with open(path, mode, newline="") as f:
        f.write(text)


def test_real_mpms3_rows_parse_with_comment_and_short_rows(tmp_path):
    dat = tmp_path / "real.dat"
    _write(dat, HEADER + "".join(ROWS), "w")
    tail = DatTail(dat, zone=UTC)
    rows = tail.poll()
    assert [r.line for r in rows] == [9, 10, 11]
    assert rows[0].comment == "FC, 100" and not rows[0].has_moment and math.isnan(rows[0].field_oe)
    assert rows[1].moment_emu == pytest.approx(1.94550475802654e-4)
    assert rows[1].moment_error_emu == pytest.approx(2.21782626314636e-8)
    assert rows[1].field_oe == pytest.approx(99.8893203735352)
    assert rows[1].temperature_k == pytest.approx(309.991149902344)
    assert math.isnan(rows[1].get("AC Moment (emu)"))
    assert tail.header.info("SAMPLE_MASS") == "1.38"
    # The stamp is the local wall time the header spells: 10/10/2022 5:41 pm.
    opened = datetime.fromtimestamp(stamp_to_epoch(tail.header.file_open_stamp, UTC), UTC)
    assert (opened.year, opened.month, opened.day, opened.hour, opened.minute) == (2022, 10, 10, 17, 41)
    assert tail.run_time(rows[2]) - tail.run_time(rows[1]) == pytest.approx(2.76675, abs=1e-4)
    assert tail.poll() == []


def test_rows_arrive_live_and_a_partial_last_line_waits(tmp_path):
    dat = tmp_path / "live.dat"
    tail = DatTail(dat)
    _write(dat, HEADER[:40], "w")  # the header half written
    assert tail.poll() == [] and tail.header is None
    _write(dat, HEADER[40:])
    assert tail.poll() == [] and tail.header is not None
    _write(dat, ROWS[1] + ROWS[2][:25])  # a row and the start of the next
    assert [r.line for r in tail.poll()] == [9]
    assert tail.poll() == []
    _write(dat, ROWS[2][25:])
    (row,) = tail.poll()
    assert row.line == 10 and row.moment_emu == pytest.approx(1.94550553309644e-4)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (",3874585370.1,310,100,abc,1e-8,\r\n", r"line 10: 'Moment \(emu\)' is 'abc', not a number"),
        (",3874585370.1,310,100,1e-4,1e-8,,,\r\n", "line 10: 9 fields, but the header has 7 columns"),
        (",,310,100,1e-4,1e-8,\r\n", r"line 10: no 'Time Stamp \(sec\)'"),
    ],
)
def test_a_malformed_row_is_an_error_naming_file_and_line(tmp_path, bad, message):
    dat = tmp_path / "bad.dat"
    _write(dat, HEADER + ROWS[1] + bad, "w")
    with pytest.raises(DatFileError, match=message) as err:
        DatTail(dat).poll()
    assert str(dat) in str(err.value)


def test_truncated_vanished_and_replaced_files_are_errors(tmp_path):
    dat = tmp_path / "run.dat"
    _write(dat, HEADER + ROWS[1], "w")
    tail = DatTail(dat)
    assert len(tail.poll()) == 1
    with open(dat, "r+b") as f:
        f.truncate(len(HEADER) + 5)
    with pytest.raises(DatFileError, match="shrank.*truncated") as err:
        tail.poll()
    assert str(dat) in str(err.value)

    _write(dat, HEADER + ROWS[1], "w")
    tail = DatTail(dat)
    tail.poll()
    os.remove(dat)
    with pytest.raises(DatFileError, match="vanished after 9 lines"):
        tail.poll()

    _write(dat, HEADER + ROWS[1], "w")
    tail = DatTail(dat)
    tail.poll()
    other = tmp_path / "new.dat"
    _write(other, HEADER + ROWS[1] + ROWS[2], "w")
    os.replace(other, dat)
    with pytest.raises(DatFileError, match="replaced by another file"):
        tail.poll()

    with pytest.raises(DatFileError, match="does not exist"):
        DatTail(tmp_path / "never.dat").poll()


def test_not_a_multivu_file(tmp_path):
    dat = tmp_path / "x.dat"
    _write(dat, "time,moment\n1,2\n", "w")
    with pytest.raises(DatFileError, match=r"line 1: expected '\[Header\]'"):
        DatTail(dat).poll()


def test_autumn_daylight_saving_hour_keeps_rows_in_order(tmp_path):
    # Europe/Berlin fell back at 2026-10-25 03:00 CEST -> 02:00 CET: 02:00-03:00 happens twice.
    start = datetime(2026, 10, 25, 0, 30, tzinfo=UTC).timestamp()  # 02:30 CEST
    instants = [start + k * 1200.0 for k in range(6)]  # every 20 min across the change
    dat = tmp_path / "dst.dat"
    sim = SimMultiVuDataFile(dat, instants[0], BERLIN)
    for t in instants:
        sim.append(t, 1.0, (300, 300, 300), (1e4, 1e4, 1e4), 1e-4, 1e-7, 4, 1)
    stamps = [multivu_stamp(t, BERLIN) for t in instants]
    assert stamps[2] < stamps[1]  # the wall clock went back an hour: the quirk being handled
    tail = DatTail(dat, zone=BERLIN)
    assert [tail.run_time(r) for r in tail.poll()] == pytest.approx(instants, abs=1e-3)


def test_spring_change_and_unix_stamps(tmp_path):
    # Europe/Berlin sprang forward at 2026-03-29 02:00 CET -> 03:00 CEST: stamps jump an hour.
    instants = [datetime(2026, 3, 29, 0, 40, tzinfo=UTC).timestamp() + k * 1200.0 for k in range(4)]
    stamps = [multivu_stamp(t, BERLIN) for t in instants]
    assert stamps[1] - stamps[0] == pytest.approx(1200.0 + 3600.0)
    assert [stamp_to_epoch(s, BERLIN) for s in stamps] == pytest.approx(instants, abs=1e-3)
    # MultiPyVu's own writer puts Unix time in the same column: taken as it is.
    assert stamp_to_epoch(1.7e9, BERLIN) == 1.7e9


def test_a_malformed_row_costs_only_itself(tmp_path):
    # Fault matrix (a garbled or cut row): the rows before it in the same read and those after it
    # are still read; the bad one fails one poll and is not read again.
    dat = tmp_path / "spoilt.dat"
    cut = ROWS[1][: len(ROWS[1]) // 2]  # half a row, then the next row runs on
    _write(dat, HEADER + ROWS[1] + cut + ROWS[2] + ROWS[1], "w")
    tail = DatTail(dat)
    with pytest.raises(DatFileError, match="line 10"):
        tail.poll()
    assert [r.line for r in tail.poll()] == [9, 11]
    assert tail.poll() == []
