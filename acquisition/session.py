"""RunEngine set-up: catalog writer, persisted metadata, safe exits."""

from __future__ import annotations

import json
import os
from collections.abc import MutableMapping
from pathlib import Path

from bluesky import RunEngine

from .background import BackgroundConsumer
from .catalog import Catalog
from .catalog_writer import FlushingTiledWriter
from .journal import DocumentJournal


class JsonMetadataStore(MutableMapping):
    """RunEngine metadata persisted as JSON, so scan_id keeps counting across processes.

    Written atomically (temp file + rename) on every change; no pickle, no code.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._data: dict = {}
        if self.path.exists():
            try:
                self._data = json.loads(self.path.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{self.path}: corrupt RunEngine metadata ({exc})") from None

    def _save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self._data, indent=1, default=str))
        os.replace(tmp, self.path)

    def __getitem__(self, key):
        return self._data[key]

    def __setitem__(self, key, value):
        self._data[key] = value
        self._save()

    def __delitem__(self, key):
        del self._data[key]
        self._save()

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


class OperandoRunEngine(RunEngine):
    """bluesky's RunEngine, keeping the reason of an abort requested while paused.

    bluesky 1.15 clears ``_reason`` when it restarts a paused plan in order to abort it, so the
    stop document lost the operator's reason; it is re-supplied to ``close_run`` here.
    """

    _abort_reason = ""

    def abort(self, reason=""):
        self._abort_reason = reason
        return super().abort(reason)

    async def _close_run(self, msg):
        if self._exit_status == "abort" and not msg.kwargs.get("reason") and self._abort_reason:
            msg = msg._replace(kwargs={**msg.kwargs, "reason": self._abort_reason})
        self._abort_reason = ""
        return await super()._close_run(msg)


def make_run_engine(catalog: Catalog, *, call_returns_result: bool = False) -> RunEngine:
    """A RunEngine whose every document goes to the catalog, with persisted metadata.

    Every document is first journaled (``RE.journal``: JSON lines in the data directory, written
    at once and fsync'd every second), then handed to the catalog writer, which runs on its own
    thread (``RE.catalog_writer``) and writes its caches out every second; call its ``flush()``
    before reading a run that just ended.
    """
    md = JsonMetadataStore(catalog.data_dir / "run_engine.json")
    RE = OperandoRunEngine(md, call_returns_result=call_returns_result)
    RE.record_interruptions = True  # pauses and suspensions become the `interruptions` stream
    RE.journal = DocumentJournal(catalog.data_dir)
    RE.subscribe(RE.journal)  # first: on disk before anything slower sees it
    RE.catalog_writer = BackgroundConsumer(FlushingTiledWriter(catalog.client))
    RE.subscribe(RE.catalog_writer)
    catalog.writers.append(RE.catalog_writer)  # flushed before the catalog closes
    return RE
