"""Protocols: unit conversions, cycle/step numbering, and refusal of anything unsafe."""

import pytest
import yaml

from operando.acquisition.config import ConfigError, list_protocols, load_profile, load_protocol
from operando.devices.techniques import ConstantCurrent, Limits, OpenCircuit
from operando.plans.protocol import Protocol, ProtocolError, compile_protocol, estimate_duration_s

PROFILE = load_profile("sim")  # 0.002 g x 926 mAh/g = 1.852 mAh, so 1C = 1.852 mA
SAMPLE, LIMITS = PROFILE.sample, PROFILE.limits


def _compile(*steps, limits=LIMITS):
    return compile_protocol(Protocol(name="t", steps=list(steps)), SAMPLE, limits)


def _write(tmp_path, steps):
    path = tmp_path / "proto.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "steps": steps}))
    return path


def _compile_error(tmp_path, *steps) -> str:
    with pytest.raises(ProtocolError) as info:
        compile_protocol(load_protocol(_write(tmp_path, list(steps))), SAMPLE, LIMITS)
    return str(info.value)


@pytest.mark.parametrize("name", list_protocols())
def test_shipped_protocols_compile_within_limits(name):
    steps = compile_protocol(load_protocol(name), SAMPLE, LIMITS)
    assert [s.step for s in steps] == list(range(1, len(steps) + 1))
    for s in steps:
        if isinstance(s.technique, ConstantCurrent):
            assert abs(s.technique.current_A) <= LIMITS.i_max_A
            assert LIMITS.e_min_V <= s.technique.e_min_V < s.technique.e_max_V <= LIMITS.e_max_V


def test_galvanostatic_cycling_shape():
    steps = compile_protocol(load_protocol("galvanostatic_cycling"), SAMPLE, LIMITS)
    assert [(s.cycle, s.technique.kind) for s in steps] == [(0, "ocv")] + [
        (c, k) for c in (1, 2) for k in ("cc", "ocv", "cc", "ocv")
    ]
    assert steps[0].technique.duration_s == 600
    discharge, charge = steps[1].technique, steps[3].technique  # discharge first, as assembled
    assert charge.current_A == pytest.approx(1.852e-3) and charge.e_max_V == 3.0
    assert discharge.current_A == pytest.approx(-1.852e-3) and discharge.e_min_V == 0.01


def test_rate_capability_cycles_and_rates():
    steps = compile_protocol(load_protocol("rate_capability"), SAMPLE, LIMITS)
    charges = [s for s in steps if isinstance(s.technique, ConstantCurrent) and s.technique.current_A > 0]
    assert [s.cycle for s in charges] == list(range(1, 9))
    assert [round(s.technique.current_A / 1.852e-3, 6) for s in charges] == [0.2, 0.2, 0.5, 0.5, 1, 1, 2, 2]


def test_formation_cycle_is_cycle_zero():
    steps = compile_protocol(load_protocol("formation"), SAMPLE, LIMITS)
    cc = [(s.cycle, round(s.technique.current_A * 1e3, 6)) for s in steps if s.technique.kind == "cc"]
    assert cc == [(0, -0.1852), (0, 0.1852)] + [(c, i) for c in (1, 2, 3) for i in (-0.3704, 0.3704)]


def test_current_conversions_in_amps():
    steps = _compile(
        {"kind": "cc", "c_rate": 0.5, "e_max_V": 2.5},
        {"kind": "cc", "c_rate": -2, "e_min_V": 0.5},
        {"kind": "cc", "current_A_g": 1.5, "e_max_V": 3.0},  # 1.5 A/g x 0.002 g
        {"kind": "cc", "current_A_g": -0.1, "max_duration_min": 30},
        {"kind": "cc", "current_A": -0.004, "e_min_V": 0.05},
    )
    amps = [s.technique.current_A for s in steps]
    assert amps == pytest.approx([0.926e-3, -3.704e-3, 3.0e-3, -0.2e-3, -4.0e-3])
    # an omitted cut-off becomes the window edge, so the potentiostat always has both stops
    assert (steps[0].technique.e_min_V, steps[0].technique.e_max_V) == (0.01, 2.5)
    assert (steps[3].technique.e_min_V, steps[3].technique.max_duration_s) == (0.01, 1800)


def test_rest_units():
    steps = _compile(
        {"kind": "rest", "duration_s": 30}, {"kind": "rest", "duration_min": 2}, {"kind": "rest", "duration_h": 1.5}
    )
    assert [s.technique.duration_s for s in steps] == [30, 120, 5400]
    assert all(isinstance(s.technique, OpenCircuit) for s in steps)


def test_nested_loops_numbering():
    rest = {"kind": "rest", "duration_s": 1}
    steps = _compile(
        rest,
        {
            "kind": "loop",
            "repeat": 2,
            "steps": [
                {"kind": "rest", "duration_s": 2},
                {"kind": "loop", "repeat": 3, "steps": [{"kind": "rest", "duration_s": 3}]},
            ],
        },
        rest,
        {"kind": "loop", "repeat": 1, "steps": [{"kind": "rest", "duration_s": 4}]},
    )
    got = [(s.step, s.cycle, s.technique.duration_s) for s in steps]
    assert got == [
        (1, 0, 1),
        (2, 1, 2),
        (3, 1, 3),
        (4, 1, 3),
        (5, 1, 3),
        (6, 2, 2),
        (7, 2, 3),
        (8, 2, 3),
        (9, 2, 3),
        (10, 0, 1),
        (11, 3, 4),
    ]


