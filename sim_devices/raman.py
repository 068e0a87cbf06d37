"""Raman spectrum of the electrode as a CCD spectrometer would record it, from the SimCell state.

Bands (counts/s at the peak): a metal-oxygen-metal and a metal-oxygen-carbon interfacial bond
whose intensity ratio follows how full the interfacial store is, a lattice band that shifts a
few cm^-1 with state of charge, and the carbon D and G bands as a state-independent reference.
On top: fluorescence background, the laser line leaking through the edge filter (a Rayleigh
tail at the low-shift end), dark current, Poisson shot noise, read noise per accumulation and
occasional cosmic-ray spikes. With a stage (``spot_um`` set), the interfacial bands scale with
the interface coverage under the spot (``interface_coverage_at``: two interface-rich domains on
a thinner background), so a map shows where the interfaces are; without one the spot sees
coverage 1. The pixel axis comes from a wavelength calibration polynomial
(``raman_calibration``); ``lamp_spectrum`` is what a neon lamp gives, for calibrating it.

``spectrum`` is the summed counts of a whole acquisition (as before: what the HDX firmware
simulator serves, unclipped); ``frames`` is what a CCD read out once per accumulation gives: one
row per accumulation, each clipped at the 16-bit ADC's full scale (``FULL_SCALE``), and with
``dark=True`` the laser shutter closed — dark current, read noise and cosmic rays (they cross a
closed shutter too), no laser line, fluorescence or bands. No bias offset: like a bias-subtracted
CCD, a dark pixel can read slightly below zero from read noise. All frames of one call see the
same cell state (the state at the end of the acquisition, as ``spectrum``).
"""

from __future__ import annotations

import numpy as np

from .cell import SimCell
from .raman_calibration import NEON_LINES_NM, WavelengthCalibration

SILICON_CM1 = 520.7  # the first-order optical phonon of crystalline silicon, the usual reference
SILICON_PEAK_COUNTS_S = 3000.0


def _lorentzian(x: np.ndarray, centre: float, fwhm: float) -> np.ndarray:
    half = 0.5 * fwhm
    return half * half / ((x - centre) ** 2 + half * half)


# Interface-rich domains of the simulated electrode: centre x, centre y, radius (µm)
INTERFACE_DOMAINS_UM = ((30.0, -20.0, 25.0), (-40.0, 35.0, 15.0))
INTERFACE_BACKGROUND = 0.35  # coverage far from any domain


def interface_coverage_at(x_um, y_um) -> np.ndarray:
    """Fraction (0.35..1) of the spot's area that is interface, at stage position(s) (µm)."""
    x, y = np.asarray(x_um, float), np.asarray(y_um, float)
    domains = sum(np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r)) for cx, cy, r in INTERFACE_DOMAINS_UM)
    return INTERFACE_BACKGROUND + (1.0 - INTERFACE_BACKGROUND) * np.minimum(domains, 1.0)


