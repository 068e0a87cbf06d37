"""What the panels show: one run's data as growing columns, fed by documents or stored arrays.

No Qt here. Live documents (``documents.py``) and stored runs (``stored.py``) both end in the
same calls — ``set_start``, ``add_stream``, ``append`` — so every panel draws live and replayed
runs with the same code. Buffers grow by doubling, so appending a few rows to a run of millions
costs the few rows, and panels get views (no copies) of the filled part.

A long stored run comes with less than all of its rows (``overview.py``): its echem stream is a
table of rows (every bucket's first, every step's first and last) with an ``EchemOverview``
(``RunData.overview``: min/max envelopes, rows read on demand), and an array key of a detector
stream (spectra, maps) may be a ``SampledColumn``: some rows read, others read when shown.
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


class SampledColumn:
    """An array key of a stored stream of which only some rows were read: a subset at open (what a
    waterfall a few hundred pixels wide can show), and any other row once it is shown (``get``
    asks ``fetch(i)`` for it in the background; ``version`` counts the rows that arrived)."""

    def __init__(self, n: int, row_shape: tuple[int, ...], index=(), rows=None, fetch=None):
        self.n = n  # rows the stream holds
        self.row_shape = tuple(row_shape)
        index = np.asarray(index, dtype=np.int64)
        rows = np.empty((0, *self.row_shape)) if rows is None else np.asarray(rows, float)
        self._state = (index, rows)  # replaced whole, so a reader never sees half an update
        self.fetch = fetch  # fetch(slot, rows: slice, done) reads rows in the background
        self.later: tuple[int, int, int] | None = None  # rows to read once the panels are drawn
        self.version = 0

    def add(self, index, rows) -> None:
        have, values = self._state
        index = np.asarray(index, dtype=np.int64)
        new = ~np.isin(index, have)
        merged = np.concatenate([have, index[new]])
        order = np.argsort(merged, kind="stable")
        self._state = (merged[order], np.concatenate([values, np.asarray(rows, float)[new]])[order])
        self.version += 1

    def available(self, upto: int) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers (below ``upto``) and rows read so far."""
        index, rows = self._state
        k = int(np.searchsorted(index, upto))
        return index[:k], rows[:k]

    def get(self, i: int):
        """Row ``i`` if read, else None (and it is read in the background)."""
        index, rows = self._state
        k = int(np.searchsorted(index, i))
        if k < len(index) and index[k] == i:
            return rows[k]
        if self.fetch is not None:
            self.fetch("row", slice(i, i + 1), self.add_slice(i, i + 1, 1))
        return None

    def read_later(self) -> None:
        """Read the rows kept for after opening (``later``), in the background."""
        if self.later is not None:
            self.window(*self.later, slot="fill")
            self.later = None

    def window(self, start: int, stop: int, step: int, slot: str = "window") -> None:
        """Read rows ``start:stop:step`` in the background (a zoomed waterfall)."""
        if self.fetch is not None:
            self.fetch(slot, slice(start, stop, step), self.add_slice(start, stop, step))

    def add_slice(self, start: int, stop: int, step: int):
        return lambda rows: self.add(np.arange(start, stop, step)[: len(rows)], rows)


@dataclass
class Stream:
    """One stream of a run: its data keys (shape per row) and configuration values."""

    name: str
    data_keys: dict[str, dict]
    configuration: dict[str, object] = field(default_factory=dict)
    columns: dict[str, Column] = field(default_factory=dict)
    sampled: dict[str, SampledColumn] = field(default_factory=dict)  # array keys partly read

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
        keys = [k for k, c in self.columns.items() if c.values.ndim - 1 == ndim]
        return keys + [k for k, c in self.sampled.items() if len(c.row_shape) == ndim]

    def sample(self, key: str, column: SampledColumn) -> None:
        """Key ``key`` holds only the rows ``column`` has read (a long stored run's spectra)."""
        self.columns.pop(key, None)
        self.sampled[key] = column

    def array_rows(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and values of ``key`` there are: every row, or those of a SampledColumn."""
        if key in self.sampled:
            return self.sampled[key].available(self.rows)
        values = self[key]
        return np.arange(len(values)), values

    def row_value(self, key: str, i: int):
        """Row ``i`` of ``key``; None while a SampledColumn reads it."""
        if key in self.sampled:
            return self.sampled[key].get(i)
        return self[key][i]

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
        self.overview = None  # a long stored run's EchemOverview (overview.py); None: every row

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

    def background_version(self, echem: bool = True, detectors: bool = True) -> int:
        """Counts rows read in the background since opening (zoom detail, cursor rows, spectra)."""
        n = self.overview.version if (echem and self.overview is not None) else 0
        if detectors:
            n += sum(c.version for s in self.streams.values() for c in s.sampled.values())
        return n

    def echem_upto(self) -> int:
        """Rows of the whole echem stream that the rows held stand for (decimated: more)."""
        e = self.echem
        rows = e.rows if e is not None else 0
        return self.overview.upto(rows) if self.overview is not None else rows

    def echem_at(self, t: float | None) -> tuple[int | None, dict | None]:
        """(row of ``echem``, {key: value}) of the last sample at or before ``t``.

        With an overview the values are the sample's own once the rows between two table rows
        are read (in the background), the table row's meanwhile.
        """
        e = self.echem
        i = self.row_at(e, t) if e is not None else None
        if i is None:
            return None, None
        values = None
        if self.overview is not None and t is not None:
            values = self.overview.exact(i, t, e.columns)
        return i, values if values is not None else {k: e[k][i] for k in e.columns}

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
