"""The MethodSCRIPT subset the simulated EmStat4 understands: script text -> program tree.

From PalmSens' manual and examples: one command per line, ``#`` starts a comment, variables are
declared with ``var`` before use, numbers are an integer with an optional SI prefix (``100m``)
or an ``i`` suffix for integers (``3i``), or hex (``0x1F``); measurement loops and ``loop`` end
with ``endloop``; ``if``/``elseif``/``else``/``endif``; ``breakloop``; everything after
``on_finished:`` runs when the script ends or is aborted.

Measurement loops: ``meas_loop_ocp``, ``_cp``, ``_ca``, ``_lsv``, ``_cv`` (optional
``nscans(N)``), ``_eis`` and ``_geis``. Not implemented (rejected as unknown commands): arrays,
send_string, file and GPIO commands, the other techniques. A load error is reported as code
0x4001 with the 1-based line (after the ``e`` line) and column: which codes the real firmware
uses for which fault is not confirmed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SYNTAX_ERROR = 0x4001

_PREFIX = {"a": 1e-18, "f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3,
           "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}  # fmt: skip
_NUMBER = re.compile(r"^(-?\d+)([afpnumkMGTPE]|i)?$")
_HEXNUM = re.compile(r"^0x[0-9A-Fa-f]+$")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_COMPARE = {"<", "<=", ">", ">=", "==", "!="}

# simple commands: name -> (min args, max args, indices of args that must be variables)
_SIMPLE: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "var": (1, 1, ()),
    "store_var": (3, 3, (0,)),
    "copy_var": (2, 2, (0, 1)),
    "add_var": (2, 2, (0,)),
    "sub_var": (2, 2, (0,)),
    "mul_var": (2, 2, (0,)),
    "div_var": (2, 2, (0,)),
    "set_pgstat_chan": (1, 1, ()),
    "set_pgstat_mode": (1, 1, ()),
    "set_max_bandwidth": (1, 1, ()),
    "set_acquisition_frac_autoadjust": (1, 1, ()),
    "set_range": (2, 2, ()),
    "set_autoranging": (3, 3, ()),
    "set_range_minmax": (3, 3, ()),
    "set_i": (1, 1, ()),
    "set_e": (1, 1, ()),
    "cell_on": (0, 1, ()),
    "cell_off": (0, 0, ()),
    "timer_start": (0, 0, ()),
    "timer_get": (1, 1, (0,)),
    "pck_start": (0, 0, ()),
    "pck_add": (1, 1, (0,)),
    "pck_end": (0, 0, ()),
    "breakloop": (0, 0, ()),
}
# blocks closed by endloop: name -> (min args, max args, indices of output variables)
_LOOPS: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "meas_loop_cp": (5, 5, (0, 1)),  # E[out] I[out] I_dc t_interval t_run
    "meas_loop_ocp": (3, 3, (0,)),  # E[out] t_interval t_run
    "meas_loop_ca": (5, 5, (0, 1)),  # E[out] I[out] E_dc t_interval t_run
    "meas_loop_lsv": (6, 6, (0, 1)),  # E[out] I[out] E_begin E_end E_step scan_rate
    "meas_loop_cv": (7, 8, (0, 1)),  # E[out] I[out] E_begin E_vtx1 E_vtx2 E_step rate [nscans(N)]
    "meas_loop_eis": (8, 8, (0, 1, 2)),  # f[out] Z'[out] Z''[out] E_ac f_start f_end n_freq E_dc
    "meas_loop_geis": (8, 8, (0, 1, 2)),  # f[out] Z'[out] Z''[out] I_ac f_start f_end n_freq I_dc
    "loop": (3, 3, ()),  # a <op> b
}
NSCANS = re.compile(r"^nscans\((\d+)\)$")


class ScriptSyntaxError(ValueError):
    def __init__(self, line: int, column: int, what: str):
        super().__init__(f"Line {line}, Col {column}: {what}")
        self.code, self.line, self.column = SYNTAX_ERROR, line, column


@dataclass
class Command:
    line: int
    name: str
    args: list[str]


@dataclass
class Loop:
    line: int
    name: str
    args: list[str]
    body: list = field(default_factory=list)


@dataclass
class IfChain:
    line: int
    branches: list[tuple[list[str] | None, list]] = field(default_factory=list)


@dataclass
class Program:
    body: list
    on_finished: list


def is_number(token: str) -> bool:
    return bool(_NUMBER.match(token) or _HEXNUM.match(token))


def number_value(token: str) -> tuple[float, bool]:
    """Literal -> (value, is_integer)."""
    if _HEXNUM.match(token):
        return float(int(token, 16)), True
    m = _NUMBER.match(token)
    if not m:
        raise ValueError(f"not a number: {token!r}")
    digits, suffix = int(m[1]), m[2]
    if suffix == "i":
        return float(digits), True
    return digits * _PREFIX.get(suffix or "", 1.0), False


def parse_script(lines: list[str]) -> Program:
    declared: set[str] = set()
    root: list = []
    finished: list = []
    stack: list = []  # open Loop / IfChain nodes
    target = root
    in_finish = False
    for n, raw in enumerate(lines, start=1):
        text = raw.split("#", 1)[0]
        tokens = text.split()
        if not tokens:
            continue
        name, args = tokens[0], tokens[1:]
        col = text.index(name) + 1

        def fail(what: str, arg_index: int | None = None) -> ScriptSyntaxError:
            c = col if arg_index is None else text.index(args[arg_index], col) + 1
            return ScriptSyntaxError(n, c, what)

        def check_args(lo: int, hi: int, var_idx: tuple[int, ...]) -> None:
            if not lo <= len(args) <= hi:
                raise fail(f"{name} takes {lo}..{hi} arguments")
            for i, arg in enumerate(args):
                if name == "var":
                    if not _NAME.match(arg):
                        raise fail("bad variable name", i)
                elif (
                    name == "store_var"
                    and i == 2
                    or name in ("set_range", "set_autoranging", "set_range_minmax")
                    and i == 0
                ):
                    if not re.match(r"^[a-z]{2}$", arg):
                        raise fail("bad variable type", i)
                elif name == "cell_on" or name == "meas_loop_cv" and i == 7 and NSCANS.match(arg):
                    continue  # "cell_on ocp(var)" variant: accepted, not simulated
                elif i in var_idx or not is_number(arg) and arg not in _COMPARE:
                    if arg not in declared:
                        raise fail(f"undeclared variable {arg!r}", i)

        if name == "on_finished:":
            if stack or in_finish:
                raise fail("on_finished: inside a block")
            in_finish, target = True, finished
            continue
        if name in _SIMPLE:
            check_args(*_SIMPLE[name])
            if name == "var":
                declared.add(args[0])
            if name == "breakloop" and not any(isinstance(s, Loop) for s, _ in stack):
                raise fail("breakloop outside a loop")
            target.append(Command(n, name, args))
        elif name in _LOOPS:
            check_args(*_LOOPS[name])
            if name == "loop" and args[1] not in _COMPARE:
                raise fail("loop needs a comparison", 1)
            if name.startswith("meas_loop") and any(
                isinstance(s, Loop) and s.name.startswith("meas_loop") for s, _ in stack
            ):
                raise fail("measurement loops cannot be nested")
            node = Loop(n, name, args)
            target.append(node)
            stack.append((node, target))
            target = node.body
        elif name == "endloop":
            if not stack or not isinstance(stack[-1][0], Loop):
                raise fail("endloop without loop")
            _node, target = stack.pop()
        elif name in ("if", "elseif"):
            check_args(3, 3, ())
            if args[1] not in _COMPARE:
                raise fail("expected a comparison", 1)
            if name == "if":
                chain = IfChain(n)
                target.append(chain)
                stack.append((chain, target))
            elif not stack or not isinstance(stack[-1][0], IfChain):
                raise fail("elseif without if")
            chain = stack[-1][0]
            chain.branches.append((args, []))
            target = chain.branches[-1][1]
        elif name == "else":
            if not stack or not isinstance(stack[-1][0], IfChain) or args:
                raise fail("else without if")
            chain = stack[-1][0]
            chain.branches.append((None, []))
            target = chain.branches[-1][1]
        elif name == "endif":
            if not stack or not isinstance(stack[-1][0], IfChain):
                raise fail("endif without if")
            _node, target = stack.pop()
        else:
            raise fail(f"unknown command {name!r}")
    if stack:
        raise ScriptSyntaxError(stack[-1][0].line, 1, "block not closed")
    return Program(root, finished)
