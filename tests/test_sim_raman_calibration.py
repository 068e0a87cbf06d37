"""Raman wavelength calibration: polynomial axis, Raman shift from the laser line, lamp fit."""

import numpy as np
import pytest

from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.raman import SimRamanPhysics
from operando.sim_devices.raman_calibration import NEON_LINES_NM, WavelengthCalibration, find_lines


def raman(**kw):
    return SimRamanPhysics(SimCell(preset("fe_li2o"), soc=0.5), seed=4, **kw)


def test_shift_axis_comes_from_the_wavelength_polynomial_and_the_laser():
    r = raman()
    wl = r.wavelength_nm
    np.testing.assert_allclose(r.raman_shift_cm1, 1e7 / r.laser_nm - 1e7 / wl, rtol=0, atol=1e-9)
    assert r.raman_shift_cm1[0] == pytest.approx(100.0, abs=0.5)
    assert r.raman_shift_cm1[-1] == pytest.approx(1800.0, abs=0.5)
    assert np.all(np.diff(wl) > 0)
    # a 785 nm laser over the same shifts needs redder pixels
    assert raman(laser_nm=785.0).wavelength_nm[0] > 790.0


def test_neon_lamp_recalibrates_the_axis():
    # tolerance: 0.02 nm in wavelength, 1 cm^-1 in shift across the chip (edges extrapolated)
    r = raman()
    true = r.calibration
    # a stale calibration: the grating has turned by ~6 pixels since it was made
    stale = WavelengthCalibration((true.coefficients[0] + 0.35, *true.coefficients[1:]))
    stale_wl = stale.wavelength_nm(np.arange(1024))
    lines = [w for w in NEON_LINES_NM if stale_wl[5] < w < stale_wl[-5]]  # those on the chip
    assert len(lines) >= 6
    guess_px = [np.interp(line, stale_wl, np.arange(1024)) for line in lines]
    found = find_lines(r.lamp_spectrum(0.2), guess_px, half_window=10)
    fitted = WavelengthCalibration.fit(found, lines, order=3)
    px = np.arange(1024)
    assert np.max(np.abs(fitted.wavelength_nm(px) - true.wavelength_nm(px))) < 0.02
    err_shift = fitted.raman_shift_cm1(px, r.laser_nm) - r.raman_shift_cm1
    assert np.max(np.abs(err_shift)) < 1.0
    assert np.max(np.abs(stale.raman_shift_cm1(px, r.laser_nm) - r.raman_shift_cm1)) > 8
    with pytest.raises(ValueError, match="more than 3"):
        WavelengthCalibration.fit([1, 2, 3], [500, 501, 502])


def test_laser_line_tail_rises_toward_the_filter_edge():
    r = raman(shift_range_cm1=(20.0, 1800.0))
    rate = r.clean_rate()
    x = r.raman_shift_cm1
    assert rate[0] > 3 * np.median(rate)  # Rayleigh leak at 20 cm^-1
    assert rate[0] > 2 * rate[np.argmin(np.abs(x - 60))]  # a Lorentzian tail: ~1/shift^2
    assert rate[np.argmin(np.abs(x - 150))] < 1.2 * rate[np.argmin(np.abs(x - 300))]
