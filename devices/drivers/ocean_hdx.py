"""An Ocean Insight HDX spectrometer over Ethernet, through python-seabreeze's pyseabreeze backend.

No second OBP client: every message is built, sent and parsed by seabreeze 2.11.0 (its ``HDX``
device class, its spectrometer feature, its ``OBPProtocol``). What this class adds:

- the connection: seabreeze's ``IPv4TransportHandle`` with a socket that has a timeout and
  treats a closed connection as an error. seabreeze's own socket has no timeout, and its read
  loop (``IPv4Transport.read``) asks ``recv_into`` again forever when the peer has closed
  (``recv_into`` returns 0): a switched-off instrument would hang the caller at 100 % CPU.
  seabreeze's ``close`` also leaves the connected socket open (its finalizer closes the socket
  made before ``open``); this one is closed. The device comes from ``SeaBreezeDevice(handle)``,
  not ``SeaBreezeAPI.list_devices()``, which sends a multicast discovery datagram to the LAN and
  waits a second, enumerates (``SeaBreezeAPI()``: and resets) Ocean USB devices, and opens every
  location ever registered in the process, failing if any is gone. So this driver needs no
  libusb; seabreeze's ``SeaBreezeAPI`` does (see docs/raman.md).
- the instrument checked: its USB product id (GET_PID, the message seabreeze's discovery uses to
  tell models apart) must be the HDX's, and the integration time within seabreeze's limits for
  the HDX (6000 µs <= t < 10 s) before anything is sent.
- every failure of the link (nothing listening, refused, timeout, connection closed, a reply
  seabreeze cannot parse or whose MD5 does not match, an OBP error) is an ``OceanHdxError``
  naming the instrument and its address. seabreeze reports these as socket errors, ``RuntimeError``,
  ``SeaBreezeError``, ``AssertionError`` (the footer), ``struct.error``, ``TypeError`` or
  ``KeyError`` (an unknown error number), or a warning (a checksum mismatch).

``seabreeze.use("pyseabreeze")`` is called on import unless this process already chose a
backend for ``seabreeze.spectrometers`` (then that choice stands: this module uses
``seabreeze.pyseabreeze`` directly and does not depend on it).
"""

from __future__ import annotations

import socket
import struct
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import seabreeze
from seabreeze.backends import BackendConfig
from seabreeze.pyseabreeze import SeaBreezeDevice, SeaBreezeError
from seabreeze.pyseabreeze.transport import IPv4Transport, IPv4TransportHandle

from . import obp


def select_pyseabreeze() -> str:
    """Make pyseabreeze seabreeze's backend unless one is already chosen; returns the choice.

    Chosen already: ``use("pyseabreeze")`` was called (calling it again would drop the options
    given then), or ``seabreeze.spectrometers`` has loaded a backend (switching now would only
    earn a warning from seabreeze; the loaded backend stays).
    """
    spectrometers = sys.modules.get("seabreeze.spectrometers")
    in_use = spectrometers is not None and (
        "_lib" in vars(spectrometers) or vars(spectrometers.Spectrometer)["_backend"]._backend is not None
    )
    if BackendConfig.requested != "pyseabreeze" and not in_use:
        seabreeze.use("pyseabreeze")
    return BackendConfig.requested


# Importing seabreeze.pyseabreeze (above) loads no backend: only seabreeze.spectrometers does.
select_pyseabreeze()

MODEL = "HDX"  # seabreeze's model name (devices.py, class HDX)
HDX_PRODUCT_ID = 0x2003  # HDX.usb_product_id in seabreeze's devices.py
DEFAULT_TIMEOUT_S = 5.0
# seabreeze's checksum mismatch is a warning (OBPProtocol.receive): made an error here
_CHECKSUM_WARNING = "WARNING OBP: The checksums differ"
LINK_ERRORS = (
    SeaBreezeError,
    OSError,
    RuntimeError,
    AssertionError,
    struct.error,
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    UserWarning,
)

T = TypeVar("T")


