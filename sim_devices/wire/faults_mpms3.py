"""Wire faults for the simulated MPMS3: MultiPyVu's socket protocol and MultiVu's `.dat` file.

The socket (MultiPyVu 3.8.0, ``SocketMessage``): each message is a 2-byte big-endian length of a
UTF-8 JSON header (``byteorder``, ``message-type``, ``message-encoding``, ``message-length``),
the header, then ``message-length`` bytes of JSON content ``{id, action, query, result}``. The
client sends a request; the server answers twice, ``message_type`` ``confirmed`` at once, then
``completed`` with the result; the client acknowledges the completion with a ``confirmed`` copy
(no answer to that). So a relay "reply" here is the pair (confirmed + completed): a fault hits
the answer the client acts on. The server's own error status is a ``result`` beginning
``MultiPyVuError:`` (a set command MultiVu refused) or, for a reading, MultiVu's ``General
Failure`` state (code 15 in both the field and the temperature state tables).

The `.dat` file: ``relay_file`` copies the simulator's file to a second one (same name, a new
temporary folder) which the driver follows; the fault applies to data rows (the header always
passes). No socket request takes the MPMS3's frame or starts its run (the status poller asks
``FIELD?``/``TEMP?`` before the run opens): a frame is the driver waiting for a data row, seen
as its reader opening the relayed file (inotify); its first such look starts the run (as a
detector's first frame does), ``when: frame`` begins at a look ``after_s`` into the run.
"""

from __future__ import annotations

import ctypes
import json
import os
import random
import shutil
import struct
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from .fault_protocols import WireProtocol, register_wire_protocol

FILE_POLL_S = 0.05
GENERAL_FAILURE = 15  # MultiVu's field and temperature state code for a failure
STATUS_COLUMNS = ("Temp. Status (code)", "Field Status (code)")
GARBLE = "#$%&'()*+-./0123456789:;<=>?@XYZ[]^_`{|}~"


def _frame(buffer: bytes | bytearray, start: int = 0) -> tuple[int, dict | None] | None:
    """(end, content) of the message at ``start``; None: incomplete. A message whose header is
    not MultiPyVu's gives (len(buffer), None): pass the rest on as it is."""
    if len(buffer) - start < 2:
        return None
    (header_len,) = struct.unpack(">H", bytes(buffer[start : start + 2]))
    if len(buffer) - start < 2 + header_len:
        return None
    try:
        header = json.loads(bytes(buffer[start + 2 : start + 2 + header_len]).decode("utf-8"))
        length = int(header["message-length"])
    except (ValueError, KeyError, TypeError):
        return len(buffer), None
    end = start + 2 + header_len + length
    if len(buffer) < end:
        return None
    try:
        content = json.loads(
            bytes(buffer[start + 2 + header_len : end]).decode(header.get("message-encoding", "utf-8"))
        )
    except (ValueError, LookupError):
        content = None
    return end, content if isinstance(content, dict) else None


def _content(message: bytes) -> dict:
    found = _frame(message)
    return (found[1] or {}) if found else {}


def encode(content: dict) -> bytes:
    """One MultiPyVu message, as ``SocketMessage._create_message`` builds it."""
    body = json.dumps(content, ensure_ascii=False).encode("utf-8")
    header = {
        "byteorder": "little",
        "message-type": "text/json",
        "message-encoding": "utf-8",
        "message-length": len(body),
    }
    head = json.dumps(header, ensure_ascii=False).encode("utf-8")
    return struct.pack(">H", len(head)) + head + body


@dataclass
class MultiPyVuProtocol(WireProtocol):
    # a reply pair ends with the completion's closing brace: a garbled reply keeps it
    terminator: bytes = b"}"
    detector: bool = True

    def split(self, buffer: bytearray, replies: bool) -> list[bytes]:
        out = []
        while True:
            found = _frame(buffer)
            if found is None:
                return out
            end, content = found
            message = bytes(buffer[:end])
            del buffer[:end]
            swallow = self.__dict__.setdefault("_swallow", set())
            if replies and content is not None and content.get("id") in swallow:
                if content.get("message_type") == "completed":
                    swallow.discard(content.get("id"))
                    continue  # already answered with the error status (``error_reply``)
            out.append(message)

    def starts_run(self, request: bytes) -> bool:
        return False  # the run starts with the first frame, seen in the file (``DatFileRelay``)

    def takes_frame(self, request: bytes) -> bool:
        return False  # a frame is the driver waiting for a data row (``DatFileRelay``)

    def expects_reply(self, request: bytes) -> bool:
        return _content(request).get("message_type") != "confirmed"  # the client's acknowledgement

    def stuck_key(self, request: bytes) -> bytes | None:
        # A frozen reply would carry an old request id, which QD's client rejects as an answer
        # to another request: the socket passes under ``stuck``; the data rows freeze.
        return None

    def error_reply(self, request: bytes, reply: bytes) -> bytes:
        """The server's error status as the answer to ``request``: its confirmation passes and
        the completion says MultiVu failed; the real completion, when it comes, is dropped."""
        asked, answer = _content(request), _content(reply)
        if not asked or answer.get("id") != asked.get("id"):
            return reply
        done = dict(asked, message_type="completed")
        action = str(asked.get("action", "")).upper()
        if action in ("FIELD?", "TEMP?"):
            done["result"] = f"0,{'Oe' if action == 'FIELD?' else 'K'},General Failure"
        elif action == "START":
            done["result"] = "Connection attempt rejected from ('127.0.0.1', 0): another client is connected."
        else:
            done["result"] = f"MultiPyVuError: Error when setting the {action} {asked.get('query', '')}: error = 1"
        if answer.get("message_type") == "completed":
            return encode(done)
        self.__dict__.setdefault("_swallow", set()).add(asked.get("id"))
        return reply + encode(done)

    def relay_file(self, path: str, injector) -> tuple[str, callable]:
        relay = DatFileRelay(Path(path), injector)
        return str(relay.start()), relay.stop


