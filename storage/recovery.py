"""Close runs whose acquiring process died (kill -9, crash, power loss) from their journals.

A run left behind has an ``.open`` journal that no live process holds locked. Its catalog entry
(if any) is up to a second behind (its streamed rows up to ``rows_every_s``, see
``catalog_writer.py``) and has no stop document; the journal — its segments in order, then the
open one (``journal.py``) — has every document that reached the disk, and the run's HDF5 files
have every fast-path row the device fsync'd (every 0.5 s, whatever the plan was doing: a long
frame, a pause, a suspension). Recovery takes the open journal's lock (a second recovery, in
another process, leaves the run alone), repairs what a rotation cut short, announces the rows a
file holds beyond the journal's last StreamDatum with StreamDatums of its own, rewrites the run
from the journal — deleting the partial catalog entry first, so running it twice gives the same
result; StreamDatums merged by compaction are fed merged — and ends it with a stop document
within event-model's schema: exit_status ``"fail"``, the reason, and ``recovered`` (when, what
was added from the files). That stop is appended to the journal, which is then marked closed.
One pass over the journal gathers what the stop needs; a second feeds the catalog writer: the
documents are never all in memory.

A run can also be cut short after its stop: the journal is closed (``<uid>.jsonl``) at the stop
document, but the catalog writer may still be draining a backlog (a several-cell run, minutes of
rows); a kill then leaves the catalog entry without a stop and with part of the rows. Recovery
replays such a closed journal — one older than ``REPAIR_AFTER_S`` (nothing tells a dead process
from one still draining: that age does) whose stop is not in the catalog — the same way as an
abandoned one (``_rewrite_catalog``: the partial entry deleted, the journal fed whole), with the
journal's own stop; the journal is left as it is.

Every ``operando`` command runs this first, so no run stays without a stop document; it then
compacts the journals of closed runs whose stop is in the catalog (``maintain_journals``: a run
recovered here, an imported one, one whose process died before compacting) and removes what a
compaction cut short left behind. A stop in the catalog means every document before it was
written or failed (the writer is one thread, in order; TiledWriter writes its caches before the
stop); compaction loses nothing in any case — the compacted journal holds every document.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import orjson

from .catalog_writer import FlushingTiledWriter
from .hdf5_recovery import clear_swmr_flags
from .journal import (
    claim_journal,
    closed_journal_path,
    compact_run,
    encode,
    is_live,
    journal_dir,
    read_journal,
    remove_leftovers,
    remove_stale_temporaries,
    run_of,
    segment_numbers,
    segment_path,
)

log = logging.getLogger(__name__)
RECOVERED_STATUS = "fail"  # event-model's enum has no "incomplete"; `recovered` says why
COMPACT_AFTER_S = 60.0  # a closed journal younger than this is left to the process that closed it
# A closed journal younger than this whose stop is not in the catalog may belong to a process
# still draining its catalog writer (measured here: ~10 s after one cycle of 3 cells at 10^6,
# ~35 s after 16 cells): left alone.
REPAIR_AFTER_S = 600.0
STALE_TMP_S = 600.0  # a temporary file untouched this long, of no live run, was left by a crash


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


@dataclass
class RepairedRun:
    """A closed run whose catalog entry its process left without a stop, replayed whole."""

    uid: str
    scan_id: int
    exit_status: str
    documents: int  # replayed into the catalog (StreamDatums merged by compaction count once)
    rows: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        rows = ", ".join(f"{k} {v}" for k, v in self.rows.items()) or "no data"
        return (
            f"repaired run {self.uid[:8]} (scan {self.scan_id}): its process ended before the catalog "
            f"had stored it; replayed {self.documents} documents from its closed journal "
            f"(stop {self.exit_status!r}; {rows} rows)"
        )


def abandoned_journals(data_dir: Path) -> list[Path]:
    """``.open`` journals no live process holds: runs to recover."""
    folder = journal_dir(data_dir)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.open.jsonl") if not is_live(p))


def recover_data_dir(
    data_dir: Path, client=None, uri: str | None = None, *, repair_after_s: float = REPAIR_AFTER_S
) -> list[RecoveredRun | RepairedRun]:
    """Recover every abandoned run of a data directory; replay into the catalog every closed run
    (journal closed ``repair_after_s`` ago or more, not compacted) whose stop is not there; then
    compact the journals of closed runs whose stop is in the catalog (opens the catalog only if
    there is work)."""
    journals = abandoned_journals(data_dir)
    pending = compactable_journals(data_dir, min(COMPACT_AFTER_S, repair_after_s))
    if not journals and not pending:
        return []
    if client is not None:
        return _recover_and_compact(data_dir, journals, client, repair_after_s)
    from .catalog import open_catalog

    with open_catalog(data_dir, uri) as catalog:
        return _recover_and_compact(data_dir, journals, catalog.client, repair_after_s)


def _recover_and_compact(
    data_dir: Path, journals: list[Path], client, repair_after_s: float = REPAIR_AFTER_S
) -> list[RecoveredRun | RepairedRun]:
    runs: list[RecoveredRun | RepairedRun] = [recover_run(path, client) for path in journals]
    # uid -> stop in the catalog (None: cannot tell), asked once, in one query for them all
    known = _stop_states(client, compactable_journals(data_dir, min(COMPACT_AFTER_S, repair_after_s)))

    def stop_state(uid: str) -> bool | None:
        if uid not in known:
            known[uid] = _stop_state(client, uid)
        return known[uid]

    for uid in compactable_journals(data_dir, repair_after_s):
        if stop_state(uid) is False and _stop_state(client, uid) is False:  # asked again: it deletes
            repaired = repair_run(closed_journal_path(data_dir, uid), client)
            if repaired is not None:
                known[uid] = True
                runs.append(repaired)
    maintain_journals(data_dir, lambda uid: stop_state(uid) is True)
    return runs


def stop_in_catalog(client, uid: str) -> bool:
    return _stop_state(client, uid) is True


def _stop_states(client, uids: list[str], chunk: int = 100) -> dict[str, bool | None]:
    """``_stop_state`` of many runs, a search per ``chunk`` of them: one request instead of two
    per run (~70 ms each here: 50 closed journals cost seconds at every command otherwise)."""
    from tiled.queries import In

    out: dict[str, bool | None] = {}
    for i in range(0, len(uids), chunk):
        part = uids[i : i + chunk]
        try:
            found = {uid: bool(run.metadata.get("stop")) for uid, run in client.search(In("start.uid", part)).items()}
        except Exception:  # a catalog that cannot search so: one run at a time
            log.debug("cannot search the catalog for %d runs", len(part), exc_info=True)
            found = {uid: _stop_state(client, uid) for uid in part}
        out.update({uid: found.get(uid, False) for uid in part})
    return out


def _stop_state(client, uid: str) -> bool | None:
    """Whether run ``uid`` has its stop document in the catalog (absent: False); None when the
    catalog cannot answer (then the journal is left as it is)."""
    try:
        return uid in client and bool(client[uid].metadata.get("stop"))
    except Exception:
        log.debug("cannot tell whether run %s has its stop in the catalog", uid, exc_info=True)
        return None


def compactable_journals(data_dir: Path, min_age_s: float = COMPACT_AFTER_S) -> list[str]:
    """Uids of closed runs whose journal is not one compacted file yet, closed at least
    ``min_age_s`` ago (a run that has just stopped is compacted by its own process)."""
    folder = journal_dir(data_dir)
    if not folder.is_dir():
        return []
    now = time.time()
    out = []
    for path in folder.glob("*.jsonl"):
        if path.name.endswith(".open.jsonl"):
            continue
        try:
            if now - path.stat().st_mtime >= min_age_s:
                out.append(path.name[: -len(".jsonl")])
        except FileNotFoundError:
            continue
    return sorted(out)


def maintain_journals(data_dir: Path, stored, min_age_s: float = COMPACT_AFTER_S) -> list[str]:
    """Compact the journal of every closed run ``stored(uid)`` says is in the catalog; remove
    what a compaction or a rotation cut short left behind. Returns the uids compacted."""
    folder = journal_dir(data_dir)
    if not folder.is_dir():
        return []
    done = []
    for uid in compactable_journals(data_dir, min_age_s):
        if stored(uid) and compact_run(data_dir, uid) is not None:
            done.append(uid)
    for final in folder.glob("*.jsonl.gz"):
        remove_leftovers(folder, final.name[: -len(".jsonl.gz")])
    remove_stale_temporaries(folder, STALE_TMP_S)
    return done


class _Scan:
    """What recovery needs from a journal, gathered in one pass without keeping the documents
    (a week of spectra does not fit in memory as Python lists)."""

    def __init__(self):
        self.start: dict | None = None
        self.documents = 0
        self.descriptors: dict[str, dict] = {}
        self.streams: dict[str, str] = {}  # descriptor uid -> stream name
        self.rows: dict[str, int] = {}  # stream -> rows
        self.last_time = 0.0
        self.hdf5: dict[str, dict] = {}  # HDF5 stream resources by uid
        self.last: dict[str, dict] = {}  # resource uid -> its last StreamDatum
        self.counts: dict[str, int] = {}  # resource uid -> StreamDatums so far (as read)

    def add(self, name: str, doc: dict) -> None:
        self.documents += 1
        t = doc.get("time")
        if isinstance(t, list):  # an event page
            t = max(t, default=None)
        if isinstance(t, int | float):
            self.last_time = max(self.last_time, t)
        if name == "start" and self.start is None:
            self.start = doc
        elif name == "descriptor":
            self.descriptors[doc["uid"]] = doc
            self.streams[doc["uid"]] = doc.get("name", "primary")
            self.rows.setdefault(self.streams[doc["uid"]], 0)
        elif name == "event":
            self.rows[self.streams[doc["descriptor"]]] += 1
        elif name == "event_page":
            self.rows[self.streams[doc["descriptor"]]] += len(doc["seq_num"])
        elif name == "stream_resource":
            if doc.get("mimetype") == "application/x-hdf5":
                self.hdf5[doc["uid"]] = doc
        elif name == "stream_datum":
            stream = self.streams[doc["descriptor"]]
            self.rows[stream] = max(self.rows[stream], doc["indices"]["stop"])
            if doc["stream_resource"] in self.hdf5:
                self.last[doc["stream_resource"]] = doc
                self.counts[doc["stream_resource"]] = self.counts.get(doc["stream_resource"], 0) + 1

    def next_datum_number(self, resource: str) -> int:
        """The number of the resource's next StreamDatum (``<resource>/<n>``, as event-model
        names them; the journal may hold them merged)."""
        last = self.last.get(resource)
        if last is not None:
            head, _, number = last["uid"].rpartition("/")
            if head == resource and number.isdigit():
                return int(number) + 1
        return self.counts.get(resource, 0)


def _scan(docs) -> _Scan:
    scan = _Scan()
    for name, doc in docs:
        scan.add(name, doc)
    return scan


def _stop_document(start: dict, docs, from_files: dict[str, int]) -> tuple[dict, dict]:
    """A stop document for a run cut short, counting what the journal holds per stream."""
    scan = docs if isinstance(docs, _Scan) else _scan(docs)
    stop = {
        "run_start": start["uid"],
        "time": max(start["time"], scan.last_time),
        "uid": f"{start['uid']}-recovered-stop",  # the same on a second recovery of the same run
        "exit_status": RECOVERED_STATUS,
        "reason": (
            "the acquiring process ended without a stop document (crash, kill or power loss); "
            "closed by recovery from the document journal and the run's files"
        ),
        "num_events": dict(scan.rows),
        "recovered": {"at": time.time(), "rows_from_files": dict(from_files)},
    }
    return stop, dict(scan.rows)


def rows_beyond_journal(docs) -> list[tuple[str, dict]]:
    """StreamDatums for the rows each HDF5 stream resource holds beyond what the journal announced.

    Per descriptor, the rows every one of its columns has on disk (the shortest column: an append
    cut short between two columns counts only the rows all of them hold); each new StreamDatum
    continues its resource's indices and sequence numbers up to there (columns the journal
    announced unevenly — a kill between the StreamDatums of one collect — end even). ``docs``:
    the journal's documents, or a scan of them.
    """
    scan = docs if isinstance(docs, _Scan) else _scan(docs)
    resources, last = scan.hdf5, scan.last
    by_descriptor: dict[str, list[str]] = {}
    for uid, res in resources.items():
        descriptor = last[uid]["descriptor"] if uid in last else _descriptor_of(res, scan.descriptors)
        if descriptor is not None:
            by_descriptor.setdefault(descriptor, []).append(uid)
    out = []
    for descriptor, uids in by_descriptor.items():
        on_disk = min(_rows_in_file(resources[uid]) for uid in uids)
        # seq_num - row index, as the stream numbers its rows (1 for a RunEngine's first rows)
        offset = next((last[u]["seq_nums"]["stop"] - last[u]["indices"]["stop"] for u in uids if u in last), 1)
        for uid in uids:
            # A kill between the StreamDatums of one collect leaves some columns announced
            # further than others: each goes on from its own last row, all to the same end.
            start = last[uid]["indices"]["stop"] if uid in last else 0
            if on_disk <= start:
                continue
            seq = last[uid]["seq_nums"]["stop"] if uid in last else start + offset
            out.append(
                (
                    "stream_datum",
                    {
                        "stream_resource": uid,
                        "uid": f"{uid}/{scan.next_datum_number(uid)}",
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


def _last_file_time(docs) -> float:
    """The last ``timestamp`` the journal's StreamDatums announce (0 if none)."""
    scan = docs if isinstance(docs, _Scan) else _scan(docs)
    out = 0.0
    for uid, datum in scan.last.items():
        resource = scan.hdf5[uid]
        if resource["data_key"] != "timestamp":
            continue
        try:
            with h5py.File(_local_path(resource["uri"]), "r") as f:
                out = max(out, float(f[resource["parameters"]["dataset"]][datum["indices"]["stop"] - 1]))
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
    """Recover the run of one abandoned ``.open`` journal (and its segments); None if there is
    nothing to recover, or another process holds it (live, or being recovered there)."""
    lock = claim_journal(path)  # held while recovering: a second recovery leaves it alone
    if lock is None:
        return None
    with lock:
        return _recover_locked(Path(path), client)


