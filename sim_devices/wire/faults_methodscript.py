"""The fault relay's view of MethodSCRIPT (``fault_protocols.WireProtocol``).

MethodSCRIPT is a stream, not request/response: the driver uploads a script (``e``, its lines, a
blank line) and the instrument streams lines back until an empty line ends the script. Framing:

- requests: an online command is one line; an upload is ONE message, from ``e`` to the blank
  line that starts it (so ``starts_run`` sees the whole script);
- replies: consecutive data packages (``P...``) that arrived together form one message, every
  other line (``e`` acknowledgement, ``M``/``*`` loop markers, ``!XXXX`` errors, the final empty
  line) is a message of its own. Grouping packages makes ``slow`` a latency (2 s per burst) rather
  than a throughput limit of one line per 2 s, which no USB-CDC link has.

``stuck`` freezes the data packages only: loop markers, the end of the script and the reply to
an abort still pass, as from a firmware whose readings froze. The injector keys frozen replies
by request (``stuck_key(request)``), which cannot tell a package from a marker; so ``split``
queues what it frames and ``stuck_key`` — called once per framed reply, in order — answers for
the reply at the head of that queue.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from .fault_protocols import WireProtocol, register_wire_protocol
from .methodscript_language import SYNTAX_ERROR

ERROR_INVALID_COMMAND = 0x0003  # the simulator's reply to an unknown online command
_PACKAGES = b"packages"  # the one key every frozen burst of data packages shares


@dataclass
class MethodScriptWireProtocol(WireProtocol):
    detector: bool = False
    _framed: deque = field(default_factory=deque, init=False, repr=False)  # replies awaiting stuck_key

    # ---- framing ----------------------------------------------------------------------------
    def split(self, buffer: bytearray, replies: bool) -> list[bytes]:
        return self._split_replies(buffer) if replies else self._split_requests(buffer)

    def _split_requests(self, buffer: bytearray) -> list[bytes]:
        out = []
        while True:
            if bytes(buffer[:2]) in (b"e\n", b"e\r"):  # an upload: up to its blank line
                end = _blank_line_end(buffer)
            else:
                end = buffer.find(b"\n") + 1
            if end <= 0:
                return out
            out.append(bytes(buffer[:end]))
            del buffer[:end]

    def _split_replies(self, buffer: bytearray) -> list[bytes]:
        out: list[bytes] = []
        while (end := buffer.find(b"\n")) >= 0:
            line = bytes(buffer[: end + 1])
            del buffer[: end + 1]
            if line.startswith(b"P") and out and out[-1].startswith(b"P"):
                out[-1] += line  # a burst of packages: one message
            else:
                out.append(line)
        self._framed.clear()  # whatever an earlier call framed has been through the injector
        self._framed.extend(out)
        return out

    # ---- what requests do ---------------------------------------------------------------------
    def starts_run(self, request: bytes) -> bool:
        """The upload of a script with a measurement loop (not a bare ``cell_off``)."""
        return request.startswith(b"e") and b"meas_loop" in request

    def takes_frame(self, request: bytes) -> bool:
        return False

    def expects_reply(self, request: bytes) -> bool:
        return request.strip() != b""  # a blank line (PalmSens' sync) has no reply

    def stuck_key(self, request: bytes) -> bytes | None:
        reply = self._framed.popleft() if self._framed else b""
        return _PACKAGES if reply.startswith(b"P") else None

    def error_reply(self, request: bytes, reply: bytes) -> bytes:
        """What the firmware says instead: a script it rejects (``e!4001: Line L, Col C``, in
        place of the acknowledgement), an error while it runs (``!4001: ...``, in place of its
        output), an unknown online command (``<c>!0003``). Codes as the simulator uses them
        (PalmSens' code table for each cause is not confirmed)."""
        if reply.startswith(b"e"):
            return f"e!{SYNTAX_ERROR:04X}: Line 1, Col 1\n".encode()
        first = reply[:1]
        if first in (b"t", b"i", b"v") and not request.startswith(b"e"):
            return first + f"!{ERROR_INVALID_COMMAND:04X}\n".encode()
        return f"!{SYNTAX_ERROR:04X}: Line {_loop_line(request)}, Col 1\n".encode()


def _blank_line_end(buffer: bytearray) -> int:
    """End (exclusive) of the first empty line after the ``e`` line, or 0 if not arrived."""
    for blank in (b"\n\n", b"\n\r\n"):
        at = buffer.find(blank)
        if at >= 0:
            return at + len(blank)
    return 0


def _loop_line(script: bytes) -> int:
    """1-based line (after ``e``) of the script's first measurement loop, else 1."""
    for number, line in enumerate(script.split(b"\n")[1:], start=1):
        if line.startswith(b"meas_loop"):
            return number
    return 1


register_wire_protocol("methodscript", MethodScriptWireProtocol("methodscript", detector=False))
