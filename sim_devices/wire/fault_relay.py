"""A fault relay: bytes pass between a real driver and a wire-level simulator until a
``WireFault`` (``wire_faults.py``) begins; from then on the relay does to the replies what the
fault says. TCP (``TcpFaultRelay``) and pseudo-terminals (``PtyFaultRelay``) share one
``FaultInjector``, which decides; the transports only move bytes (requests always pass at once).
"""

from __future__ import annotations

import logging
import os
import random
import select
import socket
import threading
import time
import tty
from collections.abc import Callable

from .fault_protocols import WireProtocol
from .tcp_service import POLL_S, ThreadedTcpService, shut
from .wire_faults import WireFault

log = logging.getLogger(__name__)


class FaultInjector:
    """Decides, message by message, what reaches the driver. Thread-safe (one lock)."""

    def __init__(self, fault: WireFault, protocol: WireProtocol, lab, instrument: str):
        self.fault, self.protocol, self.lab, self.instrument = fault, protocol, lab, instrument
        self._lock = threading.Lock()
        self._rng = random.Random(fault.seed)
        self.run_started_at: float | None = None
        self.began_at: float | None = None  # lab-clock time the fault began
        self.done = False  # a one-shot fault has done its damage
        self._frame_request = False  # the last request took a frame
        self._last_request = b""
        self._pending: list[bytes] = []  # requests waiting for a reply, oldest first
        self._frozen: dict[bytes, bytes] = {}  # stuck: last reply per request before the fault
        self.events: list[str] = []  # what the relay did, for the matrix and the logs
        if fault.when == "connect":
            self._begin("first connection")

    # ---- when -----------------------------------------------------------------------------
    def _now(self) -> float:
        return self.lab.clock.time()

    def _begin(self, why: str) -> None:
        if self.began_at is None:
            self.began_at = self._now() if self.lab is not None else 0.0
            self.events.append(f"{self.fault.label} began ({why})")
            log.warning("wire fault on %s: %s began (%s)", self.instrument, self.fault.label, why)

    def _run_for(self) -> float:
        return -1.0 if self.run_started_at is None else self._now() - self.run_started_at

    @property
    def active(self) -> bool:
        return self.began_at is not None and not self.done

    def on_request(self, request: bytes) -> bool:
        """A framed request on its way to the instrument. True: drop the link now (a disconnect
        that begins with this request, e.g. mid-exposure)."""
        with self._lock:
            p, when = self.protocol, self.fault.when
            starts, frame = p.starts_run(request), p.takes_frame(request)
            if starts and self.run_started_at is None:
                self.run_started_at = self._now()
                if when == "start":
                    self._begin(f"run started by {_show(request)}")
            if frame and self.run_started_at is None and p.detector:
                self.run_started_at = self._now()  # a detector's run starts with its first frame
                if when == "start":
                    self._begin(f"first frame {_show(request)}")
            if when == "frame" and self.began_at is None and self._run_for() >= self.fault.after_s:
                in_frame = frame if p.detector else getattr(self.lab, "frames_in_flight", 0) > 0
                if in_frame:
                    self._begin(f"during a frame ({_show(request)})")
            self._begin_by_time()
            self._last_request = request
            if p.expects_reply(request):
                self._pending.append(request)
            return self._disconnect_now()

    def _begin_by_time(self) -> None:
        """``mid_run`` once ``after_s`` has passed; a potentiostat's ``frame`` once a simulated
        detector exposes after that (a streaming instrument sends no request meanwhile)."""
        if self.began_at is not None or self._run_for() < self.fault.after_s:
            return
        if self.fault.when == "mid_run":
            self._begin(f"{self._run_for():.0f} s into the run")
        elif self.fault.when == "frame" and not self.protocol.detector:
            if getattr(self.lab, "frames_in_flight", 0) > 0:
                self._begin("during a detector's frame")

    def on_frame(self, why: str) -> None:
        """A frame seen outside the socket (a data file the driver waits on): as an acquisition
        request would be for ``start``, ``mid_run`` and ``frame``."""
        with self._lock:
            if self.run_started_at is None:
                self.run_started_at = self._now()  # a detector's run starts with its first frame
                if self.fault.when == "start":
                    self._begin(f"first frame ({why})")
            if self.fault.when == "frame" and self.began_at is None and self._run_for() >= self.fault.after_s:
                self._begin(f"during a frame ({why})")
            self._begin_by_time()

    def _disconnect_now(self) -> bool:
        if self.active and self.fault.fault == "disconnect":
            self.done = True  # the link drops once; the instrument, still on, takes a new one
            self.events.append("link dropped")
            return True
        return False

    # ---- what ---------------------------------------------------------------------------
    def on_reply(self, reply: bytes) -> tuple[bytes | None, float]:
        """(bytes to pass on or None to drop, wall seconds to hold them); raises ``Disconnect``."""
        with self._lock:
            request = self._pending.pop(0) if self._pending else self._last_request
            self._begin_by_time()
            kind = self.fault.fault
            key = self.protocol.stuck_key(request)
            if not self.active:
                if kind == "stuck" and key is not None:
                    self._frozen[key] = reply
                return reply, 0.0
            if self._disconnect_now():
                raise Disconnect
            if kind == "timeout":
                return None, 0.0
            if kind == "slow":
                return reply, self.fault.delay_s
            if kind == "stuck":
                return self._frozen.get(key, reply) if key is not None else reply, 0.0
            self.done = True  # the one-shot kinds below
            self.events.append(f"{kind} reply to {_show(request)}")
            if kind == "garbled":
                return self._garble(reply), 0.0
            if kind == "truncated":
                return reply[: max(1, len(reply) // 2)], 0.0
            return self.protocol.error_reply(request, reply), 0.0

    def _garble(self, reply: bytes) -> bytes:
        """Scramble about a third of the bytes, keeping the terminator so framing survives."""
        term = self.protocol.terminator
        if term and reply.endswith(term):
            body = reply[: -len(term)]
        else:
            body, term = reply, b""
        out = bytearray(body)
        for i in range(len(out)):
            if self._rng.random() < 0.34:
                out[i] = self._rng.choice(b"#$%&'()*+-./0123456789:;<=>?@XYZ[]^_`{|}~\x00\xff")
        return bytes(out) + term


class Disconnect(Exception):
    """The relay drops the link (a ``disconnect`` fault began)."""


def _show(message: bytes, n: int = 40) -> str:
    text = message.decode("latin-1").strip()
    return repr(text[:n] + ("…" if len(text) > n else ""))


class _Pump:
    """One direction of one link: frames what arrives and passes it on (replies via the injector)."""

    def __init__(self, injector: FaultInjector, replies: bool, send: Callable[[bytes], None], drop: Callable[[], None]):
        self.injector, self.replies, self.send, self.drop = injector, replies, send, drop
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        protocol = self.injector.protocol
        if not self.replies:
            self.send(data)  # requests pass at once, whatever their framing
            self.buffer += data
            for request in protocol.split(self.buffer, replies=False):
                if self.injector.on_request(request):
                    raise Disconnect
            return
        self.buffer += data
        for reply in protocol.split(self.buffer, replies=True):
            out, hold_s = self.injector.on_reply(reply)
            if hold_s:
                time.sleep(hold_s)
            if out:
                self.send(out)


class TcpFaultRelay(ThreadedTcpService):
    """Listens on loopback; each client gets its own connection to the simulator at ``target``."""

    thread_name = "wire-fault-relay"

    def __init__(self, target: str, injector: FaultInjector):
        super().__init__("127.0.0.1", 0)
        host, port = target.rsplit(":", 1)
        self.target, self.injector = (host, int(port)), injector

    def _talk(self, client: socket.socket) -> None:
        upstream = None
        try:
            upstream = socket.create_connection(self.target, timeout=5)
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            dropped = threading.Event()

            def drop() -> None:
                dropped.set()
                shut(client)
                shut(upstream)

            pumps = {
                client: _Pump(self.injector, False, upstream.sendall, drop),
                upstream: _Pump(self.injector, True, client.sendall, drop),
            }
            # replies are held (``slow``) in their own thread so requests keep flowing
            replies = threading.Thread(target=self._pump, args=(upstream, pumps[upstream], dropped), daemon=True)
            replies.start()
            self._pump(client, pumps[client], dropped)
            replies.join(timeout=5)
        except OSError:
            pass
        finally:
            self._forget(client)
            shut(client)
            client.close()
            if upstream is not None:
                shut(upstream)
                upstream.close()

    def _pump(self, source: socket.socket, pump: _Pump, dropped: threading.Event) -> None:
        source.settimeout(POLL_S)
        try:
            while not self._stop.is_set() and not dropped.is_set():
                try:
                    data = source.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    break
                pump.feed(data)
        except (Disconnect, OSError):
            pass
        pump.drop()


class PtyFaultRelay:
    """A second pseudo-terminal in front of a simulator's: the driver opens ``address``."""

    def __init__(self, target: str, injector: FaultInjector):
        self.injector = injector
        self._target = os.open(target, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(self._target)
        self._master, slave = os.openpty()
        tty.setraw(slave)
        self.address = os.ttyname(slave)
        self._slave = slave  # held open so the path exists until stop()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> str:
        self._thread = threading.Thread(target=self._relay, name="wire-fault-relay-pty", daemon=True)
        self._thread.start()
        return self.address

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._close("_master", "_slave", "_target")

    def _close(self, *names: str) -> None:
        for name in names:  # each once: a closed descriptor's number may be reused at once
            fd, _ = getattr(self, name), setattr(self, name, -1)
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass

    def _relay(self) -> None:
        def to_target(data: bytes) -> None:
            os.write(self._target, data)

        def to_driver(data: bytes) -> None:
            os.write(self._master, data)

        requests = _Pump(self.injector, False, to_target, lambda: None)
        replies = _Pump(self.injector, True, to_driver, lambda: None)
        try:
            while not self._stop.is_set():
                ready, _, _ = select.select([self._master, self._target], [], [], POLL_S)
                for fd in ready:
                    data = os.read(fd, 65536)
                    if data:
                        (requests if fd == self._master else replies).feed(data)
        except Disconnect:
            # the cable is pulled: the driver's side of the pty goes away
            self.injector.events.append("pty closed")
            self._close("_master", "_slave")
        except OSError:
            pass


def relay(served, fault: WireFault, protocol: WireProtocol, lab, instrument: str):
    """``served`` (a ``registry.Served``) behind a fault relay: the same kind of address, whose
    replies suffer ``fault``. A ``host:port;file`` address (MPMS3: MultiPyVu and its .dat file)
    relays the socket; its file has its own relay where the protocol provides one."""
    from .registry import Served

    injector = FaultInjector(fault, protocol, lab, instrument)
    address, _, rest = served.address.partition(";")
    if address.startswith("/dev/"):
        front = PtyFaultRelay(address, injector)
        new_address = front.start()
    elif address.upper().startswith("TCPIP"):  # a VISA resource: TCPIP::host::port::SOCKET
        parts = address.split("::")
        front = TcpFaultRelay(f"{parts[1]}:{parts[2]}", injector)
        parts[1], parts[2] = front.start().rsplit(":", 1)
        new_address = "::".join(parts)
    else:
        front = TcpFaultRelay(address, injector)
        new_address = front.start()
    stops = [front.stop]
    if rest:
        rest, stop_file = protocol.relay_file(rest, injector)
        stops.append(stop_file)
        new_address = f"{new_address};{rest}"

    def stop() -> None:
        for s in stops:
            s()
        served.stop()

    return Served(new_address, stop), injector
