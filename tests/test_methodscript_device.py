"""Every technique end to end: the real Potentiostat device, the MethodSCRIPT backend and driver,
the pty firmware simulator driving a SimCell on a fast clock."""

import tempfile

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.run_engine import call_in_bluesky_event_loop

from operando.devices.backends.methodscript import MethodScriptPotentiostatBackend
from operando.devices.drivers.methodscript import MethodScriptDriver
from operando.devices.drivers.methodscript_protocol import ScriptOptions
from operando.devices.potentiostat import Potentiostat
from operando.devices.techniques import (
    TECHNIQUE_CODES,
    ConstantCurrentConstantVoltage,
    ConstantPotential,
    CyclicVoltammetry,
    GalvanostaticEis,
    Gitt,
    Limits,
    LinearSweep,
    PotentiostaticEis,
    ScheduledStep,
)
from operando.plans.operando import galvanostatic_cycling
from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.clock import SimClock
from operando.sim_devices.wire.methodscript_server import MethodScriptSimulator

PARAMS = preset("fe_li2o")
LIMITS = Limits(e_min_V=0.0, e_max_V=3.5, i_max_A=0.2)


def run(techniques, soc=0.5, speed=2e4, interval_s=1.0):
    """Run the techniques as steps 1..n; returns (echem columns, impedance rows, the cell)."""
    clock = SimClock(speed=speed)
    cell = SimCell(PARAMS, soc=soc)
    steps = [ScheduledStep(technique=t, cycle=1, step=i) for i, t in enumerate(techniques, 1)]
    docs = []
    with MethodScriptSimulator(cell, clock) as sim:
        driver = MethodScriptDriver(sim.path, timeout_s=2.0)
        backend = MethodScriptPotentiostatBackend(driver, ScriptOptions(sample_interval_s=interval_s), clock.time)
        with tempfile.TemporaryDirectory() as tmp:
            RE = RunEngine({})  # starts the bluesky event loop the device connects in
            dev = Potentiostat(backend, LIMITS, tmp, name="potentiostat", clock=clock)
            call_in_bluesky_event_loop(dev.connect())
            RE(galvanostatic_cycling(dev, steps, clock), lambda name, doc: docs.append((name, doc)))
            _n, data = dev.history.since(0)
        driver.close()
        assert not sim.running and not sim.firmware.cell_on  # on_finished: the cell is open
    assert docs[-1][1]["exit_status"] == "success"
    z_desc = {d["uid"] for n, d in docs if n == "descriptor" and d["name"] == "impedance"}
    z = [
        {k.removeprefix("impedance-"): v for k, v in d["data"].items()}
        for n, d in docs
        if n == "event" and d["descriptor"] in z_desc
    ]
    return data, z, cell


def test_cccv_holds_e_hold_until_the_current_cutoff():
    i, cut = PARAMS.c_rate_current_A(2.0), PARAMS.c_rate_current_A(0.05)
    data, _z, _cell = run(
        [ConstantCurrentConstantVoltage(current_A=i, e_hold_V=2.8, i_cutoff_A=cut, max_duration_s=20_000)]
    )
    e, current = data["Ewe"], data["I"]
    cc = np.flatnonzero(np.isclose(current, i, rtol=1e-6, atol=0))
    assert 10 < len(cc) and e[cc[-1]] >= 2.8 > e[cc[-2]]  # the cp phase broke at e_hold
    hold = slice(cc[-1] + 1, None)
    assert np.all(e[hold] == pytest.approx(2.8))  # then the potential is held
    assert abs(current[-1]) <= cut < abs(current[-2])  # until |I| fell to the cut-off
    assert data["timestamp"][-1] - data["timestamp"][0] < 20_000
    assert set(data["technique"]) == {TECHNIQUE_CODES["cccv"]}


def test_cccv_max_duration_covers_both_phases():
    i, cut = PARAMS.c_rate_current_A(4.0), 1e-9  # the hold never decays that far
    data, _z, _cell = run(
        [ConstantCurrentConstantVoltage(current_A=i, e_hold_V=2.5, i_cutoff_A=cut, max_duration_s=600)]
    )
    t, current = data["timestamp"], data["I"]
    n_cc = np.count_nonzero(np.isclose(current, i, rtol=1e-6, atol=0))
    assert 100 < n_cc < 500  # both phases ran ...
    assert len(t) == 600 and t[-1] - t[0] == pytest.approx(599.0, abs=1e-3)  # ... in 600 s
    assert data["Ewe"][-1] == pytest.approx(2.5) and abs(current[-1]) > cut


