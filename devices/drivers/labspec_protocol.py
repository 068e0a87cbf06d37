"""The text grammar of Horiba LabSpec 6's remote-control TCP interface, without I/O.

LabSpec 6 listens on TCP (default port 1234) for the "RAMAN-AFM reversed interconnection
protocol" (version 0.6.2 in the public client): LabSpec is the server, the controlling program
the client. Every fact below comes from the one public client, pymodaq_plugins_horiba
(github PyMoDAQ/pymodaq_plugins_horiba, ``src/pymodaq_plugins_horiba/hardware/horiba/
labspec6.py``, class ``Labspec6Client``; the same file in CEMES-CNRS/pymodaq_plugins_horiba and
its copy in UBene/HW_labspec, ``labspec_client.py``). None of it is copied; what it shows:

- on connecting, LabSpec sends one line before any command: ``<id> OK <identification>``
  (``connect`` reads it with ``receive_data`` and goes on only if the status is ``OK``; the
  viewer plugin stores the data as the "controller id");
- a command is ``<id> <Command>`` then each argument after one space, ASCII, sent **without** a
  line ending (``send_command``); ids count up from 0 on each connection;
- a reply is one line ending in CR LF, its fields separated by spaces: ``<id> <status> <data>``
  (``receive_data`` reads until ``\\r\\n`` and splits on ``' '``); the client checks that the id
  is the one it sent;
- the status is ``OK`` on success. Replies to ``GetRamanParam`` carry the value itself in the
  status field (``<id> 532.0``; ``receive_data(dtype='param')`` turns a numeric status into the
  value), followed for list parameters (``Laser``, ``Grating``) by the choices separated by
  ``#``. A status ``Unknown`` marks a parameter LabSpec does not know; any other word is an
  error, its text the rest of the line;
- an array (the axis, a spectrum) is ``<id> OK <n> <v1> ... <vn>``: a count, then the values
  (``receive_data(dtype='array')``, which checks the count);
- commands: ``GetRamanParam <name>``, ``SetRamanParameter <name> <value>`` (the two spellings
  differ), ``EnableSpectralResponse`` (answers the axis: "the pixels wavelength (in nanometer)",
  ``get_x_axis``), ``SetPointList <n> <bytes>`` (then the points, see below),
  ``SetActivePoint <index>``, ``StartRamanMeasurement <index>`` (answers the spectrum when the
  acquisition is over: the client waits for that one reply with a timeout of 5x the
  ``AcquisitionTime`` parameter, ``prepare_N_acquisition``), ``Logout``. The table also names
  ``SetRamanParams``, which nothing calls: its arguments are unknown and it is not used here;
- a point list: ``<id> SetPointList <n> <bytes>`` is answered with a reply containing
  ``OK Ready to receive``; the client then sends each point (``0 0``: x and y, no line ending),
  reads a reply containing ``OK Point`` after every point but the last, and after the last one
  the command's closing reply. ``<bytes>`` is the points' total length (3 per ``0 0``);
- parameters (``PARAMS``): see ``PARAMETERS``. Exposure and accumulations can be set but not
  read back ("exposure an accumulation cannot be read from labspec"); ``Binning`` is set even
  when LabSpec answers that it does not recognise the command (noted there, not relied on here).

Not shown by the source, so written here as the simulator guesses it (docs/labspec.md): the
exact text after ``OK`` in the greeting and in the point-list handshake replies, whether those
handshake replies carry the id and CR LF (taken: yes, like every other reply), and the words of
error replies other than ``Unknown``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

DEFAULT_PORT = 1234  # Labspec6Client.connect(port=1234); the viewer plugin's default too
REPLY_END = b"\r\n"
MAX_REPLY_BYTES = 8 * 1024 * 1024  # a line longer than this is no reply (a spectrum is ~20 kB)

# Commands, as Labspec6Client spells them (COMMANDS, send_command calls)
GET_PARAMETER = "GetRamanParam"
SET_PARAMETER = "SetRamanParameter"
AXIS = "EnableSpectralResponse"
SET_POINT_LIST = "SetPointList"
SET_ACTIVE_POINT = "SetActivePoint"
START_MEASUREMENT = "StartRamanMeasurement"
LOGOUT = "Logout"
COMMANDS = (GET_PARAMETER, SET_PARAMETER, AXIS, SET_POINT_LIST, SET_ACTIVE_POINT, START_MEASUREMENT, LOGOUT)

OK = "OK"
UNKNOWN = "Unknown"  # receive_data(dtype='param') treats this status apart
READY_TO_RECEIVE = "Ready to receive"  # SetPointList: the client looks for b"OK Ready to receive"
POINT_RECEIVED = "Point"  # after each point but the last: the client looks for b"OK Point"

# Parameters (Labspec6Client's PARAMS): name -> (unit, "get" / "set" / "both", what it is)
EXPOSURE = "Exposure"
ACCUMULATIONS = "Accumulations"
ACQUISITION_TIME = "AcquisitionTime"
LASER_WAVELENGTH = "LaserWavelength"
LASER = "Laser"
GRATING = "Grating"
PARAMETERS: dict[str, tuple[str, str, str]] = {
    ACQUISITION_TIME: ("s", "get", "approximate total acquisition time"),
    EXPOSURE: ("s", "set", "exposure time of one accumulation"),
    ACCUMULATIONS: ("", "set", "number of accumulations summed"),
    LASER_WAVELENGTH: ("nm", "get", "wavelength of the selected laser"),
    "Binning": ("", "both", "binning along the spectral axis"),
    "Spectro": ("nm", "both", "spectrometer central wavelength"),
    "Slit": ("µm", "both", "slit opening"),
    "Hole": ("µm", "both", "confocal hole diameter"),
    LASER: ("", "both", "selected laser: index, then the choices"),
    GRATING: ("", "both", "selected grating (grooves/mm): index, then the choices"),
    "LaserPol": ("", "both", "laser polarisation (XploRA)"),
    "RamanPol": ("", "both", "Raman polarisation (XploRA)"),
    "Pol1": ("deg", "both", "laser polarisation (HR)"),
    "Pol2": ("deg", "both", "Raman polarisation (HR)"),
    "Detector": ("", "get", "selected detector"),
}

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*\Z")


class LabSpecError(ValueError):
    """Something on the LabSpec link is not as the protocol has it: ``field`` names what,
    ``expected`` and ``got`` say how (both None when the message says it all)."""

    def __init__(self, message: str, field: str | None = None, expected: str | None = None, got: str | None = None):
        super().__init__(message)
        self.field, self.expected, self.got = field, expected, got


def mismatch(field: str, expected: str, got: str) -> LabSpecError:
    """``LabSpec <field>: expected <expected>, got <got>`` (``got`` as the caller shows it)."""
    return LabSpecError(f"LabSpec {field}: expected {expected}, got {got}", field, expected, got)


def _show(value: object, limit: int = 80) -> str:
    text = value.decode("ascii", "backslashreplace") if isinstance(value, bytes) else str(value)
    return repr(text if len(text) <= limit else text[:limit] + "...")


# ---- values --------------------------------------------------------------------------------------
def format_value(value: object) -> str:
    """One argument or field: an int as digits, a float as Python's shortest repr (what the
    public client's f-string gives: ``0.5``, ``2.0``), a word as itself."""
    if isinstance(value, (bool, np.bool_)):
        raise mismatch("value", "a number or a word", repr(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise mismatch("value", "a finite number", repr(float(value)))
        return repr(float(value))
    if isinstance(value, str) and value and not any(c.isspace() for c in value) and value.isascii():
        return value
    raise mismatch("value", "a number or an ASCII word without spaces", repr(value))


def number(token: str, field: str) -> float:
    """A finite number from one field."""
    try:
        value = float(token)
    except ValueError:
        raise mismatch(field, "a number", _show(token)) from None
    if not math.isfinite(value):
        raise mismatch(field, "a finite number", _show(token))
    return value


def integer(token: str, field: str) -> int:
    """A whole number from one field (``3``; ``3.0`` is refused)."""
    try:
        return int(token)
    except ValueError:
        raise mismatch(field, "an integer", _show(token)) from None


# ---- commands (client -> LabSpec) ---------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    id: int
    name: str
    args: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return " ".join((str(self.id), self.name, *self.args))


def format_command(command_id: int, command: str, *args: object) -> bytes:
    """``<id> <Command> <arg>...`` in ASCII, with no line ending (as the public client sends)."""
    if isinstance(command_id, bool) or not isinstance(command_id, (int, np.integer)) or command_id < 0:
        raise mismatch("command id", "an integer >= 0", repr(command_id))
    if not isinstance(command, str) or not _WORD.match(command):
        raise mismatch("command", "a word of letters and digits", repr(command))
    return " ".join((str(int(command_id)), command, *(format_value(a) for a in args))).encode("ascii")


def parse_command(message: bytes) -> Command:
    """One command as LabSpec receives it (a trailing CR LF or LF, if any, is dropped)."""
    text = _ascii(message.rstrip(b"\r\n"), "command")
    tokens = text.split()
    if len(tokens) < 2:
        raise mismatch("command", "'<id> <Command> [arguments]'", _show(text))
    command_id = integer(tokens[0], "command id")
    if command_id < 0:
        raise mismatch("command id", "an integer >= 0", tokens[0])
    if not _WORD.match(tokens[1]):
        raise mismatch("command", "a word of letters and digits", _show(tokens[1]))
    return Command(command_id, tokens[1], tuple(tokens[2:]))


def format_point(x: float, y: float) -> bytes:
    """One point of a point list: ``x y`` (the public client sends ``0 0``), no line ending."""
    return f"{format_value(x)} {format_value(y)}".encode("ascii")


def parse_point(message: bytes) -> tuple[float, float]:
    tokens = _ascii(message.rstrip(b"\r\n"), "point").split()
    if len(tokens) != 2:
        raise mismatch("point", "'<x> <y>'", _show(message))
    return number(tokens[0], "point x"), number(tokens[1], "point y")


# ---- replies (LabSpec -> client) ----------------------------------------------------------------
@dataclass(frozen=True)
class Reply:
    id: str  # as sent: an integer for a command's reply; the greeting's is not checked
    status: str  # OK, a value (GetRamanParam), Unknown, or an error word
    fields: tuple[str, ...]
    text: str  # the whole line without CR LF

    @property
    def ok(self) -> bool:
        return self.status == OK


def format_reply(reply_id: object, status: object, *fields: object) -> bytes:
    """``<id> <status> <field>...`` CR LF."""
    parts = [format_value(reply_id), format_value(status), *(format_value(f) for f in fields)]
    return " ".join(parts).encode("ascii") + REPLY_END


def format_array(reply_id: int, values) -> bytes:
    """``<id> OK <n> <v1> ... <vn>`` CR LF."""
    values = list(values)
    return format_reply(reply_id, OK, len(values), *values)


def format_parameter(reply_id: int, value: float | int, choices: tuple[str, ...] = ()) -> bytes:
    """A GetRamanParam answer: ``<id> <value>``, then ``<choice>#<choice>#`` for a list parameter
    (a trailing ``#``, so that one choice still carries its separator)."""
    if any("#" in c or not c.isascii() or "\r" in c or "\n" in c for c in choices):
        raise mismatch("choice", "ASCII text without '#' or line endings", repr(choices))
    line = " ".join((format_value(reply_id), format_value(value)))
    if choices:
        line += " " + "#".join(choices) + "#"
    return line.encode("ascii") + REPLY_END


def format_error(reply_id: object, word: str, message: str) -> bytes:
    """``<id> <word> <message>`` CR LF: a refusal (``Unknown ...`` or another word)."""
    if not _WORD.match(word) or word == OK:
        raise mismatch("error word", "a word other than OK", repr(word))
    text = " ".join(message.split())
    return f"{format_value(reply_id)} {word} {text}".rstrip().encode("ascii", "replace") + REPLY_END


def split_reply_line(buffer: bytes) -> tuple[bytes | None, bytes]:
    """(the first line with its CR LF, what follows) or (None, buffer) while it is unfinished."""
    end = buffer.find(REPLY_END)
    if end < 0:
        if len(buffer) > MAX_REPLY_BYTES:
            raise mismatch("reply", f"a line of at most {MAX_REPLY_BYTES} bytes", f"{len(buffer)} bytes without CR LF")
        return None, buffer
    end += len(REPLY_END)
    return buffer[:end], buffer[end:]


def parse_reply(line: bytes) -> Reply:
    """One reply line, with its CR LF."""
    if not line.endswith(REPLY_END):
        raise mismatch("reply end", "CR LF", _show(line[-2:]) if line else "nothing")
    body = line[: -len(REPLY_END)]
    if b"\r" in body or b"\n" in body:
        raise mismatch("reply", "one line", _show(body))
    text = _ascii(body, "reply")
    tokens = text.split()
    if len(tokens) < 2:
        raise mismatch("reply", "'<id> <status> [data]'", _show(text))
    return Reply(tokens[0], tokens[1], tuple(tokens[2:]), text)


def check_id(reply: Reply, command_id: int) -> Reply:
    if reply.id != str(command_id):
        raise mismatch("reply id", str(command_id), _show(reply.id))
    return reply


def check_ok(reply: Reply) -> tuple[str, ...]:
    """The data fields of an ``OK`` reply; anything else is the instrument's refusal."""
    if not reply.ok:
        raise LabSpecError(f"LabSpec refused: {reply.text!r}", "status", OK, reply.text)
    return reply.fields


def parse_array(fields: tuple[str, ...], what: str = "data") -> np.ndarray:
    """``<n> <v1> ... <vn>`` -> n float64 values; the count must match what follows."""
    if not fields:
        raise mismatch(f"{what} count", "a count of values", "nothing")
    count = integer(fields[0], f"{what} count")
    if count < 1:
        raise mismatch(f"{what} count", "at least 1", fields[0])
    if len(fields) - 1 != count:
        raise mismatch(f"{what} length", f"{count} values (its count)", f"{len(fields) - 1}")
    values = np.empty(count, dtype=np.float64)
    for i, token in enumerate(fields[1:]):
        values[i] = number(token, f"{what} value {i}")
    return values


@dataclass(frozen=True)
class Parameter:
    value: float
    choices: tuple[str, ...] = ()  # for Laser / Grating: the names; the value is the index


def parse_parameter(reply: Reply) -> Parameter:
    """A GetRamanParam answer: the value is the status field (``<id> 532.0``). ``<id> OK 532.0``
    is accepted too (not seen in the source; harmless)."""
    status, rest = reply.status, reply.fields
    if status == OK and rest:
        status, rest = rest[0], rest[1:]
    try:
        value = float(status)
    except ValueError:
        raise LabSpecError(f"LabSpec refused: {reply.text!r}", "status", "a value", reply.text) from None
    if not math.isfinite(value):
        raise mismatch("parameter value", "a finite number", status)
    tail = " ".join(rest)
    choices = tuple(c.strip() for c in tail.split("#") if c.strip()) if "#" in tail else ()
    return Parameter(value, choices)


def _ascii(data: bytes, field: str) -> str:
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        raise mismatch(field, "ASCII text", _show(data)) from None
