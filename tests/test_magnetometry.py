"""Magnetometry (issue 13, phase 2): the simulated cell's magnetism against field, temperature
and state; the Curie–Weiss fit; the M–T and M–H plans on the controlled SQUID-VSM backend."""

import asyncio

import numpy as np
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop

from operando.acquisition.session import OperandoRunEngine
from operando.analysis.magnetometry import MU_EFF_PER_SQRT_C, fit_curie_weiss, moles_from_sample
from operando.devices.kinds import DETECTOR_KINDS
from operando.devices.magnetometer import Magnetometer
from operando.devices.registry import Capability
from operando.plans.magnetometry import mh_loop, mt_sweep
from operando.sim_devices.backends.detectors import SimMagnetometerBackend
from operando.sim_devices.backends.mpms import SimMpmsBackend, SimMpmsSettings
from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.lab import build_sim_lab
from operando.sim_devices.magnetometer import SimMagnetometerPhysics

T0 = 1_800_000_000.0
GRID_K = np.geomspace(5.0, 300.0, 24)


def charge_to(cell, potential_V):
    cell.run(cell.params.c_rate_current_A(1.0), np.arange(1, 3 * 3600.0), e_max_V=potential_V)


def discharge_to(cell, potential_V):
    cell.run(-cell.params.c_rate_current_A(1.0), np.arange(1, 3 * 3600.0), e_min_V=potential_V)


# ---- the physics --------------------------------------------------------------------------
def test_curie_constant_follows_the_review_from_pristine_to_3_V():
    cell = SimCell(preset("fe_li2o"), soc=1.0)  # pristine oxide near 3 V
    mag = SimMagnetometerPhysics(cell)
    seen = {"pristine": mag.curie_constant_cm3K_mol()}
    discharge_to(cell, 0.01)
    seen["0.01 V"] = mag.curie_constant_cm3K_mol()
    charge_to(cell, 1.3)
    seen["1.3 V"] = mag.curie_constant_cm3K_mol()
    charge_to(cell, 3.0)
    seen["3 V"] = mag.curie_constant_cm3K_mol()
    assert seen["pristine"] == seen["0.01 V"] == pytest.approx(1.5)
    assert seen["1.3 V"] == pytest.approx(1.5, abs=0.005)  # the rise starts flat at 1.3 V
    assert seen["3 V"] == pytest.approx(1.82, abs=0.005)


def test_m_h_saturates_and_m_t_is_curie_weiss_plus_langevin():
    mag = SimMagnetometerPhysics(SimCell(preset("fe_li2o"), soc=0.0), diamagnetic_emu_Oe=0.0)
    fields = np.array([0.5, 1.0, 3.0, 7.0])
    m = np.array([mag.clean_moment_emu(f, 300.0) for f in fields])
    assert np.all(np.diff(m) > 0) and np.all(np.diff(m / fields) < 0)  # sub-linear: saturating
    assert mag.clean_moment_emu(-1.0, 300.0) == pytest.approx(-mag.clean_moment_emu(1.0, 300.0))
    # the paramagnetic part alone: C / (T - theta) per mole of Fe
    para = SimMagnetometerPhysics(mag._cell, fe_ms_emu_g=0.0, spin_polarisation=0.0, diamagnetic_emu_Oe=0.0)
    chi = para.clean_moment_emu(1.0, 50.0) / (1e4 * para.fe_mol)
    assert chi == pytest.approx(1.5 / (50.0 + 10.0), rel=1e-9)


# ---- the fit ------------------------------------------------------------------------------
def test_fit_recovers_an_exact_curie_weiss_curve_and_its_effective_moment():
    t = np.geomspace(5, 300, 30)
    moles, h = 1e-5, 1e4
    m = h * (-1e-9 + moles * 2.0 / (t + 7.0))
    fit = fit_curie_weiss(t, m, h, moles)
    assert fit.curie_cm3K_mol == pytest.approx(2.0, rel=1e-6)
    assert fit.theta_K == pytest.approx(-7.0, abs=1e-4)
    assert fit.mu_eff_muB == pytest.approx(MU_EFF_PER_SQRT_C * np.sqrt(2.0), rel=1e-6)
    assert MU_EFF_PER_SQRT_C == pytest.approx(2.828, abs=1e-3)
    assert fit.curie_err < 1e-6


