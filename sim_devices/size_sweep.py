"""Capacity against particle (or layer) thickness l: the review's three regimes (its Figure 1f).

Each thickness is the same material made with ``CellParameters.with_particle_size``; its
charge per interface area is what a potential step from e_min_V to e_max_V stores once held to
equilibrium. Thick particles store in the bulk (Q ∝ l¹ per interface area); in the nanoscale
window the space-charge zones sit inside each particle and the charge per interface no longer
depends on l (l⁰); below about two Debye lengths the two zones of a layer overlap and the width
that sets the capacitance is l/2 (l⁻¹).

    python -m operando.sim_devices.size_sweep --figure docs/particle-size-regimes.png
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from .cell import SimCell
from .cell_parameters import CellParameters
from .materials import preset

# The regimes' windows of l (m) for the fitted slopes, and the slopes the review's picture has.
REGIMES = {
    "space charges overlap": ((0.05e-9, 0.5e-9), -1.0),
    "interfacial": ((3e-9, 30e-9), 0.0),
    "bulk": ((5e-6, 50e-6), 1.0),
}


def interface_dominated(material: str = "fe_li2o") -> CellParameters:
    """The preset as an interface-dominated composite (the phases alone store 2 % at l = 10 nm)."""
    return preset(material).model_copy(update={"interface_share": 0.98})


def capacity_per_interface_area(p: CellParameters) -> float:
    """Charge (C per m² of interface) a step e_min -> e_max stores, held to equilibrium."""
    cell = SimCell(p, soc=0.0)
    trace = cell.run_potential(p.e_max_V, np.geomspace(1e-3, 1e13, 200), max_step_s=math.inf)
    if abs(trace.current_A[-1]) >= 1e-9:
        raise RuntimeError(f"not at equilibrium after the hold: {trace.current_A[-1]:.3g} A still flows")
    area = p.space_charge.interface_area_m2_g * p.active_mass_g
    return trace.charge_mAh[-1] * 3.6 / area


def thickness_sweep(p: CellParameters, lengths_m: np.ndarray) -> np.ndarray:
    return np.array([capacity_per_interface_area(p.with_particle_size(float(length))) for length in lengths_m])


def regime_slopes(lengths_m: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """Least-squares slope of log Q against log l inside each regime's window."""
    log_l, log_q = np.log(lengths_m), np.log(q)
    slopes = {}
    for name, ((lo, hi), _expected) in REGIMES.items():
        sel = (lengths_m >= lo) & (lengths_m <= hi)
        if sel.sum() < 3:
            raise ValueError(f"{name}: fewer than 3 thicknesses in {lo:g}..{hi:g} m")
        slopes[name] = float(np.polyfit(log_l[sel], log_q[sel], 1)[0])
    return slopes


def default_lengths() -> np.ndarray:
    return np.geomspace(0.05e-9, 50e-6, 19)


def write_figure(path: Path, lengths_m: np.ndarray, q: np.ndarray, slopes: dict[str, float]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.loglog(lengths_m * 1e9, q, "o-", color="C0")
    for (name, ((lo, hi), expected)), colour in zip(REGIMES.items(), ("C3", "C2", "C1")):
        ax.axvspan(lo * 1e9, hi * 1e9, color=colour, alpha=0.12)
        ax.text(
            math.sqrt(lo * hi) * 1e9, q.max() * 2.2, f"{name}\nslope {slopes[name]:+.2f}\n(review: {expected:+.0f})",
            ha="center", va="bottom", fontsize=7,
        )  # fmt: skip
    ax.set(xlabel="particle / layer thickness l (nm)", ylabel="charge per interface area (C m$^{-2}$)")
    ax.set_ylim(q.min() / 2, q.max() * 12)
    ax.set_title("Simulated Fe/Li$_2$O composite: capacity against thickness (review Fig. 1f)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--material", default="fe_li2o")
    parser.add_argument("--figure", type=Path, help="write the figure (PNG) here")
    args = parser.parse_args(argv)
    lengths = default_lengths()
    q = thickness_sweep(interface_dominated(args.material), lengths)
    slopes = regime_slopes(lengths, q)
    for name, slope in slopes.items():
        print(f"{name:32s} slope {slope:+.3f} (review: {REGIMES[name][1]:+.0f})")
    if args.figure:
        print(write_figure(args.figure, lengths, q, slopes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
