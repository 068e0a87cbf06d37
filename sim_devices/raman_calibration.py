"""Spectrometer wavelength calibration: pixel -> wavelength polynomial, Raman shift from the laser.

The polynomial is the one spectrometers store (Ocean Insight's wavelength coefficients):
lambda(p) = c0 + c1 p + c2 p^2 + c3 p^3 in nm for pixel index p. A Raman shift in cm^-1 is
1e7/lambda_laser - 1e7/lambda. ``fit`` recovers the coefficients from lamp lines of known
wavelength found at (fractional) pixel positions; ``find_lines`` locates those lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Neon emission lines (nm, air) in the Stokes range of a 532 nm laser: a common lamp standard.
NEON_LINES_NM = (533.078, 534.109, 540.056, 556.277, 565.666, 571.923, 576.442, 582.016, 585.249)


@dataclass(frozen=True)
class WavelengthCalibration:
    coefficients: tuple[float, ...]  # c0, c1, ... (nm, nm/pixel, ...)

    def wavelength_nm(self, pixels: np.ndarray | int) -> np.ndarray:
        return np.polynomial.polynomial.polyval(np.asarray(pixels, dtype=float), self.coefficients)

    def raman_shift_cm1(self, pixels: np.ndarray, laser_nm: float) -> np.ndarray:
        return 1e7 / laser_nm - 1e7 / self.wavelength_nm(pixels)

    @classmethod
    def fit(cls, pixels: Sequence[float], wavelengths_nm: Sequence[float], order: int = 3) -> WavelengthCalibration:
        if len(pixels) != len(wavelengths_nm) or len(pixels) <= order:
            raise ValueError(f"need more than {order} matched lines, got {len(pixels)}")
        coef = np.polynomial.polynomial.polyfit(pixels, wavelengths_nm, order)
        return cls(tuple(float(c) for c in coef))

    @classmethod
    def for_shift_range(
        cls, laser_nm: float, shift_lo_cm1: float, shift_hi_cm1: float, n_pixels: int
    ) -> WavelengthCalibration:
        """A cubic whose Raman-shift axis spans the range almost linearly (a typical grating)."""
        p = np.arange(n_pixels, dtype=float)
        shift = np.linspace(shift_lo_cm1, shift_hi_cm1, n_pixels)
        return cls.fit(p, 1e7 / (1e7 / laser_nm - shift), 3)


def find_lines(spectrum: np.ndarray, expected_px: Sequence[float], half_window: int = 6) -> np.ndarray:
    """Centroid (fractional pixel) of the peak nearest each expected position, baseline removed."""
    out = []
    for guess in expected_px:
        lo = max(0, int(round(guess)) - half_window)
        hi = min(spectrum.size, int(round(guess)) + half_window + 1)
        seg = spectrum[lo:hi]
        peak = lo + int(np.argmax(seg))
        lo, hi = max(0, peak - 3), min(spectrum.size, peak + 4)
        w = spectrum[lo:hi] - np.median(spectrum[max(0, peak - 20) : peak + 21])
        w = np.clip(w, 0.0, None)
        out.append(float(np.sum(np.arange(lo, hi) * w) / np.sum(w)))
    return np.asarray(out)
