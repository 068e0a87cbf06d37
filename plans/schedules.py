"""When a detector acquires during an operando run: rules on time, charge and cell state.

A detector's schedule is a list of rules; a frame is taken whenever any rule fires (the reasons
are stored with the frame). Rules, as YAML mappings under a profile instrument's ``schedule``::

    - {every_s: 30}                      # every 30 s of experiment time, from the start
    - {every_mAh: 0.05}                  # every 0.05 mAh of charge passed (either direction)
    - {every_soc: 0.1}                   # every 10 % of the sample's theoretical capacity
    - {at_V: [1.0, 2.5], direction: up}  # when Ewe crosses these values (up, down or both)
    - {at: step_start}                   # step_start | step_end | cycle_start | cycle_end
    - {at: cycle_end, hold: ocv}         # ...with the cell held at open circuit meanwhile
    - {adaptive_s: [60, 1800]}           # follows the electrochemistry (below)

``adaptive_s: [min, max]`` takes frames more often where the cell stores much charge per volt —
its dQ/dV peaks, the phase transitions — and less often on sloping stretches: while current
flows, the period is ``max / r`` held within [min, max], with r the local dQ/dV (over the last
``window_mV`` of potential) over the run's mean dQ/dV so far (charge passed over potential
travelled under current). ``follow: dedt`` inverts it (r -> 1/r): frames where the potential
moves fast. At rest, and until 2 x window_mV have been travelled, the period is ``max``.

``hold: ocv`` freezes the electrochemical sequence at open circuit for the acquisition (an SKPM
map, a long spectrum) and then continues it; without it, the echem stream never waits.
"""

from __future__ import annotations

import math
from typing import Literal, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

Hold = Literal["none", "ocv"]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    hold: Hold = "none"


class EveryTime(_Rule):
    every_s: PositiveFloat


class EveryCharge(_Rule):
    every_mAh: PositiveFloat


class EverySoc(_Rule):
    every_soc: float = Field(gt=0, le=1)


class AtVoltage(_Rule):
    at_V: list[float] = Field(min_length=1)
    direction: Literal["up", "down", "both"] = "both"


class AtBoundary(_Rule):
    at: Literal["step_start", "step_end", "cycle_start", "cycle_end"]


class Adaptive(_Rule):
    adaptive_s: tuple[PositiveFloat, PositiveFloat]  # [shortest, longest] period, experiment s
    follow: Literal["dqdv", "dedt"] = "dqdv"
    window_mV: PositiveFloat = 20.0  # potential span the local dQ/dV is taken over

    @model_validator(mode="after")
    def _ordered(self):
        lo, hi = self.adaptive_s
        if not lo <= hi:
            raise ValueError(f"adaptive_s: [shortest, longest] must be in order (got [{lo}, {hi}])")
        return self


Rule = Union[EveryTime, EveryCharge, EverySoc, AtVoltage, AtBoundary, Adaptive]


class _DifferentialCapacity:
    """The local and the run's mean |dQ/dV| from the samples taken while current flows."""

    KEEP = 400  # recent samples kept for the local slope

    def __init__(self, window_V: float):
        self.window_V = window_V
        self._q: list[float] = []
        self._e: list[float] = []
        self._sign = 0.0
        self.charge_mAh = 0.0  # |charge| passed under current
        self.path_V = 0.0  # |potential| travelled under current

    def add(self, e: np.ndarray, q: np.ndarray, i: np.ndarray) -> None:
        for ei, qi, ii in zip(e.tolist(), q.tolist(), i.tolist()):
            sign = math.copysign(1.0, ii) if ii != 0.0 else 0.0
            if sign == 0.0 or sign != self._sign:  # a rest or a reversal starts a new branch
                self._q, self._e, self._sign = [], [], sign
            if sign != 0.0 and self._e:
                self.charge_mAh += abs(qi - self._q[-1])
                self.path_V += abs(ei - self._e[-1])
            if sign != 0.0:
                self._q.append(qi)
                self._e.append(ei)
                if len(self._q) > self.KEEP:
                    del self._q[0], self._e[0]

    def ratio(self) -> Optional[float]:
        """Local over mean dQ/dV; None at rest or before the mean is known."""
        if len(self._e) < 2 or self.path_V < 2 * self.window_V or self.charge_mAh <= 0:
            return None
        e_last, q_last = self._e[-1], self._q[-1]
        k = len(self._e) - 2
        while k > 0 and abs(e_last - self._e[k]) < self.window_V:
            k -= 1
        de, dq = abs(e_last - self._e[k]), abs(q_last - self._q[k])
        mean = self.charge_mAh / self.path_V
        if de <= 0.0:
            return math.inf if dq > 0 else None
        return (dq / de) / mean


