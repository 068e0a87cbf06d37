"""Stored runs: find them in the catalog, read one, and replay it through ``RunData``.

Replay feeds the same ``RunData`` update functions the live documents feed (``add_stream``,
``append``) from the stored arrays, rather than re-emitting documents: the catalog already holds
the arrays (the echem ones in the run's HDF5 files), so re-emitting StreamDatum documents would
only make the panels read the same files again, one slice at a time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from operando.storage.runs import RunRow, list_runs

from .model import ECHEM, RunData, row_times


@dataclass
class StoredRun:
    """One run's arrays, read once; ``feed`` replays them into a RunData up to a time."""

    start: dict
    stop: dict | None
    streams: dict[str, tuple[dict, dict, dict[str, np.ndarray]]]  # name -> (data_keys, config, arrays)
    times: dict[str, np.ndarray]  # name -> experiment time per row

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
            data.add_stream(name, keys, config)
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
