"""Simulated SQUID-VSM with magnet and temperature dynamics (``MagnetometerBackend``).

Unlike ``detectors.SimMagnetometerBackend`` (fixed field and temperature), this one ramps the
field and tracks the temperature in experiment time (``magnet.MagnetDynamics``): each reading
uses the field and temperature at the middle of its averaging window, the cell (which sits in
the chamber) follows the chamber temperature, and ``status()`` reports whether the field has
settled after its last change. Not selectable in a profile yet (the magnetometry issue adds
field and temperature control to the device).
"""

from __future__ import annotations

from operando.devices.magnetometer import MomentReading

from ..lab import SimLab
from ..magnet import MagnetDynamics


class SimMpmsBackend:
    def __init__(self, lab: SimLab, field_T: float = 1.0, temperature_K: float = 300.0, **dynamics):
        self.lab = lab
        self.magnet = MagnetDynamics(field_T, temperature_K, lab.clock.time(), **dynamics)
        self.description = "simulated SQUID-VSM (field ramps, temperature tracking)"
        self.connected = True

    @property
    def field_T(self) -> float:
        return self.magnet.field_at(self.lab.clock.time())

    @property
    def temperature_K(self) -> float:
        return self.magnet.temperature_at(self.lab.clock.time())

    async def set_field(self, target_T: float, wait_stable: bool = False) -> None:
        """Ramp to ``target_T``; with ``wait_stable``, return once the magnet has relaxed."""
        self.magnet.set_field(target_T, self.lab.clock.time())
        if wait_stable:
            await self.lab.clock.sleep(self.magnet.field_stable_at(0) - self.lab.clock.time())

    async def set_temperature(self, target_K: float) -> None:
        self.magnet.set_temperature(target_K, self.lab.clock.time())

    async def status(self) -> dict:
        t = self.lab.clock.time()
        return {
            "connected": self.connected,
            "field_T": self.magnet.field_at(t),
            "temperature_K": self.magnet.temperature_at(t),
            "field_stable": self.magnet.field_stable(t),
        }

    async def measure(self, averaging_s: float) -> MomentReading:
        clock = self.lab.clock
        start = clock.time()
        await clock.sleep(averaging_s)
        self.lab.sync()
        mid = start + 0.5 * averaging_s
        field, temp = self.magnet.field_at(mid), self.magnet.temperature_at(mid)
        self.lab.cell.set_temperature(temp)
        moment = self.lab.magnetometer.moment_emu(field, temp, averaging_s)
        return MomentReading(start, clock.time(), moment, field, temp)
