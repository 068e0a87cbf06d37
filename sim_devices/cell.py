"""The simulated cell: one object per simulated sample, the state every sim instrument reads.

Equivalent circuit, working electrode vs Li:

    Ewe = V + I R_ohm,   V across two parallel branches:
      faradaic:    I_f = 2 i0 sinh(F (V - U(x_surface)) / 2RT)  (symmetric Butler-Volmer,
                   i0 = RT / (F R_ct)), feeding finite-volume diffusion in a sphere
      capacitive:  (C_int + C_dl) dV/dt = I - I_f (space-charge store at the heterointerfaces,
                   sized by interface density and Debye length, plus the double layer)

Small signal: ``impedance(f)`` is the linearised circuit about the present state (impedance.py).

Control: ``run`` holds a current (galvanostatic, with cut-offs), ``run_potential`` imposes Ewe
(a hold or any programme E(t), e.g. a CV triangle; current compliance), ``relax`` leaves the
cell at open circuit. ``set_temperature`` re-derives R_ct and D (Arrhenius) and the OCV's
entropy term.

Butler-Volmer enters each step through its chord resistance eta/I_f at the previous step's
faradaic current (equal to R_ct at small currents), which keeps the step linear and cheap.

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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .cell_parameters import FARADAY, GAS_CONSTANT, CellParameters, OcvCurve
from .diffusion import SphericalDiffusion
from .impedance import circuit_impedance, faradaic_resistance
from .materials import PRESETS, preset

__all__ = [
    "CellParameters",
    "CellTrace",
    "OcvCurve",
    "PRESETS",
    "PotentialTrace",
    "SimCell",
    "preset",
]


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


@dataclass(frozen=True)
class PotentialTrace:
    """Samples of one ``SimCell.run_potential``; ``charge_mAh`` counts from the cell's creation."""

    t_rel: np.ndarray
    ewe_V: np.ndarray  # the imposed potential at each sample
    current_A: np.ndarray  # the current flowing at each sample (> 0 charging)
    charge_mAh: np.ndarray
    soc: np.ndarray
    limit_reached: bool  # |I| exceeded the compliance; the trace ends at that sample
    cutoff_reached: bool = False  # |I| fell to ``i_stop_A``; the trace ends at that sample

    def __len__(self) -> int:
        return len(self.t_rel)


