"""The document journal: every document of a run, in order, as JSON lines in the data directory.

Why: the catalog writer batches (TiledWriter caches events until 10,000 rows or the stop
document), so a crash can lose what the catalog had not yet written. The journal is written as
each document is emitted — one ``write()`` per document, so a killed process loses nothing the
operating system already has — and fsync'd at least every second, so a power loss costs at most a
second. It is also what replay reads (documents exactly as emitted, with their timing).

Files of run ``<uid>`` in ``journal/`` (each line ``[name, doc]``; numpy values become lists; no
pickle, ever)::

    <uid>.open.jsonl        the segment being written; the writing process holds an exclusive
                            lock (flock) on it. An ``.open`` journal nobody holds locked belongs
                            to a run whose process died: recovery closes it.
    <uid>.000001.seg        closed segments, oldest first: the open journal is rotated every
    <uid>.000001.seg.gz     ``SEGMENT_S`` of wall time or ``SEGMENT_BYTES``, and each closed
                            segment is compacted in the background (``.seg`` → ``.seg.gz``).
    <uid>.jsonl             the last segment once the stop document is on disk.
    <uid>.jsonl.gz          the whole journal, compacted: once the stop document is in the
                            catalog, every segment and the last one become this one file.
    *.tmp                   being written; never read.

A run's documents are its segments in order, then ``<uid>.jsonl`` or ``<uid>.open.jsonl`` — or
``<uid>.jsonl.gz`` alone when it exists (it is renamed into place complete, so anything else of
that run is a leftover). Where a segment has both forms, the ``.gz`` one is read.

**Compaction** (``compact_lines``): each run of consecutive StreamDatum lines (the 8 columns of
each collect, between two other documents) whose datums of one stream resource are contiguous in
indices, seq_nums and uid numbers becomes one StreamDatum per resource, followed by a third
element, the rows of each original datum; then gzip. Readers expand them back: replay delivers
exactly the documents as emitted (checked block by block when compacting: a block that would not
come back byte for byte is kept as it was). ``read_journal(..., merged=True)`` gives the merged
datums instead (what recovery feeds the catalog writer: far fewer documents).

**Rotation** (``DocumentJournal._rotate``), the writer holding the lock on the open file A:
fsync A; hard-link A as the next segment; create ``<uid>.next.tmp`` (B) and lock it; rename B
over ``<uid>.open.jsonl``; fsync the directory; close A. At every instant a locked
``<uid>.open.jsonl`` exists, so the run is live to any other process; after a crash at any step
the files read back to every document once (a segment that is the same file as the open one —
a crash between the link and the rename — is read once; recovery removes the extra name).
"""

from __future__ import annotations

import fcntl
import gzip
import logging
import os
import queue
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson

log = logging.getLogger(__name__)
FSYNC_INTERVAL_S = 1.0
SEGMENT_S = 900.0  # rotate the open journal every 15 min of wall time...
SEGMENT_BYTES = 64 << 20  # ...or 64 MB, whichever comes first
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_DATUM_PREFIX = b'["stream_datum",'
_SEGMENT = re.compile(r"(\d{6})\.seg(\.gz)?")
_GZIP_LEVEL = 6


def _at_step(step: str) -> None:
    """Called at each step of a rotation or a compaction (tests kill the process here)."""


def journal_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "journal"


def open_journal_path(data_dir: Path, uid: str) -> Path:
    return journal_dir(data_dir) / f"{uid}.open.jsonl"


def closed_journal_path(data_dir: Path, uid: str) -> Path:
    """Where the journal goes at the stop (its last segment, until it is compacted)."""
    return journal_dir(data_dir) / f"{uid}.jsonl"


def compacted_journal_path(data_dir: Path, uid: str) -> Path:
    return journal_dir(data_dir) / f"{uid}.jsonl.gz"