def test_moles_come_from_the_sample_metadata():
    assert moles_from_sample({"active_mass_g": 1e-3, "magnetic_ion_mol_per_g": 0.0125}) == pytest.approx(1.25e-5)
    with pytest.raises(ValueError, match="magnetic_ion_mol_per_g"):
        moles_from_sample({"active_mass_g": 1e-3})


# ---- done when: M-T sweeps at three states recover C within 2 % and show the step ---------
async def zfc_fc(mpms, grid, field_T):
    await mpms.set_field(0.0, wait_stable=True)
    await mpms.set_temperature(grid[0], wait_stable=True)
    await mpms.set_field(field_T, wait_stable=True)
    rows = []
    for temps in (grid, grid[::-1]):  # ZFC warming, then FC cooling
        for t in temps:
            await mpms.set_temperature(t, wait_stable=True)
            rows.append(await mpms.measure(10.0))
    return rows


def test_mt_sweeps_at_three_states_recover_the_curie_constants_and_the_step():
    fitted, truth = {}, {}
    for volts in (0.01, 1.3, 3.0):
        lab = build_sim_lab("fe_li2o", soc=0.0, start_time=T0, clock="virtual", speed=1e6, sample_interval_s=10)
        if volts > 0.01:
            charge_to(lab.cell, volts)
        mpms = SimMpmsBackend(lab, field_T=0.0, temperature_K=300.0)
        rows = asyncio.run(zfc_fc(mpms, GRID_K, 1.0))
        t = np.array([r.temperature_K for r in rows])
        m = np.array([r.moment_emu for r in rows])
        moles = lab.magnetometer.fe_mol
        # The cell is frozen below 200 K (its state fixed): fit there; the full range too.
        fit = fit_curie_weiss(t, m, 1e4, moles, superparamagnetic=True, t_max_K=190.0)
        full = fit_curie_weiss(t, m, 1e4, moles, superparamagnetic=True)
        truth[volts] = lab.magnetometer.curie_constant_cm3K_mol()
        fitted[volts] = fit.curie_cm3K_mol
        assert fit.curie_cm3K_mol == pytest.approx(truth[volts], rel=0.02)
        assert full.curie_cm3K_mol == pytest.approx(truth[volts], rel=0.02)
        assert fit.theta_K == pytest.approx(lab.magnetometer.weiss_theta_K, abs=1.0)
    assert truth[0.01] == pytest.approx(1.5) and truth[3.0] == pytest.approx(1.82, abs=0.005)
    assert abs(fitted[1.3] - fitted[0.01]) < 0.03  # stable from 0.01 V to 1.3 V...
    assert fitted[3.0] - fitted[1.3] == pytest.approx(0.32, abs=0.04)  # ...then the step at 3 V


# ---- the device, the registry and the plans -------------------------------------------------
class Bench:
    def __init__(self, soc=0.0):
        self.RE = OperandoRunEngine({})
        self.lab = build_sim_lab("fe_li2o", soc=soc, start_time=T0, clock="virtual", speed=1e6, sample_interval_s=10)
        settings = SimMpmsSettings(field_T=0.0, averaging_s=10.0)
        backend = SimMpmsBackend(self.lab, field_T=0.0, temperature_K=300.0)
        self.mag = DETECTOR_KINDS["magnetometer"].make_device(backend, settings, "magnetometer")
        call_in_bluesky_event_loop(self.mag.connect())
        self.docs = []

    def run(self, plan):
        return self.RE(plan, lambda n, d: self.docs.append((n, d)))

    def events(self, stream):
        uids = {d["uid"] for n, d in self.docs if n == "descriptor" and d["name"] == stream}
        return [d["data"] for n, d in self.docs if n == "event" and d["descriptor"] in uids]


