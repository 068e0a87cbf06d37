"""The operando plan: one electrochemical sequence, detectors acquiring on their own cadences.

Everything lands in one run: the potentiostat's samples in stream ``echem`` (HDF5 fast path,
collected every ``flush_period_s`` of wall time so at most that much is ever unwritten), and each
detector's readings in its own stream. The echem stream never waits for a detector: the
potentiostat acquires in its own task while detectors are triggered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import short_uid

from operando.devices.clock import Clock
from operando.devices.techniques import ScheduledStep

ECHEM_STREAM = "echem"


@dataclass(frozen=True)
class DetectorSchedule:
    """Acquire ``device`` every ``period_s`` of experiment time into stream ``stream``."""

    device: object
    period_s: float
    stream: str

    def __post_init__(self):
        if not self.period_s > 0:
            raise ValueError(f"detector {self.stream}: period_s must be > 0 (got {self.period_s})")


@dataclass
class Progress:
    elapsed_s: float  # experiment time since the sequence started
    cycle: int
    step: int
    total_steps: int
    samples: int
    frames: dict[str, int]


def operando_cycling(
    potentiostat,
    steps: Sequence[ScheduledStep],
    detectors: Sequence[DetectorSchedule],
    clock: Clock,
    *,
    flush_period_s: float = 0.5,
    md: dict | None = None,
    progress: Callable[[Progress], None] | None = None,
):
    """Run ``steps`` on ``potentiostat`` while each detector acquires on its schedule."""
    streams = [d.stream for d in detectors]
    if len(set(streams)) != len(streams) or ECHEM_STREAM in streams:
        raise ValueError(f"detector stream names must be unique and not {ECHEM_STREAM!r}: {streams}")
    # Limits are checked here, before the run opens or the cell is touched (and again by prepare).
    potentiostat.check(steps)
    yield from bps.prepare(potentiostat, list(steps), wait=True)

    run_md = {
        "plan_name": "operando_cycling",
        "detectors": [getattr(d.device, "name", str(d.device)) for d in detectors],
        "schedules": {d.stream: {"period_s": d.period_s} for d in detectors},
        "echem_stream": ECHEM_STREAM,
        "total_steps": len(steps),
        "total_cycles": max((s.cycle for s in steps), default=0),
        "clock_speed": clock.speed,
        **(md or {}),
    }
    devices = [potentiostat, *[d.device for d in detectors]]

    def on_error(exc):
        # Cell to open circuit first, then announce every sample measured up to the stop, so
        # the stored run ends exactly where the cell stopped.
        reason = f"run ended early: {type(exc).__name__}: {exc}"
        yield from bps.wait_for([lambda: potentiostat.open_circuit(reason)])
        yield from bps.collect(potentiostat, name=ECHEM_STREAM)

    @bpp.stage_decorator(devices)
    @bpp.run_decorator(md=run_md)
    def inner():
        return (yield from bpp.contingency_wrapper(body(), except_plan=on_error))

    def body():
        yield from bps.declare_stream(potentiostat, name=ECHEM_STREAM, collect=True)
        yield from bps.kickoff(potentiostat, wait=True)
        started = clock.time()
        group = short_uid("echem-complete")
        yield from bps.complete(potentiostat, group=group, wait=False)
        due = {d.stream: started for d in detectors}
        frames = {d.stream: 0 for d in detectors}
        done = False
        while not done:
            for d in detectors:
                now = clock.time()
                if now >= due[d.stream]:
                    yield from bps.trigger_and_read([d.device], name=d.stream)
                    frames[d.stream] += 1
                    # Keep the cadence anchored to the start; skip slots a slow frame overran.
                    missed = math.floor((clock.time() - due[d.stream]) / d.period_s)
                    due[d.stream] += (missed + 1) * d.period_s
            yield from bps.collect(potentiostat, name=ECHEM_STREAM)
            next_due = min(due.values(), default=math.inf)
            wait_s = min(flush_period_s, clock.wall_seconds(max(0.0, next_due - clock.time())))
            done = yield from bps.wait(group=group, timeout=max(wait_s, 1e-3), error_on_timeout=False)
            if progress is not None:
                yield from _report(progress, potentiostat, clock.time() - started, len(steps), frames)
        yield from bps.collect(potentiostat, name=ECHEM_STREAM)

    return (yield from inner())


def _report(progress, potentiostat, elapsed, total_steps, frames):
    cycle = yield from bps.rd(potentiostat.cycle)
    step = yield from bps.rd(potentiostat.step)
    samples = yield from bps.rd(potentiostat.samples)
    progress(Progress(elapsed, int(cycle or 0), int(step or 0), total_steps, int(samples or 0), dict(frames)))


def galvanostatic_cycling(potentiostat, steps: Sequence[ScheduledStep], clock: Clock, **kwargs):
    """Cycling alone: the operando plan with no detectors."""
    kwargs.setdefault("md", {})
    kwargs["md"] = {"plan_name": "galvanostatic_cycling", **kwargs["md"]}
    return (yield from operando_cycling(potentiostat, steps, [], clock, **kwargs))
