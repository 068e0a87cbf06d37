"""Values as text for labels and tables (no Qt): a missing value (None, NaN) reads "—", never "nan".

Readings are NaN where nothing was measured (a detector's ``trigger_instrument_time`` on
software-timed frames, a gap in an imported file) and metadata lack keys (an imported run has no
profile): every place the GUI prints a value goes through ``fmt``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

DASH = "—"


def missing(value) -> bool:
    """None, or a NaN (Python or numpy float, NaT)."""
    if value is None:
        return True
    if isinstance(value, (str, bytes)):
        return False
    try:
        return bool(np.isnan(value))
    except (TypeError, ValueError):  # not a number, or an array (not one value)
        return False


def fmt(value, spec: str = "g", units: str = "", *, dash: str = DASH) -> str:
    """``value`` as ``format(value, spec)`` followed by `` units``; ``dash`` if it is missing.

    ``spec`` ending in ``d`` accepts integers stored as floats (e.g. an echem ``cycle`` column).
    Text is shown as it is, a list as its items and a mapping as ``key=value`` pairs (each item
    formatted the same way), so metadata of any shape reads without ``None`` or ``nan``.
    """
    if missing(value):
        return dash
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str):
        text = value
    elif isinstance(value, dict):
        text = ", ".join(f"{k}={fmt(v, spec)}" for k, v in value.items())
    elif isinstance(value, (list, tuple, np.ndarray)):
        text = ", ".join(fmt(v, spec) for v in (value.ravel() if isinstance(value, np.ndarray) else value))
    elif isinstance(value, (bool, np.bool_)):
        text = str(bool(value))
    else:
        try:
            text = format(int(value) if spec.endswith("d") else value, spec)
        except (TypeError, ValueError):
            text = str(value)
    return f"{text} {units}" if units else text


def duration_text(seconds) -> str:
    """``H:MM:SS`` (days first when longer); ``—`` if unknown."""
    if missing(seconds):
        return DASH
    return str(dt.timedelta(seconds=round(float(seconds))))


def time_text(epoch) -> str:
    """Local date and time of an epoch time; ``—`` if unknown."""
    if missing(epoch):
        return DASH
    from operando.analysis.summary import format_time

    try:
        return format_time(float(epoch))
    except (TypeError, ValueError, OverflowError, OSError):
        return fmt(epoch)
