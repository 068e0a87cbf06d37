"""Raman spectrometer device: one spectrum per trigger, on a Raman-shift axis."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from ophyd_async.core import (
    Array1D,
    AsyncStatus,
    StandardReadable,
    soft_signal_r_and_setter,
    soft_signal_rw,
)
from ophyd_async.core import StandardReadableFormat as Format

from .status import PolledStatus, StatusPoller


@dataclass(frozen=True)
class SpectrumReading:
    exposure_start: float  # experiment-clock seconds since the epoch
    exposure_end: float
    counts: np.ndarray
    # Hardware-triggered: the potentiostat's own time of the trigger edge that started it.
    trigger_instrument_time: float = math.nan


class RamanBackend(Protocol):
    description: str
    raman_shift_cm1: np.ndarray
    laser_nm: float

    async def acquire(self, exposure_s: float, accumulations: int) -> SpectrumReading:
        """Expose ``accumulations`` times for ``exposure_s`` each (experiment time); sum them."""

    async def status(self) -> dict:
        """{"connected", "interlock_closed"}: polled while staged."""


class RamanSpectrometer(PolledStatus, StandardReadable):
    def __init__(
        self,
        backend: RamanBackend,
        exposure_s: float = 10.0,
        accumulations: int = 1,
        name: str = "",
    ):
        self._backend = backend
        with self.add_children_as_readables(Format.HINTED_SIGNAL):
            self.spectrum, self._set_spectrum = soft_signal_r_and_setter(Array1D[np.float64], units="counts")
        with self.add_children_as_readables():
            self.exposure_start, self._set_start = soft_signal_r_and_setter(float, units="s")
            self.exposure_end, self._set_end = soft_signal_r_and_setter(float, units="s")
            self.trigger_instrument_time, self._set_trigger_time = soft_signal_r_and_setter(float, math.nan, units="s")
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.exposure_time = soft_signal_rw(float, exposure_s, units="s")
            self.accumulations = soft_signal_rw(int, accumulations)
            self.raman_shift, _ = soft_signal_r_and_setter(
                Array1D[np.float64], np.asarray(backend.raman_shift_cm1, float), units="1/cm"
            )
            self.laser_wavelength, _ = soft_signal_r_and_setter(float, backend.laser_nm, units="nm")
            self.backend_description, _ = soft_signal_r_and_setter(str, backend.description)
        # Health, not data: watched by suspenders, not read into frames.
        self.connected, set_connected = soft_signal_r_and_setter(bool, True)
        self.interlock_closed, set_interlock = soft_signal_r_and_setter(bool, True)
        super().__init__(name=name)
        self.status_poller = StatusPoller(
            self.name, backend.status, {"connected": set_connected, "interlock_closed": set_interlock}
        )

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        exposure = await self.exposure_time.get_value()
        accumulations = await self.accumulations.get_value()
        if exposure <= 0 or accumulations < 1:
            raise ValueError(
                f"{self.name}: exposure_time must be > 0 s and accumulations >= 1 (got {exposure} s, {accumulations})"
            )
        r = await self._backend.acquire(exposure, accumulations)
        self._set_trigger_time(r.trigger_instrument_time)
        self._set_start(r.exposure_start)
        self._set_end(r.exposure_end)
        self._set_spectrum(np.asarray(r.counts, dtype=np.float64))
