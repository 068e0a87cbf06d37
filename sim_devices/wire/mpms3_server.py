"""A simulated Quantum Design MPMS3: QD's own MultiPyVu server plus a MultiVu `.dat` file.

    operando sim serve mpms3 [--port 27183] [--dat PATH] [--period 1] [--timezone Europe/Berlin]

- Field and temperature: ``MultiPyVu.Server`` 3.8.0 in its simulation ("scaffolding") mode,
  flavour MPMS3, started headless from Python (``python -m MultiPyVu -s`` opens a Tk window).
  It is the real peer: any MultiPyVu client, QD's examples included, drives it unmodified. Its
  field ramps at the requested rate after a 1 s pause, then holds; its temperature follows.
- The moment: a simulated MultiVu VSM measurement appends a row to the `.dat` file every
  ``--period`` seconds, from the simulated cell's moment (``SimMagnetometerPhysics``) at the
  field and temperature the MultiPyVu simulation holds at that moment.
- Loopback only. MultiPyVu 3.8.0 binds its listening socket to 0.0.0.0 whatever host it is
  given (``SocketMessageServer._setup_server_socket``), which would offer the simulated
  instrument to the whole network. ``serve_on_loopback`` replaces the ``socket`` module that
  MultiPyVu's server module sees with one whose sockets bind to the host asked for: a patch at
  the socket level, not a change to QD's code, and checked by a test that lists the listening
  sockets.
- One process per simulator: MultiPyVu keeps the simulated instrument in class variables and
  reconfigures the process's logging, so an in-process simulator (``address: sim``) runs this
  module in a child process. That child measures the run's cell: the run feeds the cell's state
  to it ten times a second of wall time (``cell_feed.py``, JSON lines on its stdin, ``--follow``)
  and it stops when that feed ends. Standalone, it measures a cell of its own at ``--soc``.

Prints ``Serving mpms3 on HOST:PORT`` and ``MultiVu data file: PATH``.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from typing import Optional
from zoneinfo import ZoneInfo

from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.magnetometer import SimMagnetometerPhysics

from .cell_feed import CellFeed, FollowedCell
from .mpms3_datafile import SimMultiVuDataFile
from .registry import Served, WireSimulator, register_wire_simulator

DEFAULT_PORT = 27183
READY_TIMEOUT_S = 30.0


class _AnySocket(type):
    # MultiPyVu's server asks isinstance(x, socket.socket) of the connections it accepted (plain
    # sockets) before closing them: the replacement class must answer as socket.socket does.
    def __instancecheck__(cls, obj) -> bool:
        return isinstance(obj, socket.socket)


def serve_on_loopback(host: str) -> list[int]:
    """Make MultiPyVu's server sockets bind to ``host``; returns the list of ports bound."""
    from MultiPyVu import SocketMessageServer

    bound: list[int] = []

    class HostSocket(socket.socket, metaclass=_AnySocket):
        def bind(self, address):
            _, port = address
            super().bind((host, port))
            bound.append(self.getsockname()[1])

    shim = types.SimpleNamespace(**vars(socket))
    shim.socket = HostSocket
    SocketMessageServer.socket = shim
    return bound


def instrument_state() -> tuple[float, int, float, int]:
    """(field Oe, field state, temperature K, temperature state) of MultiPyVu's simulation.

    MultiPyVu keeps the simulated instrument in class variables on purpose ("a real instrument
    simply holds whatever the last command left it in", ``ICommand.ISimulateChange``).
    """
    from MultiPyVu.CommandField import SimulateFieldChange
    from MultiPyVu.CommandTemperature import SimulateTemperatureChange

    return (
        float(SimulateFieldChange._current_val),
        int(SimulateFieldChange._state),
        float(SimulateTemperatureChange._current_val),
        int(SimulateTemperatureChange._state),
    )


class Mpms3Simulator:
    """QD's MultiPyVu server (threaded, in this process) and the `.dat` writer thread."""

    def __init__(
        self,
        cell: SimCell,
        dat_path: Path,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        period_s: float = 1.0,
        averaging_s: float = 0.5,
        zone: Optional[ZoneInfo] = None,
        seed: int = 0,
        multipyvu_log: Optional[str] = None,
    ):
        self.multipyvu_log = multipyvu_log
        self.physics = SimMagnetometerPhysics(cell, seed=seed)
        self.dat_path = Path(dat_path)
        self.host, self.port = host, port
        self.period_s, self.averaging_s = period_s, min(averaging_s, period_s)
        self.zone = zone
        self._stop = threading.Event()
        self._server = None
        self._writer: Optional[threading.Thread] = None

    def start(self) -> None:
        import MultiPyVu
        from MultiPyVu import logging_config

        bound = serve_on_loopback(self.host)
        # QD's server log (DEBUG, every exchange); it can spin on "Close client" while shutting
        # down, so it goes nowhere unless asked for.
        logging_config.LOG_NAME = self.multipyvu_log or os.devnull
        self._server = MultiPyVu.Server(flags=["-s", "MPMS3"], host=self.host, port=self.port)
        self._server.open()  # threaded: its thread binds and listens
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not bound and time.monotonic() < deadline:
            time.sleep(0.02)
        if not bound:
            raise RuntimeError(f"MultiPyVu's server did not bind a socket within {READY_TIMEOUT_S:g} s")
        self.port = bound[-1]
        self.file = SimMultiVuDataFile(self.dat_path, time.time(), self.zone)
        self._writer = threading.Thread(target=self._measure, name="mpms3-sim-dat", daemon=True)
        self._writer.start()

    def stop(self) -> None:
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout=5)
        if self._server is not None:
            self._server.close()
            self._server = None

    def _measure(self) -> None:
        while not self._stop.wait(self.period_s - self.averaging_s):
            start = time.time()
            h0, _, t0, _ = instrument_state()
            if self._stop.wait(self.averaging_s):
                return
            h1, field_state, t1, temperature_state = instrument_state()
            field_oe, temperature_k = 0.5 * (h0 + h1), 0.5 * (t0 + t1)
            moment = self.physics.moment_emu(field_oe * 1e-4, temperature_k, self.averaging_s)
            self.file.append(
                start + self.averaging_s,
                self.averaging_s,
                (temperature_k, min(t0, t1), max(t0, t1)),
                (field_oe, min(h0, h1), max(h0, h1)),
                moment,
                self.physics.noise_sigma_emu(self.averaging_s),
                field_state,
                temperature_state,
            )


