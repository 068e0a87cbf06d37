"""The techniques a potentiostat executes, in SI units, as the instrument's own language.

A protocol file (C-rates, A/g, loops) is compiled into a flat list of ``ScheduledStep``; every
potentiostat backend (simulated, MethodSCRIPT, Keithley) executes that list as firmware would, so
the electrochemical stream never waits for the host between steps.

Sign convention: current > 0 charges the working electrode (E rises), current < 0 discharges it.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

# Where a sweep from open circuit is taken to start before the instrument has measured it: only
# for duration estimates (progress, schedules); the sweep itself starts where the cell rests.
OCV_ESTIMATE_V = 1.5


class _Technique(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    label: str = ""


class OpenCircuit(_Technique):
    """Rest at open circuit (no current) for a fixed time."""

    kind: Literal["ocv"] = "ocv"
    duration_s: PositiveFloat


class ConstantCurrent(_Technique):
    """Galvanostatic step: hold ``current_A`` until a voltage cut-off or the time limit."""

    kind: Literal["cc"] = "cc"
    current_A: float
    e_min_V: Optional[float] = None  # ends a discharge (current < 0)
    e_max_V: Optional[float] = None  # ends a charge (current > 0)
    max_duration_s: Optional[PositiveFloat] = None


class ConstantCurrentConstantVoltage(_Technique):
    """CCCV: ``current_A`` until Ewe reaches ``e_hold_V``, then hold ``e_hold_V`` until |I| falls
    to ``i_cutoff_A`` (or the whole step reaches ``max_duration_s``). The sign of ``current_A``
    sets the direction: > 0 charges up to e_hold_V, < 0 discharges down to it."""

    kind: Literal["cccv"] = "cccv"
    current_A: float
    e_hold_V: float
    i_cutoff_A: PositiveFloat
    max_duration_s: Optional[PositiveFloat] = None

    @model_validator(mode="after")
    def _cutoff_below_current(self):
        if self.current_A == 0:
            raise ValueError("current_A must not be 0 (a rest is kind: ocv)")
        if self.i_cutoff_A >= abs(self.current_A):
            raise ValueError("i_cutoff_A must be below |current_A|, or the CV phase ends at once")
        return self


class LinearSweep(_Technique):
    """LSV: Ewe swept linearly from ``e_start_V`` to ``e_end_V`` at ``scan_rate_V_s``, as a
    staircase of ``e_step_V`` (how digital potentiostats sweep); ends at e_end_V.

    ``e_start_V`` None: the sweep starts at the open-circuit potential the instrument measures
    when the step begins (no jump through the cell's resistance); ``starting_at`` fixes it."""

    kind: Literal["lsv"] = "lsv"
    e_start_V: Optional[float] = None
    e_end_V: float
    scan_rate_V_s: PositiveFloat
    e_step_V: PositiveFloat = 0.001

    @model_validator(mode="after")
    def _moves(self):
        if self.e_start_V == self.e_end_V:
            raise ValueError("e_start_V and e_end_V must differ")
        return self

    def starting_at(self, rest_potential_V: float) -> LinearSweep:
        """This sweep with its start fixed: unchanged if given, else the rest potential."""
        if self.e_start_V is not None:
            return self
        start = float(rest_potential_V)
        if abs(start - self.e_end_V) < self.e_step_V:  # already there: one staircase step away
            start = self.e_end_V - math.copysign(self.e_step_V, self.e_end_V - start or 1.0)
        return self.model_copy(update={"e_start_V": start})

    @property
    def duration_s(self) -> float:
        """The sweep's time; from open circuit, an estimate until ``starting_at`` fixes it."""
        start = self.e_start_V if self.e_start_V is not None else OCV_ESTIMATE_V
        return abs(self.e_end_V - start) / self.scan_rate_V_s


class CyclicVoltammetry(_Technique):
    """CV: each of ``cycles`` scans goes e_start -> e_vertex1 -> e_vertex2 -> e_start at
    ``scan_rate_V_s`` (staircase of ``e_step_V``). The cycle column keeps the protocol's cycle;
    the scan number is the time since the step began divided by ``scan_duration_s``.

    ``e_start_V`` None: each scan starts and ends at the open-circuit potential measured when
    the step begins (held within the vertices); ``starting_at`` fixes it."""

    kind: Literal["cv"] = "cv"
    e_start_V: Optional[float] = None
    e_vertex1_V: float
    e_vertex2_V: float
    scan_rate_V_s: PositiveFloat
    cycles: PositiveInt = 1
    e_step_V: PositiveFloat = 0.001

    @model_validator(mode="after")
    def _vertices(self):
        if self.e_vertex1_V == self.e_vertex2_V:
            raise ValueError("e_vertex1_V and e_vertex2_V must differ")
        lo, hi = sorted((self.e_vertex1_V, self.e_vertex2_V))
        if self.e_start_V is not None and not lo <= self.e_start_V <= hi:
            raise ValueError("e_start_V must lie between the two vertices")
        return self

    def starting_at(self, rest_potential_V: float) -> CyclicVoltammetry:
        """This CV with its start fixed: unchanged if given, else the rest potential (clamped
        into the vertices, so a cell resting just outside them starts at the nearer one)."""
        if self.e_start_V is not None:
            return self
        lo, hi = sorted((self.e_vertex1_V, self.e_vertex2_V))
        return self.model_copy(update={"e_start_V": min(max(float(rest_potential_V), lo), hi)})

    @property
    def scan_duration_s(self) -> float:
        """One scan's time; from open circuit, the start's position does not change it (the scan
        passes both vertices and returns), as long as the start lies between them."""
        start = self.e_start_V if self.e_start_V is not None else self.e_vertex1_V
        path = abs(self.e_vertex1_V - start) + abs(self.e_vertex2_V - self.e_vertex1_V) + abs(start - self.e_vertex2_V)
        return path / self.scan_rate_V_s

    @property
    def duration_s(self) -> float:
        return self.cycles * self.scan_duration_s


class ConstantPotential(_Technique):
    """Chronoamperometry: hold Ewe at ``e_V`` for ``duration_s``; optionally end early once |I|
    falls to ``i_cutoff_A``. ``e_V`` None: hold the open-circuit potential measured when the
    step begins (``starting_at`` fixes it)."""

    kind: Literal["ca"] = "ca"
    e_V: Optional[float] = None
    duration_s: PositiveFloat
    i_cutoff_A: Optional[PositiveFloat] = None

    def starting_at(self, rest_potential_V: float) -> ConstantPotential:
        if self.e_V is not None:
            return self
        return self.model_copy(update={"e_V": float(rest_potential_V)})


class Gitt(_Technique):
    """GITT: pulses of ``current_A`` for ``pulse_s``, each followed by ``relax_s`` at open
    circuit, repeated until a pulse reaches its cut-off (e_max_V charging, e_min_V discharging)
    or ``max_pulses`` have run. The relaxation after the last pulse is always measured."""

    kind: Literal["gitt"] = "gitt"
    current_A: float
    pulse_s: PositiveFloat
    relax_s: PositiveFloat
    e_min_V: Optional[float] = None
    e_max_V: Optional[float] = None
    max_pulses: Optional[PositiveInt] = None

    @model_validator(mode="after")
    def _ends(self):
        if self.current_A == 0:
            raise ValueError("current_A must not be 0")
        cutoff = self.e_max_V if self.current_A > 0 else self.e_min_V
        if cutoff is None and self.max_pulses is None:
            raise ValueError("GITT needs a cut-off in its direction or max_pulses to end")
        return self


class ImpedanceSweep(_Technique):
    f_max_Hz: PositiveFloat = 100_000.0
    f_min_Hz: PositiveFloat = 0.01
    points_per_decade: PositiveInt = 10

    @model_validator(mode="after")
    def _band(self):
        if self.f_min_Hz >= self.f_max_Hz:
            raise ValueError("f_min_Hz must be below f_max_Hz")
        return self

    @property
    def frequencies_Hz(self) -> list[float]:
        """Measured from f_max down to f_min, log-spaced, both ends included."""
        import math

        decades = math.log10(self.f_max_Hz / self.f_min_Hz)
        n = max(2, int(round(decades * self.points_per_decade)) + 1)
        return [self.f_max_Hz * (self.f_min_Hz / self.f_max_Hz) ** (k / (n - 1)) for k in range(n)]

    @staticmethod
    def measure_time_s(frequency_Hz: float) -> float:
        """Instrument time to measure one frequency: two periods, at least 0.1 s (settling)."""
        return max(2.0 / frequency_Hz, 0.1)

    @property
    def sweep_duration_s(self) -> float:
        return sum(self.measure_time_s(f) for f in self.frequencies_Hz)


class PotentiostaticEis(ImpedanceSweep):
    """PEIS: a sine of ``amplitude_V`` (peak) about ``e_dc_V`` (None: the open-circuit potential
    at the start of the step), swept from f_max_Hz down to f_min_Hz."""

    kind: Literal["peis"] = "peis"
    e_dc_V: Optional[float] = None
    amplitude_V: PositiveFloat = 0.01


class GalvanostaticEis(ImpedanceSweep):
    """GEIS: a sine of ``amplitude_A`` (peak) about ``i_dc_A`` (0: at open circuit)."""

    kind: Literal["geis"] = "geis"
    i_dc_A: float = 0.0
    amplitude_A: PositiveFloat


Technique = Annotated[
    Union[
        OpenCircuit,
        ConstantCurrent,
        ConstantCurrentConstantVoltage,
        LinearSweep,
        CyclicVoltammetry,
        ConstantPotential,
        Gitt,
        PotentiostaticEis,
        GalvanostaticEis,
    ],
    Field(discriminator="kind"),
]

# Integer code of each technique in the stream's ``technique`` column (its descriptor lists the
# names as ``choices``). Append only: stored runs keep these numbers.
TECHNIQUE_CODES: dict[str, int] = {
    "ocv": 0,
    "cc": 1,
    "cccv": 2,
    "lsv": 3,
    "cv": 4,
    "ca": 5,
    "gitt": 6,
    "peis": 7,
    "geis": 8,
}
IMPEDANCE_KINDS = ("peis", "geis")


class ScheduledStep(BaseModel):
    """One technique with its place in the protocol: cycle (1-based) and step (1-based, global)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    technique: Technique
    cycle: int = Field(ge=0)
    step: int = Field(ge=1)


class Limits(BaseModel):
    """Safety limits of one cell on one instrument; checked before any technique starts."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    e_min_V: float
    e_max_V: float
    i_max_A: PositiveFloat
    # An excursion must last this long (on the instrument's sample clock) before the circuit is
    # opened; 0 opens it at the first sample beyond the limits.
    excursion_s: NonNegativeFloat = 0.0


# Columns of the electrochemical stream, with their units (one row per potentiostat sample).
ECHEM_COLUMNS: dict[str, tuple[str, str]] = {
    # "time" itself is reserved for the event time in a Tiled events table, hence "timestamp".
    "timestamp": ("s", "<f8"),  # seconds since the epoch, on the experiment clock
    "Ewe": ("V", "<f8"),  # working-electrode potential
    "I": ("A", "<f8"),  # cell current, > 0 charging
    "charge": ("mA*h", "<f8"),  # net charge passed since the start of the run
    "cycle": ("", "<i8"),
    "step": ("", "<i8"),
}

# One row per measured frequency of a PEIS/GEIS step (a separate "impedance" stream).
IMPEDANCE_COLUMNS: dict[str, tuple[str, str]] = {
    "timestamp": ("s", "<f8"),  # when this frequency's measurement ended, experiment clock
    "frequency": ("Hz", "<f8"),
    "Z_re": ("ohm", "<f8"),  # Z' (real part)
    "Z_im": ("ohm", "<f8"),  # Z'' (imaginary part; negative for a capacitive cell)
    "Ewe_dc": ("V", "<f8"),
    "I_dc": ("A", "<f8"),
    "cycle": ("", "<i8"),
    "step": ("", "<i8"),
}


def starts_at_rest(technique) -> bool:
    """True if the technique's start potential is the rest potential measured when it begins."""
    if isinstance(technique, (LinearSweep, CyclicVoltammetry)):
        return technique.e_start_V is None
    return isinstance(technique, ConstantPotential) and technique.e_V is None


def at_rest_potential(technique, rest_potential_V: float):
    """``technique`` with a start taken at open circuit fixed to ``rest_potential_V``."""
    return technique.starting_at(rest_potential_V) if starts_at_rest(technique) else technique
