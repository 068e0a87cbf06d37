"""Schedule rules on synthetic echem samples: each kind fires exactly where it should."""

import numpy as np
import pytest
from pydantic import TypeAdapter, ValidationError

from operando.plans.schedules import AtBoundary, AtVoltage, EveryCharge, EverySoc, EveryTime, Rule, ScheduleEvaluator


def samples(e, q=None, step=None, cycle=None, t0=0.0):
    e = np.asarray(e, float)
    n = e.size
    return {
        "timestamp": t0 + np.arange(n, dtype=float),
        "Ewe": e,
        "I": np.zeros(n),
        "charge": np.zeros(n) if q is None else np.asarray(q, float),
        "step": np.ones(n, int) if step is None else np.asarray(step),
        "cycle": np.ones(n, int) if cycle is None else np.asarray(cycle),
    }


def test_every_s_is_anchored_to_the_start_and_skips_overrun_slots():
    ev = ScheduleEvaluator([EveryTime(every_s=10)], start_time=100.0)
    assert ev.update({}, 100.0) == [0]  # a frame at the start
    assert ev.next_due == 110.0
    assert ev.update({}, 109.9) == []
    assert ev.update({}, 135.0) == [0]  # 110, 120 and 130 overrun: one frame, next at 140
    assert ev.next_due == 140.0


def test_every_charge_counts_charge_passed_in_both_directions():
    ev = ScheduleEvaluator([EveryCharge(every_mAh=0.1)], 0.0)
    q = np.concatenate((np.linspace(0, 0.25, 26), np.linspace(0.24, 0.0, 25)))  # 0.5 mAh passed
    fires = 0
    for chunk in np.array_split(np.arange(q.size), 10):
        fires += len(ev.update(samples(np.zeros(chunk.size), q[chunk]), 0.0))
    assert fires == 4  # 0.1, 0.2, 0.3, 0.4 of 0.5 mAh; a fire covers at most one block


def test_every_soc_uses_the_theoretical_capacity():
    with pytest.raises(ValueError, match="capacity"):
        ScheduleEvaluator([EverySoc(every_soc=0.1)], 0.0)
    ev = ScheduleEvaluator([EverySoc(every_soc=0.1)], 0.0, capacity_mAh=2.0)
    assert ev.update(samples([0, 0], [0.0, 0.19]), 0.0) == []
    assert ev.update(samples([0], [0.21]), 0.0) == [0]


@pytest.mark.parametrize(
    "direction, series, expected",
    [
        ("up", [0.5, 0.9, 1.1, 1.2], [0]),
        ("up", [1.5, 1.1, 0.9], []),
        ("down", [1.5, 1.1, 0.9], [0]),
        ("both", [1.5, 1.1, 0.9], [0]),
        ("both", [1.2, 1.5, 1.9], []),
    ],
)
def test_voltage_thresholds_fire_on_crossing_in_the_asked_direction(direction, series, expected):
    ev = ScheduleEvaluator([AtVoltage(at_V=[1.0], direction=direction)], 0.0)
    assert ev.update(samples(series), 0.0) == expected


def test_a_crossing_between_two_blocks_is_seen():
    ev = ScheduleEvaluator([AtVoltage(at_V=[1.0])], 0.0)
    assert ev.update(samples([0.8, 0.9]), 0.0) == []
    assert ev.update(samples([1.05]), 0.0) == [0]


def test_boundaries_fire_at_step_and_cycle_changes_and_at_the_ends():
    rules = [AtBoundary(at="step_start"), AtBoundary(at="cycle_end")]
    ev = ScheduleEvaluator(rules, 0.0)
    assert ev.update(samples([1, 1], step=[1, 1], cycle=[0, 0]), 0.0) == [0]  # first sample
    assert ev.update(samples([1, 1], step=[1, 1], cycle=[0, 0]), 0.0) == []
    assert ev.update(samples([1, 1], step=[1, 2], cycle=[0, 0]), 0.0) == [0]
    assert ev.update(samples([1, 1], step=[2, 3], cycle=[0, 1]), 0.0) == [0, 1]
    assert ev.finish() == [1]


def test_rules_parse_from_yaml_mappings_and_typos_are_refused():
    rules = TypeAdapter(list[Rule]).validate_python(
        [{"every_s": 30}, {"at_V": [1.0], "direction": "up"}, {"at": "cycle_end", "hold": "ocv"}]
    )
    assert isinstance(rules[0], EveryTime) and isinstance(rules[2], AtBoundary)
    assert rules[2].hold == "ocv"
    with pytest.raises(ValidationError):
        TypeAdapter(list[Rule]).validate_python([{"every_sec": 30}])
    with pytest.raises(ValidationError):
        TypeAdapter(list[Rule]).validate_python([{"at": "vertex"}])
