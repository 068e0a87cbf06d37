"""The Ocean Binary Protocol (OBP) of Ocean Insight spectrometers, without any I/O.

Bytes in, messages out and back: the simulator parses requests and formats replies with it,
tests and fuzzers parse replies. It opens no socket; the transport is someone else's (caproto's
split). Every fact here is read from python-seabreeze 2.11.0's pure-Python backend, which is
what talks to a real HDX (``seabreeze/pyseabreeze/protocol.py``: ``_OBP``, ``OBPProtocol``):

- a message is a 44-byte header, an optional payload and a 20-byte footer, little-endian
  (``_OBP.HEADER_FMT``: start bytes 0xC0C1, protocol version 0x1100, flags, error number,
  message type, regarding, 6 reserved bytes, checksum type, immediate-data length, 16 bytes of
  immediate data, bytes remaining; ``_OBP.FOOTER_FMT``: 16-byte checksum, 0xC2C3C4C5);
- data of up to 16 bytes travels as immediate data, longer data as the payload, and "bytes
  remaining" counts payload and footer (``OBPProtocol._construct_outgoing_message``);
- the checksum, when the checksum type is MD5 (1), is the MD5 of everything before the footer
  (``OBPProtocol.receive``); with type 0 it is 16 zero bytes;
- the flags and error numbers are ``_OBP.FLAG_*`` and ``_OBP.ERROR_CODES``; the message types
  and the layout of their request data are ``OBPProtocol.msgs``.

Malformed input raises ``ObpError`` naming the field, what was expected and what came; its
``code`` is the OBP error number a device answers such a message with.
"""

from __future__ import annotations

import hashlib
import struct
from collections import namedtuple
from dataclasses import dataclass

HEADER_SIZE = 44
FOOTER_SIZE = 20
IMMEDIATE_MAX = 16
START_BYTES = 0xC0C1
PROTOCOL_VERSION = 0x1100
END_BYTES = 0xC2C3C4C5
MAX_MESSAGE_SIZE = 1 << 20  # a guard for parsers, not a protocol limit: no HDX message comes near

_HEADER = struct.Struct("<HHHHLL6sBB16sL")
_Header = namedtuple(
    "_Header", "start version flags error message_type regarding reserved checksum_type immediate_length immediate rest"
)
_FOOTER = struct.Struct("<16sL")

# flags (_OBP.FLAG_*)
FLAG_RESPONSE_TO_REQUEST = 0x0001
FLAG_ACK = 0x0002
FLAG_REQUEST_ACK = 0x0004
FLAG_NACK = 0x0008
FLAG_HW_EXCEPTION = 0x0010
FLAG_PROTOCOL_DEPRECATED = 0x0020
_REPLY_FLAGS = FLAG_RESPONSE_TO_REQUEST | FLAG_ACK | FLAG_NACK | FLAG_HW_EXCEPTION

CHECKSUM_NONE = 0
CHECKSUM_MD5 = 1

# message types (OBPProtocol.msgs; the names are seabreeze's comments)
GET_SERIAL = 0x00000100
GET_SERIAL_LENGTH = 0x00000101
GET_VID = 0x00000E00
GET_PID = 0x00000E01
GET_DEV_STR = 0x00000E11
GET_MC_ENABLED = 0x00000A80
GET_RAW_SPECTRUM_NOW_HDX = 0x00101000
SET_ITIME_USEC = 0x00110010
SET_TRIG_MODE = 0x00110110
GET_WL_COEFF_COUNT = 0x00180100
GET_WL_COEFF = 0x00180101
GET_NL_COEFF_COUNT = 0x00181100
GET_NL_COEFF = 0x00181101
GET_TE_TEMPERATURE = 0x00420004

