"""Magnetometer device (SQUID/VSM): the sample's moment, and — on a backend that declares
``field_control`` / ``temperature_control`` — the field and temperature it is measured at.

Readbacks: moment (emu, hinted) and its standard error (``moment_err``, emu; nan when the backend
gives none), field (T and Oe), temperature (K), each reading's window; health: connected,
field_stable, field_state (ramping/relaxing/stable), temperature_state (sweeping/tracking/stable).
Control: ``set_field`` (rate, approach), ``set_temperature`` (rate),
``wait_for_stability``; set-points outside the device's ranges are refused before the backend
is asked anything.
"""

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
    moment_err_emu: float = math.nan  # the moment's standard error (nan: the backend gives none)


class MagnetometerBackend(Protocol):
    description: str
    # Backends with field/temperature control also have (see sim_devices/backends/mpms.py):
    #   async set_field(target_T, rate_T_s=None, approach="linear", wait_stable=False)
    #   async set_temperature(target_K, rate_K_s=None, wait_stable=False)
    #   async wait_field_stable(); async wait_temperature_stable()

    async def measure(self, averaging_s: float) -> MomentReading:
        """Average the moment for ``averaging_s`` (experiment time) and return it."""

    async def status(self) -> dict:
        """{"connected", "field_T", "temperature_K", "field_stable"}: polled while staged."""


class Magnetometer(PolledStatus, StandardReadable):
    def __init__(
        self,
        backend: MagnetometerBackend,
        averaging_s: float = 1.0,
        name: str = "",
        *,
        field_range_T: tuple[float, float] = (-math.inf, math.inf),
        temperature_range_K: tuple[float, float] = (0.0, math.inf),
    ):
        self._backend = backend
        self.field_range_T = tuple(field_range_T)
        self.temperature_range_K = tuple(temperature_range_K)
        with self.add_children_as_readables(Format.HINTED_SIGNAL):
            self.moment, self._set_moment = soft_signal_r_and_setter(float, units="emu")
        with self.add_children_as_readables():
            self.moment_err, self._set_moment_err = soft_signal_r_and_setter(float, math.nan, units="emu")
            self.field, self._set_field = soft_signal_r_and_setter(float, units="T")
            self.field_Oe, self._set_field_Oe = soft_signal_r_and_setter(float, units="Oe")
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
        self.field_state, set_field_state = soft_signal_r_and_setter(str, "stable")
        self.temperature_state, set_temperature_state = soft_signal_r_and_setter(str, "stable")
        super().__init__(name=name)
        self.status_poller = StatusPoller(
            self.name,
            backend.status,
            {
                "connected": set_connected,
                "field_stable": set_stable,
                "field_T": self._set_fields,
                "temperature_K": self._set_temperature,
                "field_state": set_field_state,
                "temperature_state": set_temperature_state,
            },
        )

    def _set_fields(self, field_T: float) -> None:
        self._set_field(field_T)
        self._set_field_Oe(field_T * 1e4)

    @property
    def controls_field(self) -> bool:
        return hasattr(self._backend, "set_field")

    @property
    def controls_temperature(self) -> bool:
        return hasattr(self._backend, "set_temperature")

    def check_field(self, target_T: float) -> None:
        """Refuse a field set-point this magnetometer cannot or must not reach."""
        if not self.controls_field:
            raise ValueError(f"{self.name}: {self._backend.description} does not set the field")
        lo, hi = self.field_range_T
        if not lo <= target_T <= hi:
            raise ValueError(f"{self.name}: field {target_T} T is outside {lo}..{hi} T")

    def check_temperature(self, target_K: float) -> None:
        if not self.controls_temperature:
            raise ValueError(f"{self.name}: {self._backend.description} does not set the temperature")
        lo, hi = self.temperature_range_K
        if not lo <= target_K <= hi:
            raise ValueError(f"{self.name}: temperature {target_K} K is outside {lo}..{hi} K")

    @AsyncStatus.wrap
    async def set_field(
        self, target_T: float, rate_T_s: float | None = None, approach: str = "linear", wait_stable: bool = True
    ) -> None:
        """Ramp to ``target_T`` (at ``rate_T_s``; approach linear, no_overshoot or oscillate);
        with ``wait_stable``, done once the magnet has relaxed."""
        self.check_field(target_T)
        await self._backend.set_field(target_T, rate_T_s, approach, wait_stable=wait_stable)
        await self._refresh()

    @AsyncStatus.wrap
    async def set_temperature(self, target_K: float, rate_K_s: float | None = None, wait_stable: bool = True) -> None:
        self.check_temperature(target_K)
        await self._backend.set_temperature(target_K, rate_K_s, wait_stable=wait_stable)
        await self._refresh()

    @AsyncStatus.wrap
    async def wait_for_stability(self) -> None:
        """Done when both the field and the temperature are stable."""
        if self.controls_field:
            await self._backend.wait_field_stable()
        if self.controls_temperature:
            await self._backend.wait_temperature_stable()
        await self._refresh()

    async def _refresh(self) -> dict:
        status = await self._backend.status()
        self._set_fields(status["field_T"])
        self._set_temperature(status["temperature_K"])
        return status

    async def conditions(self) -> tuple[float, float]:
        """(field T, temperature K) the instrument reports now."""
        status = await self._refresh()
        return float(status["field_T"]), float(status["temperature_K"])

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        # Values are set here, not by a getter: a staged signal reads from its cache in a scan.
        r = await self._backend.measure(await self.averaging_time.get_value())
        self._set_trigger_time(r.trigger_instrument_time)
        self._set_start(r.exposure_start)
        self._set_end(r.exposure_end)
        self._set_moment(r.moment_emu)
        self._set_moment_err(r.moment_err_emu)
        self._set_fields(r.field_T)
        self._set_temperature(r.temperature_K)
