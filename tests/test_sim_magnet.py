"""Simulated SQUID-VSM dynamics: field ramps, post-ramp relaxation, temperature tracking."""

import asyncio

import pytest

from operando.sim_devices.backends.mpms import SimMpmsBackend
from operando.sim_devices.lab import build_sim_lab
from operando.sim_devices.magnet import MagnetDynamics

T0 = 1_800_000_000.0


def test_field_ramps_at_its_rate_then_relaxes_for_5_to_7_minutes():
    m = MagnetDynamics(0.0, 300.0, T0, ramp_T_s=0.01)
    end = m.set_field(1.0, T0)
    assert end - T0 == pytest.approx(100.0)  # 1 T at 100 Oe/s
    assert m.field_at(T0 + 50) == pytest.approx(0.5)
    assert m.field_at(end + 1) > 1.0 + 1e-3  # flux creep right after arrival
    settle = m.field_stable_at(end) - end
    assert 5 * 60 <= settle <= 7 * 60
    assert not m.field_stable(end + 0.5 * settle) and m.field_stable(end + settle)
    assert abs(m.field_at(end + settle) - 1.0) < 2e-5  # relaxed to 1e-5 of the step


def test_temperature_sweeps_then_approaches_its_setpoint():
    m = MagnetDynamics(1.0, 300.0, T0, temp_rate_K_s=10 / 60, temp_tau_s=60)
    m.set_temperature(100.0, T0)
    assert m.temperature_at(T0 + 60) == pytest.approx(290.0)  # 10 K/min
    times = [T0 + s for s in range(0, 3600, 30)]
    temps = [m.temperature_at(t) for t in times]
    assert all(b <= a for a, b in zip(temps, temps[1:]))  # monotonic, no overshoot
    assert temps[-1] == pytest.approx(100.0, abs=0.01)


def test_backend_readings_follow_field_and_temperature_and_the_cell_tracks_it():
    lab = build_sim_lab("fe_li2o", speed=1e6, soc=0.5, start_time=T0, clock="virtual")
    mpms = SimMpmsBackend(lab, field_T=0.0, temperature_K=300.0)

    async def go():
        zero = await mpms.measure(1.0)
        await mpms.set_field(3.0, wait_stable=True)
        status = await mpms.status()
        high = await mpms.measure(1.0)
        await mpms.set_temperature(250.0)
        await lab.clock.sleep(3600)
        cold = await mpms.measure(1.0)
        return zero, status, high, cold

    zero, status, high, cold = asyncio.run(go())
    assert status["field_stable"] and status["field_T"] == pytest.approx(3.0, abs=1e-4)
    assert high.exposure_start - T0 == pytest.approx(1.0 + 300.0 + 375.0)  # ramp + settle
    assert abs(high.moment_emu) > 100 * abs(zero.moment_emu)
    assert cold.temperature_K == pytest.approx(250.0, abs=0.1)
    assert lab.cell.temperature_K == pytest.approx(250.0, abs=0.1)
