"""The operando plan: one electrochemical sequence, detectors acquiring on their own schedules.

Everything lands in one run: the potentiostat's samples in stream ``echem`` (HDF5 fast path,
announced every ``flush_period_s`` of wall time), and each detector's frames in its own stream,
each frame stamped with the echem state at its exposure midpoint (``devices/frame_stamp.py``).
Echem never waits for a detector: while a frame is in flight (a 20 s exposure, a map of
minutes) its rows are announced every ``flush_period_s`` all the same; the cell is held only when
a rule asks for a hold. Impedance spectra (PEIS/GEIS steps) go to stream ``impedance``, one event
per frequency (``devices/impedance_record.py``). While the RunEngine is paused or suspended no
document can be emitted: the device keeps writing and fsync'ing its HDF5 file (every 0.5 s), and
crash recovery announces whatever the file holds beyond the last StreamDatum.

Pause (RunEngine ``request_pause``): the potentiostat is held at open circuit (still measured),
detectors stop after their current frame; ``resume`` continues the sequence where it stopped.
The RunEngine records pauses and suspensions in the ``interruptions`` stream. Abort or any error:
the cell goes to open circuit, every sample up to then is stored, and the run closes with the
reason.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
from bluesky.utils import FailedStatus

from operando.devices.clock import Clock
from operando.devices.frame_stamp import FrameFailure, FrameStamp, TimebaseRecord
from operando.devices.impedance_record import ImpedancePoint
from operando.devices.skpm import SkpmLineRecord
from operando.devices.techniques import ScheduledStep

from .schedules import EveryTime, Rule, ScheduleEvaluator, describe

log = logging.getLogger(__name__)

ECHEM_STREAM = "echem"
POLL_WALL_S = 0.02  # how often the plan looks at new echem samples for state-based rules


@dataclass(frozen=True)
class DetectorSchedule:
    """Acquire ``device`` into stream ``stream`` whenever one of ``rules`` fires."""

    device: object
    rules: tuple[Rule, ...]
    stream: str

    def __post_init__(self):
        if not self.rules:
            raise ValueError(f"detector {self.stream}: a schedule needs at least one rule")

    @classmethod
    def every(cls, device, period_s: float, stream: str) -> DetectorSchedule:
        return cls(device, (EveryTime(every_s=period_s),), stream)


@dataclass
class Progress:
    elapsed_s: float  # experiment time since the sequence started
    cycle: int
    step: int
    total_steps: int
    samples: int
    frames: dict[str, int] = field(default_factory=dict)
    held: bool = False


def operando_cycling(
    potentiostat,
    steps: Sequence[ScheduledStep],
    detectors: Sequence[DetectorSchedule],
    clock: Clock,
    *,
    capacity_mAh: float | None = None,
    flush_period_s: float = 0.5,
    md: dict | None = None,
    progress: Callable[[Progress], None] | None = None,
    suspenders: Sequence = (),
):
    """Run ``steps`` on ``potentiostat`` while each detector acquires on its schedule.

    ``suspenders`` (bluesky suspenders, e.g. from ``plans/suspenders.py``) are installed once
    the devices are staged — their health signals hold real values by then — and removed at the
    end of the run.
    """
    streams = [d.stream for d in detectors]
    if len(set(streams)) != len(streams) or ECHEM_STREAM in streams:
        raise ValueError(f"detector stream names must be unique and not {ECHEM_STREAM!r}: {streams}")
    # Limits are checked here, before the run opens or the cell is touched (and again by prepare).
    potentiostat.check(steps)
    for d in detectors:  # fail now, not mid-run, on a schedule that cannot be evaluated
        ScheduleEvaluator(list(d.rules), 0.0, capacity_mAh)
    yield from bps.prepare(potentiostat, list(steps), wait=True)
    stamp = FrameStamp(name="frame")
    failure = FrameFailure(name="failure")
    timebase = TimebaseRecord(name="timebase")
    impedance = ImpedancePoint(name="impedance")
    # detectors that report lines as they scan (SKPM): each line stored at once, in <stream>_lines
    line_records = {
        d.stream: SkpmLineRecord(name=f"{d.stream}_line") for d in detectors if hasattr(d.device, "drain_lines")
    }
    helpers = [stamp, failure, timebase, impedance, *line_records.values()]
    yield from bps.wait_for([h.connect for h in helpers])

    run_md = {
        "plan_name": "operando_cycling",
        "detectors": [getattr(d.device, "name", str(d.device)) for d in detectors],
        "schedules": {d.stream: describe(list(d.rules)) for d in detectors},
        "echem_stream": ECHEM_STREAM,
        "total_steps": len(steps),
        "total_cycles": max((s.cycle for s in steps), default=0),
        "clock_speed": clock.speed,
        "capacity_mAh": capacity_mAh,
        **(md or {}),
    }
    devices = [potentiostat, *[d.device for d in detectors]]

    def on_error(exc):
        # Cell to open circuit first, then announce every sample measured up to the stop, so
        # the stored run ends exactly where the cell stopped.
        cause = instrument_error(exc)
        reason = f"run ended early: {type(cause).__name__}: {cause}"
        yield from bps.wait_for([lambda: potentiostat.open_circuit(reason)])
        if declared:  # an error before the stream existed: nothing was measured to announce
            yield from bps.collect(potentiostat, name=ECHEM_STREAM)
            yield from _impedance_rows(potentiostat, impedance)
        if cause is not exc:
            raise cause from exc  # the stop reason names the instrument's error

    @bpp.stage_decorator(devices)
    @bpp.run_decorator(md=run_md)
    def inner():
        guarded = bpp.suspend_wrapper(body(), list(suspenders)) if suspenders else body()
        return (yield from bpp.contingency_wrapper(guarded, except_plan=on_error))

    def flush():
        yield from bps.collect(potentiostat, name=ECHEM_STREAM)
        yield from _impedance_rows(potentiostat, impedance)

    def frame(d: DetectorSchedule, fired, evaluator):
        lines = line_records.get(d.stream)
        extras = (potentiostat, stamp, capacity_mAh, failure, clock, flush, flush_period_s, lines)
        return (yield from _frame(d, fired, evaluator, *extras))

    declared = []

    def body():
        yield from bps.declare_stream(potentiostat, name=ECHEM_STREAM, collect=True)
        declared.append(ECHEM_STREAM)
        yield from bps.kickoff(potentiostat, wait=True)
        # At once, before any frame or pause: the StreamResources name the HDF5 file in the
        # journal, so recovery can read every row the device writes to it from now on.
        yield from bps.collect(potentiostat, name=ECHEM_STREAM)
        started = clock.time()
        evaluators = {d.stream: ScheduleEvaluator(list(d.rules), started, capacity_mAh) for d in detectors}
        frames = {d.stream: 0 for d in detectors}
        seen = 0  # echem samples already shown to the schedules
        last_collect = time.monotonic()
        done = False
        while not done:
            yield from bps.checkpoint()  # pause/resume rewinds to here, never mid-frame
            seen, new = potentiostat.history.since(seen)
            now = clock.time()
            for d in detectors:
                fired = evaluators[d.stream].update(new, now)
                if fired:
                    frames[d.stream] += yield from frame(d, fired, evaluators[d.stream])
            if time.monotonic() - last_collect >= flush_period_s:
                yield from bps.collect(potentiostat, name=ECHEM_STREAM)
                yield from _impedance_rows(potentiostat, impedance)
                last_collect = time.monotonic()
            next_due = min((e.next_due for e in evaluators.values()), default=float("inf"))
            wait_s = min(POLL_WALL_S * clock.speed, next_due - clock.time())
            if wait_s > 0:  # a frame already due goes next, without a round trip
                # On the experiment clock, so a virtual clock moves exactly to the next frame
                # (no frame skipped however fast it runs). Not a complete() status: one held
                # across a pause would be cancelled by the RunEngine.
                yield from bps.wait_for([lambda wait_s=wait_s: potentiostat.wait_done_or_sleep(clock, wait_s)])
            done = not potentiostat.running
            if progress is not None:
                yield from _report(progress, potentiostat, clock.time() - started, len(steps), frames)
        # The sequence is over: frames the end of the last step or cycle asked for.
        seen, new = potentiostat.history.since(seen)
        for d in detectors:
            ev = evaluators[d.stream]
            # now=-inf: the last samples may still cross a threshold; no time rule fires any more.
            fired = sorted(set(ev.update(new, float("-inf"))) | set(ev.finish()))
            if fired:
                yield from frame(d, fired, ev)
        yield from bps.collect(potentiostat, name=ECHEM_STREAM)
        yield from _impedance_rows(potentiostat, impedance)
        yield from bps.complete(potentiostat, wait=True)  # raises if the sequence ended in a fault
        timebase.record(potentiostat.timebase.as_dict(), potentiostat.timebase_source)
        yield from bps.create(name="timebase")
        yield from bps.read(timebase)
        yield from bps.save()

    return (yield from inner())


def instrument_error(exc: Exception) -> Exception:
    """What failed: a device's own error rather than bluesky's FailedStatus around it, whose text
    (a status object's repr) would otherwise become the stop document's reason."""
    return exc.__cause__ if isinstance(exc, FailedStatus) and isinstance(exc.__cause__, Exception) else exc


def _impedance_rows(potentiostat, impedance: ImpedancePoint, stream: str = "impedance"):
    """One event in the ``impedance`` stream per frequency measured since the last call."""
    rows = potentiostat.drain_impedance()
    for i in range(len(rows["frequency"])):
        impedance.record({key: column[i] for key, column in rows.items()})
        yield from bps.create(name=stream)
        yield from bps.read(impedance)
        yield from bps.save()


def _trigger_collecting_echem(device, flush, flush_period_s: float, lines=None):
    """Trigger ``device`` and, while its frame is in flight, announce the echem rows (and impedance
    rows: the plan ``flush()``, and a mapping detector's finished lines) measured meanwhile every
    ``flush_period_s`` of wall time: a 20 s exposure or an SKPM map of minutes never holds the electrochemistry — or the
    lines already scanned — back from the journal and the catalog. Raises ``FailedStatus`` as
    ``trigger(wait=True)`` would."""
    group = f"frame-{uuid.uuid4().hex}"
    status = yield from bps.trigger(device, group=group)
    while not status.done:
        yield from bps.wait_for([lambda: _done_within(status, flush_period_s)])
        if status.done:  # ended within the period: the run's own loop announces on its period
            break
        yield from flush()
        yield from _line_rows(device, lines)
    try:
        yield from bps.wait(group=group)
    except FailedStatus:
        yield from _line_rows(device, lines)  # the lines a failed frame got to scan
        raise
    yield from _line_rows(device, lines)  # the frame's last lines


def _line_rows(device, record: SkpmLineRecord | None):
    """One event in the ``<stream>_lines`` stream per line the device finished since the last call."""
    if record is None:
        return
    for line in device.drain_lines():
        record.record(line)
        yield from bps.create(name=record.name + "s")
        yield from bps.read(record)
        yield from bps.save()


async def _done_within(status, seconds: float) -> None:
    """Return when ``status`` is done or after ``seconds`` (wall), whichever comes first."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    status.add_callback(lambda _s: loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None)))
    try:
        await asyncio.wait_for(done, seconds)
    except TimeoutError:
        pass


def _frame(
    d: DetectorSchedule,
    fired,
    evaluator,
    potentiostat,
    stamp,
    capacity_mAh,
    failure,
    clock,
    flush,
    flush_period_s,
    lines: SkpmLineRecord | None = None,
    stream: str | None = None,
    also_read: Sequence = (),
):
    """One detector frame, stamped with the echem state at its exposure midpoint.

    A detector that fails (disconnected, timed out) costs its frame, not the run: the failure
    is recorded in the ``frame_failures`` stream and cycling goes on. Returns 1 if a frame was
    stored, else 0. ``stream``: where the frame goes (default the schedule's own stream);
    ``also_read``: devices read into the frame's event too (a shared detector's cell changer).
    """
    stream = stream or d.stream
    hold = evaluator.hold_for(fired) == "ocv"
    why = f"{stream} acquisition"
    if hold:
        yield from bps.wait_for([lambda: potentiostat.hold(why)])
    try:
        yield from _trigger_collecting_echem(d.device, flush, flush_period_s, lines)
    except FailedStatus as exc:  # the detector's own error; never a RunEngine abort/stop
        cause = exc.__cause__ or exc
        log.warning("%s: frame failed: %s", stream, cause)
        failure.record(stream, cause, clock.time())
        yield from bps.create(name="frame_failures")
        yield from bps.read(failure)
        yield from bps.save()
        return 0
    finally:
        if hold:
            yield from bps.wait_for([lambda: potentiostat.release(why)])
    # One read of the device gives the frame and its exposure window (no extra round trips).
    yield from bps.create(name=stream)
    reading = yield from bps.read(d.device)
    while not reading:
        # A suspension while the read was in flight: the RunEngine replays the bundle's
        # messages itself and answers this one with None; ask the signals directly.
        reading = yield from _exposure_values(d.device)
    start, end = _value(reading, "exposure_start"), _value(reading, "exposure_end")
    midpoint = 0.5 * (start + end)
    edge = _value(reading, "trigger_instrument_time")
    mid_instrument = None
    if edge is not None and math.isfinite(edge):
        # Hardware-triggered: the exposure began at the potentiostat's own trigger edge, an
        # instant of the echem record itself; its state is looked up there, and its place on
        # the experiment clock comes through the same mapping as the echem samples.
        mid_instrument = edge + 0.5 * (end - start) / (1.0 + potentiostat.timebase.drift)
        midpoint = float(potentiostat.timebase.to_host(mid_instrument))
    # The frame's state is interpolated from samples on both sides of its midpoint.
    if not potentiostat.has_samples_until(midpoint):
        yield from bps.wait_for([lambda: potentiostat.wait_for_samples_until(midpoint)])
    reason = ", ".join(_rule_text(evaluator.rules[i]) for i in fired)
    stamp.stamp(potentiostat.state_at(midpoint, mid_instrument), midpoint, reason, capacity_mAh)
    yield from bps.read(stamp)
    for device in also_read:
        yield from bps.read(device)
    yield from bps.save()
    return 1


def _exposure_values(device):
    names = [n for n in ("exposure_start", "exposure_end", "trigger_instrument_time") if hasattr(device, n)]
    tasks = yield from bps.wait_for([getattr(device, n).get_value for n in names])
    if not tasks:
        return None
    return {f"{device.name}-{n}": {"value": t.result()} for n, t in zip(names, tasks)}


def _value(reading: dict, suffix: str):
    """The value of the reading key ending in ``-suffix`` (device-name prefix), or None."""
    for key, r in reading.items():
        if key.endswith("-" + suffix):
            return r["value"]
    return None


def _rule_text(rule: Rule) -> str:
    return " ".join(f"{k}={v}" for k, v in rule.model_dump(exclude_defaults=True).items()) or "rule"


def _report(progress, potentiostat, elapsed, total_steps, frames):
    cycle = yield from bps.rd(potentiostat.cycle)
    step = yield from bps.rd(potentiostat.step)
    samples = yield from bps.rd(potentiostat.samples)
    progress(
        Progress(
            elapsed, int(cycle or 0), int(step or 0), total_steps, int(samples or 0), dict(frames), potentiostat.held
        )
    )


def galvanostatic_cycling(potentiostat, steps: Sequence[ScheduledStep], clock: Clock, **kwargs):
    """Cycling alone: the operando plan with no detectors."""
    kwargs.setdefault("md", {})
    kwargs["md"] = {"plan_name": "galvanostatic_cycling", **kwargs["md"]}
    return (yield from operando_cycling(potentiostat, steps, [], clock, **kwargs))
