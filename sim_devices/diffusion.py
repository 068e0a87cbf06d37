"""Finite-volume diffusion in a spherical particle, stepped with implicit Euler.

Shells of equal thickness, or graded (each shell ``grading`` times thinner than the one inside
it) so the thin diffusion layer under the surface is resolved during fast sweeps; state is each
shell's stoichiometry. The faradaic current enters through the outer shell. Implicit Euler is
unconditionally stable, so the step is chosen for accuracy only; the step matrices are
precomputed and cached per step length.
"""

from __future__ import annotations

import numpy as np


def shell_boundaries(n_shells: int, grading: float = 1.0) -> np.ndarray:
    """Radii (in units of the particle radius) of the shells' faces, 0 ... 1."""
    if grading == 1.0:
        return np.linspace(0.0, 1.0, n_shells + 1)
    widths = grading ** -np.arange(n_shells, dtype=float)  # outer shells thinner
    return np.concatenate(([0.0], np.cumsum(widths) / widths.sum()))


class SphericalDiffusion:
    def __init__(
        self,
        n_shells: int,
        radius_m: float,
        diffusion_m2_s: float,
        capacity_C: float,
        grading: float = 1.0,
    ):
        n = n_shells
        r = shell_boundaries(n, grading)
        self.volume_fraction = r[1:] ** 3 - r[:-1] ** 3  # sums to 1
        centres = 0.5 * (r[1:] + r[:-1])
        area = r[1:-1] ** 2  # inner faces, in units of 4 pi R^2
        distance = np.diff(centres)
        rate = diffusion_m2_s / radius_m**2
        # v_k dx_k/dt = 3 (D/R^2) a (x_{k+1} - x_k) / d across each inner face
        lap = np.zeros((n, n))
        for k in range(n - 1):
            g = rate * 3.0 * area[k] / distance[k]
            lap[k, k] -= g / self.volume_fraction[k]
            lap[k, k + 1] += g / self.volume_fraction[k]
            lap[k + 1, k + 1] -= g / self.volume_fraction[k + 1]
            lap[k + 1, k] += g / self.volume_fraction[k + 1]
        self._source = np.zeros(n)
        self._source[-1] = 1.0 / (capacity_C * self.volume_fraction[-1])  # per ampere
        # W^1/2 L W^-1/2 is symmetric (W = shell volumes): its eigenvectors give M = (I - hL)^-1
        # stably for any step, even h x rate ~ 1e13 where a direct inverse is singular.
        w_half = np.sqrt(self.volume_fraction)
        lam, q = np.linalg.eigh(lap * w_half[:, None] / w_half[None, :])
        self._lam = np.minimum(lam, 0.0)  # L is negative semi-definite; clip rounding
        self._left = q / w_half[:, None]  # W^-1/2 Q
        self._right = q.T * w_half[None, :]  # Q^T W^1/2
        self._cache: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}

    @staticmethod
    def key(h: float) -> int:
        return round(h * 1e9)  # step lengths equal to the nanosecond share one matrix

    def step_operator(self, h: float) -> tuple[np.ndarray, np.ndarray, float]:
        """(M, h M b, surface gain) for x_new = M x + h M b I_f."""
        k = self.key(h)
        op = self._cache.get(k)
        if op is None:
            h = k * 1e-9
            m = (self._left / (1.0 - h * self._lam)[None, :]) @ self._right
            hmb = (self._left * (h / (1.0 - h * self._lam))[None, :]) @ (self._right @ self._source)
            op = (m, hmb, float(hmb[-1]))
            if len(self._cache) < 64:  # bounded: irregular sample spacing must not leak memory
                self._cache[k] = op
        return op

    def surface_response(self, omega_rad_s: np.ndarray) -> np.ndarray:
        """Small-signal x_surface / I_f (per ampere) at angular frequencies ``omega_rad_s``.

        The same operator the stepper integrates, dx/dt = L x + b I_f, solved for a sine:
        x^ = (jw - L)^-1 b I^, read at the outer shell. The zero mode (the particle's total
        content) makes it 1/(jw) at the lowest frequencies: a finite, reflective particle.
        """
        w = np.asarray(omega_rad_s, dtype=float)
        weights = self._left[-1, :] * (self._right @ self._source)
        return (weights[None, :] / (1j * w[:, None] - self._lam[None, :])).sum(axis=1)
