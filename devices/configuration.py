"""Configuration as validated data: the strict model every setting is checked with, and the one
error every configuration problem becomes.

It sits at the bottom of the layers because every layer validates something: a backend its
settings (``devices/backends``), the plans a protocol, acquisition a profile. Each problem is one
line::

    <file>: <field.path>: <message> (got <value>)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict

NOTHING = object()  # the "got" of a field that is absent


class ConfigError(Exception):
    """A configuration that cannot be used. ``problems`` holds one formatted line per problem."""

    def __init__(self, message: str, problems: Optional[list[str]] = None):
        super().__init__(message)
        self.problems = problems if problems is not None else [message]

    @classmethod
    def from_problems(cls, file: Union[str, Path], problems: list[tuple[str, str, Any]]):
        """``problems`` are (field path, message, value given or ``NOTHING``)."""
        lines = [f"{file}: {path}: {msg} (got {show_value(got)})" for path, msg, got in problems]
        return cls("\n".join(lines), lines)


def show_value(value: Any) -> str:
    """A value as an error message quotes it: its repr, cut at 80 characters."""
    if value is NOTHING:
        return "nothing"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


class StrictModel(BaseModel):
    """Base of every configuration model: unknown keys are errors, values frozen, and nan/inf
    refused (they would make every comparison with a limit silently false)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
