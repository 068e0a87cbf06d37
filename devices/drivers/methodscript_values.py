"""MethodSCRIPT numbers: data-package variables and script literals (no I/O).

Facts (PalmSens MethodSCRIPT examples and manual):
- a package variable is a 2-char type, 7 hex digits holding ``value + 2**27`` and one SI-prefix
  character, e.g. ``ba80004D2n`` = 1234 nA; the prefix ``i`` marks an integer; ``     nan``
  (five spaces) replaces digits and prefix for NaN;
- optional metadata follow, comma separated: ``1X`` status flags (1 hex digit), ``2XX`` range
  (2 hex digits), e.g. ``ba48D503Dp,10,288``;
- script literals are an integer and an optional SI prefix (``100m``, ``2100m``), integers
  ``3i``; the examples never use a decimal point, so neither do we.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

OFFSET = 1 << 27  # the 7 hex digits carry value + 2**27
_MAX_MANTISSA = OFFSET - 1

SI_EXPONENTS: dict[str, int] = {
    "a": -18, "f": -15, "p": -12, "n": -9, "u": -6, "m": -3, " ": 0,
    "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18,
}  # fmt: skip
SI_PREFIXES: dict[str, float] = {p: 10.0**e for p, e in SI_EXPONENTS.items()}
INTEGER_PREFIX = "i"

# Variable types (MethodSCRIPT manual, "Measurement data package variables"), with SI units.
VAR_TYPES: dict[str, tuple[str, str]] = {
    "aa": ("unknown", ""),
    "ab": ("WE vs RE potential", "V"),
    "ac": ("CE vs GND potential", "V"),
    "ad": ("SE vs GND potential", "V"),
    "ae": ("RE vs GND potential", "V"),
    "af": ("WE vs GND potential", "V"),
    "ag": ("WE vs CE potential", "V"),
    "as": ("AIN0 potential", "V"),
    "at": ("AIN1 potential", "V"),
    "au": ("AIN2 potential", "V"),
    "av": ("AIN3 potential", "V"),
    "aw": ("AIN4 potential", "V"),
    "ax": ("AIN5 potential", "V"),
    "ay": ("AIN6 potential", "V"),
    "az": ("AIN7 potential", "V"),
    "ba": ("WE current", "A"),
    "bb": ("WE2 current", "A"),
    "ca": ("phase", "deg"),
    "cb": ("impedance", "ohm"),
    "cc": ("Z real", "ohm"),
    "cd": ("Z imaginary", "ohm"),
    "da": ("applied potential", "V"),
    "db": ("applied current", "A"),
    "dc": ("applied frequency", "Hz"),
    "dd": ("applied AC amplitude", "Vrms"),
    "ea": ("channel", ""),
    "eb": ("time", "s"),
    "ec": ("pin mask", ""),
    "ed": ("temperature", "degC"),
    "ee": ("count", ""),
    "ha": ("generic current 1", "A"),
    "hb": ("generic current 2", "A"),
    "ia": ("generic potential 1", "V"),
    "ib": ("generic potential 2", "V"),
    "ja": ("misc. generic 1", ""),
    "jb": ("misc. generic 2", ""),
}

# Status flags of the ``1X`` metadata.
STATUS_FLAGS = {0x1: "timing error", 0x2: "overload", 0x4: "underload", 0x8: "overload warning"}


@dataclass(frozen=True)
class PackageVariable:
    """One variable of a data package, in SI units."""

    type: str
    value: float
    status: int | None = None
    range_code: int | None = None
    is_integer: bool = False

    @property
    def unit(self) -> str:
        return VAR_TYPES.get(self.type, ("", ""))[1]


def decode_value(field: str) -> tuple[float, bool]:
    """``'80004D2n'`` -> (1.234e-06, False). Returns (value, is_integer)."""
    if len(field) != 8:
        raise ValueError(f"a MethodSCRIPT value is 7 hex digits and a prefix, got {field!r}")
    if field == "     nan":
        return math.nan, False
    digits, prefix = field[:7], field[7]
    mantissa = int(digits, 16) - OFFSET
    if prefix == INTEGER_PREFIX:
        return float(mantissa), True
    if prefix not in SI_EXPONENTS:
        raise ValueError(f"unknown SI prefix {prefix!r} in {field!r}")
    return _scale(mantissa, SI_EXPONENTS[prefix]), False


def _scale(x: float, exponent: int) -> float:
    """x * 10**exponent, dividing for negative exponents: 1234 n -> 1.234e-06 exactly rounded."""
    return x * 10.0**exponent if exponent >= 0 else x / 10.0**-exponent


def encode_value(value: float, integer: bool = False) -> str:
    """Inverse of ``decode_value``, at the finest prefix that holds the value."""
    if integer:
        return _hex(int(value)) + INTEGER_PREFIX
    if math.isnan(value):
        return "     nan"
    if value == 0:
        return _hex(0) + " "
    for prefix, exponent in SI_EXPONENTS.items():  # finest first: most significant digits
        mantissa = round(_scale(value, -exponent))
        if abs(mantissa) <= _MAX_MANTISSA:
            return _hex(mantissa) + prefix
    raise ValueError(f"{value!r} is too large for a MethodSCRIPT package")


def _hex(mantissa: int) -> str:
    if abs(mantissa) > _MAX_MANTISSA:
        raise ValueError(f"mantissa {mantissa} does not fit 7 hex digits")
    return f"{mantissa + OFFSET:07X}"


def parse_variable(token: str) -> PackageVariable:
    """``'ba80004D2n,10,20B'`` -> PackageVariable('ba', 1.234e-06, status=0, range_code=11)."""
    fields = token.split(",")
    head = fields[0]
    if len(head) != 10:
        raise ValueError(f"malformed package variable {token!r}")
    value, is_int = decode_value(head[2:])
    status = range_code = None
    for meta in fields[1:]:
        if len(meta) == 2 and meta[0] == "1":
            status = int(meta[1], 16)
        elif len(meta) == 3 and meta[0] == "2":
            range_code = int(meta[1:], 16)
        # other metadata ids exist on newer firmware (e.g. noise); ignored, not an error
    return PackageVariable(head[:2], value, status, range_code, is_int)


def format_variable(var: PackageVariable) -> str:
    text = var.type + encode_value(var.value, var.is_integer)
    if var.status is not None:
        text += f",1{var.status:X}"
    if var.range_code is not None:
        text += f",2{var.range_code:02X}"
    return text


# Script literals: the coarsest prefix that still writes the value as an integer.
_LITERAL_PREFIXES = ["G", "M", "k", "", "m", "u", "n", "p", "f"]
_LITERAL_FACTORS = {"": 1.0, **{p: SI_PREFIXES[p] for p in _LITERAL_PREFIXES if p}}


def format_literal(value: float) -> str:
    """A number as a script literal: 0.5 -> '500m', 3600 -> '3600', -1e-4 -> '-100u'."""
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value!r} in a MethodSCRIPT script")
    if value == 0:
        return "0"
    value = float(f"{value:.9g}")  # binary noise (0.1 + 0.2) must not force a finer prefix
    for prefix in _LITERAL_PREFIXES:
        scaled = value / _LITERAL_FACTORS[prefix]
        mantissa = round(scaled)
        if mantissa != 0 and abs(scaled - mantissa) <= 1e-9 * abs(scaled) and abs(mantissa) < 2**31:
            return f"{mantissa}{prefix}"
    raise ValueError(f"{value!r} has no exact MethodSCRIPT literal")


def format_integer_literal(value: int) -> str:
    return f"{int(value)}i"
