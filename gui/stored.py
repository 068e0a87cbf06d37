"""Stored runs: find them in the catalog, read one, and replay it through ``RunData``.

``open_stored`` is what the window does: it reads what the panels draw, bounded by the plots'
size rather than the run's length (``overview.py``): the echem stream as a table plus min/max
envelopes, every detector table (a row per frame), and of each large array key (spectra, maps)
an evenly spaced subset plus the last row; the rest is read in the background when shown.
``read_run`` reads every array whole (what the window did before; the benchmark's baseline).

Replay feeds the same ``RunData`` update functions the live documents feed (``add_stream``,
``append``) from the stored arrays, rather than re-emitting documents: the catalog already holds
the arrays (the echem ones in the run's HDF5 files), so re-emitting StreamDatum documents would
only make the panels read the same files again, one slice at a time.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass

import numpy as np

from operando.analysis.run_cells import CellRun
from operando.storage.runs import RunRow, list_runs

from .model import ECHEM, RunData, SampledColumn, row_times
from .overview import SUBSET_ROWS, SUBSET_VALUES, TABLE_ROWS, Background, EchemOverview, scan, source_for

log = logging.getLogger(__name__)

UNSHOWN = ("frame-",)  # keys no panel shows (the echem state stamped on each frame): not read
SHOWN_FRAME_KEYS = ("frame-soc",)  # ...but this one: the Raman bands panel's shift per unit SOC
# Streams the panels show: the echem stream, each instrument's (the status table), and any with
# a key the detector panels look for (moments, spectra, impedance; any array: maps). The others
# (timebase, interruptions, frame_failures) are left unread: each read costs 2 requests.
SHOWN_SUFFIXES = ("moment", "spectrum", "Z_re", "Z_im", "frequency")


def _shown(name: str, data_keys: dict, by_name: set) -> bool:
    if name in by_name:
        return True
    return any(d.get("shape") or k.endswith(tuple("-" + s for s in SHOWN_SUFFIXES)) for k, d in data_keys.items())


def _streams(run) -> list:
    """(name, stream client) of every stream of ``run``, with their metadata, in one request.
    One cell of a several-cell run (``CellRun``): that cell's streams, under their one-cell names."""
    base = run.whole_run if isinstance(run, CellRun) else run
    try:
        nodes = list(base.base.items())
    except Exception:  # another layout (a "streams" namespace): the client's own way
        nodes = None
    if not nodes or not all(hasattr(node, "base") for _, node in nodes):
        nodes = list(base.items())
    if isinstance(run, CellRun):
        stored = dict(nodes)
        nodes = [(name, stored[s]) for name, s in run.streams.items() if s in stored]
    return sorted(nodes, key=lambda item: item[0])


