"""The simulated potentiostat (backend ``sim``): the lab's engine running the steps on its cell.

It drives the one shared ``SimLab`` (cell + clock), so the simulated detectors observe the cycling
it performs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Optional

import numpy as np

from operando.devices.configuration import StrictModel
from operando.devices.kinds import PotentiostatSettings
from operando.devices.registry import BackendSpec, BuildContext, Capability, register
from operando.devices.safety import UnsupportedTechnique
from operando.devices.techniques import TECHNIQUE_CODES, ScheduledStep

from ..lab import SimLab


class SimPotentiostatBackend:
    """The simulated potentiostat. With ``instrument_clock=(offset_s, drift_ppm)`` it stamps its
    samples with its own clock (offset and drifting from the experiment clock, as real firmware
    does), so the device layer must map them; without, it shares the experiment clock."""

    capabilities = frozenset({Capability.HOLD, Capability.IMPEDANCE, Capability.TRIGGER_OUT})
    techniques = frozenset(TECHNIQUE_CODES)

    def __init__(self, lab: SimLab, instrument_clock: tuple[float, float] | None = None, record_path=None):
        self.lab = lab
        self.description = f"simulated potentiostat ({lab.cell_description})"
        self.timebase = "host" if instrument_clock is None else "instrument"
        self._offset_s, drift_ppm = instrument_clock or (0.0, 0.0)
        self._drift = drift_ppm * 1e-6
        self._t_ref = lab.clock.time()
        # The simulator's own record of every sample it hands over: little-endian float64 time
        # stamps, one unbuffered write per poll, so a SIGKILL of this process loses none of it.
        self._record = None if record_path is None else os.open(record_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def close(self) -> None:
        record, self._record = self._record, None
        if record is not None:
            os.close(record)

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

    def check(self, steps: Sequence[ScheduledStep]) -> None:
        for s in steps:
            if s.technique.kind not in self.techniques:  # pragma: no cover - it runs them all
                raise UnsupportedTechnique(f"{self.description}: no {s.technique.kind}")

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
        if self._record is not None and len(block["timestamp"]):
            os.write(self._record, np.asarray(block["timestamp"], "<f8").tobytes())
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


class InstrumentClock(StrictModel):
    """A clock of the simulated instrument's own, offset and drifting from the experiment's."""

    offset_s: float = 0.0
    drift_ppm: float = 0.0


class SimPotentiostatSettings(PotentiostatSettings):
    # stamp samples with an instrument clock of its own, which the device must map (tests, demos)
    instrument_clock: Optional[InstrumentClock] = None
    # append the time stamp of every sample handed over to this file (float64, little-endian):
    # the simulator's own record, against which crash tests measure what a run lost
    record_path: Optional[str] = None


def _build(ctx: BuildContext) -> SimPotentiostatBackend:
    clock, record = ctx.settings.instrument_clock, ctx.settings.record_path
    backend = SimPotentiostatBackend(
        ctx.lab, None if clock is None else (clock.offset_s, clock.drift_ppm), record_path=record
    )
    ctx.on_close(backend.close)
    return backend


register(
    BackendSpec(
        kind="potentiostat",
        name="sim",
        settings=SimPotentiostatSettings,
        build=_build,
        summary="the simulated potentiostat: every technique on the simulated cell",
        capabilities=SimPotentiostatBackend.capabilities,
        techniques=SimPotentiostatBackend.techniques,
        simulated=True,
        channels=16,  # a VMP-300-sized instrument: each channel its own simulated cell (cells:)
    )
)
