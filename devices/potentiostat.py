"""Potentiostat device: runs a technique sequence on any backend and streams its samples.

The backend (simulated engine, MethodSCRIPT, Keithley...) executes the whole sequence as firmware
would; this device checks limits before the start, polls the backend in its own task, appends
samples to HDF5 (the fast path) and announces them as stream assets on ``collect``. Any exit —
completion, abort, excursion, fault — leaves the cell at open circuit.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
from ophyd_async.core import (
    AsyncStatus,
    StandardReadable,
    soft_signal_r_and_setter,
)
from ophyd_async.core import StandardReadableFormat as Format

from .clock import Clock, WallClock
from .echem_history import EchemHistory, EchemState, interpolate_state
from .registry import Capability
from .safety import ExcursionWatch, LimitError, check_steps
from .stream_writer import HDF5StreamWriter
from .techniques import ECHEM_COLUMNS, IMPEDANCE_COLUMNS, TECHNIQUE_CODES, Limits, ScheduledStep
from .timebase import TimebaseMapper

# What the device stores: the backend's columns, with ``timestamp`` on the experiment clock, plus
# the instrument's own time of each sample (equal to ``timestamp`` for host-clocked backends), so
# the mapping can be checked or redone later; and the technique of each sample's step (an integer
# code, TECHNIQUE_CODES; the descriptor lists the names as ``choices``).
STREAM_COLUMNS = {**ECHEM_COLUMNS, "instrument_time": ("s", "<f8"), "technique": ("", "<i8")}
FAST_POLL_S = 0.002
# Samples reach the disk (fsync) at least this often (wall), whatever the plan is doing — a long
# frame, a pause, a suspension: recovery after a crash reads them from the file.
SYNC_PERIOD_S = 0.5

log = logging.getLogger(__name__)


class PotentiostatFault(RuntimeError):
    """The run ended early for safety: excursion, instrument fault or lost connection."""


class PotentiostatBackend(Protocol):
    """What a potentiostat must do; one implementation per instrument family.

    ``capabilities`` (``devices/registry.py``) says which of the optional methods it has:
    ``hold``/``release`` with HOLD, ``poll_impedance`` with IMPEDANCE, ``trigger_output`` with
    TRIGGER_OUT. ``techniques`` are the technique kinds ``check`` lets through.
    """

    description: str
    # "host": sample times are already on the experiment clock; "instrument": they come from the
    # instrument's own clock and are mapped (offset and drift estimated from arrival times).
    timebase: str
    capabilities: frozenset[Capability]
    techniques: frozenset[str]

    def check(self, steps: Sequence[ScheduledStep]) -> None:
        """Raise UnsupportedTechnique, naming the instrument and the step, for any step this
        instrument cannot run. Touches nothing."""

    async def start(self, steps: Sequence[ScheduledStep]) -> None: ...

    async def poll(self) -> dict[str, np.ndarray]:
        """Samples measured since the last poll, keyed as ``ECHEM_COLUMNS``."""

    @property
    def done(self) -> bool: ...

    async def open_circuit(self, reason: str) -> None:
        """Stop any technique and disconnect the cell (I = 0). Must be safe to call twice."""

    # With HOLD:
    #   async def hold(self) -> None: open circuit now, keep measuring, freeze the sequence.
    #   async def release(self) -> None: continue the frozen step where it stopped.
    # With IMPEDANCE:
    #   async def poll_impedance(self) -> dict[str, np.ndarray]: PEIS/GEIS rows measured since
    #       the last call, keyed as IMPEDANCE_COLUMNS (timestamps on the backend's timebase).
    # With TRIGGER_OUT:
    #   async def trigger_output(self) -> tuple[float, float]: fire a TTL edge on the next
    #       sample instant; (experiment time, instrument time) of the edge.


class Potentiostat(StandardReadable):
    """Flyable, stream-writing potentiostat. ``prepare(steps)``, ``kickoff()``, ``complete()``."""

    def __init__(
        self,
        backend: PotentiostatBackend,
        limits: Limits,
        files_dir: Callable[[], Path] | Path,
        poll_period_s: float = 0.02,
        name: str = "",
        clock: Clock | None = None,
    ) -> None:
        self._backend = backend
        self._clock = clock or WallClock()
        self.timebase = TimebaseMapper()
        self.limits = limits
        self._files_dir = files_dir
        self._poll_period_s = poll_period_s
        self._steps: list[ScheduledStep] = []
        self._writer: HDF5StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self.stop_reason: str | None = None
        self.history = EchemHistory(columns=STREAM_COLUMNS)
        self._holds: set[str] = set()  # why the cell is held (pause, a long acquisition...)
        self._new_samples = asyncio.Event()
        self._poll_now = asyncio.Event()  # set to poll before the period is up
        self._pass_next_pause = False
        self._watch = ExcursionWatch(limits)
        self._technique_of_step = np.array([-1])
        self._impedance_pending: list[dict[str, np.ndarray]] = []
        self._position = (0, 0, 0)
        with self.add_children_as_readables(Format.HINTED_UNCACHED_SIGNAL):
            self.ewe, self._set_ewe = soft_signal_r_and_setter(float, units="V")
            self.current, self._set_current = soft_signal_r_and_setter(float, units="A")
        with self.add_children_as_readables(Format.UNCACHED_SIGNAL):
            self.cycle, self._set_cycle = soft_signal_r_and_setter(int)
            self.step, self._set_step = soft_signal_r_and_setter(int)
            self.samples, self._set_samples = soft_signal_r_and_setter(int)
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.e_min, _ = soft_signal_r_and_setter(float, limits.e_min_V, units="V")
            self.e_max, _ = soft_signal_r_and_setter(float, limits.e_max_V, units="V")
            self.i_max, _ = soft_signal_r_and_setter(float, limits.i_max_A, units="A")
            self.backend_description, _ = soft_signal_r_and_setter(str, backend.description)
        super().__init__(name=name)

    # -- set-up -----------------------------------------------------------------------------
    def check(self, steps: Sequence[ScheduledStep]) -> None:
        """Raise LimitError if any step leaves this instrument's limits. Touches nothing."""
        check_steps(self.name or "potentiostat", steps, self.limits)
        self._backend.check(steps)

    @AsyncStatus.wrap
    async def prepare(self, steps: Sequence[ScheduledStep]) -> None:
        """Check every step against the limits; refuse the whole sequence before any is run."""
        self.check(steps)
        self._steps = list(steps)
        files_dir = self._files_dir() if callable(self._files_dir) else self._files_dir
        path = Path(files_dir) / f"{self.name or 'potentiostat'}-{uuid.uuid4().hex[:12]}.h5"
        self._writer = HDF5StreamWriter(path, STREAM_COLUMNS, choices={"technique": list(TECHNIQUE_CODES)})

    @property
    def steps(self) -> list[ScheduledStep]:
        return list(self._steps)

    # -- flying -----------------------------------------------------------------------------
    @AsyncStatus.wrap
    async def kickoff(self) -> None:
        if not self._steps or self._writer is None:
            raise LimitError(f"{self.name}: kickoff without prepare(steps)")
        self._writer.open()
        self.stop_reason = None
        self._watch = ExcursionWatch(self.limits)
        self._technique_of_step = np.array(
            [-1] + [TECHNIQUE_CODES[s.technique.kind] for s in sorted(self._steps, key=lambda s: s.step)]
        )
        await self._backend.start(self._steps)
        self._task = asyncio.create_task(self._acquire())

    def complete(self) -> AsyncStatus:
        if self._task is None:
            raise RuntimeError(f"{self.name}: complete() before kickoff()")
        return AsyncStatus(self._wait_task(self._task))

    @staticmethod
    async def _wait_task(task: asyncio.Task) -> None:
        await asyncio.shield(task)

    async def _acquire(self) -> None:
        loop = asyncio.get_running_loop()
        started = last_sync = loop.time()
        try:
            while True:
                await self._poll_and_ingest()
                if loop.time() - last_sync >= SYNC_PERIOD_S:
                    self._writer.sync()
                    last_sync = loop.time()
                if self._backend.done:
                    # One last poll: samples measured between the previous poll and the end.
                    await self._poll_and_ingest()
                    self.stop_reason = self.stop_reason or "completed"
                    break
                self._poll_now.clear()
                # Poll fast for the first half second: an instrument clock's mapping is only as
                # good as its earliest arrivals, and frames are stamped from the start.
                period = self._poll_period_s if loop.time() - started > 0.5 else FAST_POLL_S
                try:
                    await asyncio.wait_for(self._poll_now.wait(), period)
                except TimeoutError:
                    pass
        except asyncio.CancelledError:
            await self._safe_stop("cancelled")
            raise
        except Exception as exc:
            stopped = await self._safe_stop(f"fault: {exc}")
            cell = "the cell was left at open circuit" if stopped else "open circuit FAILED: check the cell at once"
            raise PotentiostatFault(f"{self.name}: {exc}{self._where()}; {cell}") from exc
        finally:
            if self._writer is not None:
                self._writer.sync()

    async def _poll_and_ingest(self) -> None:
        # The arrival time is read before the poll, so our own processing never inflates it.
        arrived = self._clock.time()
        self._ingest(await self._backend.poll(), arrived=arrived)
        await self._poll_impedance()

    async def _poll_impedance(self) -> None:
        if Capability.IMPEDANCE not in self._backend.capabilities:
            return
        rows = await self._backend.poll_impedance()
        if len(rows.get("frequency", ())) == 0:
            return
        rows = {k: np.asarray(rows[k], dtype=IMPEDANCE_COLUMNS[k][1]) for k in IMPEDANCE_COLUMNS}
        if self.timebase_source == "instrument":
            rows["timestamp"] = self.timebase.to_host(rows["timestamp"])
        self._impedance_pending.append(rows)

    def drain_impedance(self) -> dict[str, np.ndarray]:
        """Impedance rows (IMPEDANCE_COLUMNS) measured since the last drain, for the plan to emit."""
        chunks, self._impedance_pending = self._impedance_pending, []
        return {
            k: np.concatenate([c[k] for c in chunks]) if chunks else np.empty(0, dtype)
            for k, (_u, dtype) in IMPEDANCE_COLUMNS.items()
        }

    def _ingest(self, block: dict[str, np.ndarray], check_limits: bool = True, arrived=None) -> None:
        n = len(block.get("Ewe", ()))
        if n == 0:
            return
        block = dict(block)
        block["instrument_time"] = inst = np.asarray(block["timestamp"], dtype=float)
        if self.timebase_source == "instrument":
            self.timebase.observe(float(inst[-1]), self._clock.time() if arrived is None else arrived)
            block["timestamp"] = self.timebase.to_host(inst)
        steps = np.asarray(block["step"], dtype=np.int64)
        codes = self._technique_of_step
        block["technique"] = codes[np.clip(steps, 0, len(codes) - 1)]
        problem = self._watch.feed(inst, block["Ewe"], block["I"]) if check_limits else None
        self._writer.append(block)
        self.history.append(block)
        self._new_samples.set()
        self._set_ewe(float(block["Ewe"][-1]))
        self._set_current(float(block["I"][-1]))
        self._set_cycle(int(block["cycle"][-1]))
        self._set_step(int(block["step"][-1]))
        self._set_samples(self._writer.rows)
        self._position = (self._writer.rows, int(block["step"][-1]), int(block["cycle"][-1]))
        if problem:
            raise PotentiostatFault(problem)

    async def _safe_stop(self, reason: str) -> bool:
        """Open circuit after ``reason``; True when the backend did it."""
        if self.stop_reason is None or self.stop_reason == "completed":
            self.stop_reason = reason
        try:
            await self._backend.open_circuit(reason)
            return True
        except Exception:  # the cell's safety comes first; report, never mask the first error
            log.exception("%s: open_circuit failed after %s", self.name, reason)
            return False

    def _where(self) -> str:
        """`` in step N (technique, cycle C)`` of the last sample, or nothing before the first."""
        state = self.history.state_at(self.history.last_time) if self.history.last_time is not None else None
        if state is None:
            return ""
        step = next((s for s in self._steps if s.step == state.step and s.cycle == state.cycle), None)
        technique = f"{step.technique.kind}, " if step is not None else ""
        return f" in step {state.step} ({technique}cycle {state.cycle})"

    async def open_circuit(self, reason: str) -> None:
        """Stop now, cell at open circuit, with the reason recorded; keep every sample measured."""
        if self._task is not None and not self._task.done():
            self.stop_reason = reason  # recorded before the cancelled task records its own
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        await self._safe_stop(reason)
        if self._writer is not None and self._writer.is_open:
            try:
                self._ingest(await self._backend.poll(), check_limits=False)
            except Exception:
                log.exception("%s: could not read the last samples after %s", self.name, reason)

    # -- holds: pause, and acquisitions that need the cell still -----------------------------
    @property
    def held(self) -> bool:
        return bool(self._holds)

    async def hold(self, why: str) -> None:
        """Open circuit and freeze the sequence until every ``why`` has been released."""
        if self._task is None or self._task.done():
            return
        first = not self._holds
        self._holds.add(why)
        if not first:
            return
        if Capability.HOLD in self._backend.capabilities:
            await self._backend.hold()
        else:
            # Safety first: an instrument that cannot hold is stopped at open circuit. (A run
            # that needs a hold is refused before it starts; this is a pause asked mid-run.)
            log.warning("%s: cannot hold; stopping at open circuit instead (%s)", self.name, why)
            await self.open_circuit(f"{why}: {self._backend.description} cannot hold, stopped")

    async def release(self, why: str) -> None:
        self._holds.discard(why)
        if (
            not self._holds
            and self._task is not None
            and not self._task.done()
            and Capability.HOLD in self._backend.capabilities
        ):
            await self._backend.release()

    def let_next_pause_pass(self) -> None:
        """The next pause() leaves the cell cycling (a suspension configured `echem: continue`)."""
        self._pass_next_pause = True

    async def pause(self) -> None:
        """RunEngine pause (or suspension): the cell goes to open circuit, measured all along."""
        if self._pass_next_pause:
            self._pass_next_pause = False
            return
        await self.hold("pause")

    async def resume(self) -> None:
        self._pass_next_pause = False
        await self.release("pause")

    # -- the echem state the schedules and frame stamps see ----------------------------------
    def has_samples_until(self, t: float) -> bool:
        last = self.history.last_time
        return last is not None and last >= t

    async def wait_for_samples_until(self, t: float, timeout_s: float = 2.0) -> bool:
        """Wait (wall time) until a sample at or after experiment time ``t`` has been ingested.

        False if the sequence ended or the timeout passed first (then the newest sample is used).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            last = self.history.last_time
            if last is not None and last >= t:
                return True
            if self._task is None or self._task.done():
                return False
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            self._new_samples.clear()
            self._poll_now.set()  # don't wait for the next periodic poll
            try:
                await asyncio.wait_for(self._new_samples.wait(), min(remaining, 0.002))
            except TimeoutError:
                pass

    def state_at(self, t: float, instrument_time: float | None = None) -> EchemState | None:
        """The cell at experiment time ``t``. For an instrument-clocked backend the lookup goes
        through the newest clock mapping, on the instrument's own time stamps — or directly at
        ``instrument_time`` when that is known (a frame started by this instrument's trigger)."""
        if self.timebase_source != "instrument":
            return self._state_at(t, "timestamp")
        if instrument_time is None:
            instrument_time = float(self.timebase.to_instrument(t))
        state = self._state_at(instrument_time, "instrument_time")
        return None if state is None else dataclasses.replace(state, time=float(t))

    def _state_at(self, t: float, time_column: str) -> EchemState | None:
        """From the samples in memory, or — for an instant older than they reach back (the
        midpoint of a long map at a high sample rate) — from the run's HDF5 file."""
        first = self.history.first_time(time_column)
        if first is None or t >= first or self._writer is None or not self._writer.is_open:
            return self.history.state_at(t, time_column)
        rows = self._writer.rows_around(t, time_column)
        return interpolate_state(t, rows, time_column, rows["at"]) if rows else self.history.state_at(t, time_column)

    @property
    def timebase_source(self) -> str:
        return self._backend.timebase

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def position(self) -> tuple[int, int, int]:
        """(samples, step, cycle) of the newest sample, without a round trip (progress displays)."""
        return self._position

    def outcome(self) -> tuple[str, str]:
        """How the sequence ended, without raising: ("completed", ...), ("fault", the error,
        which names the instrument and says whether the cell is at open circuit), ("stopped",
        why: an abort, a pause on an instrument that cannot hold), or ("running", "")."""
        if self._task is None or not self._task.done():
            return ("running", "") if self._task is not None else ("stopped", "never started")
        if self._task.cancelled():
            return "stopped", self.stop_reason or "cancelled"
        if self._task.exception() is not None:
            return "fault", str(self._task.exception())
        if self.stop_reason == "completed":
            return "completed", "completed"
        return "stopped", self.stop_reason or "stopped"

    async def wait_done_or_sleep(self, clock: Clock, seconds: float) -> bool:
        """Wait ``seconds`` of experiment time on ``clock``, or less if the sequence ends first;
        True once it has ended. Like ``wait_done``, safe to cancel and call again."""
        if self._task is None or self._task.done():
            return True
        sleeper = asyncio.ensure_future(clock.sleep(seconds))
        try:
            await asyncio.wait({self._task, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        return self._task.done()

    async def wait_done(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (wall) for the sequence to end; True once it has.

        Unlike a ``complete()`` status held across a RunEngine pause, this can be cancelled and
        awaited again freely: the acquisition task itself is never cancelled by it.
        """
        if self._task is None:
            return True
        await asyncio.wait({self._task}, timeout=timeout_s)
        return self._task.done()

    # -- bluesky verbs that end a run -------------------------------------------------------
    async def stop(self, success: bool = True) -> None:
        await self.open_circuit("stopped" if success else "aborted")

    @AsyncStatus.wrap
    async def unstage(self) -> None:
        """Called on every exit of a staged plan, error or not: the cell ends at open circuit."""
        if self._task is not None and not self._task.done():
            await self.open_circuit("run ended before the sequence completed")
        elif self._task is not None and not self._task.cancelled() and self._task.exception() is not None:
            # A fault ended the sequence and its open circuit was tried then (the fault says
            # whether it worked); the instrument may well not answer now: log, do not raise over it.
            await self._safe_stop(self.stop_reason or "unstaged")
        else:
            await self._backend.open_circuit(self.stop_reason or "unstaged")
        if self._writer is not None:
            self._writer.close()
        await super().unstage()

    # -- stream assets ----------------------------------------------------------------------
    async def describe_collect(self) -> dict[str, dict]:
        if self._writer is None:
            raise RuntimeError(f"{self.name}: describe_collect() before prepare(steps)")
        source = f"{self.name}:{self._backend.description}"
        return {f"{key}": desc for key, desc in self._writer.describe(source).items()}

    async def collect_asset_docs(self, index: int | None = None):
        if self._writer is not None:
            for doc in self._writer.asset_docs():
                yield doc

    async def get_index(self) -> int:
        return 0 if self._writer is None else self._writer.rows
