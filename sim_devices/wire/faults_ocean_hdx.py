"""The fault relay's view of the Ocean Binary Protocol (the simulated HDX, ``ocean_hdx_server.py``).

A message is framed by its 44-byte header's "bytes remaining" (``obp.frame_length``), so a
fault applies to one whole reply. A frame is a raw spectrum (GET_RAW_SPECTRUM_NOW_HDX): the
detector's run starts with the first; ``stuck`` freezes the spectra; the error status is the
reply header's error number with the NACK flag, as the HDX answers a request it cannot do.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from operando.devices.drivers import obp

from .fault_protocols import WireProtocol, register_wire_protocol

_SETS = (obp.SET_ITIME_USEC, obp.SET_TRIG_MODE)  # commands: answered only when they ask for an ACK
_FLAGS_AT, _TYPE_AT, _REST_AT = 4, 8, 40  # offsets in the header (obp._HEADER)


def _message_type(message: bytes) -> int | None:
    return struct.unpack_from("<L", message, _TYPE_AT)[0] if len(message) >= obp.HEADER_SIZE else None


@dataclass
class ObpProtocol(WireProtocol):
    error_code: int = obp.ERR_DEVICE_NOT_READY  # what a spectrometer that cannot read out says

    def split(self, buffer: bytearray, replies: bool) -> list[bytes]:
        out = []
        while len(buffer) >= obp.HEADER_SIZE:
            try:
                size = obp.frame_length(bytes(buffer[: obp.HEADER_SIZE]))
            except obp.ObpError:
                size = len(buffer)  # no header: pass on what came as one message (never stall)
            if len(buffer) < size:
                break
            out.append(bytes(buffer[:size]))
            del buffer[:size]
        return out

    def starts_run(self, request: bytes) -> bool:
        return False  # a detector: its run starts with its first frame

    def takes_frame(self, request: bytes) -> bool:
        return _message_type(request) == obp.GET_RAW_SPECTRUM_NOW_HDX

    def stuck_key(self, request: bytes) -> bytes | None:
        return request if self.takes_frame(request) else None

    def expects_reply(self, request: bytes) -> bool:
        if len(request) < obp.HEADER_SIZE:
            return True
        flags = struct.unpack_from("<H", request, _FLAGS_AT)[0]
        return _message_type(request) not in _SETS or bool(flags & obp.FLAG_REQUEST_ACK)

    def error_reply(self, request: bytes, reply: bytes) -> bytes:
        try:
            asked = obp.decode_request(request)
        except obp.ObpError:
            asked = obp.Message(_message_type(request) or 0)
        return obp.encode_reply(asked, error=self.error_code)


register_wire_protocol("ocean_hdx", ObpProtocol("ocean_hdx", terminator=b""))
