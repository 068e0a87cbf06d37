"""MethodSCRIPT reply stream: one line in, typed events out (no I/O).

Line grammar while a script runs (PalmSens examples): ``e`` script accepted, ``MXXXX`` a
measurement loop starts (XXXX: technique number, hex), ``*`` it ends, ``L``/``+`` a plain loop,
``CXXXX``/``-`` a scan (nscans), ``P...`` a data package, ``T...`` text (send_string), ``Z`` the
abort was accepted, an empty line ends the script. Errors carry ``!XXXX`` (hex code), possibly
after the echoed command character and followed by ``: Line L, Col C`` (e.g. ``Z!0006``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .methodscript_values import PackageVariable, parse_variable


@dataclass(frozen=True)
class ScriptAccepted:
    """``e``: the instrument took the script and starts it."""


@dataclass(frozen=True)
class MeasLoopStart:
    technique: int


@dataclass(frozen=True)
class MeasLoopEnd:
    pass


@dataclass(frozen=True)
class LoopStart:
    pass


@dataclass(frozen=True)
class LoopEnd:
    pass


@dataclass(frozen=True)
class ScanStart:
    index: int


@dataclass(frozen=True)
class ScanEnd:
    pass


@dataclass(frozen=True)
class DataPackage:
    variables: tuple[PackageVariable, ...]

    def first(self, var_type: str) -> PackageVariable | None:
        for var in self.variables:
            if var.type == var_type:
                return var
        return None


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class AbortAccepted:
    """``Z`` inside the output: the running script stops (loops close, on_finished runs)."""


@dataclass(frozen=True)
class ErrorReply:
    code: int
    command: str = ""  # the echoed command character, if any
    detail: str = ""  # e.g. "Line 3, Col 1"


@dataclass(frozen=True)
class EndOfScript:
    pass


@dataclass(frozen=True)
class UnknownLine:
    text: str


ReplyEvent = (
    ScriptAccepted | MeasLoopStart | MeasLoopEnd | LoopStart | LoopEnd | ScanStart | ScanEnd
    | DataPackage | Text | AbortAccepted | ErrorReply | EndOfScript | UnknownLine
)  # fmt: skip

_ERROR = re.compile(r"^(?P<cmd>[A-Za-z]?)!(?P<code>[0-9A-Fa-f]{4})(?::\s*(?P<detail>.*))?$")
_HEX4 = re.compile(r"^[0-9A-Fa-f]{4}$")
_SIMPLE = {
    "*": MeasLoopEnd(), "L": LoopStart(), "+": LoopEnd(), "-": ScanEnd(),
    "Z": AbortAccepted(), "e": ScriptAccepted(),
}  # fmt: skip


def parse_package(line: str) -> DataPackage:
    """``'Pda80001F4m;ba80004D2n,10,20B'`` -> DataPackage of two variables."""
    if not line.startswith("P"):
        raise ValueError(f"a data package starts with 'P': {line!r}")
    return DataPackage(tuple(parse_variable(tok) for tok in line[1:].split(";")))


def parse_reply_line(line: str) -> tuple[ReplyEvent, ...]:
    """Events of one reply line (without its LF; a CR is dropped).

    Usually one event; two when the acknowledgement shares its line (``eM0000``, as one
    PalmSens example shows it).
    """
    line = line.rstrip("\r")
    accepted: list[ReplyEvent] = []
    # "e" sharing its line with what follows; a loop, not recursion: a long line of "e"s is
    # garbage to report, not a RecursionError
    while len(line) > 1 and line[0] == "e" and line not in _SIMPLE and not _ERROR.match(line):
        accepted.append(ScriptAccepted())
        line = line[1:]
    return (*accepted, *_parse_one(line))


def _parse_one(line: str) -> tuple[ReplyEvent, ...]:
    if line == "":
        return (EndOfScript(),)
    if line in _SIMPLE:
        return (_SIMPLE[line],)
    error = _ERROR.match(line)
    if error:
        detail = error["detail"] or ""
        return (ErrorReply(int(error["code"], 16), error["cmd"], detail.strip()),)
    head, rest = line[0], line[1:]
    if head == "P":
        return (parse_package(line),)
    if head == "M" and _HEX4.match(rest):
        return (MeasLoopStart(int(rest, 16)),)
    if head == "C" and _HEX4.match(rest):
        return (ScanStart(int(rest, 16)),)
    if head == "T":
        return (Text(rest),)
    return (UnknownLine(line),)
