"""Magnetometer device (SQUID/VSM): the sample's moment at a fixed field and temperature."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from ophyd_async.core import AsyncStatus, StandardReadable, soft_signal_r_and_setter, soft_signal_rw
from ophyd_async.core import StandardReadableFormat as Format

from .status import PolledStatus, StatusPoller


@dataclass(frozen=True)
class MomentReading:
    exposure_start: float  # experiment-clock seconds since the epoch
    exposure_end: float
    moment_emu: float
    field_T: float
    temperature_K: float
    # Hardware-triggered: the potentiostat's own time of the trigger edge that started it.
    trigger_instrument_time: float = math.nan


class MagnetometerBackend(Protocol):
    description: str

    async def measure(self, averaging_s: float) -> MomentReading:
        """Average the moment for ``averaging_s`` (experiment time) and return it."""

    async def status(self) -> dict:
        """{"connected", "field_T", "temperature_K", "field_stable"}: polled while staged."""


class Magnetometer(PolledStatus, StandardReadable):
    def __init__(self, backend: MagnetometerBackend, averaging_s: float = 1.0, name: str = ""):
        self._backend = backend
        with self.add_children_as_readables(Format.HINTED_SIGNAL):
            self.moment, self._set_moment = soft_signal_r_and_setter(float, units="emu")
        with self.add_children_as_readables():
            self.field, self._set_field = soft_signal_r_and_setter(float, units="T")
            self.temperature, self._set_temperature = soft_signal_r_and_setter(float, units="K")
            self.exposure_start, self._set_start = soft_signal_r_and_setter(float, units="s")
            self.exposure_end, self._set_end = soft_signal_r_and_setter(float, units="s")
            self.trigger_instrument_time, self._set_trigger_time = soft_signal_r_and_setter(float, math.nan, units="s")
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.averaging_time = soft_signal_rw(float, averaging_s, units="s")
            self.backend_description, _ = soft_signal_r_and_setter(str, backend.description)
        # Health, not data: watched by suspenders, not read into frames.
        self.connected, set_connected = soft_signal_r_and_setter(bool, True)
        self.field_stable, set_stable = soft_signal_r_and_setter(bool, True)
        super().__init__(name=name)
        self.status_poller = StatusPoller(
            self.name,
            backend.status,
            {
                "connected": set_connected,
                "field_stable": set_stable,
                "field_T": self._set_field,
                "temperature_K": self._set_temperature,
            },
        )

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        # Values are set here, not by a getter: a staged signal reads from its cache in a scan.
        r = await self._backend.measure(await self.averaging_time.get_value())
        self._set_trigger_time(r.trigger_instrument_time)
        self._set_start(r.exposure_start)
        self._set_end(r.exposure_end)
        self._set_moment(r.moment_emu)
        self._set_field(r.field_T)
        self._set_temperature(r.temperature_K)
