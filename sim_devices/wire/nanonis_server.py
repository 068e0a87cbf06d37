"""A simulated Nanonis SPM controller on TCP, serving its programming interface.

Third-party clients (SPECS' ``nanonis_spm``, ``nanonisTCP``) and the project's driver
(``devices/drivers/nanonis.py``) connect to it as to Nanonis. Its answers are
``nanonis_firmware.py``; its maps are the simulated cell's heterointerface (``SimSkpmPhysics``),
each line lasting its time per line on the lab's clock (wall time divided by the clock's speed:
the scan runs in a thread, so the lab's clock must be a scaled one).

In-process (tests, profiles)::

    with NanonisServer(lab.skpm, lab.clock) as server:
        print(server.address)         # 127.0.0.1:<free port>

Standalone: ``operando sim serve nanonis [--port 6501]`` prints ``Serving nanonis on HOST:PORT``.
Loopback only unless ``--host`` says otherwise. Each connection is answered in order, one
message at a time; several connections share one controller. A header that cannot be a Nanonis
header closes the connection (guessed: what the real controller does is not documented).
"""

from __future__ import annotations

import socket

from operando.devices.drivers.nanonis_protocol import (
    DEFAULT_PORT,
    HEADER_SIZE,
    NanonisProtocolError,
    decode_header,
    encode_message,
    error_section,
)
from operando.sim_devices.lab import build_sim_lab

from .nanonis_firmware import EMPTY_REPLIES, NanonisController
from .registry import Served, WireSimulator, register_wire_simulator
from .standalone import serve_until_interrupted, sim_parser
from .tcp_service import POLL_S, ThreadedTcpService, shut


class NanonisServer(ThreadedTcpService):
    thread_name = "nanonis-sim"

    def __init__(self, physics, clock, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self.controller = NanonisController(physics, clock, sleep=self._wait)
        self.protocol_errors: list[str] = []  # why a connection was closed (tests read it)
        # One-shot faults by command: the next reply to it is "garbled" (a header of 0xFF),
        # "short" (its last 4 body bytes missing, the size saying so), "silent" (no reply) or
        # "error" (the controller's error status)
        self.faults: dict[str, str] = {}

    def stop(self) -> None:
        self.controller.stop_scan()
        super().stop()

    def _talk(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.settimeout(POLL_S)
        try:
            while True:
                raw = self._read(client, HEADER_SIZE)
                if raw is None:
                    return
                try:
                    header = decode_header(raw)
                except NanonisProtocolError as exc:
                    self.protocol_errors.append(str(exc))
                    return
                body = self._read(client, header.body_size) if header.body_size else b""
                if body is None:
                    return
                reply = self.controller.handle(header.command, body)
                fault = self.faults.pop(header.command, None)
                if header.send_response:
                    client.sendall(self._faulty(header.command, reply, fault))
        except OSError:
            return  # the connection is gone
        finally:
            self._forget(client)
            shut(client)
            client.close()

    @staticmethod
    def _faulty(command: str, reply: bytes, fault: str | None) -> bytes:
        if fault == "garbled":
            return b"\xff" * HEADER_SIZE + reply
        if fault == "short":
            return encode_message(command, reply[:-4], send_response=False)
        if fault == "silent":
            return b""
        if fault == "error":
            refused = EMPTY_REPLIES.get(command, b"") + error_section(1, "simulated controller error")
            return encode_message(command, refused, send_response=False)
        return encode_message(command, reply, send_response=False)

    def _read(self, client: socket.socket, n: int) -> bytes | None:
        """``n`` bytes, or None when the client left or the service stops."""
        data = b""
        while len(data) < n:
            if self._stop.is_set():
                return None
            try:
                chunk = client.recv(n - len(data))
            except TimeoutError:
                continue
            if not chunk:
                return None
            data += chunk
        return data


def main(argv: list[str] | None = None) -> None:
    """Serve one simulated Nanonis controller until interrupted; prints its address."""
    args = sim_parser(__doc__.splitlines()[0], DEFAULT_PORT).parse_args(argv)
    lab = build_sim_lab(args.material, args.active_mass_g, speed=args.speed, seed=args.seed, soc=args.soc)
    serve_until_interrupted(NanonisServer(lab.skpm, lab.clock, args.host, args.port), "nanonis")


def _serve_on_lab(lab) -> Served:
    """The simulated controller on a free loopback port, mapping the lab's cell on its clock."""
    server = NanonisServer(lab.skpm, lab.clock)
    return Served(server.start(), server.stop)


register_wire_simulator(
    WireSimulator(
        "skpm",
        "nanonis",
        _serve_on_lab,
        "a simulated Nanonis SPM controller (Kelvin probe over a heterointerface) on a loopback TCP socket",
        command="nanonis",
        main=main,
        virtual_clock=False,
    )
)


if __name__ == "__main__":
    main()