def segment_path(data_dir: Path, uid: str, number: int, compacted: bool = False) -> Path:
    return journal_dir(data_dir) / f"{uid}.{number:06d}.seg{'.gz' if compacted else ''}"


def find_journal(data_dir: Path, uid: str) -> Path | None:
    """The run's journal (a path for ``read_journal``), or None: compacted, closed or open."""
    for path in (
        compacted_journal_path(data_dir, uid),
        closed_journal_path(data_dir, uid),
        open_journal_path(data_dir, uid),
    ):
        if path.exists():
            return path
    if _segments(journal_dir(data_dir), uid):  # a crash left only segments (never seen)
        return open_journal_path(data_dir, uid)
    return None


def run_of(path: Path) -> tuple[Path, str]:
    """(journal folder, run uid) of any journal file name."""
    name = Path(path).name
    for suffix in (".open.jsonl", ".jsonl.gz", ".jsonl", ".next.tmp"):
        if name.endswith(suffix):
            return Path(path).parent, name[: -len(suffix)]
    uid, _, rest = name.partition(".")
    return Path(path).parent, uid


def _default(obj):
    # Anything orjson cannot serialise natively (a Path, a numpy bool_…) as its plain value.
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def encode(name: str, doc: dict) -> bytes:
    return orjson.dumps([name, doc], option=_OPTIONS, default=_default) + b"\n"


# --- reading -------------------------------------------------------------------------------


def _names(folder: Path, uid: str) -> set[str]:
    prefix = f"{uid}."
    try:
        with os.scandir(folder) as entries:
            return {e.name for e in entries if e.name.startswith(prefix)}
    except FileNotFoundError:
        return set()


def _segments(folder: Path, uid: str, names: set[str] | None = None) -> dict[int, list[str]]:
    """Segment number -> its file names (``.seg``, ``.seg.gz``: one or both)."""
    names = _names(folder, uid) if names is None else names
    out: dict[int, list[str]] = {}
    for name in names:
        m = _SEGMENT.fullmatch(name[len(uid) + 1 :])
        if m:
            out.setdefault(int(m.group(1)), []).append(name)
    return out


def segment_numbers(folder: Path, uid: str) -> list[int]:
    return sorted(_segments(folder, uid))


def journal_files(folder: Path, uid: str) -> list[Path]:
    """The files holding run ``uid``'s documents, in reading order (see the module docstring)."""
    names = _names(folder, uid)
    if f"{uid}.jsonl.gz" in names:
        return [folder / f"{uid}.jsonl.gz"]
    out = []
    for _, forms in sorted(_segments(folder, uid, names).items()):
        out.append(folder / max(forms, key=lambda n: n.endswith(".gz")))  # the .gz when both
    for tail in (f"{uid}.jsonl", f"{uid}.open.jsonl"):
        if tail in names:
            out.append(folder / tail)
            break
    return out


def _snapshot(folder: Path, uid: str) -> tuple[list[int], tuple[Path, object] | None]:
    """The run's segment numbers and its last file, opened (pinned: a rotation or the stop may
    rename it meanwhile), as one consistent state: the listing is taken again until it holds
    still. Segments are opened later, one at a time: their content never changes, only their
    form (``.seg`` → ``.seg.gz``), until the final compaction replaces them all."""
    final = f"{uid}.jsonl.gz"
    for _ in range(200):
        names = _names(folder, uid)
        numbers = [] if final in names else sorted(_segments(folder, uid, names))
        tail = next((n for n in (final, f"{uid}.jsonl", f"{uid}.open.jsonl") if n in names), None)
        if tail is None:
            return numbers, None
        try:
            f = open(folder / tail, "rb")
        except FileNotFoundError:
            continue
        try:
            again = _names(folder, uid)
            same = (
                os.stat(folder / tail).st_ino == os.fstat(f.fileno()).st_ino
                and ([] if final in again else sorted(_segments(folder, uid, again))) == numbers
                and next((n for n in (final, f"{uid}.jsonl", f"{uid}.open.jsonl") if n in again), None) == tail
            )
        except FileNotFoundError:
            same = False
        if not same:
            f.close()
            time.sleep(0.001)
            continue
        if numbers:  # the last segment linked to the open file (a rotation between two steps)
            try:
                if os.stat(folder / f"{uid}.{numbers[-1]:06d}.seg").st_ino == os.fstat(f.fileno()).st_ino:
                    numbers.pop()
            except FileNotFoundError:
                pass
        return numbers, (folder / tail, f)
    raise OSError(f"{folder}: the journal files of {uid} kept changing")