# the data a request carries, as a struct format (OBPProtocol.msgs)
REQUEST_FORMATS: dict[int, str] = {
    GET_SERIAL: "",
    GET_SERIAL_LENGTH: "",
    GET_VID: "",
    GET_PID: "",
    GET_DEV_STR: "",
    GET_MC_ENABLED: "<B",
    GET_RAW_SPECTRUM_NOW_HDX: "",
    SET_ITIME_USEC: "<L",
    SET_TRIG_MODE: "<B",
    GET_WL_COEFF_COUNT: "",
    GET_WL_COEFF: "<B",
    GET_NL_COEFF_COUNT: "",
    GET_NL_COEFF: "<B",
    GET_TE_TEMPERATURE: "",
}

MESSAGE_NAMES: dict[int, str] = {
    GET_SERIAL: "GET_SERIAL",
    GET_SERIAL_LENGTH: "GET_SERIAL_LENGTH",
    GET_VID: "GET_VID",
    GET_PID: "GET_PID",
    GET_DEV_STR: "GET_DEV_STR",
    GET_MC_ENABLED: "GET_MC_ENABLED",
    GET_RAW_SPECTRUM_NOW_HDX: "GET_RAW_SPECTRUM_NOW_HDX",
    SET_ITIME_USEC: "SET_ITIME_USEC",
    SET_TRIG_MODE: "SET_TRIG_MODE",
    GET_WL_COEFF_COUNT: "GET_WL_COEFF_COUNT",
    GET_WL_COEFF: "GET_WL_COEFF",
    GET_NL_COEFF_COUNT: "GET_NL_COEFF_COUNT",
    GET_NL_COEFF: "GET_NL_COEFF",
    GET_TE_TEMPERATURE: "GET_TE_TEMPERATURE",
}

# error numbers (_OBP.ERROR_CODES), named
ERROR_NAMES: dict[int, str] = {
    0: "SUCCESS",
    1: "INVALID_PROTOCOL",
    2: "UNKNOWN_MESSAGE_TYPE",
    3: "BAD_CHECKSUM",
    4: "MESSAGE_TOO_LARGE",
    5: "PAYLOAD_LENGTH_MISMATCH",
    6: "PAYLOAD_DATA_INVALID",
    7: "DEVICE_NOT_READY",
    8: "UNKNOWN_CHECKSUM_TYPE",
    9: "DEVICE_RESET",
    10: "TOO_MANY_BUSES",
    11: "OUT_OF_MEMORY",
    12: "NO_SUCH_INFORMATION",
    13: "INTERNAL_DEVICE_ERROR",
    100: "DECRYPTION_FAILED",
    101: "FIRMWARE_LAYOUT_INVALID",
    102: "DATA_PACKET_WRONG_SIZE",
    103: "HARDWARE_REVISION_INCOMPATIBLE",
    104: "FLASH_MAP_INCOMPATIBLE",
    255: "DEFERRED",
}
ERR_SUCCESS = 0
ERR_INVALID_PROTOCOL = 1
ERR_UNKNOWN_MESSAGE_TYPE = 2
ERR_BAD_CHECKSUM = 3
ERR_MESSAGE_TOO_LARGE = 4
ERR_PAYLOAD_LENGTH = 5
ERR_PAYLOAD_INVALID = 6
ERR_DEVICE_NOT_READY = 7
ERR_UNKNOWN_CHECKSUM_TYPE = 8


class ObpError(ValueError):
    """Bytes that are not a well-formed OBP message: names the field, expected and got."""

    def __init__(self, field: str, expected: str, got: str, code: int = ERR_INVALID_PROTOCOL):
        super().__init__(f"OBP {field}: expected {expected}, got {got}")
        self.field, self.expected, self.got, self.code = field, expected, got, code


def message_name(message_type: int) -> str:
    return MESSAGE_NAMES.get(message_type, f"0x{message_type:08X}")


def error_name(code: int) -> str:
    return ERROR_NAMES.get(code, f"error {code}")


