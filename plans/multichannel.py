"""Several cells in one run: every cell cycles on its own potentiostat channel, and detectors are
shared between the cells, on one clock.

Streams: each cell's samples in ``echem_<cell>`` (and ``impedance_<cell>``); a shared detector's
frames of a cell in ``<detector>_<cell>``, stamped with *that* cell's echem state, with the cell
changer's reading (which cell the probe was at, how long it took to get there). At the end,
``channel_outcomes`` holds one event per cell: how it ended and why.

Per-cell safety: an excursion, fault or lost channel opens that channel only (its device does it)
and the others go on; the run's stop document says which cells ended early and why (exit status
"fail" if any did). An abort or error of the run itself opens every channel.

Shared detectors, the stated rule: each (detector, cell) pair has its own schedule; frames that
are due together are taken one after another, in the order of the cells in the profile (then of
the detectors); a detector serves one cell at a time, so a frame due while it is busy is taken as
soon as it is free, late rather than dropped (its stamp is the moment it was taken) — even when
the cell's sequence ended meanwhile, if the frame fell due while it still cycled. Before a
frame, the detector's changer brings the probe to the cell (a stage move, counted on the clock).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import FailedStatus, RunEngineControlException

from operando.devices.channel_outcome import ChannelOutcome
from operando.devices.clock import Clock
from operando.devices.frame_stamp import FrameFailure, FrameStamp, TimebaseRecord
from operando.devices.impedance_record import ImpedancePoint
from operando.devices.skpm import SkpmLineRecord
from operando.devices.techniques import ScheduledStep

from .operando import POLL_WALL_S, DetectorSchedule, Progress, _frame, _impedance_rows, instrument_error
from .schedules import Rule, ScheduleEvaluator, describe

OUTCOMES_STREAM = "channel_outcomes"


def echem_stream(cell: str) -> str:
    return f"echem_{cell}"


@dataclass(frozen=True)
class Channel:
    """One cell: its potentiostat channel (a Potentiostat device named as the cell) and steps."""

    name: str
    potentiostat: object
    steps: tuple[ScheduledStep, ...]
    capacity_mAh: float | None = None

    @property
    def stream(self) -> str:
        return echem_stream(self.name)


@dataclass(frozen=True)
class SharedDetector:
    """A detector serving several cells: ``rules[cell]`` is that cell's schedule (a cell not in it
    is never measured by this detector); ``changer`` brings the probe to a cell (``set(cell)``)."""

    device: object
    name: str
    rules: dict[str, tuple[Rule, ...]]
    changer: object = None

    def stream(self, cell: str) -> str:
        return f"{self.name}_{cell}"


@dataclass
class ChannelProgress:
    cycle: int
    step: int
    total_steps: int
    samples: int
    status: str  # running | completed | fault | stopped
    frames: dict[str, int] = field(default_factory=dict)


@dataclass
class MultiProgress(Progress):
    """A one-cell ``Progress`` summing the cells up (furthest cycle and step, samples and frames
    added), so every display of a run works unchanged, plus each cell's own in ``channels``."""

    channels: dict[str, ChannelProgress] = field(default_factory=dict)


