"""Hand documents to a slow consumer (the catalog writer) on its own thread.

The RunEngine calls its subscribers on its event loop; a catalog write that takes 0.4 s (Tiled
writes StreamDatum batches every 10,000 rows) would stall every device for that long. Here the
RunEngine only enqueues; one worker thread feeds the consumer in order.

If the consumer caches (TiledWriter does, up to 10,000 rows), the worker also calls its
``flush_buffers()`` at least every ``flush_interval_s`` while anything is cached, so the catalog is
never more than about a second behind the instruments — even during a week-long run — except
for what the consumer itself holds back on purpose (``FlushingTiledWriter`` registers streamed
rows every ``rows_every_s``): while its ``cached()`` says so, the flushes go on, documents or not.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

log = logging.getLogger(__name__)
_STOP = object()


class BackgroundConsumer:
    def __init__(self, consumer, name: str = "catalog-writer", flush_interval_s: float = 1.0):
        self._consumer = consumer
        self._flush_buffers = getattr(consumer, "flush_buffers", None)
        self._cached = getattr(consumer, "cached", None)  # something held back for a later flush
        self._flush_interval = flush_interval_s
        self._queue: queue.Queue = queue.Queue()
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def __call__(self, name: str, doc: dict) -> None:
        self._queue.put((name, doc))

    def _work(self) -> None:
        pending = False  # documents consumed since the last flush_buffers()
        last_flush = time.monotonic()
        while True:
            timeout = None
            if pending and self._flush_buffers is not None:
                timeout = max(0.0, last_flush + self._flush_interval - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            if item is not None:
                try:
                    if item is _STOP:
                        return
                    self._consumer(*item)
                    pending = True
                except BaseException as exc:  # keep consuming: later documents may still land
                    log.exception("%s failed on a %s document", self._thread.name, item[0])
                    self._errors.append(exc)
                finally:
                    self._queue.task_done()
            if pending and self._flush_buffers is not None:
                if time.monotonic() - last_flush >= self._flush_interval:
                    try:
                        self._flush_buffers()
                    except Exception as exc:
                        log.exception("%s: periodic flush failed", self._thread.name)
                        self._errors.append(exc)
                    # Rows the consumer holds back (FlushingTiledWriter registers streamed rows
                    # every rows_every_s) keep the timer running, documents or not (a pause).
                    pending = bool(self._cached()) if self._cached is not None else False
                    last_flush = time.monotonic()

    def wait(self) -> None:
        """Block until every document handed over so far is consumed (errors stay for flush)."""
        self._queue.join()

    def flush(self) -> None:
        """Block until every document handed over so far is consumed; raise its first error."""
        self._queue.join()
        if self._errors:
            errors, self._errors = self._errors, []
            raise RuntimeError(f"{self._thread.name}: {len(errors)} document(s) failed") from errors[0]

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()
