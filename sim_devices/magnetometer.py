"""Magnetic moment of the electrode as a SQUID-VSM would measure it, from the SimCell state.

Three contributions (conversion electrode picture, e.g. Fe/Li2O from an iron oxide; the
functions and what is guessed are in ``magnetism.py``):
- Curie-Weiss paramagnetism of the electrode's Fe, C / (T - theta) per mole of Fe, with the
  Curie constant following the electrochemical state as the review reports (1.5 cm3 K mol-1
  pristine, at 0.01 V and back to 1.3 V; 1.82 at 3 V);
- superparamagnetic metallic Fe nanoparticles formed by conversion (the discharged fraction),
  Langevin in field and temperature;
- a reversible drop as spin-polarised electrons fill the Fe/Li2O space-charge store: each
  electron stored at the interface (low potential) cancels ``spin_polarisation`` Bohr magnetons.
"""

from __future__ import annotations

import math

import numpy as np

from .cell import SimCell
from .magnetism import MU_B_EMU, CurieConstantModel, superparamagnetic_alignment

ELECTRON_C = 1.602176634e-19
FE_G_MOL = 55.845


class SimMagnetometerPhysics:
    def __init__(
        self,
        cell: SimCell,
        seed: int = 0,
        *,
        fe_mol_per_g: float = 2.0 / 159.69,  # Fe2O3 precursor
        curie: CurieConstantModel | None = None,  # C against state: 1.5 ... 1.82 (review)
        weiss_theta_K: float = -10.0,
        fe_ms_emu_g: float = 150.0,  # nanoparticle Fe, below bulk 218 emu/g
        particle_moment_muB: float = 3000.0,  # ~3 nm Fe particles
        spin_polarisation: float = 0.15,
        diamagnetic_emu_Oe: float = -2e-9,  # holder and electrolyte
        white_noise_emu_sqrt_s: float = 3.94e-7,  # white part: 1.25 µemu at 0.1 s
        noise_floor_emu: float = 1.0e-7,  # drift/vibration floor: 0.16 µemu at 10 s
    ):
        self._cell = cell
        self._rng = np.random.default_rng(seed)
        self._fe_mol = fe_mol_per_g * cell.params.active_mass_g
        self.curie = curie or CurieConstantModel()
        self._theta = weiss_theta_K
        self._ms = fe_ms_emu_g
        self._mu_p = particle_moment_muB
        self._polarisation = spin_polarisation
        self._dia = diamagnetic_emu_Oe
        self._white = white_noise_emu_sqrt_s
        self._floor = noise_floor_emu

    def noise_sigma_emu(self, averaging_s: float) -> float:
        """VSM noise: white (1/sqrt(averaging)) over a floor; 1.25 µemu at 0.1 s, 0.16 at 10 s.

        Pure 1/sqrt scaling from 1.25 µemu at 0.1 s would give 0.125 µemu at 10 s, below the
        0.16 µemu quoted for real instruments, hence the floor.
        """
        return math.sqrt(self._white**2 / averaging_s + self._floor**2)

    @property
    def fe_mol(self) -> float:
        """Moles of Fe in the electrode (what the Curie constant is per)."""
        return self._fe_mol

    @property
    def weiss_theta_K(self) -> float:
        return self._theta

    @property
    def particle_moment_muB(self) -> float:
        return self._mu_p

    def curie_constant_cm3K_mol(self) -> float:
        """The Curie constant of the present cell state, cm3 K per mole of Fe."""
        cell = self._cell
        return self.curie(cell.rest_potential_V, cell.lowest_rest_potential_V)

    def clean_moment_emu(self, field_T: float, temperature_K: float) -> float:
        """Noise-free moment of the present cell state."""
        oxide = min(max(self._cell.bulk_stoichiometry, 0.0), 1.0)
        metal = 1.0 - oxide
        field_Oe = field_T * 1e4
        chi_mol = self.curie_constant_cm3K_mol() / max(temperature_K - self._theta, 1e-3)  # emu/(mol Oe)
        para = self._fe_mol * chi_mol * field_Oe
        alignment = superparamagnetic_alignment(self._mu_p, field_T, temperature_K)
        ferro = self._ms * self._fe_mol * metal * FE_G_MOL * alignment
        cell = self._cell
        stored_e = (cell.interfacial_capacity_mAh - cell.interfacial_charge_mAh) * 3.6 / ELECTRON_C
        drop = self._polarisation * max(stored_e, 0.0) * MU_B_EMU * metal * alignment
        return para + ferro - drop + self._dia * field_Oe

    def moment_emu(self, field_T: float, temperature_K: float, averaging_s: float) -> float:
        if not averaging_s > 0:
            raise ValueError(f"averaging_s must be > 0, got {averaging_s!r}")
        noise = self._rng.normal(0.0, self.noise_sigma_emu(averaging_s))
        return self.clean_moment_emu(field_T, temperature_K) + float(noise)
