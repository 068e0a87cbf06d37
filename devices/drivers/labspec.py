"""Horiba LabSpec 6 remote control over TCP: set exposure and accumulations, acquire, read spectra.

LabSpec 6 (the Windows program that runs a Horiba Raman microscope: LabRAM, XploRA, ...) serves
the "RAMAN-AFM reversed interconnection protocol" on TCP, port 1234 by default, once its AFM
server is switched on in LabSpec's configuration. The grammar, and where each fact comes from,
is in ``labspec_protocol.py``; the one public client is pymodaq_plugins_horiba's
``Labspec6Client`` (``hardware/horiba/labspec6.py``). What this client does, in that client's
order:

- ``open()``: connect, read LabSpec's greeting line (``<id> OK <identification>``), then set the
  exposure and the accumulations: LabSpec cannot report them, so, as the public client does
  (``init_mandatory_settings``), the driver sets them on connecting and remembers them;
- before the first acquisition (``prepare``, as ``prepare_N_acquisition``): a point list of two
  points at (0, 0), the wavelength axis (``EnableSpectralResponse``), point 0 made active. Two
  points, because the public client found that with them repeated acquisitions on point 0 follow
  one another without a lag (its note on ``prepare_N_acquisition``); the laser wavelength is read
  then too (``GetRamanParam LaserWavelength``);
- ``acquire()``: ``StartRamanMeasurement 0``, whose one reply is the spectrum, sent when the
  acquisition is over. Its timeout scales with the acquisition: ``timeout_s`` plus
  ``acquire_timeout_factor`` x the longer of exposure x accumulations and LabSpec's own
  ``AcquisitionTime`` estimate (the public client waits 5 x ``AcquisitionTime``);
- ``close()``: ``Logout``, then the socket is closed (``Labspec6Client.close``).

The axis is in **nm** (wavelength of each pixel): the public client's ``get_x_axis`` says so
("the pixels wavelength (in nanometer)") and its viewer labels it "Wavelength", "nm". Whether
LabSpec would send it in cm⁻¹ when its display unit is cm⁻¹ is not documented; the driver
checks that the axis is positive and strictly monotonic, and a ``LabSpecSpectrum`` converts it
to Raman shift with the laser wavelength LabSpec reports.

Every failure is a ``LabSpecError`` naming the instrument and its address: the link's
(``LabSpecConnectionError``: nothing listening, no reply in time, connection closed, a reply to
another command), the instrument's refusal (a reply that is not ``OK``) and a malformed reply (a
count that does not match its values, a value that is no number, a spectrum whose length is not
the axis's). After a link failure the connection is closed (what LabSpec is doing is unknown):
``open()`` again.
"""

from __future__ import annotations

import math
import socket
import time
from dataclasses import dataclass
from typing import NoReturn

import numpy as np

from . import labspec_protocol as lp
from .labspec_protocol import LabSpecError

DEFAULT_TIMEOUT_S = 5.0
EXPOSURE_RANGE_S = (0.001, 3600.0)  # lower: the public viewer's minimum; upper: this driver's policy
MAX_ACCUMULATIONS = 10_000  # this driver's policy (LabSpec's own limit is not documented)
MAP_POINTS = 2  # see prepare()


class LabSpecConnectionError(LabSpecError):
    """The link failed: nothing listening, no reply in time, the connection closed, or a reply
    that answers another command. The connection is closed: ``open()`` again."""


@dataclass(frozen=True)
class LabSpecSpectrum:
    wavelength_nm: np.ndarray  # of each pixel, as LabSpec gives the axis
    counts: np.ndarray  # summed over the accumulations, as LabSpec gives them (float64)
    exposure_s: float  # of one accumulation
    accumulations: int
    laser_nm: float | None  # LabSpec's LaserWavelength; None if it would not say

    @property
    def raman_shift_cm1(self) -> np.ndarray:
        if self.laser_nm is None:
            raise ValueError("LabSpec reported no laser wavelength: no Raman shift")
        return 1e7 / self.laser_nm - 1e7 / self.wavelength_nm


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``host`` (port 1234) -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = address, str(lp.DEFAULT_PORT)
    try:
        number = int(port)
        if host and 0 < number < 65536:
            return host, number
    except ValueError:
        pass
    raise ValueError(f"LabSpec address {address!r}: expected host:port")


