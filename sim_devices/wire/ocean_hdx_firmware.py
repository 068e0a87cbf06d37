"""What the simulated Ocean Insight HDX answers: one OBP request in, its reply out.

Written from python-seabreeze 2.11.0's description of the instrument (``seabreeze/pyseabreeze``)
and the OBP codec (``devices/drivers/obp.py``), not from the project's driver. Facts, with where
seabreeze states them:

- the HDX (``devices.py``, class ``HDX``): 2068 pixels, integration time 6000 µs to 10 s,
  counts up to 65535, USB vendor/product id 0x2457/0x2003, trigger modes normal (0), edge (1),
  level (3) and disabled (0xFF);
- a raw spectrum (``features/spectrometer.py``, ``SeaBreezeSpectrometerFeatureHDX``) answers
  GET_RAW_SPECTRUM_NOW_HDX with 2068 little-endian uint16 and nothing else (its
  ``get_intensities`` unpacks exactly ``"<" + "H" * 2068``);
- the wavelength axis is the polynomial sum(c_i p^i) over pixel p, its coefficients float32,
  fetched as a count (uint8) then one by one (``SeaBreezeSpectrometerFeatureOBP.get_wavelengths``);
  the non-linearity coefficients the same way (``features/nonlinearity.py``);
- the serial number is a length (one byte) then the characters (``SeaBreezeDevice.
  get_serial_number``); the product id is a uint16 (``IPv4Transport.list_devices``); the
  thermo-electric temperature a float32 (``features/thermoelectric.py``);
- commands (SET_*) are sent asking for an ACK, queries are not (``OBPProtocol.send``/``query``).

Guessed (no public source says what a real HDX does): the serial number, the device string
"HDX", the vendor id's format (as the product id's), the non-linearity coefficients (identity),
the temperature (25 °C), the power-up integration time (100 ms), multicast reported off, a
command without an ACK request answered with nothing, every error answered with a NACK and its
OBP error number (also when no ACK was asked), a spectrum in a triggered mode refused with
DEVICE_NOT_READY (nothing here delivers a trigger), and no ADC offset (dark counts start at 0).
"""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable

import numpy as np

from operando.devices.drivers import obp
from operando.sim_devices.cell import SimCell
from operando.sim_devices.raman import SimRamanPhysics

N_PIXELS = 2068
INTEGRATION_US = (6000, 10_000_000)
MAX_COUNTS = 65535
VENDOR_ID, PRODUCT_ID = 0x2457, 0x2003
TRIGGER_NORMAL = 0x00
TRIGGER_MODES = (0x00, 0x01, 0x03, 0xFF)
DEFAULT_SERIAL = "HDXS0001"
NONLINEARITY = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # identity (guessed)
TE_TEMPERATURE_C = 25.0  # guessed


class _Refused(Exception):
    def __init__(self, code: int):
        self.code = code


