"""The electrode's magnetism as functions of field, temperature and electrochemical state.

What is modelled (per mole of Fe in the electrode, Fe/Li2O from an iron oxide, review §4.4):

- Curie–Weiss paramagnetism, chi = C / (T - theta). The Curie constant follows the review: about
  1.5 cm3 K mol-1 in the pristine electrode, at 0.01 V and back up to 1.3 V, rising to 1.82 at
  3 V. Between 1.3 V and 3 V it rises along a smoothstep in the interface potential (flat at
  both ends). Guessed: the shape of that rise, theta (-10 K) and that the paramagnetic part is
  carried by all of the Fe whatever its phase.
- "Pristine" is a cell whose rest potential has never been at or below ``lithiated_below_V``
  (1.3 V: below it the oxide has converted to Fe/Li2O); a cell made at a low state of charge is
  lithiated from the start.
- Superparamagnetic metallic Fe formed on lithiation: Langevin L(mu_p B / k T), saturating with
  field, no blocking (so ZFC and FC branches coincide; a guessed simplification).
"""

from __future__ import annotations

import math

MU_B_EMU = 9.2740100783e-21  # Bohr magneton, erg/G = emu
MU_B_J_T = 9.2740100783e-24  # J/T
K_B = 1.380649e-23  # J/K


def langevin(xi: float) -> float:
    """L(xi) = coth(xi) - 1/xi (odd; xi/3 near zero)."""
    if abs(xi) < 1e-4:
        return xi / 3.0
    return 1.0 / math.tanh(xi) - 1.0 / xi


def superparamagnetic_alignment(particle_moment_muB: float, field_T: float, temperature_K: float) -> float:
    """Mean alignment (−1..1) of particles of ``particle_moment_muB`` at ``field_T``, ``temperature_K``."""
    return langevin(particle_moment_muB * MU_B_J_T * field_T / (K_B * temperature_K))


def smoothstep(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


class CurieConstantModel:
    """C (cm3 K mol-1 of Fe) against the interface potential and whether the cell was lithiated."""

    def __init__(
        self,
        low_cm3K_mol: float = 1.5,
        high_cm3K_mol: float = 1.82,
        rise_from_V: float = 1.3,
        rise_to_V: float = 3.0,
        lithiated_below_V: float = 1.3,
    ):
        if not rise_to_V > rise_from_V:
            raise ValueError("rise_to_V must be above rise_from_V")
        self.low = low_cm3K_mol
        self.high = high_cm3K_mol
        self.rise_from_V = rise_from_V
        self.rise_to_V = rise_to_V
        self.lithiated_below_V = lithiated_below_V

    def __call__(self, potential_V: float, lowest_potential_V: float) -> float:
        if lowest_potential_V > self.lithiated_below_V:  # pristine: never converted
            return self.low
        u = (potential_V - self.rise_from_V) / (self.rise_to_V - self.rise_from_V)
        return self.low + (self.high - self.low) * smoothstep(u)
