"""MethodSCRIPT generation for the project's techniques (no I/O).

Format chosen: ONE script for a list of ``ScheduledStep`` (the instrument runs the steps back to
back, no host round trip between them); long protocols are cut into chunks of
``ScriptOptions.steps_per_script`` steps by the caller, because script memory is finite. Each
script declares its variables once (``t`` timer eb, ``ewe`` potential, ``iwe`` current,
``step_no`` ja, ``tend`` deadline, ``n`` and ``cut`` GITT counters, ``f``/``zre``/``zim`` EIS),
starts the timer once (``timer_start``: every ``t`` counts from the script start), stores the
global step number in ``step_no`` before each step, and ends with ``on_finished:`` ``cell_off``
(the firmware also runs it after an abort). Cut-offs are evaluated in-script (``if`` /
``breakloop``), exactly the in-process simulator's rules.

Package layouts (one per loop type; ``step_no`` travels in every package):

- ``meas_loop_ocp`` (ocv; GITT relaxation; DC point before PEIS at OCP / GEIS at 0 A):
  t, ewe (ab), step_no
- ``meas_loop_cp`` (cc; CCCV charge phase; GITT pulse; DC point before GEIS at I_dc):
  t, ewe (ab), iwe (ba), step_no
- ``meas_loop_ca`` / ``meas_loop_lsv`` / ``meas_loop_cv`` (ca; CCCV hold; lsv; cv; DC point
  before PEIS at a set E_dc): t, ewe (da, the applied potential), iwe (ba), step_no
- ``meas_loop_eis`` / ``meas_loop_geis`` (peis, geis): t, f (dc), zre (cc), zim (cd),
  ewe, iwe, step_no — ewe/iwe are the DC values measured by the 100 ms DC point just before
  the sweep (the echem stream gets one row per frequency at those DC values).

Techniques:

- ocv -> ``cell_off`` + ``meas_loop_ocp ewe <dt> <duration>``;
- cc -> ``set_pgstat_mode 6`` + ``meas_loop_cp ewe iwe <I> <dt> <T>``; ``if ewe >= e_max``
  (charging) or ``if ewe <= e_min`` (discharging) ``breakloop``;
- cccv -> ``tend`` = timer + T; cp loop breaking at e_hold_V; then, if ``t < tend``,
  ``meas_loop_ca ewe iwe <e_hold> <dt> <T>`` breaking when |iwe| <= i_cutoff (``iwe <= c``
  charging, ``iwe >= -c`` discharging) or ``t >= tend`` (one max duration over both phases);
- lsv -> ``meas_loop_lsv ewe iwe <E0> <E1> <dE> <rate>`` (a sample per staircase step);
- cv -> ``meas_loop_cv ewe iwe <E0> <V1> <V2> <dE> <rate> nscans(<cycles>)``;
- ca -> ``meas_loop_ca ewe iwe <E> <dt> <duration>``, optional ``|iwe| <= c`` breakloop;
- gitt -> ``loop n < <max_pulses>`` of a cp pulse (sets ``cut`` and breaks at the cut-off) and
  an ocp relaxation, ``add_var n 1i``, then ``if cut > 0i`` ``breakloop``: the relaxation after
  the last pulse always runs;
- peis -> DC point (``meas_loop_ocp`` at OCP when e_dc_V is None — as PalmSens' EIS-at-OCP
  examples measure OCP first — else ``meas_loop_ca`` at e_dc_V), then
  ``meas_loop_eis f zre zim <E_ac> <f_max> <f_min> <n> ewe`` (E_dc = the measured ``ewe``);
- geis -> DC point (ocp at 0 A, else cp at i_dc_A), then
  ``meas_loop_geis f zre zim <I_ac> <f_max> <f_min> <n> <I_dc>``.

AC amplitudes are written as RMS (the manual's 'dd' type is "applied AC amplitude, Vrms"; the
techniques give peak), rounded to 4 significant digits. Syntax follows PalmSens' examples
(MSLoopExample009-CP, -011-OCP, the LSV/CV/EIS examples): literals are integer + SI prefix, no
indentation needed, no blank line (a blank line ends the upload).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from operando.devices.techniques import (
    ConstantCurrent,
    ConstantCurrentConstantVoltage,
    ConstantPotential,
    CyclicVoltammetry,
    GalvanostaticEis,
    Gitt,
    LinearSweep,
    OpenCircuit,
    PotentiostaticEis,
    ScheduledStep,
)

from .methodscript_values import format_integer_literal, format_literal

PGSTAT_MODE_POTENTIOSTAT = 3  # "set_pgstat_mode 3" in the OCP/CA examples
PGSTAT_MODE_GALVANOSTAT = 6  # "set_pgstat_mode 6" in the CP examples
_BANDWIDTH_HZ_TIMES_S = 5.85  # PalmSens cycling example: 5.850535 Hz for a 1 s interval
DC_POINT_S = 0.1  # the DC measurement before an impedance sweep: one sample of 100 ms
_UNLIMITED_PULSES = 1_000_000  # GITT without max_pulses: the cut-off ends it
VARIABLES = ("t", "ewe", "iwe", "step_no", "tend", "n", "cut", "f", "zre", "zim")


@dataclass(frozen=True)
class ScriptOptions:
    sample_interval_s: float = 1.0
    # measurement loops need a run time; a step without max_duration_s gets this one (10 days)
    default_max_duration_s: float = 864_000.0
    potential_range_V: float = 4.0  # set_range ab: the largest |Ewe| expected
    steps_per_script: int = 50


def script_header(options: ScriptOptions) -> list[str]:
    e_range = format_literal(options.potential_range_V)
    return [
        *(f"var {name}" for name in VARIABLES),
        "set_pgstat_chan 0",
        f"set_range ab {e_range}",
        f"set_autoranging ab 100m {e_range}",
        "timer_start",
    ]


def _lit(value: float) -> str:
    return format_literal(value)


def _rms(peak: float) -> str:
    return _lit(float(f"{peak / math.sqrt(2.0):.4g}"))


def _package(*names: str) -> list[str]:
    return ["timer_get t", "pck_start", *(f"pck_add {n}" for n in names), "pck_end"]


def _if_break(*conditions: str) -> list[str]:
    """Nested ifs (all conditions true) around one breakloop."""
    return [f"if {c}" for c in conditions] + ["breakloop"] + ["endif"] * len(conditions)


def _mode(mode: int, bandwidth: str) -> list[str]:
    return [f"set_pgstat_mode {mode}", f"set_max_bandwidth {bandwidth}"]


def _cp_loop(current: float, dt: str, run_time: float, body_extra: list[str]) -> list[str]:
    return [
        f"meas_loop_cp ewe iwe {_lit(current)} {dt} {_lit(run_time)}",
        *_package("t", "ewe", "iwe", "step_no"),
        *body_extra,
        "endloop",
    ]


def _ocp_loop(dt: str, run_time: float) -> list[str]:
    return [f"meas_loop_ocp ewe {dt} {_lit(run_time)}", *_package("t", "ewe", "step_no"), "endloop"]


def _ca_loop(e: float, dt: str, run_time: float, body_extra: list[str]) -> list[str]:
    return [
        f"meas_loop_ca ewe iwe {_lit(e)} {dt} {_lit(run_time)}",
        *_package("t", "ewe", "iwe", "step_no"),
        *body_extra,
        "endloop",
    ]


def _e_cutoff(current: float, e_min: float | None, e_max: float | None) -> str | None:
    """The cp loop's voltage cut-off, SimCell.run's rule: e_max charging, e_min discharging."""
    if current > 0 and e_max is not None:
        return f"ewe >= {_lit(e_max)}"
    if current < 0 and e_min is not None:
        return f"ewe <= {_lit(e_min)}"
    return None


def _i_cutoff(i_cut: float) -> list[str]:
    """|iwe| <= i_cut as two nested comparisons (MethodSCRIPT has no abs in a condition)."""
    return [f"iwe <= {_lit(i_cut)}", f"iwe >= {_lit(-i_cut)}"]


def step_lines(step: ScheduledStep, options: ScriptOptions) -> list[str]:
    tech = step.technique
    dt = _lit(options.sample_interval_s)
    bandwidth = _lit(float(f"{_BANDWIDTH_HZ_TIMES_S / options.sample_interval_s:.3g}"))
    lines = [f"store_var step_no {format_integer_literal(step.step)} ja"]
    if isinstance(tech, OpenCircuit):
        lines += ["cell_off", *_mode(PGSTAT_MODE_POTENTIOSTAT, bandwidth), *_ocp_loop(dt, tech.duration_s)]
    elif isinstance(tech, ConstantCurrent):
        lines += _mode(PGSTAT_MODE_GALVANOSTAT, bandwidth)
        if tech.current_A != 0:
            lines.append(f"set_range db {_lit(abs(tech.current_A))}")
        cut = _e_cutoff(tech.current_A, tech.e_min_V, tech.e_max_V)
        run_time = tech.max_duration_s or options.default_max_duration_s
        lines += ["cell_on", *_cp_loop(tech.current_A, dt, run_time, _if_break(cut) if cut else [])]
    elif isinstance(tech, ConstantCurrentConstantVoltage):
        lines += _cccv(tech, dt, bandwidth, options)
    elif isinstance(tech, LinearSweep):
        lines += [
            *_mode(PGSTAT_MODE_POTENTIOSTAT, bandwidth),
            f"set_e {_lit(tech.e_start_V)}",
            "cell_on",
            f"meas_loop_lsv ewe iwe {_lit(tech.e_start_V)} {_lit(tech.e_end_V)} "
            f"{_lit(tech.e_step_V)} {_lit(tech.scan_rate_V_s)}",
            *_package("t", "ewe", "iwe", "step_no"),
            "endloop",
        ]
    elif isinstance(tech, CyclicVoltammetry):
        lines += [
            *_mode(PGSTAT_MODE_POTENTIOSTAT, bandwidth),
            f"set_e {_lit(tech.e_start_V)}",
            "cell_on",
            f"meas_loop_cv ewe iwe {_lit(tech.e_start_V)} {_lit(tech.e_vertex1_V)} "
            f"{_lit(tech.e_vertex2_V)} {_lit(tech.e_step_V)} {_lit(tech.scan_rate_V_s)} "
            f"nscans({tech.cycles})",
            *_package("t", "ewe", "iwe", "step_no"),
            "endloop",
        ]
    elif isinstance(tech, ConstantPotential):
        cut = _if_break(*_i_cutoff(tech.i_cutoff_A)) if tech.i_cutoff_A is not None else []
        lines += [
            *_mode(PGSTAT_MODE_POTENTIOSTAT, bandwidth),
            f"set_e {_lit(tech.e_V)}",
            "cell_on",
            *_ca_loop(tech.e_V, dt, tech.duration_s, cut),
        ]
    elif isinstance(tech, Gitt):
        lines += _gitt(tech, dt, bandwidth)
    elif isinstance(tech, PotentiostaticEis):
        lines += _peis(tech)
    elif isinstance(tech, GalvanostaticEis):
        lines += _geis(tech)
    else:  # pragma: no cover - the Technique union is closed
        raise TypeError(f"no MethodSCRIPT for technique {tech!r}")
    return lines


def _cccv(tech: ConstantCurrentConstantVoltage, dt: str, bandwidth: str, options) -> list[str]:
    run_time = tech.max_duration_s or options.default_max_duration_s
    charge = tech.current_A > 0
    cut = f"ewe {'>=' if charge else '<='} {_lit(tech.e_hold_V)}"
    return [
        "timer_get tend",
        f"add_var tend {_lit(run_time)}",
        *_mode(PGSTAT_MODE_GALVANOSTAT, bandwidth),
        f"set_range db {_lit(abs(tech.current_A))}",
        "cell_on",
        *_cp_loop(tech.current_A, dt, run_time, _if_break(cut)),
        "timer_get t",
        "if t < tend",
        f"set_pgstat_mode {PGSTAT_MODE_POTENTIOSTAT}",
        f"set_e {_lit(tech.e_hold_V)}",
        *_ca_loop(tech.e_hold_V, dt, run_time, [*_if_break(*_i_cutoff(tech.i_cutoff_A)),
                                                *_if_break("t >= tend")]),
        "endif",
    ]


def _gitt(tech: Gitt, dt: str, bandwidth: str) -> list[str]:
    cut = _e_cutoff(tech.current_A, tech.e_min_V, tech.e_max_V)
    on_cut = [f"if {cut}", "store_var cut 1i ja", "breakloop", "endif"] if cut else []
    pulses = tech.max_pulses or _UNLIMITED_PULSES
    return [
        "store_var n 0i ja",
        "store_var cut 0i ja",
        f"loop n < {format_integer_literal(pulses)}",
        *_mode(PGSTAT_MODE_GALVANOSTAT, bandwidth),
        f"set_range db {_lit(abs(tech.current_A))}",
        "cell_on",
        *_cp_loop(tech.current_A, dt, tech.pulse_s, on_cut),
        "add_var n 1i",
        "cell_off",
        f"set_pgstat_mode {PGSTAT_MODE_POTENTIOSTAT}",
        *_ocp_loop(dt, tech.relax_s),
        *_if_break("cut > 0i"),
        "endloop",
    ]


def _sweep(tech, amplitude: str, dc: str, loop: str) -> list[str]:
    freqs = tech.frequencies_Hz
    return [
        f"{loop} f zre zim {amplitude} {_lit(tech.f_max_Hz)} {_lit(tech.f_min_Hz)} "
        f"{format_integer_literal(len(freqs))} {dc}",
        *_package("t", "f", "zre", "zim", "ewe", "iwe", "step_no"),
        "endloop",
    ]


def _peis(tech: PotentiostaticEis) -> list[str]:
    dc_point = _lit(DC_POINT_S)
    if tech.e_dc_V is None:  # at OCP: measure it, then hold it
        dc = ["cell_off", *_ocp_loop(dc_point, DC_POINT_S), "store_var iwe 0 ba", "set_e ewe"]
    else:
        dc = [f"set_e {_lit(tech.e_dc_V)}", "cell_on", *_ca_loop(tech.e_dc_V, dc_point, DC_POINT_S, [])]
    return [
        *_mode(PGSTAT_MODE_POTENTIOSTAT, _lit(tech.f_max_Hz)),
        *dc,
        "cell_on",
        *_sweep(tech, _rms(tech.amplitude_V), "ewe", "meas_loop_eis"),
    ]


def _geis(tech: GalvanostaticEis) -> list[str]:
    dc_point = _lit(DC_POINT_S)
    if tech.i_dc_A == 0:
        dc = ["cell_off", *_ocp_loop(dc_point, DC_POINT_S), "store_var iwe 0 ba"]
    else:
        dc = ["cell_on", *_cp_loop(tech.i_dc_A, dc_point, DC_POINT_S, [])]
    return [
        *_mode(PGSTAT_MODE_GALVANOSTAT, _lit(tech.f_max_Hz)),
        f"set_range db {_lit(abs(tech.i_dc_A) + tech.amplitude_A)}",
        *dc,
        "cell_on",
        *_sweep(tech, _rms(tech.amplitude_A), _lit(tech.i_dc_A), "meas_loop_geis"),
    ]


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
