"""Close runs whose acquiring process died (kill -9, crash, power loss) from their journals.

A run left behind has an ``.open`` journal that no live process holds locked. Its catalog entry
(if any) is up to a second behind and has no stop document; the journal has every document that
reached the disk. Recovery rewrites the run from the journal — deleting the partial catalog entry
first, so running it twice gives the same result — ends it with a stop document whose
exit_status is ``"incomplete"``, appends that stop to the journal and marks the journal closed.
Every ``operando`` command runs this first, so no run stays without a stop document.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .catalog_writer import FlushingTiledWriter
from .hdf5_recovery import clear_swmr_flags
from .journal import (
    closed_journal_path,
    encode,
    is_live,
    journal_dir,
    read_journal,
)

log = logging.getLogger(__name__)
INCOMPLETE = "incomplete"


@dataclass
class RecoveredRun:
    uid: str
    scan_id: int
    last_data_time: float
    rows: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        rows = ", ".join(f"{k} {v}" for k, v in self.rows.items()) or "no data"
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.last_data_time))
        return (
            f"recovered run {self.uid[:8]} (scan {self.scan_id}): its process ended without a stop "
            f"document; closed as {INCOMPLETE!r} with data up to {when} ({rows} rows)"
        )


def abandoned_journals(data_dir: Path) -> list[Path]:
    """``.open`` journals no live process holds: runs to recover."""
    folder = journal_dir(data_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.open.jsonl") if not is_live(p))


def recover_data_dir(data_dir: Path, client=None, uri: str | None = None) -> list[RecoveredRun]:
    """Recover every abandoned run of a data directory (opens the catalog only if there is one)."""
    journals = abandoned_journals(data_dir)
    if not journals:
        return []
    if client is not None:
        return [recover_run(path, client) for path in journals]
    from .catalog import open_catalog

    with open_catalog(data_dir, uri) as catalog:
        return [recover_run(path, catalog.client) for path in journals]


def _stop_document(start: dict, docs: list[tuple[str, dict]]) -> tuple[dict, dict[str, int]]:
    """A stop document for a run cut short, counting what the journal holds per stream."""
    stream_of = {}
    rows: dict[str, int] = {}
    last = start["time"]
    for name, doc in docs:
        last = max(last, doc.get("time", last) or last)
        if name == "descriptor":
            stream_of[doc["uid"]] = doc.get("name", "primary")
            rows.setdefault(stream_of[doc["uid"]], 0)
        elif name == "event":
            rows[stream_of[doc["descriptor"]]] += 1
        elif name == "event_page":
            rows[stream_of[doc["descriptor"]]] += len(doc["seq_num"])
        elif name == "stream_datum":
            stream = stream_of[doc["descriptor"]]
            rows[stream] = max(rows[stream], doc["indices"]["stop"])
    stop = {
        "run_start": start["uid"],
        "time": last,
        "uid": str(uuid.uuid4()),
        "exit_status": INCOMPLETE,
        "reason": (
            "the acquiring process ended without a stop document (crash, kill or power loss); "
            "closed by recovery from the document journal"
        ),
        "num_events": dict(rows),
        "recovered_at": time.time(),
    }
    return stop, rows


def recover_run(path: Path, client) -> RecoveredRun | None:
    docs = list(read_journal(path))
    if not docs or docs[0][0] != "start":
        log.warning("%s: no start document; nothing to recover, removing it", path)
        path.unlink()
        return None
    start = docs[0][1]
    uid = start["uid"]
    stop, rows = _stop_document(start, docs)
    for name, doc in docs:
        if name == "stream_resource" and doc.get("mimetype") == "application/x-hdf5":
            clear_swmr_flags(_local_path(doc["uri"]))
    if uid in client:
        client[uid].delete(recursive=True, external_only=False)  # rewritten whole below
    # Arrays Tiled had begun writing for this run but not yet registered (a kill between the
    # two) survive the delete and would block the rewrite: they are rewritten from the journal
    # too. (The run's HDF5 files live beside, not under, files/<uid>/.)
    leftover = path.parent.parent / "files" / uid
    if leftover.is_dir():
        shutil.rmtree(leftover)
    writer = FlushingTiledWriter(client)
    for name, doc in docs:
        writer(name, doc)
    writer.close_run(uid, stop)
    with open(path, "ab", buffering=0) as f:
        f.write(encode("stop", stop))
        os.fsync(f.fileno())
    os.replace(path, closed_journal_path(path.parent.parent, uid))
    run = RecoveredRun(uid, start.get("scan_id", 0), stop["time"], rows)
    log.info(run.describe())
    return run


def _local_path(uri: str) -> Path:
    from urllib.parse import unquote, urlparse

    return Path(unquote(urlparse(uri).path))
