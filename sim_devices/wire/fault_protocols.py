"""What a fault relay must know of each wire protocol: where messages end, which request starts
the run or takes a frame, and what the instrument's own error status looks like.

A ``WireProtocol`` is deliberately shallow: it frames bytes and recognises a few requests; it
never interprets values. One per wire-level simulator (``protocol_for(backend)``).
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class WireProtocol:
    """Line-framed by default (``\\n``); binary protocols override ``split``."""

    name: str
    terminator: bytes = b"\n"
    # requests (decoded, stripped, upper-cased) that start the run / take a frame, by prefix
    run_requests: tuple[str, ...] = ()
    frame_requests: tuple[str, ...] = ()
    # a detector takes frames; a potentiostat's "frame" fault waits for a simulated detector's
    detector: bool = True
    # requests whose replies may be frozen by ``stuck`` (by prefix; empty: any request)
    stuck_requests: tuple[str, ...] = ()

    def split(self, buffer: bytearray, replies: bool) -> list[bytes]:
        """Complete messages taken from the front of ``buffer`` (the rest stays)."""
        out = []
        while True:
            end = buffer.find(self.terminator)
            if end < 0:
                return out
            end += len(self.terminator)
            out.append(bytes(buffer[:end]))
            del buffer[:end]

    def _text(self, message: bytes) -> str:
        return message.decode("latin-1").strip().upper()

    def starts_run(self, request: bytes) -> bool:
        return self._text(request).startswith(self.run_requests) if self.run_requests else False

    def takes_frame(self, request: bytes) -> bool:
        return self._text(request).startswith(self.frame_requests) if self.frame_requests else False

    def stuck_key(self, request: bytes) -> bytes | None:
        """The key under which this request's reply is frozen, or None: never frozen."""
        if self.stuck_requests and not self._text(request).startswith(self.stuck_requests):
            return None
        return request

    def error_reply(self, request: bytes, reply: bytes) -> bytes:
        """The instrument's own error status in place of ``reply``."""
        raise NotImplementedError(f"{self.name}: no error status modelled")

    def expects_reply(self, request: bytes) -> bool:
        """Whether the instrument answers this request (SCPI commands without ``?`` do not)."""
        return True

    def relay_file(self, path: str, injector) -> tuple[str, Callable[[], None]]:
        """(path the driver reads, stop) for a file the instrument writes beside its socket."""
        return path, lambda: None


@dataclass
class ScpiProtocol(WireProtocol):
    """Keithley 2450 SCPI: a query ends in ``?``. Its error status for a reading is the
    no-reading value 9.91E+37 (what a 2450 returns for a measurement it could not make); for an
    error-queue query, an error number and text."""

    def expects_reply(self, request: bytes) -> bool:
        return "?" in self._text(request)

    def error_reply(self, request: bytes, reply: bytes) -> bytes:
        if "ERR" in self._text(request):
            return b'-222,"Data out of range"\n'
        return b",".join(b"9.91E+37" for _ in reply.strip().split(b",")) + b"\n"


_PROTOCOLS: dict[str, WireProtocol] = {
    "keithley2450": ScpiProtocol(
        "keithley2450",
        run_requests=("OUTPUT ON", ":OUTP ON", "OUTP ON", ":OUTP:STAT ON"),
        detector=False,
    ),
}


# Modules that register the other protocols (beside their simulators' servers)
_MODULES = ("faults_methodscript", "faults_ocean_hdx", "faults_labspec", "faults_nanonis", "faults_mpms3")


def _load() -> None:
    for module in _MODULES:
        importlib.import_module(f"{__package__}.{module}")


def register_wire_protocol(backend: str, protocol: WireProtocol) -> None:
    _PROTOCOLS[backend] = protocol


def protocol_for(backend: str) -> WireProtocol:
    """A fresh copy: a protocol may keep per-relay state."""
    _load()
    try:
        return dataclasses.replace(_PROTOCOLS[backend])
    except KeyError:
        raise ValueError(f"wire faults: no fault relay knows the {backend!r} protocol") from None


def wire_protocols() -> dict[str, WireProtocol]:
    _load()
    return dict(_PROTOCOLS)
