"""The potential step and space-charge width across a heterointerface, from an SKPM CPD map.

Profile: the map's lines averaged (the interface runs along the slow axis, across the lines),
against the fast-axis position. Model (stated form): the contact potential difference across an
abrupt junction's space-charge region,

    CPD(x) = offset + step · ½ [1 + tanh(2 (x − centre) / width)]

i.e. a step of ``step`` volts (the built-in potential seen at the surface) whose 12 %–88 % rise
spans ``width`` (the space-charge width), seen through the tip: convolved with a Gaussian of
standard deviation ``tip_sigma_m`` (the probe's lateral averaging; 0: not deconvolved, and the
fitted width is then the apparent one, wider by about σ²·6/width for a narrow tip). Fitted
with lmfit, each point weighted by the scatter of the lines about their mean at that position
(standard error of the mean), so the parameters' uncertainties are lmfit's covariance.
A map whose profile has no step (less than ``MIN_STEP_SIGMA`` standard errors) is not fitted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MIN_STEP_SIGMA = 5.0


class ProfileError(ValueError):
    """The profile cannot be fitted (too few points, no step)."""


@dataclass(frozen=True)
class InterfaceStep:
    step_V: float
    step_err: float
    width_m: float
    width_err: float
    centre_m: float
    centre_err: float
    offset_V: float
    tip_sigma_m: float  # the tip footprint the fit deconvolved (0: none)
    residual_V: float  # rms of the profile about the fit


def line_profile(cpd_map: np.ndarray, width_m: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x m from the frame's centre, mean CPD, its standard error) over the map's finished lines."""
    a = np.asarray(cpd_map, float)
    if a.ndim != 2:
        raise ProfileError(f"a map is lines x pixels (got shape {a.shape})")
    lines = a[np.isfinite(a).all(axis=1)]
    if len(lines) == 0:
        raise ProfileError("the map has no finished line")
    x = np.linspace(-width_m / 2, width_m / 2, a.shape[1])
    mean = lines.mean(axis=0)
    if len(lines) > 1:
        sem = lines.std(axis=0, ddof=1) / math.sqrt(len(lines))
    else:
        sem = np.full_like(mean, np.std(np.diff(mean)) / math.sqrt(2))
    return x, mean, np.maximum(sem, 1e-6)


def step_model(x, offset, step, centre, width, tip_sigma_m: float = 0.0):
    """The model above at positions ``x`` (m), blurred by the tip when ``tip_sigma_m`` > 0."""
    if tip_sigma_m <= 0:
        return offset + step * 0.5 * (1.0 + np.tanh(2.0 * (x - centre) / width))
    # on a grid 8x finer than the pixels, wide enough for the blur, then back on the pixels
    dx = min(abs(x[1] - x[0]) / 8, tip_sigma_m / 4)
    pad = 4 * tip_sigma_m
    fine = np.arange(x.min() - pad, x.max() + pad + dx, dx)
    sharp = offset + step * 0.5 * (1.0 + np.tanh(2.0 * (fine - centre) / width))
    k = np.exp(-0.5 * (np.arange(-int(pad / dx), int(pad / dx) + 1) * dx / tip_sigma_m) ** 2)
    blurred = np.convolve(sharp, k / k.sum(), mode="same")
    return np.interp(x, fine, blurred)


def fit_interface_step(x_m, cpd_V, sem_V=None, tip_sigma_m: float = 0.0) -> InterfaceStep:
    """Fit the model to a profile; ProfileError when there is no step to fit."""
    from lmfit import Model  # ~1 s to import: only when a profile is fitted

    x, y = np.asarray(x_m, float), np.asarray(cpd_V, float)
    sem = np.ones_like(y) if sem_V is None else np.asarray(sem_V, float)
    if x.size < 8:
        raise ProfileError(f"a profile needs at least 8 points (got {x.size})")
    edge = max(2, x.size // 6)
    left, right = y[:edge].mean(), y[-edge:].mean()
    spread = math.hypot(y[:edge].std() / math.sqrt(edge), y[-edge:].std() / math.sqrt(edge)) + float(np.median(sem))
    if abs(right - left) < MIN_STEP_SIGMA * spread:
        raise ProfileError(f"no step across the profile ({right - left:+.3g} V, noise {spread:.2g} V)")
    half = left + 0.5 * (right - left)
    crossing = x[np.argmin(np.abs(y - half))]
    span = x.max() - x.min()
    model = Model(lambda x, offset, step, centre, width: step_model(x, offset, step, centre, width, tip_sigma_m))
    params = model.make_params(offset=left, step=right - left, centre=crossing, width=span / 8)
    params["width"].set(min=abs(x[1] - x[0]) / 10, max=4 * span)
    params["centre"].set(min=x.min(), max=x.max())
    result = model.fit(y, params, x=x, weights=1.0 / sem)
    p = result.params

    def err(name: str) -> float:
        e = p[name].stderr
        return float(e) if e is not None and math.isfinite(e) else math.nan

    return InterfaceStep(
        step_V=float(p["step"].value),
        step_err=err("step"),
        width_m=float(abs(p["width"].value)),
        width_err=err("width"),
        centre_m=float(p["centre"].value),
        centre_err=err("centre"),
        offset_V=float(p["offset"].value),
        tip_sigma_m=float(tip_sigma_m),
        residual_V=float(np.sqrt(np.mean((y - result.best_fit) ** 2))),
    )
