"""Faults in the bytes a real driver reads: a profile's ``sim.wire_faults``.

Each entry puts a fault relay (``fault_relay.py``) between a wire-level simulator and the
project's real driver, on the simulator's side of the socket or pseudo-terminal. The simulator
itself is unchanged (so third-party clients still meet a well-behaved instrument); the relay
understands just enough of each protocol (``fault_protocols.py``) to find where a reply begins
and ends, which request starts the run and which one takes a frame.

Faults (what the driver meets once the fault begins):
- ``disconnect``: the link drops (a cable pulled, a socket reset). The instrument stays on,
  keeps its output as it was and accepts a new connection, as a Keithley 2450 or a LabSpec PC
  does; a pseudo-terminal (USB) vanishes for good, its path with it.
- ``timeout``: requests still arrive, no reply comes back, for good.
- ``garbled``: one reply with its bytes scrambled (its length kept).
- ``truncated``: one reply cut to its first half; the rest never comes.
- ``slow``: every reply ``delay_s`` wall seconds late, for good.
- ``stuck``: every reply to a request seen before repeats the last one before the fault
  (the readings freeze; time stamps too, where the reply carries them).
- ``error``: one reply replaced by the instrument's own error status for that request.

When it begins:
- ``connect``: from the first byte of the first connection.
- ``start``: at the request that starts the run (a potentiostat's first sourcing command or
  script; a detector's first acquisition).
- ``mid_run``: at the first reply ``after_s`` seconds (on the lab's clock) after the run started.
- ``frame``: while a frame is being taken: a detector's acquisition request is in flight (the
  fault hits its reply; a disconnect drops the link mid-exposure), or for a potentiostat, while
  any simulated detector of the lab is exposing. Both at least ``after_s`` into the run.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat

WireFaultKind = Literal["disconnect", "timeout", "garbled", "truncated", "slow", "stuck", "error"]
WireFaultWhen = Literal["connect", "start", "mid_run", "frame"]
WIRE_FAULT_KINDS: tuple[str, ...] = WireFaultKind.__args__
WIRE_FAULT_WHENS: tuple[str, ...] = WireFaultWhen.__args__


class WireFault(BaseModel):
    """One fault on one wire-level simulator, e.g.
    ``{instrument: potentiostat, fault: garbled, when: mid_run, after_s: 120}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instrument: str = Field(min_length=1)  # a profile instrument with ``address: sim``
    fault: WireFaultKind
    when: WireFaultWhen = "mid_run"
    after_s: NonNegativeFloat = 60.0  # mid_run / frame: lab-clock seconds after the run started
    delay_s: PositiveFloat = 2.0  # slow: wall seconds each reply is held back
    seed: int = 0  # which bytes a garbled reply scrambles

    @property
    def label(self) -> str:
        return f"{self.fault} at {self.when.replace('_', '-')}"