class SimRamanPhysics:
    DARK_COUNTS_S = 2.0  # per pixel
    READ_NOISE_COUNTS = 3.0  # rms per pixel per accumulation
    COSMIC_RATE_S = 0.02  # spikes per second of exposure on the whole chip
    FULL_SCALE = 65535.0  # counts: a 16-bit CCD's ADC; a frame's pixel never reads more

    def __init__(
        self,
        cell: SimCell,
        seed: int = 0,
        n_pixels: int = 1024,
        laser_nm: float = 532.0,
        shift_range_cm1: tuple[float, float] = (100.0, 1800.0),
        axis_error_cm1: float = 0.0,
    ):
        self._cell = cell
        # The spectrometer's axis is off by this much: a pixel's true shift is its reported
        # shift + the error, so bands appear that much lower on the reported axis (0: exact).
        self.axis_error_cm1 = float(axis_error_cm1)
        # What is in the beam: the cell, or a reference sample for calibrating the axis
        self.sample: str = "cell"
        # Where the spot is on the electrode (µm), set by a simulated stage; None: no stage
        self.spot_um: tuple[float, float] | None = None
        self._rng = np.random.default_rng(seed)
        self.laser_nm = float(laser_nm)
        self.calibration = WavelengthCalibration.for_shift_range(
            self.laser_nm, shift_range_cm1[0], shift_range_cm1[1], n_pixels
        )
        self._pixels = np.arange(n_pixels, dtype=float)
        self._shift = self.calibration.raman_shift_cm1(self._pixels, self.laser_nm)
        self._fluorescence = 250.0 * np.exp(-(self._shift - self._shift[0]) / 1500.0) + 80.0
        # laser line: 1e9 counts/s at 0 cm^-1, 1 cm^-1 wide, behind an OD-6 edge filter
        self._rayleigh = 1e3 * _lorentzian(self._shift, 0.0, 1.0) * 1e3

    @property
    def raman_shift_cm1(self) -> np.ndarray:
        return self._shift.copy()

    @property
    def wavelength_nm(self) -> np.ndarray:
        return self.calibration.wavelength_nm(self._pixels)

    def interface_fill(self) -> float:
        """How full the interfacial store is, 0..1."""
        cap = self._cell.interfacial_capacity_mAh
        return min(max(self._cell.interfacial_charge_mAh / cap, 0.0), 1.0) if cap > 0 else 0.0

    def interface_coverage(self) -> float:
        """Interface coverage under the spot (1 without a stage)."""
        return 1.0 if self.spot_um is None else float(interface_coverage_at(*self.spot_um))

    def bands(self) -> list[tuple[str, float, float, float]]:
        """(name, centre cm^-1, FWHM cm^-1, peak counts/s) for the present state and spot."""
        fill = self.interface_fill()
        soc = min(max(self._cell.soc, 0.0), 1.0)
        cover = self.interface_coverage()
        return [
            ("lattice", 505.0 - 6.0 * soc, 14.0, 600.0),
            ("M-O-M", 880.0, 16.0, 800.0 * (1.0 - 0.7 * fill) * cover),
            ("M-O-C", 1010.0, 18.0, (250.0 + 900.0 * fill) * cover),
            ("D", 1350.0, 60.0, 400.0),
            ("G", 1590.0, 40.0, 500.0),
        ]

    def clean_rate(self) -> np.ndarray:
        """Expected counts/s per pixel: bands plus fluorescence, without dark current (or the
        silicon reference's band, when it is in the beam)."""
        true_shift = self._shift + self.axis_error_cm1
        if self.sample == "silicon":
            # crystalline Si: one band at 520.7 cm-1, ~4 cm-1 wide, bright, little background
            return 20.0 + self._rayleigh + SILICON_PEAK_COUNTS_S * _lorentzian(true_shift, SILICON_CM1, 4.0)
        rate = self._fluorescence + self._rayleigh
        for _name, centre, fwhm, peak in self.bands():
            rate += peak * _lorentzian(true_shift, centre, fwhm)
        return rate

    def spectrum(self, exposure_s: float, accumulations: int = 1) -> np.ndarray:
        """Summed counts of ``accumulations`` exposures of ``exposure_s`` each."""
        if not exposure_s > 0 or accumulations < 1:
            raise ValueError(f"need exposure_s > 0 and accumulations >= 1, got {exposure_s!r}, {accumulations!r}")
        total_s = exposure_s * accumulations
        expected = (self.clean_rate() + self.DARK_COUNTS_S) * total_s
        counts = self._rng.poisson(expected).astype(np.float64)
        counts += self._rng.normal(0.0, self.READ_NOISE_COUNTS * np.sqrt(accumulations), counts.size)
        self._add_cosmic_rays(counts, total_s)
        return counts

    def frames(self, exposure_s: float, accumulations: int = 1, dark: bool = False) -> np.ndarray:
        """One frame per accumulation (accumulations x pixels, counts), each read out on its own:
        Poisson shot noise, read noise and cosmic rays per frame, clipped at ``FULL_SCALE``.

        ``dark``: the laser shutter closed — dark current only (plus read noise and cosmic rays).
        """
        if not exposure_s > 0 or accumulations < 1:
            raise ValueError(f"need exposure_s > 0 and accumulations >= 1, got {exposure_s!r}, {accumulations!r}")
        rate = np.full(self._shift.size, self.DARK_COUNTS_S) if dark else self.clean_rate() + self.DARK_COUNTS_S
        out = np.empty((int(accumulations), self._shift.size))
        for i in range(int(accumulations)):
            frame = self._rng.poisson(rate * exposure_s).astype(np.float64)
            frame += self._rng.normal(0.0, self.READ_NOISE_COUNTS, frame.size)
            self._add_cosmic_rays(frame, exposure_s)
            out[i] = np.minimum(frame, self.FULL_SCALE)
        return out

    def _add_cosmic_rays(self, counts: np.ndarray, exposure_s: float) -> None:
        """Spikes of 200-3000 counts, 1-3 pixels wide, at COSMIC_RATE_S per second of exposure."""
        for _ in range(self._rng.poisson(self.COSMIC_RATE_S * exposure_s)):
            pixel = int(self._rng.integers(0, counts.size))
            width = int(self._rng.integers(1, 4))
            counts[pixel : pixel + width] += self._rng.uniform(200.0, 3000.0)

    def lamp_spectrum(self, exposure_s: float = 0.1) -> np.ndarray:
        """Counts from a neon calibration lamp (laser off): lines 0.15 nm wide, plus noise."""
        wl = self.wavelength_nm
        rate = np.full(wl.size, self.DARK_COUNTS_S)
        for line in NEON_LINES_NM:
            rate += 2e5 * _lorentzian(wl, line, 0.15)
        counts = self._rng.poisson(rate * exposure_s).astype(np.float64)
        return counts + self._rng.normal(0.0, self.READ_NOISE_COUNTS, counts.size)