@dataclass
class StoredRun:
    """One run's arrays, read once; ``feed`` replays them into a RunData up to a time."""

    start: dict
    stop: dict | None
    streams: dict[str, tuple[dict, dict, dict[str, np.ndarray]]]  # name -> (data_keys, config, arrays)
    times: dict[str, np.ndarray]  # name -> experiment time per row
    sampled: dict[str, dict[str, SampledColumn]] | None = None  # name -> key -> rows read of it
    overview: EchemOverview | None = None  # the echem stream, when its arrays are a table
    background: Background | None = None  # reads for the overview and the sampled columns

    def read_later(self) -> None:
        """Start the background reads kept for after the first drawing (the other half of each
        sampled column's subset): the window calls this on its timer."""
        for columns in (self.sampled or {}).values():
            for column in columns.values():
                column.read_later()

    def deliver(self) -> int:
        """Apply the rows read in the background since the last call (on the GUI thread, before
        the panels redraw); returns how many reads arrived."""
        return self.background.deliver() if self.background is not None else 0

    def close(self) -> None:
        """Stop background reads and close the files they read."""
        if self.background is not None:
            self.background.close()
        if self.overview is not None:
            self.overview.source.close()

    @property
    def t0(self) -> float:
        echem = self.times.get(self.start.get("echem_stream", ECHEM))
        if echem is not None and len(echem):
            return float(echem[0])
        return min((float(t[0]) for t in self.times.values() if len(t)), default=0.0)

    @property
    def t_end(self) -> float:
        return max((float(t[-1]) for t in self.times.values() if len(t)), default=self.t0)

    def new_data(self) -> RunData:
        """An empty RunData with this run's metadata and streams, ready to be fed."""
        data = RunData()
        data.set_start(self.start)
        for name, (keys, config, _) in self.streams.items():
            stream = data.add_stream(name, keys, config)
            for key, column in ((self.sampled or {}).get(name) or {}).items():
                stream.sample(key, column)
        data.overview = self.overview
        return data

    def feed(self, data: RunData, until: float) -> bool:
        """Append to ``data`` every row acquired after what it holds and up to ``until``.

        Returns True once the whole run has been fed (then the stop document is set too).
        """
        finished = True
        for name, (_, _, arrays) in self.streams.items():
            have = data.streams[name].rows
            upto = int(np.searchsorted(self.times[name], until, side="right"))
            if upto > have:
                data.append(name, {k: v[have:upto] for k, v in arrays.items()})
            finished &= upto >= len(self.times[name])
        if finished and data.stop is None and self.stop:
            data.set_stop(self.stop)
        return finished


def search_runs(
    client, text: str = "", plan: str = "", status: str = "", since: dt.date | None = None, until: dt.date | None = None
) -> list[RunRow]:
    """Runs whose sample/uid contains ``text``, with this plan and status, started in the dates."""
    rows = list_runs(client)
    text, plan, status = text.lower().strip(), plan.strip(), status.strip()
    out = []
    for r in rows:
        day = dt.date.fromtimestamp(r.start)
        if text and text not in r.sample.lower() and not r.uid.startswith(text):
            continue
        if plan and r.plan != plan:
            continue
        if status and not r.status.startswith(status):
            continue
        if (since and day < since) or (until and day > until):
            continue
        out.append(r)
    return sorted(out, key=lambda r: r.start, reverse=True)


def read_run(run) -> StoredRun:
    """Every stream of a catalog run as numpy arrays."""
    start = dict(run.metadata["start"])
    stop = run.metadata.get("stop")
    metas = {name: run[name] for name in run}
    # One request per stream (a request costs ~0.1 s in-process whatever its size; the catalog's
    # tabular storage is not safe to read from several threads).
    tables = {name: node.read() for name, node in metas.items()}
    streams, times = {}, {}
    for name, node in metas.items():
        md = node.metadata
        data_keys = {k: v for k, v in (md.get("data_keys") or {}).items()}
        config = {}
        for per_device in (md.get("configuration") or {}).values():
            config.update(per_device.get("data") or {})
        cols = {k: np.asarray(tables[name][k].values) for k in tables[name].variables}
        streams[name] = (data_keys, config, cols)
        times[name] = row_times(cols)
    return StoredRun(start, dict(stop) if stop else None, streams, times)


def _configuration(md) -> dict:
    config = {}
    for per_device in (md.get("configuration") or {}).values():
        config.update(per_device.get("data") or {})
    return config


