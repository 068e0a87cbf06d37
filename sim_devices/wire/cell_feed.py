"""The lab's cell, followed by a simulator that runs in a process of its own.

A wire-level simulator that cannot share the run's process (QD's MultiPyVu server keeps its
instrument in class variables) still measures the run's cell: the parent writes the cell's state
as one JSON line to the child's stdin every ``period_s`` of wall time (``CellFeed``); the child's
``FollowedCell`` takes each line and answers the attributes a simulated measurement reads. JSON
only: nothing from the pipe is unpickled or evaluated. End of input means the parent is gone,
and the child's ``on_end`` stops it, so no simulator outlives its run.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from collections.abc import Callable
from typing import IO, Optional

# What a magnetometer measurement reads of the cell (sim_devices/magnetometer.py).
STATE_FIELDS = (
    "rest_potential_V",
    "lowest_rest_potential_V",
    "bulk_stoichiometry",
    "interfacial_capacity_mAh",
    "interfacial_charge_mAh",
)
FEED_PERIOD_S = 0.1


def cell_state(cell) -> dict[str, float]:
    return {name: float(getattr(cell, name)) for name in STATE_FIELDS}


class CellFeed:
    """Writes ``cell``'s state to ``pipe`` every ``period_s`` wall seconds, from a thread."""

    def __init__(self, cell, pipe: IO[str], period_s: float = FEED_PERIOD_S):
        self._cell, self._pipe, self._period_s = cell, pipe, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cell-feed", daemon=True)

    def start(self) -> CellFeed:
        self.send()  # the child's first measurement already sees the run's cell
        self._thread.start()
        return self

    def send(self) -> None:
        self._pipe.write(json.dumps(cell_state(self._cell)) + "\n")
        self._pipe.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._period_s):
            try:
                self.send()
            except (BrokenPipeError, ValueError, OSError):  # the child has gone (or the pipe closed)
                return
            except ArithmeticError:  # read while the run's thread stepped the cell: next tick
                continue

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        try:
            self._pipe.close()
        except OSError:
            pass


class FollowedCell:
    """A stand-in for ``SimCell`` whose state is the last line read from ``source``.

    ``params`` is the local cell's (material and mass are given on the command line); until the
    first line arrives the state is the local cell's.
    """

    def __init__(self, local_cell, source: IO[str] = sys.stdin, on_end: Optional[Callable[[], None]] = None):
        self.params = local_cell.params
        self._state = cell_state(local_cell)
        self._source, self._on_end = source, on_end
        self.lines = 0
        self._first = threading.Event()
        self._thread = threading.Thread(target=self._read, name="followed-cell", daemon=True)

    def start(self, wait_s: float = 0.0) -> FollowedCell:
        """Start reading; wait up to ``wait_s`` for the first state."""
        self._thread.start()
        self._first.wait(wait_s)
        return self

    def _read(self) -> None:
        for line in self._source:
            try:
                self._state = parse_state(line)
            except ValueError as e:  # a feed bug: say so, keep the last good state
                print(e, file=sys.stderr, flush=True)
                continue
            self.lines += 1
            self._first.set()
        if self._on_end is not None:
            self._on_end()

    def __getattr__(self, name: str) -> float:
        if name in STATE_FIELDS:
            return self.__dict__["_state"][name]
        raise AttributeError(name)


def parse_state(line: str) -> dict[str, float]:
    """One fed line -> the state; a line that is not exactly the state is a ValueError naming why."""
    try:
        state = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"cell feed: not JSON ({e}): {line[:80]!r}") from None
    if not isinstance(state, dict) or set(state) != set(STATE_FIELDS):
        raise ValueError(f"cell feed: expected the fields {list(STATE_FIELDS)}, got {line[:200]!r}")
    values = {k: float(v) for k, v in state.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if len(values) != len(STATE_FIELDS) or not all(math.isfinite(v) for v in values.values()):
        raise ValueError(f"cell feed: every field must be a finite number, got {line[:200]!r}")
    return values
