"""Raman band fitting and tracking: position, width, area (with uncertainties) of each band in
every spectrum of a run, against time, potential and state of charge.

Method: each band is fitted on its own window (centre ± ``window_fwhm`` × its expected FWHM, at
least ``MIN_HALF_WINDOW_CM1``) with lmfit: a Lorentzian, Gaussian or Voigt line on a linear
baseline (the fluorescence is smooth on that scale). Points are weighted by their shot noise
(variance = counts + read noise², as for a dark-corrected CCD spectrum), so uncertainties are
lmfit's covariance, not a guess. A band whose fit fails or whose centre leaves its window is NaN
for that spectrum, never a number from a bad fit. Guesses come from the caller or from
``find_bands`` (the most prominent peaks of the run's mean spectrum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np
from lmfit.models import GaussianModel, LinearModel, LorentzianModel, VoigtModel
from scipy.signal import find_peaks

LineShape = Literal["lorentzian", "gaussian", "voigt"]
MODELS = {"lorentzian": LorentzianModel, "gaussian": GaussianModel, "voigt": VoigtModel}
MIN_HALF_WINDOW_CM1 = 30.0
READ_NOISE_COUNTS = 3.0  # per pixel and accumulation; a floor for the weights


@dataclass(frozen=True)
class BandGuess:
    name: str
    centre_cm1: float
    fwhm_cm1: float = 20.0


@dataclass(frozen=True)
class BandFit:
    name: str
    centre_cm1: float
    centre_err: float
    fwhm_cm1: float
    fwhm_err: float
    area: float  # counts × cm-1
    area_err: float
    height: float  # counts above the baseline at the centre
    reduced_chi2: float

    @classmethod
    def failed(cls, name: str) -> BandFit:
        nan = math.nan
        return cls(name, nan, nan, nan, nan, nan, nan, nan, nan)

    @property
    def ok(self) -> bool:
        return math.isfinite(self.centre_cm1)


def _half_window(g: BandGuess, window_fwhm: float) -> float:
    return max(window_fwhm * g.fwhm_cm1, MIN_HALF_WINDOW_CM1)


def band_groups(guesses: list[BandGuess], window_fwhm: float = 4.0) -> list[list[BandGuess]]:
    """Bands whose windows overlap, fitted together (the D and G bands of carbon, say)."""
    groups: list[list[BandGuess]] = []
    reach = -math.inf
    for g in sorted(guesses, key=lambda g: g.centre_cm1):
        lo = g.centre_cm1 - _half_window(g, window_fwhm)
        if groups and lo <= reach:
            groups[-1].append(g)
        else:
            groups.append([g])
        reach = max(reach, g.centre_cm1 + _half_window(g, window_fwhm))  # a new group's own end
    return groups


def fit_bands(
    shift_cm1: np.ndarray,
    counts: np.ndarray,
    guesses: list[BandGuess],
    shape: LineShape = "lorentzian",
    window_fwhm: float = 4.0,
) -> list[BandFit]:
    """Every band of ``guesses`` (in their order), overlapping ones fitted together."""
    fits: dict[str, BandFit] = {}
    for group in band_groups(guesses, window_fwhm):
        for f in _fit_group(shift_cm1, counts, group, shape, window_fwhm):
            fits[f.name] = f
    return [fits[g.name] for g in guesses]


def fit_band(
    shift_cm1: np.ndarray, counts: np.ndarray, guess: BandGuess, shape: LineShape = "lorentzian", window_fwhm=4.0
) -> BandFit:
    """One band alone on its window (neighbours within it are not modelled: use fit_bands)."""
    return _fit_group(shift_cm1, counts, [guess], shape, window_fwhm)[0]


def _fit_group(x, y, group: list[BandGuess], shape: LineShape, window_fwhm: float) -> list[BandFit]:
    """The bands of ``group`` on the union of their windows, each a line, on a linear baseline;
    NaN fields for a band whose fit is not usable."""
    failed = [BandFit.failed(g.name) for g in group]
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    lo = min(g.centre_cm1 - _half_window(g, window_fwhm) for g in group)
    hi = max(g.centre_cm1 + _half_window(g, window_fwhm) for g in group)
    sel = (x >= lo) & (x <= hi) & np.isfinite(y)
    if sel.sum() < 4 * len(group) + 4:
        return failed
    x, y = x[sel], y[sel]
    order = np.argsort(x)
    x, y = x[order], y[order]
    edge = np.r_[y[:3], y[-3:]]
    slope = (y[-3:].mean() - y[:3].mean()) / (x[-1] - x[0])
    model = LinearModel(prefix="l_")
    params = model.make_params(l_slope=slope, l_intercept=float(np.median(edge)) - slope * x.mean())
    for i, g in enumerate(group):
        line = MODELS[shape](prefix=f"b{i}_")
        model = model + line
        sigma = g.fwhm_cm1 / 2.0 if shape == "lorentzian" else g.fwhm_cm1 / 2.3548
        near = np.abs(x - g.centre_cm1) <= max(g.fwhm_cm1, 2 * np.median(np.diff(x)))
        height = max(float(y[near].max() - np.median(edge)) if near.any() else 1.0, 1.0)
        params.update(line.make_params())
        params[f"b{i}_center"].set(value=g.centre_cm1, min=x[0], max=x[-1])
        params[f"b{i}_sigma"].set(value=sigma, min=0.2 * sigma, max=5.0 * sigma)
        params[f"b{i}_amplitude"].set(value=height * g.fwhm_cm1 * 1.5, min=0.0)
    weights = 1.0 / np.sqrt(np.abs(y) + READ_NOISE_COUNTS**2)
    try:
        result = model.fit(y, params, x=x, weights=weights)
    except (ValueError, TypeError):
        return failed
    if not result.success:
        return failed
    p = result.params

    def err(name: str) -> float:
        e = p[name].stderr
        return float(e) if e is not None else math.nan

    out = []
    for i, g in enumerate(group):
        centre = p[f"b{i}_center"]
        inside = x[1] < centre.value < x[-2] and abs(centre.value - g.centre_cm1) <= _half_window(g, window_fwhm)
        if centre.stderr is None or not inside:
            out.append(BandFit.failed(g.name))
            continue
        out.append(
            BandFit(
                name=g.name,
                centre_cm1=float(centre.value),
                centre_err=err(f"b{i}_center"),
                fwhm_cm1=float(p[f"b{i}_fwhm"].value),
                fwhm_err=err(f"b{i}_fwhm"),
                area=float(p[f"b{i}_amplitude"].value),
                area_err=err(f"b{i}_amplitude"),
                height=float(p[f"b{i}_height"].value),
                reduced_chi2=float(result.redchi),
            )
        )
    return out


def find_bands(
    shift_cm1: np.ndarray, counts: np.ndarray, max_bands: int = 6, min_shift_cm1: float = 200.0
) -> list[BandGuess]:
    """The most prominent peaks of a spectrum (above ``min_shift_cm1``: the laser's edge-filter
    tail sits below), by prominence over a running baseline; names ``band <centre>``."""
    x = np.asarray(shift_cm1, float)
    y = np.asarray(counts, float)
    keep = x >= min_shift_cm1
    x, y = x[keep], y[keep]
    if x.size < 16:
        return []
    step = float(np.median(np.abs(np.diff(x))))
    noise = float(np.median(np.abs(np.diff(y)))) * 1.4826 / math.sqrt(2) or 1.0
    peaks, props = find_peaks(y, prominence=8 * noise, width=max(2.0, 4.0 / step))
    best = np.argsort(props["prominences"])[::-1][:max_bands]
    guesses = []
    for i in sorted(best, key=lambda j: x[peaks[j]]):
        fwhm = float(props["widths"][i]) * step
        centre = float(x[peaks[i]])
        guesses.append(BandGuess(f"band {centre:.0f}", centre, max(fwhm, 3 * step)))
    return guesses


@dataclass
class BandTrack:
    """Every spectrum's fit of one band, in frame order."""

    name: str
    centre_cm1: np.ndarray
    centre_err: np.ndarray
    fwhm_cm1: np.ndarray
    area: np.ndarray
    area_err: np.ndarray

    @property
    def fitted(self) -> int:
        return int(np.isfinite(self.centre_cm1).sum())


