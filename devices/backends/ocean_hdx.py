"""``RamanBackend`` on an Ocean Insight HDX over Ethernet (``drivers/ocean_hdx.py``: python-seabreeze,
OBP over TCP).

- A frame: the integration time set when it changes (µs, within the HDX's 6 ms – 10 s), then one
  ``intensities()`` per accumulation, each its own row of ``frames`` (so the device removes cosmic
  rays across them); ``full_scale`` 65535 (16-bit). The exposure window runs from the request of
  the first spectrum to the arrival of the last, on the run's clock: software-timed, no trigger
  input.
- The axis: each pixel's wavelength from the HDX's own calibration coefficients, turned into a
  Raman shift with the laser line (``settings.laser_nm``, required: the HDX does not know which
  laser excites the sample).
- Darks: the HDX has no shutter of its own (seabreeze's HDX has no shutter, lamp or strobe
  feature), so it cannot close the laser off; a profile must say ``dark: none`` for it, and is
  told so before the run starts. A laser shutter driven by its own backend is future work.
- Health: ``connected`` is the link (a failed status is a disconnection; the client reopens at the
  next status); the HDX reports no interlock, so ``interlock_closed`` is always true here.
- Errors: every failure of the link or of a reply is an ``OceanHdxError`` naming the instrument and
  its address (the plan records a failed frame with it); a spectrum whose length is not the
  axis's is one too, never a frame.
"""

from __future__ import annotations

import asyncio
import threading
from typing import ClassVar, Optional

import numpy as np
from pydantic import PositiveFloat

from operando.devices.clock import Clock, WallClock
from operando.devices.drivers.ocean_hdx import DEFAULT_TIMEOUT_S, OceanHdxClient, OceanHdxError
from operando.devices.kinds import ShutterlessRamanSettings
from operando.devices.raman import SpectrumReading, accumulated_reading, raman_shift_cm1
from operando.devices.registry import BackendSpec, BuildContext, register

FULL_SCALE = 65535.0  # seabreeze's HDX spectrum_max_value
READ_NOISE_COUNTS = 8.0  # rms per pixel and spectrum; guessed (not in seabreeze's HDX definition)


class OceanHdxBackend:
    capabilities = frozenset()  # software-timed: no trigger input
    read_noise_counts = READ_NOISE_COUNTS

    def __init__(self, client: OceanHdxClient, laser_nm: float, clock: Optional[Clock] = None):
        self.client = client
        self.name = client.name
        self.laser_nm = float(laser_nm)
        self.clock = clock or WallClock()
        self.description = f"Ocean Insight HDX at {client.host}:{client.port} ({self.laser_nm:g} nm laser)"
        self._io = threading.Lock()  # one exchange at a time: status and frames share the link
        self._itime_us: Optional[int] = None
        self.raman_shift_cm1 = np.empty(0)

    def open(self) -> OceanHdxBackend:
        with self._io:
            self.client.open()
            self.raman_shift_cm1 = raman_shift_cm1(self.client.wavelengths_nm(), self.laser_nm)
            self.serial_number = self.client.serial_number
        self.description += f", serial {self.serial_number}"
        return self

    def close(self) -> None:
        with self._io:
            self.client.close()

    async def acquire(self, exposure_s: float, accumulations: int, dark: bool = False) -> SpectrumReading:
        if dark:
            raise OceanHdxError(f"{self.name}: the HDX cannot take a dark (no shutter); the profile needs dark: none")
        return await asyncio.to_thread(self._acquire, exposure_s, accumulations)

    def _acquire(self, exposure_s: float, accumulations: int) -> SpectrumReading:
        us = int(round(exposure_s * 1e6))
        with self._io:
            if not self.client.connected:
                self.client.open()
                self._itime_us = None
            if us != self._itime_us:
                try:
                    self.client.set_integration_time_us(us)
                except ValueError as e:
                    raise OceanHdxError(str(e)) from None
                self._itime_us = us
            start = self.clock.time()
            frames = [self.client.intensities() for _ in range(accumulations)]
            end = self.clock.time()
        n = self.raman_shift_cm1.size
        return accumulated_reading(self.name, start, end, frames, n, OceanHdxError, FULL_SCALE)

    async def status(self) -> dict:
        def check() -> dict:
            with self._io:
                if not self.client.connected:
                    self.client.open()
                    self._itime_us = None
                _ = self.client.serial_number  # one exchange: the link answers
            return {"connected": True, "interlock_closed": True}

        return await asyncio.to_thread(check)


class OceanHdxSettings(ShutterlessRamanSettings):
    shutterless: ClassVar[str] = "the HDX (it has no shutter)"
    laser_nm: PositiveFloat  # the excitation laser's wavelength (the HDX cannot know it)
    timeout_s: PositiveFloat = DEFAULT_TIMEOUT_S  # per exchange, on top of the integration time


def build(ctx: BuildContext) -> OceanHdxBackend:
    s: OceanHdxSettings = ctx.settings
    # the longest spectrum must come back within the timeout
    timeout = s.timeout_s + s.exposure_s
    backend = OceanHdxBackend(OceanHdxClient(ctx.address, name=ctx.name, timeout_s=timeout), s.laser_nm, ctx.clock)
    backend.open()
    ctx.on_close(backend.close, first=True)  # the client closes before its simulator stops
    return backend


register(
    BackendSpec(
        kind="raman",
        name="ocean_hdx",
        settings=OceanHdxSettings,
        build=build,
        summary="an Ocean Insight HDX spectrometer over Ethernet (OBP through python-seabreeze)",
        capabilities=OceanHdxBackend.capabilities,
        address="the HDX's host:port (e.g. 192.168.1.40:57357)",
    )
)