def test_the_controlled_backend_is_registered_with_strict_settings_and_capabilities():
    from operando.acquisition.backends import load_backends
    from operando.devices.registry import registered

    load_backends()
    spec = registered()[("magnetometer", "mpms")]
    assert spec.capabilities == {Capability.FIELD_CONTROL, Capability.TEMPERATURE_CONTROL}
    assert spec.simulated and spec.settings is SimMpmsSettings
    with pytest.raises(ValueError):
        SimMpmsSettings(field_T=1.0, no_such_key=1)
    with pytest.raises(ValueError):
        SimMpmsSettings(field_T=9.0)  # outside the default +-7 T


def test_mt_sweep_runs_zfc_then_fc_and_its_fit_recovers_c():
    b = Bench()
    (uid,) = b.run(mt_sweep(b.mag, GRID_K, 1.0, b.lab.clock))
    zfc, fc = b.events("zfc"), b.events("fc")
    assert len(zfc) == len(fc) == len(GRID_K)
    t = np.array([e["magnetometer-temperature"] for e in zfc + fc])
    m = np.array([e["magnetometer-moment"] for e in zfc + fc])
    assert [e["magnetometer-field_Oe"] for e in zfc] == pytest.approx([1e4] * len(zfc), rel=1e-4)
    assert np.all(np.diff(t[: len(zfc)]) > 0) and np.all(np.diff(t[len(zfc) :]) < 0)
    fit = fit_curie_weiss(t, m, 1e4, b.lab.magnetometer.fe_mol, superparamagnetic=True, t_max_K=190.0)
    assert fit.curie_cm3K_mol == pytest.approx(1.5, rel=0.02)
    start = next(d for n, d in b.docs if n == "start")
    assert start["plan_name"] == "mt_sweep" and start["relax_s"] == 375.0


def test_each_field_change_waits_out_the_magnet_relaxation():
    b = Bench()
    b.run(mh_loop(b.mag, [0.5, 1.0], 300.0, b.lab.clock, relax_s=600.0))
    rows = b.events("mh")
    first_end = rows[0]["magnetometer-exposure_end"]
    second_start = rows[1]["magnetometer-exposure_start"]
    assert second_start - first_end >= 0.5 / 0.01 + 600.0  # ramp 0.5 T at 100 Oe/s, then relax_s


def test_mh_loop_saturates_and_is_odd_in_field():
    b = Bench()
    fields = [0.0, 1.0, 3.0, 7.0, -7.0, -3.0, -1.0]
    b.run(mh_loop(b.mag, fields, 300.0, b.lab.clock, relax_s=60.0))
    m = {e["magnetometer-field"]: e["magnetometer-moment"] for e in b.events("mh")}
    assert len(m) == len(fields)
    f = {round(k, 3): v for k, v in m.items()}
    assert f[7.0] == pytest.approx(-f[-7.0], rel=1e-3) and f[1.0] == pytest.approx(-f[-1.0], rel=1e-3)
    assert f[7.0] / 7.0 < f[3.0] / 3.0 < f[1.0] / 1.0  # saturating


def test_set_points_outside_the_ranges_are_refused_before_the_run_opens():
    b = Bench()
    with pytest.raises(ValueError, match="outside"):
        b.run(mt_sweep(b.mag, [1.0, 300.0], 1.0, b.lab.clock))  # 1 K < 1.8 K
    with pytest.raises(ValueError, match="outside"):
        b.run(mh_loop(b.mag, [0.0, 8.0], 300.0, b.lab.clock))
    assert not b.docs
    fixed = Magnetometer(SimMagnetometerBackend(b.lab), name="m")  # the fixed-field sim
    with pytest.raises(ValueError, match="does not set the field"):
        fixed.check_field(1.0)


class RecordingPotentiostat:
    def __init__(self):
        self.calls = []

    async def hold(self, why):
        self.calls.append(("hold", why))

    async def release(self, why):
        self.calls.append(("release", why))


def test_the_cell_is_held_for_the_whole_sweep_and_released_after():
    b = Bench()
    pstat = RecordingPotentiostat()
    b.run(mh_loop(b.mag, [0.0, 1.0], 300.0, b.lab.clock, potentiostat=pstat, relax_s=10.0))
    assert pstat.calls == [("hold", "M–H loop"), ("release", "M–H loop")]
