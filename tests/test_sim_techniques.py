"""The simulated potentiostat runs every technique; the cell's small-signal impedance."""

import asyncio

import numpy as np
import pytest

from operando.devices.techniques import (
    IMPEDANCE_COLUMNS,
    ConstantCurrentConstantVoltage,
    ConstantPotential,
    CyclicVoltammetry,
    GalvanostaticEis,
    Gitt,
    LinearSweep,
    PotentiostaticEis,
    ScheduledStep,
)
from operando.sim_devices.backends.potentiostat import SimPotentiostatBackend
from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.lab import build_sim_lab
from operando.sim_devices.potentiostat import SimPotentiostatEngine
from operando.sim_devices.technique_runs import eis_measure_s

T0 = 1_800_000_000.0


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


# ---- the engine runs every technique --------------------------------------------------------
class ManualClock:
    def __init__(self, t=T0):
        self.t = t

    def time(self):
        return self.t


def engine(name="bulk", soc=0.5, dt=1.0):
    c = SimCell(preset(name), soc=soc)
    clock = ManualClock()
    return SimPotentiostatEngine(c, clock, dt), clock, c


def run_all(tech, name="bulk", soc=0.5, dt=1.0, until=1e5, pieces=None):
    """Run one technique to ``until`` s, in one advance_to call or at ``pieces`` times."""
    eng, clock, c = engine(name, soc, dt)
    eng.load([ScheduledStep(technique=tech, cycle=2, step=5)])
    eng.start()
    for t in pieces if pieces is not None else ():
        eng.advance_to(T0 + t)
    eng.advance_to(T0 + until)
    assert eng.done and eng.stop_reason == "completed"
    return eng.drain(), eng.drain_impedance(), c


def test_cccv_holds_e_hold_until_the_current_decays_to_the_cutoff():
    p = preset("bulk")
    i, cutoff = p.c_rate_current_A(2.0), p.c_rate_current_A(0.05)
    d, _, c = run_all(ConstantCurrentConstantVoltage(current_A=i, e_hold_V=3.6, i_cutoff_A=cutoff), soc=0.3)
    cc = d["I"] == i
    n_cc = np.argmin(cc)  # first potentiostatic sample
    assert n_cc > 10 and np.all(cc[:n_cc]) and d["Ewe"][n_cc - 1] >= 3.6 > d["Ewe"][n_cc - 2]
    hold_i, hold_e = d["I"][n_cc:], d["Ewe"][n_cc:]
    assert np.all(hold_e == 3.6) and hold_i.size > 10
    assert np.all(np.diff(hold_i) < 0)  # decays monotonically
    assert hold_i[-1] <= cutoff < hold_i[-2]  # and the step ends at the first sample below
    # the charge column integrates the measured current in the potentiostatic phase too
    q_hold = (d["charge"][-1] - d["charge"][n_cc - 1]) * 3.6
    assert q_hold == pytest.approx(hold_i.sum() * 1.0, rel=0.02)
    assert d["charge"][-1] == pytest.approx(c.charge_mAh, abs=1e-12)


def test_cccv_discharge_and_time_limit():
    p = preset("bulk")
    tech = ConstantCurrentConstantVoltage(
        current_A=-p.c_rate_current_A(5.0), e_hold_V=3.3, i_cutoff_A=1e-9, max_duration_s=500
    )
    d, _, _ = run_all(tech, soc=0.5)
    assert d["I"].size == 500  # the cut-off current is never reached: the step limit ends it
    assert d["Ewe"][-1] == 3.3 and d["I"][0] < 0 and -1e-9 > d["I"][-1] > d["I"][0]


def cv(rate=1e-3, e_start=3.43, cycles=1, **kw):
    return CyclicVoltammetry(
        e_start_V=e_start, e_vertex1_V=3.7, e_vertex2_V=3.15, scan_rate_V_s=rate, cycles=cycles, **kw
    )


def test_cv_staircase_sign_changes_at_the_vertices_and_diffusion_limited_peaks():
    peaks = []
    for rate in (0.25e-3, 1e-3):
        d, _, _ = run_all(cv(rate, cycles=2), "bulk_micron", dt=1e-3 / rate)  # one sample per step
        e, i = d["Ewe"], d["I"]
        assert e.size == 2 * 1100 + 1  # 1100 levels of 1 mV per scan, plus the final e_start
        assert np.allclose(np.abs(np.diff(e)), 1e-3)
        assert e[0] == pytest.approx(3.43) and e[-1] == pytest.approx(3.43)
        v1, v2 = np.argmax(e), np.argmin(e)  # the first scan's vertices
        assert e[v1] == pytest.approx(3.7) and e[v2] == pytest.approx(3.15)
        # the current reverses on each return branch, near the plateau (diffusion-limited: the
        # charged surface keeps delivering anodic current until E nears its OCV again)
        assert i[v1] > 0 and i[v2] < 0
        e_neg = e[v1 + np.argmax(i[v1:] < 0)]
        e_pos = e[v2 + np.argmax(i[v2:] > 0)]
        assert 3.43 < e_neg < 3.6 and 3.3 < e_pos < 3.43
        second = slice(1101, None)  # the second scan: a stable voltammogram
        ia, ic = np.argmax(i[second]), np.argmin(i[second])
        peaks.append((e[second][ia], i[second][ia], e[second][ic], i[second][ic]))
    e0 = 3.43  # the plateau's formal potential
    for epa, ipa, epc, ipc in peaks:
        assert e0 < epa < e0 + 0.15 and e0 - 0.15 < epc < e0 and ipa > 0 > ipc
    (epa1, ipa1, epc1, _), (epa2, ipa2, epc2, _) = peaks
    assert epa2 - epc2 > epa1 - epc1  # peaks separate as the scan speeds up
    assert ipa2 / ipa1 == pytest.approx(2.0, rel=0.2)  # 4x the rate: ~v^1/2 (diffusion-limited)


