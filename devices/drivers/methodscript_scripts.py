"""MethodSCRIPT generation for the project's techniques (no I/O).

Format chosen: ONE script for a list of ``ScheduledStep`` (the instrument runs the steps back to
back, no host round trip between them); long protocols are cut into chunks of
``ScriptOptions.steps_per_script`` steps by the caller, because script memory is finite. Each
script:

- declares ``t`` (timer, type eb), ``ewe`` (ab), ``iwe`` (ba), ``step_no`` (ja, integer);
- starts the timer once (``timer_start``), so every package's ``t`` counts from the script start;
- per step, stores the global step number in ``step_no`` and runs one measurement loop whose
  body sends ``P`` = t, ewe, [iwe,] step_no at every sample interval;
- OpenCircuit -> ``cell_off`` + ``meas_loop_ocp ewe <dt> <duration>`` (no current in the package);
- ConstantCurrent -> galvanostat ``set_pgstat_mode 6`` + ``cell_on`` +
  ``meas_loop_cp ewe iwe <I> <dt> <max duration>``; the voltage cut-off is checked in the loop
  body (``if ewe >= E`` / ``breakloop``): e_max_V while charging (I > 0), e_min_V while
  discharging (I < 0), exactly the ``SimCell.run`` rule;
- ends with ``on_finished:`` ``cell_off``, which the firmware also runs after an abort.

Syntax follows PalmSens' examples (MSLoopExample009-CP, -011-OCP, MSExample029/034): literals are
integer + SI prefix, no indentation needed, no blank line (a blank line ends the upload).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from operando.devices.techniques import ConstantCurrent, OpenCircuit, ScheduledStep

from .methodscript_values import format_integer_literal, format_literal

PGSTAT_MODE_POTENTIOSTAT = 3  # "set_pgstat_mode 3" in the OCP/CA examples
PGSTAT_MODE_GALVANOSTAT = 6  # "set_pgstat_mode 6" in the CP examples
_BANDWIDTH_HZ_TIMES_S = 5.85  # PalmSens cycling example: 5.850535 Hz for a 1 s interval


@dataclass(frozen=True)
class ScriptOptions:
    sample_interval_s: float = 1.0
    # meas_loop_cp needs a run time; a step without max_duration_s gets this one (10 days)
    default_max_duration_s: float = 864_000.0
    potential_range_V: float = 4.0  # set_range ab: the largest |Ewe| expected
    steps_per_script: int = 50


def script_header(options: ScriptOptions) -> list[str]:
    e_range = format_literal(options.potential_range_V)
    return [
        "var t",
        "var ewe",
        "var iwe",
        "var step_no",
        "set_pgstat_chan 0",
        f"set_range ab {e_range}",
        f"set_autoranging ab 100m {e_range}",
        "timer_start",
    ]


def step_lines(step: ScheduledStep, options: ScriptOptions) -> list[str]:
    tech = step.technique
    dt = format_literal(options.sample_interval_s)
    bandwidth = format_literal(float(f"{_BANDWIDTH_HZ_TIMES_S / options.sample_interval_s:.3g}"))
    lines = [f"store_var step_no {format_integer_literal(step.step)} ja"]
    if isinstance(tech, OpenCircuit):
        lines += [
            "cell_off",
            f"set_pgstat_mode {PGSTAT_MODE_POTENTIOSTAT}",
            f"set_max_bandwidth {bandwidth}",
            f"meas_loop_ocp ewe {dt} {format_literal(tech.duration_s)}",
            *_package("t", "ewe", "step_no"),
            "endloop",
        ]
    elif isinstance(tech, ConstantCurrent):
        current = format_literal(tech.current_A)
        run_time = tech.max_duration_s or options.default_max_duration_s
        lines += [
            f"set_pgstat_mode {PGSTAT_MODE_GALVANOSTAT}",
            f"set_max_bandwidth {bandwidth}",
        ]
        if tech.current_A != 0:
            lines.append(f"set_range db {format_literal(abs(tech.current_A))}")
        lines += [
            "cell_on",
            f"meas_loop_cp ewe iwe {current} {dt} {format_literal(run_time)}",
            *_package("t", "ewe", "iwe", "step_no"),
            *_cutoff(tech),
            "endloop",
        ]
    else:  # pragma: no cover - the Technique union is closed
        raise TypeError(f"no MethodSCRIPT for technique {tech!r}")
    return lines


def _package(*names: str) -> list[str]:
    return ["timer_get t", "pck_start", *(f"pck_add {n}" for n in names), "pck_end"]


def _cutoff(tech: ConstantCurrent) -> list[str]:
    if tech.current_A > 0 and tech.e_max_V is not None:
        condition = f"ewe >= {format_literal(tech.e_max_V)}"
    elif tech.current_A < 0 and tech.e_min_V is not None:
        condition = f"ewe <= {format_literal(tech.e_min_V)}"
    else:
        return []
    return [f"if {condition}", "breakloop", "endif"]


def build_script(steps: Sequence[ScheduledStep], options: ScriptOptions | None = None) -> list[str]:
    """Script lines (without the leading ``e`` and the closing blank line)."""
    options = options or ScriptOptions()
    if not steps:
        raise ValueError("a MethodSCRIPT needs at least one step")
    lines = script_header(options)
    for step in steps:
        lines += step_lines(step, options)
    return lines + ["on_finished:", "cell_off"]


def chunk_steps(steps: Sequence[ScheduledStep], options: ScriptOptions) -> list[list[ScheduledStep]]:
    n = max(1, options.steps_per_script)
    return [list(steps[i : i + n]) for i in range(0, len(steps), n)]


def upload_bytes(lines: Sequence[str]) -> bytes:
    """What goes on the wire: ``e``, the lines, a blank line; LF endings, ASCII only."""
    for line in lines:
        if not line.strip() or "\n" in line or "\r" in line:
            raise ValueError(f"script line must be one non-blank line: {line!r}")
    return ("e\n" + "".join(f"{line}\n" for line in lines) + "\n").encode("ascii")
