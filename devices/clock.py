"""The experiment clock: one time base for every sample, frame and wait.

Real instruments run on ``WallClock``; simulated ones on ``operando.sim_devices.clock.SimClock``,
which has the same interface and can run faster than real time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    speed: float

    def time(self) -> float:
        """Seconds since the epoch on the experiment clock."""

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of experiment time."""

    def wall_seconds(self, seconds: float) -> float:
        """Wall-clock seconds that ``seconds`` of experiment time take."""


class WallClock:
    speed = 1.0

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def wall_seconds(self, seconds: float) -> float:
        return seconds