def test_lsv_sweeps_the_staircase_to_its_end():
    data, _z, _cell = run([LinearSweep(e_start_V=2.0, e_end_V=1.0, scan_rate_V_s=1e-3, e_step_V=0.005)])
    e, t = data["Ewe"], data["timestamp"]
    assert len(e) == 200 and e[-1] == pytest.approx(1.0) and e[0] == pytest.approx(1.995)
    assert np.all(np.diff(e) == pytest.approx(-0.005))
    assert np.all(np.diff(t) == pytest.approx(5.0, abs=1e-3))  # E_step / rate
    assert np.mean(data["I"][20:] < 0) > 0.9  # a cathodic sweep discharges


def test_cv_current_changes_sign_after_each_vertex():
    cv = CyclicVoltammetry(e_start_V=1.8, e_vertex1_V=2.8, e_vertex2_V=0.8, scan_rate_V_s=2e-3, e_step_V=0.01, cycles=2)
    data, _z, _cell = run([cv], soc=0.5)
    e, current = data["Ewe"], data["I"]
    assert len(e) == 2 * 400 and e[-1] == pytest.approx(1.8)
    tops = np.flatnonzero(np.isclose(e, 2.8))
    bottoms = np.flatnonzero(np.isclose(e, 0.8))
    assert len(tops) == 2 and len(bottoms) == 2
    for k in tops:  # anodic current into the upper vertex, cathodic soon after it
        assert current[k] > 0 and np.any(current[k + 1 : k + 40] < 0)
    for k in bottoms:
        assert current[k] < 0 and np.any(current[k + 1 : k + 40] > 0)


def test_ca_ends_at_the_current_cutoff():
    cut = PARAMS.c_rate_current_A(0.02)
    data, _z, _cell = run([ConstantPotential(e_V=2.6, duration_s=36_000, i_cutoff_A=cut)])
    assert np.all(data["Ewe"] == pytest.approx(2.6))
    assert abs(data["I"][-1]) <= cut < abs(data["I"][-2])
    assert len(data["I"]) < 36_000


def test_gitt_pulses_and_always_relaxes_after_the_last():
    i = PARAMS.c_rate_current_A(1.0)
    gitt = Gitt(current_A=i, pulse_s=120, relax_s=300, e_max_V=3.4, max_pulses=4)
    data, _z, _cell = run([gitt], soc=0.2)
    pulsing = data["I"] != 0
    starts = np.flatnonzero(np.diff(pulsing.astype(int)) == 1) + 1
    assert pulsing[0] and len(starts) + 1 == 4  # four pulses
    assert len(data["I"]) == 4 * (120 + 300) and not pulsing[-300:].any()


def test_gitt_stops_at_the_cutoff_then_relaxes():
    i = PARAMS.c_rate_current_A(4.0)
    gitt = Gitt(current_A=i, pulse_s=600, relax_s=200, e_max_V=2.6)
    data, _z, _cell = run([gitt], soc=0.3)
    e, pulsing = data["Ewe"], data["I"] != 0
    last_pulse = np.flatnonzero(pulsing)[-1]
    assert e[last_pulse] >= 2.6  # the cut-off ended the pulse ...
    assert len(e) - 1 - last_pulse == 200  # ... and its relaxation still ran in full
    assert e[-1] < 2.6


@pytest.mark.parametrize("kind", ["peis", "geis"])
def test_impedance_one_row_per_frequency(kind):
    if kind == "peis":
        tech = PotentiostaticEis(f_max_Hz=1e5, f_min_Hz=0.1, points_per_decade=4)
    else:
        tech = GalvanostaticEis(amplitude_A=1e-4, f_max_Hz=1e5, f_min_Hz=0.1, points_per_decade=4)
    data, z, cell = run([tech], speed=50.0)
    freqs = tech.frequencies_Hz
    assert len(z) == len(freqs)
    assert [row["frequency"] for row in z] == pytest.approx(freqs, rel=1e-6)
    assert z[0]["Z_re"] == pytest.approx(PARAMS.r_ohm, rel=0.02)  # high frequency: R_ohm
    z_cell = cell.impedance(np.array(freqs))  # the cell rested at OCP since: the same state
    assert [row["Z_re"] for row in z] == pytest.approx(z_cell.real, rel=1e-4)
    assert [row["Z_im"] for row in z] == pytest.approx(z_cell.imag, rel=1e-3)
    assert np.all(np.diff([-row["Z_im"] for row in z]) > 0)  # capacitive, growing as f falls
    assert {row["step"] for row in z} == {1} and {row["cycle"] for row in z} == {1}
    ocp = data["Ewe"][0]  # the DC point before the sweep
    assert [row["Ewe_dc"] for row in z] == pytest.approx([ocp] * len(z))
    assert set(data["technique"]) == {TECHNIQUE_CODES[kind]}
    t = np.array([row["timestamp"] for row in z])
    dwell = np.diff(t)
    assert dwell[-1] == pytest.approx(max(2 / freqs[-1], 0.1), rel=0.01)  # 2 periods at 0.1 Hz