def open_stored(run, table_rows: int | None = None, timings: dict | None = None) -> StoredRun:
    """A catalog run as the window shows it: what is drawn now, the rest read when shown.

    Requests: the run's streams (one), then per stream its parts (one) and its table (one),
    spectra subsets (one per key); the echem columns from their HDF5 files (or Tiled slicing).
    ``table_rows``: echem rows kept (``overview.TABLE_ROWS`` by default); ``timings``, if given,
    gets the seconds spent per stage (``stream list``, ``<stream> parts``,
    ``<stream> table``, ``<stream> scan``, ``<stream>/<key> subset``).
    """
    table_rows = TABLE_ROWS if table_rows is None else table_rows
    timings = {} if timings is None else timings
    lap = _Laps(timings)
    start = dict(run.metadata["start"])
    stop = run.metadata.get("stop")
    events = (stop or {}).get("num_events") or {}
    echem_name = start.get("echem_stream", ECHEM)
    background = Background()
    streams, times, sampled, overview = {}, {}, {}, None
    try:
        nodes = _streams(run)  # one request for every stream and its metadata
        lap("stream list")
        shown_by_name = set(start.get("instruments") or {}) | {echem_name}
        for name, node in nodes:
            md = node.metadata
            data_keys = {
                k: v
                for k, v in (md.get("data_keys") or {}).items()
                if not k.startswith(UNSHOWN) or k in SHOWN_FRAME_KEYS
            }
            config = _configuration(md)
            if events.get(name) == 0 or not _shown(name, data_keys, shown_by_name):
                # a stream without rows (interruptions), or that no panel shows (timebase): unread
                cols = {k: np.empty((0, *(d.get("shape") or ()))) for k, d in data_keys.items()}
                cols["time"] = np.empty(0)
            else:
                parts = dict(node.base.new_variation(include_data_sources=True).items())
                lap(f"{name} parts")
                cols, arrays = {}, {}
                for part, client in parts.items():
                    if part in data_keys or part == "time":
                        arrays[part] = client
                    elif client.structure_family == "table":
                        wanted = [c for c in client.structure().columns if c in data_keys or c == "time"]
                        table = client.read(columns=wanted)
                        cols.update({c: np.asarray(table[c].values) for c in wanted})
                        lap(f"{name} table")
                if name == echem_name and arrays:
                    n = min(a.shape[0] for a in arrays.values())
                    source = source_for(arrays, n)
                    cols, ov = scan(source, list(arrays), table_rows)
                    lap(f"{name} scan ({source.where})")
                    if ov is None:
                        source.close()
                    else:
                        ov.background = background
                        overview = ov
                else:
                    for key, client in arrays.items():
                        values = _array(client, background, f"{name}/{key}")
                        lap(f"{name}/{key} {'subset' if isinstance(values, SampledColumn) else 'whole'}")
                        if isinstance(values, SampledColumn):
                            sampled.setdefault(name, {})[key] = values
                        else:
                            cols[key] = values
            streams[name] = (data_keys, config, cols)
            times[name] = row_times(cols)
    except Exception:
        background.close()
        if overview is not None:
            overview.source.close()
        raise
    return StoredRun(start, dict(stop) if stop else None, streams, times, sampled, overview, background)


class _Laps:
    def __init__(self, into: dict):
        self.into, self.t = into, time.perf_counter()

    def __call__(self, label: str) -> None:
        now = time.perf_counter()
        self.into[label] = self.into.get(label, 0.0) + now - self.t
        self.t = now


def _array(client, background: Background, slot: str):
    """A whole array part, or a SampledColumn (evenly spaced rows and the last) when it is large."""
    shape = tuple(client.shape)
    n, row = shape[0], math.prod(shape[1:])
    keep = max(1, min(SUBSET_ROWS, SUBSET_VALUES // max(row, 1)))
    if n <= keep or len(shape) == 1:
        return np.asarray(client.read())
    step = math.ceil(n / keep)
    first = (n - 1) % (2 * step)  # the last row is one of them: the latest spectrum or map
    rows = np.asarray(client[first :: 2 * step])

    def fetch(kind, rows_slice, done):
        background.request(
            f"{slot}/{kind}",
            (rows_slice.start, rows_slice.stop, rows_slice.step),
            lambda: np.asarray(client[rows_slice]),
            done,
        )

    column = SampledColumn(n, shape[1:], np.arange(first, n, 2 * step), rows, fetch)
    if first >= step or first + step < n:  # the rows between, once the panels are drawn
        column.later = (first - step if first >= step else first + step, n, 2 * step)
    return column