@dataclass(frozen=True)
class Message:
    message_type: int
    data: bytes = b""  # the immediate data or the payload, whichever carried it
    flags: int = 0
    error: int = ERR_SUCCESS
    regarding: int = 0
    checksum_type: int = CHECKSUM_NONE

    @property
    def name(self) -> str:
        return message_name(self.message_type)

    @property
    def error_name(self) -> str:
        return error_name(self.error)

    @property
    def is_reply(self) -> bool:
        return bool(self.flags & _REPLY_FLAGS)

    @property
    def nack(self) -> bool:
        return bool(self.flags & (FLAG_NACK | FLAG_HW_EXCEPTION)) and self.error != ERR_SUCCESS


# ---- bytes out -----------------------------------------------------------------------------------
def encode(message: Message) -> bytes:
    """The message's bytes: data of up to 16 bytes as immediate data, longer as the payload."""
    data = bytes(message.data)
    if message.checksum_type not in (CHECKSUM_NONE, CHECKSUM_MD5):
        raise ObpError("checksum type", "0 (none) or 1 (MD5)", str(message.checksum_type), ERR_UNKNOWN_CHECKSUM_TYPE)
    immediate, payload = (data, b"") if len(data) <= IMMEDIATE_MAX else (b"", data)
    header = _HEADER.pack(
        START_BYTES,
        PROTOCOL_VERSION,
        message.flags,
        message.error,
        message.message_type,
        message.regarding,
        b"",
        message.checksum_type,
        len(immediate),
        immediate,
        len(payload) + FOOTER_SIZE,
    )
    body = header + payload
    checksum = hashlib.md5(body).digest() if message.checksum_type == CHECKSUM_MD5 else bytes(16)
    return body + _FOOTER.pack(checksum, END_BYTES)


def encode_request(
    message_type: int, data: bytes = b"", *, request_ack: bool = False, regarding: int = 0, md5: bool = False
) -> bytes:
    """A host's request, as seabreeze builds it (checksum type none unless ``md5``)."""
    flags = FLAG_REQUEST_ACK if request_ack else 0
    checksum = CHECKSUM_MD5 if md5 else CHECKSUM_NONE
    return encode(Message(message_type, data, flags, ERR_SUCCESS, regarding, checksum))


def encode_reply(request: Message, data: bytes = b"", *, error: int = ERR_SUCCESS, md5: bool = True) -> bytes:
    """A device's reply to ``request``: its message type and regarding, flagged as a response;
    ACK when the request asked for one, NACK with the error number on an error."""
    flags = FLAG_RESPONSE_TO_REQUEST
    if error != ERR_SUCCESS:
        flags |= FLAG_NACK
    elif request.flags & FLAG_REQUEST_ACK:
        flags |= FLAG_ACK
    checksum = CHECKSUM_MD5 if md5 else CHECKSUM_NONE
    return encode(Message(request.message_type, data, flags, error, request.regarding, checksum))


# ---- bytes in ------------------------------------------------------------------------------------
def frame_length(header: bytes) -> int:
    """Total length of the message this 44-byte header starts (header + bytes remaining)."""
    if len(header) < HEADER_SIZE:
        raise ObpError("header", f"{HEADER_SIZE} bytes", f"{len(header)} bytes", ERR_PAYLOAD_LENGTH)
    h = _Header._make(_HEADER.unpack_from(header))
    if h.start != START_BYTES:
        raise ObpError("start bytes", f"0x{START_BYTES:04X}", f"0x{h.start:04X}")
    if h.version != PROTOCOL_VERSION:
        raise ObpError("protocol version", f"0x{PROTOCOL_VERSION:04X}", f"0x{h.version:04X}")
    if h.checksum_type not in (CHECKSUM_NONE, CHECKSUM_MD5):
        raise ObpError("checksum type", "0 (none) or 1 (MD5)", str(h.checksum_type), ERR_UNKNOWN_CHECKSUM_TYPE)
    if h.immediate_length > IMMEDIATE_MAX:
        raise ObpError("immediate data length", f"at most {IMMEDIATE_MAX}", str(h.immediate_length), ERR_PAYLOAD_LENGTH)
    if h.rest < FOOTER_SIZE:
        raise ObpError("bytes remaining", f"at least {FOOTER_SIZE} (the footer)", str(h.rest), ERR_PAYLOAD_LENGTH)
    if HEADER_SIZE + h.rest > MAX_MESSAGE_SIZE:
        raise ObpError(
            "bytes remaining", f"at most {MAX_MESSAGE_SIZE - HEADER_SIZE}", str(h.rest), ERR_MESSAGE_TOO_LARGE
        )
    return HEADER_SIZE + h.rest


