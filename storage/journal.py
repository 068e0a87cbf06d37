"""The document journal: every document of a run, in order, as JSON lines in the data directory.

Why: the catalog writer batches (TiledWriter caches events until 10,000 rows or the stop
document), so a crash can lose what the catalog had not yet written. The journal is written as
each document is emitted — one ``write()`` per document, so a killed process loses nothing the
operating system already has — and fsync'd at least every second, so a power loss costs at most a
second. It is also what replay reads (documents exactly as emitted, with their timing).

Layout: ``journal/<uid>.open.jsonl`` while the run is being written (the writing process holds an
exclusive lock on it), renamed to ``journal/<uid>.jsonl`` once the stop document is on disk. An
``.open`` journal that nobody holds locked belongs to a run whose process died: recovery closes it.
Each line is ``[name, doc]``; numpy values become lists. No pickle, ever.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson

log = logging.getLogger(__name__)
FSYNC_INTERVAL_S = 1.0
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def journal_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "journal"


def open_journal_path(data_dir: Path, uid: str) -> Path:
    return journal_dir(data_dir) / f"{uid}.open.jsonl"


def closed_journal_path(data_dir: Path, uid: str) -> Path:
    return journal_dir(data_dir) / f"{uid}.jsonl"


def find_journal(data_dir: Path, uid: str) -> Path | None:
    for path in (closed_journal_path(data_dir, uid), open_journal_path(data_dir, uid)):
        if path.exists():
            return path
    return None


def _default(obj):
    # Anything orjson cannot serialise natively (a Path, a numpy bool_…) as its plain value.
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)


def encode(name: str, doc: dict) -> bytes:
    return orjson.dumps([name, doc], option=_OPTIONS, default=_default) + b"\n"


def read_journal(path: Path) -> Iterator[tuple[str, dict]]:
    """The documents of a journal, in order. A torn last line (crash mid-write) is skipped."""
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                log.warning("%s: ignoring a partial last line (%d bytes)", path, len(line))
                return
            name, doc = orjson.loads(line)
            yield name, doc


class DocumentJournal:
    """A RunEngine subscriber that journals each run; subscribe it before the catalog writer."""

    def __init__(self, data_dir: Path, fsync_interval_s: float = FSYNC_INTERVAL_S):
        self.dir = journal_dir(data_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = Path(data_dir)
        self._files: dict[str, object] = {}  # run uid -> open raw file
        self._dirty: set[str] = set()
        self._runs_of_descriptors: dict[str, str] = {}
        self._lock = threading.Lock()
        self._interval = fsync_interval_s
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
            f = self._files.get(uid)
            if f is None:
                log.warning("journal: %s document for no open run; not journaled", name)
                return
            f.write(line)  # unbuffered: one write() syscall, in the OS page cache at once
            self._dirty.add(uid)
        if name == "stop":
            self._close(uid)

    def _open(self, uid: str) -> None:
        f = open(open_journal_path(self.data_dir, uid), "ab", buffering=0)
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # "this run is live"
        with self._lock:
            self._files[uid] = f

    def _close(self, uid: str) -> None:
        with self._lock:
            f = self._files.pop(uid)
            self._dirty.discard(uid)
        os.fsync(f.fileno())
        os.replace(open_journal_path(self.data_dir, uid), closed_journal_path(self.data_dir, uid))
        _fsync_dir(self.dir)
        f.close()  # releases the lock only after the rename

    def sync(self) -> None:
        with self._lock:
            files = [self._files[u] for u in self._dirty if u in self._files]
            self._dirty.clear()
        for f in files:
            try:
                os.fsync(f.fileno())
            except (OSError, ValueError):  # closed meanwhile: _close fsync'd it
                pass

    def _sync_loop(self) -> None:
        while not self._stop.wait(self._interval):
            self.sync()

    def close(self) -> None:
        self._stop.set()
        self.sync()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_live(path: Path) -> bool:
    """Whether a process still holds this ``.open`` journal (its run is being acquired now)."""
    with open(path, "rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return False
