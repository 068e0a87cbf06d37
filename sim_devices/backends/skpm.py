"""Simulated SKPM behind ``operando.devices.skpm.SkpmBackend``: scans the shared SimLab's cell.

Each line takes 1/line_rate of experiment time on the lab's clock and is computed from the cell
state at the moment it ends, so a map taken while the cell changes shows that change line by
line, as a real slow scan does.
"""

from __future__ import annotations

import numpy as np

from operando.devices.kinds import SkpmSettings
from operando.devices.registry import BackendSpec, Capability, register
from operando.devices.skpm import SkpmFrame, SkpmScan

from ..lab import SimLab
from ..skpm import SimSkpmPhysics


class SimSkpmBackend:
    capabilities = frozenset({Capability.MAPPING})

    def __init__(self, lab: SimLab, physics: SimSkpmPhysics | None = None):
        self.lab = lab
        self._physics = physics  # None: the lab's (the cell under the probe, in a several-cell run)
        self.description = "simulated SKPM (heterointerface, space charge from the cell)"
        self.clock = lab.clock

    @property
    def physics(self) -> SimSkpmPhysics:
        return self._physics or self.lab.skpm

    async def scan(self, scan: SkpmScan, on_line=None) -> SkpmFrame:
        clock = self.lab.clock
        line_s = 1.0 / scan.line_rate_hz
        pixel_s = line_s / (2 * scan.pixels)  # half the line time is the CPD (lift) pass
        x = np.linspace(-scan.width_m / 2, scan.width_m / 2, scan.pixels)
        ys = np.linspace(-scan.height_m / 2, scan.height_m / 2, scan.lines)
        topo = np.empty((scan.lines, scan.pixels))
        cpd = np.empty((scan.lines, scan.pixels))
        start = clock.time()
        for i, y in enumerate(ys):
            await clock.sleep(line_s)
            t = self.lab.sync()
            topo[i], cpd[i] = self.physics.line(float(y), x, t, pixel_s)
            if on_line is not None:
                on_line(i, topo[i], cpd[i])
        return SkpmFrame(start, clock.time(), topo, cpd)


register(
    BackendSpec(
        kind="skpm",
        name="sim",
        settings=SkpmSettings,
        build=lambda ctx: SimSkpmBackend(ctx.lab),
        summary="a simulated SKPM mapping a heterointerface whose space charge follows the cell",
        capabilities=SimSkpmBackend.capabilities,
        simulated=True,
    )
)
