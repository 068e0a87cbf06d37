"""Instrument health, polled while a device is staged: what suspenders watch.

A backend reports ``await backend.status()`` as a mapping (e.g. ``{"connected": True,
"temperature_K": 300.1, "field_stable": True}``); the device copies each value it knows into a
soft signal, so bluesky suspenders (through ``plans/suspenders.py``) can react to it. A status
call that raises counts as a disconnection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ophyd_async.core import AsyncStatus

log = logging.getLogger(__name__)


class StatusPoller:
    def __init__(
        self,
        name: str,
        read_status: Callable[[], Awaitable[dict]],
        setters: dict[str, Callable],
        period_s: float = 0.05,
    ):
        self.name = name
        self._read = read_status
        self._setters = setters  # status key -> signal setter; "connected" is always one
        self.period_s = period_s
        self._task: asyncio.Task | None = None
        self._connected = True  # to log changes, not every failed poll

    async def poll_once(self) -> dict:
        try:
            status = dict(await self._read())
            status.setdefault("connected", True)
        except Exception as exc:  # the instrument did not answer: that is the status
            if self._connected:
                log.warning("%s: status failed, counted as disconnected: %s", self.name, exc)
            status = {"connected": False}
        if status["connected"] and not self._connected:
            log.warning("%s: answering again", self.name)
        self._connected = bool(status["connected"])
        for key, value in status.items():
            setter = self._setters.get(key)
            if setter is not None:
                setter(value)
        return status

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # we were cancelled too: not ours to eat
                    raise

    async def _run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.period_s)


class PolledStatus:
    """Mixin for a device with a ``status_poller``: health is polled while the device is staged.

    Put it before ``StandardReadable`` in the bases."""

    status_poller: StatusPoller

    @AsyncStatus.wrap
    async def stage(self) -> None:
        await super().stage()
        await self.status_poller.poll_once()  # real values before any suspender looks
        self.status_poller.start()

    @AsyncStatus.wrap
    async def unstage(self) -> None:
        await self.status_poller.stop()
        await super().unstage()