def _open_segment(folder: Path, uid: str, number: int) -> tuple[Path, object] | None:
    for name in (f"{uid}.{number:06d}.seg.gz", f"{uid}.{number:06d}.seg", f"{uid}.{number:06d}.seg.gz"):
        try:
            return folder / name, open(folder / name, "rb")
        except FileNotFoundError:
            continue
    return None  # both gone: the final compaction replaced every segment


def _raw_lines(path: Path, f) -> Iterator[bytes]:
    stream = gzip.GzipFile(fileobj=f, mode="rb") if path.name.endswith(".gz") else f
    for line in stream:
        if not line.endswith(b"\n"):
            log.warning("%s: ignoring a partial last line (%d bytes)", path, len(line))
            return
        yield line


def _decode(lines: Iterable[bytes], merged: bool) -> Iterator[tuple[str, dict, int]]:
    """(name, doc, how many documents as emitted it stands for)."""
    group: list[tuple[dict, list[int]]] = []
    size = 0
    for line in lines:
        item = orjson.loads(line)
        if len(item) == 2:
            yield item[0], item[1], 1
            continue
        _, doc, extra = item  # a merged StreamDatum (compacted journal)
        if not group:
            size = extra["group"]
        group.append((doc, extra["rows"]))
        if len(group) == size:
            if merged:
                for doc, rows in group:
                    yield "stream_datum", doc, len(rows)
            else:
                for part in _expand(group):
                    yield "stream_datum", part, 1
            group = []
    if group:
        raise ValueError("a compacted journal ends inside a group of merged StreamDatums")


def read_journal(path: Path, *, merged: bool = False) -> Iterator[tuple[str, dict]]:
    """The documents of the run whose journal ``path`` names, in order: its segments, then the
    open or closed journal — or the compacted one — whichever of them exist now (``path`` itself
    may have been renamed or compacted since it was found). A torn last line (a crash mid-write)
    is skipped. ``merged``: StreamDatums merged by compaction stay merged (else expanded back to
    the documents as emitted)."""
    folder, uid = run_of(Path(path))
    numbers, tail = _snapshot(folder, uid)
    if tail is None and not numbers:
        raise FileNotFoundError(path)
    done = 0  # documents as emitted, delivered so far
    try:
        for number in numbers:
            opened = _open_segment(folder, uid, number)
            if opened is None:  # compacted into <uid>.jsonl.gz meanwhile: go on from there
                if tail is not None:
                    tail[1].close()
                tail = None
                yield from _skip(folder / f"{uid}.jsonl.gz", done, merged)
                return
            p, f = opened
            with f:
                for name, doc, n in _decode(_raw_lines(p, f), merged):
                    yield name, doc
                    done += n
        if tail is not None:
            for name, doc, _ in _decode(_raw_lines(*tail), merged):
                yield name, doc
    finally:
        if tail is not None:
            tail[1].close()


def _skip(path: Path, done: int, merged: bool) -> Iterator[tuple[str, dict]]:
    """The documents of ``path`` after the first ``done`` (as emitted; a segment boundary)."""
    with open(path, "rb") as f:
        for name, doc, n in _decode(_raw_lines(path, f), merged):
            if done > 0:
                done -= n
                continue
            yield name, doc


