"""Follow a MultiVu `.dat` file while MultiVu appends to it (``tail -f`` for data rows).

    tail = DatTail("/data/cell3.dat", zone=ZoneInfo("America/Los_Angeles"))
    for row in tail.poll():            # complete new rows since the last poll
        print(tail.run_time(row), row.moment_emu, row.field_oe, row.temperature_k)

Each ``poll()`` reads what was appended since the last one: it returns complete rows only and
keeps a partial last line (MultiVu writing it) for the next poll. The header is read once it is
complete (before that, ``poll()`` returns nothing). Failures are errors naming the file and,
for a row, its line: a malformed row, a file that shrank (truncated or rewritten), a file that
vanished or was replaced by another (a new inode), a header that changed. Never a silent gap.
A malformed row costs only itself: the poll that meets it raises, the good rows before it
come with the next poll and reading goes on after it.

``run_time(row)`` maps a row's time stamp onto the run's clock: Unix time from the stamp (see
``multivu_datafile.stamp_to_epoch``: local wall time in ``zone``, the repeated autumn hour kept in
order), plus ``clock_offset_s`` (the run's clock minus the MultiVu PC's, 0 when both are on NTP).
"""

from __future__ import annotations

import math
import os
from datetime import tzinfo
from pathlib import Path
from typing import Optional

from .multivu_datafile import DatFileError, DatHeader, DatRow, parse_header, parse_row, stamp_to_epoch

MAX_HEADER_BYTES = 1 << 20  # a header larger than this is not a MultiVu file


def _decode(raw: bytes) -> str:
    # MultiVu runs on Windows: a non-ASCII sample name or comment is cp1252 unless it is UTF-8.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


class DatTail:
    def __init__(self, path: str | os.PathLike, zone: Optional[tzinfo] = None, clock_offset_s: float = 0.0):
        self.path = Path(path)
        self.zone = zone
        self.clock_offset_s = clock_offset_s
        self.header: Optional[DatHeader] = None
        self._identity: Optional[tuple[int, int]] = None  # (st_dev, st_ino) of the file followed
        self._offset = 0  # bytes consumed (complete lines only)
        self._lines_read = 0  # complete lines consumed
        self._head: list[str] = []  # header lines while the header is incomplete
        self._last_epoch = -math.inf
        self._carried: list[DatRow] = []  # good rows read before a malformed one, for the next poll

    @property
    def where(self) -> str:
        return f"MultiVu data file {str(self.path)!r}"

    def poll(self) -> list[DatRow]:
        """Complete rows appended since the last poll (an empty list if none)."""
        rows, self._carried = self._carried, []
        chunk = self._read_new()
        if not chunk:
            return rows
        end = chunk.rfind(b"\n") + 1
        if end == 0:
            if self.header is None and self._offset + len(chunk) > MAX_HEADER_BYTES:
                raise DatFileError(f"{self.where}: no complete line in its first {MAX_HEADER_BYTES} bytes")
            return rows  # a partial line: wait for its end
        for raw in chunk[:end].split(b"\n")[:-1]:
            self._offset += len(raw) + 1  # consumed line by line: a bad row is not read twice
            self._lines_read += 1
            text = _decode(raw).rstrip("\r")
            if self.header is None:
                self._head.append(text)
                self.header = parse_header(self._head, self.where)
                continue
            if not text.strip():
                continue
            try:
                rows.append(parse_row(text, self._lines_read, self.header.columns, self.where))
            except DatFileError:
                self._carried = rows
                raise
        if self.header is None and self._offset > MAX_HEADER_BYTES:
            raise DatFileError(f"{self.where}: no '[Data]' column line in its first {MAX_HEADER_BYTES} bytes")
        return rows

    def run_time(self, row: DatRow) -> float:
        """The row's time on the run's clock (rows must be mapped in file order)."""
        epoch = stamp_to_epoch(row.stamp, self.zone, after=self._last_epoch)
        self._last_epoch = max(self._last_epoch, epoch)
        return epoch + self.clock_offset_s

    def _read_new(self) -> bytes:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                identity = (st.st_dev, st.st_ino)
                if self._identity is None:
                    self._identity = identity
                elif identity != self._identity:
                    raise DatFileError(
                        f"{self.where} was replaced by another file after {self._lines_read} lines; "
                        "MultiVu starts a new file for a new measurement: follow that one"
                    )
                if st.st_size < self._offset:
                    raise DatFileError(
                        f"{self.where} shrank to {st.st_size} bytes after {self._offset} were read "
                        f"({self._lines_read} lines): truncated or rewritten"
                    )
                f.seek(self._offset)
                return f.read()
        except FileNotFoundError:
            if self._identity is None:
                raise DatFileError(f"{self.where} does not exist") from None
            raise DatFileError(f"{self.where} vanished after {self._lines_read} lines were read") from None
