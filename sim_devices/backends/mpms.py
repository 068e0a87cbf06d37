"""Simulated SQUID-VSM with magnet and temperature dynamics (backend ``mpms``).

Unlike ``detectors.SimMagnetometerBackend`` (fixed field and temperature), this one ramps the
field and tracks the temperature in experiment time (``magnet.MagnetDynamics``): each reading
uses the field and temperature at the middle of its averaging window, the cell (which sits in
the chamber) follows the chamber temperature, and ``status()`` reports the field's and the
temperature's states (ramping / relaxing / stable; sweeping / tracking / stable). Below
``CELL_FROZEN_K`` the electrolyte is frozen: the cell's electrochemistry is held at that
temperature's (already negligible) rates, while the magnetism sees the chamber's temperature.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, model_validator

from operando.devices.kinds import MagnetometerSettings
from operando.devices.magnetometer import MomentReading
from operando.devices.registry import BackendSpec, Capability, register

from ..lab import SimLab
from ..magnet import MagnetDynamics

CELL_FROZEN_K = 200.0
APPROACHES = ("linear", "no_overshoot", "oscillate")


class SimMpmsBackend:
    capabilities = frozenset({Capability.FIELD_CONTROL, Capability.TEMPERATURE_CONTROL})

    def __init__(
        self,
        lab: SimLab,
        field_T: float = 1.0,
        temperature_K: float = 300.0,
        temperature_tolerance_K: float = 0.05,
        **dynamics,
    ):
        self.lab = lab
        self.magnet = MagnetDynamics(field_T, temperature_K, lab.clock.time(), **dynamics)
        self.temperature_tolerance_K = temperature_tolerance_K
        self.description = "simulated SQUID-VSM (field ramps, temperature tracking)"
        self.connected = True

    @property
    def field_T(self) -> float:
        return self.magnet.field_at(self.lab.clock.time())

    @property
    def temperature_K(self) -> float:
        return self.magnet.temperature_at(self.lab.clock.time())

    async def set_field(
        self, target_T: float, rate_T_s: float | None = None, approach: str = "linear", wait_stable: bool = False
    ) -> None:
        """Ramp to ``target_T``; with ``wait_stable``, return once the magnet has relaxed.

        Every approach ramps linearly here (the simulated magnet neither overshoots nor
        oscillates); the relaxation after the ramp is the same for all.
        """
        if approach not in APPROACHES:
            raise ValueError(f"approach must be one of {APPROACHES}, got {approach!r}")
        self.magnet.set_field(target_T, self.lab.clock.time(), rate_T_s)
        if wait_stable:
            await self.lab.clock.sleep(self.magnet.field_stable_at(0) - self.lab.clock.time())

    async def set_temperature(self, target_K: float, rate_K_s: float | None = None, wait_stable: bool = False) -> None:
        self.magnet.set_temperature(target_K, self.lab.clock.time(), rate_K_s)
        if wait_stable:
            await self.wait_temperature_stable()

    async def wait_field_stable(self) -> None:
        await self.lab.clock.sleep(max(0.0, self.magnet.field_stable_at(0) - self.lab.clock.time()))

    async def wait_temperature_stable(self) -> None:
        due = self.magnet.temperature_stable_at(self.temperature_tolerance_K)
        await self.lab.clock.sleep(max(0.0, due - self.lab.clock.time()))

    async def status(self) -> dict:
        if not self.connected:
            raise ConnectionError("simulated SQUID-VSM: no answer")
        t = self.lab.clock.time()
        return {
            "connected": True,
            "field_T": self.magnet.field_at(t),
            "temperature_K": self.magnet.temperature_at(t),
            "field_stable": self.magnet.field_stable(t),
            "field_state": self.magnet.field_state(t),
            "temperature_state": self.magnet.temperature_state(t, self.temperature_tolerance_K),
        }

    async def measure(self, averaging_s: float) -> MomentReading:
        if not self.connected:
            raise ConnectionError("simulated SQUID-VSM: no answer")
        clock = self.lab.clock
        start = clock.time()
        await clock.sleep(averaging_s)
        self.lab.sync()
        mid = start + 0.5 * averaging_s
        field, temp = self.magnet.field_at(mid), self.magnet.temperature_at(mid)
        self.lab.cell.set_temperature(max(temp, CELL_FROZEN_K))
        moment = self.lab.magnetometer.moment_emu(field, temp, averaging_s)
        sigma = self.lab.magnetometer.noise_sigma_emu(averaging_s)
        return MomentReading(start, clock.time(), moment, field, temp, moment_err_emu=sigma)


class SimMpmsSettings(MagnetometerSettings):
    field_T: float = 1.0  # field at the start of the run
    temperature_K: float = Field(300.0, gt=0)  # temperature at the start of the run
    field_range_T: tuple[float, float] = (-7.0, 7.0)  # set-points outside are refused
    temperature_range_K: tuple[float, float] = (1.8, 400.0)
    field_rate_T_s: PositiveFloat = 0.01  # 100 Oe/s
    field_approach: Literal["linear", "no_overshoot", "oscillate"] = "linear"
    temperature_rate_K_s: PositiveFloat = 10.0 / 60.0  # 10 K/min
    temperature_tolerance_K: PositiveFloat = 0.05  # 'stable' within this of the set-point

    @model_validator(mode="after")
    def _start_within_ranges(self):
        lo, hi = self.field_range_T
        tlo, thi = self.temperature_range_K
        if not (lo < hi and 0 < tlo < thi):
            raise ValueError("field_range_T and temperature_range_K must be [low, high] with low < high (K > 0)")
        if not lo <= self.field_T <= hi or not tlo <= self.temperature_K <= thi:
            raise ValueError("the starting field_T / temperature_K lie outside field_range_T / temperature_range_K")
        return self


def _build(ctx) -> SimMpmsBackend:
    s = ctx.settings
    return SimMpmsBackend(
        ctx.lab,
        s.field_T,
        s.temperature_K,
        temperature_tolerance_K=s.temperature_tolerance_K,
        ramp_T_s=s.field_rate_T_s,
        temp_rate_K_s=s.temperature_rate_K_s,
    )


register(
    BackendSpec(
        kind="magnetometer",
        name="mpms",
        settings=SimMpmsSettings,
        build=_build,
        summary="a simulated SQUID-VSM (MPMS3-like): field ramps and relaxes, temperature sweeps and tracks",
        capabilities=SimMpmsBackend.capabilities,
        simulated=True,
    )
)
