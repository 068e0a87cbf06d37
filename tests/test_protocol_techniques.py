"""Protocol steps beyond rest/cc: units, generated techniques, errors naming step and field, and
the device-layer limit check that refuses them before the cell is touched."""

import pytest

from operando.acquisition.config import load_profile, load_protocol
from operando.devices.safety import ExcursionWatch, LimitError, check_steps
from operando.devices.techniques import (
    ConstantPotential,
    CyclicVoltammetry,
    GalvanostaticEis,
    Gitt,
    Limits,
    LinearSweep,
    PotentiostaticEis,
    ScheduledStep,
)
from operando.plans.protocol import Protocol, ProtocolError, compile_protocol, estimate_duration_s

PROFILE = load_profile("sim")  # 1C = 1.852 mA; window 0.01-3.0 V; |I| max 10 mA
SAMPLE, LIMITS = PROFILE.sample, PROFILE.limits
ONE_C = 1.852e-3


def _compile(*steps):
    return [s.technique for s in compile_protocol(Protocol(name="t", steps=list(steps)), SAMPLE, LIMITS)]


def _error(*steps) -> str:
    with pytest.raises(ProtocolError) as info:
        _compile(*steps)
    return str(info.value)


def test_cccv_converts_c_rates_for_current_and_cutoff():
    (t,) = _compile({"kind": "cccv", "c_rate": 0.5, "e_hold_V": 2.9, "i_cutoff_c_rate": 0.05, "max_duration_h": 4})
    assert t.kind == "cccv"
    assert t.current_A == pytest.approx(0.5 * ONE_C) and t.i_cutoff_A == pytest.approx(0.05 * ONE_C)
    assert t.e_hold_V == 2.9 and t.max_duration_s == 4 * 3600


def test_cccv_errors_name_the_field():
    assert "steps[0].e_hold_V: outside the potentiostat limits window" in _error(
        {"kind": "cccv", "c_rate": 0.5, "e_hold_V": 4.2, "i_cutoff_A": 1e-5}
    )
    assert "steps[0].i_cutoff_A: the current cut-off" in _error(
        {"kind": "cccv", "current_A": 1e-4, "e_hold_V": 2.9, "i_cutoff_A": 2e-4}
    )
    assert "steps[0]: a cccv step needs i_cutoff_A or i_cutoff_c_rate" in _error(
        {"kind": "cccv", "current_A": 1e-4, "e_hold_V": 2.9}
    )


def test_sweeps_take_mV_per_s_and_mV_steps():
    lsv, cv = _compile(
        {"kind": "lsv", "e_start_V": 2.0, "e_end_V": 0.5, "scan_rate_mV_s": 0.5},
        {
            "kind": "cv",
            "e_start_V": 1.5,
            "e_vertex1_V": 0.01,
            "e_vertex2_V": 3.0,
            "scan_rate_V_s": 0.001,
            "cycles": 3,
            "e_step_mV": 2,
        },
    )
    assert isinstance(lsv, LinearSweep) and lsv.scan_rate_V_s == pytest.approx(5e-4)
    assert lsv.duration_s == pytest.approx(1.5 / 5e-4)
    assert isinstance(cv, CyclicVoltammetry) and cv.e_step_V == pytest.approx(0.002)
    # 1.5 -> 0.01 -> 3.0 -> 1.5 is 1.49 + 2.99 + 1.5 V per scan
    assert cv.duration_s == pytest.approx(3 * 5.98 / 0.001)


def test_sweep_errors():
    assert "steps[0].e_vertex2_V: outside the potentiostat limits window" in _error(
        {"kind": "cv", "e_start_V": 1.0, "e_vertex1_V": 0.5, "e_vertex2_V": 3.5, "scan_rate_mV_s": 1}
    )
    assert "steps[0].e_start_V: must lie between the vertices" in _error(
        {"kind": "cv", "e_start_V": 2.5, "e_vertex1_V": 0.5, "e_vertex2_V": 2.0, "scan_rate_mV_s": 1}
    )
    assert "steps[0]: a lsv step needs scan_rate_V_s or scan_rate_mV_s" in _error(
        {"kind": "lsv", "e_start_V": 1.0, "e_end_V": 2.0}
    )


