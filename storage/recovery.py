"""Close runs whose acquiring process died (kill -9, crash, power loss) from their journals.

A run left behind has an ``.open`` journal that no live process holds locked. Its catalog entry
(if any) is up to a second behind and has no stop document; the journal has every document that
reached the disk, and the run's HDF5 files have every fast-path row the device fsync'd (every
0.5 s, whatever the plan was doing: a long frame, a pause, a suspension). Recovery announces the
rows a file holds beyond the journal's last StreamDatum with StreamDatums of its own, rewrites the
run from the journal — deleting the partial catalog entry first, so running it twice gives the
same result — and ends it with a stop document within event-model's schema: exit_status
``"fail"``, the reason, and ``recovered`` (when, what was added from the files). That stop is
appended to the journal, which is then marked closed. Every ``operando`` command runs this first,
so no run stays without a stop document.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py

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
RECOVERED_STATUS = "fail"  # event-model's enum has no "incomplete"; `recovered` says why


@dataclass
class RecoveredRun:
    uid: str
    scan_id: int
    last_data_time: float
    rows: dict[str, int] = field(default_factory=dict)
    from_files: dict[str, int] = field(default_factory=dict)  # rows announced from HDF5 files

    def describe(self) -> str:
        rows = ", ".join(f"{k} {v}" for k, v in self.rows.items()) or "no data"
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.last_data_time))
        files = "".join(f"; {n} {k} rows from its file" for k, n in self.from_files.items() if n)
        return (
            f"recovered run {self.uid[:8]} (scan {self.scan_id}): its process ended without a stop "
            f"document; closed as {RECOVERED_STATUS!r} (recovered) with data up to {when} "
            f"({rows} rows{files})"
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


def _stop_document(start: dict, docs: list[tuple[str, dict]], from_files: dict[str, int]) -> tuple[dict, dict]:
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
        "uid": f"{start['uid']}-recovered-stop",  # the same on a second recovery of the same run
        "exit_status": RECOVERED_STATUS,
        "reason": (
            "the acquiring process ended without a stop document (crash, kill or power loss); "
            "closed by recovery from the document journal and the run's files"
        ),
        "num_events": dict(rows),
        "recovered": {"at": time.time(), "rows_from_files": dict(from_files)},
    }
    return stop, rows


def rows_beyond_journal(docs: list[tuple[str, dict]]) -> list[tuple[str, dict]]:
    """StreamDatums for the rows each HDF5 stream resource holds beyond what the journal announced.

    Per descriptor, the rows every one of its columns has on disk (the shortest column: an append
    cut short between two columns counts only the rows all of them hold); each new StreamDatum
    continues its resource's indices and the stream's sequence numbers.
    """
    descriptors = {d["uid"]: d for name, d in docs if name == "descriptor"}
    resources = {
        d["uid"]: d for name, d in docs if name == "stream_resource" and d.get("mimetype") == "application/x-hdf5"
    }
    last: dict[str, dict] = {}  # resource uid -> its last StreamDatum
    counts: dict[str, int] = {}  # resource uid -> StreamDatums so far
    for name, d in docs:
        if name == "stream_datum" and d["stream_resource"] in resources:
            last[d["stream_resource"]] = d
            counts[d["stream_resource"]] = counts.get(d["stream_resource"], 0) + 1
    by_descriptor: dict[str, list[str]] = {}
    for uid, res in resources.items():
        descriptor = last[uid]["descriptor"] if uid in last else _descriptor_of(res, descriptors)
        if descriptor is not None:
            by_descriptor.setdefault(descriptor, []).append(uid)
    out = []
    for descriptor, uids in by_descriptor.items():
        on_disk = min(_rows_in_file(resources[uid]) for uid in uids)
        announced = {uid: last[uid]["indices"]["stop"] if uid in last else 0 for uid in uids}
        seq = max((last[uid]["seq_nums"]["stop"] for uid in uids if uid in last), default=1)
        start = min(announced.values())
        if on_disk <= start or len(set(announced.values())) != 1:
            continue  # nothing new, or columns announced unevenly (never written so): leave them
        for uid in uids:
            out.append(
                (
                    "stream_datum",
                    {
                        "stream_resource": uid,
                        "uid": f"{uid}/{counts.get(uid, 0)}",
                        "seq_nums": {"start": seq, "stop": seq + on_disk - start},
                        "indices": {"start": start, "stop": on_disk},
                        "descriptor": descriptor,
                    },
                )
            )
    return out


def _descriptor_of(resource: dict, descriptors: dict[str, dict]) -> str | None:
    """The descriptor declaring ``resource``'s data key as a stream (no StreamDatum named it yet)."""
    for uid, desc in descriptors.items():
        key = desc.get("data_keys", {}).get(resource["data_key"])
        if key is not None and str(key.get("external", "")).startswith("STREAM:"):
            return uid
    return None


