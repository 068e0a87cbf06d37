"""The experiment clock every simulated instrument shares: scaled wall time or virtual time.

Two implementations of one interface (``time()``, ``async sleep()``, ``wall_seconds()``,
``speed``), chosen with ``make_clock(kind, ...)``:

- ``SimClock`` ("scaled"): simulated time = wall time x ``speed``. Simple, but a host stall skips
  simulated time and results depend on wall-clock jitter.
- ``VirtualClock`` ("virtual"): a discrete-event clock. Time stands still except when the clock
  moves it from one event to the next: the earliest ``sleep()`` deadline (earliest waiter wakes
  first, ties in the order they slept) or, when nobody sleeps but someone keeps reading
  ``time()``, the next ``tick_s`` boundary (so code that polls in wall time still sees progress).
  Before every move the clock lets the event loop run until no task is ready, so everything a
  wake-up triggers happens at the instant it woke. ``speed`` only paces events against the wall
  (never faster than ``speed`` x real time); a stall of the host delays events but never skips
  or reorders them. Code that waits only on this clock is therefore deterministic.
  Code that waits on *wall* time (asyncio.sleep, RunEngine timeouts) still sees whichever
  events have happened by the time it wakes: see the README section *Simulated lab*.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time as _time
from typing import Protocol


class Clock(Protocol):
    speed: float

    def time(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def wall_seconds(self, sim_seconds: float) -> float: ...


def _check_speed(speed: float) -> float:
    if not (speed > 0 and math.isfinite(speed)):
        raise ValueError(f"clock speed must be a finite number > 0, got {speed!r}")
    return float(speed)


class SimClock:
    """Experiment clock: epoch seconds that advance ``speed`` simulated seconds per wall second."""

    def __init__(self, speed: float = 1.0, start_time: float | None = None):
        self._speed = _check_speed(speed)
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


class VirtualClock:
    """Deterministic discrete-event experiment clock (see the module docstring)."""

    IDLE_WALL_S = 0.25  # nobody slept or read the time for this long: stop ticking (no busy loop)
    _MAX_QUIET_YIELDS = 10_000

    def __init__(self, speed: float = 1.0, start_time: float | None = None, tick_s: float = 1.0):
        self._speed = _check_speed(speed)
        if not tick_s > 0:
            raise ValueError(f"tick_s must be > 0, got {tick_s!r}")
        self._tick = float(tick_s)
        self._start = _time.time() if start_time is None else float(start_time)
        self._now = self._start
        self._waiters: list[tuple[float, int, asyncio.Future]] = []
        self._seq = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._driver: asyncio.Task | None = None
        self._last_seen = 0.0  # loop time of the last time()/sleep() from the loop
        self.events = 0  # how many times the clock has moved (for tests and benchmarks)

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def tick_s(self) -> float:
        return self._tick

    def wall_seconds(self, sim_seconds: float) -> float:
        return sim_seconds / self._speed

    def time(self) -> float:
        loop = asyncio._get_running_loop()
        if loop is not None:
            self._wake_driver(loop)
        return self._now

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        heapq.heappush(self._waiters, (self._now + max(0.0, float(seconds)), next(self._seq), fut))
        self._wake_driver(loop)
        await fut

    def advance(self, seconds: float) -> None:
        """Move time forward by hand, outside any event loop (scripts and tests)."""
        if asyncio._get_running_loop() is not None:
            raise RuntimeError("advance() is for use outside an event loop; sleep() instead")
        self._now += max(0.0, float(seconds))

    # ---- the driver: one task per event loop ---------------------------------------------------
    def _wake_driver(self, loop: asyncio.AbstractEventLoop) -> None:
        self._last_seen = loop.time()
        if self._driver is None or self._driver.done() or self._loop is not loop:
            self._loop = loop
            self._driver = loop.create_task(self._drive(), name="VirtualClock driver")

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        wall0, t0 = loop.time(), self._now
        while True:
            await self._until_quiet(loop)
            waiters = [w for w in self._waiters if not w[2].cancelled()]
            if len(waiters) != len(self._waiters):
                self._waiters = waiters
                heapq.heapify(self._waiters)
            if not self._waiters and loop.time() - self._last_seen > self.IDLE_WALL_S:
                return  # nobody is watching: stop; the next time()/sleep() starts a new driver
            k = math.floor((self._now - self._start) / self._tick) + 1
            target = self._start + k * self._tick
            while target <= self._now:
                # An epoch time is a float of ~2e-7 s resolution: start + 0.1 - start can come
                # out as 0.0999999, and floor() would pick the boundary already reached.
                k += 1
                target = self._start + k * self._tick
            if self._waiters:
                target = min(target, self._waiters[0][0])
            delay = wall0 + (target - t0) / self._speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # pacing only: a stall just delays the next event
                await self._until_quiet(loop)
                if self._waiters and self._waiters[0][0] < target:
                    continue  # someone slept meanwhile with an earlier deadline
            self._now = max(self._now, target)
            self.events += 1
            while self._waiters and self._waiters[0][0] <= self._now:
                _, _, fut = heapq.heappop(self._waiters)
                if not fut.done():
                    fut.set_result(None)
                    await self._until_quiet(loop)  # the earliest waiter acts before the next wakes

    @classmethod
    async def _until_quiet(cls, loop: asyncio.AbstractEventLoop) -> None:
        """Yield until no other callback is ready to run in this loop."""
        ready = getattr(loop, "_ready", None)  # CPython's run queue; without it, yield a few times
        for _ in range(cls._MAX_QUIET_YIELDS if ready is not None else 20):
            await asyncio.sleep(0)
            if ready is not None and not ready:
                return


def make_clock(
    kind: str = "scaled",
    speed: float = 1.0,
    start_time: float | None = None,
    tick_s: float = 1.0,
) -> SimClock | VirtualClock:
    """The clock a configuration asks for: ``"scaled"`` (SimClock) or ``"virtual"``."""
    if kind == "scaled":
        return SimClock(speed=speed, start_time=start_time)
    if kind == "virtual":
        return VirtualClock(speed=speed, start_time=start_time, tick_s=tick_s)
    raise ValueError(f"unknown clock kind {kind!r}; choose 'scaled' or 'virtual'")