def _recover_locked(path: Path, client) -> RecoveredRun | None:
    folder, uid = run_of(path)
    data_dir = folder.parent
    _repair_rotation(folder, uid, path)
    scan = _scan(read_journal(path, merged=True))
    if scan.start is None:
        log.warning("%s: no start document; nothing to recover, removing it", path)
        path.unlink()
        return None
    start = scan.start
    uid = start["uid"]
    for doc in scan.hdf5.values():
        clear_swmr_flags(_local_path(doc["uri"]))
    from_files_docs = rows_beyond_journal(scan)
    from_files: dict[str, int] = {}
    for _, datum in from_files_docs:
        stream = scan.streams[datum["descriptor"]]
        n = datum["indices"]["stop"] - datum["indices"]["start"]
        from_files[stream] = max(from_files.get(stream, 0), n)
    for name, doc in from_files_docs:
        scan.add(name, doc)
    stop, rows = _stop_document(start, scan, from_files)
    stop["time"] = max(stop["time"], _last_file_time(scan))  # the last sample the files hold
    _rewrite_catalog(client, data_dir, uid, [read_journal(path, merged=True), from_files_docs, [("stop", stop)]])
    with open(path, "r+b", buffering=0) as f:
        f.truncate(_complete_length(f))  # a torn last line would swallow the first appended one
        f.seek(0, os.SEEK_END)
        f.write(b"".join(encode(name, doc) for name, doc in [*from_files_docs, ("stop", stop)]))
        os.fsync(f.fileno())
    os.replace(path, closed_journal_path(data_dir, uid))
    run = RecoveredRun(uid, start.get("scan_id", 0), stop["time"], rows, from_files)
    log.info(run.describe())
    return run


