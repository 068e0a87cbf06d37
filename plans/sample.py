"""The sample under test and the error every configuration problem becomes.

They live in the plans layer because plans need them (C-rates and A/g become amps through the
sample's mass and capacity) and nothing below acquisition may import acquisition;
``acquisition/config.py`` re-exports them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat


_NOTHING = object()  # "got" of a field that is absent


class ConfigError(Exception):
    """A configuration that cannot be used. ``problems`` holds one formatted line per problem."""

    def __init__(self, message: str, problems: Optional[list[str]] = None):
        super().__init__(message)
        self.problems = problems if problems is not None else [message]

    @classmethod
    def from_problems(cls, file: Union[str, Path], problems: list[tuple[str, str, Any]]):
        """``problems`` are (field path, message, value given or ``_NOTHING``)."""
        lines = [f"{file}: {path}: {msg} (got {_show(got)})" for path, msg, got in problems]
        return cls("\n".join(lines), lines)


def _show(value: Any) -> str:
    if value is _NOTHING:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class _Model(BaseModel):
    # nan/inf in a limit or a current would make every comparison silently false
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Sample(_Model):
    """The cell under test; its mass and specific capacity turn C-rates and A/g into amps."""

    name: str = Field(min_length=1)
    material: str  # free text, e.g. "Fe3O4 (Fe/Li2O conversion)"
    sim_preset: Optional[str] = None  # simulator material preset standing in for this sample
    active_mass_g: PositiveFloat
    theoretical_capacity_mAh_g: PositiveFloat
    electrolyte: str
    cell_type: str
    operator: str
    notes: Optional[str] = None
    tags: list[str] = []

    @property
    def capacity_mAh(self) -> float:
        return self.active_mass_g * self.theoretical_capacity_mAh_g
