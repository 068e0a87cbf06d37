"""Analysis functions on synthetic data with known answers: b-values, Dunn split, Randles fit,
Weppner-Huggins D."""

import math

import numpy as np
import pytest

from operando.analysis.eis import fit_spectrum, randles_impedance
from operando.analysis.gitt import analyse_gitt, diffusion_length_from_mass
from operando.analysis.voltammetry import dunn_split, last_scan, peak_currents, power_law_fit


def _cv(step, rate, k1, k2, cycles=2, lo=0.0, hi=1.0, e_step=1e-3):
    """``cycles`` scans lo->hi->lo at ``rate``; i = k1 v + k2 v^1/2 times a peak shape (sign of
    the sweep direction), so the Dunn coefficients at each potential are known. One sample per
    ``e_step`` of potential, as a staircase sampled at its own period."""
    dt = e_step / rate
    period = 2 * (hi - lo) / rate
    t = np.arange(0, cycles * period + dt / 2, dt)
    phase = (t % period) / period
    e = lo + (hi - lo) * np.where(phase < 0.5, 2 * phase, 2 - 2 * phase)
    up = phase < 0.5
    shape = np.exp(-(((e - 0.5) / 0.1) ** 2)) + 0.05
    i = np.where(up, 1, -1) * shape * (k1 * rate + k2 * math.sqrt(rate))
    return step, t, e, i


@pytest.mark.parametrize("b, k1, k2", [(1.0, 2.0, 0.0), (0.5, 0.0, 0.1)])
def test_peak_current_power_law_gives_b_exactly(b, k1, k2):
    rates = [1e-4, 3e-4, 1e-3, 3e-3]
    scans = [last_scan(*_cv(n, v, k1, k2)) for n, v in enumerate(rates, 1)]
    assert [s.scan_rate_V_s for s in scans] == pytest.approx(rates, rel=1e-9)
    assert all(s.scans_in_step == 2 for s in scans)
    an = [peak_currents(s)[0] for s in scans]
    ca = [peak_currents(s)[1] for s in scans]
    fa, fc = power_law_fit(rates, an), power_law_fit(rates, ca)
    assert fa.b == pytest.approx(b, abs=1e-9) and fc.b == pytest.approx(b, abs=1e-9)
    assert fa.b_stderr < 1e-9 and fa.n == 4


def test_two_rates_give_b_without_an_error_and_one_rate_is_refused():
    fit = power_law_fit([1e-3, 2e-3], [1.0, 2.0**0.7])
    assert fit.b == pytest.approx(0.7) and math.isnan(fit.b_stderr)
    with pytest.raises(ValueError, match="two or more scan rates"):
        power_law_fit([1e-3, 1e-3], [1.0, 1.0])


def test_dunn_split_recovers_k1_k2_and_the_capacitive_fraction():
    k1, k2 = 2.0, 0.05
    rates = [2e-4, 5e-4, 1e-3, 2e-3]
    scans = [last_scan(*_cv(n, v, k1, k2, e_step=2e-4)) for n, v in enumerate(rates, 1)]
    split = dunn_split(scans)
    shape = np.exp(-(((split.potentials_V - 0.5) / 0.1) ** 2)) + 0.05
    sign = np.repeat([1, -1], split.potentials_V.size // 2)
    assert split.k1 == pytest.approx(k1 * shape * sign, rel=2e-2)
    assert split.k2 == pytest.approx(k2 * shape * sign, rel=2e-2)
    expected = [k1 * v / (k1 * v + k2 * math.sqrt(v)) for v in rates]
    assert split.capacitive_fraction == pytest.approx(expected, abs=0.01)


def test_randles_fit_recovers_known_resistances_with_small_errors():
    f = 1e5 * (1e-2 / 1e5) ** (np.arange(36) / 35)
    truth = dict(R_ohm=12.0, R_ct=35.0, W_Z0=20.0, W_tau=30.0, CPE_Q=2e-4, CPE_alpha=0.88)
    z = randles_impedance(f, *truth.values())
    rng = np.random.default_rng(1)
    z = z * (1 + 0.002 * rng.standard_normal(f.size))  # 0.2 % noise
    fit = fit_spectrum(f, z.real, z.imag)
    for name, value in truth.items():
        assert fit.value(name) == pytest.approx(value, rel=0.03), name
        assert fit.error(name) < 0.05 * value
    assert fit.rms_relative < 0.005


def test_short_spectrum_is_refused():
    with pytest.raises(ValueError, match="at least 5 frequencies"):
        fit_spectrum([1e3, 1e2, 10], [1, 2, 3], [-1, -1, -1])


def _gitt_trace(D, L, tau, relax, dEs, ir=0.02, pulses=3, dt=1.0, current=-1e-3):
    """Pulses with E = E_rest + IR + m sqrt(t) (m from the chosen D) and relaxations that settle
    at E_rest + dEs; the first row is the cell at rest before the step."""
    dEt = dEs / math.sqrt(D * math.pi * tau / (4 * L**2))
    m = dEt / math.sqrt(tau)
    t, e, i = [0.0], [3.0], [0.0]
    rest = 3.0
    for _ in range(pulses):
        t0 = t[-1]
        for k in range(1, int(tau / dt) + 1):
            t.append(t0 + k * dt)
            e.append(rest + math.copysign(ir, dEs) + m * math.sqrt(k * dt))
            i.append(current)
        t1 = t[-1]
        for k in range(1, int(relax / dt) + 1):
            t.append(t1 + k * dt)
            e.append(rest + dEs + (e[-1] - rest - dEs) * 0.9**k)
            i.append(0.0)
        e[-1] = rest + dEs
        rest += dEs
    t, e, i = map(np.asarray, (t, e, i))
    q = np.cumsum(i * np.gradient(t)) / 3.6
    return t, e, i, q


def test_weppner_huggins_recovers_a_known_diffusion_coefficient():
    D, L = 3e-15, 2e-6
    t, e, i, q = _gitt_trace(D, L, tau=600.0, relax=1800.0, dEs=-0.015)
    pulses = analyse_gitt(t, e, i, q, L)
    assert len(pulses) == 3
    for p in pulses:
        assert p.tau_s == pytest.approx(600.0)
        assert p.D_m2_s == pytest.approx(D, rel=1e-6)
        assert p.dE_s_V == pytest.approx(-0.015)
    assert [p.E_relaxed_V for p in pulses] == pytest.approx([2.985, 2.97, 2.955])
    assert pulses[-1].charge_mAh == pytest.approx(q[-1])


def test_mass_form_length():
    # m V_M / (M S): 10 mg of a 40 cm3/mol, 100 g/mol material over 1 cm2 -> 40 um
    assert diffusion_length_from_mass(0.010, 40e-6, 100.0, 1e-4) == pytest.approx(40e-6)
