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
    """The simulated potentiostat. With ``instrument_clock=(offset_s, drift_ppm)`` it stamps its
    samples with its own clock (offset and drifting from the experiment clock, as real firmware
    does), so the device layer must map them; without, it shares the experiment clock."""

    def __init__(self, lab: SimLab, instrument_clock: tuple[float, float] | None = None):
        self.lab = lab
        self.description = f"simulated potentiostat ({lab.cell_description})"
        self.timebase = "host" if instrument_clock is None else "instrument"
        self._offset_s, drift_ppm = instrument_clock or (0.0, 0.0)
        self._drift = drift_ppm * 1e-6
        self._t_ref = lab.clock.time()

    def instrument_time(self, t):
        """The instrument's clock reading at experiment time ``t`` (the simulator's truth)."""
        return np.asarray(t) + self._offset_s + self._drift * (np.asarray(t) - self._t_ref)

    async def trigger_output(self) -> tuple[float, float]:
        """Fire the TTL trigger output at the next sample instant; returns when it fired.

        Returns (experiment time, instrument time) of the edge. The edge sits on the sample grid,
        so a frame started by it is aligned with the echem samples exactly, in either time base.
        """
        engine = self.lab.potentiostat
        now = self.lab.clock.time()
        edge = now
        if engine.running and engine.start_time is not None:
            dt = engine.sample_interval_s
            edge = engine.start_time + np.ceil((now - engine.start_time) / dt - 1e-9) * dt
        await self.lab.clock.sleep(max(0.0, edge - now))
        return float(edge), float(self.instrument_time(edge))

    async def start(self, steps: Sequence[ScheduledStep]) -> None:
        self.lab.sync()  # the cell relaxes up to now before the sequence starts
        self.lab.potentiostat.drain()
        self.lab.potentiostat.load(list(steps))
        self.lab.potentiostat.start()

    async def poll(self) -> dict[str, np.ndarray]:
        self.lab.sync()
        block = self.lab.potentiostat.drain()
        if self.timebase == "instrument":
            block["timestamp"] = self.instrument_time(block["timestamp"])
        return block

    async def poll_impedance(self) -> dict[str, np.ndarray]:
        """Impedance rows (IMPEDANCE_COLUMNS) finished since the last call, stamped like ``poll``."""
        self.lab.sync()
        block = self.lab.potentiostat.drain_impedance()
        if self.timebase == "instrument":
            block["timestamp"] = self.instrument_time(block["timestamp"])
        return block

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


async def _exposure(lab: SimLab, seconds: float, trigger_source) -> tuple[float, float, float]:
    """(start, end, trigger instrument time) of one exposure on the experiment clock.

    Software-timed, it starts now; hardware-triggered, it starts on the potentiostat's next
    trigger edge and lasts exactly ``seconds`` (the detector times itself from the edge).
    """
    if trigger_source is None:
        start = lab.clock.time()
        await lab.clock.sleep(seconds)
        return start, lab.clock.time(), float("nan")
    edge, edge_inst = await trigger_source.trigger_output()
    await lab.clock.sleep(edge + seconds - lab.clock.time())
    return edge, edge + seconds, edge_inst


class SimMagnetometerBackend:
    def __init__(
        self, lab: SimLab, field_T: float = 1.0, temperature_K: float = 300.0, trigger_source=None
    ):
        self.lab = lab
        self.trigger_source = trigger_source  # a SimPotentiostatBackend: hardware-triggered
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
        start, end, edge_inst = await _exposure(self.lab, averaging_s, self.trigger_source)
        self.lab.sync()
        moment = self.lab.magnetometer.moment_emu(self.field_T, self.temperature_K, averaging_s)
        return MomentReading(start, end, moment, self.field_T, self.temperature_K, edge_inst)


class SimRamanBackend:
    def __init__(self, lab: SimLab, trigger_source=None):
        self.lab = lab
        self.trigger_source = trigger_source  # a SimPotentiostatBackend: hardware-triggered
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
        start, end, edge_inst = await _exposure(self.lab, exposure_s * accumulations, self.trigger_source)
        self.lab.sync()
        counts = self.lab.raman.spectrum(exposure_s, accumulations)
        return SpectrumReading(start, end, counts, edge_inst)
