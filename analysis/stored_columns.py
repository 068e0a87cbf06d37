"""Columns of a stored run's streams found by name, whatever device prefixes them."""

from __future__ import annotations

from typing import Optional

import numpy as np


def find_column(stream, suffix: str, dtype=None) -> Optional[np.ndarray]:
    """The data key of ``stream`` named ``suffix`` or ending in ``-suffix`` (device prefix), read;
    None when there is none."""
    for key in stream:
        if key == suffix or key.endswith("-" + suffix):
            return np.asarray(stream[key].read(), dtype)
    return None


def raman_shift_axis(run, stream_name: str, n: int) -> Optional[np.ndarray]:
    """The Raman-shift axis (cm-1) of ``n`` pixels from the stream's configuration, or None."""
    for device in (run[stream_name].metadata.get("configuration") or {}).values():
        for key, value in (device.get("data") or {}).items():
            if key.endswith("raman_shift") and len(value) == n:
                return np.asarray(value, dtype=float)
    return None
