"""Behaviour of the simulated cell model and the simulation clock."""

import asyncio
import time

import numpy as np
import pytest

from operando.sim_devices.cell import PRESETS, SimCell, preset
from operando.sim_devices.clock import SimClock


def seconds(n, dt=1.0):
    return np.arange(1, n + 1) * dt


def charged_cell(name="bulk", c_rate=1.0):
    p = preset(name)
    cell = SimCell(p)
    trace = cell.run(p.c_rate_current_A(c_rate), seconds(3 * 3600), p.e_min_V, p.e_max_V)
    return cell, trace


def test_galvanostatic_charge_raises_potential_and_stops_at_e_max():
    cell, trace = charged_cell("bulk")
    p = cell.params
    assert trace.cutoff_reached
    assert trace.ewe_V[-1] >= p.e_max_V
    assert np.all(trace.ewe_V[:-1] < p.e_max_V)  # stopped at the first crossing sample
    assert trace.ewe_V[-1] > trace.ewe_V[0] + 0.5
    assert cell.time_s == trace.t_rel[-1]
    assert cell.surface_stoichiometry > cell.bulk_stoichiometry  # diffusion lags the surface


def test_cutoff_found_at_first_fine_sample():
    p = preset("fe_li2o")
    cell = SimCell(p, soc=0.97)
    trace = cell.run(p.c_rate_current_A(2.0), seconds(200_000, 1e-3), p.e_min_V, p.e_max_V)
    assert trace.cutoff_reached
    assert trace.ewe_V[-1] >= p.e_max_V and np.all(trace.ewe_V[:-1] < p.e_max_V)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_ohmic_jump_equals_i_r_ohm(name):
    p = preset(name)
    cell = SimCell(p, soc=0.5)
    current = p.c_rate_current_A(1.0)
    before = cell.rest_potential_V
    trace = cell.run(current, np.array([1e-6]))
    assert trace.ewe_V[0] - before == pytest.approx(current * p.r_ohm, rel=0.01)


def test_charge_passed_equals_current_times_time():
    p = preset("composite")
    cell = SimCell(p, soc=0.3)
    current = -p.c_rate_current_A(0.5)
    t = seconds(600)
    trace = cell.run(current, t, p.e_min_V, p.e_max_V)
    assert not trace.cutoff_reached
    np.testing.assert_allclose(trace.charge_mAh, current * t / 3.6, rtol=1e-12)
    assert cell.charge_mAh == pytest.approx(current * 600 / 3.6)
    assert cell.soc == pytest.approx(0.3 + current * 600 / 3.6 / p.nominal_capacity_mAh, abs=1e-6)


def test_open_circuit_relaxes_toward_ocv_after_charge():
    cell, charge = charged_cell("bulk")
    rest = cell.run(0.0, seconds(4 * 3600))
    gap = np.abs(rest.ewe_V - cell.ocv_V)
    assert rest.ewe_V[0] < charge.ewe_V[-1]  # the IR drop vanishes at once
    assert np.all(np.diff(rest.ewe_V) <= 1e-9)  # then the potential decays monotonically
    assert gap[-1] < 1e-3 and gap[-1] < 0.05 * gap[0]
    assert cell.surface_stoichiometry == pytest.approx(cell.bulk_stoichiometry, abs=1e-3)


@pytest.mark.parametrize("name", ["composite", "fe_li2o"])
def test_interface_involved_presets_store_more_at_interfaces(name):
    reference = SimCell(preset("bulk"), soc=0.5).interfacial_fraction
    assert SimCell(preset(name), soc=0.5).interfacial_fraction > 5 * reference


@pytest.mark.parametrize("name", sorted(set(PRESETS) - {"bulk_micron"}))
def test_full_charge_at_1c_delivers_nominal_capacity(name):
    # tolerance: within 5 % below nominal (diffusion and IR cut the charge short) and +1 %
    cell, trace = charged_cell(name, c_rate=1.0)
    nominal = cell.params.nominal_capacity_mAh
    assert trace.cutoff_reached
    assert 0.95 * nominal <= trace.charge_mAh[-1] <= 1.01 * nominal


def test_discharge_returns_the_charge():
    cell, charge = charged_cell("fe_li2o")
    p = cell.params
    cell.run(0.0, seconds(600))
    back = cell.run(-p.c_rate_current_A(1.0), seconds(3 * 3600), p.e_min_V, p.e_max_V)
    assert back.cutoff_reached and back.ewe_V[-1] <= p.e_min_V
    assert abs(cell.charge_mAh) < 0.05 * p.nominal_capacity_mAh


def test_fine_and_coarse_sampling_agree():
    p = preset("fe_li2o")
    fine, coarse = SimCell(p, soc=0.4), SimCell(p, soc=0.4)
    current = p.c_rate_current_A(2.0)
    a = fine.run(current, seconds(20_000, 1e-3))
    b = coarse.run(current, seconds(20, 1.0))
    assert a.ewe_V[-1] == pytest.approx(b.ewe_V[-1], abs=1e-3)
    np.testing.assert_allclose(a.ewe_V[999::1000], b.ewe_V, atol=2e-3)


def test_run_rejects_bad_sample_times():
    cell = SimCell(preset("bulk"))
    with pytest.raises(ValueError):
        cell.run(1e-4, np.array([0.0, 1.0]))
    with pytest.raises(ValueError):
        cell.run(1e-4, np.array([2.0, 1.0]))
    assert len(cell.run(1e-4, np.array([]))) == 0


def test_presets_state_window_and_capacity():
    for name in PRESETS:
        p = preset(name, active_mass_g=2e-3)
        assert p.e_max_V > p.e_min_V
        assert p.nominal_capacity_mAh == pytest.approx(p.capacity_mAh_g * 2e-3)
        assert SimCell(p).rest_potential_V == pytest.approx(p.e_min_V, abs=1e-6)
    with pytest.raises(ValueError, match="unknown"):
        preset("unobtainium")


def test_clock_runs_at_speed():
    with pytest.raises(ValueError, match="-1"):
        SimClock(speed=-1)
    clock = SimClock(speed=100.0, start_time=1000.0)
    t0 = clock.time()
    assert 1000.0 <= t0 < 1001.0
    asyncio.run(clock.sleep(5.0))  # 50 ms of wall time
    assert clock.time() - t0 >= 5.0
    assert clock.wall_seconds(5.0) == pytest.approx(0.05)
    wall = time.time()
    assert abs(SimClock().time() - wall) < 1.0
