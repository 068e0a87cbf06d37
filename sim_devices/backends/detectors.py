"""The simulated magnetometer and Raman spectrometer (backend ``sim``): they read the lab's cell.

Their moment and Raman bands follow whatever drives the cell — the simulated potentiostat or a
wire-level simulator's firmware — on the lab's one clock. Hardware-triggered (``trigger:
hardware``), an exposure starts on the potentiostat's next trigger edge.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from operando.devices.kinds import MagnetometerSettings, RamanSettings
from operando.devices.magnetometer import MomentReading
from operando.devices.raman import SpectrumReading
from operando.devices.registry import BackendSpec, Capability, register

from ..lab import SimLab


async def _exposure(lab: SimLab, seconds: float, trigger_source) -> tuple[float, float, float]:
    """(start, end, trigger instrument time) of one exposure on the experiment clock.

    Software-timed, it starts now; hardware-triggered, it starts on the potentiostat's next
    trigger edge and lasts exactly ``seconds`` (the detector times itself from the edge).
    """
    lab.frames_in_flight += 1  # a wire fault "during a frame" on the potentiostat waits for this
    try:
        if trigger_source is None:
            start = lab.clock.time()
            await lab.clock.sleep(seconds)
            return start, lab.clock.time(), float("nan")
        edge, edge_inst = await trigger_source.trigger_output()
        await lab.clock.sleep(edge + seconds - lab.clock.time())
        return edge, edge + seconds, edge_inst
    finally:
        lab.frames_in_flight -= 1


class SimMagnetometerBackend:
    capabilities = frozenset({Capability.TRIGGER_IN})

    def __init__(self, lab: SimLab, field_T: float = 1.0, temperature_K: float = 300.0, trigger_source=None):
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
        sigma = self.lab.magnetometer.noise_sigma_emu(averaging_s)
        return MomentReading(start, end, moment, self.field_T, self.temperature_K, edge_inst, sigma)


class SimRamanBackend:
    capabilities = frozenset({Capability.TRIGGER_IN})

    def __init__(self, lab: SimLab, trigger_source=None):
        self.lab = lab
        self.trigger_source = trigger_source  # a SimPotentiostatBackend: hardware-triggered
        self.raman_shift_cm1 = np.asarray(lab.raman.raman_shift_cm1, dtype=float)
        self.laser_nm = float(lab.raman.laser_nm)
        self.description = f"simulated Raman spectrometer ({self.laser_nm:g} nm)"
        self.full_scale = float(lab.raman.FULL_SCALE)
        self.read_noise_counts = float(lab.raman.READ_NOISE_COUNTS)
        self.connected = True
        self.interlock_closed = True

    async def status(self) -> dict:
        if not self.connected:
            raise ConnectionError("simulated Raman spectrometer: no answer")
        return {"connected": True, "interlock_closed": self.interlock_closed}

    async def acquire(self, exposure_s: float, accumulations: int, dark: bool = False) -> SpectrumReading:
        """One frame per accumulation, clipped at the CCD's full scale. ``dark``: the shutter
        closed (dark current, read noise, cosmic rays), software-timed even when
        hardware-triggered (the trigger edge is the light frame's), on the lab's clock too."""
        if not self.connected:
            raise ConnectionError("simulated Raman spectrometer: no answer")
        if not self.interlock_closed:
            raise RuntimeError("simulated Raman spectrometer: laser interlock open, no exposure")
        trigger_source = None if dark else self.trigger_source
        start, end, edge_inst = await _exposure(self.lab, exposure_s * accumulations, trigger_source)
        self.lab.sync()
        frames = self.lab.raman.frames(exposure_s, accumulations, dark=dark)
        return SpectrumReading(start, end, frames.sum(axis=0), edge_inst, frames, self.full_scale)


class SimMagnetometerSettings(MagnetometerSettings):
    field_T: float = 1.0  # the fixed field the moment is measured at
    temperature_K: float = Field(300.0, gt=0)


register(
    BackendSpec(
        kind="magnetometer",
        name="sim",
        settings=SimMagnetometerSettings,
        build=lambda ctx: SimMagnetometerBackend(
            ctx.lab, ctx.settings.field_T, ctx.settings.temperature_K, trigger_source=ctx.trigger_source
        ),
        summary="a simulated SQUID-VSM at a fixed field and temperature, reading the simulated cell",
        capabilities=SimMagnetometerBackend.capabilities,
        simulated=True,
    )
)

register(
    BackendSpec(
        kind="raman",
        name="sim",
        settings=RamanSettings,
        build=lambda ctx: SimRamanBackend(ctx.lab, trigger_source=ctx.trigger_source),
        summary="a simulated Raman spectrometer whose bands follow the simulated cell",
        capabilities=SimRamanBackend.capabilities,
        simulated=True,
    )
)