def read_journal_file(path: Path, *, merged: bool = False) -> Iterator[tuple[str, dict]]:
    """The documents of this one file (a segment, a journal), plain or gzip'd."""
    with open(path, "rb") as f:
        for name, doc, _ in _decode(_raw_lines(Path(path), f), merged):
            yield name, doc


# --- compaction ----------------------------------------------------------------------------


def _datum_number(uid: str, resource: str) -> int | None:
    head, _, number = uid.rpartition("/")
    return int(number) if head == resource and number.isdigit() else None


def _expand(group: list[tuple[dict, list[int]]]) -> Iterator[dict]:
    """The StreamDatums a group of merged ones stood for, in their original order: round by
    round (one collect), resource by resource."""
    states = []
    for doc, rows in group:
        last = _datum_number(doc["uid"], doc["stream_resource"])
        states.append([doc, rows, last - len(rows) + 1, doc["indices"]["start"], doc["seq_nums"]["start"]])
    for j in range(len(group[0][1])):
        for state in states:
            doc, rows, number, index, seq = state
            n = rows[j]
            part = dict(doc)
            part["uid"] = f"{doc['stream_resource']}/{number + j}"
            part["seq_nums"] = {"start": seq, "stop": seq + n}
            part["indices"] = {"start": index, "stop": index + n}
            state[3], state[4] = index + n, seq + n
            yield part


def _merge_block(lines: list[bytes]) -> list[bytes]:
    """One run of consecutive StreamDatum lines, merged per stream resource where that comes
    back exactly: whole rounds (one datum per resource, in the same order: a collect), a partial
    round at either end (a rotation may fall inside a collect) kept as it was."""
    if len(lines) < 2:
        return lines
    try:
        docs = [orjson.loads(line)[1] for line in lines]
        m = len(dict.fromkeys(d["stream_resource"] for d in docs))
    except (KeyError, TypeError, IndexError, orjson.JSONDecodeError):
        return lines
    for offset in range(m):
        rounds = (len(docs) - offset) // m
        if rounds < 2:
            break
        end = offset + rounds * m
        merged = _merge_rounds(docs[offset:end], lines[offset:end], m)
        if merged is not None:
            return lines[:offset] + merged + lines[end:]
    return lines


def _merge_rounds(docs: list[dict], lines: list[bytes], m: int) -> list[bytes] | None:
    order = [d["stream_resource"] for d in docs[:m]]
    if len(set(order)) != m:
        return None
    try:
        group = []
        for i, resource in enumerate(order):
            parts = docs[i::m]
            rows = [p["indices"]["stop"] - p["indices"]["start"] for p in parts]
            merged = dict(parts[0])
            merged["uid"] = parts[-1]["uid"]  # as TiledWriter's concatenate_stream_datums
            merged["seq_nums"] = {"start": parts[0]["seq_nums"]["start"], "stop": parts[-1]["seq_nums"]["stop"]}
            merged["indices"] = {"start": parts[0]["indices"]["start"], "stop": parts[-1]["indices"]["stop"]}
            if _datum_number(merged["uid"], resource) is None:
                return None
            group.append((merged, rows))
        if [encode("stream_datum", d) for d in _expand(group)] != lines:
            return None  # not contiguous, not round by round, other keys…: kept as emitted
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    out = [orjson.dumps(["stream_datum", group[0][0], {"group": m, "rows": group[0][1]}], option=_OPTIONS) + b"\n"]
    out += [orjson.dumps(["stream_datum", d, {"rows": r}], option=_OPTIONS) + b"\n" for d, r in group[1:]]
    return out


def compact_lines(lines: Iterable[bytes]) -> Iterator[bytes]:
    """Journal lines with each run of consecutive StreamDatums merged where that is exact."""
    block: list[bytes] = []
    for line in lines:
        if line.startswith(_DATUM_PREFIX):
            block.append(line)
            continue
        if block:
            yield from _merge_block(block)
            block = []
        yield line
    if block:
        yield from _merge_block(block)


