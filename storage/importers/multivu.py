"""Quantum Design MultiVu .dat files (MPMS3 VSM), into a ``magnetometer`` stream.

A .dat file is a ``[Header]`` section, then ``[Data]``: one CSV header line and CSV rows (empty
cells where a quantity was not measured). Filled from it: ``magnetometer-moment`` (emu),
``-field`` (T, from Oe), ``-temperature`` (K), ``-timestamp`` (s, "Time Stamp (sec)"); every
numeric column is kept under its own header. Empty cells become NaN; every row is kept.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import numpy as np

from .tables import ImportedTable, safe_key

_UNITS = re.compile(r"\(([^)]*)\)\s*$")
_WANTED = {
    "Time Stamp (sec)": ("magnetometer-timestamp", "s", 1.0),
    "Temperature (K)": ("magnetometer-temperature", "K", 1.0),
    "Magnetic Field (Oe)": ("magnetometer-field", "T", 1e-4),
    "Moment (emu)": ("magnetometer-moment", "emu", 1.0),
}


def read_multivu(path: Path) -> ImportedTable:
    from . import ImportFormatError

    path = Path(path)
    text = path.read_text(encoding="latin-1")
    marker = text.find("[Data]")
    if not text.lstrip().startswith("[Header]") or marker < 0:
        raise ImportFormatError(f"{path}: not a MultiVu .dat file (no [Header]/[Data] sections)")
    header_lines = text[:marker].splitlines()[1:]
    try:
        rows = list(csv.reader(io.StringIO(text[marker + len("[Data]") :].lstrip("\r\n"))))
    except csv.Error as exc:  # e.g. a CR alone inside a row, a field beyond csv's size limit
        raise ImportFormatError(f"{path}: [Data] section is not comma-separated rows ({exc})") from None
    if not rows:
        raise ImportFormatError(f"{path}: [Data] section has no column header")
    names, body = rows[0], [r for r in rows[1:] if r]
    if "Time Stamp (sec)" not in names:
        raise ImportFormatError(f"{path}: column 'Time Stamp (sec)' missing (have {names})")

    def column(i: int) -> np.ndarray | None:
        out = np.full(len(body), np.nan)
        for j, r in enumerate(body):
            cell = r[i].strip() if i < len(r) else ""
            if cell:
                try:
                    out[j] = float(cell)
                except ValueError:
                    return None  # a text column (e.g. Comment): kept in the header metadata only
        return out

    columns: dict[str, tuple[str, np.ndarray]] = {}
    for i, name in enumerate(names):
        values = column(i)
        if values is None:
            continue
        if name in _WANTED:
            key, units, scale = _WANTED[name]
            columns[key] = (units, values * scale)
        m = _UNITS.search(name)
        columns["multivu_" + safe_key(name)] = (m.group(1) if m else "", values)
    missing = [k for k in ("magnetometer-moment",) if k not in columns]
    if missing:
        raise ImportFormatError(f"{path}: column 'Moment (emu)' missing (have {names})")
    if "magnetometer-timestamp" not in columns:
        raise ImportFormatError(f"{path}: column 'Time Stamp (sec)' holds something that is not a number")
    stamps = columns["magnetometer-timestamp"][1]
    start = float(np.nanmin(stamps)) if np.isfinite(stamps).any() else path.stat().st_mtime
    md = {"multivu_header": [ln for ln in header_lines if ln.strip()][:200]}
    return ImportedTable(path, "multivu", "magnetometer", start, columns, md)
