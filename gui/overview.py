"""A long stored run opened at the cost of what is drawn: an echem overview, detail when asked for.

A 24 h run at 10 Hz holds 864,000 echem rows per column and a week 6 million; a plot a few hundred
pixels wide shows two values per pixel column. Opening one (``stored.open_stored``) reads:

- E, I, step and cycle once, block by block (``scan``), keeping per bucket of ``bucket`` rows the
  minimum and maximum of E and I (so every extreme stays visible: min/max envelopes, not every
  n-th point) and a **table** of rows: the first row of every bucket, the first and last row of
  every step and cycle (cycle boundaries and the charge at each step's ends are exact, so
  capacities per step and per cycle are the full data's), and the last row; the other columns
  (time, charge, ...) are read at those rows only. Capacity, dQ/dV, the time bar and replay work
  on that table (~``TABLE_ROWS`` rows);
- later, in the background (``Background``), the rows themselves: of the window the E/I panel
  is zoomed into once a bucket would span more than half a pixel (``EchemOverview.detail``), and
  of the sample at the cursor (``EchemOverview.exact``), so readings at the cursor are the
  sample's own, not the table's nearest row.

Where the columns come from (``source_for``): the HDF5 files the catalog registered for the
stream (read with h5py, as the live view reads them, ``documents.py``), when they are on this
computer; otherwise through Tiled's array slicing (a remote catalog). Through the in-process
Tiled app a request costs 30–100 ms and whole columns arrive at ~50–150 MB/s; h5py reads the same
page-cached file at gigabytes per second, which is what lets a week of 10 Hz data open in about
a second.

No Qt here.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np

log = logging.getLogger(__name__)

TABLE_ROWS = 100_000  # echem rows kept for a stored run: decimated to buckets above this
SCAN_ROWS = 1 << 20  # rows per read when scanning whole columns (bounded memory)
ENVELOPE_KEYS = ("Ewe", "I")  # drawn against time: min/max per bucket
BOUNDARY_KEYS = ("step", "cycle")  # a change of either starts a new piece of the table
TIME_KEY = "timestamp"
SUBSET_ROWS = 480  # rows of a large array key shown at first: ~one per 1-2 px of a waterfall,
SUBSET_VALUES = 1 << 19  # and at most this many values (a map of 256x256 is 65,536); half of
# them are read at open, the other half (between those) in the background just after.


# -- where the rows are -----------------------------------------------------------------------
class TiledColumns:
    """Columns of a catalog stream read through Tiled's array slicing (``node[key][a:b:step]``)."""

    def __init__(self, arrays: dict[str, object], rows: int):
        self.arrays = arrays  # key -> ArrayClient
        self.rows = rows
        self.where = "catalog (Tiled slicing)"

    def read(self, key: str, start: int = 0, stop: int | None = None, step: int = 1) -> np.ndarray:
        stop = self.rows if stop is None else stop
        if stop <= start:
            return np.asarray(self.arrays[key][0:0])
        return np.asarray(self.arrays[key][start:stop:step])

    def take(self, key: str, rows: np.ndarray, bucket: int) -> np.ndarray:
        """Values at ``rows`` (sorted; every multiple of ``bucket`` among them): a whole column
        read, as Tiled has no request for scattered rows."""
        return self.read(key)[rows]

    def close(self) -> None:
        pass


class HDF5Columns:
    """Columns stored in HDF5 files on this computer, the assets the catalog registered."""

    def __init__(self, datasets: dict[str, tuple[Path, str]], rows: int):
        import h5py

        self.rows = rows
        self.where = "HDF5 files"
        self._files: dict[Path, object] = {}
        self._datasets = {}
        for key, (path, name) in datasets.items():
            f = self._files.get(path)
            if f is None:
                f = self._files[path] = h5py.File(path, "r", swmr=True)
            self._datasets[key] = f[name]

    def read(self, key: str, start: int = 0, stop: int | None = None, step: int = 1) -> np.ndarray:
        stop = self.rows if stop is None else min(stop, self.rows)
        return self._datasets[key][start:stop:step]

    def take(self, key: str, rows: np.ndarray, bucket: int) -> np.ndarray:
        """Values at ``rows`` (sorted; every multiple of ``bucket`` among them): one strided read
        and one read of the few others, not the whole column."""
        ds = self._datasets[key]
        out = np.empty(len(rows), ds.dtype)
        on_grid = rows % bucket == 0
        out[on_grid] = ds[0 : self.rows : bucket]
        others = rows[~on_grid]
        if len(others):
            out[~on_grid] = ds[others]
        return out

    def close(self) -> None:
        for f in self._files.values():
            try:
                f.close()
            except Exception:  # already closed (interpreter exit)
                pass
        self._files.clear()


