"""Simulated instruments behind the same backend interfaces as real hardware.

Each backend drives or reads the one shared ``SimLab`` (cell + clock), so the moment and the
Raman bands respond to the cycling the potentiostat performs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from operando.devices.magnetometer import MomentReading
from operando.devices.raman import SpectrumReading
from operando.devices.techniques import ScheduledStep

from .lab import SimLab


class SimPotentiostatBackend:
    def __init__(self, lab: SimLab):
        self.lab = lab
        self.description = f"simulated potentiostat ({lab.cell_description})"

    async def start(self, steps: Sequence[ScheduledStep]) -> None:
        self.lab.sync()  # the cell relaxes up to now before the sequence starts
        self.lab.potentiostat.drain()
        self.lab.potentiostat.load(list(steps))
        self.lab.potentiostat.start()

    async def poll(self) -> dict[str, np.ndarray]:
        self.lab.sync()
        return self.lab.potentiostat.drain()

    @property
    def done(self) -> bool:
        return self.lab.potentiostat.done

    async def open_circuit(self, reason: str) -> None:
        self.lab.sync()
        self.lab.potentiostat.open_circuit(reason)

    async def hold(self) -> None:
        self.lab.potentiostat.hold()

    async def release(self) -> None:
        self.lab.potentiostat.release()


class SimMagnetometerBackend:
    def __init__(self, lab: SimLab, field_T: float = 1.0, temperature_K: float = 300.0):
        self.lab = lab
        self.field_T = field_T
        self.temperature_K = temperature_K
        self.description = "simulated SQUID-VSM"
        # Health a test or a fault schedule can change; read by status() and suspenders.
        self.connected = True
        self.field_stable = True

    async def status(self) -> dict:
        if not self.connected:
            raise ConnectionError("simulated SQUID-VSM: no answer")
        return {
            "connected": True,
            "field_T": self.field_T,
            "temperature_K": self.temperature_K,
            "field_stable": self.field_stable,
        }

    async def measure(self, averaging_s: float) -> MomentReading:
        if not self.connected:
            raise ConnectionError("simulated SQUID-VSM: no answer")
        start = self.lab.clock.time()
        await self.lab.clock.sleep(averaging_s)
        self.lab.sync()
        moment = self.lab.magnetometer.moment_emu(self.field_T, self.temperature_K, averaging_s)
        return MomentReading(start, self.lab.clock.time(), moment, self.field_T, self.temperature_K)


class SimRamanBackend:
    def __init__(self, lab: SimLab):
        self.lab = lab
        self.raman_shift_cm1 = np.asarray(lab.raman.raman_shift_cm1, dtype=float)
        self.laser_nm = float(lab.raman.laser_nm)
        self.description = f"simulated Raman spectrometer ({self.laser_nm:g} nm)"
        self.connected = True
        self.interlock_closed = True

    async def status(self) -> dict:
        if not self.connected:
            raise ConnectionError("simulated Raman spectrometer: no answer")
        return {"connected": True, "interlock_closed": self.interlock_closed}

    async def acquire(self, exposure_s: float, accumulations: int) -> SpectrumReading:
        if not self.connected:
            raise ConnectionError("simulated Raman spectrometer: no answer")
        if not self.interlock_closed:
            raise RuntimeError("simulated Raman spectrometer: laser interlock open, no exposure")
        start = self.lab.clock.time()
        await self.lab.clock.sleep(exposure_s * accumulations)
        self.lab.sync()
        counts = self.lab.raman.spectrum(exposure_s, accumulations)
        return SpectrumReading(start, self.lab.clock.time(), counts)
