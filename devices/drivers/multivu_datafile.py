"""MultiVu `.dat` data files (Quantum Design MPMS3, PPMS, DynaCool): the grammar, without I/O.

What a file looks like (from real MPMS3 files published with open-source analysis code, and
QD's own ``MultiPyVu.MultiVuDataFile`` writer; see docs/drivers.md):

    [Header]
    ; MPMS3 Data File (default extension .dat)
    TITLE,
    FILEOPENTIME,3874585280.96031,10/10/2022,5:41 pm
    INFO,1.38,SAMPLE_MASS
    DATATYPE,COMMENT,1
    ...
    [Data]
    Comment,Time Stamp (sec),Temperature (K),Magnetic Field (Oe),Moment (emu),M. Std. Err. (emu),...
    "FC, 100",3874585281.0761
    ,3874585365.15242,309.991149902344,99.8893203735352,0.000194550475802654,2.21782626314636E-8,...

- Header lines are ``KEY,value,...``; ``;`` starts a comment line. The column line follows
  ``[Data]`` (names may be quoted). Lines end in CRLF or LF.
- A data row is comma-separated; only the Comment field is ever quoted (it may hold commas),
  and a row may stop early: a comment row carries only the comment and the time stamp, so the
  missing fields are empty. Empty fields are values not measured (NaN here).
- **Time Stamp (sec)** written by MultiVu is the PC's *local wall-clock time* counted in seconds
  from 1899-12-30 00:00 (the OLE/Excel date epoch): 3874585280.96 is 2022-10-10 17:41:20, the
  local time the header spells out. It is not UTC, so it jumps by an hour at daylight-saving
  changes (and repeats an hour in autumn). MultiPyVu's own writer stores Unix time (UTC) in the
  same column instead. ``stamp_to_epoch`` tells the two apart by size.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Optional

TIME_COLUMN = "Time Stamp (sec)"
COMMENT_COLUMN = "Comment"
TEMPERATURE_COLUMN = "Temperature (K)"
FIELD_COLUMN = "Magnetic Field (Oe)"
MOMENT_COLUMN = "Moment (emu)"
MOMENT_ERROR_COLUMN = "M. Std. Err. (emu)"
TEMPERATURE_STATUS_COLUMN = "Temp. Status (code)"
FIELD_STATUS_COLUMN = "Field Status (code)"
# MultiVu's state codes (as MultiPyVu's CommandField / CommandTemperature tables number them) that
# mean the system failed while measuring: Current / Switch / Charging / PSU Error, Quenching and
# General Failure for the magnet; Impedance Control Error and General Failure for the temperature.
FIELD_FAILURE_CODES = {9: "Current Error", 10: "Switch Error", 11: "Quenching", 12: "Charging Error"}
FIELD_FAILURE_CODES |= {14: "PSU Error", 15: "General Failure"}
TEMPERATURE_FAILURE_CODES = {14: "Impedance Control Error", 15: "General Failure"}

OLE_EPOCH = datetime(1899, 12, 30)
# Seconds from 1899-12-30 to 1970-01-01; a local-wall-clock stamp of any date after ~1995 is
# above 3e9, a Unix stamp below 3e9 until the year 2065.
OLE_TO_UNIX_S = 2209161600.0
LOCAL_STAMP_THRESHOLD = 3.0e9
# The latest stamp read as a date (year 9000; Python's dates end with 9999): beyond it, a stamp is
# garbage, not a time
MAX_STAMP = (datetime(9000, 1, 1) - OLE_EPOCH).total_seconds()


class DatFileError(ValueError):
    """A data file that cannot be read as MultiVu writes it: names the file, and the line."""


@dataclass(frozen=True)
class DatHeader:
    entries: list[tuple[str, list[str]]]  # (KEY, values) in file order; comments left out
    columns: list[str]
    data_line: int  # 1-based line number of the column line; rows follow it

    def first(self, key: str) -> Optional[list[str]]:
        for k, values in self.entries:
            if k == key:
                return values
        return None

    def info(self, name: str) -> Optional[str]:
        """``INFO,<value>,<NAME>`` entries, e.g. SAMPLE_MASS, APPNAME."""
        for k, values in self.entries:
            if k == "INFO" and values and values[-1].strip() == name:
                return ",".join(values[:-1]).strip()
        return None

    @property
    def file_open_stamp(self) -> Optional[float]:
        values = self.first("FILEOPENTIME")
        try:
            return float(values[0]) if values else None
        except ValueError:
            return None


@dataclass(frozen=True)
class DatRow:
    line: int  # 1-based line number in the file
    comment: str
    stamp: float  # Time Stamp (sec) as written
    values: dict[str, float] = field(default_factory=dict)  # every other column; NaN if empty

    def get(self, column: str) -> float:
        return self.values.get(column, math.nan)

    @property
    def moment_emu(self) -> float:
        return self.get(MOMENT_COLUMN)

    @property
    def moment_error_emu(self) -> float:
        return self.get(MOMENT_ERROR_COLUMN)

    @property
    def field_oe(self) -> float:
        return self.get(FIELD_COLUMN)

    @property
    def temperature_k(self) -> float:
        return self.get(TEMPERATURE_COLUMN)

    @property
    def has_moment(self) -> bool:
        return not math.isnan(self.moment_emu)

    @property
    def failure(self) -> Optional[str]:
        """What MultiVu's status columns say failed during this measurement, or None."""
        for column, codes, what in (
            (FIELD_STATUS_COLUMN, FIELD_FAILURE_CODES, "field"),
            (TEMPERATURE_STATUS_COLUMN, TEMPERATURE_FAILURE_CODES, "temperature"),
        ):
            code = self.get(column)
            if math.isfinite(code) and int(code) in codes:
                return f"{what} status {int(code)} ({codes[int(code)]})"
        return None