def multichannel_cycling(
    channels: Sequence[Channel],
    detectors: Sequence[SharedDetector],
    clock: Clock,
    *,
    flush_period_s: float = 0.5,
    md: dict | None = None,
    progress: Callable[[MultiProgress], None] | None = None,
    suspenders: Sequence = (),
):
    """Run every channel's steps at once while the shared detectors take their frames."""
    names = [c.name for c in channels]
    if len(set(names)) != len(names) or not names:
        raise ValueError(f"cells must be at least one, with distinct names: {names}")
    by_name = {c.name: c for c in channels}
    for c in channels:  # limits, before the run opens or any cell is touched
        c.potentiostat.check(c.steps)
    for d in detectors:
        for cell, rules in d.rules.items():
            if cell not in by_name:
                raise ValueError(f"{d.name}: a schedule for {cell!r}, which is not a cell of this run")
            ScheduleEvaluator(list(rules), 0.0, by_name[cell].capacity_mAh)
    for c in channels:
        yield from bps.prepare(c.potentiostat, list(c.steps), wait=True)
    stamp, failure, outcome = FrameStamp(name="frame"), FrameFailure(name="failure"), ChannelOutcome(name="outcome")
    timebase, impedance = TimebaseRecord(name="timebase"), ImpedancePoint(name="impedance")
    line_records = {
        (d.name, cell): SkpmLineRecord(name=f"{d.stream(cell)}_line")
        for d in detectors
        if hasattr(d.device, "drain_lines")
        for cell in d.rules
    }
    helpers = [stamp, failure, outcome, timebase, impedance, *line_records.values()]
    yield from bps.wait_for([h.connect for h in helpers])
    run_md = {
        "plan_name": "multichannel_cycling",
        "detectors": [getattr(d.device, "name", d.name) for d in detectors],
        "schedules": {d.stream(cell): describe(list(r)) for d in detectors for cell, r in d.rules.items()},
        "echem_stream": channels[0].stream,  # the first cell's, for readers of one-cell runs
        "echem_streams": {c.name: c.stream for c in channels},
        "total_steps": max(len(c.steps) for c in channels),
        "total_cycles": max((s.cycle for c in channels for s in c.steps), default=0),
        "clock_speed": clock.speed,
        "capacity_mAh": channels[0].capacity_mAh,
        **(md or {}),
    }
    pots = [c.potentiostat for c in channels]
    devices = [*pots, *[d.device for d in detectors]]

    def flush(only=None):
        for c in channels if only is None else only:
            yield from bps.collect(c.potentiostat, name=c.stream)
            yield from _impedance_rows(c.potentiostat, impedance, f"impedance_{c.name}")

    def on_error(exc):
        cause = instrument_error(exc)
        reason = f"run ended early: {type(cause).__name__}: {cause}"
        yield from bps.wait_for([lambda p=p: p.open_circuit(reason) for p in pots])
        yield from flush([c for c in channels if c.stream in declared])  # none before they exist
        if cause is not exc:
            raise cause from exc  # the stop reason names the instrument's error

    def frame(d: SharedDetector, cell: str, fired, evaluator, frames):
        c = by_name[cell]
        if d.changer is not None:
            try:
                yield from bps.mv(d.changer, cell)
            except FailedStatus as exc:  # a stage that fails costs this frame, not the run
                failure.record(d.stream(cell), exc.__cause__ or exc, clock.time())
                yield from bps.create(name="frame_failures")
                yield from bps.read(failure)
                yield from bps.save()
                return
        schedule = DetectorSchedule(d.device, d.rules[cell], d.name)
        lines = line_records.get((d.name, cell))
        also = (d.changer,) if d.changer is not None else ()
        extras = (c.potentiostat, stamp, c.capacity_mAh, failure, clock, flush, flush_period_s, lines)
        frames[cell][d.name] += yield from _frame(
            schedule, fired, evaluator, *extras, stream=d.stream(cell), also_read=also
        )

    declared = set()

    def body():
        for c in channels:
            yield from bps.declare_stream(c.potentiostat, name=c.stream, collect=True)
            declared.add(c.stream)
        for c in channels:
            yield from bps.kickoff(c.potentiostat, wait=True)
        yield from flush()  # at once: the StreamResources name each cell's HDF5 file in the journal
        started = clock.time()
        evaluators = {
            (d.name, cell): ScheduleEvaluator(list(rules), started, by_name[cell].capacity_mAh)
            for d in detectors
            for cell, rules in d.rules.items()
        }
        frames = {c.name: {d.name: 0 for d in detectors if c.name in d.rules} for c in channels}
        seen = dict.fromkeys(names, 0)
        finished: dict[str, tuple[str, str]] = {}
        last_collect = time.monotonic()
        while len(finished) < len(channels):
            yield from bps.checkpoint()
            now = clock.time()
            for c in channels:
                if c.name in finished:
                    continue
                seen[c.name], new = c.potentiostat.history.since(seen[c.name])
                ended = not c.potentiostat.running
                for d in detectors:
                    ev = evaluators.get((d.name, c.name))
                    if ev is None:
                        continue
                    # An ended cell's time rules fire only for slots due while it still cycled
                    # (a frame late because the detector was busy is taken, not dropped).
                    last = c.potentiostat.history.last_time
                    fired = ev.update(new, (last if last is not None else now) if ended else now)
                    if ended:
                        fired = sorted(set(fired) | set(ev.finish()))
                    if fired:
                        yield from frame(d, c.name, fired, ev, frames)
                if ended:  # this cell's sequence is over (completed, or its channel opened)
                    yield from flush([c])
                    finished[c.name] = c.potentiostat.outcome()
            if time.monotonic() - last_collect >= flush_period_s:
                yield from flush([c for c in channels if c.name not in finished])
                last_collect = time.monotonic()
                if progress is not None:  # on the flush period: 16 cells are 16 rows to build
                    progress(_progress(channels, finished, frames, clock.time() - started))
            running = [c.potentiostat for c in channels if c.name not in finished]
            due = [ev.next_due for (_d, cell), ev in evaluators.items() if cell not in finished]
            wait_s = min(POLL_WALL_S * clock.speed, min(due, default=float("inf")) - clock.time())
            if running and wait_s > 0:
                yield from bps.wait_for([lambda w=wait_s, r=running: _any_done_or_sleep(r, clock, w)])
        if progress is not None:
            progress(_progress(channels, finished, frames, clock.time() - started))
        for c in channels:
            status, reason = finished[c.name]
            outcome.record(c.name, status, reason, *c.potentiostat.position)
            yield from bps.create(name=OUTCOMES_STREAM)
            yield from bps.read(outcome)
            yield from bps.save()
            timebase.record(c.potentiostat.timebase.as_dict(), c.potentiostat.timebase_source)
            yield from bps.create(name=f"timebase_{c.name}")
            yield from bps.read(timebase)
            yield from bps.save()
        return run_exit(finished)

    @bpp.stage_decorator(devices)
    def inner():
        return (yield from _run_closed_with_outcome(body, run_md, on_error, suspenders))

    return (yield from inner())


