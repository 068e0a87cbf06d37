"""Hand documents to a slow consumer (the catalog writer) on its own thread.

The RunEngine calls its subscribers on its event loop; a catalog write that takes 0.4 s (Tiled
writes StreamDatum batches every 10,000 rows) would stall every device for that long. Here the
RunEngine only enqueues; one worker thread feeds the consumer in order.
"""

from __future__ import annotations

import logging
import queue
import threading

log = logging.getLogger(__name__)
_STOP = object()


class BackgroundConsumer:
    def __init__(self, consumer, name: str = "catalog-writer"):
        self._consumer = consumer
        self._queue: queue.Queue = queue.Queue()
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def __call__(self, name: str, doc: dict) -> None:
        self._queue.put((name, doc))

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                self._consumer(*item)
            except BaseException as exc:  # keep consuming: later documents may still land
                log.exception("%s failed on a %s document", self._thread.name, item[0])
                self._errors.append(exc)
            finally:
                self._queue.task_done()

    def flush(self) -> None:
        """Block until every document handed over so far is consumed; raise its first error."""
        self._queue.join()
        if self._errors:
            errors, self._errors = self._errors, []
            raise RuntimeError(f"{self._thread.name}: {len(errors)} document(s) failed") from errors[0]

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join()
