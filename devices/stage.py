"""A sample stage: x and y axes that move the sample under a focused probe (a Raman spot), for
line and area maps.

Each axis is a bluesky ``Movable`` (``stage.x``, ``stage.y``): ``set(position_um)`` checks the
position against the axis's travel *before* anything moves (a ValueError naming the instrument
and the axis), then the backend moves there — on the experiment clock, at the stage's speed —
and waits ``settle_s``. ``readback`` (µm, hinted) is where the backend says the axis is, so a
map's events carry the coordinates the spectrum was taken at, not the ones asked for.
Positions are the stage's own, in µm; the configured travel is the user's promise of where the
sample is safe to go (a microscope objective a few mm above a sealed cell's window).
"""

from __future__ import annotations

import math
from typing import Protocol

from ophyd_async.core import AsyncStatus, StandardReadable, soft_signal_r_and_setter
from ophyd_async.core import StandardReadableFormat as Format

from .status import PolledStatus, StatusPoller

AXES = ("x", "y")


class StageBackend(Protocol):
    description: str

    async def move(self, axis: str, position_um: float) -> None:
        """Move ``axis`` to ``position_um`` and return when it is there (settled)."""

    async def position(self, axis: str) -> float:
        """Where ``axis`` is now (µm)."""

    async def status(self) -> dict:
        """{"connected"}: polled while staged."""


class StageAxis(StandardReadable):
    """One axis of a stage: ``set`` moves it (within its travel), ``readback`` says where it is."""

    def __init__(self, backend: StageBackend, axis: str, travel_um: tuple[float, float], instrument: str, name=""):
        low, high = (float(v) for v in travel_um)
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"{instrument}: {axis} travel must be two finite numbers, low < high (got {travel_um})")
        self._backend, self._axis, self._instrument = backend, axis, instrument
        self.travel_um = (low, high)
        with self.add_children_as_readables(Format.HINTED_SIGNAL):
            self.readback, self._set_readback = soft_signal_r_and_setter(float, math.nan, units="um")
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.travel_low, _ = soft_signal_r_and_setter(float, low, units="um")
            self.travel_high, _ = soft_signal_r_and_setter(float, high, units="um")
        super().__init__(name=name)

    def set_name(self, name: str, *, child_name_separator: str | None = None) -> None:
        super().set_name(name, child_name_separator=child_name_separator)
        self.readback.set_name(name)  # events carry "stage-x", not "stage-x-readback"

    def check(self, position_um: float) -> float:
        """``position_um`` as a float if it is within the travel; a ValueError otherwise."""
        try:
            p = float(position_um)
        except (TypeError, ValueError):
            raise ValueError(f"{self._instrument}: {self._axis} must be a number in µm (got {position_um!r})") from None
        low, high = self.travel_um
        if not (math.isfinite(p) and low <= p <= high):
            raise ValueError(
                f"{self._instrument}: {self._axis} = {position_um!r} µm is outside its travel {low:g} to {high:g} µm"
            )
        return p

    @AsyncStatus.wrap
    async def set(self, value: float) -> None:
        target = self.check(value)
        await self._backend.move(self._axis, target)
        self._set_readback(await self._backend.position(self._axis))

    @AsyncStatus.wrap
    async def stage(self) -> None:
        await self.refresh()  # a scan stages its motors: their first reading is where they are
        await super().stage()

    async def refresh(self) -> float:
        """Read where the axis is from the backend (after connecting, or a move by hand)."""
        position = await self._backend.position(self._axis)
        self._set_readback(position)
        return position


class Stage(PolledStatus, StandardReadable):
    """x and y axes of one stage; ``connected`` is health, watched by suspenders."""

    def __init__(
        self,
        backend: StageBackend,
        x_travel_um: tuple[float, float],
        y_travel_um: tuple[float, float],
        name: str = "",
    ):
        self._backend = backend
        with self.add_children_as_readables():
            self.x = StageAxis(backend, "x", x_travel_um, name)
            self.y = StageAxis(backend, "y", y_travel_um, name)
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.backend_description, _ = soft_signal_r_and_setter(str, backend.description)
        self.connected, set_connected = soft_signal_r_and_setter(bool, True)
        super().__init__(name=name)
        self.status_poller = StatusPoller(self.name, backend.status, {"connected": set_connected})

    def axis(self, name: str) -> StageAxis:
        if name not in AXES:
            raise ValueError(f"{self.name}: no axis {name!r} (axes: {', '.join(AXES)})")
        return getattr(self, name)

    @AsyncStatus.wrap
    async def stage(self) -> None:
        for axis in AXES:  # where the axes are now: what a map's first event and its restore use
            await self.axis(axis).refresh()
        await super().stage()