def main(argv: list[str] | None = None) -> None:
    """Serve one simulated MPMS3 until interrupted; prints its address and data file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (loopback by default)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (0: any free port)")
    parser.add_argument("--dat", help="the MultiVu data file to write (default: a new temporary one)")
    parser.add_argument("--period", type=float, default=1.0, help="seconds between measurements")
    parser.add_argument("--averaging", type=float, default=0.5, help="seconds of averaging per row")
    parser.add_argument("--timezone", help="IANA zone of the simulated MultiVu PC (default: this one's)")
    parser.add_argument("--material", default="fe_li2o")
    parser.add_argument("--active-mass-g", type=float, default=1e-3)
    parser.add_argument(
        "--soc",
        type=float,
        default=None,
        help="state of charge to start at, 0..1 (default: as assembled, e.g. 2.9 V for fe_li2o)",
    )
    parser.add_argument("--seed", type=int, default=0, help="measurement noise seed")
    parser.add_argument("--multipyvu-log", help="where QD's server writes its debug log (default: nowhere)")
    parser.add_argument(
        "--follow", action="store_true", help="measure the cell whose state arrives on stdin (JSON lines; EOF stops)"
    )
    args = parser.parse_args(argv)
    if not (args.averaging > 0 and args.period > 0):
        parser.error("--period and --averaging must be > 0")
    dat = Path(args.dat) if args.dat else Path(tempfile.mkdtemp(prefix="operando-mpms3-")) / "mpms3.dat"
    cell = SimCell(preset(args.material, active_mass_g=args.active_mass_g), soc=args.soc)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    if args.follow:
        cell = FollowedCell(cell, sys.stdin, on_end=stop.set).start(wait_s=READY_TIMEOUT_S)
    zone = ZoneInfo(args.timezone) if args.timezone else None
    sim = Mpms3Simulator(
        cell, dat, args.host, args.port, args.period, args.averaging, zone, args.seed, args.multipyvu_log
    )
    sim.start()
    print(f"Serving mpms3 on {sim.host}:{sim.port}", flush=True)
    print(f"MultiVu data file: {sim.dat_path}", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


def start_process(
    dat: Path, port: int = 0, extra: tuple[str, ...] = (), cell: Optional[SimCell] = None
) -> tuple[subprocess.Popen, str, Path]:
    """Run ``main`` in a child process; returns it, its ``host:port`` and its data file.

    With ``cell``, the child measures it (fed on its stdin; see the module notes).
    """
    cmd = [sys.executable, "-m", "operando.sim_devices.wire.mpms3_server", "--port", str(port), "--dat", str(dat)]
    if cell is not None:
        cmd += ["--follow", "--active-mass-g", repr(cell.params.active_mass_g)]
    proc = subprocess.Popen(
        [*cmd, *extra],
        stdin=subprocess.PIPE if cell is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=dat.parent,
    )
    feed = CellFeed(cell, proc.stdin).start() if cell is not None else None
    proc.cell_feed = feed  # stop_process ends it first
    address, deadline = None, time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith("Serving mpms3 on "):
            address = line.split()[-1]
        elif line.startswith("MultiVu data file: ") and address:
            threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep the pipe drained
            return proc, address, Path(line.split(": ", 1)[1].strip())
    stop_process(proc)
    raise RuntimeError("the simulated MPMS3 did not start (no address printed)")


def stop_process(proc: subprocess.Popen) -> None:
    feed = getattr(proc, "cell_feed", None)
    if feed is not None:
        feed.stop()  # the child sees the end of its input and stops
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _serve_on_lab(lab) -> Served:
    """A child process measuring the lab's cell (see the module notes); the address is
    ``host:port;data-file``."""
    dat = Path(tempfile.mkdtemp(prefix="operando-mpms3-")) / "mpms3.dat"
    proc, address, dat = start_process(dat, cell=lab.cell)
    return Served(f"{address};{dat}", lambda: stop_process(proc))


register_wire_simulator(
    WireSimulator(
        "magnetometer",
        "mpms3",
        _serve_on_lab,
        "QD's MultiPyVu server (simulation mode, loopback only) and a simulated MultiVu .dat file",
        command="mpms3",
        main=main,
        virtual_clock=False,
    )
)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
