"""A simulated Horiba LabSpec 6 on TCP, serving its remote-control ("AFM") protocol.

The project's driver (``devices/drivers/labspec.py``) connects to it as to LabSpec. Its answers
are ``labspec_protocol_sim.py``; its spectra are the simulated cell's Raman bands
(``SimRamanPhysics``), each acquisition lasting exposure x accumulations on the lab's clock
(wall time divided by the clock's speed: threads cannot follow a virtual clock, so the lab's
clock must be a scaled one). It reads the cell; whatever drives the cell advances it.

In-process (tests, profiles), sharing the lab's physics and clock::

    with LabSpecServer(lab.raman, lab.clock) as server:
        print(server.address)         # 127.0.0.1:<free port>

Standalone: ``operando sim serve labspec [--port 1234]`` prints ``Serving labspec on
HOST:PORT``. Loopback only unless ``--host`` says otherwise. Several clients may connect at
once; their messages are answered one at a time (guessed: how many clients LabSpec accepts is
not documented). Framing (guessed, see the protocol module): a message ends at a line ending or
at a pause of ``QUIET_S``, because the public client ends its commands with nothing.
"""

from __future__ import annotations

import select
import socket

from operando.devices.drivers.labspec_protocol import DEFAULT_PORT
from operando.sim_devices.lab import build_sim_lab

from .labspec_protocol_sim import QUIET_S, LabSpecInstrument
from .registry import Served, WireSimulator, register_wire_simulator
from .standalone import serve_until_interrupted, sim_parser
from .tcp_service import POLL_S, ThreadedTcpService, shut


class LabSpecServer(ThreadedTcpService):
    thread_name = "labspec-sim"

    def __init__(self, physics, clock, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self.instrument = LabSpecInstrument(physics, clock, sleep=self._wait)

    def _talk(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = self.instrument.session()
        try:
            client.sendall(session.greeting())
            for message in self._messages(client):
                replies, close = session.handle(message)
                for reply in replies:
                    client.sendall(reply)
                if close:
                    return
        except OSError:
            return  # the connection is gone
        finally:
            self._forget(client)
            shut(client)
            client.close()

    def _messages(self, client: socket.socket):
        """Each message: a line (LF or CR LF ends it) or what came before a pause of QUIET_S."""
        pending = b""
        while not self._stop.is_set():
            readable, _, _ = select.select([client], [], [], QUIET_S if pending else POLL_S)
            if not readable:
                if pending.strip():
                    yield pending
                pending = b""
                continue
            chunk = client.recv(65536)
            if not chunk:
                if pending.strip():
                    yield pending  # what came last, before the client closed
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if line.strip():
                    yield line.rstrip(b"\r")


def main(argv: list[str] | None = None) -> None:
    """Serve one simulated LabSpec until interrupted; prints its address."""
    args = sim_parser(__doc__.splitlines()[0], DEFAULT_PORT).parse_args(argv)
    lab = build_sim_lab(args.material, args.active_mass_g, speed=args.speed, seed=args.seed, soc=args.soc)
    serve_until_interrupted(LabSpecServer(lab.raman, lab.clock, args.host, args.port), "labspec")


def _serve_on_lab(lab) -> Served:
    """The simulated LabSpec on a free loopback port, measuring the lab's cell on its clock."""
    server = LabSpecServer(lab.raman, lab.clock)
    return Served(server.start(), server.stop)


register_wire_simulator(
    WireSimulator(
        "raman",
        "labspec",
        _serve_on_lab,
        "a simulated Horiba LabSpec 6 serving its remote-control (AFM) protocol on a loopback TCP socket",
        command="labspec",
        main=main,
        virtual_clock=False,
    )
)


if __name__ == "__main__":
    main()
