"""Equivalent-circuit fits of impedance spectra (the ``impedance`` package, impedance.py).

Default model: the Randles circuit R0-p(R1-Wo1,CPE1): electrolyte/contact resistance R0 in series
with the double layer (a CPE) in parallel with charge transfer R1 followed by solid-state
diffusion. Wo is the finite-space ("open", reflective) Warburg of a particle that nothing leaves
through its centre: 45 degrees at mid frequency, capacitive at the lowest. Any impedance.py
circuit string can be given instead; parameter names are then the package's own.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

RANDLES = "R0-p(R1-Wo1,CPE1)"

# Readable names and units of the default model's parameters.
PARAMETER_NAMES = {
    "R0": ("R_ohm", "ohm"),
    "R1": ("R_ct", "ohm"),
    "Wo1_0": ("W_Z0", "ohm"),
    "Wo1_1": ("W_tau", "s"),
    "CPE1_0": ("CPE_Q", "F s^(a-1)"),
    "CPE1_1": ("CPE_alpha", ""),
}


@dataclass
class EisFit:
    model: str
    names: list[str]  # readable names (R_ohm, R_ct, ...)
    units: list[str]
    values: np.ndarray
    stderr: np.ndarray
    rms_relative: float  # rms of |Z_fit - Z| / |Z|
    frequency_Hz: np.ndarray
    Z: np.ndarray  # measured, complex
    Z_fit: np.ndarray
    frequency_dense_Hz: np.ndarray = field(default_factory=lambda: np.empty(0))  # for drawing
    Z_fit_dense: np.ndarray = field(default_factory=lambda: np.empty(0, complex))

    def value(self, name: str) -> float:
        return float(self.values[self.names.index(name)])

    def error(self, name: str) -> float:
        return float(self.stderr[self.names.index(name)])


def _local_extrema(y: np.ndarray) -> tuple[list[int], list[int]]:
    maxima = [k for k in range(1, y.size - 1) if y[k] >= y[k - 1] and y[k] > y[k + 1]]
    minima = [k for k in range(1, y.size - 1) if y[k] <= y[k - 1] and y[k] < y[k + 1]]
    return maxima, minima


def initial_guess(frequency_Hz, Z) -> list[float]:
    """Randles guesses from the spectrum's shape, measured from high to low frequency:
    R0 = Z' at the highest frequency (the high-frequency intercept); R_ct = Z' at the first
    minimum of -Z'' after the semicircle's apex, minus R0; CPE Q from the apex frequency
    (omega_apex = 1/(R_ct Q)^(1/alpha)); Warburg Z0 from what Z' still grows after the
    semicircle, tau ~ 1/omega at the lowest frequency."""
    order = np.argsort(frequency_Hz)[::-1]
    f, z = np.asarray(frequency_Hz, float)[order], np.asarray(Z)[order]
    r0 = max(float(z.real[0]), 1e-6)
    mz = -z.imag
    maxima, minima = _local_extrema(mz)
    apex = maxima[0] if maxima else int(np.argmax(mz))
    after = [k for k in minima if k > apex]
    if after:
        rct = float(z.real[after[0]]) - r0
    else:
        rct = 2.0 * (float(z.real[apex]) - r0)
    rct = max(rct, 1e-3 * r0, 1e-6)
    alpha = 0.9
    q = 1.0 / (rct * (2 * math.pi * f[apex]) ** alpha)
    z0 = max(float(z.real.max()) - r0 - rct, 0.1 * rct)
    tau = 1.0 / (2 * math.pi * f[-1])
    return [r0, rct, z0, tau, q, alpha]


def fit_spectrum(frequency_Hz, Z_re, Z_im, model: str = RANDLES, guess=None) -> EisFit:
    """Fit one spectrum; Z_im is Z'' (negative for a capacitive cell), as the stream stores it.
    Standard errors are the fit's (square roots of the covariance diagonal)."""
    from impedance.models.circuits import CustomCircuit

    f = np.asarray(frequency_Hz, float)
    Z = np.asarray(Z_re, float) + 1j * np.asarray(Z_im, float)
    if f.size < 5:
        raise ValueError(f"an impedance spectrum needs at least 5 frequencies (got {f.size})")
    if guess is None:
        if model != RANDLES:
            raise ValueError(f"model {model!r}: give initial guesses (only {RANDLES} has automatic ones)")
        base = initial_guess(f, Z)
        # A hidden semicircle makes the R_ct guess uncertain: start from it and a decade either
        # side, keep the best fit (each start costs milliseconds).
        starts = [base] + [[base[0], base[1] * k, *base[2:]] for k in (0.1, 10.0)]
    else:
        starts = [list(guess)]
    best = None
    for start in starts:
        circuit = CustomCircuit(model, initial_guess=list(start))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # covariance warnings: reported as inf/nan errors instead
            try:
                circuit.fit(f, Z, maxfev=20000)
            except RuntimeError as exc:  # scipy: no convergence from this start
                failure = exc
                continue
        Z_fit = circuit.predict(f)
        rms = float(np.sqrt(np.mean(np.abs(Z_fit - Z) ** 2 / np.abs(Z) ** 2)))
        if best is None or rms < best[1]:
            best = (circuit, rms, Z_fit)
    if best is None:
        raise RuntimeError(f"no fit converged: {failure}")
    circuit, rms, Z_fit = best
    values = np.asarray(circuit.parameters_, float)
    conf = circuit.conf_ if circuit.conf_ is not None else [np.nan] * values.size
    stderr = np.asarray(conf, float)
    raw, units = circuit.get_param_names()
    names = [PARAMETER_NAMES.get(n, (n, u))[0] for n, u in zip(raw, units)]
    units = [PARAMETER_NAMES.get(n, (n, u))[1] for n, u in zip(raw, units)]
    dense = np.logspace(np.log10(f.max()), np.log10(f.min()), 200)
    return EisFit(model, names, units, values, stderr, rms, f, Z, Z_fit, dense, circuit.predict(dense))


def randles_impedance(frequency_Hz, r0, rct, z0, tau, q, alpha) -> np.ndarray:
    """Z of the default model (for synthetic spectra and plots), numpy only."""
    w = 2 * math.pi * np.asarray(frequency_Hz, float)
    s = np.sqrt(1j * w * tau)
    warburg = z0 / (s * np.tanh(s))
    cpe = 1.0 / (q * (1j * w) ** alpha)
    branch = rct + warburg
    return r0 + 1.0 / (1.0 / branch + 1.0 / cpe)
