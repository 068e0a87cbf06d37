"""MethodSCRIPT script text from plain numbers: header, measurement loops, conditions (no I/O).

Builders of script lines; they know the MethodSCRIPT language, not the project's techniques
(``operando.devices.backends.methodscript_steps`` maps those onto these builders). Usable on
their own:

    lines = wrap_script(["cell_off", *pgstat_mode(PGSTAT_MODE_POTENTIOSTAT, 5.85),
                         *ocp_loop(interval_s=1.0, run_time_s=60.0)])
    drv.run_script(lines)  # MethodScriptDriver sends upload_bytes(lines)

Script layout (``wrap_script``): the variables are declared once (``t`` timer eb, ``ewe``
potential, ``iwe`` current, ``step_no`` ja, ``tend`` deadline, ``n`` and ``cut`` counters,
``f``/``zre``/``zim`` EIS), the timer is started once (``timer_start``: every ``t`` counts from
the script start), and the script ends with ``on_finished:`` ``cell_off`` (the firmware also runs
it after an abort). Whoever writes the body stores a step number in ``step_no``
(``store_var step_no <k>i ja``); it travels in every package.

Package layouts (one per loop type; ``step_no`` in every package):

- ``meas_loop_ocp`` (``ocp_loop``): t, ewe (ab), step_no
- ``meas_loop_cp`` (``cp_loop``): t, ewe (ab), iwe (ba), step_no
- ``meas_loop_ca`` / ``meas_loop_lsv`` / ``meas_loop_cv`` (``ca_loop``, ``lsv_loop``,
  ``cv_loop``): t, ewe (da, the applied potential), iwe (ba), step_no
- ``meas_loop_eis`` / ``meas_loop_geis`` (``eis_loop``, ``geis_loop``): t, f (dc), zre (cc),
  zim (cd), ewe, iwe, step_no — ewe/iwe as they were last stored (a DC measurement just before
  the sweep puts them there).

Conditions (``if_break``, ``voltage_cutoff``, ``current_cutoff``) are evaluated in-script
(``if`` / ``breakloop``); MethodSCRIPT has no abs in a condition, so |iwe| <= c is two nested
comparisons.

AC amplitudes are given as peak values and written as RMS (the manual's 'dd' type is "applied AC
amplitude, Vrms"), rounded to 4 significant digits. Syntax follows PalmSens' examples
(MSLoopExample009-CP, -011-OCP, the LSV/CV/EIS examples): literals are integer + SI prefix, no
indentation needed, no blank line (a blank line ends the upload).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .methodscript_values import format_integer_literal, format_literal

PGSTAT_MODE_POTENTIOSTAT = 3  # "set_pgstat_mode 3" in the OCP/CA examples
PGSTAT_MODE_GALVANOSTAT = 6  # "set_pgstat_mode 6" in the CP examples
BANDWIDTH_HZ_TIMES_S = 5.85  # PalmSens cycling example: 5.850535 Hz for a 1 s interval
VARIABLES = ("t", "ewe", "iwe", "step_no", "tend", "n", "cut", "f", "zre", "zim")


@dataclass(frozen=True)
class ScriptOptions:
    sample_interval_s: float = 1.0
    # measurement loops need a run time; a step without max_duration_s gets this one (10 days)
    default_max_duration_s: float = 864_000.0
    potential_range_V: float = 4.0  # set_range ab: the largest |Ewe| expected
    steps_per_script: int = 50  # steps per uploaded script: script memory is finite


def script_header(options: ScriptOptions) -> list[str]:
    e_range = format_literal(options.potential_range_V)
    return [
        *(f"var {name}" for name in VARIABLES),
        "set_pgstat_chan 0",
        f"set_range ab {e_range}",
        f"set_autoranging ab 100m {e_range}",
        "timer_start",
    ]


def wrap_script(body: Sequence[str], options: ScriptOptions | None = None) -> list[str]:
    """Header, ``body``, ``on_finished:`` ``cell_off`` (without the leading ``e`` and the closing
    blank line, which ``upload_bytes`` adds)."""
    return [*script_header(options or ScriptOptions()), *body, "on_finished:", "cell_off"]


def rms_literal(peak: float) -> str:
    """A peak AC amplitude as the RMS literal the EIS loops take (4 significant digits)."""
    return format_literal(float(f"{peak / math.sqrt(2.0):.4g}"))


def max_bandwidth_for_interval(sample_interval_s: float) -> float:
    """The ``set_max_bandwidth`` for a sampling interval (3 significant digits)."""
    return float(f"{BANDWIDTH_HZ_TIMES_S / sample_interval_s:.3g}")


def pgstat_mode(mode: int, max_bandwidth_Hz: float) -> list[str]:
    return [f"set_pgstat_mode {mode}", f"set_max_bandwidth {format_literal(max_bandwidth_Hz)}"]


def package(*names: str) -> list[str]:
    """Read the timer into ``t`` and send one data package of the variables ``names``."""
    return ["timer_get t", "pck_start", *(f"pck_add {n}" for n in names), "pck_end"]


def if_break(*conditions: str) -> list[str]:
    """Nested ifs (all conditions true) around one breakloop."""
    return [f"if {c}" for c in conditions] + ["breakloop"] + ["endif"] * len(conditions)


def cp_loop(current_A: float, interval_s: float, run_time_s: float, body: Sequence[str] = ()) -> list[str]:
    """Chronopotentiometry at ``current_A``: a package every ``interval_s``, then ``body``."""
    return [
        f"meas_loop_cp ewe iwe {format_literal(current_A)} {format_literal(interval_s)} {format_literal(run_time_s)}",
        *package("t", "ewe", "iwe", "step_no"),
        *body,
        "endloop",
    ]


def ocp_loop(interval_s: float, run_time_s: float) -> list[str]:
    return [
        f"meas_loop_ocp ewe {format_literal(interval_s)} {format_literal(run_time_s)}",
        *package("t", "ewe", "step_no"),
        "endloop",
    ]


def _potential(e: float | str) -> str:
    """A potential argument: a literal, or the name of a variable holding it (e.g. a measured OCP)."""
    return e if isinstance(e, str) else format_literal(e)


def ca_loop(e_V: float | str, interval_s: float, run_time_s: float, body: Sequence[str] = ()) -> list[str]:
    """Chronoamperometry at ``e_V``: a package every ``interval_s``, then ``body``."""
    return [
        f"meas_loop_ca ewe iwe {_potential(e_V)} {format_literal(interval_s)} {format_literal(run_time_s)}",
        *package("t", "ewe", "iwe", "step_no"),
        *body,
        "endloop",
    ]


def lsv_loop(e_start_V: float | str, e_end_V: float, e_step_V: float, scan_rate_V_s: float) -> list[str]:
    """A linear sweep: one package per staircase step."""
    return [
        f"meas_loop_lsv ewe iwe {_potential(e_start_V)} {format_literal(e_end_V)} "
        f"{format_literal(e_step_V)} {format_literal(scan_rate_V_s)}",
        *package("t", "ewe", "iwe", "step_no"),
        "endloop",
    ]


def cv_loop(
    e_start_V: float | str, e_vertex1_V: float, e_vertex2_V: float, e_step_V: float, scan_rate_V_s: float,
    cycles: int,
) -> list[str]:  # fmt: skip
    return [
        f"meas_loop_cv ewe iwe {_potential(e_start_V)} {format_literal(e_vertex1_V)} "
        f"{format_literal(e_vertex2_V)} {format_literal(e_step_V)} {format_literal(scan_rate_V_s)} "
        f"nscans({cycles})",
        *package("t", "ewe", "iwe", "step_no"),
        "endloop",
    ]


def _impedance_loop(loop: str, amplitude: str, f_max_Hz: float, f_min_Hz: float, n: int, dc: str) -> list[str]:
    return [
        f"{loop} f zre zim {amplitude} {format_literal(f_max_Hz)} {format_literal(f_min_Hz)} "
        f"{format_integer_literal(n)} {dc}",
        *package("t", "f", "zre", "zim", "ewe", "iwe", "step_no"),
        "endloop",
    ]


def eis_loop(
    amplitude_peak_V: float, f_max_Hz: float, f_min_Hz: float, n_frequencies: int, e_dc: float | str = "ewe"
) -> list[str]:
    """Potentiostatic EIS around ``e_dc`` (a potential, or a variable name: ``"ewe"``, the last
    measured potential)."""
    dc = e_dc if isinstance(e_dc, str) else format_literal(e_dc)
    amplitude = rms_literal(amplitude_peak_V)
    return _impedance_loop("meas_loop_eis", amplitude, f_max_Hz, f_min_Hz, n_frequencies, dc)


def geis_loop(
    amplitude_peak_A: float, f_max_Hz: float, f_min_Hz: float, n_frequencies: int, i_dc_A: float
) -> list[str]:
    """Galvanostatic EIS around ``i_dc_A``."""
    amplitude, dc = rms_literal(amplitude_peak_A), format_literal(i_dc_A)
    return _impedance_loop("meas_loop_geis", amplitude, f_max_Hz, f_min_Hz, n_frequencies, dc)


def voltage_cutoff(current_A: float, e_min_V: float | None, e_max_V: float | None) -> str | None:
    """A current source's voltage cut-off: ``ewe >= e_max`` charging (current > 0),
    ``ewe <= e_min`` discharging; None if there is none in the current's direction."""
    if current_A > 0 and e_max_V is not None:
        return f"ewe >= {format_literal(e_max_V)}"
    if current_A < 0 and e_min_V is not None:
        return f"ewe <= {format_literal(e_min_V)}"
    return None


def current_cutoff(i_cut_A: float) -> list[str]:
    """|iwe| <= i_cut as two conditions for ``if_break`` (MethodSCRIPT has no abs in a condition)."""
    return [f"iwe <= {format_literal(i_cut_A)}", f"iwe >= {format_literal(-i_cut_A)}"]


def upload_bytes(lines: Sequence[str]) -> bytes:
    """What goes on the wire: ``e``, the lines, a blank line; LF endings, ASCII only."""
    for line in lines:
        if not line.strip() or "\n" in line or "\r" in line:
            raise ValueError(f"script line must be one non-blank line: {line!r}")
    return ("e\n" + "".join(f"{line}\n" for line in lines) + "\n").encode("ascii")