def split_fields(text: str) -> list[str]:
    """One line's comma-separated fields (a quoted field may hold commas); csv.Error for a line
    the csv module refuses (a CR inside an unquoted field, a field beyond its size limit)."""
    return next(csv.reader([text]), [])


def _fields(text: str, where: str, number: int) -> list[str]:
    try:
        return split_fields(text)
    except csv.Error as exc:
        raise DatFileError(f"{where}, line {number}: not comma-separated fields ({exc})") from None


def parse_header(lines: list[str], where: str) -> Optional[DatHeader]:
    """The header from a file's first lines, or None while the column line is not there yet."""
    if not lines:
        return None
    if lines[0].strip() != "[Header]":
        raise DatFileError(f"{where}, line 1: expected '[Header]', found {lines[0][:40]!r}")
    entries: list[tuple[str, list[str]]] = []
    for number, text in enumerate(lines[1:], start=2):
        text = text.strip()
        if text == "[Data]":
            if number >= len(lines):
                return None  # the column line is not written yet
            columns = [c.strip() for c in _fields(lines[number], where, number + 1)]
            for needed in (COMMENT_COLUMN, TIME_COLUMN):
                if needed not in columns:
                    raise DatFileError(f"{where}, line {number + 1}: no {needed!r} column in {columns[:4]}")
            return DatHeader(entries, columns, number + 1)
        if not text or text.startswith(";"):
            continue
        key, *values = _fields(text, where, number)
        entries.append((key.strip(), [v.strip() for v in values]))
    return None


def parse_row(text: str, number: int, columns: list[str], where: str) -> DatRow:
    """One data line (without its line ending) against the header's columns."""
    fields = _fields(text, where, number)
    if len(fields) > len(columns):
        raise DatFileError(f"{where}, line {number}: {len(fields)} fields, but the header has {len(columns)} columns")
    values: dict[str, float] = {}
    comment = ""
    stamp = math.nan
    for name, raw in zip(columns, fields):
        raw = raw.strip()
        if name == COMMENT_COLUMN:
            comment = raw
            continue
        try:
            value = float(raw) if raw else math.nan
        except ValueError:
            raise DatFileError(f"{where}, line {number}: {name!r} is {raw[:30]!r}, not a number") from None
        if name == TIME_COLUMN:
            stamp = value
        else:
            values[name] = value
    for name in columns[len(fields) :]:
        if name != COMMENT_COLUMN and name != TIME_COLUMN:
            values[name] = math.nan
    if math.isnan(stamp):
        raise DatFileError(f"{where}, line {number}: no {TIME_COLUMN!r}")
    if not -MAX_STAMP <= stamp <= MAX_STAMP:
        raise DatFileError(f"{where}, line {number}: {TIME_COLUMN!r} is {stamp:g}, not a time")
    return DatRow(number, comment, stamp, values)


def is_local_stamp(stamp: float) -> bool:
    """MultiVu's local-wall-clock convention (True) or Unix time, as MultiPyVu writes (False)."""
    return stamp > LOCAL_STAMP_THRESHOLD


def local_stamp_wall_time(stamp: float) -> datetime:
    """The naive local date and time a MultiVu stamp spells."""
    return OLE_EPOCH + timedelta(seconds=stamp)


def stamp_to_epoch(stamp: float, zone: Optional[tzinfo] = None, after: float = -math.inf) -> float:
    """Unix time of a Time Stamp (sec).

    A MultiVu (local wall-clock) stamp is read in ``zone`` (None: this computer's local zone).
    In the hour repeated when daylight saving ends, one wall time is two instants: the earliest
    not before ``after`` (the previous row's time, rows being in order) is taken.
    """
    if not is_local_stamp(stamp):
        return stamp
    wall = local_stamp_wall_time(stamp)
    candidates = sorted({_epoch(wall, zone, 0), _epoch(wall, zone, 1)})
    for t in candidates:
        if t >= after - 1.0:  # 1 s of slack for stamp rounding
            return t
    return candidates[-1]


def _epoch(wall: datetime, zone: Optional[tzinfo], fold: int) -> float:
    if zone is None:
        return wall.replace(fold=fold).timestamp()  # naive: the local zone
    return wall.replace(tzinfo=zone, fold=fold).timestamp()