@dataclass
class RamanTracking:
    shape: str
    tracks: list[BandTrack] = field(default_factory=list)
    time_s: Optional[np.ndarray] = None  # frame midpoints, experiment clock
    ewe_V: Optional[np.ndarray] = None
    soc: Optional[np.ndarray] = None

    def track(self, name: str) -> BandTrack:
        for t in self.tracks:
            if t.name == name:
                return t
        raise KeyError(f"no band named {name!r} (bands: {[t.name for t in self.tracks]})")

    def ratio(self, numerator: str, denominator: str) -> tuple[np.ndarray, np.ndarray]:
        """Area ratio of two bands per spectrum, with its propagated standard error."""
        a, b = self.track(numerator), self.track(denominator)
        r = a.area / b.area
        return r, np.abs(r) * np.hypot(a.area_err / a.area, b.area_err / b.area)

    def against_soc(self, name: str) -> tuple[float, float]:
        """Slope of the band's centre against state of charge (cm-1 per unit SOC) and its
        standard error, weighted by each centre's error."""
        t = self.track(name)
        if self.soc is None:
            raise ValueError("the frames carry no state of charge")
        ok = np.isfinite(t.centre_cm1) & np.isfinite(self.soc) & (t.centre_err > 0)
        if ok.sum() < 3:
            raise ValueError(f"{name}: fewer than three fitted spectra with a state of charge")
        w = 1.0 / t.centre_err[ok] ** 2
        (slope, _), cov = np.polyfit(self.soc[ok], t.centre_cm1[ok], 1, w=np.sqrt(w), cov="unscaled")
        return float(slope), float(math.sqrt(cov[0, 0]))


def track_bands(
    shift_cm1: np.ndarray,
    spectra: np.ndarray,
    guesses: Optional[list[BandGuess]] = None,
    shape: LineShape = "lorentzian",
    time_s=None,
    ewe_V=None,
    soc=None,
) -> RamanTracking:
    """Fit every band in every spectrum (rows of ``spectra``); guesses from the mean spectrum
    when not given."""
    spectra = np.atleast_2d(np.asarray(spectra, float))
    if guesses is None:
        guesses = find_bands(shift_cm1, spectra.mean(axis=0))
    out = RamanTracking(shape, time_s=_array(time_s), ewe_V=_array(ewe_V), soc=_array(soc))
    per_spectrum = [fit_bands(shift_cm1, s, guesses, shape) for s in spectra]
    for i, g in enumerate(guesses):
        fits = [row[i] for row in per_spectrum]
        out.tracks.append(
            BandTrack(
                g.name,
                np.array([f.centre_cm1 for f in fits]),
                np.array([f.centre_err for f in fits]),
                np.array([f.fwhm_cm1 for f in fits]),
                np.array([f.area for f in fits]),
                np.array([f.area_err for f in fits]),
            )
        )
    return out


def _array(values) -> Optional[np.ndarray]:
    return None if values is None else np.asarray(values, float)