def source_for(arrays: dict[str, object], rows: int):
    """HDF5Columns when every column is a local HDF5 asset, else TiledColumns.

    ``arrays``: key -> ArrayClient fetched with its data sources (``include_data_sources``).
    """
    datasets = {}
    for key, node in arrays.items():
        try:
            (ds,) = node.data_sources()
        except Exception:  # no data sources (a server without them), or several
            return TiledColumns(arrays, rows)
        uri = ds.assets[0].data_uri if ds.assets else ""
        path = Path(unquote(urlparse(uri).path)) if uri.startswith("file:") else None
        dataset = (ds.parameters or {}).get("dataset")
        if ds.mimetype != "application/x-hdf5" or path is None or not dataset or not path.exists():
            return TiledColumns(arrays, rows)
        datasets[key] = (path, dataset)
    try:
        return HDF5Columns(datasets, rows)
    except OSError as exc:  # not readable here after all
        log.info("reading the echem stream through the catalog: %s", exc)
        return TiledColumns(arrays, rows)


# -- background reads -------------------------------------------------------------------------
class Background:
    """One worker thread for reads that must not block painting; per slot, the newest request wins.

    ``request(slot, key, fn, done)`` runs ``fn()`` on the worker unless a newer request for the
    same slot came first (a user zooming in steps asks for each step; only the last window is
    read); ``done(result)`` runs later, on the thread that calls ``deliver`` (the GUI thread,
    before it redraws), so rows never arrive while the panels draw: every panel of one refresh
    sees the same rows. One thread: Tiled's in-process catalog is not read from several.
    A daemon thread, and ``close`` waits for the read in flight: the catalog it reads may close
    next, and a request left waiting on a closed catalog would never return.
    """

    def __init__(self):
        self._jobs: queue.Queue = queue.Queue()
        self._latest: dict[str, object] = {}
        self._lock = threading.Lock()
        self._busy = 0
        self._arrived: list = []  # (done, result) read, not delivered yet
        self.closed = False
        self._thread = threading.Thread(target=self._work, name="operando-gui-read", daemon=True)
        self._thread.start()

    def request(self, slot: str, key, fn, done) -> None:
        with self._lock:
            if self.closed or self._latest.get(slot) == key:
                return
            self._latest[slot] = key
            self._busy += 1
        self._jobs.put((slot, key, fn, done))

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            slot, key, fn, done = job
            try:
                with self._lock:
                    current = self._latest.get(slot) == key and not self.closed
                if current:
                    try:
                        result = fn()
                    except Exception:
                        log.exception("background read %s %s failed", slot, key)
                        with self._lock:
                            if self._latest.get(slot) == key:
                                del self._latest[slot]  # may be asked for again
                    else:
                        with self._lock:
                            if not self.closed:
                                self._arrived.append((done, result))
            finally:
                with self._lock:
                    self._busy -= 1

    def deliver(self) -> int:
        """Hand the reads that arrived to their ``done`` callbacks, here; returns how many."""
        with self._lock:
            arrived, self._arrived = self._arrived, []
        for done, result in arrived:
            done(result)
        return len(arrived)

    @property
    def idle(self) -> bool:
        """No read queued or in flight (some may wait for ``deliver``)."""
        with self._lock:
            return self._busy == 0

    def close(self, timeout: float = 10.0) -> None:
        with self._lock:
            self.closed = True
            self._arrived = []
        self._jobs.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)


# -- the overview -----------------------------------------------------------------------------
class Rows:
    """Full-resolution rows ``[start, stop)`` of some columns (a zoom window, the cursor's rows)."""

    def __init__(self, start: int, columns: dict[str, np.ndarray]):
        self.start = start
        self.columns = columns
        self.stop = start + len(next(iter(columns.values())))

    def covers(self, start: int, stop: int) -> bool:
        return self.start <= start and stop <= self.stop


