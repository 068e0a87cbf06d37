"""``RamanBackend`` on a Horiba Raman system run by LabSpec 6, through its TCP remote interface
(``drivers/labspec.py``).

- A frame: LabSpec's exposure set when it changes and its accumulations kept at 1; the backend
  starts one acquisition per accumulation, so each is its own row of ``frames`` and the device's
  cosmic-ray removal sees them (LabSpec would otherwise return only their sum). The exposure
  window runs from the first start to the last spectrum's arrival on the run's clock:
  software-timed, no trigger input. ``full_scale`` is not known over this interface (LabSpec
  reports no detector depth): no saturation flag from this backend.
- The axis: LabSpec's wavelength axis (nm) turned into a Raman shift with the laser line that
  LabSpec reports (``LaserWavelength``), or ``settings.laser_nm`` when it reports none; when both
  are given and differ by more than 0.5 nm the build fails naming both.
- Darks: nothing in LabSpec's public remote interface closes the laser shutter, so a profile
  must say ``dark: none`` (refused otherwise, before the run starts).
- Health: ``connected`` is the link; LabSpec reports no interlock over this interface.
"""

from __future__ import annotations

import asyncio
import math
import threading
from typing import ClassVar, Optional

import numpy as np
from pydantic import PositiveFloat

from operando.devices.clock import Clock, WallClock
from operando.devices.drivers.labspec import DEFAULT_TIMEOUT_S, LabSpecClient, LabSpecConnectionError, LabSpecError
from operando.devices.kinds import ShutterlessRamanSettings
from operando.devices.raman import SpectrumReading, accumulated_reading, raman_shift_cm1
from operando.devices.registry import BackendSpec, BuildContext, register

LASER_AGREEMENT_NM = 0.5
READ_NOISE_COUNTS = 4.0  # rms per pixel and accumulation; guessed (LabSpec does not report it)


class LabSpecBackend:
    capabilities = frozenset()  # software-timed: no trigger input
    read_noise_counts = READ_NOISE_COUNTS

    def __init__(self, client: LabSpecClient, clock: Optional[Clock] = None, laser_nm: Optional[float] = None):
        self.client = client
        self.name = client.name
        self.clock = clock or WallClock()
        self._laser_setting = laser_nm
        self._io = threading.Lock()  # one exchange at a time: status and frames share the link
        self._exposure: Optional[float] = None
        self.laser_nm = math.nan
        self.raman_shift_cm1 = np.empty(0)
        self.description = f"Horiba LabSpec 6 at {client.host}:{client.port}"

    def open(self) -> LabSpecBackend:
        with self._io:
            self.client.open()
            self.client.set_accumulations(1)
            self.client.prepare()
            try:
                reported = self.client.laser_wavelength_nm()
            except LabSpecConnectionError:
                raise
            except LabSpecError:  # LabSpec would not say: the setting's, if any
                reported = None
            wavelengths = self.client.wavelengths_nm()
        self.laser_nm = _laser(self.name, reported, self._laser_setting)
        self.raman_shift_cm1 = raman_shift_cm1(wavelengths, self.laser_nm)
        self.description += f" ({self.laser_nm:g} nm laser)"
        return self

    def close(self) -> None:
        with self._io:
            self.client.close()

    async def acquire(self, exposure_s: float, accumulations: int, dark: bool = False) -> SpectrumReading:
        if dark:
            raise LabSpecError(f"{self.name}: LabSpec's remote interface cannot close the laser: no dark")
        return await asyncio.to_thread(self._acquire, exposure_s, accumulations)

    def _acquire(self, exposure_s: float, accumulations: int) -> SpectrumReading:
        with self._io:
            if not self.client.connected:
                self.client.open()
                self.client.set_accumulations(1)
                self._exposure = None
            if exposure_s != self._exposure:
                self.client.set_exposure_s(exposure_s)
                self._exposure = exposure_s
            start = self.clock.time()
            frames = [self.client.acquire().counts for _ in range(accumulations)]
            end = self.clock.time()
        return accumulated_reading(self.name, start, end, frames, self.raman_shift_cm1.size, LabSpecError)

    async def status(self) -> dict:
        def check() -> dict:
            with self._io:
                if not self.client.connected:
                    self.client.open()
                    self.client.set_accumulations(1)
                    self._exposure = None
                self.client.acquisition_time_s()  # one exchange: the link answers
            return {"connected": True, "interlock_closed": True}

        return await asyncio.to_thread(check)


def _laser(name: str, reported: Optional[float], setting: Optional[float]) -> float:
    if reported and setting and abs(reported - setting) > LASER_AGREEMENT_NM:
        raise LabSpecError(f"{name}: LabSpec reports a {reported:g} nm laser, settings.laser_nm says {setting:g} nm")
    laser = reported or setting
    if not laser:
        raise LabSpecError(f"{name}: LabSpec reports no laser wavelength: give settings.laser_nm")
    return float(laser)


class LabSpecSettings(ShutterlessRamanSettings):
    shutterless: ClassVar[str] = "LabSpec's remote interface"
    laser_nm: Optional[PositiveFloat] = None  # only when LabSpec does not report its laser
    timeout_s: PositiveFloat = DEFAULT_TIMEOUT_S  # per exchange; an acquisition gets its own time on top


def build(ctx: BuildContext) -> LabSpecBackend:
    s: LabSpecSettings = ctx.settings
    client = LabSpecClient(ctx.address, name=ctx.name, timeout_s=s.timeout_s, exposure_s=s.exposure_s)
    backend = LabSpecBackend(client, ctx.clock, s.laser_nm)
    try:
        backend.open()
    except Exception:
        backend.close()
        raise
    ctx.on_close(backend.close, first=True)  # the client closes before its simulator stops
    return backend


register(
    BackendSpec(
        kind="raman",
        name="labspec",
        settings=LabSpecSettings,
        build=build,
        summary="a Horiba Raman system run by LabSpec 6 (its TCP remote interface)",
        capabilities=LabSpecBackend.capabilities,
        address="LabSpec's host:port (e.g. 192.168.1.50:1234)",
    )
)
