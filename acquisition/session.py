"""RunEngine set-up: catalog writer, persisted metadata, safe exits."""

from __future__ import annotations

import inspect
import sys
from collections import deque

from bluesky import RunEngine
from bluesky.bundlers import RunBundler
from bluesky.utils import DefaultDuringTask

from operando.storage.background import BackgroundConsumer
from operando.storage.catalog import Catalog
from operando.storage.catalog_writer import FlushingTiledWriter
from operando.storage.journal import DocumentJournal
from operando.storage.metadata import JsonMetadataStore


class KeepInterruptionCount(RunBundler):
    """bluesky 1.15's ``rewind`` (a resume from a pause or suspension) restores the event
    counters saved at the last checkpoint; when none was taken since the ``interruptions``
    stream began, that stream's counter is dropped and the next suspension raises
    ``KeyError: 'interruptions'``, closing the run with that as its reason (seen: an MPMS3 status
    fault right after the field-ramp suspension at the start). Interruptions are never retaken,
    so their count survives the rewind."""

    def rewind(self):
        count = self._sequence_counters.get("interruptions")
        super().rewind()
        if count is not None:
            self._sequence_counters["interruptions"] = count


class _StartsOnAnySend:
    """A plan not yet started that takes any first response as its start (``next``)."""

    def __init__(self, plan):
        self._plan = plan
        self._started = False

    def send(self, response):
        if not self._started:
            self._started = True
            return next(self._plan)
        return self._plan.send(response)

    def throw(self, *exc):
        self._started = True
        return self._plan.throw(*exc)

    def close(self):
        return self._plan.close()


class _PlanStack(deque):
    """bluesky 1.15 pushes a suspension's plan onto the stack from another task and then cancels
    the message being processed. When that message's coroutine finishes anyway (one that caught
    the cancellation and returned), its response lands on top of the suspension's and is sent to
    the just-started plan: ``TypeError: can't send non-None value to a just-started generator``
    ended the run (seen once in CI: a GUI run as the laser interlock opened). The response was for
    the plan the suspension rewinds, which gets None, as after any cancelled message."""

    def append(self, plan):
        if inspect.isgenerator(plan) and inspect.getgeneratorstate(plan) == inspect.GEN_CREATED:
            plan = _StartsOnAnySend(plan)
        super().append(plan)


class OperandoRunEngine(RunEngine):
    """bluesky's RunEngine, keeping the reason of an abort requested while paused.

    bluesky 1.15 clears ``_reason`` when it restarts a paused plan in order to abort it, so the
    stop document lost the operator's reason; it is re-supplied to ``close_run`` here.
    """

    RunBundler = KeepInterruptionCount
    _abort_reason = ""

    def _clear_call_cache(self):
        super()._clear_call_cache()
        self._plan_stack = _PlanStack()

    def abort(self, reason=""):
        self._abort_reason = reason
        return super().abort(reason)

    async def _close_run(self, msg):
        if self._exit_status == "abort" and not msg.kwargs.get("reason") and self._abort_reason:
            msg = msg._replace(kwargs={**msg.kwargs, "reason": self._abort_reason})
        self._abort_reason = ""
        return await super()._close_run(msg)


class InterruptibleDuringTask(DefaultDuringTask):
    """Waits for the plan in short slices, so Ctrl-C always reaches the RunEngine.

    bluesky's default waits on an Event with no timeout. A signal is handled by Python only on
    the main thread, and the kernel may hand a process's SIGINT to any thread that does not block
    it — a native library's pool (polars' tokio threads, loaded by Tiled's SQL adapter when
    installed) included: the main thread then slept on and Ctrl-C was lost until the run ended.
    Waking every 0.1 s runs the pending handler (bluesky's: pause, then abort at open circuit).
    A matplotlib Qt session keeps bluesky's own wait (its Qt loop wakes the main thread).
    """

    SLICE_S = 0.1

    def block(self, blocking_event):
        if "matplotlib" in sys.modules and "qt" in sys.modules["matplotlib"].get_backend().lower():
            return super().block(blocking_event)
        while not blocking_event.wait(self.SLICE_S):
            pass


def make_run_engine(catalog: Catalog, *, call_returns_result: bool = False) -> RunEngine:
    """A RunEngine whose every document goes to the catalog, with persisted metadata.

    Every document is first journaled (``RE.journal``: JSON lines in the data directory, written
    at once and fsync'd every second), then handed to the catalog writer, which runs on its own
    thread (``RE.catalog_writer``) and writes its caches out every second (streamed rows every
    ``rows_every_s``). A run's stop document waits for that writer — and for the journal's
    compaction, which follows the stop into the catalog — so when ``RE(plan)`` returns (or
    raises) the run is in the catalog, as a user at the prompt expects;
    ``RE.catalog_writer.flush()`` also reports any write that failed.
    """
    md = JsonMetadataStore(catalog.data_dir / "run_engine.json")
    RE = OperandoRunEngine(md, call_returns_result=call_returns_result, during_task=InterruptibleDuringTask())
    RE.record_interruptions = True  # pauses and suspensions become the `interruptions` stream
    RE.journal = DocumentJournal(catalog.data_dir)
    RE.subscribe(RE.journal)  # first: on disk before anything slower sees it
    # Once a run's stop is in the catalog, its journal is compacted (one .jsonl.gz; see journal.py).
    RE.catalog_writer = BackgroundConsumer(FlushingTiledWriter(catalog.client, on_stored=RE.journal.compact))
    RE.subscribe(RE.catalog_writer)
    RE.subscribe(lambda name, doc: RE.catalog_writer.wait(), "stop")  # the run stored, then returned
    catalog.writers.append(RE.catalog_writer)  # flushed before the catalog closes
    return RE
