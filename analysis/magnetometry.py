"""Curie–Weiss fit of an M–T curve: Curie constant, Weiss θ and effective moment, per mole.

The moment measured at field H (Oe) and temperature T (K) is fitted as

    m(T) = H · [χ0 + n · C / (T − θ)]  [+ M_s · L(μ_p μ_B H / k T)]

n: moles of the magnetic ion (from the sample's metadata, ``moles_from_sample``); C in
cm³ K mol⁻¹ (emu K mol⁻¹ Oe⁻¹); χ0 a temperature-independent term (diamagnetic holder, Pauli,
van Vleck), emu Oe⁻¹. With ``superparamagnetic=True`` a Langevin term is added for nanoparticles
above their blocking temperature (a lithiated conversion electrode holds metallic Fe): its
saturated moment M_s and particle moment μ_p (Bohr magnetons) are fitted too. Near saturation
(≳ 1 T) the Langevin term is M_s (1 − kT/μ_p μ_B H): its constant trades off against χ0 (their
errors are then large, C's and θ's are not), its linear-in-T part is distinct from C/(T − θ).
The effective moment is μ_eff = sqrt(3 k C / (N_A μ_B²)) ≈ 2.828 √C μ_B.

scipy's ``curve_fit`` (lmfit is not a dependency); uncertainties are the standard errors from
the covariance, scaled by the residual (``absolute_sigma=False``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from scipy.optimize import curve_fit

MU_B_J_T = 9.2740100783e-24
K_B = 1.380649e-23
N_A = 6.02214076e23
MU_B_EMU = 9.2740100783e-21
MU_EFF_PER_SQRT_C = math.sqrt(3 * K_B * 1e7 / (N_A * MU_B_EMU**2))  # 2.8279 (cgs units)


@dataclass(frozen=True)
class CurieWeissFit:
    curie_cm3K_mol: float
    curie_err: float
    theta_K: float
    theta_err: float
    chi0_emu_Oe: float
    mu_eff_muB: float
    mu_eff_err: float
    moles: float
    field_Oe: float
    n_points: int
    rms_residual_emu: float
    sp_moment_emu: float = math.nan  # superparamagnetic saturated moment (if fitted)
    sp_particle_muB: float = math.nan

    def moment(self, temperature_K) -> np.ndarray:
        """The fitted m(T), emu: H·(χ0 + n·C/(T − θ)), plus M_s·L(μ_p μ_B B / k T) if fitted."""
        return _model_moment(
            np.asarray(temperature_K, float),
            self.field_Oe,
            self.moles,
            self.curie_cm3K_mol,
            self.theta_K,
            self.chi0_emu_Oe,
            self.sp_moment_emu if math.isfinite(self.sp_moment_emu) else None,
            self.sp_particle_muB,
        )


def _model_moment(t, field_Oe, moles, c, theta, chi0, ms=None, mu_p=1.0):
    """The Curie–Weiss model (with a Langevin term when ``ms`` is given), emu."""
    m = field_Oe * (chi0 + moles * c / (t - theta))
    if ms is not None:
        m = m + ms * _langevin(mu_p * MU_B_J_T * field_Oe * 1e-4 / (K_B * t))
    return m


def moles_from_sample(sample: dict, *, mol_per_g: Optional[float] = None) -> float:
    """Moles of the magnetic ion: active mass × mol per gram (given, or the sample's own
    ``magnetic_ion_mol_per_g``, e.g. 2/159.69 for Fe in Fe2O3)."""
    per_g = mol_per_g if mol_per_g is not None else sample.get("magnetic_ion_mol_per_g")
    mass = sample.get("active_mass_g")
    if not per_g or not mass:
        raise ValueError(
            "molar units need the sample's active_mass_g and magnetic_ion_mol_per_g "
            f"(have active_mass_g={mass!r}, magnetic_ion_mol_per_g={per_g!r})"
        )
    return float(mass) * float(per_g)


def _langevin(xi: np.ndarray) -> np.ndarray:
    xi = np.asarray(xi, float)
    small = np.abs(xi) < 1e-4
    safe = np.where(small, 1.0, xi)
    return np.where(small, xi / 3.0, 1.0 / np.tanh(safe) - 1.0 / safe)


def fit_curie_weiss(
    temperature_K,
    moment_emu,
    field_Oe: float,
    moles: float,
    *,
    superparamagnetic: bool = False,
    t_min_K: float = 0.0,
    t_max_K: float = math.inf,
) -> CurieWeissFit:
    """Fit m(T) at one field; points outside [t_min_K, t_max_K] are left out."""
    t = np.asarray(temperature_K, float)
    m = np.asarray(moment_emu, float)
    sel = (t >= t_min_K) & (t <= t_max_K) & np.isfinite(t) & np.isfinite(m)
    t, m = t[sel], m[sel]
    n_par = 5 if superparamagnetic else 3
    if t.size < n_par + 1:
        raise ValueError(f"Curie–Weiss fit needs at least {n_par + 1} points, got {t.size}")
    if not field_Oe or not moles > 0:
        raise ValueError(f"need a non-zero field and moles > 0 (field_Oe={field_Oe!r}, moles={moles!r})")
    h = float(field_Oe)
    t_lo = float(t.min())
    scale = float(np.max(np.abs(m))) or 1.0  # fit in units of the largest moment

    def model(tt, c, theta, chi0, ms=0.0, mu_p=1.0):
        return _model_moment(tt, h, moles, c, theta, chi0, ms if superparamagnetic else None, mu_p) / scale

    # 1/χ is linear in T for a paramagnet: its line gives C and θ to start from
    inv = moles * h / np.where(m == 0, np.nan, m)
    ok = np.isfinite(inv)
    slope, icpt = np.polyfit(t[ok], inv[ok], 1) if ok.sum() >= 2 else (1.0, 0.0)
    c0 = 1.0 / slope if slope > 0 else 1.0
    th0 = min(-icpt * c0, 0.5 * t_lo)
    p0 = [c0, th0, 0.0]
    lo = [0.0, -np.inf, -np.inf]
    hi = [np.inf, 0.999 * t_lo, np.inf]
    if superparamagnetic:
        p0 = [1.0, min(0.0, 0.5 * t_lo), 0.0, float(np.max(np.abs(m))), 1000.0]
        lo += [0.0, 1.0]
        hi += [np.inf, 1e6]
    popt, pcov = curve_fit(model, t, m / scale, p0=p0, bounds=(lo, hi), maxfev=20000)
    err = np.sqrt(np.clip(np.diag(pcov), 0, None))
    c, theta, chi0 = popt[:3]
    resid = m - model(t, *popt) * scale
    mu_eff = MU_EFF_PER_SQRT_C * math.sqrt(c)
    return CurieWeissFit(
        curie_cm3K_mol=float(c),
        curie_err=float(err[0]),
        theta_K=float(theta),
        theta_err=float(err[1]),
        chi0_emu_Oe=float(chi0),
        mu_eff_muB=mu_eff,
        mu_eff_err=float(mu_eff * 0.5 * err[0] / c) if c > 0 else math.nan,
        moles=float(moles),
        field_Oe=h,
        n_points=int(t.size),
        rms_residual_emu=float(np.sqrt(np.mean(resid**2))),
        sp_moment_emu=float(popt[3]) if superparamagnetic else math.nan,
        sp_particle_muB=float(popt[4]) if superparamagnetic else math.nan,
    )


# ---- moment change against charge passed (ΔM/ΔQ) ------------------------------------------------
ELECTRON_C = 1.602176634e-19
ELECTRONS_PER_MAH = 3.6 / ELECTRON_C


@dataclass(frozen=True)
class MomentChange:
    """The moment's change over one branch of one cycle (``window_V`` None), or over the part of
    it whose frames lie in one voltage window."""

    cycle: int
    direction: str  # "charge" (I > 0) or "discharge" (I < 0)
    window_V: Optional[tuple[float, float]]
    n_points: int
    dQ_mAh: float  # charge passed between the first and last frame
    dM_emu: float  # moment change between them
    slope_emu_mAh: float  # least-squares dM/dQ over the frames (nan with < 3 points)
    slope_err: float

    @property
    def muB_per_electron(self) -> float:
        """dM/dQ as Bohr magnetons per electron passed (the review's spin-polarised storage)."""
        return self.slope_emu_mAh / (MU_B_EMU * ELECTRONS_PER_MAH)


def _change(cycle, direction, window, q, m) -> Optional[MomentChange]:
    if q.size < 2 or np.ptp(q) == 0:
        return None
    slope, err = math.nan, math.nan
    if q.size >= 3:
        (slope, _), cov = np.polyfit(q, m, 1, cov=True)
        err = math.sqrt(max(cov[0, 0], 0.0))
    return MomentChange(
        cycle, direction, window, int(q.size), float(q[-1] - q[0]), float(m[-1] - m[0]), float(slope), err
    )


def moment_against_charge(moment_emu, charge_mAh, ewe_V, current_A, cycle, windows_V=None) -> list[MomentChange]:
    """ΔM/ΔQ per cycle and branch (charge, discharge) and, with ``windows_V`` (increasing edges,
    e.g. [0.01, 0.5, 1.0, 1.5, 3.0]), per voltage window of each branch.

    Each frame brings its own echem state (charge passed, Ewe, I, cycle at its exposure's
    midpoint); frames at rest (I = 0) belong to no branch.
    """
    m, q, e, i, c = (np.asarray(a, float) for a in (moment_emu, charge_mAh, ewe_V, current_A, cycle))
    ok = np.isfinite(m) & np.isfinite(q) & np.isfinite(e)
    edges = list(windows_V) if windows_V is not None else []
    if any(b <= a for a, b in zip(edges, edges[1:])):
        raise ValueError(f"voltage windows must be increasing edges, got {edges}")
    out: list[MomentChange] = []
    for cyc in np.unique(c[ok]).astype(int):
        for direction, sign in (("charge", 1), ("discharge", -1)):
            sel = ok & (c == cyc) & (np.sign(i) == sign)
            branch = _change(int(cyc), direction, None, q[sel], m[sel])
            if branch is None:
                continue
            out.append(branch)
            for lo, hi in zip(edges, edges[1:]):
                part = sel & (e >= lo) & (e < hi)
                change = _change(int(cyc), direction, (lo, hi), q[part], m[part])
                if change is not None:
                    out.append(change)
    return out
