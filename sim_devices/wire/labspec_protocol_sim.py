"""What the simulated LabSpec 6 answers: one message in, its replies out; no sockets here.

Written from the public description of the protocol (pymodaq_plugins_horiba's
``Labspec6Client``, see ``devices/drivers/labspec_protocol.py``, whose grammar both sides use),
not from the project's driver. What the source shows, the simulator does:

- a greeting line on every new connection, ``<id> OK <identification>``;
- ``SetRamanParameter Exposure <s>`` / ``Accumulations <n>`` set the acquisition, ``OK``;
  ``GetRamanParam`` answers ``<id> <value>``: ``AcquisitionTime`` (s), ``LaserWavelength`` (nm),
  ``Spectro`` (nm), ``Slit``, ``Hole`` (µm), ``Binning``, and ``Laser``/``Grating`` as the index
  then the choices ending in ``#``; an unknown parameter is ``<id> Unknown parameter <name>``;
- ``SetPointList <n> <bytes>`` -> ``OK Ready to receive``, then a point ``x y`` per message,
  ``OK Point <i>`` after each but the last, the closing ``OK`` after it;
- ``EnableSpectralResponse`` -> ``OK <n> <nm>...``: the wavelength of each pixel, from the
  physics' Raman-shift axis and laser (nm = 1e7 / (1e7 / laser_nm - shift_cm1));
- ``StartRamanMeasurement <point>`` -> ``OK <n> <counts>...`` once exposure x accumulations have
  passed on the lab's clock (in wall time: divided by the clock's speed): the physics' summed
  counts (``SimRamanPhysics.spectrum(exposure_s, accumulations)``);
- ``Logout`` -> ``OK``, then the connection is closed.

Guessed (the source does not say what LabSpec does; docs/labspec.md lists these too):

- message framing: the public client ends no command with a line ending, so a message is what
  arrives before a pause of ``QUIET_S`` (or a line ending, accepted too);
- the greeting's id (``0``) and text; the texts after ``OK`` in the point-list handshake, and
  that those replies carry the id and CR LF like the others;
- error replies: ``<id> Unknown command <name>``, ``<id> Unknown parameter <name>`` (reading
  Exposure or Accumulations too: LabSpec "cannot" report them), ``<id> Error <what>`` for a
  value it refuses or a command it cannot do now; a message with no command id is answered with
  id ``-1``;
- an acquisition needs a point list first (every public client sends one) and its point index
  must be in it; ``<bytes>`` must equal the points' total length; the point coordinates are
  ignored (nothing moves);
- the counts are rounded to whole numbers and not clipped; no readout time (AcquisitionTime is
  exactly exposure x accumulations); one acquisition at a time across all connections;
- the lists: one laser named after its wavelength, one grating "600 gr/mm"; Slit 100 µm and
  Hole 70 µm (the public viewer's defaults), Binning 1. Slit and Hole can be set (no effect);
  Laser, Grating, Binning and Spectro only to what they are (the physics' axis is fixed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from operando.devices.drivers import labspec_protocol as lp
from operando.devices.drivers.labspec_protocol import LabSpecError

IDENTIFICATION = "LabSpec 6 simulated AFM server 0.6.2"  # guessed text
GREETING_ID = 0  # guessed
QUIET_S = 0.02  # a message is what arrives before this long a pause (guessed framing)
DEFAULT_EXPOSURE_S = 1.0  # LabSpec's own at start-up is unknown (guessed)
GRATING_NAME = "600 gr/mm"
SLIT_UM, HOLE_UM = 100.0, 70.0


class _Refused(Exception):
    def __init__(self, word: str, message: str):
        super().__init__(message)
        self.word = word


class LabSpecInstrument:
    """LabSpec's state and answers, shared by every connection; one message at a time.

    ``physics`` gives ``spectrum(exposure_s, accumulations)``, ``raman_shift_cm1`` and
    ``laser_nm``; ``sleep(wall_s) -> bool`` waits out an acquisition and says whether to go on
    (False: the server is stopping).
    """

    def __init__(
        self,
        physics,
        clock,
        sleep: Callable[[float], bool] | None = None,
        identification: str = IDENTIFICATION,
    ):
        self.physics = physics
        self.clock = clock
        self.identification = identification
        self.exposure_s = DEFAULT_EXPOSURE_S
        self.accumulations = 1
        self.slit_um, self.hole_um = SLIT_UM, HOLE_UM
        self.point_list: list[tuple[float, float]] | None = None
        self.active_point = 0
        self.messages: list[str] = []  # every message received, as text, for tests
        self.acquisitions = 0
        self._sleep = sleep or (lambda wall_s: time.sleep(wall_s) or True)
        self._lock = threading.Lock()

    # ---- what the physics fixes ----------------------------------------------------------------
    @property
    def laser_nm(self) -> float:
        return float(self.physics.laser_nm)

    def wavelengths_nm(self) -> np.ndarray:
        shift = np.asarray(self.physics.raman_shift_cm1, dtype=np.float64)
        return 1e7 / (1e7 / self.laser_nm - shift)

    @property
    def laser_name(self) -> str:
        return f"{self.laser_nm:g}nm"

    def session(self) -> LabSpecSession:
        return LabSpecSession(self)

    # ---- one message ---------------------------------------------------------------------------
    def _handle(self, session: LabSpecSession, message: bytes) -> tuple[list[bytes], bool]:
        with self._lock:
            self.messages.append(message.decode("ascii", "backslashreplace"))
            if session.expecting is not None:
                return [session.take_point(message)], False
            try:
                command = lp.parse_command(message)
            except LabSpecError as exc:
                first = message.split(None, 1)[:1]
                reply_id = first[0].decode("ascii", "replace") if first and first[0].lstrip(b"-").isdigit() else "-1"
                return [lp.format_error(reply_id, "Error", str(exc))], False
            answer = self._answers.get(command.name)
            if answer is None:
                return [lp.format_error(command.id, lp.UNKNOWN, f"command {command.name}")], False
            try:
                return answer(self, session, command)
            except _Refused as refused:
                return [lp.format_error(command.id, refused.word, str(refused))], False
            except LabSpecError as exc:  # an argument that is no number, no integer...
                return [lp.format_error(command.id, "Error", str(exc))], False

    # ---- the answers -----------------------------------------------------------------------------
    def _get_parameter(self, _session, command: lp.Command):
        (name,) = _args(command, 1)
        reply = self._parameter(command.id, name)
        return [reply], False

    def _parameter(self, reply_id: int, name: str) -> bytes:
        axis = self.wavelengths_nm()
        values = {
            lp.ACQUISITION_TIME: lambda: lp.format_parameter(reply_id, self.exposure_s * self.accumulations),
            lp.LASER_WAVELENGTH: lambda: lp.format_parameter(reply_id, self.laser_nm),
            "Spectro": lambda: lp.format_parameter(reply_id, round(float(axis[axis.size // 2]), 3)),
            "Slit": lambda: lp.format_parameter(reply_id, self.slit_um),
            "Hole": lambda: lp.format_parameter(reply_id, self.hole_um),
            "Binning": lambda: lp.format_parameter(reply_id, 1),
            lp.LASER: lambda: lp.format_parameter(reply_id, 0, (self.laser_name,)),
            lp.GRATING: lambda: lp.format_parameter(reply_id, 0, (GRATING_NAME,)),
        }
        if name not in values:
            raise _Refused(lp.UNKNOWN, f"parameter {name}")
        return values[name]()

    def _set_parameter(self, _session, command: lp.Command):
        name, value = _args(command, 2)
        if name == lp.EXPOSURE:
            seconds = lp.number(value, "Exposure")
            if not seconds > 0:
                raise _Refused("Error", f"Exposure must be > 0 s, got {value}")
            self.exposure_s = seconds
        elif name == lp.ACCUMULATIONS:
            count = lp.integer(value, "Accumulations")
            if count < 1:
                raise _Refused("Error", f"Accumulations must be >= 1, got {value}")
            self.accumulations = count
        elif name in ("Slit", "Hole"):
            size = lp.number(value, name)
            if not size > 0:
                raise _Refused("Error", f"{name} must be > 0 um, got {value}")
            setattr(self, f"{name.lower()}_um", size)
        elif name in ("Laser", "Grating", "Binning", "Spectro"):
            now = lp.parse_parameter(lp.parse_reply(self._parameter(command.id, name))).value
            if lp.number(value, name) != now:
                raise _Refused("Error", f"{name} cannot be changed on this simulator (it is {now:g})")
        else:
            raise _Refused(lp.UNKNOWN, f"parameter {name}")
        return [lp.format_reply(command.id, lp.OK)], False

    def _set_point_list(self, session: LabSpecSession, command: lp.Command):
        count_text, size_text = _args(command, 2)
        count, size = lp.integer(count_text, "point count"), lp.integer(size_text, "byte count")
        if count < 1 or size < 0:
            raise _Refused("Error", f"point list of {count} points in {size} bytes")
        session.expect_points(command.id, count, size)
        return [lp.format_reply(command.id, lp.OK, *lp.READY_TO_RECEIVE.split())], False

    def _set_active_point(self, _session, command: lp.Command):
        (index,) = _args(command, 1)
        self.active_point = self._point(lp.integer(index, "point index"))
        return [lp.format_reply(command.id, lp.OK)], False

    def _axis(self, _session, command: lp.Command):
        _args(command, 0)
        return [lp.format_array(command.id, self.wavelengths_nm().tolist())], False

    def _start(self, _session, command: lp.Command):
        (index,) = _args(command, 1)
        self.active_point = self._point(lp.integer(index, "point index"))
        exposure_s, accumulations = self.exposure_s, self.accumulations
        if not self._sleep(self.clock.wall_seconds(exposure_s * accumulations)):
            return [], True  # the server is stopping: no reply, the connection closes
        counts = np.rint(np.asarray(self.physics.spectrum(exposure_s, accumulations), dtype=np.float64))
        self.acquisitions += 1
        return [lp.format_array(command.id, [int(c) for c in counts])], False

    def _logout(self, _session, command: lp.Command):
        _args(command, 0)
        return [lp.format_reply(command.id, lp.OK)], True

    def _point(self, index: int) -> int:
        if self.point_list is None:
            raise _Refused("Error", "no point list: send SetPointList first")
        if not 0 <= index < len(self.point_list):
            raise _Refused("Error", f"point {index} is not in the list of {len(self.point_list)}")
        return index

    _answers = {
        lp.GET_PARAMETER: _get_parameter,
        lp.SET_PARAMETER: _set_parameter,
        lp.SET_POINT_LIST: _set_point_list,
        lp.SET_ACTIVE_POINT: _set_active_point,
        lp.AXIS: _axis,
        lp.START_MEASUREMENT: _start,
        lp.LOGOUT: _logout,
    }


class LabSpecSession:
    """One connection: its greeting, and the point list it is in the middle of receiving."""

    def __init__(self, instrument: LabSpecInstrument):
        self.instrument = instrument
        self.expecting: tuple[int, int, int] | None = None  # (command id, points, bytes)
        self._points: list[tuple[float, float]] = []
        self._bytes = 0

    def greeting(self) -> bytes:
        return lp.format_reply(GREETING_ID, lp.OK, *self.instrument.identification.split())

    def handle(self, message: bytes) -> tuple[list[bytes], bool]:
        """(the replies to send, whether to close the connection after them)."""
        return self.instrument._handle(self, message)

    def expect_points(self, command_id: int, count: int, size: int) -> None:
        self.expecting, self._points, self._bytes = (command_id, count, size), [], 0

    def take_point(self, message: bytes) -> bytes:
        command_id, count, size = self.expecting
        try:
            point = lp.parse_point(message)
        except LabSpecError as exc:
            self.expecting = None
            return lp.format_error(command_id, "Error", f"point {len(self._points)}: {exc}")
        self._points.append(point)
        self._bytes += len(message.rstrip(b"\r\n"))
        if len(self._points) < count:
            return lp.format_reply(command_id, lp.OK, lp.POINT_RECEIVED, len(self._points) - 1)
        self.expecting = None
        if self._bytes != size:
            return lp.format_error(command_id, "Error", f"point list: expected {size} bytes, got {self._bytes}")
        self.instrument.point_list, self.instrument.active_point = list(self._points), 0
        return lp.format_reply(command_id, lp.OK, count, "points")


def _args(command: lp.Command, count: int) -> tuple[str, ...]:
    if len(command.args) != count:
        raise _Refused("Error", f"{command.name} takes {count} argument(s), got {len(command.args)}")
    return command.args