def test_potentiostatic_steps_can_start_at_open_circuit():
    lsv, cv, ca = _compile(
        {"kind": "lsv", "e_start": "ocv", "e_end_V": 0.5, "scan_rate_mV_s": 1},
        {"kind": "cv", "e_start": "ocv", "e_vertex1_V": 0.01, "e_vertex2_V": 3.0, "scan_rate_mV_s": 1},
        {"kind": "ca", "e": "ocv", "duration_min": 5},
    )
    assert lsv.e_start_V is None and cv.e_start_V is None and ca.e_V is None
    assert "OCV" in lsv.label and "OCV" in ca.label
    assert cv.duration_s == pytest.approx(2 * 2.99 / 1e-3)  # both vertices and back, wherever it starts
    # fixed where the cell rests when the step begins; a CV's start held within its vertices
    assert cv.starting_at(1.234).e_start_V == 1.234 and cv.starting_at(3.05).e_start_V == 3.0
    assert lsv.starting_at(2.0).e_start_V == 2.0 and ca.starting_at(0.7).e_V == 0.7
    check_steps("potentiostat", [ScheduledStep(technique=t, cycle=0, step=1) for t in (lsv, cv, ca)], LIMITS)
    both = _error({"kind": "cv", "e_start": "ocv", "e_start_V": 1.0, "e_vertex1_V": 0.01, "e_vertex2_V": 3.0,
                   "scan_rate_mV_s": 1})  # fmt: skip
    assert "steps[0].e_start_V: give exactly one of e_start_V (volts) and e_start: ocv" in both
    neither = _error({"kind": "ca", "duration_s": 60})
    assert "steps[0].e_V: give exactly one of e_V (volts) and e: ocv" in neither
    with pytest.raises(ValueError, match="Input should be 'ocv'"):
        _compile({"kind": "lsv", "e_start": "rest", "e_end_V": 0.5, "scan_rate_mV_s": 1})


def test_ca_and_gitt():
    ca, gitt = _compile(
        {"kind": "ca", "e_V": 2.5, "duration_h": 1, "i_cutoff_c_rate": 0.01},
        {"kind": "gitt", "c_rate": -0.05, "pulse_min": 10, "relax_min": 40, "e_min_V": 0.05},
    )
    assert isinstance(ca, ConstantPotential) and ca.duration_s == 3600
    assert ca.i_cutoff_A == pytest.approx(0.01 * ONE_C)
    assert isinstance(gitt, Gitt) and gitt.pulse_s == 600 and gitt.relax_s == 2400
    assert gitt.current_A == pytest.approx(-0.05 * ONE_C)
    assert "steps[0]: a gitt step needs e_max_V (its direction's cut-off) or max_pulses" in _error(
        {"kind": "gitt", "c_rate": 0.05, "pulse_s": 60, "relax_s": 600, "e_min_V": 0.05}
    )


def test_impedance_steps():
    peis, geis = _compile(
        {"kind": "peis", "f_max_Hz": 1e5, "f_min_Hz": 0.1, "points_per_decade": 5},
        {"kind": "geis", "amplitude_c_rate": 0.01, "f_min_Hz": 1},
    )
    assert isinstance(peis, PotentiostaticEis) and peis.e_dc_V is None and peis.amplitude_V == 0.01
    assert len(peis.frequencies_Hz) == 31 and peis.frequencies_Hz[0] == 1e5
    assert peis.frequencies_Hz[-1] == pytest.approx(0.1)
    assert isinstance(geis, GalvanostaticEis) and geis.amplitude_A == pytest.approx(0.01 * ONE_C)
    # each frequency takes two periods, at least 0.1 s
    assert peis.sweep_duration_s == pytest.approx(sum(max(2 / f, 0.1) for f in peis.frequencies_Hz))
    assert "steps[0].e_dc_V: outside the potentiostat limits window" in _error(
        {"kind": "peis", "e_dc_V": 2.995, "amplitude_mV": 10}
    )
    assert "steps[0].f_min_Hz: must be below f_max_Hz" in _error({"kind": "peis", "f_max_Hz": 10, "f_min_Hz": 100})


