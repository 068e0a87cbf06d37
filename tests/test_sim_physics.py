"""Physics checks of the simulated cell against the review's pictures (§1, §2, §4).

Tolerances are stated in each test; the numbers come from the model, not from fits to it.
"""

import math

import numpy as np
import pytest

from operando.sim_devices import size_sweep
from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.cell_parameters import FARADAY, GAS_CONSTANT
from operando.sim_devices.programmes import linear_sweep


# ---- Figure 1f: capacity vs particle thickness l ---------------------------------------------
def test_thickness_sweep_shows_the_three_regimes_of_figure_1f():
    # An interface-dominated composite (job-sharing: the phases alone store little, 2 % bulk at
    # l = 10 nm; Debye length 1 nm), swept 0.05 nm .. 50 um (sim_devices/size_sweep.py, which
    # draws docs/particle-size-regimes.png). Slopes of log Q vs log l: +-0.05 at the ends,
    # |slope| < 0.15 across the size-independent window (the review's l^-1, l^0, l^1).
    lengths = size_sweep.default_lengths()
    slopes = size_sweep.regime_slopes(lengths, size_sweep.thickness_sweep(size_sweep.interface_dominated(), lengths))
    assert slopes["space charges overlap"] == pytest.approx(-1.0, abs=0.05)
    assert abs(slopes["interfacial"]) < 0.15
    assert slopes["bulk"] == pytest.approx(1.0, abs=0.05)


def test_space_charge_capacitance_follows_debye_length():
    p = preset("fe_li2o")
    sc = p.space_charge.model_copy(update={"layer_thickness_m": None})
    doubled = sc.model_copy(update={"debye_length_m": 2 * sc.debye_length_m})
    assert doubled.capacitance_F_g == pytest.approx(sc.capacitance_F_g / 2, rel=1e-12)
    assert sc.areal_capacitance_F_m2 == pytest.approx(8.8541878128e-12 * 60 / 1e-9, rel=1e-9)


# ---- cyclic voltammetry: b-values -------------------------------------------------------------
def anodic_peak_current(p, rate_V_s):
    cell = SimCell(p, soc=0.0)
    cell.relax(100.0)
    e0 = cell.rest_potential_V
    sweep = linear_sweep(e0, [p.e_max_V, p.e_min_V], rate_V_s)
    dt = (p.e_max_V - p.e_min_V) / rate_V_s / 400
    trace = cell.run_potential(sweep, sweep.sample_times(dt), max_step_s=dt)
    rising = trace.t_rel <= (p.e_max_V - e0) / rate_V_s
    return trace.current_A[rising].max()


@pytest.mark.parametrize(
    "name, rates_mV_s, b_expected",
    [
        ("bulk_micron", [0.1, 0.2, 0.5, 1.0, 2.0], 0.5),  # semi-infinite solid-state diffusion
        ("fe_li2o", [0.2, 0.5, 1.0, 2.0, 5.0], 1.0),  # interface-dominated: capacitive
    ],
)
def test_cv_peak_current_b_value(name, rates_mV_s, b_expected):
    # i_p = a v^b; tolerance +-0.07 on b
    p = preset(name)
    rates = np.array(rates_mV_s) * 1e-3
    peaks = np.array([anodic_peak_current(p, r) for r in rates])
    b = np.polyfit(np.log(rates), np.log(peaks), 1)[0]
    assert b == pytest.approx(b_expected, abs=0.07)


