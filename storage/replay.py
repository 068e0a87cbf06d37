"""Replay a stored run: its documents, in order, into any callbacks, with the original timing.

The source is the run's document journal when the data directory has it — the documents exactly
as the RunEngine emitted them, fast-path StreamResource/StreamDatum documents included (they
point at the same HDF5 files) — else the catalog's own export (``run.documents()``, Tiled's
json-seq exporter for BlueskyRun), e.g. for a run read from a remote server. The journal may be
in segments (a run still going, or cut short) or compacted (``<uid>.jsonl.gz``): either way
``read_journal`` gives its documents in order, StreamDatums that compaction merged expanded back
into the ones emitted (same uids, rows, seq_nums, order), so nothing differs.

Timing: each document is delivered when ``(its time - the start's time) / speed`` has passed
since the replay began; documents without a time (StreamResource, StreamDatum) go with the
document before them. ``speed=inf`` delivers as fast as the callbacks take them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .journal import find_journal, read_journal

Document = tuple[str, dict]


def run_documents(run, data_dir: Path | None = None) -> Iterator[Document]:
    """A stored run's documents, in order: from its journal if there is one, else the catalog."""
    uid = run.metadata["start"]["uid"]
    journal = find_journal(data_dir, uid) if data_dir is not None else None
    if journal is not None:
        yield from read_journal(journal)
    else:
        yield from run.documents()


def replay(
    documents: Iterable[Document],
    callbacks: Iterable[Callable[[str, dict], object]],
    *,
    speed: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Send each document to every callback, paced at ``speed``× the original; returns the count."""
    if not speed > 0:
        raise ValueError(f"speed must be > 0 (got {speed}); use math.inf for no waiting")
    callbacks = list(callbacks)
    t0_doc = t0_wall = None
    count = 0
    for name, doc in documents:
        t = doc.get("time")
        if t0_doc is None and t is not None:
            t0_doc, t0_wall = t, clock()
        if t is not None and not math.isinf(speed):
            wait = t0_wall + (t - t0_doc) / speed - clock()
            if wait > 0:
                sleep(wait)
        for callback in callbacks:
            callback(name, doc)
        count += 1
    return count


def replay_run(run, callbacks, *, data_dir: Path | None = None, speed: float = 1.0, **kw) -> int:
    """``replay(run_documents(run, data_dir), callbacks, speed=speed)``."""
    return replay(run_documents(run, data_dir), callbacks, speed=speed, **kw)


class ReplayProgress:
    """The CLI's callback: one line per second of replay (documents and rows per stream)."""

    def __init__(self, write: Callable[[str], object], interval_s: float = 1.0):
        self._write = write
        self._interval = interval_s
        self._last = 0.0
        self._streams: dict[str, str] = {}
        self.rows: dict[str, int] = {}
        self.documents = 0

    def __call__(self, name: str, doc: dict) -> None:
        self.documents += 1
        if name == "descriptor":
            self._streams[doc["uid"]] = doc.get("name", "primary")
            self.rows.setdefault(self._streams[doc["uid"]], 0)
        elif name == "event":
            self.rows[self._streams[doc["descriptor"]]] += 1
        elif name == "event_page":
            self.rows[self._streams[doc["descriptor"]]] += len(doc["seq_num"])
        elif name == "stream_datum":
            stream = self._streams[doc["descriptor"]]
            self.rows[stream] = max(self.rows[stream], doc["indices"]["stop"])
        now = time.monotonic()
        if name in ("start", "stop") or now - self._last >= self._interval:
            self._last = now
            detail = doc.get("exit_status", "") if name == "stop" else ""
            self._write(f"{name:8} {self.documents:>8} documents  {self.summary()}  {detail}".rstrip())

    def summary(self) -> str:
        return "  ".join(f"{k} {v}" for k, v in self.rows.items())
