"""What the panels show: one run's data as growing columns, fed by documents or stored arrays.

No Qt here. Live documents (``documents.py``) and stored runs (``stored.py``) both end in the
same calls — ``set_start``, ``add_stream``, ``append`` — so every panel draws live and replayed
runs with the same code. Buffers grow by doubling, so appending a few rows to a run of millions
costs the few rows, and panels get views (no copies) of the filled part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ECHEM = "echem"


class Column:
    """A growable array of rows; each row a scalar, a spectrum or a map."""

    def __init__(self, row_shape: tuple[int, ...] = (), dtype=np.float64, capacity: int = 1024):
        self._buf = np.empty((capacity, *row_shape), dtype=dtype)
        self.n = 0

    def append(self, rows) -> None:
        rows = np.asarray(rows, dtype=self._buf.dtype)
        if rows.ndim == self._buf.ndim - 1:
            rows = rows[None]
        k = len(rows)
        if self.n + k > len(self._buf):
            grown = np.empty((max(2 * len(self._buf), self.n + k), *self._buf.shape[1:]), self._buf.dtype)
            grown[: self.n] = self._buf[: self.n]
            self._buf = grown
        self._buf[self.n : self.n + k] = rows
        self.n += k

    @property
    def values(self) -> np.ndarray:
        return self._buf[: self.n]


@dataclass
class Stream:
    """One stream of a run: its data keys (shape per row) and configuration values."""

    name: str
    data_keys: dict[str, dict]
    configuration: dict[str, object] = field(default_factory=dict)
    columns: dict[str, Column] = field(default_factory=dict)

    def __post_init__(self):
        for key, desc in self.data_keys.items():
            shape = tuple(int(s) for s in (desc.get("shape") or ()) if s is not None)
            dtype = np.float64 if desc.get("dtype") in ("number", "array", "integer", None) else object
            self.columns[key] = Column(shape, dtype)

    @property
    def rows(self) -> int:
        # Columns of a StreamDatum-fed stream fill one at a time: a row exists once all have it.
        return min((c.n for c in self.columns.values()), default=0)

    def __getitem__(self, key: str) -> np.ndarray:
        return self.columns[key].values[: self.rows]

    def key_ending(self, suffix: str) -> str | None:
        """The data key named ``<device>-<suffix>`` (or exactly ``suffix``), if any."""
        return key_ending(self.data_keys, suffix)

    def keys_of_ndim(self, ndim: int) -> list[str]:
        return [k for k, c in self.columns.items() if c.values.ndim - 1 == ndim]

    def experiment_time(self) -> np.ndarray:
        return row_times({k: self[k] for k in self.columns})


def key_ending(keys, suffix: str) -> str | None:
    for key in keys:
        if key == suffix or key.endswith("-" + suffix):
            return key
    return None


def row_times(columns: dict[str, np.ndarray]) -> np.ndarray:
    """Experiment-clock time of each row: mid-exposure when the device says, else its timestamp.

    Event ``time`` is wall time, which a simulated clock outruns: it is only the last resort.
    """
    start, end = key_ending(columns, "exposure_start"), key_ending(columns, "exposure_end")
    if start and end:
        return 0.5 * (np.asarray(columns[start], float) + np.asarray(columns[end], float))
    # A device's own experiment-clock time (``impedance-timestamp``) before the event's wall time.
    stamp = key_ending(columns, "timestamp")
    for key in (stamp, "time"):
        if key and key in columns:
            return np.asarray(columns[key], float)
    n = len(next(iter(columns.values()), ()))
    return np.arange(n, dtype=float)


class RunData:
    """Everything the panels read: start metadata, streams, progress, a time cursor."""

    def __init__(self):
        self.start: dict = {}
        self.stop: dict | None = None
        self.streams: dict[str, Stream] = {}
        self.version = 0  # bumped on every change, so panels redraw only when needed
        self.cursor: float | None = None  # experiment time chosen by the scrubber; None = latest

    # -- feeding -----------------------------------------------------------------------------
    def set_start(self, start: dict) -> None:
        self.start = dict(start)
        self.version += 1

    def set_stop(self, stop: dict) -> None:
        self.stop = dict(stop)
        self.version += 1

    def add_stream(self, name: str, data_keys: dict, configuration: dict | None = None) -> Stream:
        keys = dict(data_keys)
        if name != ECHEM:
            keys.setdefault("time", {"dtype": "number", "shape": []})  # event time, always present
        stream = Stream(name, keys, dict(configuration or {}))
        self.streams[name] = stream
        self.version += 1
        return stream

    def append(self, name: str, data: dict[str, np.ndarray]) -> None:
        """Rows for some or all columns of stream ``name`` (unknown keys are ignored)."""
        stream = self.streams[name]
        for key, rows in data.items():
            if key in stream.columns:
                stream.columns[key].append(rows)
        self.version += 1

    # -- reading -----------------------------------------------------------------------------
    @property
    def echem(self) -> Stream | None:
        return self.streams.get(self.start.get("echem_stream", ECHEM))

    @property
    def active_mass_g(self) -> float | None:
        sample = self.start.get("sample") or {}
        mass = sample.get("active_mass_g") if isinstance(sample, dict) else None
        return float(mass) if mass else None

    def t0(self) -> float | None:
        """Experiment time of the first echem sample: the zero of every time axis."""
        e = self.echem
        if e is not None and e.rows:
            return float(e["timestamp"][0])
        times = [s.experiment_time()[0] for s in self.streams.values() if s.rows and s.name != ECHEM]
        return float(min(times)) if times else None

    def t_end(self) -> float | None:
        ends = [float(s.experiment_time()[-1]) for s in self.streams.values() if s.rows]
        return max(ends) if ends else None

    def at(self) -> float | None:
        """The experiment time panels show: the cursor, else the latest."""
        return self.cursor if self.cursor is not None else self.t_end()

    def detector_streams(self) -> list[Stream]:
        return [s for name, s in self.streams.items() if s is not self.echem]

    def row_at(self, stream: Stream, t: float | None) -> int | None:
        """Index of the last row of ``stream`` acquired at or before ``t`` (None: nothing yet)."""
        if not stream.rows:
            return None
        if t is None:
            return stream.rows - 1
        i = int(np.searchsorted(stream.experiment_time(), t, side="right")) - 1
        return i if i >= 0 else None
