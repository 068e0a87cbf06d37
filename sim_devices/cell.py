"""The simulated cell: one object per simulated sample, the state every sim instrument reads.

Equivalent circuit, working electrode vs Li:

    Ewe = V + I R_ohm,   V across two parallel branches:
      faradaic:    I_f = (V - U(x_surface)) / R_ct, feeding finite-volume diffusion in a sphere
      interfacial: C_int dV/dt = I - I_f (space-charge store, charges linearly with V)

Integration (the hot path): implicit Euler on shells and interface together, with U linearised
about the surface stoichiometry at the start of each step; the diffusion matrices are
precomputed per step length. Fine samples (e.g. 1 ms) are grouped into internal steps of about
``STEP_S`` = 0.05 s and read by linear interpolation between steps; coarser samples are one step
each, split into sub-steps of at most ``MAX_STEP_S`` for accuracy (implicit Euler is stable at
any step). When a cut-off falls inside a step, that step is redone sample by sample so the
trace stops at the first sample that really crosses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .cell_parameters import CellParameters, OcvCurve
from .diffusion import SphericalDiffusion
from .materials import PRESETS, preset

__all__ = ["CellParameters", "CellTrace", "OcvCurve", "PRESETS", "SimCell", "preset"]


@dataclass(frozen=True)
class CellTrace:
    """Samples of one ``SimCell.run``; ``charge_mAh`` counts from the cell's creation."""

    t_rel: np.ndarray
    ewe_V: np.ndarray
    charge_mAh: np.ndarray
    soc: np.ndarray
    current_A: float
    cutoff_reached: bool

    def __len__(self) -> int:
        return len(self.t_rel)


