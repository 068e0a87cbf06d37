"""The fault relay's view of LabSpec 6's remote protocol (the simulated LabSpec, ``labspec_server.py``).

Replies are lines ending in CR LF; commands carry no line ending (LabSpec frames them by a
pause), so each chunk the driver sends is taken as one command (it sends each with one write
and waits for its reply). A frame is ``StartRamanMeasurement``; ``stuck`` freezes the spectra;
the error status is ``<id> Error <what>``, as LabSpec refuses a command it cannot do now.
"""

from __future__ import annotations

from dataclasses import dataclass

from operando.devices.drivers import labspec_protocol as lp

from .fault_protocols import WireProtocol, register_wire_protocol


def _words(request: bytes) -> list[str]:
    return request.decode("latin-1").split()


@dataclass
class LabSpecWireProtocol(WireProtocol):
    def split(self, buffer: bytearray, replies: bool) -> list[bytes]:
        if replies:
            return super().split(buffer, replies)
        out = [bytes(buffer)] if buffer.strip() else []
        del buffer[:]
        return out

    def _command(self, request: bytes) -> str:
        words = _words(request)
        return words[1] if len(words) > 1 and words[0].isdigit() else ""

    def starts_run(self, request: bytes) -> bool:
        return False  # a detector: its run starts with its first frame

    def takes_frame(self, request: bytes) -> bool:
        return self._command(request) == lp.START_MEASUREMENT

    def stuck_key(self, request: bytes) -> bytes | None:
        # the id counts up: the same measurement asked again is the same command and arguments
        return " ".join(_words(request)[1:]).encode() if self.takes_frame(request) else None

    def error_reply(self, request: bytes, reply: bytes) -> bytes:
        words = _words(request)
        reply_id = words[0] if words and words[0].isdigit() else "-1"
        return lp.format_error(reply_id, "Error", f"{self._command(request) or 'command'} failed: detector error")


register_wire_protocol("labspec", LabSpecWireProtocol("labspec", terminator=lp.REPLY_END))