class LabSpecClient:
    """LabSpec 6 at ``host:port``; ``open()`` before use, ``close()`` is idempotent."""

    def __init__(
        self,
        address: str = f"localhost:{lp.DEFAULT_PORT}",
        name: str = "labspec",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        exposure_s: float = 1.0,
        accumulations: int = 1,
        acquire_timeout_factor: float = 2.0,
    ):
        self.host, self.port = split_address(address)
        self.name = name
        self.timeout_s = float(timeout_s)
        self.acquire_timeout_factor = float(acquire_timeout_factor)
        self._exposure_s = _checked_exposure(name, exposure_s)
        self._accumulations = _checked_accumulations(name, accumulations)
        self._sock: socket.socket | None = None
        self._pending = b""
        self._next_id = 0
        self.identification: str | None = None
        self._axis: np.ndarray | None = None
        self._prepared = False
        self._laser_nm: float | None = None
        self._acquisition_time_s: float | None = None  # LabSpec's estimate; None: to ask

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def __repr__(self) -> str:
        return f"LabSpecClient({self.name!r} at {self.address})"

    @property
    def connected(self) -> bool:
        return self._sock is not None

    # ---- life cycle --------------------------------------------------------------------------
    def open(self) -> LabSpecClient:
        if self._sock is not None:
            return self
        where = f"{self.name}: no LabSpec answering at {self.address}"
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except TimeoutError as e:
            raise LabSpecConnectionError(f"{where}: no connection within {self.timeout_s:g} s ({e})") from e
        except ConnectionRefusedError as e:
            raise LabSpecConnectionError(f"{where}: connection refused ({e})") from e
        except OSError as e:
            raise LabSpecConnectionError(f"{where}: {e}") from e
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._pending, self._next_id = sock, b"", 0
        self._axis = self._laser_nm = self._acquisition_time_s = None
        self._prepared = False
        try:
            greeting = lp.parse_reply(self._read_line(self.timeout_s))
            lp.check_ok(greeting)
        except LabSpecError as e:
            self._drop()
            raise type(e)(f"{where}: its greeting: {e}", e.field, e.expected, e.got) from e
        self.identification = " ".join(greeting.fields)
        try:
            # LabSpec cannot report these: set them now, so that what the driver holds is what it uses
            self._set(lp.EXPOSURE, self._exposure_s)
            self._set(lp.ACCUMULATIONS, self._accumulations)
        except LabSpecError:
            self._drop()
            raise
        return self

    def close(self) -> None:
        """``Logout`` (if the link still works), then close the connection."""
        if self._sock is None:
            return
        try:
            self._exchange("log out", lp.LOGOUT, timeout_s=min(self.timeout_s, 1.0))
        except LabSpecError:
            pass  # the link or LabSpec is gone already: nothing left to log out of
        finally:
            self._drop()

    def __enter__(self) -> LabSpecClient:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- settings ----------------------------------------------------------------------------
    @property
    def exposure_s(self) -> float:
        """The exposure of one accumulation, as last set (LabSpec cannot report it)."""
        return self._exposure_s

    @property
    def accumulations(self) -> int:
        return self._accumulations

    def set_exposure_s(self, seconds: float) -> None:
        seconds = _checked_exposure(self.name, seconds)
        self._set(lp.EXPOSURE, seconds)
        self._exposure_s = seconds

    def set_accumulations(self, count: int) -> None:
        count = _checked_accumulations(self.name, count)
        self._set(lp.ACCUMULATIONS, count)
        self._accumulations = count

    def parameter(self, name: str) -> float:
        """A numeric parameter LabSpec reports (``GetRamanParam``): AcquisitionTime (s),
        LaserWavelength (nm), Spectro (nm), Slit (µm), Hole (µm), Binning, ..."""
        return self._get(name).value

    def acquisition_time_s(self) -> float:
        """LabSpec's estimate of one acquisition's length (all accumulations), s."""
        self._acquisition_time_s = self.parameter(lp.ACQUISITION_TIME)
        return self._acquisition_time_s

    def laser_wavelength_nm(self) -> float:
        self._laser_nm = self.parameter(lp.LASER_WAVELENGTH)
        return self._laser_nm

    def lasers(self) -> tuple[int, tuple[str, ...]]:
        """(index of the selected laser, the lasers LabSpec lists)."""
        return self._choice(lp.LASER)

    def gratings(self) -> tuple[int, tuple[str, ...]]:
        """(index of the selected grating, the gratings LabSpec lists)."""
        return self._choice(lp.GRATING)

    # ---- acquisition -------------------------------------------------------------------------
    def wavelengths_nm(self) -> np.ndarray:
        """The wavelength of each pixel (nm), from ``EnableSpectralResponse``."""
        if self._axis is None:
            what = "read the wavelength axis"
            axis = self._array(what, self._exchange(what, lp.AXIS), "axis")
            if not (np.all(axis > 0) and (np.all(np.diff(axis) > 0) or np.all(np.diff(axis) < 0))):
                self._fail(what, lp.mismatch("axis", "strictly monotonic wavelengths > 0 nm", _summary(axis)))
            self._axis = axis
        return self._axis.copy()

    def prepare(self) -> None:
        """What the public client does before acquiring (see the module notes)."""
        what = "send the point list"
        points = [lp.format_point(0, 0) for _ in range(MAP_POINTS)]
        reply = self._exchange(what, lp.SET_POINT_LIST, len(points), sum(len(p) for p in points))
        self._expect_handshake(what, reply, lp.READY_TO_RECEIVE)
        command_id = self._next_id - 1
        for i, point in enumerate(points):
            self._send(what, point)
            reply = self._receive(what, command_id, self.timeout_s)
            if i < len(points) - 1:
                self._expect_handshake(what, reply, lp.POINT_RECEIVED)
            else:
                self._ok(what, reply)
        self._axis = None
        self.wavelengths_nm()
        self._ok("make point 0 active", self._exchange("make point 0 active", lp.SET_ACTIVE_POINT, 0))
        try:
            self.laser_wavelength_nm()
        except LabSpecConnectionError:
            raise
        except LabSpecError:
            self._laser_nm = None  # refused: the spectrum then has no Raman shift
        self._prepared = True

    def acquire(self) -> LabSpecSpectrum:
        """One acquisition at the set exposure and accumulations: start, wait, read the spectrum."""
        if not self._prepared:
            self.prepare()
        if self._acquisition_time_s is None:
            self.acquisition_time_s()
        own = self._exposure_s * self._accumulations
        timeout_s = self.timeout_s + self.acquire_timeout_factor * max(own, self._acquisition_time_s or 0.0)
        what = f"acquire ({self._exposure_s:g} s x {self._accumulations})"
        counts = self._array(what, self._exchange(what, lp.START_MEASUREMENT, 0, timeout_s=timeout_s), "spectrum")
        if counts.size != self._axis.size:
            self._fail(what, lp.mismatch("spectrum length", f"{self._axis.size} values (the axis's)", str(counts.size)))
        return LabSpecSpectrum(self._axis.copy(), counts, self._exposure_s, self._accumulations, self._laser_nm)

    # ---- plumbing ----------------------------------------------------------------------------
    def _set(self, parameter: str, value: float | int) -> None:
        what = f"set {parameter} to {lp.format_value(value)}"
        self._ok(what, self._exchange(what, lp.SET_PARAMETER, parameter, value))
        if parameter in (lp.EXPOSURE, lp.ACCUMULATIONS):
            self._acquisition_time_s = None

    def _get(self, parameter: str) -> lp.Parameter:
        what = f"read {parameter}"
        reply = self._exchange(what, lp.GET_PARAMETER, parameter)
        try:
            return lp.parse_parameter(reply)
        except LabSpecError as e:
            self._fail(what, e)

    def _choice(self, parameter: str) -> tuple[int, tuple[str, ...]]:
        value = self._get(parameter)
        if value.value != int(value.value) or not 0 <= value.value < max(len(value.choices), 1):
            shown = f"{value.value:g} of {len(value.choices)}"
            self._fail(f"read {parameter}", lp.mismatch(f"{parameter} index", "an index into its choices", shown))
        return int(value.value), value.choices

    def _ok(self, what: str, reply: lp.Reply) -> tuple[str, ...]:
        try:
            return lp.check_ok(reply)
        except LabSpecError as e:
            self._fail(what, e)

    def _array(self, what: str, reply: lp.Reply, field: str) -> np.ndarray:
        try:
            return lp.parse_array(lp.check_ok(reply), field)
        except LabSpecError as e:
            self._fail(what, e)

    def _expect_handshake(self, what: str, reply: lp.Reply, words: str) -> None:
        fields = self._ok(what, reply)
        if not " ".join(fields).startswith(words):
            self._drop()  # the point-list exchange is out of step
            self._fail(what, lp.mismatch("point-list reply", f"OK {words} ...", repr(reply.text)))

    def _exchange(self, what: str, command: str, *args, timeout_s: float | None = None) -> lp.Reply:
        command_id = self._next_id
        try:
            message = lp.format_command(command_id, command, *args)
        except LabSpecError as e:
            self._fail(what, e)
        self._send(what, message)
        self._next_id += 1
        return self._receive(what, command_id, self.timeout_s if timeout_s is None else timeout_s)

    def _send(self, what: str, message: bytes) -> None:
        if self._sock is None:
            raise LabSpecConnectionError(f"{self.name} at {self.address}: not connected (cannot {what})")
        try:
            self._sock.settimeout(self.timeout_s)
            self._sock.sendall(message)
        except OSError as e:
            self._drop()
            raise LabSpecConnectionError(
                f"{self.name} at {self.address} failed to {what}: connection lost while sending ({e})"
            ) from e

    def _receive(self, what: str, command_id: int, timeout_s: float) -> lp.Reply:
        try:
            reply = lp.parse_reply(self._read_line(timeout_s))
        except LabSpecError as e:
            self._drop()  # no whole reply line: where the next one starts is unknown
            self._fail(what, e)
        try:
            return lp.check_id(reply, command_id)
        except LabSpecError as e:
            self._drop()  # a reply to another command: the link is out of step
            self._fail(what, LabSpecConnectionError(str(e), e.field, e.expected, e.got))

    def _read_line(self, timeout_s: float) -> bytes:
        """One reply line, waiting at most ``timeout_s`` for all of it."""
        deadline = time.monotonic() + timeout_s
        while True:
            line, self._pending = lp.split_reply_line(self._pending)
            if line is not None:
                return line
            remaining = deadline - time.monotonic()
            if self._sock is None:
                raise LabSpecConnectionError("not connected")
            try:
                if remaining <= 0:
                    raise TimeoutError
                self._sock.settimeout(remaining)
                chunk = self._sock.recv(65536)
            except TimeoutError:
                got = f" (only {len(self._pending)} bytes of a line: {_head(self._pending)})" if self._pending else ""
                self._drop()
                raise LabSpecConnectionError(f"no reply within {timeout_s:g} s{got}") from None
            except OSError as e:
                self._drop()
                raise LabSpecConnectionError(f"connection lost ({e})") from e
            if not chunk:
                got = f" after {len(self._pending)} bytes of an unfinished line: {_head(self._pending)}"
                got = got if self._pending else ""
                self._drop()
                raise LabSpecConnectionError(f"LabSpec closed the connection{got}")
            self._pending += chunk

    def _fail(self, what: str, e: LabSpecError) -> NoReturn:
        raise type(e)(f"{self.name} at {self.address} failed to {what}: {e}", e.field, e.expected, e.got) from e

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        self._pending = b""
        self._axis, self._prepared = None, False
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


def _checked_exposure(name: str, seconds: float) -> float:
    low, high = EXPOSURE_RANGE_S
    ok = isinstance(seconds, (int, float, np.integer, np.floating)) and not isinstance(seconds, (bool, np.bool_))
    if not (ok and math.isfinite(seconds) and low <= seconds <= high):
        raise ValueError(f"{name}: exposure must be a number of seconds from {low:g} to {high:g}, got {seconds!r}")
    return float(seconds)


def _checked_accumulations(name: str, count: int) -> int:
    ok = isinstance(count, (int, np.integer)) and not isinstance(count, (bool, np.bool_))
    if not (ok and 1 <= count <= MAX_ACCUMULATIONS):
        raise ValueError(f"{name}: accumulations must be an integer from 1 to {MAX_ACCUMULATIONS}, got {count!r}")
    return int(count)


def _head(data: bytes, limit: int = 60) -> str:
    text = data[:limit].decode("ascii", "backslashreplace")
    return repr(text + ("..." if len(data) > limit else ""))


def _summary(values: np.ndarray) -> str:
    return f"{values.size} values from {values[0]:g} to {values[-1]:g}" if values.size else "no values"
