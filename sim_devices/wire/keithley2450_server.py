"""TCP transport for the simulated Keithley 2450: newline-terminated SCPI on a raw socket, as a
VISA ``TCPIP::host::port::SOCKET`` resource (pyvisa-py) opens it. One client at a time.

In-process (tests, profiles), sharing a clock and a cell::

    with Keithley2450Server(cell, clock) as server:
        print(server.resource)        # TCPIP::127.0.0.1::<free port>::SOCKET

Standalone: ``operando sim serve keithley2450 --port 5025`` (or this module's ``main``).
"""

from __future__ import annotations

import socket
import threading

from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.clock import SimClock

from .keithley2450_protocol import Keithley2450Simulator
from .registry import Served, WireSimulator, register_wire_simulator
from .standalone import serve_until_interrupted, sim_parser


class Keithley2450Server:
    def __init__(self, cell: SimCell, clock, host: str = "127.0.0.1", port: int = 0, seed: int = 0):
        self.simulator = Keithley2450Simulator(cell, clock, seed=seed)
        self.host, self._port = host, port
        self._listener: socket.socket | None = None
        self._client: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    # ---- life cycle --------------------------------------------------------------------------
    def start(self) -> str:
        """Listen and serve in a thread; returns the VISA resource string."""
        self._listener = socket.create_server((self.host, self._port))
        self._listener.settimeout(0.2)  # lets the thread see stop() without a busy loop
        self._port = self._listener.getsockname()[1]
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="keithley2450-sim", daemon=True)
        self._thread.start()
        return self.resource

    @property
    def port(self) -> int:
        return self._port

    @property
    def resource(self) -> str:
        return f"TCPIP::{self.host}::{self._port}::SOCKET"

    def drop_client(self) -> None:
        """Close the present connection (a cable pulled); the server keeps listening."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            client.close()

    def stop(self) -> None:
        self._stop.set()
        self.drop_client()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def __enter__(self) -> Keithley2450Server:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- serving -----------------------------------------------------------------------------
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _addr = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._client = client
            try:
                self._talk(client)
            finally:
                if self._client is client:
                    self._client = None
                client.close()

    def _talk(self, client: socket.socket) -> None:
        client.settimeout(0.2)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = b""
        while not self._stop.is_set() and self._client is client:
            try:
                chunk = client.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return  # the client closed
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                reply = self.simulator.handle(raw.decode("ascii", errors="replace").rstrip("\r"))
                if reply is not None:
                    try:
                        client.sendall(reply.encode("ascii") + b"\n")
                    except OSError:
                        return


def main(argv: list[str] | None = None) -> None:
    """Serve one simulated 2450 on TCP until interrupted; prints its address."""
    args = sim_parser(__doc__.splitlines()[0], 5025).parse_args(argv)
    cell = SimCell(preset(args.material, active_mass_g=args.active_mass_g), soc=args.soc)
    server = Keithley2450Server(cell, SimClock(speed=args.speed), host=args.host, port=args.port, seed=args.seed)
    serve_until_interrupted(server, "keithley2450")


def _serve_on_lab(lab) -> Served:
    """The simulated SMU sources the lab's cell in place of the in-process engine."""
    lab.external_potentiostat = True
    server = Keithley2450Server(lab.cell, lab.clock)
    return Served(server.start(), server.stop)


register_wire_simulator(
    WireSimulator(
        "potentiostat",
        "keithley2450",
        _serve_on_lab,
        "a simulated Keithley 2450 speaking SCPI on a loopback TCP socket",
        command="keithley2450",
        main=main,
        virtual_clock=False,
    )
)


if __name__ == "__main__":
    main()