class OceanHdxFirmware:
    """The instrument's state and answers; thread-safe (one request at a time, as one device).

    ``sleep(wall_s) -> bool`` waits out an exposure in wall time and says whether to go on
    (False: the server is stopping); the exposure lasts the integration time on ``clock``.
    """

    def __init__(
        self,
        cell: SimCell,
        clock,
        seed: int = 0,
        serial: str = DEFAULT_SERIAL,
        product_id: int = PRODUCT_ID,
        laser_nm: float = 532.0,
        sleep: Callable[[float], bool] | None = None,
    ):
        self.physics = SimRamanPhysics(cell, seed=seed, n_pixels=N_PIXELS, laser_nm=laser_nm)
        self.clock = clock
        self.serial = serial
        self.product_id = product_id
        self.integration_time_us = 100_000
        self.trigger_mode = TRIGGER_NORMAL
        self.requests: list[str] = []  # names of the messages received, for tests
        self._sleep = sleep or (lambda wall_s: time.sleep(wall_s) or True)
        self._lock = threading.Lock()
        self._answers: dict[int, Callable[[tuple], bytes | None]] = {
            obp.GET_SERIAL_LENGTH: lambda _: struct.pack("<B", len(self.serial)),
            obp.GET_SERIAL: lambda _: self.serial.encode("ascii"),
            obp.GET_VID: lambda _: struct.pack("<H", VENDOR_ID),
            obp.GET_PID: lambda _: struct.pack("<H", self.product_id),
            obp.GET_DEV_STR: lambda _: b"HDX",
            obp.GET_MC_ENABLED: lambda _: struct.pack("<B", 0),
            obp.SET_ITIME_USEC: self._set_integration_time,
            obp.SET_TRIG_MODE: self._set_trigger_mode,
            obp.GET_WL_COEFF_COUNT: lambda _: struct.pack("<B", len(self.wavelength_coefficients)),
            obp.GET_WL_COEFF: lambda v: struct.pack("<f", _item(self.wavelength_coefficients, v[0])),
            obp.GET_NL_COEFF_COUNT: lambda _: struct.pack("<B", len(NONLINEARITY)),
            obp.GET_NL_COEFF: lambda v: struct.pack("<f", _item(NONLINEARITY, v[0])),
            obp.GET_TE_TEMPERATURE: lambda _: struct.pack("<f", TE_TEMPERATURE_C),
            obp.GET_RAW_SPECTRUM_NOW_HDX: self._raw_spectrum,
        }

    @property
    def wavelength_coefficients(self) -> tuple[float, ...]:
        """c0..c3 (nm, nm/pixel, ...) of the physics' own pixel axis (float32 on the wire)."""
        return tuple(float(c) for c in self.physics.calibration.coefficients)

    def wavelengths_nm(self) -> np.ndarray:
        return self.physics.wavelength_nm

    # ---- one request ---------------------------------------------------------------------------
    def handle(self, request: obp.Message) -> bytes | None:
        """The reply's bytes, or None when the request wants none."""
        with self._lock:
            self.requests.append(request.name)
            answer = self._answers.get(request.message_type)
            if answer is None:
                return obp.encode_reply(request, error=obp.ERR_UNKNOWN_MESSAGE_TYPE)
            try:
                data = answer(obp.request_values(request))
            except obp.ObpError as exc:
                return obp.encode_reply(request, error=exc.code)
            except _Refused as refused:
                return obp.encode_reply(request, error=refused.code)
            if data is None:  # a command: answered only when it asked for an ACK
                return obp.encode_reply(request) if request.flags & obp.FLAG_REQUEST_ACK else None
            return obp.encode_reply(request, data)

    @staticmethod
    def reply_to_malformed(frame: bytes, error: obp.ObpError) -> bytes:
        """The NACK for bytes that are no well-formed request (its type, if the header has one)."""
        message_type = struct.unpack_from("<L", frame, 8)[0] if len(frame) >= 12 else 0
        return obp.encode_reply(obp.Message(message_type), error=error.code)

    # ---- the answers ---------------------------------------------------------------------------
    def _set_integration_time(self, values: tuple) -> None:
        (us,) = values
        low, high = INTEGRATION_US
        if not low <= us <= high:
            raise _Refused(obp.ERR_PAYLOAD_INVALID)
        self.integration_time_us = us

    def _set_trigger_mode(self, values: tuple) -> None:
        (mode,) = values
        if mode not in TRIGGER_MODES:
            raise _Refused(obp.ERR_PAYLOAD_INVALID)
        self.trigger_mode = mode

    def _raw_spectrum(self, _values: tuple) -> bytes:
        if self.trigger_mode != TRIGGER_NORMAL:
            raise _Refused(obp.ERR_DEVICE_NOT_READY)  # no trigger will come (guessed behaviour)
        exposure_s = self.integration_time_us * 1e-6
        if not self._sleep(self.clock.wall_seconds(exposure_s)):
            raise _Refused(obp.ERR_DEVICE_NOT_READY)  # the server is stopping
        counts = self.physics.spectrum(exposure_s)
        return np.clip(np.rint(counts), 0, MAX_COUNTS).astype("<u2").tobytes()


def _item(values: tuple[float, ...], index: int) -> float:
    if index >= len(values):
        raise _Refused(obp.ERR_PAYLOAD_INVALID)
    return values[index]
