"""A simulated instrument's TCP service: listen (loopback by default), one thread per client,
and a stop that closes every connection as a switched-off instrument would.

Subclasses say how to talk to one client (``_talk``) and how long a simulated wait may block
(``_wait``, which returns False once the service is stopping).
"""

from __future__ import annotations

import socket
import threading

POLL_S = 0.2  # how often the acceptor and idle connections look at stop()


class ThreadedTcpService:
    thread_name = "sim-instrument"

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._stop = threading.Event()
        self.host, self._port = host, port
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._clients: dict[socket.socket, threading.Thread] = {}
        self._clients_lock = threading.Lock()

    # ---- life cycle --------------------------------------------------------------------------
    def start(self) -> str:
        """Listen and serve in threads; returns ``host:port``."""
        self._stop.clear()
        self._listener = socket.create_server((self.host, self._port))
        self._listener.settimeout(POLL_S)  # lets the acceptor see stop() without a busy loop
        self._port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept, name=self.thread_name, daemon=True)
        self._acceptor.start()
        return self.address

    @property
    def port(self) -> int:
        return self._port

    @property
    def address(self) -> str:
        return f"{self.host}:{self._port}"

    def stop(self) -> None:
        """Stop listening and close every connection (the instrument switched off)."""
        self._stop.set()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
            self._acceptor = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._clients_lock:
            clients = list(self._clients.items())
        for client, _ in clients:
            shut(client)
        for _, thread in clients:
            thread.join(timeout=5)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- serving -----------------------------------------------------------------------------
    def _wait(self, wall_s: float) -> bool:
        """Block ``wall_s`` (an exposure); False when the service is stopping meanwhile."""
        return not self._stop.wait(wall_s)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._talk, args=(client,), name=f"{self.thread_name}-client", daemon=True)
            with self._clients_lock:
                self._clients[client] = thread
            thread.start()

    def _talk(self, client: socket.socket) -> None:  # pragma: no cover - subclasses
        raise NotImplementedError

    def _forget(self, client: socket.socket) -> None:
        with self._clients_lock:
            self._clients.pop(client, None)


def shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
