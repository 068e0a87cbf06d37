"""The project's techniques as MethodSCRIPT: ``ScheduledStep`` lists -> script lines (no I/O).

Format chosen: ONE script for a list of ``ScheduledStep`` (the instrument runs the steps back to
back, no host round trip between them); long protocols are cut into chunks of
``ScriptOptions.steps_per_script`` steps (``chunk_steps``), because script memory is finite. The
script's layout, its variables and the package layout of each loop type are the driver's
(``operando.devices.drivers.methodscript_scripts``); here each step stores its global step number
in ``step_no`` and becomes loops. Cut-offs are evaluated in-script (``if`` / ``breakloop``),
exactly the in-process simulator's rules.

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

Which loop each technique's packages come from: ``meas_loop_ocp`` for ocv, the GITT relaxation
and the DC point before PEIS at OCP / GEIS at 0 A; ``meas_loop_cp`` for cc, the CCCV charge
phase, the GITT pulse and the DC point before GEIS at I_dc; ``meas_loop_ca`` / ``_lsv`` / ``_cv``
for ca, the CCCV hold, lsv, cv and the DC point before PEIS at a set E_dc; ``meas_loop_eis`` /
``_geis`` for peis, geis — their ewe/iwe are the DC values measured by the 100 ms DC point just
before the sweep (the echem stream gets one row per frequency at those DC values).
"""

from __future__ import annotations

from collections.abc import Sequence

from operando.devices.drivers.methodscript_scripts import (
    PGSTAT_MODE_GALVANOSTAT,
    PGSTAT_MODE_POTENTIOSTAT,
    ScriptOptions,
    ca_loop,
    cp_loop,
    current_cutoff,
    cv_loop,
    eis_loop,
    geis_loop,
    if_break,
    lsv_loop,
    max_bandwidth_for_interval,
    ocp_loop,
    pgstat_mode,
    voltage_cutoff,
    wrap_script,
)
from operando.devices.drivers.methodscript_values import format_integer_literal, format_literal
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

DC_POINT_S = 0.1  # the DC measurement before an impedance sweep: one sample of 100 ms
_UNLIMITED_PULSES = 1_000_000  # GITT without max_pulses: the cut-off ends it


def _lit(value: float) -> str:
    return format_literal(value)


