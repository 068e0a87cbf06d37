"""Every supported technique end to end: the real Potentiostat device, the Keithley 2450 backend
(pymeasure's Keithley2450 over pyvisa-py) and the TCP simulator driving a SimCell, sharing one
sped-up SimClock."""

import tempfile

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.run_engine import call_in_bluesky_event_loop

from operando.devices.backends.keithley2450 import Keithley2450Backend
from operando.devices.potentiostat import Potentiostat
from operando.devices.techniques import (
    TECHNIQUE_CODES,
    ConstantCurrent,
    ConstantCurrentConstantVoltage,
    ConstantPotential,
    CyclicVoltammetry,
    Gitt,
    Limits,
    LinearSweep,
    OpenCircuit,
    ScheduledStep,
)
from operando.plans.operando import galvanostatic_cycling
from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.clock import SimClock
from operando.sim_devices.wire.keithley2450_server import Keithley2450Server

PARAMS = preset("fe_li2o")
LIMITS = Limits(e_min_V=0.0, e_max_V=3.5, i_max_A=0.2)


def run(techniques, soc=0.5, speed=2000, interval_s=10.0):
    """Run the techniques as steps 1..n; returns (echem columns, the simulator)."""
    clock = SimClock(speed=speed)
    cell = SimCell(PARAMS, soc=soc)
    steps = [ScheduledStep(technique=t, cycle=1, step=i) for i, t in enumerate(techniques, 1)]
    docs = []
    with Keithley2450Server(cell, clock) as server:
        backend = Keithley2450Backend(server.resource, clock, sample_interval_s=interval_s, i_limit_A=0.2)
        with tempfile.TemporaryDirectory() as tmp:
            RE = RunEngine({})
            dev = Potentiostat(backend, LIMITS, tmp, name="potentiostat", clock=clock)
            call_in_bluesky_event_loop(dev.connect())
            RE(galvanostatic_cycling(dev, steps, clock), lambda name, doc: docs.append((name, doc)))
            _n, data = dev.history.since(0)
        assert not server.simulator.output_on  # every run ends at open circuit
        assert server.simulator.output_off_mode == {"CURR": "HIMP", "VOLT": "HIMP"}
    assert docs[-1][1]["exit_status"] == "success"
    return data, server.simulator


def test_ocv_then_cc_discharge_ends_at_its_cutoff():
    i = -PARAMS.c_rate_current_A(2.0)
    data, _sim = run([OpenCircuit(duration_s=300), ConstantCurrent(current_A=i, e_min_V=1.0, max_duration_s=20_000)])
    rest, cc = data["step"] == 1, data["step"] == 2
    assert np.all(np.abs(data["I"][rest]) < 1e-9)  # zero current while resting
    assert data["timestamp"][rest][-1] - data["timestamp"][rest][0] == pytest.approx(310, abs=30)
    e = data["Ewe"][cc]
    assert e[-1] <= 1.0 < e[-2]  # the cut-off ended the step, one sample late at most
    assert np.allclose(data["I"][cc], i, rtol=1e-3)
    assert np.all(np.diff(data["charge"][cc]) < 0)  # discharging: charge falls
    assert set(data["technique"][cc]) == {TECHNIQUE_CODES["cc"]}


def test_cccv_charge_current_decays_at_e_hold():
    i, cut = PARAMS.c_rate_current_A(2.0), PARAMS.c_rate_current_A(0.02)
    data, sim = run(
        [ConstantCurrentConstantVoltage(current_A=i, e_hold_V=2.8, i_cutoff_A=cut, max_duration_s=20_000)],
        interval_s=5.0,
    )
    e, current = data["Ewe"], data["I"]
    assert any(":SOUR:CURR:VLIM 2.8" == c for c in sim.commands)  # the compliance does the CV
    cv = e >= 2.8 - 1e-3
    assert cv.sum() > 3 and np.allclose(e[cv], 2.8, atol=2e-3)
    assert abs(current[-1]) <= cut < abs(current[np.flatnonzero(cv)[0]])  # decayed to cut-off
    assert np.all(np.diff(current[cv]) <= 1e-6)  # falling (noise aside)


def test_cccv_discharge_switches_to_a_voltage_source():
    i, cut = -PARAMS.c_rate_current_A(2.0), PARAMS.c_rate_current_A(0.1)
    data, sim = run(
        [ConstantCurrentConstantVoltage(current_A=i, e_hold_V=1.2, i_cutoff_A=cut, max_duration_s=20_000)], soc=0.7
    )
    assert ":SOUR:VOLT:LEV 1.2" in sim.commands and f":SOUR:VOLT:ILIM {abs(i):g}" in sim.commands
    held = np.isclose(data["Ewe"], 1.2, atol=2e-3)
    assert held.sum() > 3
    assert abs(data["I"][-1]) <= cut and data["I"][-1] < 0


def test_ca_and_lsv():
    data, _sim = run(
        [
            ConstantPotential(e_V=2.0, duration_s=600),
            LinearSweep(e_start_V=2.0, e_end_V=2.5, scan_rate_V_s=1e-3, e_step_V=0.01),
        ]
    )
    ca, lsv = data["step"] == 1, data["step"] == 2
    assert np.allclose(data["Ewe"][ca], 2.0, atol=1e-4)
    assert abs(data["I"][ca][-1]) < abs(data["I"][ca][0])  # the current relaxes at a hold
    e = data["Ewe"][lsv]
    assert np.all(np.diff(e) >= -1e-4) and e[-1] == pytest.approx(2.5, abs=1e-4)
    assert data["timestamp"][lsv][-1] - data["timestamp"][lsv][0] == pytest.approx(500, rel=0.1)


def test_cv_current_changes_sign_at_the_vertices():
    data, _sim = run(
        [
            CyclicVoltammetry(
                e_start_V=2.0, e_vertex1_V=2.6, e_vertex2_V=1.4, scan_rate_V_s=2e-3, cycles=1, e_step_V=0.01
            )
        ]
    )
    e, current = data["Ewe"], data["I"]
    top, bottom = int(np.argmax(e)), int(np.argmin(e))
    assert e[top] == pytest.approx(2.6, abs=0.011) and e[bottom] == pytest.approx(1.4, abs=0.011)
    assert current[top - 2] > 0 and current[top + 3] < 0  # anodic going up, cathodic coming back
    assert current[bottom - 2] < 0 and current[bottom + 3] > 0
    assert e[-1] == pytest.approx(2.0, abs=1e-4)


def test_gitt_pulses_and_relaxes():
    i = PARAMS.c_rate_current_A(1.0)
    # 500x: the 2450's pulses are host-timed, and at 2000x a 150 ms host stall is 300 s of a
    # pulse unsampled (a CI failure on a loaded machine).
    data, _sim = run([Gitt(current_A=i, pulse_s=300, relax_s=600, max_pulses=3)], speed=500)
    on = np.abs(data["I"]) > i / 2
    edges = np.flatnonzero(np.diff(on.astype(int)) == 1)
    assert len(edges) == 2 and on[0]  # three pulses
    assert np.abs(data["I"][-1]) < 1e-9  # ends with a relaxation
    e = data["Ewe"]
    ends_of_pulses = np.flatnonzero(np.diff(on.astype(int)) == -1)
    assert all(e[k + 1] < e[k] for k in ends_of_pulses)  # the potential relaxes after each pulse
