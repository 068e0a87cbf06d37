"""The techniques a potentiostat executes, in SI units, as the instrument's own language.

A protocol file (C-rates, A/g, loops) is compiled into a flat list of ``ScheduledStep``; every
potentiostat backend (simulated, MethodSCRIPT, Keithley) executes that list as firmware would, so
the electrochemical stream never waits for the host between steps.

Sign convention: current > 0 charges the working electrode (E rises), current < 0 discharges it.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat


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


Technique = Annotated[Union[OpenCircuit, ConstantCurrent], Field(discriminator="kind")]


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