class EchemOverview:
    """Min/max of E and I per bucket of ``bucket`` rows over the whole stream, the row of the full
    stream each table row is (``rows_index``), and full-resolution rows read on demand."""

    def __init__(self, source, n: int, bucket: int, t: np.ndarray, lo: dict, hi: dict, rows_index: np.ndarray):
        self.source = source
        self.n = n
        self.bucket = bucket
        self.t = t  # time of the first row of each bucket
        self.lo, self.hi = lo, hi
        self.rows_index = rows_index
        self.background: Background | None = None
        self.version = 0  # bumped when rows read in the background arrive
        self._pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._view: Rows | None = None
        self._cursor: Rows | None = None

    @property
    def buckets(self) -> int:
        return len(self.t)

    def complete_buckets(self, upto: int) -> int:
        """Buckets all of whose rows are below full row ``upto`` (replay feeds the run in order)."""
        return self.buckets if upto >= self.n else upto // self.bucket

    def pairs(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Each bucket as two points at its first row's time: minimum, then maximum."""
        if key not in self._pairs:
            x = np.repeat(self.t, 2)
            y = np.empty(2 * self.buckets)
            y[0::2], y[1::2] = self.lo[key], self.hi[key]
            self._pairs[key] = (x, y)
        return self._pairs[key]

    def upto(self, table_rows: int) -> int:
        """Rows of the full stream up to and including the last of ``table_rows`` table rows."""
        return int(self.rows_index[table_rows - 1]) + 1 if table_rows else 0

    # -- rows on demand ------------------------------------------------------------------------
    def _read(self, keys, start: int, stop: int) -> Rows:
        return Rows(start, {k: np.asarray(self.source.read(k, start, stop)) for k in keys})

    def _arrived(self, slot: str):
        def done(rows: Rows):
            setattr(self, slot, rows)
            self.version += 1

        return done

    def detail(self, start: int, stop: int) -> Rows | None:
        """Time, E and I of rows ``[start, stop)`` if read, else None (and read them, with margins
        so that a small pan needs no new read)."""
        have = self._view
        if have is not None and have.covers(start, stop):
            return have
        if self.background is not None:
            pad = (stop - start) // 2
            a, b = max(0, start - pad), min(self.n, stop + pad)
            keys = [TIME_KEY, *[k for k in ENVELOPE_KEYS if k in self.lo]]
            self.background.request("_view", (a, b), lambda: self._read(keys, a, b), self._arrived("_view"))
        return None

    def exact(self, table_row: int, t: float, keys) -> dict | None:
        """Every key's value at the last sample at or before ``t``, whose table row (the last at or
        before ``t``) is ``table_row``: None while the rows between two table rows are read."""
        f = int(self.rows_index[table_row])
        g = int(self.rows_index[table_row + 1]) if table_row + 1 < len(self.rows_index) else self.n
        if g - f <= 1:
            return None  # the table row is the sample
        have = self._cursor
        if have is not None and have.covers(f, g):
            i = int(np.searchsorted(have.columns[TIME_KEY], t, side="right")) - 1
            i = min(max(i, f - have.start), g - 1 - have.start)
            return {k: v[i] for k, v in have.columns.items()}
        if self.background is not None:
            keys = list(keys)
            self.background.request("_cursor", (f, g), lambda: self._read(keys, f, g), self._arrived("_cursor"))
        return None


def scan(source, keys: list[str], table_rows: int = TABLE_ROWS):
    """The table and the overview of a stream: E, I, step and cycle read whole, once, block by
    block; the other columns only at the table's rows.

    Returns ``(table, overview)``; ``overview`` is None when the stream is short enough to be the
    table itself (every row kept).
    """
    n = source.rows
    bucket = max(1, math.ceil(n / table_rows))
    if bucket == 1:
        return {k: np.asarray(source.read(k)) for k in keys}, None
    env = [k for k in ENVELOPE_KEYS if k in keys]
    marks = [k for k in BOUNDARY_KEYS if k in keys]
    whole = env + marks
    nb = math.ceil(n / bucket)
    lo = {k: np.empty(nb) for k in env}
    hi = {k: np.empty(nb) for k in env}
    picked = {k: [] for k in whole}
    index = []
    chunk = bucket * max(1, SCAN_ROWS // bucket)  # whole buckets per read
    for a in range(0, n, chunk):
        z = min(n, a + chunk)
        cols = {k: np.asarray(source.read(k, a, z)) for k in whole}
        keep = np.zeros(z - a, bool)
        keep[::bucket] = True  # a is a multiple of the bucket: these are bucket starts
        keep[-1] = True  # a change across two reads keeps the row on each side
        for k in marks:
            v = cols[k]
            change = np.flatnonzero(v[1:] != v[:-1]) + 1
            keep[change] = True  # first row of the new step/cycle
            keep[change - 1] = True  # last row of the old one
        rows = np.flatnonzero(keep)
        for k in whole:
            picked[k].append(cols[k][rows])
        index.append(rows + a)
        starts = np.arange(0, z - a, bucket)
        b0 = a // bucket
        for k in env:
            y = np.asarray(cols[k], float)
            lo[k][b0 : b0 + len(starts)] = np.fmin.reduceat(y, starts)  # NaN (a gap) hides no extreme
            hi[k][b0 : b0 + len(starts)] = np.fmax.reduceat(y, starts)
    rows_index = np.concatenate(index)
    table = {k: np.concatenate(picked[k]) for k in whole}
    for k in keys:
        if k not in table:
            table[k] = np.asarray(source.take(k, rows_index, bucket))
    table = {k: table[k] for k in keys}
    t = table[TIME_KEY][rows_index % bucket == 0]
    return table, EchemOverview(source, n, bucket, t, lo, hi, rows_index)