class ScheduleEvaluator:
    """Decides, from new echem samples and the clock, whether a detector's rules fire."""

    def __init__(self, rules: list[Rule], start_time: float, capacity_mAh: Optional[float] = None):
        if not rules:
            raise ValueError("a detector schedule needs at least one rule")
        self.rules = list(rules)
        self.capacity_mAh = capacity_mAh
        self._due = {i: start_time for i, r in enumerate(rules) if isinstance(r, EveryTime)}
        self._throughput = 0.0  # |charge| passed since the start, mAh
        self._anchor = {i: 0.0 for i, r in enumerate(rules) if isinstance(r, (EveryCharge, EverySoc))}
        self._last: Optional[dict] = None  # the previous sample (Ewe, charge, step, cycle)
        self._adaptive = {i: start_time for i, r in enumerate(rules) if isinstance(r, Adaptive)}  # last frame
        adaptive = [r for r in rules if isinstance(r, Adaptive)]
        self._dqdv = _DifferentialCapacity(min(r.window_mV for r in adaptive) * 1e-3) if adaptive else None
        for r in rules:
            if isinstance(r, EverySoc) and not capacity_mAh:
                raise ValueError("every_soc needs the sample's theoretical capacity")

    @property
    def next_due(self) -> float:
        """Experiment time of the next time-based frame (inf if none)."""
        adaptive = (last + self.adaptive_period_s(i) for i, last in self._adaptive.items())
        return min(min(self._due.values(), default=math.inf), min(adaptive, default=math.inf))

    def adaptive_period_s(self, index: int) -> float:
        """The present period of adaptive rule ``index`` (see the module's docstring)."""
        rule = self.rules[index]
        shortest, longest = rule.adaptive_s
        r = self._dqdv.ratio() if self._dqdv is not None else None
        if r is None:
            return longest
        r = r if rule.follow == "dqdv" else (1.0 / r if r > 0 else math.inf)
        return min(max(longest / r, shortest), longest) if r > 0 else longest

    def hold_for(self, fired: list[int]) -> Hold:
        return "ocv" if any(self.rules[i].hold == "ocv" for i in fired) else "none"

    def update(self, samples: dict[str, np.ndarray], now: float) -> list[int]:
        """Indices of the rules that fired since the last update."""
        fired = [i for i, due in self._due.items() if now >= due]
        for i in fired:
            period = self.rules[i].every_s
            # Anchored to the start; slots a slow frame overran are skipped, not made up.
            self._due[i] += (math.floor((now - self._due[i]) / period) + 1) * period
        n = len(samples.get("Ewe", ()))
        if n and self._dqdv is not None:
            self._dqdv.add(*(np.asarray(samples[k], dtype=float) for k in ("Ewe", "charge", "I")))
        for i, last in self._adaptive.items():
            if now >= last + self.adaptive_period_s(i):
                fired.append(i)
                self._adaptive[i] = now
        if n:
            fired += self._state_rules(samples)
        return sorted(set(fired))

    def _state_rules(self, s: dict[str, np.ndarray]) -> list[int]:
        e = np.asarray(s["Ewe"], dtype=float)
        q = np.asarray(s["charge"], dtype=float)
        step = np.asarray(s["step"])
        cycle = np.asarray(s["cycle"])
        first_block = self._last is None
        if not first_block:  # prepend the previous sample to see changes across blocks
            e = np.concatenate(([self._last["Ewe"]], e))
            q = np.concatenate(([self._last["charge"]], q))
            step = np.concatenate(([self._last["step"]], step))
            cycle = np.concatenate(([self._last["cycle"]], cycle))
        self._last = {"Ewe": e[-1], "charge": q[-1], "step": step[-1], "cycle": cycle[-1]}
        fired = []
        if first_block:  # the sequence's first sample starts a step and a cycle
            fired += [i for i, r in enumerate(self.rules) if isinstance(r, AtBoundary) and r.at.endswith("start")]
        if e.size < 2:
            return fired
        self._throughput += float(np.abs(np.diff(q)).sum())
        for i, rule in enumerate(self.rules):
            if isinstance(rule, (EveryCharge, EverySoc)):
                delta = rule.every_mAh if isinstance(rule, EveryCharge) else rule.every_soc * self.capacity_mAh
                if self._throughput - self._anchor[i] >= delta:
                    fired.append(i)
                    self._anchor[i] += math.floor((self._throughput - self._anchor[i]) / delta) * delta
            elif isinstance(rule, AtVoltage):
                if _crossed(e, rule.at_V, rule.direction):
                    fired.append(i)
            elif isinstance(rule, AtBoundary):
                changes = cycle if rule.at.startswith("cycle") else step
                if np.any(np.diff(changes) != 0):
                    fired.append(i)
        return fired

    def finish(self) -> list[int]:
        """Rules that fire when the sequence ends: the last step and cycle end there."""
        if self._last is None:
            return []
        return [i for i, r in enumerate(self.rules) if isinstance(r, AtBoundary) and r.at.endswith("end")]


def _crossed(e: np.ndarray, levels: list[float], direction: str) -> bool:
    for v in levels:
        below = e[:-1] < v
        above_now = e[1:] >= v
        up = np.any(below & above_now)
        down = np.any(~below & (e[1:] < v))
        if (direction in ("up", "both") and up) or (direction in ("down", "both") and down):
            return True
    return False


def describe(rules: list[Rule]) -> list[dict]:
    """Rules as plain data, for the run's start document."""
    return [r.model_dump(exclude_defaults=False) for r in rules]
