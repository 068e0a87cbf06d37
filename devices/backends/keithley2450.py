"""``PotentiostatBackend`` on a Keithley 2450 SourceMeter, through pymeasure's ``Keithley2450``.

A source-measure unit has no technique firmware, so the step list runs host-timed in a worker
thread (VISA calls block): each sample is one ``:READ?`` round trip stamped with the experiment
clock (timebase "host"). Techniques, as the instrument does them:

- ocv: current source at 0 A (the voltage at zero current); cc: current source, voltage limit just
  beyond the cut-off as hardware protection, cut-off checked on each sample;
- cccv charging to a positive e_hold_V: current source with VLIM = e_hold_V, the instrument's
  compliance is the CV phase (the current falls); otherwise (VLIM is a magnitude, so it cannot
  stop a discharge at a positive potential) the host switches to a voltage source at e_hold_V
  with ILIM = |current_A| once the cut-off is crossed; ends when |I| <= i_cutoff_A;
- ca: voltage source with ILIM = ``i_limit_A``; lsv, cv: voltage staircases on the host, one
  level and one reading per stair (stairs coarsened if shorter than ``min_command_wall_s`` of
  wall time, the scan rate kept); gitt: cc pulses and 0 A relaxations;
- peis, geis: refused by ``check`` (no frequency-response analyser).

Durations are measured on the clock given (a SimClock shared with an in-process simulator makes
a speed-up work; WallClock for a real instrument or a separate simulator process). A VISA error
or timeout ends the run through the device's fault path (``poll`` raises) after the output is
switched off (or tried: ``open_circuit`` also reconnects once to do it, and raises when the
output could not be confirmed off, so the stop reason says the open circuit failed).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

import numpy as np
from pydantic import Field, PositiveFloat

from operando.devices.clock import Clock, WallClock
from operando.devices.drivers.keithley2450_smu import (
    DEFAULT_TIMEOUT_MS,
    Keithley2450Error,
    Keithley2450Smu,
    open_keithley2450,
)
from operando.devices.kinds import PotentiostatSettings
from operando.devices.registry import BackendSpec, BuildContext, Capability, register
from operando.devices.safety import UnsupportedTechnique
from operando.devices.techniques import ECHEM_COLUMNS, IMPEDANCE_KINDS, TECHNIQUE_CODES, ScheduledStep

from .keithley2450_programs import StepPrograms, Stopped

log = logging.getLogger(__name__)


class Keithley2450Backend(StepPrograms):
    timebase = "host"
    capabilities = frozenset({Capability.HOLD})  # hold: 0 A, measured, the step frozen
    techniques = frozenset(TECHNIQUE_CODES) - set(IMPEDANCE_KINDS)

    def __init__(
        self,
        resource,
        clock: Clock | None = None,
        sample_interval_s: float = 1.0,
        i_limit_A: float = 0.1,
        v_limit_V: float = 5.0,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        min_command_wall_s: float = 0.005,
        nplc: float = 1.0,
    ) -> None:
        """``resource``: a VISA resource string or an already-made pymeasure ``Keithley2450``.
        ``i_limit_A``: current limit of voltage-source steps (set it to the cell's |I| max);
        ``v_limit_V``: voltage limit of current-source steps without a cut-off above them."""
        self._resource = resource if isinstance(resource, str) else None
        self._instrument = None if isinstance(resource, str) else resource
        name = self._resource or getattr(getattr(resource, "adapter", None), "resource_name", None) or "pymeasure"
        self.description = f"Keithley 2450 SourceMeter on {name}"
        self.clock = clock or WallClock()
        self.sample_interval_s = float(sample_interval_s)
        self.i_limit_A, self.v_limit_V = float(i_limit_A), float(v_limit_V)
        self.timeout_ms, self.min_command_wall_s, self.nplc = timeout_ms, min_command_wall_s, nplc
        self.smu: Keithley2450Smu | None = None
        self.stop_reason: str | None = None
        self._io = threading.Lock()  # one VISA exchange at a time (worker vs open_circuit)
        self._thread: threading.Thread | None = None
        self._reset([])

    def _reset(self, steps: Sequence[ScheduledStep]) -> None:
        self._steps = sorted(steps, key=lambda s: s.step)
        self._rows: list[tuple[float, float, float, float, int, int]] = []
        self._rows_lock = threading.Lock()
        self._charge_mAh, self._last = 0.0, None  # (t, I) of the previous sample
        self._stop = threading.Event()
        self._wake = threading.Event()  # hold, release or stop: cut a wait short
        self._hold_wanted = False
        self._error: BaseException | None = None
        self._done = not steps

    # ---- PotentiostatBackend ---------------------------------------------------------------
    def check(self, steps: Sequence[ScheduledStep]) -> None:
        for s in steps:
            kind = s.technique.kind
            if kind in IMPEDANCE_KINDS:
                raise UnsupportedTechnique(
                    f"{self.description}: step {s.step} (cycle {s.cycle}, {kind}) cannot run: a "
                    f"source-measure unit has no frequency-response analyser, so it measures no "
                    f"impedance; run {kind} on a potentiostat with EIS"
                )

    async def start(self, steps: Sequence[ScheduledStep]) -> None:
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"{self.description}: a sequence is already running")
        self.check(steps)
        self._reset(list(steps))
        self.stop_reason = None
        # connecting is the worker's first act: an instrument that does not answer then faults
        # the device through poll, whose error names the instrument, as any later fault does
        self._thread = threading.Thread(target=self._work, name="keithley2450-steps", daemon=True)
        self._thread.start()

    async def poll(self) -> dict[str, np.ndarray]:
        """Rows measured since the last poll; once they are all out, the worker's error."""
        rows = self._drain()
        if self._error is not None and len(rows["Ewe"]) == 0:
            raise RuntimeError(f"{self.description}: {self._error!r}") from self._error
        return rows

    @property
    def done(self) -> bool:
        return self._done

    async def open_circuit(self, reason: str) -> None:
        """Stop the steps and switch the output off, confirmed by reading it back; after a lost
        connection, reconnect once to do it. Raises ``Keithley2450Error`` when the output could
        not be confirmed off after this backend had switched it on, so the device reports the open
        circuit as failed (never switched on: logged only)."""
        self.stop_reason = self.stop_reason or reason
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            await asyncio.to_thread(thread.join, 2 * self.timeout_ms / 1000 + 1)
        self._done = True
        problem = await asyncio.to_thread(self._force_output_off)
        if problem and self.smu is not None and self.smu.sourced:  # else it was never switched on
            raise Keithley2450Error(f"{self.description}: output off not confirmed ({problem})")

    async def hold(self) -> None:
        """Zero current now (the cell at open circuit, still measured), the step frozen."""
        self._hold_wanted = True
        self._wake.set()

    async def release(self) -> None:
        self._hold_wanted = False
        self._wake.set()

    def close(self) -> None:
        """Close the VISA session this backend opened (the output is off by then); safe twice."""
        instrument, self._instrument = self._instrument, None
        if instrument is not None and self._resource is not None:
            instrument.adapter.close()

    # ---- worker thread ---------------------------------------------------------------------
    def _connect(self) -> None:
        with self._io:
            if self._instrument is None:
                self._instrument = open_keithley2450(self._resource, self.timeout_ms)
            self.smu = Keithley2450Smu(self._instrument, self.nplc)
            self.smu.prepare()

    def _work(self) -> None:
        try:
            self._connect()
            for step in self._steps:
                self.run_step(step)
            with self._io:
                self.smu.output_off()
        except Stopped:
            pass
        except BaseException as exc:  # VISA error, timeout, instrument error: the fault path
            self._error = exc
            log.error("%s: %r; switching the output off", self.description, exc)
            self._force_output_off()
        finally:
            self._done = True

    def _force_output_off(self) -> str:
        """Output off, read back; on this session, else on a new one. Returns "" once
        confirmed, else what went wrong (logged, not raised: callers decide)."""
        try:
            with self._io:
                self.smu.output_off()
            return ""
        except Exception as exc:
            first = repr(exc)
            log.warning(
                "%s: output off failed (%s)%s",
                self.description,
                first,
                "; reconnecting to retry" if self._resource else "",
            )
        if self._resource is None:
            return first
        try:
            with self._io:
                fresh = open_keithley2450(self._resource, self.timeout_ms)
                try:
                    Keithley2450Smu(fresh).output_off()  # off, and read back
                finally:
                    fresh.adapter.close()
            return ""
        except Exception as exc:
            log.error("%s: output could not be switched off: %r", self.description, exc)
            return f"{first}; after reconnecting: {exc!r}"

    # ---- what StepPrograms needs -----------------------------------------------------------
    def exchange(self, fn, *args):
        """One VISA exchange on the SMU, serialised with open_circuit; none once a stop is asked
        for (checked under the lock, so the output cannot come back on after open_circuit)."""
        with self._io:
            if self._stop.is_set():
                raise Stopped()
            return fn(*args)

    def record(self, step: ScheduledStep, ewe: float, current: float, t: float) -> None:
        if self._last is not None:
            t0, i0 = self._last
            self._charge_mAh += i0 * (t - t0) / 3.6  # the previous current flowed until now
        self._last = (t, current)
        with self._rows_lock:
            self._rows.append((t, ewe, current, self._charge_mAh, step.cycle, step.step))

    def _drain(self) -> dict[str, np.ndarray]:
        with self._rows_lock:
            rows, self._rows = self._rows, []
        columns = list(zip(*rows)) if rows else [()] * 6
        names = ("timestamp", "Ewe", "I", "charge", "cycle", "step")
        return {name: np.asarray(col, ECHEM_COLUMNS[name][1]) for name, col in zip(names, columns)}

    def min_stair_s(self) -> float:
        """Shortest stair in experiment seconds: ``min_command_wall_s`` of wall time."""
        return self.min_command_wall_s * float(getattr(self.clock, "speed", 1.0))


class Keithley2450Settings(PotentiostatSettings):
    nplc: float = Field(1.0, ge=0.01, le=10)  # integration time per reading, power-line cycles
    timeout_ms: int = Field(DEFAULT_TIMEOUT_MS, ge=100)  # VISA read timeout
    min_command_wall_s: PositiveFloat = 0.005  # shortest host-timed stair (lsv, cv)


def _build(ctx: BuildContext) -> Keithley2450Backend:
    limits, s = ctx.limits, ctx.settings
    backend = Keithley2450Backend(
        ctx.address,
        clock=ctx.clock,
        sample_interval_s=s.sample_interval_s,
        # the SMU's own compliance backs up the software limits: |I| max on voltage-source
        # steps, the window's top plus the excursion tolerance (2 %) on current-source steps
        i_limit_A=limits.i_max_A,
        v_limit_V=limits.e_max_V + 0.02 * (limits.e_max_V - limits.e_min_V),
        timeout_ms=s.timeout_ms,
        min_command_wall_s=s.min_command_wall_s,
        nplc=s.nplc,
    )
    ctx.on_close(backend.close, first=True)  # the session closes before any simulator stops
    return backend


register(
    BackendSpec(
        kind="potentiostat",
        name="keithley2450",
        settings=Keithley2450Settings,
        build=_build,
        summary="a Keithley 2450 SourceMeter through pymeasure (a source-measure unit: no "
        "frequency-response analyser, so no impedance)",
        capabilities=Keithley2450Backend.capabilities,
        techniques=Keithley2450Backend.techniques,
        address="a VISA resource (e.g. TCPIP::192.168.1.20::5025::SOCKET or USB0::...)",
    )
)
