"""Documents to other processes over 0MQ: a loopback proxy, a publisher, a subscriber.

bluesky's own ``Publisher`` / ``Proxy`` / ``RemoteDispatcher`` carry the documents, always with
``serialization`` (msgpack) instead of their default pickle. The proxy binds 127.0.0.1 by
default (publishers connect to ``in``, subscribers to ``out``).
"""

from __future__ import annotations

import asyncio
import os
import threading

from bluesky.callbacks.zmq import Proxy, Publisher, RemoteDispatcher

from .serialization import deserialize, serialize

DOCS_IN_ENV = "OPERANDO_QUEUE_DOCS_IN"
DOCS_OUT_ENV = "OPERANDO_QUEUE_DOCS_OUT"
DEFAULT_DOCS_IN = "tcp://127.0.0.1:60635"
DEFAULT_DOCS_OUT = "tcp://127.0.0.1:60636"


def docs_addresses() -> tuple[str, str]:
    """(in, out) addresses of the document proxy, from the environment or the loopback defaults."""
    return os.environ.get(DOCS_IN_ENV, DEFAULT_DOCS_IN), os.environ.get(DOCS_OUT_ENV, DEFAULT_DOCS_OUT)


def start_proxy(in_address: str, out_address: str) -> threading.Thread:
    """Run bluesky's 0MQ forwarder in a daemon thread (it lives as long as its process)."""
    proxy = Proxy(in_address, out_address)  # binds both now: an address in use fails here
    thread = threading.Thread(target=proxy.start, name="operando-docs-proxy", daemon=True)
    thread.start()
    return thread


def make_publisher(address: str) -> Publisher:
    """A RunEngine callback sending every document to the proxy's ``in`` address, as msgpack."""
    return Publisher(address, serializer=serialize)


class DocumentSubscription:
    """Documents from a proxy's ``out`` address, handed to ``callback(name, doc)`` on a thread."""

    def __init__(self, address: str, callback):
        self._dispatcher = RemoteDispatcher(address, deserializer=deserialize)
        self._dispatcher.subscribe(callback)
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="operando-docs-sub", daemon=True)
        self._thread.start()
        self._ready.wait(5)

    def _run(self) -> None:
        # start() connects the socket, then runs the dispatcher's loop until stop().
        self._dispatcher.loop.call_soon(self._ready.set)
        try:
            self._dispatcher.start()
        except asyncio.CancelledError:  # our own stop()
            pass

    def stop(self, timeout: float = 5.0) -> None:
        """Stop receiving; the socket and its context are closed by the dispatcher."""
        loop = self._dispatcher.loop
        if not loop.is_closed():
            loop.call_soon_threadsafe(self._cancel)
        self._thread.join(timeout)

    def _cancel(self) -> None:
        task = self._dispatcher._task  # the receive loop RemoteDispatcher.start() runs
        if task is not None:
            task.cancel()

    def __enter__(self) -> DocumentSubscription:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def subscribe_documents(address: str, callback) -> DocumentSubscription:
    """Call ``callback(name, doc)`` for every document published through the proxy at ``address``.

    Decoding uses the msgpack deserializer (never pickle). Returns a handle; ``stop()`` it.
    """
    return DocumentSubscription(address, callback)
