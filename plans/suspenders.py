"""Suspend acquisition while an instrument is not fit to measure; resume when it is again.

Built on bluesky's own suspenders (``SuspendWhenOutsideBand``, ``SuspendBoolLow``), fed by the
instruments' health signals (``devices/status.py``). Profile YAML, top level::

    suspenders:
      - {watch: magnetometer.temperature, outside: [295, 305], echem: continue, settle_s: 60}
      - {watch: magnetometer.field_stable, when: false, echem: continue}
      - {watch: raman.interlock_closed, when: false, echem: hold}
      - {watch: raman.connected, when: false, echem: hold, limit_s: 3600}

While suspended no detector acquires. ``echem: hold`` puts the cell at open circuit (still
measured) and freezes the sequence until the suspension clears; ``continue`` lets cycling go on
(its samples are stored when the run resumes). ``settle_s`` (experiment time) is waited after the
condition clears. ``limit_s`` (experiment time; default: none) ends the run when one suspension
has lasted that long — cell to open circuit, every sample stored, the reason naming the rule —
rather than waiting for an instrument that may never answer again. Suspensions are recorded in
the run's ``interruptions`` stream.
"""

from __future__ import annotations

import asyncio
from typing import Literal, Optional

from bluesky.run_engine import call_in_bluesky_event_loop
from bluesky.suspenders import SuspendBoolLow, SuspendWhenOutsideBand
from pydantic import BaseModel, ConfigDict, Field, model_validator


class SuspenderRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    watch: str = Field(pattern=r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")  # instrument.signal
    outside: Optional[tuple[float, float]] = None  # suspend when the value leaves [low, high]
    when: Optional[bool] = None  # suspend when the (boolean) value equals this
    echem: Literal["hold", "continue"] = "hold"
    settle_s: float = Field(default=0.0, ge=0)
    limit_s: Optional[float] = Field(default=None, gt=0)  # end the run if suspended this long

    @model_validator(mode="after")
    def _one_condition(self):
        if (self.outside is None) == (self.when is None):
            raise ValueError("give exactly one condition: outside: [low, high] or when: true/false")
        if self.when is True:
            raise ValueError("only `when: false` is supported (suspend while a flag is false)")
        if self.outside is not None and not self.outside[0] < self.outside[1]:
            raise ValueError(f"outside: low must be below high (got {list(self.outside)})")
        return self

    @property
    def instrument(self) -> str:
        return self.watch.split(".")[0]

    @property
    def signal(self) -> str:
        return self.watch.split(".")[1]


class SuspensionLimitExceeded(RuntimeError):
    """A suspension outlasted its rule's ``limit_s``; the run ends with this as its reason."""


class OphydStyleSignal:
    """What bluesky's suspenders expect of a signal (ophyd's subscribe/clear_sub), over an
    ophyd-async signal. Callbacks run in the RunEngine's event loop, as suspenders require."""

    def __init__(self, signal):
        self._signal = signal
        self._callbacks = {}
        self._value = None
        self.name = signal.name

    def get(self):
        """The last value seen (suspenders quote it in their justification)."""
        return self._value

    def subscribe(self, callback, event_type=None, run=True):
        def on_reading(readings):
            self._value = next(iter(readings.values()))["value"]
            callback(value=self._value)

        self._callbacks[callback] = on_reading
        _in_bluesky_loop(lambda: self._signal.subscribe_reading(on_reading))

    def clear_sub(self, callback):
        on_reading = self._callbacks.pop(callback, None)
        if on_reading is not None:
            _in_bluesky_loop(lambda: self._signal.clear_sub(on_reading))


def _in_bluesky_loop(action) -> None:
    """ophyd-async subscriptions need the event loop; install_suspender runs in the user's thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:

        async def run():
            action()

        call_in_bluesky_event_loop(run())
    else:
        action()


def build_suspender(rule: SuspenderRule, devices: dict, potentiostat, clock):
    """A bluesky suspender for ``rule``; ``devices`` maps instrument names to devices."""
    device = devices.get(rule.instrument)
    if device is None:
        raise ValueError(
            f"suspender {rule.watch}: no instrument named {rule.instrument!r} (have {', '.join(sorted(devices))})"
        )
    signal = getattr(device, rule.signal, None)
    if signal is None or not hasattr(signal, "subscribe_reading"):
        raise ValueError(f"suspender {rule.watch}: {rule.instrument} has no signal {rule.signal!r}")
    base = SuspendWhenOutsideBand if rule.outside is not None else SuspendBoolLow

    class _Suspender(base):
        _limit_task = None

        def _should_suspend(self, value):
            trip = super()._should_suspend(value)
            if trip and not self.tripped:
                if rule.echem == "continue":
                    potentiostat.let_next_pause_pass()  # this suspension leaves the cell cycling
                if rule.limit_s is not None:
                    _in_bluesky_loop(self._start_limit)
            return trip

        def _should_resume(self, value):
            resume = super()._should_resume(value)
            if resume:
                self._stop_limit()
            return resume

        def remove(self):
            self._stop_limit()
            super().remove()

        def _stop_limit(self):
            if self._limit_task is not None:
                self._limit_task.cancel()
                self._limit_task = None

        def _start_limit(self):
            self._limit_task = asyncio.ensure_future(self._end_run_after_limit())

        async def _end_run_after_limit(self):
            await clock.sleep(rule.limit_s)
            with self._lock:
                RE, released = self.RE, self._ev
                if not self.tripped or RE is None:
                    return
            error = SuspensionLimitExceeded(
                f"{rule.instrument}: {rule.watch} {_condition(rule)} for {rule.limit_s:g} s, the rule's limit_s"
            )
            # bluesky's way in for an outside failure: the RunEngine throws _exception into the plan
            # at its next message (the suspension's wait, released here), so the plan's error
            # handler stores every sample and leaves the cell at open circuit.
            with RE._state_lock:
                RE._exception = error
            if released is not None:
                released.set()

    kwargs = {"sleep": clock.wall_seconds(rule.settle_s), "tripped_message": f"{rule.watch} {_condition(rule)}"}
    if rule.outside is not None:
        return _Suspender(OphydStyleSignal(signal), *rule.outside, **kwargs)
    return _Suspender(OphydStyleSignal(signal), **kwargs)


def _condition(rule: SuspenderRule) -> str:
    if rule.outside is not None:
        return f"outside [{rule.outside[0]:g}, {rule.outside[1]:g}]"
    return "is false"
