"""SCPI grammar as the Keithley 2450 Reference Manual describes it: program messages, headers,
mnemonics in long/short form, optional nodes, parameters. No instrument state here.

- A line is one program message; ``;`` separates message units. A unit starting with ``:`` is
  addressed from the root; one without continues from the previous unit's path (its last node
  replaced); common commands (``*RST``) never change the path.
- A mnemonic is written ``SOURce``: the upper-case letters are the short form; either form is
  accepted in any case. ``[:LEVel]`` marks an optional node.
- A header ending in ``?`` is a query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NODE = re.compile(r"(\[)?:?([A-Za-z*][A-Za-z0-9]*)(\])?")


class ScpiError(Exception):
    """An SCPI error for the error queue: code (negative = standard SCPI) and message."""

    def __init__(self, code: int, message: str):
        super().__init__(f'{code},"{message}"')
        self.code = code
        self.message = message


UNDEFINED_HEADER = (-113, "Undefined header")
MISSING_PARAMETER = (-109, "Missing parameter")
ILLEGAL_PARAMETER = (-224, "Illegal parameter value")
DATA_TYPE_ERROR = (-104, "Data type error")
QUERY_ONLY = (-113, "Undefined header")  # the 2450 reports a command form of a query as undefined


@dataclass(frozen=True)
class MessageUnit:
    nodes: tuple[str, ...]  # upper-case mnemonics as received, e.g. ("SOUR", "CURR", "VLIM")
    query: bool
    params: tuple[str, ...]  # raw parameter texts, stripped (strings keep their quotes)
    common: bool  # *IDN? and friends


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split on ``separator`` where it is not inside a quoted string; parts stripped."""
    parts, buf, quote = [], [], None
    for ch in text:
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
            buf.append(ch)
        elif ch == separator:
            parts.append("".join(buf).strip())
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf).strip())
    return parts


def split_units(line: str) -> list[str]:
    """Split a program message on ``;`` outside quoted strings; empty units dropped."""
    return [u for u in _split_outside_quotes(line, ";") if u]


def split_params(text: str) -> tuple[str, ...]:
    """Comma-separated parameters, quotes respected."""
    if not text.strip():
        return ()
    return tuple(_split_outside_quotes(text, ","))


def parse_message(line: str) -> list[MessageUnit]:
    """One line -> message units with absolute paths (the SCPI path rules applied)."""
    out: list[MessageUnit] = []
    path: tuple[str, ...] = ()
    for unit in split_units(line):
        header, _, rest = unit.partition(" ")
        header = header.strip()
        query = header.endswith("?")
        header = header.rstrip("?")
        if header.lstrip(":").startswith("*"):
            out.append(MessageUnit((header.lstrip(":").upper(),), query, split_params(rest), True))
            continue
        absolute = header.startswith(":")
        nodes = tuple(n.upper() for n in header.strip(":").split(":") if n)
        if not nodes:
            raise ScpiError(*UNDEFINED_HEADER)
        if not absolute and path:
            nodes = path[:-1] + nodes
        path = nodes
        out.append(MessageUnit(nodes, query, split_params(rest), False))
    return out


class Pattern:
    """A header pattern such as ``:SOURce:CURRent[:LEVel][:IMMediate][:AMPLitude]``."""

    def __init__(self, text: str):
        self.text = text
        self._nodes: list[tuple[str, str, bool]] = []  # long, short, optional
        for m in _NODE.finditer(text.replace("][", "] [")):
            word = m.group(2)
            if not word:
                continue
            short = "".join(c for c in word if c.isupper() or c.isdigit() or c == "*")
            self._nodes.append((word.upper(), short, bool(m.group(1))))

    def matches(self, nodes: tuple[str, ...]) -> bool:
        return self._match(0, list(nodes))

    def _match(self, i: int, nodes: list[str]) -> bool:
        if i == len(self._nodes):
            return not nodes
        long, short, optional = self._nodes[i]
        if nodes and nodes[0] in (long, short) and self._match(i + 1, nodes[1:]):
            return True
        return optional and self._match(i + 1, nodes)


def parse_number(text: str, *, allow: dict[str, float] | None = None) -> float:
    """A numeric parameter; ``allow`` maps keywords (MIN, MAX, DEF...) to values."""
    word = text.strip().upper()
    for key, value in (allow or {}).items():
        if word in (key, key[:3]):
            return value
    try:
        return float(word)
    except ValueError:
        raise ScpiError(*DATA_TYPE_ERROR) from None


def parse_bool(text: str) -> bool:
    word = text.strip().upper()
    if word in ("ON", "1"):
        return True
    if word in ("OFF", "0"):
        return False
    raise ScpiError(*ILLEGAL_PARAMETER)


def unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def format_number(value: float) -> str:
    """The 2450's ASCII number format (e.g. ``-1.000000E-03``)."""
    return f"{value:.6E}"
