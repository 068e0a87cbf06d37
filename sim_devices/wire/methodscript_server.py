"""A simulated PalmSens EmStat4 speaking MethodSCRIPT on a pseudo-terminal.

Any serial client (our driver, PalmSens' own Python example, a terminal) opens the printed pty
path. Online commands, from PalmSens' documentation and examples:

- ``t`` -> two lines, the first starting with ``t``, the last ending with ``*``;
- ``i`` -> ``i<serial number>``; ``v`` -> ``v<MethodSCRIPT version>``;
- ``e``, script lines, blank line -> ``e`` then the script's output, ending with an empty line;
  a script that does not parse -> ``e!4001: Line L, Col C`` (code choice not confirmed);
- ``Z`` -> ``Z`` in the output stream while a script runs (loops close, on_finished runs),
  ``Z!0006`` when nothing runs;
- anything else -> the command's first character + ``!0003`` (code not confirmed); a command
  other than ``Z`` while a script runs -> first character + ``!0006``; blank lines are ignored
  (PalmSens' sync routine sends one).

    python -m operando.sim_devices.wire.methodscript_server --speed 100
"""

from __future__ import annotations

import argparse
import os
import select
import threading
import tty

from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.clock import SimClock

from .methodscript_firmware import SimFirmware
from .methodscript_language import ScriptSyntaxError, parse_script
from .registry import Served, WireSimulator, register_wire_simulator

ERROR_INVALID_COMMAND = 0x0003
ERROR_NOT_NOW = 0x0006


class MethodScriptSimulator:
    def __init__(
        self,
        cell: SimCell,
        clock: SimClock,
        serial_number: str = "ES4SIM00001",
        firmware: tuple[str, ...] = ("tes4_hr1.3.0#operando simulated EmStat4 HR", "R*"),
        mscript_version: str = "1.8",
    ) -> None:
        self.firmware = SimFirmware(cell, clock, self._write_line)
        self.serial_number = serial_number
        self.firmware_lines = firmware
        self.mscript_version = mscript_version
        self._master = self._slave = -1
        self._path = ""
        self._stop = threading.Event()
        self._write_lock = threading.Lock()
        self._reader: threading.Thread | None = None
        self._runner: threading.Thread | None = None
        self._upload: list[str] | None = None  # script lines while an upload is in progress
        self._script_running = False
        # fault hook (see operando.sim_devices.faults.WireFault): line -> line, or None to drop
        self.wire_fault = None

    # ---- life cycle --------------------------------------------------------------------------
    def start(self) -> str:
        """Open the pty and serve in a thread; returns the path a client opens."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation: bytes pass as on USB-CDC
        self._path = os.ttyname(self._slave)
        self._stop.clear()
        self._reader = threading.Thread(target=self._serve, name="methodscript-sim", daemon=True)
        self._reader.start()
        return self._path

    @property
    def path(self) -> str:
        return self._path

    def stop(self) -> None:
        self._stop.set()
        self.firmware.abort()
        for thread in (self._reader, self._runner):
            if thread is not None:
                thread.join(timeout=5)
        for fd in (self._master, self._slave):
            if fd >= 0:
                os.close(fd)
        self._master = self._slave = -1

    def __enter__(self) -> MethodScriptSimulator:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- wire --------------------------------------------------------------------------------
    def _write_line(self, text: str) -> None:
        if self.wire_fault is not None:
            text = self.wire_fault(text)
            if text is None:
                return
        data = (text + "\n").encode("ascii", errors="replace")
        with self._write_lock:
            while data and not self._stop.is_set():
                _r, writable, _x = select.select([], [self._master], [], 0.1)
                if writable:
                    data = data[os.write(self._master, data) :]

    def _serve(self) -> None:
        pending = b""
        while not self._stop.is_set():
            readable, _w, _x = select.select([self._master], [], [], 0.1)
            if not readable:
                continue
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # the client closed its side; wait for the next one
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                self._on_line(raw.decode("ascii", errors="replace").rstrip("\r"))

    @property
    def running(self) -> bool:
        return self._script_running

    def _on_line(self, line: str) -> None:
        if self._upload is not None:
            if line == "":
                self._execute(self._upload)
                self._upload = None
            else:
                self._upload.append(line)
            return
        if line == "":
            return
        command = line[0]
        if command == "Z":
            if self.running:
                self._write_line("Z")
                self.firmware.abort()
            else:
                self._write_line(f"Z!{ERROR_NOT_NOW:04X}")
        elif self.running:
            self._write_line(f"{command}!{ERROR_NOT_NOW:04X}")
        elif line == "t":
            for text in self.firmware_lines:
                self._write_line(text)
        elif line == "i":
            self._write_line("i" + self.serial_number)
        elif line == "v":
            self._write_line("v" + self.mscript_version)
        elif line == "e":
            self._upload = []
        else:
            self._write_line(f"{command}!{ERROR_INVALID_COMMAND:04X}")

    def _execute(self, lines: list[str]) -> None:
        try:
            program = parse_script(lines)
        except ScriptSyntaxError as exc:
            self._write_line(f"e!{exc.code:04X}: Line {exc.line}, Col {exc.column}")
            return
        self._write_line("e")
        self._script_running = True
        self._runner = threading.Thread(target=self._run, args=(program,), name="methodscript-script", daemon=True)
        self._runner.start()

    def _run(self, program) -> None:
        try:
            self.firmware.run(program)
        finally:
            self._script_running = False  # before the empty line: a client may answer at once
            self._write_line("")


def main(argv: list[str] | None = None) -> None:
    """Serve one simulated EmStat4 on a pty until interrupted; prints the pty path."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--material", default="fe_li2o")
    parser.add_argument("--active-mass-g", type=float, default=1e-3)
    parser.add_argument(
        "--soc",
        type=float,
        default=None,
        help="state of charge to start at, 0..1 (default: as assembled, e.g. 2.9 V for fe_li2o)",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="simulated s per wall s")
    args = parser.parse_args(argv)
    cell = SimCell(preset(args.material, active_mass_g=args.active_mass_g), soc=args.soc)
    sim = MethodScriptSimulator(cell, SimClock(speed=args.speed))
    print(sim.start(), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


def _serve_on_lab(lab) -> Served:
    """The simulated firmware drives the lab's cell in place of the in-process engine."""
    lab.external_potentiostat = True
    simulator = MethodScriptSimulator(lab.cell, lab.clock)
    return Served(simulator.start(), simulator.stop)


register_wire_simulator(
    WireSimulator(
        "potentiostat",
        "methodscript",
        _serve_on_lab,
        "a simulated PalmSens EmStat4 speaking MethodSCRIPT on a pseudo-terminal",
        command="potentiostat-methodscript",
        main=main,
    )
)


if __name__ == "__main__":
    main()