def test_current_above_i_max(tmp_path):
    msg = _compile_error(
        tmp_path,
        {
            "kind": "loop",
            "repeat": 2,
            "steps": [{"kind": "rest", "duration_s": 1}, {"kind": "cc", "c_rate": 10, "e_max_V": 3.0}],
        },
    )
    assert "proto.yaml: steps[0].steps[1].c_rate:" in msg
    assert "0.01852 A" in msg and "i_max_A = 0.01 A" in msg and "(got 10" in msg


def test_cutoff_outside_window(tmp_path):
    msg = _compile_error(
        tmp_path,
        {"kind": "rest", "duration_s": 1},
        {"kind": "cc", "c_rate": 1, "e_max_V": 4.2},
        {"kind": "cc", "c_rate": -1, "e_min_V": 0.0},
    )
    assert "proto.yaml: steps[1].e_max_V: outside the potentiostat limits window 0.01 to 3 V (got 4.2)" in msg
    assert "proto.yaml: steps[2].e_min_V: outside" in msg


@pytest.mark.parametrize(
    "step, where, text",
    [
        ({"kind": "cc", "e_max_V": 3.0}, "steps[0]:", "needs one of current_A, current_A_g, c_rate"),
        ({"kind": "cc", "current_A": 0.001, "c_rate": 1, "e_max_V": 3.0}, "steps[0].c_rate:", "only one of"),
        ({"kind": "cc", "c_rate": 1, "e_min_V": 1.0}, "steps[0]:", "charge (current > 0) needs e_max_V"),
        ({"kind": "cc", "c_rate": -1}, "steps[0]:", "discharge (current < 0) needs e_min_V"),
        ({"kind": "cc", "c_rate": 0, "max_duration_s": 5}, "steps[0].c_rate:", "zero current is a rest"),
        ({"kind": "cc", "c_rate": 1, "e_min_V": 2, "e_max_V": 1}, "steps[0].e_max_V:", "must be above e_min_V"),
        ({"kind": "rest"}, "steps[0]:", "needs one of duration_s"),
        ({"kind": "rest", "duration_s": 1, "duration_min": 1}, "steps[0].duration_min:", "only one of"),
    ],
)
def test_step_meaning_errors(tmp_path, step, where, text):
    msg = _compile_error(tmp_path, step)
    assert f"proto.yaml: {where}" in msg and text in msg


def test_all_problems_reported_together(tmp_path):
    msg = _compile_error(tmp_path, {"kind": "cc", "c_rate": 9, "e_max_V": 3.0}, {"kind": "rest"})
    assert len(msg.splitlines()) == 2


@pytest.mark.parametrize(
    "steps, where",
    [
        ([{"kind": "rest", "duration_minutes": 5}], "steps[0].duration_minutes: unknown key; did you mean"),
        ([{"kind": "cc", "c_rate": "fast"}], "steps[0].c_rate:"),
        ([{"kind": "loop", "repeat": 0, "steps": [{"kind": "rest", "duration_s": 1}]}], "steps[0].repeat:"),
        (
            [{"kind": "loop", "repeat": 1, "steps": [{"kind": "rst"}]}],
            "steps[0].steps[0].kind: expected one of ca, cc, cccv, cv, geis, gitt, loop, lsv, peis, rest",
        ),
        ([], "steps:"),
    ],
)
def test_structure_errors_at_load(tmp_path, steps, where):
    with pytest.raises(ConfigError) as info:
        load_protocol(_write(tmp_path, steps))
    assert f"proto.yaml: {where}" in str(info.value)


def test_sampling_block(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("name: s\nsampling: {interval_s: 10}\nsteps: [{kind: rest, duration_s: 1}]\n")
    assert load_protocol(path).sampling.interval_s == 10


def test_runaway_repeat_refused():
    with pytest.raises(ProtocolError, match="more than"):
        _compile({"kind": "loop", "repeat": 10**7, "steps": [{"kind": "rest", "duration_s": 1}]})


def test_estimate_duration():
    steps = _compile(
        {"kind": "rest", "duration_min": 10},
        {"kind": "cc", "c_rate": 1, "e_max_V": 3.0},  # full capacity at 1C: 3600 s
        {"kind": "cc", "c_rate": -0.5, "e_min_V": 0.01, "max_duration_h": 1},  # 2 h capped at 1 h
    )
    assert estimate_duration_s(steps, SAMPLE.capacity_mAh) == pytest.approx(600 + 3600 + 3600)


def test_tighter_limits_refuse_shipped_protocol():
    tight = Limits(e_min_V=0.5, e_max_V=2.5, i_max_A=0.001)
    with pytest.raises(ProtocolError) as info:
        compile_protocol(load_protocol("galvanostatic_cycling"), SAMPLE, tight)
    msg = str(info.value)
    assert "galvanostatic_cycling.yaml: steps[1].steps[0].c_rate:" in msg
    assert "galvanostatic_cycling.yaml: steps[1].steps[0].e_min_V:" in msg
    assert "galvanostatic_cycling.yaml: steps[1].steps[2].e_max_V:" in msg