class SimCell:
    STEP_S = 0.05
    MAX_STEP_S = 1.0

    def __init__(self, params: CellParameters, soc: float = 0.0):
        p = params
        self._p = p
        self._q_nom_C = p.nominal_capacity_mAh * 3.6
        self._q_bulk_C = p.bulk_capacity_C
        self._cap_F = p.interfacial_capacitance_F
        self._r_ct = p.r_ct_at_temperature_ohm
        self._r_ohm = p.r_ohm
        self._e_ref = p.e_min_V  # the interfacial store is empty at the bottom of the window
        self._diff = SphericalDiffusion(
            p.n_shells, p.particle_radius_m, p.diffusion_m2_s, self._q_bulk_C
        )
        self._w = self._diff.volume_fraction
        # soc and stored charge count from the rest state at e_min_V, so soc 0 sits in the window
        self._x_empty = self._stoichiometry_at(p.e_min_V)
        x0 = self._equilibrium_stoichiometry(soc)
        self._x = np.full(p.n_shells, x0)
        self._v = self._u(x0)[0]
        self._charge_C = 0.0
        self._current_A = 0.0
        self._time_s = 0.0

    # ---- state -------------------------------------------------------------------------------
    @property
    def params(self) -> CellParameters:
        return self._p

    @property
    def temperature_K(self) -> float:
        return self._p.temperature_K

    @property
    def time_s(self) -> float:
        """Simulated seconds this cell has been run for."""
        return self._time_s

    @property
    def ocv_V(self) -> float:
        """Open-circuit potential of the particle surface, U(x_surface)."""
        return self._u(self.surface_stoichiometry)[0]

    @property
    def rest_potential_V(self) -> float:
        """Potential across the interface right now (Ewe the instant the current stops)."""
        return self._v

    @property
    def ewe_V(self) -> float:
        """Terminal potential at the current of the last run."""
        return self._v + self._current_A * self._r_ohm

    @property
    def bulk_stoichiometry(self) -> float:
        return float(self._w @ self._x)

    @property
    def surface_stoichiometry(self) -> float:
        return float(self._x[-1])

    @property
    def interfacial_charge_mAh(self) -> float:
        return self._cap_F * (self._v - self._e_ref) / 3.6

    @property
    def interfacial_capacity_mAh(self) -> float:
        return self._cap_F * (self._p.e_max_V - self._e_ref) / 3.6

    @property
    def stored_charge_mAh(self) -> float:
        bulk_C = self._q_bulk_C * (self.bulk_stoichiometry - self._x_empty)
        return bulk_C / 3.6 + self.interfacial_charge_mAh

    @property
    def interfacial_fraction(self) -> float:
        """Share of the stored charge held in the interfacial store (0 when nothing is stored)."""
        stored = self.stored_charge_mAh
        return self.interfacial_charge_mAh / stored if stored > 1e-15 else 0.0

    @property
    def soc(self) -> float:
        return self.stored_charge_mAh * 3.6 / self._q_nom_C

    @property
    def charge_mAh(self) -> float:
        return self._charge_C / 3.6

    # ---- dynamics ----------------------------------------------------------------------------
    def run(
        self,
        current_A: float,
        sample_times_rel: np.ndarray,
        e_min_V: float | None = None,
        e_max_V: float | None = None,
    ) -> CellTrace:
        """Hold ``current_A`` through ``sample_times_rel`` (s after now, ascending, > 0).

        Stops at the first sample where Ewe >= e_max_V while charging or Ewe <= e_min_V while
        discharging; the cell's state then ends at that sample.
        """
        t = np.asarray(sample_times_rel, dtype=float).ravel()
        current = float(current_A)
        if t.size == 0:
            e = np.empty(0)
            return CellTrace(e, e, e, e, current, False)
        if not t[0] > 0 or (t.size > 1 and not np.all(np.diff(t) > 0)):
            raise ValueError("sample_times_rel must be > 0 and strictly ascending")

        if current > 0 and e_max_V is not None:
            crossed = lambda e: e >= e_max_V  # noqa: E731
        elif current < 0 and e_min_V is not None:
            crossed = lambda e: e <= e_min_V  # noqa: E731
        else:
            crossed = None

        nodes = self._node_indices(t).tolist()
        times = t.tolist()
        r_ohm = self._r_ohm
        x, v = self._x, self._v
        node_t, node_e = [0.0], [v + current * r_ohm]  # the ohmic jump is instantaneous
        last = len(times) - 1
        cutoff = False
        prev_i, prev_t = -1, 0.0
        for i in nodes:
            tb = times[i]
            x_a, v_a = x, v
            x, v = self._advance(x, v, tb - prev_t, current)
            e = v + current * r_ohm
            if crossed is not None and crossed(e):
                # redo this step sample by sample to find the first sample that crosses
                x, v, tk = x_a, v_a, prev_t
                for k in range(prev_i + 1, i + 1):
                    x, v = self._advance(x, v, times[k] - tk, current)
                    tk = times[k]
                    e = v + current * r_ohm
                    node_t.append(tk)
                    node_e.append(e)
                    if crossed(e):
                        last, cutoff = k, True
                        break
                if cutoff:
                    break
            else:
                node_t.append(tb)
                node_e.append(e)
            prev_i, prev_t = i, tb

        ts = t[: last + 1]
        charge_mAh = (self._charge_C + current * ts) / 3.6
        soc = self.soc + current * ts / self._q_nom_C
        ewe = np.interp(ts, node_t, node_e)
        self._x, self._v = x, v
        self._charge_C += current * times[last]
        self._time_s += times[last]
        self._current_A = current
        return CellTrace(ts, ewe, charge_mAh, soc, current, cutoff)

    def _node_indices(self, t: np.ndarray) -> np.ndarray:
        """Indices of the samples that end an internal integration step."""
        n = t.size
        gaps = np.diff(t, prepend=0.0)
        if gaps.max() - gaps.min() <= 1e-9 * gaps[0]:  # uniform grid: every stride-th sample
            stride = max(1, int(self.STEP_S / gaps[0] + 1e-9))
            idx = np.arange(stride - 1, n, stride)
            if idx.size == 0 or idx[-1] != n - 1:
                idx = np.append(idx, n - 1)
            return idx
        idx, t_node = [], 0.0
        for i, ti in enumerate(t.tolist()):
            if ti - t_node >= self.STEP_S - 1e-12 or i == n - 1:
                idx.append(i)
                t_node = ti
        return np.asarray(idx)

    def relax(self, duration_s: float) -> None:
        """Open circuit for ``duration_s`` with nothing recorded (an idle instrument).

        Implicit Euler is stable at any step, so the gap is covered by steps of 1, 2, 4, ... s
        (at most 4096 s): an idle day costs a few dozen steps instead of 86,400.
        """
        remaining = float(duration_s)
        x, v, h = self._x, self._v, self.MAX_STEP_S
        while remaining >= h:
            x, v = self._advance(x, v, h, 0.0, max_step_s=h)
            remaining -= h
            h = min(2.0 * h, 4096.0)
        if remaining > 1e-12:
            x, v = self._advance(x, v, remaining, 0.0)
        self._x, self._v = x, v
        self._time_s += duration_s
        self._current_A = 0.0

    def _advance(self, x: np.ndarray, v: float, gap: float, current: float, max_step_s=None):
        n_sub = max(1, math.ceil(gap / (max_step_s or self.MAX_STEP_S) - 1e-9))
        h = gap / n_sub
        m, hmb, gain = self._diff.step_operator(h)
        cap, r_ct, ocv, temp = self._cap_F, self._r_ct, self._p.ocv, self._p.temperature_K
        for _ in range(n_sub):
            xp = m @ x
            xs = float(x[-1])
            u0, slope = ocv.value_and_slope(xs, temp)
            u_star = u0 + slope * (float(xp[-1]) - xs)  # U at the new surface, minus I_f's share
            r_eff = r_ct + slope * gain
            k = h / (cap * r_eff)
            v = (v + h * current / cap + k * u_star) / (1.0 + k)
            i_f = (v - u_star) / r_eff
            x = xp + hmb * i_f
        return x, v

    def _u(self, x: float) -> tuple[float, float]:
        return self._p.ocv.value_and_slope(x, self._p.temperature_K)

    def _equilibrium_stoichiometry(self, soc: float) -> float:
        """Bulk x at rest such that bulk + interfacial charge equals ``soc`` of nominal."""
        target = soc * self._q_nom_C

        def stored(x: float) -> float:
            bulk = self._q_bulk_C * (x - self._x_empty)
            return bulk + self._cap_F * (self._u(x)[0] - self._e_ref)

        return self._bisect(stored, target)

    def _stoichiometry_at(self, potential_V: float) -> float:
        return self._bisect(lambda x: self._u(x)[0], potential_V)

    @staticmethod
    def _bisect(increasing, target: float) -> float:
        lo, hi = 1e-9, 1.0 - 1e-9
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if increasing(mid) < target else (lo, mid)
        return 0.5 * (lo + hi)
