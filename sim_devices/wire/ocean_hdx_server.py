"""A simulated Ocean Insight HDX Raman spectrometer on TCP, speaking the Ocean Binary Protocol.

python-seabreeze's own client (pyseabreeze backend, ``add_ipv4_device_location("HDX", host,
port)``) and the project's driver (``devices/drivers/ocean_hdx.py``) connect to it unmodified.
Its answers are ``ocean_hdx_firmware.py``; its spectra are the simulated cell's Raman bands
(``SimRamanPhysics`` with the HDX's 2068 pixels), each exposure lasting the set integration
time on the lab's clock (wall time divided by the clock's speed: threads cannot follow a
virtual clock, so the lab's clock must be a scaled one). It reads the cell; whatever drives
the cell advances it.

In-process (tests, profiles), sharing a cell and a clock::

    with OceanHdxServer(cell, clock) as server:
        print(server.address)         # 127.0.0.1:<free port>

Standalone: ``operando sim serve ocean-hdx [--port 57357]`` prints ``Serving ocean-hdx on
HOST:PORT``. Loopback only unless ``--host`` says otherwise. Several clients may be connected
at once (seabreeze keeps a closed device's socket until it is collected); their requests are
served one at a time, as one instrument would (guessed: how many a real HDX accepts is not
documented in seabreeze). The default port is the HDX's discovery port, which seabreeze also
registers as the TCP port of a device it discovers (``IPv4Transport.list_devices``: the port
the answer came from); that the TCP port is the same is inferred from that, not documented.
"""

from __future__ import annotations

import socket

from operando.devices.drivers import obp
from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.clock import SimClock

from .ocean_hdx_firmware import DEFAULT_SERIAL, PRODUCT_ID, OceanHdxFirmware
from .registry import Served, WireSimulator, register_wire_simulator
from .standalone import serve_until_interrupted, sim_parser
from .tcp_service import ThreadedTcpService

DEFAULT_PORT = 57357


class OceanHdxServer(ThreadedTcpService):
    thread_name = "ocean-hdx-sim"

    def __init__(
        self,
        cell: SimCell,
        clock,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        serial: str = DEFAULT_SERIAL,
        product_id: int = PRODUCT_ID,
        laser_nm: float = 532.0,
    ):
        super().__init__(host, port)
        self.firmware = OceanHdxFirmware(
            cell, clock, seed=seed, serial=serial, product_id=product_id, laser_nm=laser_nm, sleep=self._wait
        )

    def _talk(self, client: socket.socket) -> None:
        client.settimeout(0.2)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        frames = obp.FrameBuffer()
        try:
            while not self._stop.is_set():
                try:
                    chunk = client.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return  # the client closed
                frames.feed(chunk)
                for reply in self._replies(frames):
                    client.sendall(reply)
        except OSError:
            return  # the connection is gone
        finally:
            self._forget(client)
            client.close()

    def _replies(self, frames: obp.FrameBuffer):
        pending = b""
        try:
            for frame in frames.frames():
                pending = frame
                try:
                    request = obp.decode_request(frame)
                except obp.ObpError as exc:
                    yield self.firmware.reply_to_malformed(frame, exc)
                    continue
                reply = self.firmware.handle(request)
                if reply is not None:
                    yield reply
        except obp.ObpError as exc:  # a header that starts no message: what came is dropped
            yield self.firmware.reply_to_malformed(pending, exc)


def main(argv: list[str] | None = None) -> None:
    """Serve one simulated HDX until interrupted; prints its address."""
    parser = sim_parser(__doc__.splitlines()[0], DEFAULT_PORT)
    parser.add_argument("--serial", default=DEFAULT_SERIAL, help="the serial number it reports")
    args = parser.parse_args(argv)
    cell = SimCell(preset(args.material, active_mass_g=args.active_mass_g), soc=args.soc)
    server = OceanHdxServer(cell, SimClock(speed=args.speed), args.host, args.port, args.seed, args.serial)
    serve_until_interrupted(server, "ocean-hdx")


def _serve_on_lab(lab) -> Served:
    """The simulated HDX on a free loopback port, measuring the lab's cell on its clock."""
    server = OceanHdxServer(lab.cell, lab.clock, laser_nm=lab.raman.laser_nm)
    return Served(server.start(), server.stop)


register_wire_simulator(
    WireSimulator(
        "raman",
        "ocean_hdx",
        _serve_on_lab,
        "a simulated Ocean Insight HDX speaking OBP on a loopback TCP socket (python-seabreeze connects)",
        command="ocean-hdx",
        main=main,
        virtual_clock=False,
    )
)


if __name__ == "__main__":
    main()
