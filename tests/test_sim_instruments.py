"""Simulated magnetometer and Raman physics respond to the shared cell state."""

import numpy as np
import pytest

from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.magnetometer import SimMagnetometerPhysics
from operando.sim_devices.raman import SimRamanPhysics


def cell_at(soc, name="fe_li2o"):
    return SimCell(preset(name), soc=soc)


# ---- magnetometer -------------------------------------------------------------------------------
def test_moment_tracks_state_of_charge():
    moments = [SimMagnetometerPhysics(cell_at(s)).clean_moment_emu(3.0, 300.0) for s in (0, 0.5, 1)]
    # discharged: metallic Fe nanoparticles dominate; charged: only paramagnetic oxide remains
    assert moments[0] > moments[1] > moments[2] > 0
    assert (moments[0] - moments[2]) / moments[0] > 0.3


def test_moment_follows_cycling_and_interfacial_storage_lowers_it():
    p = preset("fe_li2o")
    cell = SimCell(p, soc=0.0)
    mag = SimMagnetometerPhysics(cell)
    no_drop = SimMagnetometerPhysics(cell, spin_polarisation=0.0)
    discharged = mag.clean_moment_emu(3.0, 300.0)
    # electrons stored at the Fe/Li2O interfaces at low potential lower the moment
    assert no_drop.clean_moment_emu(3.0, 300.0) > 1.1 * discharged
    cell.run(p.c_rate_current_A(1.0), np.arange(1, 1801.0))  # 30 min of charge
    charged = mag.clean_moment_emu(3.0, 300.0)
    assert (discharged - charged) / discharged > 0.3
    cell.run(-p.c_rate_current_A(1.0), np.arange(1, 1801.0))  # and back: reversible
    assert mag.clean_moment_emu(3.0, 300.0) == pytest.approx(discharged, rel=0.05)


def test_curie_weiss_paramagnetism_of_the_oxide():
    mag = SimMagnetometerPhysics(cell_at(1.0))
    no_ferro = SimMagnetometerPhysics(cell_at(1.0), fe_ms_emu_g=0.0, diamagnetic_emu_Oe=0.0)
    m100, m300 = no_ferro.clean_moment_emu(1.0, 100.0), no_ferro.clean_moment_emu(1.0, 300.0)
    assert m100 / m300 == pytest.approx((300 + 10) / (100 + 10), rel=1e-9)  # theta = -10 K
    assert mag.clean_moment_emu(1.0, 300.0) > m300


def test_moment_noise_at_10_s_averaging():
    mag = SimMagnetometerPhysics(cell_at(0.5), seed=42)
    clean = mag.clean_moment_emu(3.0, 300.0)
    readings = np.array([mag.moment_emu(3.0, 300.0, 10.0) for _ in range(4000)])
    std = np.std(readings - clean)
    assert 0.15e-6 < std < 0.2e-6
    assert abs(np.mean(readings - clean)) < 0.02e-6
    fast = np.std([mag.moment_emu(3.0, 300.0, 0.1) for _ in range(4000)])
    assert fast == pytest.approx(1.25e-6, rel=0.05)


def test_moment_is_deterministic_given_the_seed():
    a = SimMagnetometerPhysics(cell_at(0.5), seed=7)
    b = SimMagnetometerPhysics(cell_at(0.5), seed=7)
    assert [a.moment_emu(1, 300, 1) for _ in range(5)] == [b.moment_emu(1, 300, 1) for _ in range(5)]
    with pytest.raises(ValueError):
        a.moment_emu(1, 300, 0)


# ---- Raman --------------------------------------------------------------------------------------
def band_height(raman, spectrum, centre):
    """Peak counts above a local straight baseline 60 cm^-1 either side."""
    x = raman.raman_shift_cm1
    peak = spectrum[np.abs(x - centre) < 3].mean()
    side = spectrum[(np.abs(x - centre) > 55) & (np.abs(x - centre) < 65)].mean()
    return peak - side


def test_interfacial_band_ratio_follows_state():
    ratios = []
    for soc in (0.0, 1.0):
        raman = SimRamanPhysics(cell_at(soc), seed=1)
        s = raman.spectrum(10.0, accumulations=3)
        ratios.append(band_height(raman, s, 1010) / band_height(raman, s, 880))
    assert ratios[1] > 3 * ratios[0]


def test_lattice_band_shifts_with_state_of_charge():
    centres = []
    for soc in (0.0, 1.0):
        raman = SimRamanPhysics(cell_at(soc), seed=2)
        s = raman.spectrum(30.0, accumulations=5)
        x = raman.raman_shift_cm1
        window = np.abs(x - 502) < 15
        signal = s[window] - np.median(s[(np.abs(x - 502) > 40) & (np.abs(x - 502) < 50)])
        centres.append(np.sum(x[window] * signal) / np.sum(signal))
    assert 3.0 < centres[0] - centres[1] < 9.0  # the band softens by ~6 cm^-1 on charge


def test_noise_falls_with_exposure_and_accumulations():
    raman = SimRamanPhysics(cell_at(0.5), seed=3)
    rate = raman.clean_rate() + raman.DARK_COUNTS_S

    def relative_noise(exposure, accumulations):
        total = exposure * accumulations
        residual = raman.spectrum(exposure, accumulations) / total - rate
        return np.median(np.abs(residual)) / np.mean(rate)  # median: robust to cosmic rays

    assert relative_noise(10.0, 1) < relative_noise(1.0, 1) / 2.5
    assert relative_noise(1.0, 10) < relative_noise(1.0, 1) / 2.5


def test_spectrum_shape_determinism_and_cosmic_rays():
    a = SimRamanPhysics(cell_at(0.5), seed=9, n_pixels=512)
    b = SimRamanPhysics(cell_at(0.5), seed=9, n_pixels=512)
    sa, sb = a.spectrum(5.0, 2), b.spectrum(5.0, 2)
    assert sa.shape == (512,) and sa.dtype == np.float64
    np.testing.assert_array_equal(sa, sb)
    # 500 one-second frames: ~10 cosmic-ray spikes of 200-3000 counts expected
    expected = a.clean_rate() + a.DARK_COUNTS_S
    frames = np.array([a.spectrum(1.0) for _ in range(500)])
    spikes = frames - expected > 8 * np.sqrt(expected) + 100
    assert 2 <= np.count_nonzero(spikes.any(axis=1)) <= 30
    assert a.wavelength_nm[0] > a.laser_nm
    with pytest.raises(ValueError):
        a.spectrum(0.0)
