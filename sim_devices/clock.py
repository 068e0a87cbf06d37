"""The experiment clock every simulated instrument shares.

Simulated time runs ``speed`` times faster than the wall clock, so a day of cycling can be
replayed in minutes. Callers depend only on the ``Clock`` protocol (``time``, ``sleep``,
``wall_seconds``), so a deterministic discrete-event clock can later replace ``SimClock``.
"""

from __future__ import annotations

import asyncio
import time as _time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def wall_seconds(self, sim_seconds: float) -> float: ...


class SimClock:
    """Experiment clock: epoch seconds that advance ``speed`` simulated seconds per wall second."""

    def __init__(self, speed: float = 1.0, start_time: float | None = None):
        if not speed > 0:
            raise ValueError(f"SimClock speed must be > 0, got {speed!r}")
        self._speed = float(speed)
        self._start = _time.time() if start_time is None else float(start_time)
        # monotonic, not time.time(): the experiment clock must never jump with NTP or DST.
        self._wall0 = _time.monotonic()

    @property
    def speed(self) -> float:
        return self._speed

    def time(self) -> float:
        return self._start + (_time.monotonic() - self._wall0) * self._speed

    def wall_seconds(self, sim_seconds: float) -> float:
        """Wall-clock seconds that ``sim_seconds`` of simulated time take."""
        return sim_seconds / self._speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, self.wall_seconds(seconds)))
