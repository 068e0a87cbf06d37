"""Corrections of a CCD Raman acquisition: dark subtraction, cosmic-ray removal across
accumulations, saturation. Pure numpy on arrays of counts; no I/O, no instrument.

An acquisition is ``frames``: accumulations x pixels, the raw counts of each accumulation as the
CCD read them out.

Dark subtraction (``Dark``, ``subtract_dark``). A dark is the same acquisition with the laser
shutter closed: same exposure, same number of accumulations, summed. It holds what is not light
from the sample — dark current (which grows with exposure), the read-out's offset and any fixed
pattern — so subtracting it leaves fluorescence plus bands. Only a dark taken at the same
exposure and accumulations is subtracted (anything else is refused): dark current scales with the
exposure but an offset does not, so a dark cannot be rescaled without knowing which is which.
The result is not clipped at zero: clipping would bias every weak pixel upwards. The noise adds
in quadrature: after subtraction a pixel's variance is the light's plus the dark's (an
accumulation-summed dark of N frames adds N x (dark counts + read noise²)).

Cosmic rays (``remove_cosmic_rays``). A cosmic ray deposits hundreds to thousands of counts in
one to three pixels of ONE accumulation; a Raman band is in every accumulation. So each pixel of
each accumulation is compared with the median of the same pixel in the other accumulations: the
light is the same in all of them (the same exposure of the same sample), so a pixel far above
that median is a cosmic ray, whatever the spectrum looks like around it. Far means more than
``threshold_sigma`` times the expected noise of the difference: a pixel's noise is shot noise,
sqrt(median) (counts taken as photoelectrons: a gain of one electron per count; the median
steadied as ``LEVEL_HALF_WIDTH`` says), and read noise,
added in quadrature and floored at one count (the ADC's step); the median of the others has
noise too (sigma² for one other frame, sigma²/2 for two, about pi/2 x sigma²/m for m >= 3), so
the threshold applies to sqrt(sigma² + that). Only excesses count (a cosmic ray only adds
charge). A pixel found is replaced by that median: the best estimate of what the accumulation
would have read. Why across accumulations, not along the spectrum: a band is only a few times
wider than a cosmic-ray track (a 14 cm⁻¹ band at 1.7 cm⁻¹ per pixel is 8 pixels wide, a track
1-3), so a filter along the spectrum (a running median, a spike detector on its derivative)
that catches a 3-pixel spike also cuts the top off a strong narrow band; across accumulations
the band is simply not different.

With ONE accumulation there is nothing to compare with, and no single-frame method is applied:
the frame is returned unchanged and 0 pixels counted. Take two or more accumulations (three make
the median robust to a cosmic ray in another accumulation at the same pixel) to have cosmic rays
removed.

Saturation (``saturated``). A pixel of any accumulation at or above the detector's full scale
(a 16-bit ADC: 65535) has lost counts: the sum is wrong there, and no correction can restore it.
It is flagged, not repaired.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# 6 sigma: a Gaussian excess that large happens once in ~10^9 pixels, so practically no real
# pixel is replaced (on the simulator: one in ~8e7 pixel-accumulations, from two opposite ~4-sigma
# read-noise excursions in a 1 s dark; none at a band peak), while cosmic rays (200-3000 counts)
# are still caught on all but the brightest pixels: with two accumulations the smallest, 200
# counts, escapes only where a pixel reads more than ~550 counts per accumulation
# (6 x sqrt(2) x sqrt(550 + 3²) = 200).
DEFAULT_THRESHOLD_SIGMA = 6.0
# The shot noise is taken from the larger of the median and its mean over +-2 pixels: one
# pixel's median is itself noisy, and where it happens to read low (a 20-count dark pixel reading
# 0) sqrt(median) would understate the noise and flag an ordinary pixel of the other
# accumulation (1.5e-5 of a 10 s dark's pixels with two accumulations; none with the mean).
LEVEL_HALF_WIDTH = 2


@dataclass(frozen=True)
class Dark:
    """A dark: the shutter-closed counts summed over its accumulations, and how it was taken."""

    counts: np.ndarray  # summed over the accumulations, per pixel
    exposure_s: float  # per accumulation
    accumulations: int

    def matches(self, exposure_s: float, accumulations: int) -> bool:
        """Taken at this exposure and number of accumulations (so it may be subtracted)."""
        return int(accumulations) == self.accumulations and math.isclose(exposure_s, self.exposure_s, rel_tol=1e-9)


def subtract_dark(counts: np.ndarray, dark: Dark, exposure_s: float, accumulations: int) -> np.ndarray:
    """``counts`` (summed over ``accumulations`` of ``exposure_s`` each) minus ``dark``.

    Refused (ValueError) when the dark was taken at another exposure or accumulations, or has
    another number of pixels."""
    counts = np.asarray(counts, dtype=np.float64)
    if not dark.matches(exposure_s, accumulations):
        raise ValueError(
            f"dark taken at {dark.exposure_s:g} s x {dark.accumulations}, "
            f"acquisition at {exposure_s:g} s x {accumulations}: not subtracted"
        )
    dark_counts = np.asarray(dark.counts, dtype=np.float64)
    if dark_counts.shape != counts.shape:
        raise ValueError(f"dark has shape {dark_counts.shape}, the spectrum {counts.shape}")
    return counts - dark_counts


def _frames(frames) -> np.ndarray:
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[0] < 1:
        raise ValueError(f"frames must be accumulations x pixels, got shape {frames.shape}")
    return frames


def _running_mean(values: np.ndarray, half_width: int) -> np.ndarray:
    padded = np.pad(values, half_width, mode="edge")
    return np.convolve(padded, np.full(2 * half_width + 1, 1.0 / (2 * half_width + 1)), mode="valid")


def remove_cosmic_rays(
    frames, threshold_sigma: float = DEFAULT_THRESHOLD_SIGMA, read_noise_counts: float = 0.0
) -> tuple[np.ndarray, int]:
    """(cleaned frames, number of pixels replaced) — see the module's docstring for the method.

    ``frames``: accumulations x pixels, raw counts; ``read_noise_counts``: rms per pixel and
    accumulation. One accumulation: returned unchanged, 0 replaced (no single-frame method).
    """
    frames = _frames(frames)
    if not threshold_sigma > 0:
        raise ValueError(f"threshold_sigma must be > 0, got {threshold_sigma!r}")
    if not read_noise_counts >= 0:
        raise ValueError(f"read_noise_counts must be >= 0, got {read_noise_counts!r}")
    n = frames.shape[0]
    cleaned = frames.copy()
    if n < 2:
        return cleaned, 0
    others = n - 1
    # variance of the median of the other accumulations, in units of one pixel's variance
    median_var = 1.0 / others if others <= 2 else math.pi / (2.0 * others)
    replaced = 0
    for i in range(n):
        median = np.median(np.delete(frames, i, axis=0), axis=0)
        level = np.maximum(np.maximum(median, _running_mean(median, LEVEL_HALF_WIDTH)), 0.0)
        sigma = np.maximum(np.sqrt(level + read_noise_counts**2), 1.0)
        hit = frames[i] - median > threshold_sigma * sigma * math.sqrt(1.0 + median_var)
        cleaned[i, hit] = median[hit]
        replaced += int(np.count_nonzero(hit))
    return cleaned, replaced


def saturated_pixels(frames, full_scale: float) -> np.ndarray:
    """Per pixel: True where any accumulation reads ``full_scale`` or more."""
    return np.any(_frames(frames) >= full_scale, axis=0)


def saturated(frames, full_scale: float) -> bool:
    """Whether any pixel of any accumulation reached the detector's full scale."""
    return bool(saturated_pixels(frames, full_scale).any())