def _write_compacted(src: Path, out) -> None:
    """``src`` (plain JSON lines) compacted, as one gzip member appended to the open file ``out``."""
    with open(src, "rb") as f, gzip.GzipFile(fileobj=out, mode="wb", compresslevel=_GZIP_LEVEL, mtime=0) as gz:
        chunk: list[bytes] = []
        size = 0
        for line in compact_lines(_raw_lines(src, f)):
            chunk.append(line)
            size += len(line)
            if size >= 1 << 20:
                gz.write(b"".join(chunk))
                chunk, size = [], 0
        gz.write(b"".join(chunk))


def _tmp(path: Path) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(folder: Path, older_than_s: float = 600.0) -> list[Path]:
    """Remove the temporary files a crash left: those whose writing process (named in the file
    name) has ended, or untouched for ``older_than_s``, of runs no process holds open."""
    removed = []
    now = time.time()
    for tmp in folder.glob("*.tmp"):
        m = re.search(r"\.(\d+)-\d+\.tmp$", tmp.name)
        try:
            stale = (m is not None and not _pid_alive(int(m.group(1)))) or now - tmp.stat().st_mtime > older_than_s
        except FileNotFoundError:
            continue
        _, uid = run_of(tmp)
        if stale and not is_live(folder / f"{uid}.open.jsonl"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def compact_segment(raw: Path) -> Path:
    """``<uid>.NNNNNN.seg`` → ``<uid>.NNNNNN.seg.gz``: written aside, fsync'd, renamed into
    place, then the plain one removed (readers take the .gz as soon as it exists)."""
    target = raw.with_name(raw.name + ".gz")
    if target.exists():  # compacted already (by another process); the plain one is a leftover
        raw.unlink(missing_ok=True)
        return target
    tmp = _tmp(target)
    try:
        with open(tmp, "wb") as out:
            _write_compacted(raw, out)
            out.flush()
            os.fsync(out.fileno())
        _at_step("segment:written")
        os.replace(tmp, target)
        _fsync_dir(raw.parent)
        _at_step("segment:renamed")
    finally:
        tmp.unlink(missing_ok=True)
    raw.unlink(missing_ok=True)
    _at_step("segment:removed")
    return target


def _lock_existing(path: Path):
    """``path`` opened and exclusively locked, or None (gone, or another process holds it);
    checked to be still the file of that name once locked."""
    for _ in range(100):
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            return None
        try:
            same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            f.close()
            return None
        if same:
            return f
        f.close()  # the name now belongs to a newer file (a rotation): look again
    return None


def compact_run(data_dir: Path, uid: str) -> Path | None:
    """Make a closed run's journal one file, ``<uid>.jsonl.gz``; returns it (None if the run
    is not closed, or another process is compacting it). Call it once the stop document is in
    the catalog. Order: every segment compacted; the compacted segments and the compacted last
    one written to a temporary file, fsync'd, renamed to ``<uid>.jsonl.gz`` (from then on the
    only file read); then the segments and ``<uid>.jsonl`` removed."""
    folder = journal_dir(data_dir)
    final = compacted_journal_path(data_dir, uid)
    closed = closed_journal_path(data_dir, uid)
    if final.exists():
        remove_leftovers(folder, uid)
        return final
    lock = _lock_existing(closed)
    if lock is None:
        return None
    try:
        if final.exists():  # another process finished while this one waited for the name
            return final
        for _, forms in sorted(_segments(folder, uid).items()):
            if not any(n.endswith(".gz") for n in forms):
                compact_segment(folder / forms[0])
        _at_step("final:segments")
        segments = [segment_path(data_dir, uid, n, compacted=True) for n in sorted(_segments(folder, uid))]
        tmp = _tmp(final)
        try:
            with open(tmp, "wb") as out:
                for seg in segments:  # gzip members concatenate into one gzip stream
                    with open(seg, "rb") as f:
                        shutil.copyfileobj(f, out, 1 << 20)
                _write_compacted(closed, out)
                out.flush()
                os.fsync(out.fileno())
            _at_step("final:written")
            os.replace(tmp, final)
            _fsync_dir(folder)
            _at_step("final:renamed")
        finally:
            tmp.unlink(missing_ok=True)
        remove_leftovers(folder, uid)
        _at_step("final:removed")
        return final
    finally:
        lock.close()


def remove_leftovers(folder: Path, uid: str) -> None:
    """Once ``<uid>.jsonl.gz`` exists: the files it replaced (segments, ``<uid>.jsonl``)."""
    if not (folder / f"{uid}.jsonl.gz").exists():
        return
    names = _names(folder, uid)
    for forms in _segments(folder, uid, names).values():
        for name in forms:
            (folder / name).unlink(missing_ok=True)
    (folder / f"{uid}.jsonl").unlink(missing_ok=True)
    _fsync_dir(folder)


# --- writing -------------------------------------------------------------------------------


@dataclass
class _OpenRun:
    file: object  # raw, unbuffered, locked
    started: float  # clock() when this segment began
    bytes: int = 0
    next_segment: int = 1
    closing: bool = False  # the stop is written: no more rotations


class _Compactor:
    """One thread compacting closed segments in the background, in order."""

    def __init__(self):
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="journal-compactor", daemon=True)
        self._thread.start()

    def put(self, path: Path) -> None:
        self._queue.put(path)

    def _work(self) -> None:
        while True:
            path = self._queue.get()
            try:
                if path is None:
                    return
                compact_segment(path)
            except Exception:  # the plain segment stays, as valid as before
                log.exception("journal: compacting %s failed", path)
            finally:
                self._queue.task_done()

    def drain(self) -> None:
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


