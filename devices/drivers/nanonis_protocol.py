"""The Nanonis TCP programming interface's framing, both directions (no sockets here).

Facts used (Nanonis "TCP Protocol" document, as SPECS' own client ``nanonis_spm`` 1.0.9 and
``nanonisTCP`` 1.1.5 implement it):
- every integer and float is big-endian;
- a message is a 40-byte header — the command name (e.g. ``Scan.FrameSet``) NUL-padded to 32
  bytes, the body size (u32), "send response back" (u16, requests only) and two zero bytes —
  then the body;
- a response echoes the command name, its body holds the return arguments, then the error
  section: status (u32, 0 = no error), description size (i32), description (text). SPECS' client
  reads it exactly so; ``nanonisTCP`` (for "version > 14000") reads a second i32 after the status
  as an error code before the size. A successful reply (8 zero bytes) reads the same either way;
  what newer firmware puts in an error reply is not documented in what we have (see
  docs/skpm.md), so errors are written and read in SPECS' form;
- strings are sent with their size before them (an i32); arrays of strings as a total byte size,
  a count, and each string with its size (``Signals.NamesGet``); 2-D float32 arrays as rows,
  columns, then row-major values.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

DEFAULT_PORT = 6501  # Nanonis' first TCP port (File > Settings > TCP: 6501-6504)
HEADER = struct.Struct(">32sIHH")
HEADER_SIZE = HEADER.size  # 40
MAX_BODY = 256 * 1024 * 1024  # a 4096 x 4096 float32 frame is 64 MB: anything bigger is garbage


class NanonisProtocolError(RuntimeError):
    """A message that does not follow the protocol (garbled header, wrong body size)."""


@dataclass(frozen=True)
class Header:
    command: str
    body_size: int
    send_response: bool


def encode_header(command: str, body_size: int, send_response: bool = True) -> bytes:
    name = command.encode("ascii")
    if len(name) > 32:
        raise ValueError(f"a Nanonis command name has at most 32 bytes (got {command!r})")
    return HEADER.pack(name, body_size, int(send_response), 0)


def decode_header(data: bytes) -> Header:
    """The header of a message; NanonisProtocolError for one that cannot be a Nanonis header."""
    if len(data) != HEADER_SIZE:
        raise NanonisProtocolError(f"a header has {HEADER_SIZE} bytes, got {len(data)}")
    raw, size, respond, _ = HEADER.unpack(data)
    name = raw.rstrip(b"\0")
    if b"\0" in name or not name or not all(0x20 < c < 0x7F for c in name):
        raise NanonisProtocolError(f"garbled command name {raw!r}")
    if size > MAX_BODY:
        raise NanonisProtocolError(f"body size {size} for {name.decode()} is beyond {MAX_BODY} bytes")
    return Header(name.decode("ascii"), size, bool(respond))


def encode_message(command: str, body: bytes = b"", send_response: bool = True) -> bytes:
    return encode_header(command, len(body), send_response) + body


def error_section(status: int = 0, description: str = "") -> bytes:
    text = description.encode("utf-8")
    return struct.pack(">Ii", status, len(text)) + text


class BodyWriter:
    """Arguments in order, big-endian: ``BodyWriter().f32(1.0).u32(2).bytes()``."""

    def __init__(self):
        self._parts: list[bytes] = []

    def _pack(self, fmt: str, *values) -> BodyWriter:
        self._parts.append(struct.pack(">" + fmt, *values))
        return self

    def u16(self, v: int) -> BodyWriter:
        return self._pack("H", v)

    def u32(self, v: int) -> BodyWriter:
        return self._pack("I", v)

    def i32(self, v: int) -> BodyWriter:
        return self._pack("i", v)

    def f32(self, v: float) -> BodyWriter:
        return self._pack("f", v)

    def i32_array(self, values, with_count: bool = True) -> BodyWriter:
        if with_count:
            self.i32(len(values))
        return self._pack(f"{len(values)}i", *values)

    def f32_array(self, values, with_count: bool = True) -> BodyWriter:
        if with_count:
            self.i32(len(values))
        return self._pack(f"{len(values)}f", *values)

    def string(self, text: str) -> BodyWriter:
        data = text.encode("utf-8")
        self.i32(len(data))
        self._parts.append(data)
        return self

    def strings(self, texts: list[str]) -> BodyWriter:
        """Total size in bytes, count, then each with its size (Signals.NamesGet)."""
        encoded = [t.encode("utf-8") for t in texts]
        self.i32(sum(4 + len(e) for e in encoded)).i32(len(encoded))
        for e in encoded:
            self.i32(len(e))
            self._parts.append(e)
        return self

    def f32_2d(self, array: np.ndarray) -> BodyWriter:
        a = np.asarray(array, dtype=">f4")
        self.i32(a.shape[0]).i32(a.shape[1])
        self._parts.append(a.tobytes())
        return self

    def raw(self, data: bytes) -> BodyWriter:
        self._parts.append(bytes(data))
        return self

    def bytes(self) -> bytes:
        return b"".join(self._parts)


class BodyReader:
    """Return arguments read in order; a body too short or too long is a NanonisProtocolError
    naming the command."""

    def __init__(self, command: str, body: bytes):
        self.command, self._body, self._at = command, body, 0

    def _take(self, n: int, what: str) -> bytes:
        if n < 0 or self._at + n > len(self._body):
            raise NanonisProtocolError(
                f"{self.command}: body too short for {what} ({len(self._body)} bytes, needs {self._at + n})"
            )
        out = self._body[self._at : self._at + n]
        self._at += n
        return out

    def _unpack(self, fmt: str, what: str):
        return struct.unpack(">" + fmt, self._take(struct.calcsize(">" + fmt), what))

    def u16(self, what: str = "u16") -> int:
        return self._unpack("H", what)[0]

    def u32(self, what: str = "u32") -> int:
        return self._unpack("I", what)[0]

    def i32(self, what: str = "i32") -> int:
        return self._unpack("i", what)[0]

    def f32(self, what: str = "f32") -> float:
        return float(self._unpack("f", what)[0])

    def count(self, what: str, limit: int = 1 << 24) -> int:
        n = self.i32(what)
        if not 0 <= n <= limit:
            raise NanonisProtocolError(f"{self.command}: {what} {n} is not a count")
        return n

    def i32_array(self, n: int, what: str = "i32 array") -> list[int]:
        return list(self._unpack(f"{n}i", what))

    def f32_array(self, n: int, what: str = "f32 array") -> np.ndarray:
        return np.frombuffer(self._take(4 * n, what), dtype=">f4").astype(np.float64)

    def text(self, n: int, what: str = "string") -> str:
        return self._take(n, what).decode("utf-8", errors="replace")

    def string(self, what: str = "string") -> str:
        return self.text(self.count(f"{what} size"), what)

    def strings(self, what: str = "strings") -> list[str]:
        self.count(f"{what} size")
        return [self.string(what) for _ in range(self.count(f"{what} count"))]

    def f32_2d(self, what: str = "2-D array") -> np.ndarray:
        rows, cols = self.count(f"{what} rows", 1 << 16), self.count(f"{what} columns", 1 << 16)
        return self.f32_array(rows * cols, what).reshape(rows, cols)

    @property
    def body(self) -> bytes:
        return self._body

    @property
    def remaining(self) -> int:
        return len(self._body) - self._at

    def error(self) -> tuple[int, str]:
        """The error section, which must end the body: (status, description)."""
        status = self.u32("error status")
        size = self.i32("error description size")
        if size < 0 or size != self.remaining:
            raise NanonisProtocolError(
                f"{self.command}: error section says {size} bytes of description, {self.remaining} are left"
            )
        return status, self.text(size, "error description")