def test_lsv_ends_at_e_end_with_staircase_levels():
    d, _, _ = run_all(LinearSweep(e_start_V=3.43, e_end_V=3.33, scan_rate_V_s=2e-3, e_step_V=0.002))
    # 2 mV levels at 2 mV/s: one level per second, sampled once a second (51 levels)
    assert d["Ewe"][0] == 3.43 and d["Ewe"][-1] == pytest.approx(3.33) and d["Ewe"].size == 51
    assert np.all(d["I"][5:] < 0)  # sweeping down discharges


def test_ca_current_decays_cottrell_like_and_stops_at_the_cutoff():
    d, _, _ = run_all(ConstantPotential(e_V=3.53, duration_s=20000), "bulk_micron")
    i = d["I"]
    assert i.size == 20000 and np.all(np.diff(i) < 0) and i[0] > 0
    t = np.arange(1, i.size + 1.0)
    cottrell = i[29:300] * np.sqrt(t[29:300])  # I ~ t^-1/2 while diffusion is semi-infinite
    assert cottrell.max() / cottrell.min() < 1.35 and i[29] / i[299] > 3.0
    d2, _, _ = run_all(ConstantPotential(e_V=3.53, duration_s=20000, i_cutoff_A=1e-4), "bulk_micron")
    assert d2["I"][-1] <= 1e-4 < d2["I"][-2] and d2["I"].size < 1000
    np.testing.assert_allclose(d2["I"], i[: d2["I"].size], rtol=1e-12)


def gitt(**kw):
    p = preset("bulk")
    return Gitt(current_A=p.c_rate_current_A(1.0), pulse_s=300, relax_s=600, **kw)


def pulses_of(i):
    on = np.concatenate(([0], (i != 0).astype(int), [0]))
    return np.flatnonzero(np.diff(on) == 1), np.flatnonzero(np.diff(on) == -1)


def test_gitt_pulses_relax_and_stop_at_the_cutoff():
    d, _, _ = run_all(gitt(e_max_V=3.6), soc=0.3)
    starts, ends = pulses_of(d["I"])
    n = starts.size
    assert n >= 3
    assert np.all(ends[:-1] - starts[:-1] == 300)  # full pulses
    assert ends[-1] - starts[-1] < 300 and d["Ewe"][ends[-1] - 1] >= 3.6  # cut off
    assert np.all(d["Ewe"][: ends[-1] - 1][d["I"][: ends[-1] - 1] != 0] < 3.6)
    gaps = np.diff(np.append(starts, d["I"].size))
    assert np.all(gaps[:-1] - (ends[:-1] - starts[:-1]) == 600)  # each pulse then 600 s rest
    assert d["I"].size - ends[-1] == 600  # the relaxation after the last pulse is measured
    d3, _, _ = run_all(gitt(max_pulses=3), soc=0.3)
    assert pulses_of(d3["I"])[0].size == 3 and d3["I"].size == 3 * 900


def test_peis_one_row_per_frequency_in_order():
    tech = PotentiostaticEis(f_max_Hz=1e5, f_min_Hz=0.01, points_per_decade=5)
    d, z, c = run_all(tech, soc=0.5)
    f = np.array(tech.frequencies_Hz)
    assert list(z) == list(IMPEDANCE_COLUMNS)
    np.testing.assert_array_equal(z["frequency"], f)
    ends = T0 + np.cumsum([eis_measure_s(x) for x in f])
    np.testing.assert_allclose(z["timestamp"], ends, rtol=0, atol=1e-6)
    assert d["timestamp"][-1] == T0 + np.ceil(ends[-1] - T0 - 1e-9)  # echem samples throughout
    assert z["Z_re"][0] == pytest.approx(c.params.r_ohm, rel=0.02)
    np.testing.assert_allclose(z["Z_re"] + 1j * z["Z_im"], c.impedance(f), rtol=0.015)
    assert np.all(z["Z_im"][15:] < 0) and z["Z_re"][-1] > c.params.r_ohm + c.params.r_ct_ohm * 0.9
    # the DC point: the rest potential at the step's start, potentiostatic, ~no current
    assert np.all(z["Ewe_dc"] == d["Ewe"][0]) and np.all(np.abs(d["I"]) < 1e-6)
    assert np.all(z["cycle"] == 2) and np.all(z["step"] == 5)


