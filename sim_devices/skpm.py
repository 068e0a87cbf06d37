"""SKPM maps across a heterointerface as a Kelvin probe would record them, from the SimCell state.

The sample: phase A (x < interface) and phase B, B standing ``step_height_m`` higher, both with
a fixed random roughness. The contact potential difference steps by the built-in potential
dV across the interface over the space-charge width

    w = debye_length * sqrt(2 |dV| / V_T)          (depletion approximation)

with dV = dv_empty + dv_full_extra * interface_fill: filling the interfacial store (charging)
raises the step, so both the step and its width follow the state of charge and the cell's
Debye length (1 nm and 1.3 V give w ~ 10 nm, as reported for a LASGTP interface).

What the instrument adds: the tip's electrostatic footprint (Gaussian blur of the CPD), its
shape (grey dilation of the topography by a parabolic apex), lateral and vertical drift that
grows with scan time, and white noise that falls with the time spent per pixel.
"""

from __future__ import annotations

import numpy as np

from .cell import SimCell

THERMAL_VOLTAGE_V = 0.025693  # kT/e at 298.15 K


class SimSkpmPhysics:
    def __init__(
        self,
        cell: SimCell,
        seed: int = 0,
        *,
        interface_x_m: float = 0.0,
        step_height_m: float = 8e-9,
        roughness_m: float = 0.6e-9,
        cpd_a_V: float = -0.2,
        dv_empty_V: float = 0.3,
        dv_full_extra_V: float = 1.0,
        tip_footprint_m: float = 6e-9,  # sigma of the CPD's lateral averaging
        tip_radius_m: float = 10e-9,
        drift_m_s: tuple[float, float] = (0.02e-9, 0.01e-9),  # lateral (x, y)
        z_drift_m_s: float = 0.005e-9,
        cpd_noise_V_sqrt_s: float = 0.2e-3,  # 6 mV rms at 1 ms per pixel
        height_noise_m: float = 0.05e-9,
    ):
        self._cell = cell
        self._rng = np.random.default_rng(seed)
        self.interface_x_m = interface_x_m
        self._step = step_height_m
        self._cpd_a = cpd_a_V
        self._dv0 = dv_empty_V
        self._dv1 = dv_full_extra_V
        self.tip_footprint_m = tip_footprint_m
        self.tip_radius_m = tip_radius_m
        self._drift = np.asarray(drift_m_s, dtype=float)
        self._z_drift = z_drift_m_s
        self._cpd_noise = cpd_noise_V_sqrt_s
        self._h_noise = height_noise_m
        # roughness: a fixed sum of random plane waves (the same sample every scan)
        rough = np.random.default_rng(seed + 1000)
        n = 24
        self._k = rough.uniform(2 * np.pi / 80e-9, 2 * np.pi / 8e-9, n)
        self._theta = rough.uniform(0, 2 * np.pi, n)
        self._phase = rough.uniform(0, 2 * np.pi, n)
        self._amp = roughness_m * np.sqrt(2.0 / n)
        self.drift_origin_s: float | None = None  # experiment time at which drift is zero

    # ---- state -----------------------------------------------------------------------------
    @property
    def debye_length_m(self) -> float:
        sc = self._cell.params.space_charge
        return sc.debye_length_m if sc is not None else 5e-9

    def built_in_potential_V(self) -> float:
        """CPD step across the interface for the present state (B minus A)."""
        return self._dv0 + self._dv1 * self._cell.interface_fill

    def space_charge_width_m(self) -> float:
        dv = abs(self.built_in_potential_V())
        return self.debye_length_m * np.sqrt(2.0 * dv / THERMAL_VOLTAGE_V)

    # ---- the true surface ------------------------------------------------------------------
    def true_height_m(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        phase_b = 0.5 * (1.0 + np.tanh((x - self.interface_x_m) / 1e-9))
        arg = (
            np.multiply.outer(x, self._k * np.cos(self._theta))
            + np.multiply.outer(y, self._k * np.sin(self._theta))
            + self._phase
        )
        return self._step * phase_b + self._amp * np.sin(arg).sum(axis=-1)

    def true_cpd_V(self, x: np.ndarray) -> np.ndarray:
        w = self.space_charge_width_m()
        s = 0.5 * (1.0 + np.tanh(2.0 * (x - self.interface_x_m) / w))
        return self._cpd_a + self.built_in_potential_V() * s

    # ---- one measured line -----------------------------------------------------------------
    def line(self, y_m: float, x_m: np.ndarray, t: float, pixel_time_s: float):
        """(height, cpd) of one scan line at fast-axis positions ``x_m``, measured at time ``t``."""
        if self.drift_origin_s is None:
            self.drift_origin_s = t
        elapsed = t - self.drift_origin_s
        dx, dy = self._drift * elapsed
        px = x_m[1] - x_m[0] if x_m.size > 1 else 1e-9
        # the true surface on a 4x finer grid, so the tip sees features between pixels
        fine = np.linspace(x_m[0] - px, x_m[-1] + px, 4 * (x_m.size + 2))
        xs, ys = fine + dx, np.full_like(fine, y_m + dy)
        h = _dilate(self.true_height_m(xs, ys), fine[1] - fine[0], self.tip_radius_m)
        v = _blur(self.true_cpd_V(xs), fine[1] - fine[0], self.tip_footprint_m)
        height = np.interp(x_m, fine, h) + self._z_drift * elapsed
        cpd = np.interp(x_m, fine, v)
        height = height + self._rng.normal(0.0, self._h_noise, x_m.size)
        cpd = cpd + self._rng.normal(0.0, self._cpd_noise / np.sqrt(pixel_time_s), x_m.size)
        return height, cpd


def _blur(values: np.ndarray, dx: float, sigma: float) -> np.ndarray:
    half = max(1, int(3 * sigma / dx))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) * dx / sigma) ** 2)
    padded = np.pad(values, half, mode="edge")
    return np.convolve(padded, k / k.sum(), mode="valid")


def _dilate(heights: np.ndarray, dx: float, radius: float) -> np.ndarray:
    """What a parabolic tip of apex ``radius`` traces: max over offsets of h(x+u) - u^2/2R."""
    half = max(1, min(64, int(np.sqrt(2 * radius * 5e-9) / dx)))  # offsets within 5 nm of apex
    padded = np.pad(heights, half, mode="edge")
    out = np.full_like(heights, -np.inf)
    n = heights.size
    for j in range(-half, half + 1):
        out = np.maximum(out, padded[half + j : half + j + n] - (j * dx) ** 2 / (2 * radius))
    return out