class OceanHdxError(RuntimeError):
    """The instrument (named, with its address) did not do or answer what was asked."""


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` -> (host, port); the port is required (the HDX's is set on the device)."""
    host, sep, port = address.rpartition(":")
    try:
        if sep and host:
            return host, int(port)
    except ValueError:
        pass
    raise ValueError(f"HDX address {address!r}: expected host:port")


class _LinkSocket(socket.socket):
    """A TCP socket on which a closed connection is an error, not an endless empty read."""

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        received = super().recv_into(buffer, nbytes, flags)
        if received == 0 and (nbytes or len(buffer)):
            raise ConnectionResetError("the instrument closed the connection")
        return received


class _Handle(IPv4TransportHandle):
    """seabreeze's IPv4 handle, connecting with a timeout and closing what it connected."""

    def __init__(self, ip: str, port: int, timeout_s: float):
        super().__init__(ip, port)
        self.timeout_s = timeout_s

    def open(self) -> None:
        sock = _LinkSocket(socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(self.timeout_s)
        try:
            sock.connect(self.get_address())
        except OSError as e:
            sock.close()
            raise RuntimeError(f"Could not connect to {self.get_address()}: {e}") from e
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket = sock

    def close(self) -> None:
        super().close()  # seabreeze's finalizer: the socket made in __init__
        self.socket.close()


class OceanHdxClient:
    """One HDX at ``host:port``; ``open()`` before use, ``close()`` is idempotent."""

    def __init__(self, address: str, name: str = "hdx", timeout_s: float = DEFAULT_TIMEOUT_S):
        self.host, self.port = split_address(address)
        self.name = name
        self.timeout_s = float(timeout_s)
        self._device: Any = None
        self._handle: _Handle | None = None
        self._registered: tuple[str, int] | None = None
        self._wavelengths: np.ndarray | None = None
        self._last_counts: np.ndarray | None = None  # the last spectrum read (a frozen readout repeats it)

    def __repr__(self) -> str:
        return f"OceanHdxClient({self.name!r} at {self.host}:{self.port})"

    @property
    def connected(self) -> bool:
        return self._device is not None

    # ---- life cycle --------------------------------------------------------------------------
    def open(self) -> OceanHdxClient:
        if self._device is not None:
            return self
        where = f"{self.name}: no HDX answering at {self.host}:{self.port}"
        try:
            ip = socket.getaddrinfo(self.host, self.port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        except OSError as e:
            raise OceanHdxError(f"{where} (cannot resolve {self.host!r}): {e}") from e
        self._register(ip)
        handle = _Handle(ip, self.port, self.timeout_s)
        try:
            device = SeaBreezeDevice(handle)  # knows the model from the registration
            with _checksums_checked():
                device.open()  # connects, then asks for the serial number
                pid = struct.unpack("<H", device.f.spectrometer.protocol.query(obp.GET_PID))[0]
        except LINK_ERRORS as e:
            handle.close()
            self._unregister()
            raise OceanHdxError(f"{where}: {_describe(e)}") from e
        if pid != HDX_PRODUCT_ID:
            handle.close()
            self._unregister()
            raise OceanHdxError(
                f"{self.name} at {self.host}:{self.port} is not an HDX: USB product id "
                f"expected 0x{HDX_PRODUCT_ID:04X}, got 0x{pid:04X}"
            )
        self._device, self._handle = device, handle
        return self

    def close(self) -> None:
        device, self._device = self._device, None
        handle, self._handle = self._handle, None
        self._wavelengths = None
        if device is not None:
            try:
                device.close()
            except LINK_ERRORS:
                pass  # the link is already gone: nothing left to close
        if handle is not None:
            handle.close()
        self._unregister()

    def __enter__(self) -> OceanHdxClient:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the instrument ----------------------------------------------------------------------
    @property
    def serial_number(self) -> str:
        return self._call("read the serial number", lambda d: d.serial_number)

    @property
    def integration_time_limits_us(self) -> tuple[int, int]:
        """(lowest, highest excluded) in µs, as seabreeze's HDX definition has them."""
        return self._call("read the limits", lambda d: tuple(d.f.spectrometer.get_integration_time_micros_limits()))

    def set_integration_time_us(self, us: int) -> None:
        low, high = self.integration_time_limits_us
        if isinstance(us, bool) or not isinstance(us, (int, np.integer)) or not low <= us < high:
            raise ValueError(
                f"{self.name}: integration time must be an integer from {low} to {high - 1} µs, got {us!r}"
            )
        self._call(
            f"set the integration time to {us} µs", lambda d: d.f.spectrometer.set_integration_time_micros(int(us))
        )

    def wavelengths_nm(self) -> np.ndarray:
        """The wavelength of each pixel (nm), from the device's calibration coefficients."""
        if self._wavelengths is None:
            wl = self._call("read the wavelengths", lambda d: d.f.spectrometer.get_wavelengths())
            self._wavelengths = np.asarray(wl, dtype=np.float64)
        return self._wavelengths.copy()

    def intensities(self) -> np.ndarray:
        """One spectrum at the set integration time: raw counts per pixel (float64 holding the
        uint16 values; no dark or non-linearity correction)."""
        counts = np.asarray(self._call("read a spectrum", lambda d: d.f.spectrometer.get_intensities()), np.float64)
        # Shot and read noise make two exposures differ somewhere: the same spectrum again, pixel
        # for pixel, is a readout that repeats its last answer, not a measurement. A flat one
        # (all dark zeros, all saturated) carries no noise to tell by.
        last, self._last_counts = self._last_counts, counts
        if last is not None and np.ptp(counts) > 0 and np.array_equal(last, counts):
            raise OceanHdxError(
                f"{self.name} at {self.host}:{self.port} returned the same spectrum as the one before, "
                "pixel for pixel: its readout is stuck (not a measurement)"
            )
        return counts

    # ---- plumbing ----------------------------------------------------------------------------
    def _call(self, what: str, command: Callable[[Any], T]) -> T:
        device, handle = self._device, self._handle
        if device is None or handle is None:
            raise OceanHdxError(f"{self.name} at {self.host}:{self.port}: not connected (cannot {what})")
        # seabreeze sets a spectrum's timeout to the integration time plus the socket's present
        # timeout, and leaves it there: start every call from the driver's own.
        handle.socket.settimeout(self.timeout_s)
        try:
            with _checksums_checked():
                return command(device)
        except LINK_ERRORS as e:
            self.close()  # what the instrument is in the middle of is unknown: a new open() is needed
            raise OceanHdxError(f"{self.name} at {self.host}:{self.port} failed to {what}: {_describe(e)}") from e

    def _register(self, ip: str) -> None:
        # seabreeze's IPv4 transport looks a device's model up in a class-level table.
        key = (ip, self.port)
        known = IPv4Transport.devices_ip_port.get(key)
        if known is None:
            IPv4Transport.register_model(MODEL, ipv4_address=ip, ipv4_port=self.port)
            self._registered = key
        elif known != MODEL:
            raise OceanHdxError(f"{self.name}: {ip}:{self.port} is registered with seabreeze as a {known}, not an HDX")

    def _unregister(self) -> None:
        # so that a later SeaBreezeAPI.list_devices() in this process does not open it
        key, self._registered = self._registered, None
        if key is not None:
            IPv4Transport.devices_ip_port.pop(key, None)


class _checksums_checked(warnings.catch_warnings):
    """seabreeze's checksum-mismatch warning raised as an error (UserWarning)."""

    def __enter__(self):
        super().__enter__()
        warnings.filterwarnings("error", message=_CHECKSUM_WARNING, category=UserWarning)


def _describe(e: BaseException) -> str:
    """What went wrong, with what seabreeze was handling when it happened: after an error reply
    it reads once more to empty the link (``OBPProtocol.receive``), which then times out."""
    if isinstance(e, TimeoutError):
        text = f"no answer within the timeout ({e})"
    elif isinstance(e, ConnectionError):
        text = f"connection lost ({e})"
    elif isinstance(e, UserWarning):
        text = f"bad checksum ({e})"
    elif isinstance(e, (AssertionError, struct.error, TypeError, ValueError, KeyError, IndexError)):
        text = f"malformed reply ({type(e).__name__}: {e})"
    else:
        text = f"{type(e).__name__}: {e}"
    context = e.__context__
    if isinstance(context, LINK_ERRORS) and context is not e.__cause__:
        text += f", after {_describe(context)}"
    return text
