"""Simulated EmStat4 firmware: executes a parsed MethodSCRIPT against a ``SimCell``.

Time: only measurement loops take instrument time (other commands are instantaneous, as on
the real firmware, where they take microseconds; on an accelerated clock the host's
milliseconds would otherwise become minutes of current). A loop samples at the instants
``methodscript_loops`` gives for it (a fixed grid ``loop start + k * interval``, a staircase
step, or one impedance frequency: max(2 periods, 0.1 s)); before each sample the firmware
sleeps until the ``SimClock`` reaches that time (never, if it lags behind), then drives the cell
up to it: ``SimCell.run`` (ocp, cp, geis), ``run_potential`` (ca, lsv, cv, eis), and for EIS
``SimCell.impedance`` about the state reached. Between scripts the cell rests on the clock: it
is caught up to the clock when a script starts. Output lines follow the manual: ``MXXXX`` at a
measurement loop's start,
``*`` at its end (also after breakloop or abort), ``L``/``+`` around ``loop``, ``P`` packages,
an empty line when the script is over. Package values are encoded here, from the manual's
description (7 hex digits of value + 2**27, SI prefix), independently of the driver.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numpy as np

from operando.sim_devices.cell import SimCell
from operando.sim_devices.clock import SimClock

from .methodscript_language import NSCANS, Command, IfChain, Loop, Program, is_number, number_value
from .methodscript_loops import Sample, samples

# Technique numbers in "MXXXX": OCP = 0x000B appears in published transcripts; the others
# follow PalmSens' method numbering (LSV 0, CV 5, CA 7, CP 10, EIS 14, GEIS 21) and were not
# seen in a transcript.
TECHNIQUE_CODES = {
    "meas_loop_lsv": 0x0000, "meas_loop_cv": 0x0005, "meas_loop_ca": 0x0007,
    "meas_loop_cp": 0x000A, "meas_loop_ocp": 0x000B, "meas_loop_eis": 0x000E,
    "meas_loop_geis": 0x0015,
}  # fmt: skip
# how many leading arguments of each loop are output variables
_OUTPUTS = {"meas_loop_ocp": 1, "meas_loop_cp": 2, "meas_loop_ca": 2, "meas_loop_lsv": 2,
            "meas_loop_cv": 2, "meas_loop_eis": 3, "meas_loop_geis": 3}  # fmt: skip
PGSTAT_MODE_GALVANOSTAT = 6
# EmStat4 current ranges (range code -> full scale, A), PalmSens MethodSCRIPT examples
_EMSTAT4_CURRENT_RANGES = [(9, 1e-7), (12, 1e-6), (15, 1e-5), (18, 1e-4), (21, 1e-3), (24, 1e-2),
                           (27, 1e-1)]  # fmt: skip
_PREFIXES = "afpnum kMGTPE"


def encode_package_value(value: float, integer: bool = False) -> str:
    """8 characters: hex(mantissa + 2**27) in 7 digits, then the SI prefix (``i``: integer)."""
    if integer:
        return f"{int(value) + 2**27:07X}i"
    if math.isnan(value):
        return "     nan"
    exponent = -18
    for prefix in _PREFIXES:  # smallest unit whose mantissa still fits 27 bits
        mantissa = int(round(value / 10.0**exponent))
        if -(2**27) < mantissa < 2**27:
            return f"{mantissa + 2**27:07X}{prefix}"
        exponent += 3
    raise OverflowError(value)


def current_range_code(current_A: float) -> int:
    for code, full_scale in _EMSTAT4_CURRENT_RANGES:
        if abs(current_A) <= full_scale:
            return code
    return _EMSTAT4_CURRENT_RANGES[-1][0]


class _Break(Exception):
    pass


class _Abort(Exception):
    pass


class SimFirmware:
    def __init__(self, cell: SimCell, clock: SimClock, write_line: Callable[[str], None]):
        self.cell = cell
        self.clock = clock
        self._write = write_line
        self._abort = threading.Event()
        self.cell_time = clock.time()  # sim epoch time the cell has been advanced to
        self.cell_on = False
        self.pgstat_mode = 3
        self.set_current_A = 0.0
        self._timer0 = self.cell_time
        self._vars: dict[str, tuple[float, str, bool]] = {}
        self._package: list[str] | None = None

    # ---- control from the server thread ------------------------------------------------------
    def abort(self) -> None:
        self._abort.set()

    def run(self, program: Program) -> None:
        """Execute to the end (or abort), then on_finished. The caller writes the final empty
        line, once it no longer counts the script as running."""
        self._abort.clear()
        self._vars = {}
        self.relax_to_now()  # the cell rested (or kept its last current) while idle
        try:
            self._block(program.body)
        except _Abort:
            pass
        finally:
            self._abort.clear()  # on_finished must run to completion
            self._block(program.on_finished)

    # ---- time and cell -----------------------------------------------------------------------
    def _applied_current(self) -> float:
        galvanostat = self.cell_on and self.pgstat_mode == PGSTAT_MODE_GALVANOSTAT
        return self.set_current_A if galvanostat else 0.0

    def relax_to_now(self) -> None:
        gap = self.clock.time() - self.cell_time
        if gap > 1e-9:
            current = self._applied_current()
            if current == 0:  # idle at open circuit: growing implicit steps (an idle day is cheap)
                self.cell.relax(gap)
            else:
                self.cell.run(current, np.array([gap]))
            self.cell_time += gap

    def _wait_until(self, t: float) -> None:
        while True:
            if self._abort.is_set():
                raise _Abort
            remaining = t - self.clock.time()
            if remaining <= 0:
                return
            self._abort.wait(min(self.clock.wall_seconds(remaining), 0.05))

    # ---- interpreter -------------------------------------------------------------------------
    def _value(self, token: str) -> float:
        return number_value(token)[0] if is_number(token) else self._vars[token][0]

    def _set(self, name: str, value: float, var_type: str | None = None, integer=None) -> None:
        _old, old_type, old_int = self._vars.get(name, (0.0, "aa", False))
        self._vars[name] = (
            value,
            var_type or old_type,
            old_int if integer is None else integer,
        )

    def _compare(self, a: str, op: str, b: str) -> bool:
        x, y = self._value(a), self._value(b)
        return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y, "==": x == y,
                "!=": x != y}[op]  # fmt: skip

    def _block(self, nodes: list) -> None:
        for node in nodes:
            if isinstance(node, Command):
                self._command(node)
            elif isinstance(node, IfChain):
                for condition, body in node.branches:
                    if condition is None or self._compare(*condition):
                        self._block(body)
                        break
            elif isinstance(node, Loop):
                self._loop(node)

    def _command(self, c: Command) -> None:
        name, a = c.name, c.args
        if name == "var":
            self._vars[a[0]] = (0.0, "aa", False)
        elif name == "store_var":
            value, integer = number_value(a[1]) if is_number(a[1]) else (self._value(a[1]), False)
            self._vars[a[0]] = (value, a[2], integer)
        elif name == "copy_var":
            self._vars[a[1]] = self._vars[a[0]]
        elif name in ("add_var", "sub_var", "mul_var", "div_var"):
            x, y = self._vars[a[0]][0], self._value(a[1])
            ops = {"add_var": x + y, "sub_var": x - y, "mul_var": x * y,
                   "div_var": x / y if y else math.nan}  # fmt: skip
            self._set(a[0], ops[name])
        elif name == "set_pgstat_mode":
            self.pgstat_mode = int(self._value(a[0]))
        elif name == "set_i":
            self.set_current_A = self._value(a[0])
        elif name in ("cell_on", "cell_off"):
            self.cell_on = name == "cell_on"
            if not self.cell_on and self.cell.current_A != 0.0:
                # the current stops with the switch; an instant at rest records it (cell_time,
                # the script's sample clock, is not moved: the next sample's gap is unchanged)
                self.cell.relax(1e-9)
        elif name == "timer_start":
            self._timer0 = self.cell_time
        elif name == "timer_get":
            self._set(a[0], self.cell_time - self._timer0, "eb", False)
        elif name == "pck_start":
            self._package = []
        elif name == "pck_add" and self._package is not None:
            self._package.append(self._format_var(a[0]))
        elif name == "pck_end" and self._package is not None:
            self._write("P" + ";".join(self._package))
            self._package = None
        elif name == "breakloop":
            raise _Break
        # range, bandwidth, channel settings: accepted, no effect on the simulated cell

    def _format_var(self, name: str) -> str:
        value, var_type, integer = self._vars[name]
        text = var_type + encode_package_value(value, integer)
        if var_type == "ba":  # measured current: status OK, current range
            text += f",10,2{current_range_code(value):02X}"
        return text

    def _loop(self, node: Loop) -> None:
        if node.name == "loop":
            self._write("L")
            try:
                while self._compare(*node.args):
                    if self._abort.is_set():
                        raise _Abort
                    self._block(node.body)
            except _Break:
                pass
            finally:
                self._write("+")
            return
        self._write(f"M{TECHNIQUE_CODES[node.name]:04X}")
        try:
            self._meas_loop(node)
        except _Break:
            pass
        finally:
            self._write("*")

    def _meas_loop(self, node: Loop) -> None:
        outputs = _OUTPUTS[node.name]
        inputs = node.args[outputs:]
        nscans = 1
        if inputs and (m := NSCANS.match(inputs[-1])):
            nscans, inputs = int(m[1]), inputs[:-1]
        t0 = self.cell_time
        for sample in samples(node.name, [self._value(a) for a in inputs], nscans):
            target = t0 + sample.at_s
            self._wait_until(target)
            self._take(sample, node.args[:outputs], target - self.cell_time)
            self.cell_time = target
            self._block(node.body)

    def _take(self, sample: Sample, out: list[str], gap: float) -> None:
        """Drive the cell for ``gap`` s as the sample's mode says; store the loop's outputs."""
        gap = np.array([max(gap, 1e-9)])
        if sample.mode == "ocp":
            self._set(out[0], float(self.cell.run(0.0, gap).ewe_V[-1]), "ab", False)
        elif sample.mode == "cp":
            # the set current flows only with the cell on in galvanostat mode
            self.set_current_A = sample.setpoint
            current = self._applied_current()
            self._set(out[0], float(self.cell.run(current, gap).ewe_V[-1]), "ab", False)
            self._set(out[1], current, "ba", False)
        elif sample.mode == "ca":
            trace = self.cell.run_potential(sample.setpoint, gap)
            self._set(out[0], sample.setpoint, "da", False)
            self._set(out[1], float(trace.current_A[-1]), "ba", False)
        else:  # eis / geis: hold the DC point for the frequency's time, then Z about that state
            if sample.mode == "eis":
                self.cell.run_potential(sample.setpoint, gap)
            else:
                self.set_current_A = sample.setpoint
                self.cell.run(self._applied_current(), gap)
            z = complex(self.cell.impedance(np.array([sample.frequency_Hz]))[0])
            self._set(out[0], sample.frequency_Hz, "dc", False)
            self._set(out[1], z.real, "cc", False)
            self._set(out[2], z.imag, "cd", False)