def test_cc_capacity_cutoff_becomes_a_time_limit():
    (by_mAh, by_fraction) = _compile(
        {"kind": "cc", "c_rate": -1, "max_capacity_mAh": 0.5},
        {"kind": "cc", "c_rate": -0.5, "max_capacity_fraction": 0.5, "max_duration_h": 10},
    )
    assert by_mAh.max_duration_s == pytest.approx(0.5 * 3.6 / ONE_C)
    assert by_fraction.max_duration_s == pytest.approx(3600)  # half the capacity at C/2: 1 h


def test_characterisation_protocol_has_every_part():
    steps = compile_protocol(load_protocol("characterisation"), SAMPLE, LIMITS)
    kinds = {s.technique.kind for s in steps}
    assert kinds == {"ocv", "peis", "cc", "cccv", "gitt", "cv", "geis"}
    assert [s.cycle for s in steps if s.technique.kind == "gitt"] == [5, 5]
    assert {s.cycle for s in steps if s.technique.kind == "cv"} == {6}
    assert 3 * 24 * 3600 < estimate_duration_s(steps, SAMPLE.capacity_mAh) < 14 * 24 * 3600


def _step(tech):
    return [ScheduledStep(technique=tech, cycle=0, step=1)]


@pytest.mark.parametrize(
    "tech, field",
    [
        (ConstantPotential(e_V=3.2, duration_s=10), "e_V 3.2 V is outside the window"),
        (LinearSweep(e_start_V=1.0, e_end_V=-0.5, scan_rate_V_s=1e-3), "e_end_V -0.5 V is outside"),
        (Gitt(current_A=0.02, pulse_s=1, relax_s=1, e_max_V=2.0), "current_A 0.02 A exceeds |I| max"),
        (GalvanostaticEis(i_dc_A=0.0095, amplitude_A=0.001), "|i_dc_A| + amplitude_A 0.0105 A exceeds"),
        (PotentiostaticEis(e_dc_V=0.015, amplitude_V=0.01), "e_dc_V - amplitude_V 0.005 V is outside"),
    ],
)
def test_device_check_refuses_every_technique_outside_limits(tech, field):
    with pytest.raises(LimitError) as info:
        check_steps("potentiostat", _step(tech), LIMITS)
    assert f"potentiostat: step 1 (cycle 0, {tech.kind}" in str(info.value) and field in str(info.value)


def test_excursion_must_last_the_configured_time():
    limits = Limits(e_min_V=0.0, e_max_V=3.0, i_max_A=0.01, excursion_s=0.5)
    watch = ExcursionWatch(limits)
    t = [0.0, 0.1, 0.2, 0.3, 0.4]
    # a 0.3 s spike beyond the window, then back inside: tolerated
    assert watch.feed(t, [3.0, 3.5, 3.5, 3.5, 2.9], [0.0] * 5) is None
    # a second excursion: the circuit opens at the first sample 0.5 s after it began
    message = watch.feed([0.5, 0.6, 0.8, 1.0, 1.1], [3.5, 3.5, 3.5, 3.5, 3.5], [0.0] * 5)
    assert message is not None and "lasting 0.5 s (allowed 0.5 s)" in message and "Ewe=3.5000" in message
    immediate = ExcursionWatch(Limits(e_min_V=0.0, e_max_V=3.0, i_max_A=0.01))
    assert "I=0.02" in immediate.feed([0.0, 0.1], [1.0, 1.0], [0.001, 0.02])