def decode(frame: bytes) -> Message:
    """One complete message, checked field by field (see ``ObpError``)."""
    frame = bytes(frame)
    expected = frame_length(frame)
    if len(frame) != expected:
        raise ObpError(
            "message length", f"{expected} bytes (header + bytes remaining)", f"{len(frame)} bytes", ERR_PAYLOAD_LENGTH
        )
    h = _Header._make(_HEADER.unpack_from(frame))
    checksum, end = _FOOTER.unpack_from(frame, len(frame) - FOOTER_SIZE)
    if end != END_BYTES:
        raise ObpError("footer", f"0x{END_BYTES:08X}", f"0x{end:08X}", ERR_PAYLOAD_LENGTH)
    if h.checksum_type == CHECKSUM_MD5:
        computed = hashlib.md5(frame[:-FOOTER_SIZE]).digest()
        if checksum != computed:
            raise ObpError("checksum", f"MD5 {computed.hex()}", checksum.hex(), ERR_BAD_CHECKSUM)
    payload = frame[HEADER_SIZE:-FOOTER_SIZE]
    if h.immediate_length and payload:
        got = f"{h.immediate_length} immediate and {len(payload)} payload bytes"
        raise ObpError("data", "immediate data or a payload", got, ERR_PAYLOAD_LENGTH)
    data = h.immediate[: h.immediate_length] if h.immediate_length else payload
    return Message(h.message_type, data, h.flags, h.error, h.regarding, h.checksum_type)


def decode_request(frame: bytes) -> Message:
    """A host's request: a well-formed message that carries no response, ACK or NACK flag."""
    message = decode(frame)
    if message.is_reply:
        raise ObpError("flags", "a request (no response, ACK or NACK flag)", f"0x{message.flags:04X}")
    return message


def decode_reply(frame: bytes, expected_type: int | None = None) -> Message:
    """A device's reply (a NACK is a reply too: see ``Message.nack`` and ``error_name``)."""
    message = decode(frame)
    if message.flags & FLAG_REQUEST_ACK:
        raise ObpError("flags", "a reply (no request-ACK flag)", f"0x{message.flags:04X}")
    if expected_type is not None and message.message_type != expected_type:
        raise ObpError("message type", message_name(expected_type), message_name(message.message_type))
    return message


def request_values(message: Message) -> tuple:
    """The values a known request carries, unpacked by its format (``REQUEST_FORMATS``)."""
    fmt = REQUEST_FORMATS.get(message.message_type)
    if fmt is None:
        raise ObpError("message type", "one this parser knows", message.name, ERR_UNKNOWN_MESSAGE_TYPE)
    size = struct.calcsize(fmt) if fmt else 0
    if len(message.data) != size:
        raise ObpError(f"{message.name} data", f"{size} bytes", f"{len(message.data)} bytes", ERR_PAYLOAD_LENGTH)
    return struct.unpack(fmt, message.data) if fmt else ()


class FrameBuffer:
    """Bytes from a stream in, complete messages out (``feed`` then iterate ``frames``)."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> None:
        self._pending += data

    def frames(self):
        """Complete frames in arrival order; a malformed header raises ``ObpError`` and drops
        everything buffered (there is no way to find the next start in a binary stream)."""
        while len(self._pending) >= HEADER_SIZE:
            try:
                size = frame_length(bytes(self._pending[:HEADER_SIZE]))
            except ObpError:
                self._pending.clear()
                raise
            if len(self._pending) < size:
                return
            frame = bytes(self._pending[:size])
            del self._pending[:size]
            yield frame

    def __len__(self) -> int:
        return len(self._pending)
