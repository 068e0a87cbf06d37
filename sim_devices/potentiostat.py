"""Firmware of the simulated potentiostat: executes a list of ``ScheduledStep`` on a SimCell.

Samples sit on a fixed grid ``start + k * sample_interval_s`` and the cell is only ever advanced
to grid points, in chunks aligned to its internal step (``SimCell.STEP_S``) from the start of
each technique. So the data depend on the programme, never on how often or when ``advance_to``
is called; the price is that the cell may lag the clock by up to one chunk (0.05 s for fine
sampling, one sample interval otherwise). Every technique is a sequence of control segments
(technique_runs.py); a chunk never crosses a segment's end, and chunks re-align at each one.

Impedance (PEIS/GEIS) rows come out of ``drain_impedance``: Z is the cell's small-signal
impedance at the sample where that frequency's measurement ends, times (1 + 0.3 % complex
Gaussian noise from the engine's seeded generator); timestamp = the measurement's exact end.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from operando.devices.techniques import ECHEM_COLUMNS, IMPEDANCE_COLUMNS, ScheduledStep

from .cell import SimCell
from .clock import Clock
from .technique_runs import TechniqueRun

_GRID_EPS = 1e-9  # tolerance, in sample intervals, when mapping times onto the grid
# the epoch-time column ("time" is reserved by Tiled's events table, so it may be "timestamp")
TIME_COLUMN = "timestamp" if "timestamp" in ECHEM_COLUMNS else "time"


class SimPotentiostatEngine:
    EIS_NOISE = 0.003  # relative noise on each impedance point

    def __init__(self, cell: SimCell, clock: Clock, sample_interval_s: float = 1.0, seed: int = 0):
        if not sample_interval_s > 0:
            raise ValueError(f"sample_interval_s must be > 0, got {sample_interval_s!r}")
        self._cell = cell
        self._clock = clock
        self._dt = float(sample_interval_s)
        # internal-step chunk while a technique runs, and a coarser one while idle
        self._stride = max(1, int(cell.STEP_S / self._dt + _GRID_EPS))
        self._idle_stride = max(self._stride, int(cell.MAX_STEP_S / self._dt + _GRID_EPS))
        self._steps: list[ScheduledStep] = []
        self._index = 0
        self._origin = clock.time()  # the cell's time is origin + k * dt
        self._k = 0
        self._chunk_k0 = 0  # grid index chunks are aligned to (segment start, or start of idling)
        self._run: TechniqueRun | None = None  # the running step's progress
        self._prog_k = 0  # samples the running step has run (its programme time; holds excluded)
        self._running = False
        self._held = False  # a hold (pause, long acquisition): open circuit, programme frozen
        self._done = False
        self._stop_reason: str | None = None
        self._start_time: float | None = None
        self._charge0_mAh = cell.charge_mAh
        self._last_ewe = cell.ewe_V
        self._last_current = 0.0
        self._buffer: list[dict[str, np.ndarray]] = []
        self._z_rows: list[tuple] = []
        self._rng = np.random.default_rng(seed)

    # ---- programme ---------------------------------------------------------------------------
    def load(self, steps: Sequence[ScheduledStep]) -> None:
        if self._running:
            raise RuntimeError("cannot load a programme while one is running")
        self._steps = list(steps)
        self._done = False
        self._stop_reason = None

    def start(self) -> None:
        if self._running:
            raise RuntimeError("a programme is already running")
        if not self._steps:
            raise ValueError("no steps loaded")
        now = self._clock.time()
        self.advance_to(now)
        gap = now - self.time
        if gap > 0:  # bring the cell exactly to the start instant, off the old grid
            self._cell.run(0.0, np.array([gap]))
        self._origin, self._k = now, 0
        self._start_time = now
        self._charge0_mAh = self._cell.charge_mAh
        self._running, self._done, self._stop_reason = True, False, None
        self._begin_step(0)

    def open_circuit(self, reason: str) -> None:
        """Stop at once: no more current, programme finished with ``reason``."""
        self._held = False
        if self._running:
            self._running = False
            self._chunk_k0 = self._k
        self._done = True
        self._stop_reason = reason
        self._cell.relax(0.0)  # no current from this instant
        self._last_current = 0.0
        self._last_ewe = self._cell.rest_potential_V

    def hold(self) -> None:
        """Open circuit now, keep recording, freeze the programme where it is (step and time left)."""
        if not self._running or self._held:
            return
        self.advance_to(self._clock.time())
        self._held = True
        self._chunk_k0 = self._k
        self._cell.relax(0.0)
        self._last_current = 0.0

    def release(self) -> None:
        """Continue the frozen step with the time it had left when the hold began."""
        if not self._held:
            return
        self.advance_to(self._clock.time())
        self._held = False
        self._chunk_k0 = self._k

    @property
    def held(self) -> bool:
        return self._held

    # ---- time --------------------------------------------------------------------------------
    def advance_to(self, t: float) -> None:
        """Run the cell up to simulated epoch time ``t``, recording samples while a step runs."""
        k_target = math.floor((t - self._origin) / self._dt + _GRID_EPS)
        while self._k < k_target:
            if not self._running:
                self._relax(k_target)
                return
            seg_end = self._run.segment.end
            k_end = None if self._held or seg_end is None else self._k + seg_end - self._prog_k
            if k_end is not None and k_end <= k_target:
                k_stop = k_end
            else:
                k_stop = self._aligned(k_target, self._stride)
            if k_stop <= self._k:
                return  # wait for a whole internal step
            self._run_chunk(k_stop)

    def _relax(self, k_target: int) -> None:
        k_stop = self._aligned(k_target, self._idle_stride)
        n = (k_stop - self._k) // self._idle_stride
        if n <= 0:
            return
        self._cell.relax(n * self._idle_stride * self._dt)
        self._k = k_stop
        self._last_ewe = self._cell.rest_potential_V
        self._last_current = 0.0

    def _aligned(self, k_target: int, stride: int) -> int:
        return self._chunk_k0 + (k_target - self._chunk_k0) // stride * stride

    def _run_chunk(self, k_stop: int) -> None:
        step = self._steps[self._index]
        seg = self._run.segment
        rel = np.arange(1, k_stop - self._k + 1) * self._dt
        cutoff = False
        if self._held or seg.mode == "current":
            current = 0.0 if self._held else seg.current_A
            trace = self._cell.run(current, rel, seg.e_min_V, seg.e_max_V)
            ewe, cur = trace.ewe_V, np.full(len(trace), current)
            cutoff = trace.cutoff_reached
        else:
            t0, prog = self._prog_k * self._dt, seg.potential
            trace = self._cell.run_potential(lambda t: prog(t0 + t), rel, i_stop_A=seg.i_stop_A)
            ewe, cur = trace.ewe_V, trace.current_A
            cutoff = trace.cutoff_reached
        m = len(trace)
        idx = self._k + np.arange(1, m + 1)
        self._buffer.append(
            {
                TIME_COLUMN: self._origin + idx * self._dt,
                "Ewe": ewe,
                "I": cur,
                "charge": trace.charge_mAh - self._charge0_mAh,
                "cycle": np.full(m, step.cycle, dtype=np.int64),
                "step": np.full(m, step.step, dtype=np.int64),
            }
        )
        self._k += m
        self._last_ewe = float(ewe[-1])
        self._last_current = float(cur[-1])
        if self._held:
            return
        self._prog_k += m
        if cutoff or (seg.end is not None and self._prog_k >= seg.end):
            points = self._run.finish_segment(self._prog_k, cutoff)
            self._record_impedance(points, step)
            self._chunk_k0 = self._k
            if self._run.segment is None:
                self._begin_step(self._index + 1)

    def _record_impedance(self, points, step: ScheduledStep) -> None:
        """One row per finished frequency, Z at the present state (the sample it ended in)."""
        offset = self._origin + (self._k - self._prog_k) * self._dt  # programme time -> epoch
        for f, t_end in points:
            z = complex(self._cell.impedance(np.array([f]))[0])
            noise = self._rng.normal(0.0, self.EIS_NOISE, 2)
            z *= 1.0 + complex(noise[0], noise[1])
            self._z_rows.append(
                (offset + t_end, f, z.real, z.imag, self._last_ewe, self._last_current, step.cycle, step.step)
            )

    def _begin_step(self, index: int) -> None:
        self._index = index
        self._chunk_k0 = self._k
        self._prog_k = 0
        if index >= len(self._steps):
            self._running, self._done = False, True
            self._stop_reason = "completed"
            self._run = None
            self._cell.relax(0.0)  # the programme is over: open circuit
            self._last_current = 0.0
            return
        tech = self._steps[index].technique
        self._run = TechniqueRun(tech, self._dt, self._cell.rest_potential_V)

    # ---- data --------------------------------------------------------------------------------
    def drain(self) -> dict[str, np.ndarray]:
        """Samples recorded since the last drain, as ECHEM_COLUMNS arrays; clears the buffer."""
        chunks, self._buffer = self._buffer, []
        out = {}
        for name, (_unit, dtype) in ECHEM_COLUMNS.items():
            parts = [c[name] for c in chunks]
            out[name] = np.concatenate(parts).astype(dtype) if parts else np.empty(0, dtype)
        return out

    def drain_impedance(self) -> dict[str, np.ndarray]:
        """Impedance rows (IMPEDANCE_COLUMNS) recorded since the last call; clears them."""
        rows, self._z_rows = self._z_rows, []
        cols = list(zip(*rows)) if rows else [()] * len(IMPEDANCE_COLUMNS)
        return {
            name: np.asarray(col, dtype=dtype) for (name, (_unit, dtype)), col in zip(IMPEDANCE_COLUMNS.items(), cols)
        }

    # ---- status ------------------------------------------------------------------------------
    @property
    def time(self) -> float:
        """Simulated epoch time the cell has been advanced to."""
        return self._origin + self._k * self._dt

    @property
    def sample_interval_s(self) -> float:
        return self._dt

    @property
    def start_time(self) -> float | None:
        return self._start_time

    @property
    def steps(self) -> tuple[ScheduledStep, ...]:
        return tuple(self._steps)

    @property
    def running(self) -> bool:
        return self._running

    @property
    def done(self) -> bool:
        return self._done

    @property
    def current_step(self) -> ScheduledStep | None:
        return self._steps[self._index] if self._running else None

    @property
    def stop_reason(self) -> str | None:
        return self._stop_reason

    @property
    def last_ewe(self) -> float:
        return self._last_ewe

    @property
    def last_current(self) -> float:
        return self._last_current