def _last_file_time(docs: list[tuple[str, dict]]) -> float:
    """The last ``timestamp`` the journal's StreamDatums announce (0 if none)."""
    resources = {d["uid"]: d for n, d in docs if n == "stream_resource" and d["data_key"] == "timestamp"}
    last = {}
    for name, d in docs:
        if name == "stream_datum" and d["stream_resource"] in resources:
            last[d["stream_resource"]] = d["indices"]["stop"]
    out = 0.0
    for uid, stop in last.items():
        try:
            with h5py.File(_local_path(resources[uid]["uri"]), "r") as f:
                out = max(out, float(f[resources[uid]["parameters"]["dataset"]][stop - 1]))
        except (OSError, KeyError, IndexError, ValueError):
            continue
    return out


def _rows_in_file(resource: dict) -> int:
    path = _local_path(resource["uri"])
    try:
        with h5py.File(path, "r") as f:
            return int(f[resource["parameters"]["dataset"]].shape[0])
    except (OSError, KeyError) as exc:  # a file never flushed, or gone: only the journal counts
        log.warning(
            "%s: cannot read %s (%s); its rows are those the journal announced",
            path,
            resource["parameters"].get("dataset"),
            exc,
        )
        return 0


def recover_run(path: Path, client) -> RecoveredRun | None:
    docs = list(read_journal(path))
    if not docs or docs[0][0] != "start":
        log.warning("%s: no start document; nothing to recover, removing it", path)
        path.unlink()
        return None
    start = docs[0][1]
    uid = start["uid"]
    for name, doc in docs:
        if name == "stream_resource" and doc.get("mimetype") == "application/x-hdf5":
            clear_swmr_flags(_local_path(doc["uri"]))
    from_files_docs = rows_beyond_journal(docs)
    streams = {d["uid"]: d.get("name", "primary") for n, d in docs if n == "descriptor"}
    from_files: dict[str, int] = {}
    for _, datum in from_files_docs:
        stream = streams[datum["descriptor"]]
        n = datum["indices"]["stop"] - datum["indices"]["start"]
        from_files[stream] = max(from_files.get(stream, 0), n)
    docs += from_files_docs
    stop, rows = _stop_document(start, docs, from_files)
    stop["time"] = max(stop["time"], _last_file_time(docs))  # the last sample the files hold
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
    writer("stop", stop)
    with open(path, "ab", buffering=0) as f:
        for name, doc in from_files_docs:
            f.write(encode(name, doc))
        f.write(encode("stop", stop))
        os.fsync(f.fileno())
    os.replace(path, closed_journal_path(path.parent.parent, uid))
    run = RecoveredRun(uid, start.get("scan_id", 0), stop["time"], rows, from_files)
    log.info(run.describe())
    return run


def _local_path(uri: str) -> Path:
    from urllib.parse import unquote, urlparse

    return Path(unquote(urlparse(uri).path))
