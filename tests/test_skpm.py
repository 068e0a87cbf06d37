"""SKPM: the ophyd-async device, the simulated backend, and maps that follow the cell state."""

import asyncio

import numpy as np
import pytest

from operando.devices.skpm import Skpm, SkpmFrame, SkpmScan
from operando.sim_devices.backends.skpm import SimSkpmBackend
from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.lab import build_sim_lab
from operando.sim_devices.skpm import SimSkpmPhysics

T0 = 1_800_000_000.0


def lab_at(soc=0.0, **kw):
    return build_sim_lab("fe_li2o", speed=1e6, soc=soc, start_time=T0, clock="virtual", **kw)


def scan_frame(backend, **kw):
    params = dict(pixels=128, lines=16, width_m=200e-9, height_m=100e-9, line_rate_hz=1.0)
    params.update(kw)
    return asyncio.run(backend.scan(SkpmScan(**params)))


def step_and_width(frame: SkpmFrame, width_m: float):
    """CPD step (right minus left plateau) and 10-90 % width of the line-averaged profile."""
    profile = frame.cpd_V.mean(axis=0)
    x = np.linspace(-width_m / 2, width_m / 2, profile.size)
    lo, hi = profile[: profile.size // 5].mean(), profile[-profile.size // 5 :].mean()
    frac = (profile - lo) / (hi - lo)
    x10 = np.interp(0.1, frac, x)  # monotonic enough once averaged over lines
    x90 = np.interp(0.9, frac, x)
    return hi - lo, x90 - x10


def test_cpd_step_is_the_built_in_potential_and_grows_with_charge():
    # tolerance: 5 mV (noise 6 mV/pixel averaged over ~400 pixels per plateau)
    empty, full = lab_at(soc=0.0), lab_at(soc=0.95)
    steps = []
    for lab in (empty, full):
        step, _ = step_and_width(scan_frame(SimSkpmBackend(lab)), 200e-9)
        assert step == pytest.approx(lab.skpm.built_in_potential_V(), abs=5e-3)
        steps.append(step)
    assert steps[1] > steps[0] + 0.5  # the interfacial store filled: the step rose


def physics(debye_m, footprint_m, soc=0.5, **kw):
    p = preset("fe_li2o")
    p = p.model_copy(update={"space_charge": p.space_charge.model_copy(update={"debye_length_m": debye_m})})
    cell = SimCell(p, soc=soc)
    kw.setdefault("drift_m_s", (0.0, 0.0))
    return cell, SimSkpmPhysics(cell, tip_footprint_m=footprint_m, **kw)


def frame_from(phys, **kw):
    lab = lab_at()
    return scan_frame(SimSkpmBackend(lab, phys), **kw)


def test_space_charge_width_follows_debye_length_and_tip_broadens_it():
    # a sharp tip (0.2 nm footprint) sees the true 10-90 % width, 1.0986 w (10 %)
    widths = {}
    for debye in (1e-9, 4e-9):
        _cell, phys = physics(debye, 0.2e-9)
        _, measured = step_and_width(frame_from(phys, pixels=512, width_m=400e-9), 400e-9)
        assert measured == pytest.approx(1.0986 * phys.space_charge_width_m(), rel=0.1)
        widths[debye] = measured
    assert widths[4e-9] / widths[1e-9] == pytest.approx(4.0, rel=0.1)
    _cell, blunt = physics(1e-9, 15e-9)
    _, blurred = step_and_width(frame_from(blunt, pixels=512, width_m=400e-9), 400e-9)
    assert blurred > 3 * widths[1e-9]  # the tip's footprint, not the space charge, sets it now


def test_topography_shows_the_phase_step_and_tip_dilation():
    _cell, phys = physics(1e-9, 6e-9, roughness_m=0.0, height_noise_m=0.0, z_drift_m_s=0.0)
    frame = frame_from(phys)
    profile = frame.topography_m.mean(axis=0)
    assert profile[-10:].mean() - profile[:10].mean() == pytest.approx(8e-9, rel=0.02)
    x = np.linspace(-100e-9, 100e-9, profile.size)
    # a parabolic tip rides onto the step before its edge: height rises left of x = 0
    assert np.interp(-2e-9, x, profile) > 1e-9


def test_lateral_drift_moves_the_interface_line_by_line():
    _cell, phys = physics(1e-9, 1e-9, drift_m_s=(1e-9, 0.0))
    frame = frame_from(phys, pixels=400, lines=20, line_rate_hz=0.5)  # 2 s per line
    x = np.linspace(-100e-9, 100e-9, 400)
    centres = []
    for row in frame.cpd_V:
        smooth = np.convolve(row, np.ones(9) / 9, mode="same")
        mid = 0.5 * (smooth[20:80].mean() + smooth[-80:-20].mean())
        centres.append(x[np.argmax(smooth > mid)])
    slope = np.polyfit(np.arange(20) * 2.0, centres, 1)[0]
    assert slope == pytest.approx(-1e-9, rel=0.15)  # sample moves +x, feature appears at -x


def test_cpd_noise_falls_with_time_per_pixel():
    _cell, phys = physics(1e-9, 6e-9)
    fast = frame_from(phys, line_rate_hz=4.0).cpd_V[:, :30]
    slow = frame_from(phys, line_rate_hz=0.25).cpd_V[:, :30]
    assert np.std(fast) / np.std(slow) == pytest.approx(4.0, rel=0.2)


def test_scan_takes_its_time_on_the_clock_and_sees_the_cell_change():
    lab = lab_at(soc=0.0)
    p = lab.cell.params
    from operando.devices.techniques import ConstantCurrent, ScheduledStep

    lab.potentiostat.load(
        [
            ScheduledStep(
                technique=ConstantCurrent(current_A=p.c_rate_current_A(4.0), e_max_V=p.e_max_V), cycle=1, step=1
            )
        ]
    )
    lab.potentiostat.start()
    frame = scan_frame(SimSkpmBackend(lab), lines=40, line_rate_hz=0.05)  # 800 s while charging
    assert frame.scan_end - frame.scan_start == pytest.approx(800.0)
    first = frame.cpd_V[:5, -20:].mean() - frame.cpd_V[:5, :20].mean()
    last = frame.cpd_V[-5:, -20:].mean() - frame.cpd_V[-5:, :20].mean()
    assert last > first + 0.2


def test_device_reads_both_maps_and_rejects_bad_parameters():
    lab = lab_at()

    async def go():
        dev = Skpm(SimSkpmBackend(lab), pixels=32, lines=8, name="skpm")
        await dev.connect()
        await dev.trigger()
        reading = await dev.read()
        config = await dev.read_configuration()
        await dev.line_rate.set(0.0)
        with pytest.raises(ValueError, match="skpm: line_rate must be > 0"):
            await dev.trigger()
        return reading, config, await dev.describe()

    reading, config, desc = asyncio.run(go())
    assert reading["skpm-cpd"]["value"].shape == (8, 32)
    assert reading["skpm-topography"]["value"].shape == (8, 32)
    assert reading["skpm-exposure_end"]["value"] - reading["skpm-exposure_start"]["value"] == 8.0
    assert config["skpm-pixels"]["value"] == 32 and desc["skpm-cpd"]["shape"] == [8, 32]