def step_lines(step: ScheduledStep, options: ScriptOptions) -> list[str]:
    tech = step.technique
    dt = options.sample_interval_s
    bandwidth = max_bandwidth_for_interval(dt)
    _lit(dt), _lit(bandwidth)  # an interval with no script literal refuses every step
    lines = [f"store_var step_no {format_integer_literal(step.step)} ja"]
    if isinstance(tech, OpenCircuit):
        lines += ["cell_off", *pgstat_mode(PGSTAT_MODE_POTENTIOSTAT, bandwidth),
                  *ocp_loop(dt, tech.duration_s)]  # fmt: skip
    elif isinstance(tech, ConstantCurrent):
        lines += pgstat_mode(PGSTAT_MODE_GALVANOSTAT, bandwidth)
        if tech.current_A != 0:
            lines.append(f"set_range db {_lit(abs(tech.current_A))}")
        cut = voltage_cutoff(tech.current_A, tech.e_min_V, tech.e_max_V)
        run_time = tech.max_duration_s or options.default_max_duration_s
        lines += ["cell_on", *cp_loop(tech.current_A, dt, run_time, if_break(cut) if cut else [])]
    elif isinstance(tech, ConstantCurrentConstantVoltage):
        lines += _cccv(tech, dt, bandwidth, options)
    elif isinstance(tech, LinearSweep):
        start, rest = _start_potential(tech.e_start_V, dt)
        lines += [
            *pgstat_mode(PGSTAT_MODE_POTENTIOSTAT, bandwidth),
            *rest,
            f"set_e {start}",
            "cell_on",
            *lsv_loop(start, tech.e_end_V, tech.e_step_V, tech.scan_rate_V_s),
        ]
    elif isinstance(tech, CyclicVoltammetry):
        start, rest = _start_potential(tech.e_start_V, dt, sorted((tech.e_vertex1_V, tech.e_vertex2_V)))
        lines += [
            *pgstat_mode(PGSTAT_MODE_POTENTIOSTAT, bandwidth),
            *rest,
            f"set_e {start}",
            "cell_on",
            *cv_loop(start, tech.e_vertex1_V, tech.e_vertex2_V, tech.e_step_V, tech.scan_rate_V_s, tech.cycles),
        ]
    elif isinstance(tech, ConstantPotential):
        cut = if_break(*current_cutoff(tech.i_cutoff_A)) if tech.i_cutoff_A is not None else []
        start, rest = _start_potential(tech.e_V, dt)
        lines += [
            *pgstat_mode(PGSTAT_MODE_POTENTIOSTAT, bandwidth),
            *rest,
            f"set_e {start}",
            "cell_on",
            *ca_loop(start, dt, tech.duration_s, cut),
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


def _start_potential(volts: float | None, dt: float, within: list[float] | None = None) -> tuple[str, list[str]]:
    """A potentiostatic step's start as a script argument, and the lines that measure it.

    Given volts: the literal, nothing to measure. None (start at open circuit): one OCP sample
    (stored, as the step's first row) copied into ``e0``, held inside ``within`` (a CV's
    vertices) if given; MethodSCRIPT takes a variable wherever a potential is expected.
    """
    if volts is not None:
        return _lit(volts), []
    lines = ["var e0", "cell_off", *ocp_loop(dt, dt), "copy_var ewe e0"]
    if within is not None:
        lo, hi = within
        lines += [f"if e0 < {_lit(lo)}", f"store_var e0 {_lit(lo)} ab", "endif"]
        lines += [f"if e0 > {_lit(hi)}", f"store_var e0 {_lit(hi)} ab", "endif"]
    return "e0", lines


def _cccv(tech: ConstantCurrentConstantVoltage, dt: float, bandwidth: float, options) -> list[str]:
    run_time = tech.max_duration_s or options.default_max_duration_s
    charge = tech.current_A > 0
    cut = f"ewe {'>=' if charge else '<='} {_lit(tech.e_hold_V)}"
    return [
        "timer_get tend",
        f"add_var tend {_lit(run_time)}",
        *pgstat_mode(PGSTAT_MODE_GALVANOSTAT, bandwidth),
        f"set_range db {_lit(abs(tech.current_A))}",
        "cell_on",
        *cp_loop(tech.current_A, dt, run_time, if_break(cut)),
        "timer_get t",
        "if t < tend",
        f"set_pgstat_mode {PGSTAT_MODE_POTENTIOSTAT}",
        f"set_e {_lit(tech.e_hold_V)}",
        *ca_loop(tech.e_hold_V, dt, run_time, [*if_break(*current_cutoff(tech.i_cutoff_A)), *if_break("t >= tend")]),
        "endif",
    ]


def _gitt(tech: Gitt, dt: float, bandwidth: float) -> list[str]:
    cut = voltage_cutoff(tech.current_A, tech.e_min_V, tech.e_max_V)
    on_cut = [f"if {cut}", "store_var cut 1i ja", "breakloop", "endif"] if cut else []
    pulses = tech.max_pulses or _UNLIMITED_PULSES
    return [
        "store_var n 0i ja",
        "store_var cut 0i ja",
        f"loop n < {format_integer_literal(pulses)}",
        *pgstat_mode(PGSTAT_MODE_GALVANOSTAT, bandwidth),
        f"set_range db {_lit(abs(tech.current_A))}",
        "cell_on",
        *cp_loop(tech.current_A, dt, tech.pulse_s, on_cut),
        "add_var n 1i",
        "cell_off",
        f"set_pgstat_mode {PGSTAT_MODE_POTENTIOSTAT}",
        *ocp_loop(dt, tech.relax_s),
        *if_break("cut > 0i"),
        "endloop",
    ]


def _peis(tech: PotentiostaticEis) -> list[str]:
    if tech.e_dc_V is None:  # at OCP: measure it, then hold it
        dc = ["cell_off", *ocp_loop(DC_POINT_S, DC_POINT_S), "store_var iwe 0 ba", "set_e ewe"]
    else:
        dc = [f"set_e {_lit(tech.e_dc_V)}", "cell_on", *ca_loop(tech.e_dc_V, DC_POINT_S, DC_POINT_S)]
    return [
        *pgstat_mode(PGSTAT_MODE_POTENTIOSTAT, tech.f_max_Hz),
        *dc,
        "cell_on",
        *eis_loop(tech.amplitude_V, tech.f_max_Hz, tech.f_min_Hz, len(tech.frequencies_Hz), "ewe"),
    ]


def _geis(tech: GalvanostaticEis) -> list[str]:
    if tech.i_dc_A == 0:
        dc = ["cell_off", *ocp_loop(DC_POINT_S, DC_POINT_S), "store_var iwe 0 ba"]
    else:
        dc = ["cell_on", *cp_loop(tech.i_dc_A, DC_POINT_S, DC_POINT_S)]
    return [
        *pgstat_mode(PGSTAT_MODE_GALVANOSTAT, tech.f_max_Hz),
        f"set_range db {_lit(abs(tech.i_dc_A) + tech.amplitude_A)}",
        *dc,
        "cell_on",
        *geis_loop(tech.amplitude_A, tech.f_max_Hz, tech.f_min_Hz, len(tech.frequencies_Hz), tech.i_dc_A),
    ]


def build_script(steps: Sequence[ScheduledStep], options: ScriptOptions | None = None) -> list[str]:
    """Script lines (without the leading ``e`` and the closing blank line)."""
    options = options or ScriptOptions()
    if not steps:
        raise ValueError("a MethodSCRIPT needs at least one step")
    body: list[str] = []
    for step in steps:
        body += step_lines(step, options)
    return wrap_script(body, options)


def chunk_steps(steps: Sequence[ScheduledStep], options: ScriptOptions) -> list[list[ScheduledStep]]:
    n = max(1, options.steps_per_script)
    return [list(steps[i : i + n]) for i in range(0, len(steps), n)]


def longest_gap_s(steps: Sequence[ScheduledStep], options: ScriptOptions) -> float:
    """The longest the script of ``steps`` may stay silent between two lines, in instrument
    seconds: a sample interval, a staircase step (lsv, cv) or the lowest frequency of an
    impedance sweep (two periods, as the firmware measures it)."""
    gap = options.sample_interval_s
    for step in steps:
        tech = step.technique
        if isinstance(tech, LinearSweep | CyclicVoltammetry):
            gap = max(gap, abs(tech.e_step_V) / tech.scan_rate_V_s)
        elif isinstance(tech, PotentiostaticEis | GalvanostaticEis):
            gap = max(gap, 2.0 / tech.f_min_Hz, DC_POINT_S)
    return gap
