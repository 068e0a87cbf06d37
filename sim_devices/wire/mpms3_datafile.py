"""A simulated MultiVu VSM measurement: rows appended to a `.dat` file in MPMS3's format.

Written from real MPMS3 files (published with open-source analysis code) and QD's MultiPyVu
``MultiVuDataFile`` writer, not from operando's driver:

- ``[Header]``, ``;`` comment lines, ``KEY,value...`` lines (TITLE, FILEOPENTIME with its stamp,
  date and ``h:mm am`` time, BYAPP, INFO..., DATATYPE, STARTUPAXIS, FIELDGROUP, STARTUPGROUP),
  ``[Data]``, then the column names, then one line per measurement, every field present (so
  QD's own parser, which splits on commas and wants as many fields as columns, reads it).
- ``Time Stamp (sec)``: local wall-clock time in seconds from 1899-12-30 (what MultiVu writes),
  in ``zone`` (None: this computer's local zone); it repeats an hour when daylight saving ends.
- Guessed: the subset of MPMS3's ~90 columns written (the VSM ones up to the status codes), the
  status codes' values, the APPNAME / version strings, and LF line endings.
"""

from __future__ import annotations

import math
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Optional

OLE_EPOCH = datetime(1899, 12, 30)

COLUMNS = (
    "Comment",
    "Time Stamp (sec)",
    "Temperature (K)",
    "Magnetic Field (Oe)",
    "Moment (emu)",
    "M. Std. Err. (emu)",
    "Transport Action",
    "Averaging Time (sec)",
    "Frequency (Hz)",
    "Peak Amplitude (mm)",
    "Center Position (mm)",
    "Min. Temperature (K)",
    "Max. Temperature (K)",
    "Min. Field (Oe)",
    "Max. Field (Oe)",
    "Mass (grams)",
    "Pressure (Torr)",
    "Measure Count",
    "Measurement Number",
    "Temp. Status (code)",
    "Field Status (code)",
    "Chamber Status (code)",
)
VSM_FREQUENCY_HZ = 13.0  # MPMS3 VSM drive frequency, as in the real files
VSM_AMPLITUDE_MM = 5.0
CENTER_MM = 34.28


def multivu_stamp(epoch_s: float, zone: Optional[tzinfo] = None) -> float:
    """Unix time -> MultiVu's Time Stamp (sec): local wall time, seconds from 1899-12-30."""
    wall = datetime.fromtimestamp(epoch_s, zone)
    return (wall.replace(tzinfo=None) - OLE_EPOCH).total_seconds()


def _clock_text(wall: datetime) -> str:
    hour = wall.hour % 12 or 12
    return f"{wall.month:02d}/{wall.day:02d}/{wall.year},{hour}:{wall.minute:02d} {'pm' if wall.hour >= 12 else 'am'}"


class SimMultiVuDataFile:
    """One `.dat` file: the header when created, then ``append`` writes one complete row."""

    def __init__(self, path: str | Path, opened_at: float, zone: Optional[tzinfo] = None, mass_mg: float = 1.0):
        self.path = Path(path)
        self.zone = zone
        self.mass_mg = mass_mg
        self.count = 0
        self._write_header(opened_at)

    def _write_header(self, opened_at: float) -> None:
        wall = datetime.fromtimestamp(opened_at, self.zone)
        vsm_group = ",".join(str(i) for i in range(2, len(COLUMNS) + 1))
        lines = [
            "[Header]",
            "; MPMS3 Data File (default extension .dat)",
            "; Simulated by operando (sim_devices/wire/mpms3_datafile.py)",
            "TITLE,operando simulation",
            f"FILEOPENTIME,{multivu_stamp(opened_at, self.zone):.5f},{_clock_text(wall)}",
            "BYAPP,MPMS3,1.0,1.1",
            "INFO,operando simulated MPMS3 VSM,APPNAME",
            f"INFO,{self.mass_mg:g},SAMPLE_MASS",
            "INFO,operando simulated cell,SAMPLE_MATERIAL",
            "DATATYPE,COMMENT,1",
            "DATATYPE,TIME,2",
            "STARTUPAXIS,X,2",
            "STARTUPAXIS,Y1,5",
            f"FIELDGROUP, VSM,{vsm_group}",
            "STARTUPGROUP, All",
            "[Data]",
            ",".join(COLUMNS),
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(lines) + "\n", encoding="ascii")

    def append(
        self,
        end_time: float,
        averaging_s: float,
        temperature_k: tuple[float, float, float],  # (mean, min, max) over the averaging
        field_oe: tuple[float, float, float],
        moment_emu: float,
        moment_error_emu: float,
        field_status: int,
        temperature_status: int,
    ) -> None:
        """One VSM measurement, stamped at its end (as MultiVu does, guessed)."""
        self.count += 1
        t, t_min, t_max = temperature_k
        h, h_min, h_max = field_oe
        values = {
            "Time Stamp (sec)": multivu_stamp(end_time, self.zone),
            "Temperature (K)": t,
            "Magnetic Field (Oe)": h,
            "Moment (emu)": moment_emu,
            "M. Std. Err. (emu)": moment_error_emu,
            "Transport Action": 1,
            "Averaging Time (sec)": averaging_s,
            "Frequency (Hz)": VSM_FREQUENCY_HZ,
            "Peak Amplitude (mm)": VSM_AMPLITUDE_MM,
            "Center Position (mm)": CENTER_MM,
            "Min. Temperature (K)": t_min,
            "Max. Temperature (K)": t_max,
            "Min. Field (Oe)": h_min,
            "Max. Field (Oe)": h_max,
            "Mass (grams)": self.mass_mg / 1000.0,
            "Pressure (Torr)": 9.0,
            "Measure Count": 26,
            "Measurement Number": self.count,
            "Temp. Status (code)": temperature_status,
            "Field Status (code)": field_status,
            "Chamber Status (code)": 1,
        }
        fields = [""] + [_number(values[name]) for name in COLUMNS[1:]]
        with open(self.path, "a", encoding="ascii") as f:
            f.write(",".join(fields) + "\n")  # one write: a reader sees the row whole or partial


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return ""
    return repr(float(value))
