"""The fault relay's view of the Nanonis TCP interface (the simulated controller, ``nanonis_server.py``).

A message is framed by its 40-byte header's body size, so a fault applies to one whole reply.
The run starts at ``Scan.Action`` start; a frame is in flight while ``Scan.WaitEndOfScan`` waits
for the scan (a fault "during a frame" hits the scan half-way). ``stuck`` freezes the measured
data (``Scan.FrameDataGrab``, ``Signals.ValsGet``); the error status is the reply's error
section, after the command's empty return arguments, as the controller refuses a command.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from operando.devices.drivers.nanonis_protocol import HEADER, HEADER_SIZE, encode_message, error_section

from .fault_protocols import WireProtocol, register_wire_protocol
from .nanonis_firmware import EMPTY_REPLIES

_DATA = ("Scan.FrameDataGrab", "Signals.ValsGet")


def _command(message: bytes) -> str:
    return message[:32].rstrip(b"\0").decode("latin-1") if len(message) >= HEADER_SIZE else ""


@dataclass
class NanonisWireProtocol(WireProtocol):
    def split(self, buffer: bytearray, replies: bool) -> list[bytes]:
        out = []
        while len(buffer) >= HEADER_SIZE:
            size = HEADER_SIZE + HEADER.unpack_from(buffer)[1]
            if len(buffer) < size:
                break
            out.append(bytes(buffer[:size]))
            del buffer[:size]
        return out

    def starts_run(self, request: bytes) -> bool:
        # Scan.Action: u16 action (0 = start), u32 direction
        body = request[HEADER_SIZE:]
        return _command(request) == "Scan.Action" and len(body) >= 2 and struct.unpack_from(">H", body)[0] == 0

    def takes_frame(self, request: bytes) -> bool:
        return _command(request) == "Scan.WaitEndOfScan"

    def stuck_key(self, request: bytes) -> bytes | None:
        return request if _command(request) in _DATA else None

    def expects_reply(self, request: bytes) -> bool:
        return len(request) < HEADER_SIZE or bool(HEADER.unpack_from(request)[2])

    def error_reply(self, request: bytes, reply: bytes) -> bytes:
        command = _command(request) or _command(reply)
        body = EMPTY_REPLIES.get(command, b"") + error_section(1, "simulated controller error")
        return encode_message(command, body, send_response=False)


register_wire_protocol("nanonis", NanonisWireProtocol("nanonis", terminator=b"", detector=True))
