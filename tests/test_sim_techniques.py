"""The simulated potentiostat runs every technique; the cell's small-signal impedance."""

import numpy as np
import pytest

from operando.sim_devices.cell import SimCell, preset


# ---- SimCell.impedance ----------------------------------------------------------------------
def cell(name="bulk", soc=0.5):
    return SimCell(preset(name), soc=soc)


def test_impedance_high_frequency_limit_is_r_ohm_and_it_does_not_change_the_state():
    c = cell()
    before = (c.rest_potential_V, c.surface_stoichiometry, c.charge_mAh, c.time_s)
    z = c.impedance(np.array([1e6, 1e5]))
    assert z.real == pytest.approx([c.params.r_ohm] * 2, rel=1e-3)
    assert np.all(z.imag < 0) and abs(z[0].imag) < 1e-3
    assert (c.rest_potential_V, c.surface_stoichiometry, c.charge_mAh, c.time_s) == before


def test_charge_transfer_semicircle_has_diameter_r_ct():
    # bulk at mid charge: flat OCV plateau, so diffusion is small where the semicircle closes
    c = cell("bulk")
    p = c.params
    f = np.logspace(3, -2, 400)
    z = c.impedance(f)
    apex = np.argmax(-z.imag)
    assert -z.imag[apex] == pytest.approx(p.r_ct_ohm / 2, rel=0.1)
    valley = apex + np.argmin(-z.imag[apex:])  # where the arc meets the diffusion tail
    assert z.real[valley] - p.r_ohm == pytest.approx(p.r_ct_ohm, rel=0.05)
    # the apex frequency is 1 / (2 pi R_ct C)
    cap = p.interfacial_capacitance_F + p.double_layer_F
    assert f[apex] == pytest.approx(1 / (2 * np.pi * p.r_ct_ohm * cap), rel=0.25)


def test_diffusion_gives_a_warburg_line_then_a_capacitive_end():
    c = cell("bulk_micron")
    f = np.array([0.02, 0.01, 0.005])  # mid frequency: semi-infinite diffusion in the particle
    z = c.impedance(f)
    slope = -np.diff(z.imag) / np.diff(z.real)
    assert slope == pytest.approx([1.0, 1.0], abs=0.15)  # the 45-degree line
    phase = np.degrees(np.angle(c.impedance(np.array([1e-6, 1e-7]))))
    assert phase[-1] < -89.5 and phase[-1] < phase[0]  # reflective centre: a capacitor


@pytest.mark.parametrize("name", ["bulk", "composite", "fe_li2o"])
def test_impedance_is_kramers_kronig_consistent(name):
    # Lin-KK: a sum of Voigt elements (each KK-consistent) must fit Z' and Z'' together
    c = cell(name)
    f = np.logspace(5, -3, 81)
    z = c.impedance(f)
    w = 2 * np.pi * f
    taus = np.logspace(-7, 5, 60)
    voigt = 1 / (1 + 1j * w[:, None] * taus[None, :])
    basis = np.column_stack([np.ones_like(w), voigt, 1 / (1j * w)])
    a = np.vstack([basis.real, basis.imag]) / np.abs(np.concatenate([z, z]))[:, None]
    b = np.concatenate([z.real, z.imag]) / np.abs(np.concatenate([z, z]))
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    residual = (basis @ coef - z) / np.abs(z)
    assert np.max(np.abs(residual)) < 5e-3


@pytest.mark.parametrize("name,freq", [("bulk", 1.0), ("bulk_micron", 0.003), ("fe_li2o", 0.01)])
def test_impedance_matches_a_sine_in_the_time_domain(name, freq):
    """A small sine applied with run_potential: amplitude ratio and phase match ``impedance``."""
    c = cell(name)
    z = c.impedance(np.array([freq]))[0]
    e0, w, per = c.ewe_V, 2 * np.pi * freq, 200
    h = 1 / freq / per
    t = np.arange(1, 6 * per + 1) * h
    tr = c.run_potential(lambda tt: e0 + 0.003 * np.sin(w * tt), t, max_step_s=h)
    late = t > 3 / freq  # after the start-up transient; a linear term absorbs slow drift
    basis = np.column_stack([np.sin(w * t[late]), np.cos(w * t[late]), np.ones(late.sum()), t[late]])
    ce = np.linalg.lstsq(basis, tr.ewe_V[late], rcond=None)[0]
    ci = np.linalg.lstsq(basis, tr.current_A[late], rcond=None)[0]
    z_td = (ce[0] + 1j * ce[1]) / (ci[0] + 1j * ci[1])
    assert abs(z_td) / abs(z) == pytest.approx(1.0, abs=0.02)
    assert np.degrees(np.angle(z_td / z)) == pytest.approx(0.0, abs=1.5)


def test_impedance_sine_current_with_run_matches_too():
    """Galvanostatic: a sine current as short constant-current steps of SimCell.run."""
    c = cell("bulk")
    freq, per = 0.5, 200
    z = c.impedance(np.array([freq]))[0]
    w, h, amp = 2 * np.pi * freq, 1 / freq / per, 1e-4
    ts, ewe, cur = [], [], []
    for k in range(6 * per):
        mid = (k + 0.5) * h  # each step carries the sine's value at its middle
        i = amp * np.sin(w * mid)
        tr = c.run(i, np.array([h]))
        ts.append(mid)
        cur.append(i)
        ewe.append(tr.ewe_V[-1])  # Ewe at the step's end
    t, ewe, cur = np.array(ts), np.array(ewe), np.array(cur)
    late = t > 3 / freq
    # Ewe was read at each step's end (mid + h/2): fit it on those times (its ohmic part then
    # lags by h/2, a phase error of w h / 2 ~ 1 degree, inside the tolerance)
    te = t[late] + 0.5 * h
    basis_e = np.column_stack([np.sin(w * te), np.cos(w * te), np.ones(late.sum()), te])
    basis_i = np.column_stack([np.sin(w * t[late]), np.cos(w * t[late])])
    ce = np.linalg.lstsq(basis_e, ewe[late], rcond=None)[0]
    ci = np.linalg.lstsq(basis_i, cur[late], rcond=None)[0]
    z_td = (ce[0] + 1j * ce[1]) / (ci[0] + 1j * ci[1])
    assert abs(z_td) / abs(z) == pytest.approx(1.0, abs=0.03)
    assert np.degrees(np.angle(z_td / z)) == pytest.approx(0.0, abs=2.5)
