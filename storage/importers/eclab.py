"""BioLogic EC-Lab files (.mpr binary, .mpt text) through galvani, into an ``echem`` stream.

Our echem keys are filled from EC-Lab's columns — ``timestamp`` (acquisition start + time/s),
``Ewe`` (V), ``I`` (A, from mA), ``charge`` ((Q-Qo), mA·h), ``cycle`` (cycle number), ``step``
(Ns) — and every other column is kept too, under its own header (units from the header).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import numpy as np

from .tables import ImportedTable, safe_key

_STARTED = re.compile(rb"Acquisition started on\s*:\s*(.+?)\s*$")


def _mpt_start(comments: list[bytes]) -> float | None:
    for line in comments:
        m = _STARTED.match(line.strip())
        if m:
            text = m.group(1).decode("ascii", "replace")
            for fmt in ("%m/%d/%Y %H:%M:%S.%f", "%m/%d/%Y %H:%M:%S", "%m/%d/%y %H:%M:%S"):
                try:
                    return dt.datetime.strptime(text, fmt).timestamp()
                except ValueError:
                    pass
    return None


def _units(header: str) -> str:
    return header.rsplit("/", 1)[1] if "/" in header else ""


def read_eclab(path: Path) -> ImportedTable:
    from galvani import BioLogic

    from . import ImportFormatError

    path = Path(path)
    raw = path.read_bytes()  # a file that cannot be read fails here, as itself (OSError)
    try:
        if path.suffix.lower() == ".mpr":
            mpr = BioLogic.MPRfile(io.BytesIO(raw))
            data = mpr.data
            start = getattr(mpr, "timestamp", None)
            start = start.timestamp() if start is not None else None
        else:
            data, comments = BioLogic.MPTfile(io.BytesIO(raw))
            start = _mpt_start(comments)
    except Exception as exc:  # galvani stops at whatever a malformed file breaks first (assert, IOError, ...)
        raise ImportFormatError(f"{path}: not a readable EC-Lab file ({exc or type(exc).__name__})") from None
    data = np.atleast_1d(data)  # one row: numpy reads it as a 0-d record
    names = data.dtype.names
    missing = [c for c in ("time/s", "Ewe/V", "I/mA") if c not in names]
    if missing:
        raise ImportFormatError(f"{path}: EC-Lab columns {missing} missing (have {list(names)})")
    if start is None:
        start = path.stat().st_mtime - float(data["time/s"][-1]) if len(data) else path.stat().st_mtime
    t = np.asarray(data["time/s"], dtype=float)
    current_A = np.asarray(data["I/mA"], dtype=float) / 1000.0
    if "(Q-Qo)/mA.h" in names:
        charge = np.asarray(data["(Q-Qo)/mA.h"], dtype=float)
    elif len(t):  # integrate I dt (trapezoids), as EC-Lab does for (Q-Qo)
        charge = np.concatenate([[0.0], np.cumsum(np.diff(t) * (current_A[1:] + current_A[:-1]) / 2)]) / 3.6
    else:
        charge = np.zeros(0)
    columns = {
        "timestamp": ("s", start + t),
        "Ewe": ("V", np.asarray(data["Ewe/V"], dtype=float)),
        "I": ("A", current_A),
        "charge": ("mA*h", charge),
        "cycle": (
            "",
            np.asarray(data["cycle number"], dtype=np.int64)
            if "cycle number" in names
            else np.zeros(len(t), dtype=np.int64),
        ),
        "step": ("", np.asarray(data["Ns"], dtype=np.int64) if "Ns" in names else np.zeros(len(t), dtype=np.int64)),
    }
    for name in names:
        key = "eclab_" + safe_key(name)
        values = np.asarray(data[name])
        if values.dtype == np.bool_:
            values = values.astype(np.uint8)
        columns[key] = (_units(name), values)
    return ImportedTable(path, "eclab", "echem", start, columns, {"eclab_columns": list(names)})
