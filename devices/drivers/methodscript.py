"""PalmSens MethodSCRIPT instruments (EmStat4, EmStat Pico, Nexus) over a serial port.

Blocking I/O, usable without bluesky (and from ``asyncio.to_thread``). The grammar lives in
``methodscript_protocol``; this module only moves bytes. PalmSens documents 230400 baud for the
EmStat Pico and 921600 for EmStat4/Nexus (a USB-CDC port ignores the rate).

    drv = MethodScriptDriver("/dev/ttyACM0", baudrate=921600)
    print(drv.firmware_version(), drv.serial_number())
    drv.run_script(wrap_script(ocp_loop(interval_s=1.0, run_time_s=60.0)))  # methodscript_scripts
    for package in drv.read_packages():
        ...
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Protocol

from .methodscript_protocol import (
    CMD_ABORT,
    CMD_FIRMWARE,
    CMD_MSCRIPT_VERSION,
    CMD_SERIAL,
    ERROR_NOTHING_RUNNING,
    AbortAccepted,
    DataPackage,
    EndOfScript,
    ErrorReply,
    ReplyEvent,
    UnknownLine,
    parse_reply_line,
    upload_bytes,
)

_READ_SLICE_S = 0.05  # one blocking read waits at most this long, so callers stay responsive
_AFTER_ERROR_S = 0.1  # PalmSens: wait > 50 ms after a reply with '!' before the next command
_ABORT_SILENCE_S = 10.0  # abort(): longest silence while waiting for the script to end
_ABORT_MAX_S = 60.0  # abort(): longest wait in all, however much still arrives


def parse_line(line: str) -> tuple[ReplyEvent, ...]:
    """``parse_reply_line``, but a line that does not parse (a garbled link) is an
    ``UnknownLine`` event instead of an exception: the lines read with it are kept."""
    try:
        return parse_reply_line(line)
    except ValueError:
        return (UnknownLine(line),)


class Transport(Protocol):
    """The part of ``serial.Serial`` the driver uses (a test may pass a fake)."""

    @property
    def in_waiting(self) -> int: ...

    def read(self, size: int = 1) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def close(self) -> None: ...


class MethodScriptError(RuntimeError):
    """The instrument answered ``!XXXX``; names the port and the hex error code."""

    def __init__(self, port: str, code: int, detail: str = "", command: str = ""):
        self.port, self.code, self.detail, self.command = port, code, detail, command
        where = f" after '{command}'" if command else ""
        extra = f": {detail}" if detail else ""
        super().__init__(f"{port}: MethodSCRIPT error 0x{code:04X}{where}{extra}")


class MethodScriptReplyError(RuntimeError):
    """A reply the driver cannot use (unreadable, or a repeat of an earlier one); names the port."""

    def __init__(self, port: str, detail: str):
        self.port, self.detail = port, detail
        super().__init__(f"{port}: {detail}")


class MethodScriptDriver:
    def __init__(
        self,
        port: str,
        baudrate: int = 230400,
        timeout_s: float = 2.0,
        transport: Transport | None = None,
    ) -> None:
        self.port = port
        self.timeout_s = timeout_s
        if transport is None:
            import serial  # pyserial, imported here so the protocol stays importable without it

            transport = serial.Serial(port=port, baudrate=baudrate, timeout=_READ_SLICE_S)
        self._io = transport
        self._rx = bytearray()
        self.last_rx = time.monotonic()  # when a byte last arrived (silence = a dead link)

    # ---- lines ------------------------------------------------------------------------------
    def write_line(self, text: str) -> None:
        self._io.write(text.encode("ascii") + b"\n")

    def read_line(self, timeout_s: float | None = None) -> str | None:
        """One reply line without its LF, or None if none completes within ``timeout_s``."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            end = self._rx.find(b"\n")
            if end >= 0:
                line = bytes(self._rx[:end])
                del self._rx[: end + 1]
                return line.decode("ascii", errors="replace").rstrip("\r")
            if not self._fill(block=time.monotonic() < deadline) and time.monotonic() >= deadline:
                return None

    def _fill(self, block: bool) -> bool:
        """Take what has arrived; if nothing and ``block``, wait one read slice. True if data."""
        waiting = self._io.in_waiting
        if not waiting and not block:
            return False
        chunk = self._io.read(max(1, waiting))
        if chunk:
            self._rx += chunk
            self.last_rx = time.monotonic()
        return bool(chunk)

    def _unread_line(self, line: str) -> None:
        self._rx[:0] = line.encode("ascii") + b"\n"

    def _expect_line(self, command: str) -> str:
        line = self.read_line()
        if line is None:
            raise TimeoutError(f"{self.port}: no reply to '{command}' in {self.timeout_s} s")
        for event in parse_reply_line(line):
            if isinstance(event, ErrorReply):
                time.sleep(_AFTER_ERROR_S)
                raise MethodScriptError(self.port, event.code, event.detail, event.command)
        return line

    def _reply(self, command: str) -> str:
        """Write an online command; its one-line reply without the echoed command character."""
        self.write_line(command)
        line = self._expect_line(command)
        if not line.startswith(command):
            raise MethodScriptError(self.port, -1, f"unexpected reply {line!r}", command)
        return line[len(command) :]

    # ---- online commands --------------------------------------------------------------------
    def firmware_version(self) -> str:
        """``t``: the reply lines joined by a space, without the leading 't' and final '*'."""
        self.write_line(CMD_FIRMWARE)
        parts = [self._expect_line(CMD_FIRMWARE)]
        while not parts[-1].endswith("*"):
            parts.append(self._expect_line(CMD_FIRMWARE))
        text = " ".join(parts)
        if not text.startswith(CMD_FIRMWARE):
            raise MethodScriptError(self.port, -1, f"unexpected reply {text!r}", CMD_FIRMWARE)
        return text[1:-1].strip()

    def serial_number(self) -> str:
        return self._reply(CMD_SERIAL)

    def methodscript_version(self) -> str:
        return self._reply(CMD_MSCRIPT_VERSION)

    def send_command(self, text: str) -> str:
        """Any other online command; returns its reply line (raises on ``!XXXX``)."""
        self.write_line(text)
        return self._expect_line(text[:1])

    # ---- scripts ----------------------------------------------------------------------------
    def run_script(self, lines: Sequence[str]) -> None:
        """Upload and start a script: ``e``, its lines, a blank line. Output is read separately."""
        self._io.write(upload_bytes(lines))

    def read_events(self, max_lines: int = 10_000, wait_s: float = 0.0) -> list[ReplyEvent]:
        """Events of the reply lines that have arrived (waiting up to ``wait_s`` for the first)."""
        events: list[ReplyEvent] = []
        line = self.read_line(wait_s)
        while line is not None:
            events.extend(parse_line(line))
            if len(events) >= max_lines:
                break
            line = self.read_line(0.0)
        return events

    def iter_script_output(self, idle_timeout_s: float | None = None) -> Iterator[ReplyEvent]:
        """Every event until the end of the script; raises on an error reply.

        ``idle_timeout_s``: longest silence tolerated (None: for ever; a slow measurement may
        sample only every few minutes).
        """
        while True:
            line = self.read_line(3600.0 if idle_timeout_s is None else idle_timeout_s)
            if line is None:
                if idle_timeout_s is None:
                    continue
                raise TimeoutError(f"{self.port}: no script output for {idle_timeout_s} s")
            for event in parse_line(line):
                if isinstance(event, ErrorReply):
                    raise MethodScriptError(self.port, event.code, event.detail, event.command)
                yield event
                if isinstance(event, EndOfScript):
                    return

    def read_packages(self, idle_timeout_s: float | None = None) -> Iterator[DataPackage]:
        """The data packages of the running script, until it ends."""
        for event in self.iter_script_output(idle_timeout_s):
            if isinstance(event, DataPackage):
                yield event

    def abort(self, wait: bool = True) -> list[ReplyEvent]:
        """``Z``: stop the running script (the firmware still runs its on_finished block).

        With ``wait``, reads until the script has ended and returns the events read meanwhile
        (they may hold the last samples; a line that does not parse is an ``UnknownLine``).
        Nothing running (``Z!0006``) is not an error. Waits while lines keep arriving (a backlog
        of packages may precede the end), up to ``_ABORT_SILENCE_S`` of silence and
        ``_ABORT_MAX_S`` in all; then ``TimeoutError``: the end of the script was not seen.
        """
        self.write_line(CMD_ABORT)
        if not wait:
            return []
        events: list[ReplyEvent] = []
        started = time.monotonic()
        silence_s = max(self.timeout_s, _ABORT_SILENCE_S)
        while time.monotonic() - started < _ABORT_MAX_S:
            line = self.read_line(silence_s)
            if line is None:
                break
            for event in parse_line(line):
                if isinstance(event, ErrorReply) and event.code == ERROR_NOTHING_RUNNING:
                    time.sleep(_AFTER_ERROR_S)
                    return events
                events.append(event)
                if isinstance(event, EndOfScript):
                    if not any(isinstance(e, AbortAccepted) for e in events):
                        self._drop_late_abort_reply()
                    return events
        waited = time.monotonic() - started
        raise TimeoutError(f"{self.port}: the script's end was not seen within {waited:.0f} s of the abort 'Z'")

    def _drop_late_abort_reply(self) -> None:
        """The script ended just before our 'Z' arrived, so 'Z!0006' follows: consume it."""
        line = self.read_line(5 * _AFTER_ERROR_S)
        if line is None:
            return
        first = parse_line(line)[0]
        if isinstance(first, ErrorReply) and first.code == ERROR_NOTHING_RUNNING:
            time.sleep(_AFTER_ERROR_S)
        else:
            self._unread_line(line)

    def close(self) -> None:
        self._io.close()

    def __enter__(self) -> MethodScriptDriver:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
