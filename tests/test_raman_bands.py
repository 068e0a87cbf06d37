"""Raman band fitting and tracking (analysis/raman_bands.py) on the simulator's spectra, whose
band centres, widths and their change with state of charge are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from operando.analysis.raman_bands import BandGuess, band_groups, find_bands, fit_bands, track_bands
from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.raman import SimRamanPhysics

EXPOSURE_S, ACCUMULATIONS = 10.0, 2


def spectrum_at(soc: float, seed: int = 1):
    physics = SimRamanPhysics(SimCell(preset("fe_li2o"), soc=soc), seed=seed)
    dark = physics.DARK_COUNTS_S * EXPOSURE_S * ACCUMULATIONS  # the expected dark, subtracted
    return physics, physics.spectrum(EXPOSURE_S, ACCUMULATIONS) - dark


def guesses_near(physics, offset_cm1: float = 3.0) -> list[BandGuess]:
    return [BandGuess(name, centre + offset_cm1, fwhm) for name, centre, fwhm, _ in physics.bands()]


@pytest.mark.parametrize("shape", ["lorentzian", "voigt"])
def test_every_band_is_recovered_within_half_a_wavenumber(shape):
    physics, counts = spectrum_at(0.3)
    fits = fit_bands(physics.raman_shift_cm1, counts, guesses_near(physics), shape)
    for (name, centre, fwhm, _), fit in zip(physics.bands(), fits):
        assert fit.name == name and fit.ok
        assert fit.centre_cm1 == pytest.approx(centre, abs=0.5)
        assert 0 < fit.centre_err < 0.5
        if shape == "lorentzian":  # the simulator's line shape
            assert fit.fwhm_cm1 == pytest.approx(fwhm, rel=0.05)
            assert fit.reduced_chi2 < 2.0


def test_overlapping_bands_are_fitted_together():
    physics, _ = spectrum_at(0.0)
    groups = [[g.name for g in grp] for grp in band_groups(guesses_near(physics, 0.0))]
    assert groups == [["lattice"], ["M-O-M", "M-O-C"], ["D", "G"]]


def test_found_bands_are_the_simulators_and_fit_from_there():
    physics, counts = spectrum_at(0.5)
    found = find_bands(physics.raman_shift_cm1, counts)
    assert len(found) == len(physics.bands())
    fits = fit_bands(physics.raman_shift_cm1, counts, found)
    for g, fit, (_, centre, fwhm, _) in zip(found, fits, physics.bands()):
        assert g.centre_cm1 == pytest.approx(centre, abs=0.1 * fwhm)  # a peak on a slope
        assert fit.centre_cm1 == pytest.approx(centre, abs=0.5)


def test_tracking_recovers_the_lattice_shift_against_state_of_charge():
    socs = np.linspace(0.0, 1.0, 11)
    spectra, truth = [], []
    for i, soc in enumerate(socs):
        physics, counts = spectrum_at(soc, seed=i)
        spectra.append(counts)
        truth.append({name: centre for name, centre, *_ in physics.bands()})
    tracking = track_bands(physics.raman_shift_cm1, np.array(spectra), guesses_near(physics), soc=socs)
    lattice = tracking.track("lattice")
    assert lattice.fitted == len(socs)
    assert lattice.centre_cm1 == pytest.approx([t["lattice"] for t in truth], abs=0.5)
    slope, slope_err = tracking.against_soc("lattice")
    assert slope == pytest.approx(-6.0, abs=0.5) and 0 < slope_err < 0.5  # the simulator's 505 - 6·SOC
    still, _ = tracking.against_soc("G")
    assert abs(still) < 0.5  # the carbon reference does not move
    ratio, ratio_err = tracking.ratio("M-O-C", "M-O-M")
    assert np.all(np.isfinite(ratio)) and np.all(ratio_err > 0)


def test_no_band_where_there_is_none_is_nan_not_a_number_from_a_bad_fit():
    rng = np.random.default_rng(0)
    x = np.linspace(100, 1800, 1024)
    flat = 500.0 + rng.normal(0, math.sqrt(500.0), x.size)
    (fit,) = fit_bands(x, flat, [BandGuess("nothing", 900.0, 15.0)])
    assert not (fit.ok and fit.centre_err < 1.0 and fit.area > 5 * fit.area_err)  # no confident band
    (edge,) = fit_bands(x, flat, [BandGuess("beyond", 1900.0, 15.0)])  # window outside the axis
    assert not edge.ok and math.isnan(edge.centre_cm1)
