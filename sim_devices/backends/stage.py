"""The simulated XY stage (backend ``sim``): moves the simulated Raman spectrometer's spot over
the electrode, on the lab's clock.

A move takes the longer axis's distance over ``speed_um_s`` plus ``settle_s``, slept on the
experiment clock (so a virtual-clock map is deterministic and a scaled one takes scaled time);
the spot is where the stage is once the move has ended. It starts at the centre of its travel:
the spot then sees the electrode there (``sim_devices/raman.py``: interface coverage by
position). It can refuse to answer (``connected = False``), for fault tests.
"""

from __future__ import annotations

from operando.devices.kinds import StageSettings
from operando.devices.registry import BackendSpec, register
from operando.devices.stage import AXES

from ..lab import SimLab


class SimStageBackend:
    def __init__(self, lab: SimLab, settings: StageSettings):
        self.lab = lab
        self.speed_um_s = settings.speed_um_s
        self.settle_s = settings.settle_s
        self.travel = {"x": settings.x_travel_um, "y": settings.y_travel_um}
        self._at = {axis: sum(self.travel[axis]) / 2 for axis in AXES}
        self.description = f"simulated XY stage ({self.speed_um_s:g} µm/s)"
        self.connected = True
        self.moves = 0
        self._place_spot()

    def _place_spot(self) -> None:
        self.lab.raman.spot_um = (self._at["x"], self._at["y"])

    def _check(self) -> None:
        if not self.connected:
            raise ConnectionError("simulated XY stage: no answer")

    async def status(self) -> dict:
        self._check()
        return {"connected": True}

    async def position(self, axis: str) -> float:
        self._check()
        return self._at[axis]

    async def move(self, axis: str, position_um: float) -> None:
        self._check()
        low, high = self.travel[axis]
        if not low <= position_um <= high:  # the controller's own soft limits, behind the device's
            raise ValueError(f"simulated XY stage: {axis} {position_um:g} µm is beyond {low:g}..{high:g} µm")
        distance = abs(position_um - self._at[axis])
        await self.lab.clock.sleep(distance / self.speed_um_s + self.settle_s)
        self._at[axis] = float(position_um)
        self.moves += 1
        self._place_spot()


class SimStageSettings(StageSettings):
    # the simulated electrode's interface domains lie within ±100 µm of the origin
    x_travel_um: tuple[float, float] = (-500.0, 500.0)
    y_travel_um: tuple[float, float] = (-500.0, 500.0)


register(
    BackendSpec(
        kind="stage",
        name="sim",
        settings=SimStageSettings,
        build=lambda ctx: SimStageBackend(ctx.lab, ctx.settings),
        summary="a simulated XY stage moving the simulated Raman spot over a patterned electrode",
        simulated=True,
    )
)