def test_geis_holds_its_dc_current():
    tech = GalvanostaticEis(f_max_Hz=1e3, f_min_Hz=0.1, amplitude_A=1e-5, i_dc_A=2e-5)
    d, z, c = run_all(tech, soc=0.5, dt=0.5)
    assert z["frequency"].size == len(tech.frequencies_Hz) and np.all(d["I"] == 2e-5)
    assert np.all(z["I_dc"] == 2e-5) and np.all(np.diff(z["Ewe_dc"]) >= 0)  # charging slowly
    assert z["Ewe_dc"][-1] > z["Ewe_dc"][0]
    assert np.all(z["Z_im"][-5:] < 0)


@pytest.mark.parametrize(
    "tech,name,dt",
    [
        (cv(rate=0.05, e_step_V=0.001, cycles=2), "bulk_micron", 0.01),
        (Gitt(current_A=3e-4, pulse_s=2.0, relax_s=3.0, e_max_V=3.47, max_pulses=6), "bulk", 0.01),
        (PotentiostaticEis(f_max_Hz=100, f_min_Hz=0.5, e_dc_V=3.45), "bulk", 0.01),
    ],
)
def test_data_do_not_depend_on_how_often_advance_to_is_called(tech, name, dt):
    whole, z_whole, _ = run_all(tech, name, soc=0.3, dt=dt, until=100)
    times = np.cumsum(np.random.default_rng(7).uniform(0.001, 0.13, 1500))
    bits, z_bits, _ = run_all(tech, name, soc=0.3, dt=dt, until=100, pieces=times[times < 100])
    assert whole["I"].size > 500
    for col in whole:
        np.testing.assert_allclose(bits[col], whole[col], rtol=0, atol=1e-12)
    for col in z_whole:
        np.testing.assert_allclose(z_bits[col], z_whole[col], rtol=0, atol=1e-9)


def test_hold_during_cv_resumes_at_the_same_potential_and_direction():
    tech = cv(rate=1e-3, e_start=3.43)
    ref, _, _ = run_all(tech, "bulk_micron")
    eng, clock, c = engine("bulk_micron")
    eng.load([ScheduledStep(technique=tech, cycle=1, step=1)])
    eng.start()
    clock.t = T0 + 400  # 3.7 V vertex at 270 s: sweeping down at 3.56 V
    eng.hold()
    eng.advance_to(T0 + 460)
    assert eng.last_current == 0.0 and c.current_A == 0.0
    clock.t = T0 + 460
    eng.release()
    eng.advance_to(T0 + 1e5)
    d = eng.drain()
    held = (d["timestamp"] > T0 + 400) & (d["timestamp"] <= T0 + 460)
    assert held.sum() == 60 and np.all(d["I"][held] == 0.0)
    # at open circuit Ewe relaxes towards the plateau, away from the imposed staircase
    assert np.all(d["Ewe"][held] < d["Ewe"][399])
    live = ~held
    np.testing.assert_array_equal(d["Ewe"][live], ref["Ewe"])  # the programme simply resumed
    after = d["Ewe"][live][400:403]
    assert after[0] == pytest.approx(d["Ewe"][399] - 1e-3) and np.all(np.diff(after) < 0)


def test_open_circuit_mid_technique_leaves_no_current():
    eng, clock, c = engine("bulk_micron")
    eng.load([ScheduledStep(technique=ConstantPotential(e_V=3.6, duration_s=3600), cycle=1, step=1)])
    eng.start()
    eng.advance_to(T0 + 100)
    assert eng.last_current > 0
    clock.t = T0 + 100
    eng.open_circuit("safety: test")
    assert eng.last_current == 0.0 and c.current_A == 0.0
    assert c.ewe_V == c.rest_potential_V  # no ohmic drop: nothing flows
    charge = c.charge_mAh
    eng.advance_to(T0 + 2000)
    assert c.charge_mAh == charge and eng.drain()["I"].size == 100


def test_backend_poll_impedance_maps_the_instrument_clock():
    tech = PotentiostaticEis(f_max_Hz=1e3, f_min_Hz=1.0, points_per_decade=4)
    step = ScheduledStep(technique=tech, cycle=1, step=1)

    def measure(instrument_clock):
        lab = build_sim_lab("bulk", soc=0.5, clock="virtual", start_time=T0, sample_interval_s=0.1)
        backend = SimPotentiostatBackend(lab, instrument_clock)
        asyncio.run(backend.start([step]))
        rows = []
        for _ in range(10):
            lab.clock.advance(1.0)  # virtual time, moved by hand between polls
            rows.append(asyncio.run(backend.poll_impedance()))
        return backend, {k: np.concatenate([r[k] for r in rows]) for k in IMPEDANCE_COLUMNS}

    _, host = measure(None)
    backend, inst = measure((5.0, 200.0))
    assert host["frequency"].size == len(tech.frequencies_Hz)
    np.testing.assert_allclose(inst["timestamp"], backend.instrument_time(host["timestamp"]), atol=1e-9)
    np.testing.assert_array_equal(inst["Z_re"], host["Z_re"])