def test_potential_control_conserves_charge_and_honours_compliance():
    p = preset("composite")
    cell = SimCell(p, soc=0.2)
    sweep = linear_sweep(cell.rest_potential_V, [2.5], 5e-3)
    t = sweep.sample_times(0.5)
    trace = cell.run_potential(sweep, t)
    np.testing.assert_allclose(trace.ewe_V, [sweep(x) for x in t])
    assert np.all(trace.current_A > 0)  # an anodic sweep charges
    # the charge counter is the integral of the current (implicit steps, rectangle rule)
    q = np.cumsum(trace.current_A * np.diff(t, prepend=0.0)) / 3.6
    np.testing.assert_allclose(trace.charge_mAh - trace.charge_mAh[0], q - q[0], rtol=1e-9)
    assert cell.charge_mAh == pytest.approx(trace.charge_mAh[-1])
    # a potential step draws a large current: the compliance stops the trace at that sample
    limited = cell.run_potential(p.e_max_V, np.arange(1, 100.0), i_limit_A=1e-3)
    assert limited.limit_reached and len(limited) == 1 and limited.current_A[0] > 1e-3


# ---- galvanostatic step: ohmic jump and Butler-Volmer ------------------------------------------
def test_galvanostatic_step_gives_the_ohmic_jump():
    # The capacitive stores hold V at the instant the current is switched: dE = I R_ohm (1 %).
    p = preset("bulk")
    for c_rate in (1.0, 5.0, -2.0):
        cell = SimCell(p, soc=0.5)
        cell.relax(10.0)
        before = cell.rest_potential_V
        current = p.c_rate_current_A(c_rate)
        trace = cell.run(current, np.array([1e-6, 1e-3]))
        assert trace.ewe_V[0] - before == pytest.approx(current * p.r_ohm, rel=0.01)


def fast_kinetics_cell(temperature_K=298.15):
    # large diffusion, tiny capacitive store: the surface tracks the bulk, V settles in ms
    p = preset("bulk").model_copy(
        update={
            "diffusion_m2_s": 1e-12,
            "space_charge": None,
            "interface_share": 1e-4,
            "double_layer_F_g": 0.0,
            "temperature_K": temperature_K,
        }
    )
    return SimCell(p, soc=0.5), p


@pytest.mark.parametrize("i_over_i0", [0.1, 3.0, 30.0])
def test_charge_transfer_overpotential_follows_butler_volmer(i_over_i0):
    # eta = (2RT/F) asinh(I / 2 i0) for the symmetric Butler-Volmer law; tolerance 2 %
    cell, p = fast_kinetics_cell()
    f = FARADAY / (GAS_CONSTANT * p.temperature_K)
    i0 = 1.0 / (f * p.r_ct_ohm)
    current = i_over_i0 * i0
    cell.run(current, np.arange(1, 201) * 1e-3)
    eta = cell.ewe_V - current * p.r_ohm - cell.ocv_V
    assert eta == pytest.approx(2.0 / f * math.asinh(current / (2 * i0)), rel=0.02)


def test_cold_cell_polarises_more():
    # Arrhenius: R_ct and 1/D grow in the cold, so the same current needs a larger overpotential
    warm, p = fast_kinetics_cell(298.15)
    cold, _ = fast_kinetics_cell(298.15)
    cold.set_temperature(258.15)
    assert cold.params.r_ct_at(258.15) > 10 * p.r_ct_ohm  # 0.5 eV over 40 K
    current = p.c_rate_current_A(2.0)
    e_warm = warm.run(current, np.arange(1, 11.0)).ewe_V[-1] - warm.ocv_V
    e_cold = cold.run(current, np.arange(1, 11.0)).ewe_V[-1] - cold.ocv_V
    assert e_cold > e_warm + 0.05
    assert cold.temperature_K == 258.15


def test_diffusion_limited_preset_needs_slow_rates_for_its_capacity():
    p = preset("bulk_micron")
    fast = SimCell(p).run(p.c_rate_current_A(1.0), np.arange(1, 3601.0), p.e_min_V, p.e_max_V)
    slow = SimCell(p).run(p.c_rate_current_A(0.05), np.arange(1, 7801) * 10.0, p.e_min_V, p.e_max_V)
    assert fast.cutoff_reached and fast.charge_mAh[-1] < 0.8 * p.nominal_capacity_mAh
    assert slow.cutoff_reached and slow.charge_mAh[-1] > 0.9 * p.nominal_capacity_mAh
