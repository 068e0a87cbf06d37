"""GITT: Weppner-Huggins chemical diffusion coefficient per pulse and the quasi-equilibrium OCV.

For a pulse of duration tau short against L^2/D (semi-infinite diffusion):

    D = 4 L^2 / (pi tau) * (dE_s / dE_t)^2,   L = m_B V_M / (M_B S)

dE_s: change of the relaxed potential across the pulse (end of the relaxation before it to
the end of the relaxation after it). dE_t: potential change during the pulse without the IR
jump, from a line E = c + m sqrt(t) fitted to the pulse's sqrt(t)-linear part (past the first
``skip`` of the pulse, where the jump and double-layer charging sit): dE_t = m sqrt(tau).
L is the diffusion length (particle radius for spheres, or m_B V_M/(M_B S) from the mass form).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GittPulse:
    index: int  # 1-based within the step
    tau_s: float
    current_A: float
    dE_s_V: float
    dE_t_V: float
    D_m2_s: float
    E_relaxed_V: float  # end of the relaxation after this pulse (quasi-equilibrium OCV)
    charge_mAh: float  # net charge passed by then (the run's running charge)


def diffusion_length_from_mass(
    mass_g: float, molar_volume_m3_mol: float, molar_mass_g_mol: float, area_m2: float
) -> float:
    """L = m_B V_M / (M_B S), the mass form's length (m)."""
    return mass_g * molar_volume_m3_mol / (molar_mass_g_mol * area_m2)


def weppner_huggins(tau_s: float, dE_s_V: float, dE_t_V: float, length_m: float) -> float:
    return 4.0 * length_m**2 / (math.pi * tau_s) * (dE_s_V / dE_t_V) ** 2


def transient_change(t_rel_s, potential_V, tau_s: float, skip: float = 0.2) -> float:
    """dE_t: the sqrt(t) slope over [skip*tau, tau] times sqrt(tau)."""
    t = np.asarray(t_rel_s, float)
    e = np.asarray(potential_V, float)
    sel = (t >= skip * tau_s) & (t <= tau_s * (1 + 1e-9))
    if sel.sum() < 3:
        raise ValueError("too few samples in the pulse's sqrt(t) part (need 3; sample faster)")
    m = np.polyfit(np.sqrt(t[sel]), e[sel], 1)[0]
    return float(m * math.sqrt(tau_s))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges where ``mask`` is True."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def analyse_gitt(time_s, potential_V, current_A, charge_mAh, length_m: float, skip: float = 0.2) -> list[GittPulse]:
    """Every pulse of one GITT step that has a relaxed potential before and after it.

    The potential before the first pulse is the step's first sample (the cell at rest when the
    step begins); a pulse is where |I| > 0, a relaxation where I == 0.
    """
    t = np.asarray(time_s, float)
    e = np.asarray(potential_V, float)
    i = np.asarray(current_A, float)
    q = np.asarray(charge_mAh, float)
    on = np.abs(i) > 1e-12
    pulses = _runs(on)
    out = []
    for k, (a, b) in enumerate(pulses):
        if b >= e.size:
            break  # no relaxation measured after this pulse
        before = e[a - 1] if a > 0 else e[0]
        t0 = t[a - 1] if a > 0 else t[a]  # the pulse began just after the last rest sample
        rest_end = pulses[k + 1][0] if k + 1 < len(pulses) else e.size
        tau = float(t[b - 1] - t0)
        dE_t = transient_change(t[a:b] - t0, e[a:b], tau, skip)
        dE_s = float(e[rest_end - 1] - before)
        out.append(
            GittPulse(
                k + 1,
                tau,
                float(np.median(i[a:b])),
                dE_s,
                dE_t,
                weppner_huggins(tau, dE_s, dE_t, length_m),
                float(e[rest_end - 1]),
                float(q[rest_end - 1]),
            )
        )
    return out