class SimCell:
    STEP_S = 0.05
    MAX_STEP_S = 1.0

    def __init__(self, params: CellParameters, soc: float | None = 0.0):
        """``soc``: the state of charge to start at (0: empty, at e_min_V); None: as assembled,
        at rest at ``params.as_assembled_V`` (empty if the preset gives none)."""
        p = params
        self._p = p
        self._q_nom_C = p.nominal_capacity_mAh * 3.6
        self._q_bulk_C = p.bulk_capacity_C
        self._cap_F = p.interfacial_capacitance_F
        self._dl_F = p.double_layer_F
        self._cap_total = self._cap_F + self._dl_F
        self._r_ohm = p.r_ohm
        self._e_ref = p.e_min_V  # the interfacial store is empty at the bottom of the window
        self._i_f = 0.0  # faradaic current of the last step (Butler-Volmer chord)
        self.set_temperature(p.temperature_K)
        self._w = self._diff.volume_fraction
        # soc and stored charge count from the rest state at e_min_V, so soc 0 sits in the window
        self._x_empty = self._stoichiometry_at(p.e_min_V)
        if soc is None and p.as_assembled_V is not None:
            x0 = self._stoichiometry_at(p.as_assembled_V)
        else:
            x0 = self._equilibrium_stoichiometry(soc or 0.0)
        self._x = np.full(p.n_shells, x0)
        self._v = self._u(x0)[0]
        self._v_lowest = self._v  # lowest rest potential so far (the magnetism's 'pristine')
        self._charge_C = 0.0
        self._current_A = 0.0
        self._time_s = 0.0
        self._plated_C = 0.0  # metallic lithium plated on the electrode (below 0 V vs Li)

    # ---- state -------------------------------------------------------------------------------
    @property
    def params(self) -> CellParameters:
        return self._p

    @property
    def temperature_K(self) -> float:
        return self._temp

    def set_temperature(self, temperature_K: float) -> None:
        """Cell temperature from now on: R_ct and D follow Arrhenius, U(x) its entropy term."""
        if not temperature_K > 0:
            raise ValueError(f"temperature_K must be > 0, got {temperature_K!r}")
        p = self._p
        self._temp = float(temperature_K)
        self._r_ct = p.r_ct_at(self._temp)
        self._f_half = FARADAY / (2.0 * GAS_CONSTANT * self._temp)  # F / 2RT
        self._diff = SphericalDiffusion(
            p.n_shells,
            p.particle_radius_m,
            p.diffusion_at(self._temp),
            self._q_bulk_C,
            p.shell_grading,
        )

    @property
    def current_A(self) -> float:
        """Current of the last run (0 after relax)."""
        return self._current_A

    @property
    def faradaic_current_A(self) -> float:
        """Current through charge transfer into the bulk at the end of the last step."""
        return self._i_f

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
    def lowest_rest_potential_V(self) -> float:
        """The lowest rest potential the cell has had since it was made (at sample resolution)."""
        return self._v_lowest

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
    def double_layer_charge_mAh(self) -> float:
        return self._dl_F * (self._v - self._e_ref) / 3.6

    @property
    def interface_fill(self) -> float:
        """How full the space-charge store is, 0..1 (0 at e_min_V, 1 at e_max_V)."""
        span = self._p.e_max_V - self._e_ref
        return min(max((self._v - self._e_ref) / span, 0.0), 1.0)

    @property
    def stored_charge_mAh(self) -> float:
        bulk_C = self._q_bulk_C * (self.bulk_stoichiometry - self._x_empty)
        return bulk_C / 3.6 + self.interfacial_charge_mAh + self.double_layer_charge_mAh

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

    @property
    def plated_lithium_mAh(self) -> float:
        """Lithium metal plated on the electrode by driving it below 0 V vs Li (stripped first on charge)."""
        return self._plated_C / 3.6

    def impedance(self, frequencies_Hz: np.ndarray) -> np.ndarray:
        """Small-signal Z (complex ohm, Z'' < 0 capacitive) about the present state; no change."""
        slope = self._u(self.surface_stoichiometry)[1]
        r_f = faradaic_resistance(self._r_ct, self._f_half, self._i_f)
        return circuit_impedance(frequencies_Hz, self._r_ohm, self._cap_total, r_f, slope, self._diff.surface_response)

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
            crossed = lambda e: e >= e_max_V
        elif current < 0 and e_min_V is not None:
            crossed = lambda e: e <= e_min_V
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
            x_a, v_a, if_a, plated_a = x, v, self._i_f, self._plated_C
            x, v = self._advance_with_lithium(x, v, tb - prev_t, current)
            e = v + current * r_ohm
            if crossed is not None and crossed(e):
                # redo this step sample by sample to find the first sample that crosses
                x, v, tk = x_a, v_a, prev_t
                self._i_f, self._plated_C = if_a, plated_a
                for k in range(prev_i + 1, i + 1):
                    x, v = self._advance_with_lithium(x, v, times[k] - tk, current)
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
        self._v_lowest = min(self._v_lowest, min(node_e) - current * r_ohm, v)
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
        self._v_lowest = min(self._v_lowest, v)
        self._time_s += duration_s
        self._current_A = 0.0

    def _chord_r_ct(self, i_f: float) -> float:
        """Butler-Volmer chord resistance eta/I_f at faradaic current ``i_f`` (R_ct as I_f -> 0)."""
        y = abs(i_f) * self._r_ct * self._f_half  # |I_f| / (2 i0)
        return self._r_ct if y < 1e-4 else self._r_ct * math.asinh(y) / y

    def _advance_with_lithium(self, x: np.ndarray, v: float, gap: float, current: float):
        """``_advance`` at a held current, with metallic lithium at 0 V vs Li.

        Discharging, the interface cannot fall below the plating potential (0 V minus the
        plating overpotential ``I r_plating``): the charge that would take it further plates
        lithium instead. Charging, plated lithium strips first, at 0 V plus its overpotential.
        At open circuit, plated lithium holds the electrode at 0 V.
        """
        r_pl = self._p.r_plating_ohm
        if self._plated_C > 0.0:
            if current == 0.0:
                return x, 0.0
            if current > 0.0:
                strip_s = min(gap, self._plated_C / current)
                self._plated_C = max(self._plated_C - current * strip_s, 0.0)
                v, gap = current * r_pl, gap - strip_s
                if gap <= 1e-12:
                    return x, v
        x, v = self._advance(x, v, gap, current)
        if current < 0.0 and v < current * r_pl:
            self._plated_C += self._cap_total * (current * r_pl - v)
            v = current * r_pl
        return x, v

    def _advance(self, x: np.ndarray, v: float, gap: float, current: float, max_step_s=None):
        """Galvanostatic implicit-Euler steps; updates the Butler-Volmer state ``_i_f``."""
        n_sub = max(1, math.ceil(gap / (max_step_s or self.MAX_STEP_S) - 1e-9))
        h = gap / n_sub
        m, hmb, gain = self._diff.step_operator(h)
        cap, ocv, temp = self._cap_total, self._p.ocv, self._temp
        i_f = self._i_f
        for _ in range(n_sub):
            xp = m @ x
            xs = float(x[-1])
            u0, slope = ocv.value_and_slope(xs, temp)
            u_star = u0 + slope * (float(xp[-1]) - xs)  # U at the new surface, minus I_f's share
            r_eff = self._chord_r_ct(i_f) + slope * gain
            k = h / (cap * r_eff)
            v = (v + h * current / cap + k * u_star) / (1.0 + k)
            i_f = (v - u_star) / r_eff
            x = xp + hmb * i_f
        self._i_f = i_f
        return x, v

    def _advance_potential(self, x: np.ndarray, v: float, t0: float, gap: float, e_of_t, n_sub):
        """Potentiostatic implicit-Euler steps from t0 to t0 + gap; returns (x, v, I, charge C)."""
        h = gap / n_sub
        m, hmb, gain = self._diff.step_operator(h)
        cap_h, g_ohm, ocv, temp = self._cap_total / h, 1.0 / self._r_ohm, self._p.ocv, self._temp
        i_f, current, charge = self._i_f, 0.0, 0.0
        for j in range(1, n_sub + 1):
            e = e_of_t(t0 + j * h)
            xp = m @ x
            xs = float(x[-1])
            u0, slope = ocv.value_and_slope(xs, temp)
            u_star = u0 + slope * (float(xp[-1]) - xs)
            g_f = 1.0 / (self._chord_r_ct(i_f) + slope * gain)
            v = (cap_h * v + e * g_ohm + u_star * g_f) / (cap_h + g_ohm + g_f)
            i_f = (v - u_star) * g_f
            current = (e - v) * g_ohm
            charge += current * h  # = C dV + I_f h: the implicit step conserves charge exactly
            x = xp + hmb * i_f
        self._i_f = i_f
        return x, v, current, charge

    def run_potential(
        self,
        potential_V: float | Callable[[float], float],
        sample_times_rel: np.ndarray,
        *,
        i_limit_A: float | None = None,
        i_stop_A: float | None = None,
        max_step_s: float | None = None,
    ) -> PotentialTrace:
        """Impose Ewe through ``sample_times_rel`` (s after now, ascending, > 0).

        ``potential_V`` is a number (a potential hold, e.g. chronoamperometry) or a function of
        the time since now, t -> Ewe(t) in V (a sweep, e.g. ``linear_sweep`` for CV). Between
        samples the cell is stepped at most ``max_step_s`` (default ``MAX_STEP_S``) at a time,
        evaluating the programme at every step's end. The current is that flowing at each
        sample. With ``i_limit_A``, stops at the first sample where |I| exceeds it (the
        instrument's compliance); the cell then ends at that sample, still under control until
        the caller relaxes or runs it. With ``i_stop_A``, stops likewise at the first sample
        where |I| has fallen to it (the end of a CV phase or of chronoamperometry).
        """
        t = np.asarray(sample_times_rel, dtype=float).ravel()
        if t.size and (not t[0] > 0 or (t.size > 1 and not np.all(np.diff(t) > 0))):
            raise ValueError("sample_times_rel must be > 0 and strictly ascending")
        e_of_t = potential_V if callable(potential_V) else (lambda _t, e=float(potential_V): e)
        step = max_step_s or self.MAX_STEP_S
        x, v = self._x, self._v
        n = t.size
        ewe, cur, chg = np.empty(n), np.empty(n), np.empty(n)
        charge_C, prev, last, limited, stopped = self._charge_C, 0.0, n - 1, False, False
        current = self._current_A
        for k, tk in enumerate(t.tolist()):
            gap = tk - prev
            n_sub = max(1, math.ceil(gap / step - 1e-9)) if math.isfinite(step) else 1
            x, v, current, dq = self._advance_potential(x, v, prev, gap, e_of_t, n_sub)
            charge_C += dq
            ewe[k], cur[k], chg[k] = e_of_t(tk), current, charge_C / 3.6
            prev = tk
            if i_limit_A is not None and abs(current) > i_limit_A:
                last, limited = k, True
                break
            if i_stop_A is not None and abs(current) <= i_stop_A:
                last, stopped = k, True
                break
        m = last + 1
        self._x, self._v = x, v
        if n:
            self._v_lowest = min(self._v_lowest, float((ewe[:m] - cur[:m] * self._r_ohm).min()), v)
        if n:
            self._charge_C = charge_C
            self._time_s += float(t[last])
            self._current_A = current
        q0 = chg[:m] * 3.6 - charge_C  # charge relative to the end state
        soc = self.soc + q0 / self._q_nom_C
        return PotentialTrace(t[:m], ewe[:m], cur[:m], chg[:m], soc, limited, stopped)

    def _u(self, x: float) -> tuple[float, float]:
        return self._p.ocv.value_and_slope(x, self._temp)

    def _equilibrium_stoichiometry(self, soc: float) -> float:
        """Bulk x at rest such that bulk + interfacial charge equals ``soc`` of nominal."""
        target = soc * self._q_nom_C

        def stored(x: float) -> float:
            bulk = self._q_bulk_C * (x - self._x_empty)
            return bulk + self._cap_total * (self._u(x)[0] - self._e_ref)

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