def frame_seen(injector, why: str) -> None:
    """The driver is waiting for a data row: a frame is in flight."""
    injector.on_frame(why)


class _Opens:
    """Counts the opens of one file (Linux inotify, through libc): the driver's data-file reader
    opens the file at each look while it waits for a row."""

    IN_OPEN = 0x20

    def __init__(self, path: Path):
        libc = ctypes.CDLL(None, use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self._fd < 0 or libc.inotify_add_watch(self._fd, os.fsencode(path), self.IN_OPEN) < 0:
            raise OSError(ctypes.get_errno(), f"inotify on {path}")

    def new(self) -> int:
        count = 0
        while True:
            try:
                data = os.read(self._fd, 4096)
            except BlockingIOError:
                return count
            offset = 0
            while offset + 16 <= len(data):  # struct inotify_event: wd, mask, cookie, len, name
                _, mask, _, name_len = struct.unpack_from("iIII", data, offset)
                count += bool(mask & self.IN_OPEN)
                offset += 16 + name_len

    def close(self) -> None:
        os.close(self._fd)


class DatFileRelay:
    """Copies MultiVu's `.dat` as it grows to a second file, applying the fault to data rows."""

    def __init__(self, source: Path, injector, poll_s: float = FILE_POLL_S):
        self.source, self.injector, self.poll_s = source, injector, poll_s
        self.folder = Path(tempfile.mkdtemp(prefix="operando-mpms3-relay-"))
        self.path = self.folder / source.name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wire-fault-relay-dat", daemon=True)
        self._offset = 0
        self._partial = b""
        self._columns: list[str] | None = None
        self._seen_data = False
        self._last_good: list[str] | None = None  # stuck: the last row before the fault
        self._hit = False  # a one-shot fault has damaged its row
        self._held: deque[tuple[float, bytes]] = deque()  # slow: (wall time due, line)
        self._rng = random.Random(injector.fault.seed)

    def start(self) -> Path:
        self._out = open(self.path, "ab", buffering=0)  # open once: the watch counts the driver's opens
        self._copy()  # the header (and any rows) before the driver opens the file
        self._opens = _Opens(self.path)
        self._thread.start()
        return self.path

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._opens.close()
        self._out.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self) -> None:
        looks = 0
        while not self._stop.wait(self.poll_s):
            opened = self._opens.new()
            looks += opened
            if opened and looks > 1:  # the first look is the driver's connection; later ones wait for a row
                frame_seen(self.injector, "the driver waits for a data row")
            try:
                self._copy()
            except OSError:
                continue  # the simulator's folder is going away with the run

    def _copy(self) -> None:
        with open(self.source, "rb") as f:
            f.seek(self._offset)
            data = f.read()
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        out = bytearray()
        for line in lines:
            out += self._line(line + b"\n")
        now = time.monotonic()
        while self._held and self._held[0][0] <= now:
            out += self._held.popleft()[1]
        if out:
            self._out.write(bytes(out))

    def _line(self, line: bytes) -> bytes:
        text = line.decode("latin-1")
        if self._columns is None:  # the header passes as it is
            if self._seen_data:
                self._columns = text.rstrip("\r\n").split(",")
            self._seen_data = self._seen_data or text.strip() == "[Data]"
            return line
        return self._row(text)

    def _row(self, text: str) -> bytes:
        """One data row (with its newline) as the driver gets it."""
        inj = self.injector
        kind = inj.fault.fault
        if inj.began_at is None:
            self._last_good = text.rstrip("\n").split(",")
            return text.encode("latin-1")
        if kind in ("timeout", "disconnect"):
            self._note("rows stopped")
            return b""
        if kind == "slow":
            self._held.append((time.monotonic() + inj.fault.delay_s, text.encode("latin-1")))
            return b""
        if kind == "stuck":
            if self._last_good is None:
                return text.encode("latin-1")
            fields = text.rstrip("\n").split(",")
            time_column = self._columns.index("Time Stamp (sec)") if "Time Stamp (sec)" in self._columns else 1
            frozen = list(self._last_good)
            frozen[time_column] = fields[time_column]
            self._note("rows frozen")
            return (",".join(frozen) + "\n").encode("latin-1")
        if self._hit:  # the one-shot kinds damage one row
            return text.encode("latin-1")
        self._hit = True
        body = text.rstrip("\n")
        if kind == "garbled":
            out = "".join(self._rng.choice(GARBLE) if c != "," and self._rng.random() < 0.34 else c for c in body)
            self._note("garbled row")
            return (out + "\n").encode("latin-1")
        if kind == "truncated":
            self._note("truncated row")
            return body[: len(body) // 2].encode("latin-1")  # no newline: the next row runs on
        # error: MultiVu's failure state in the row's status columns
        fields = body.split(",")
        for name in STATUS_COLUMNS:
            if name in self._columns:
                fields[self._columns.index(name)] = str(GENERAL_FAILURE)
        self._note("error status row")
        return (",".join(fields) + "\n").encode("latin-1")

    def _note(self, what: str) -> None:
        event = f"dat file: {what}"
        if event not in self.injector.events:
            self.injector.events.append(event)


register_wire_protocol("mpms3", MultiPyVuProtocol("mpms3"))