def _rewrite_catalog(client, data_dir: Path, uid: str, parts) -> int:
    """Write run ``uid`` into the catalog anew from its documents (``parts``: iterables of them,
    in order), deleting what the catalog holds of it first: running it twice gives the same
    result. Returns the number of documents written."""
    if uid in client:
        client[uid].delete(recursive=True, external_only=False)  # rewritten whole below
    # Arrays Tiled had begun writing for this run but not yet registered (a kill between the
    # two) survive the delete and would block the rewrite: they are rewritten from the journal
    # too. (The run's HDF5 files live beside, not under, files/<uid>/.)
    leftover = data_dir / "files" / uid
    if leftover.is_dir():
        shutil.rmtree(leftover)
    writer = FlushingTiledWriter(client)
    n = 0
    for part in parts:
        for name, doc in part:  # the journal's read merged: far fewer StreamDatums
            writer(name, doc)
            n += 1
    return n


def repair_run(path: Path, client) -> RepairedRun | None:
    """Replay a closed journal (``<uid>.jsonl``, ending with the run's stop) into the catalog,
    replacing the partial entry its process left; None if another process holds the journal
    (compacting or repairing it) or it does not end with a stop document. The journal is not
    changed. The caller has checked the stop is not in the catalog."""
    lock = claim_journal(path)
    if lock is None:
        return None
    with lock:
        path = Path(path)
        _, uid = run_of(path)
        stop = _last_document(path)
        if stop is None or stop[0] != "stop":
            log.warning("%s: a closed journal not ending with a stop document; left as it is", path)
            return None
        scan = _Scan()

        def counted():
            for name, doc in read_journal(path, merged=True):
                scan.add(name, doc)
                yield name, doc

        documents = _rewrite_catalog(client, path.parent.parent, uid, [counted()])
        for doc in scan.hdf5.values():  # killed before its files were closed, as a live run's
            clear_swmr_flags(_local_path(doc["uri"]))
        start = scan.start or {}
        run = RepairedRun(uid, start.get("scan_id", 0), stop[1].get("exit_status", "?"), documents, dict(scan.rows))
    log.info(run.describe())
    return run