def run_exit(finished: dict[str, tuple[str, str]]) -> tuple[str, str]:
    """The stop document's (exit_status, reason): success when every cell completed; else "fail",
    naming each cell that did not and why."""
    early = {cell: (status, why) for cell, (status, why) in finished.items() if status != "completed"}
    if not early:
        return "success", f"all {len(finished)} cells completed"
    done = len(finished) - len(early)
    parts = [f"{cell}: {status}: {why}" for cell, (status, why) in early.items()]
    return "fail", f"{len(early)} of {len(finished)} cells ended early ({'; '.join(parts)}); {done} completed"


def _run_closed_with_outcome(body, md, on_error, suspenders):
    """open_run ... close_run, the stop document saying how the cells ended (``body`` returns
    ``(exit_status, reason)``); on an error or an abort, ``on_error`` first, as bluesky's
    run_wrapper would close it otherwise."""
    yield from bps.open_run(md)

    def except_plan(exc):
        yield from on_error(exc)
        if isinstance(exc, RunEngineControlException):
            yield from bps.close_run(exit_status=exc.exit_status)
        else:
            yield from bps.close_run(exit_status="fail", reason=str(exc))

    guarded = bpp.suspend_wrapper(body(), list(suspenders)) if suspenders else body()
    exit_status, reason = yield from bpp.contingency_wrapper(guarded, except_plan=except_plan)
    yield from bps.close_run(exit_status=exit_status, reason=reason)
    return exit_status, reason


async def _any_done_or_sleep(potentiostats, clock: Clock, seconds: float) -> None:
    """Wait ``seconds`` of experiment time, or less if any channel's sequence ends first."""
    sleeper = asyncio.ensure_future(clock.sleep(seconds))
    enders = [asyncio.ensure_future(p.wait_done(float("inf"))) for p in potentiostats]
    try:
        await asyncio.wait({sleeper, *enders}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (sleeper, *enders):
            t.cancel()


def _progress(channels, finished, frames, elapsed) -> MultiProgress:
    out = {}
    for c in channels:
        samples, step, cycle = c.potentiostat.position
        status = finished.get(c.name, ("running", ""))[0]
        out[c.name] = ChannelProgress(cycle, step, len(c.steps), samples, status, dict(frames[c.name]))
    totals: dict[str, int] = {}
    for each in out.values():
        for detector, n in each.frames.items():
            totals[detector] = totals.get(detector, 0) + n
    return MultiProgress(
        elapsed,
        max(c.cycle for c in out.values()),
        max(c.step for c in out.values()),
        max(c.total_steps for c in out.values()),
        sum(c.samples for c in out.values()),
        totals,
        any(c.potentiostat.held for c in channels),
        channels=out,
    )
