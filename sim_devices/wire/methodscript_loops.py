"""What each simulated measurement loop does, sample by sample (no I/O, no cell).

A loop is a sequence of ``Sample``: when it is taken (instrument seconds after the loop's start)
and how the cell is driven until then. Rules, from the MethodSCRIPT manual's argument lists:

- ``meas_loop_ocp E t_interval t_run``, ``meas_loop_cp E I I_dc t_interval t_run``,
  ``meas_loop_ca E I E_dc t_interval t_run``: a sample every t_interval, floor(t_run / t_interval)
  samples, on the grid ``k * t_interval`` (no drift);
- ``meas_loop_lsv E I E_begin E_end E_step rate``: a staircase, one sample at the end of each
  step of E_step lasting E_step / rate; round(|E_end - E_begin| / E_step) steps, the last one
  exactly at E_end;
- ``meas_loop_cv E I E_begin E_vtx1 E_vtx2 E_step rate nscans(N)``: N scans of the staircase
  E_begin -> E_vtx1 -> E_vtx2 -> E_begin;
- ``meas_loop_eis f Z' Z'' E_ac f_start f_end n E_dc`` / ``meas_loop_geis ... I_ac ... I_dc``:
  n frequencies log-spaced from f_start to f_end (both included); one frequency takes
  max(2 periods, 0.1 s) of instrument time (the in-process simulator's rule too), the cell held
  at E_dc (potentiostatic) or I_dc (galvanostatic) meanwhile.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

MIN_FREQUENCY_TIME_S = 0.1


@dataclass(frozen=True)
class Sample:
    at_s: float  # instrument seconds after the loop started
    mode: str  # "ocp" (no current), "cp" (setpoint A), "ca" (setpoint V), "eis", "geis"
    setpoint: float = 0.0
    frequency_Hz: float = 0.0


def frequency_time_s(frequency_Hz: float) -> float:
    return max(2.0 / frequency_Hz, MIN_FREQUENCY_TIME_S)


def log_frequencies(f_start: float, f_end: float, n: int) -> list[float]:
    if n < 2:
        return [f_start]
    return [f_start * (f_end / f_start) ** (k / (n - 1)) for k in range(n)]


def _grid(mode: str, setpoint: float, interval: float, run: float) -> Iterator[Sample]:
    n = int(math.floor(run / interval + 1e-9))
    for k in range(1, n + 1):
        yield Sample(k * interval, mode, setpoint)


def _staircase(levels_from: float, path: list[float], e_step: float, rate: float) -> list[float]:
    """Potential of every staircase step along ``path`` (vertices) starting at ``levels_from``."""
    levels, e = [], levels_from
    for target in path:
        n = max(1, int(round(abs(target - e) / e_step)))
        levels += [e + (target - e) * k / n for k in range(1, n + 1)]
        e = target
    return levels


def samples(name: str, values: list[float], nscans: int = 1) -> Iterator[Sample]:
    """The samples of loop ``name`` given its evaluated input arguments (outputs removed)."""
    if name == "meas_loop_ocp":
        interval, run = values
        yield from _grid("ocp", 0.0, interval, run)
    elif name == "meas_loop_cp":
        current, interval, run = values
        yield from _grid("cp", current, interval, run)
    elif name == "meas_loop_ca":
        e, interval, run = values
        yield from _grid("ca", e, interval, run)
    elif name in ("meas_loop_lsv", "meas_loop_cv"):
        if name == "meas_loop_lsv":
            e0, e1, e_step, rate = values
            path = [e1]
        else:
            e0, v1, v2, e_step, rate = values
            path = [v1, v2, e0] * max(1, nscans)
        dt = abs(e_step) / rate
        for k, level in enumerate(_staircase(e0, path, abs(e_step), rate), start=1):
            yield Sample(k * dt, "ca", level)
    elif name in ("meas_loop_eis", "meas_loop_geis"):
        _amplitude, f_start, f_end, n, dc = values
        mode = "eis" if name == "meas_loop_eis" else "geis"
        at = 0.0
        for f in log_frequencies(f_start, f_end, int(n)):
            at += frequency_time_s(f)
            yield Sample(at, mode, dc, f)
    else:
        raise ValueError(f"not a measurement loop: {name}")