def _last_document(path: Path) -> tuple[str, dict] | None:
    """The last complete line of a journal file, decoded (None if there is none or it is not
    JSON): read from the end, not the whole file."""
    with open(path, "rb") as f:
        end = _complete_length(f)
        if end == 0:
            return None
        start = end - 1
        while start > 0:
            step = min(start, 1 << 16)
            f.seek(start - step)
            i = f.read(step).rfind(b"\n")
            if i >= 0:
                start = start - step + i + 1
                break
            start -= step
        f.seek(start)
        try:
            name, doc = orjson.loads(f.read(end - start))[:2]
        except (orjson.JSONDecodeError, ValueError, TypeError):
            return None
    return name, doc


def _repair_rotation(folder: Path, uid: str, open_path: Path) -> None:
    """Undo what a rotation cut short left: a segment that is the open journal itself (killed
    between the link and the rename) loses that extra name; the new journal not yet renamed
    into place (``<uid>.next.tmp``: no document went to it) and a segment compaction's temporary
    file are dropped."""
    for tmp in folder.glob(f"{uid}.*.tmp"):  # its writer is dead: we hold the open journal
        tmp.unlink(missing_ok=True)
    numbers = sorted(segment_numbers(folder, uid))
    if numbers:
        last = segment_path(folder.parent, uid, numbers[-1])
        try:
            if os.stat(last).st_ino == os.stat(open_path).st_ino:
                last.unlink()
        except FileNotFoundError:
            pass


def _complete_length(f) -> int:
    """The length of the file up to the end of its last complete line."""
    end = f.seek(0, os.SEEK_END)
    pos = end
    while pos > 0:
        step = min(pos, 1 << 16)
        f.seek(pos - step)
        chunk = f.read(step)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return pos - step + i + 1
        pos -= step
    return 0


def _local_path(uri: str) -> Path:
    from urllib.parse import unquote, urlparse

    return Path(unquote(urlparse(uri).path))