class DocumentJournal:
    """A RunEngine subscriber that journals each run; subscribe it before the catalog writer.

    The open journal of a run is rotated into a segment every ``segment_s`` seconds of
    ``clock`` (wall time) or ``segment_bytes``, and closed segments are compacted on a thread
    of their own. ``compact(uid)`` (once the run's stop is in the catalog) makes the journal of
    a closed run one compacted file.
    """

    def __init__(
        self,
        data_dir: Path,
        fsync_interval_s: float = FSYNC_INTERVAL_S,
        *,
        segment_s: float = SEGMENT_S,
        segment_bytes: int = SEGMENT_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.dir = journal_dir(data_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = Path(data_dir)
        self.segment_s, self.segment_bytes, self._clock = segment_s, segment_bytes, clock
        self._runs: dict[str, _OpenRun] = {}
        self._dirty: set[str] = set()
        self._runs_of_descriptors: dict[str, str] = {}
        self._lock = threading.Lock()
        self._interval = fsync_interval_s
        self._compactor: _Compactor | None = None
        self._stop = threading.Event()
        self._syncer = threading.Thread(target=self._sync_loop, name="journal-fsync", daemon=True)
        self._syncer.start()

    def __call__(self, name: str, doc: dict) -> None:
        if name == "start":
            uid = doc["uid"]
            self._open(uid)
        elif "run_start" in doc:
            uid = doc["run_start"]
            if name == "descriptor":
                self._runs_of_descriptors[doc["uid"]] = uid
        else:  # event, event_page, stream_datum: they name their descriptor
            uid = self._runs_of_descriptors.get(doc.get("descriptor"))
        line = encode(name, doc)
        with self._lock:
            run = self._runs.get(uid)
            if run is None:
                log.warning("journal: %s document for no open run; not journaled", name)
                return
            run.file.write(line)  # unbuffered: one write() syscall, in the OS page cache at once
            run.bytes += len(line)
            self._dirty.add(uid)
            run.closing = name == "stop"
            if self._due(run):
                self._try_rotate(uid)
        if name == "stop":
            self._close(uid)

    def _open(self, uid: str) -> None:
        f = open(open_journal_path(self.data_dir, uid), "ab", buffering=0)
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # "this run is live"
        with self._lock:
            self._runs[uid] = _OpenRun(f, self._clock())

    def _due(self, run: _OpenRun) -> bool:
        if run.closing or run.bytes == 0:
            return False
        return run.bytes >= self.segment_bytes or self._clock() - run.started >= self.segment_s

    def _try_rotate(self, uid: str) -> None:
        try:
            self._rotate(uid)
        except OSError:  # e.g. disk full: the open journal goes on growing, as before rotation
            log.exception("journal: rotating the journal of %s failed; trying again in a segment's time", uid)
            run = self._runs[uid]
            run.bytes, run.started = 0, self._clock()  # not at every document meanwhile

    def _rotate(self, uid: str) -> None:
        """Close the open journal as the run's next segment and go on in a new one (the caller
        holds ``self._lock``). See the module docstring for why this order. A step that fails
        (before the rename) is undone: the run goes on in the same open journal."""
        run = self._runs[uid]
        open_path = open_journal_path(self.data_dir, uid)
        segment = segment_path(self.data_dir, uid, run.next_segment)
        tmp = self.dir / f"{uid}.next.tmp"
        os.fsync(run.file.fileno())
        _at_step("rotate:synced")
        os.link(open_path, segment)
        new = None
        try:
            _at_step("rotate:linked")
            new = open(tmp, "wb", buffering=0)
            fcntl.flock(new.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            _at_step("rotate:created")
            os.replace(tmp, open_path)
        except BaseException:
            segment.unlink(missing_ok=True)
            tmp.unlink(missing_ok=True)
            if new is not None:
                new.close()
            raise
        _at_step("rotate:renamed")
        _fsync_dir(self.dir)
        old, run.file = run.file, new
        run.bytes, run.started, run.next_segment = 0, self._clock(), run.next_segment + 1
        old.close()
        _at_step("rotate:closed")
        if self._compactor is None:
            self._compactor = _Compactor()
        self._compactor.put(segment)

    def _close(self, uid: str) -> None:
        with self._lock:
            run = self._runs.pop(uid)
            self._dirty.discard(uid)
        os.fsync(run.file.fileno())
        os.replace(open_journal_path(self.data_dir, uid), closed_journal_path(self.data_dir, uid))
        _fsync_dir(self.dir)
        run.file.close()  # releases the lock only after the rename

    def compact(self, uid: str) -> Path | None:
        """Compact a closed run's journal into ``<uid>.jsonl.gz`` (call once its stop document is
        in the catalog). Waits for its segments' background compaction; never raises."""
        try:
            if self._compactor is not None:
                self._compactor.drain()
            return compact_run(self.data_dir, uid)
        except Exception:
            log.exception("journal: compacting the journal of %s failed (left as it was)", uid)
            return None

    def sync(self) -> None:
        with self._lock:
            files = [self._runs[u].file for u in self._dirty if u in self._runs]
            self._dirty.clear()
        for f in files:
            try:
                os.fsync(f.fileno())
            except (OSError, ValueError):  # closed meanwhile: _close or _rotate fsync'd it
                pass

    def _sync_loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.sync()
            with self._lock:
                for uid, run in list(self._runs.items()):
                    if self._due(run):
                        self._try_rotate(uid)

    def close(self) -> None:
        self._stop.set()
        self._syncer.join()
        self.sync()
        if self._compactor is not None:
            self._compactor.close()
            self._compactor = None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def claim_journal(path: Path):
    """An ``.open`` journal locked for this process (recovery holds it while it works), or None
    when a process holds it (its run is live) or it is gone (closed meanwhile)."""
    return _lock_existing(Path(path))


def is_live(path: Path) -> bool:
    """Whether a process still holds this ``.open`` journal (its run is being acquired now)."""
    f = claim_journal(path)
    if f is None:
        return Path(path).exists()
    f.close()
    return False
