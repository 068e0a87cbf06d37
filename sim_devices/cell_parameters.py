"""Parameters of the simulated cell: open-circuit curve, transport, interface, resistances.

Stoichiometry convention: ``x`` is the charged fraction of the bulk (0 = fully discharged,
1 = fully charged), so the open-circuit voltage rises with ``x`` and current > 0 raises ``x``.

Interfacial (space-charge) storage, when ``space_charge`` is given, is sized physically: a
capacitance per interface area eps0 eps_r / w, with w the space-charge width (the Debye length
while the phase between two interfaces is thick; half its thickness once the two space-charge
zones overlap), times the interface area per gram. Without it, ``interface_share`` of
``capacity_mAh_g`` sizes the store directly (older parameter sets).
"""

from __future__ import annotations

import math
from typing import ClassVar, Optional

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

FARADAY = 96485.33212  # C/mol
GAS_CONSTANT = 8.314462618  # J/(mol K)
T_REF_K = 298.15
EPSILON_0 = 8.8541878128e-12  # F/m
EV_PER_K = 8.617333262e-5  # Boltzmann constant, eV/K
X_EPS = 1e-9  # keeps the logarithmic terms finite at the ends of the stoichiometry range


class OcvCurve(BaseModel):
    """Bulk open-circuit voltage U(x), a smooth monotonic function of the charged fraction x.

    U = e0 + slope (x - 1/2) + n_ideal RT/F ln(x / (1 - x))
        + end_amp [exp((x - 1)/end_width) - exp(-x/end_width)] + sum a tanh((x - c)/w)

    The ideal-solution log term sets the plateau's tilt, the exponential end terms the sharp
    rise/fall when the host runs out of sites, the tanh steps any staging.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    e0_V: float
    slope_V: float = 0.0
    n_ideal: float = 1.0
    end_amp_V: float = 0.5
    end_width: PositiveFloat = 0.02
    steps: tuple[tuple[float, float, PositiveFloat], ...] = ()  # (amplitude V, centre, width)

    def value_and_slope(self, x: float, temperature_K: float) -> tuple[float, float]:
        """U(x) and dU/dx; x is clamped into (0, 1) so the curve stays finite."""
        x = min(max(x, X_EPS), 1.0 - X_EPS)
        kt = self.n_ideal * GAS_CONSTANT * temperature_K / FARADAY
        w = self.end_width
        e_hi = self.end_amp_V * math.exp((x - 1.0) / w)
        e_lo = self.end_amp_V * math.exp(-x / w)
        u = self.e0_V + self.slope_V * (x - 0.5) + kt * math.log(x / (1.0 - x)) + e_hi - e_lo
        du = self.slope_V + kt / (x * (1.0 - x)) + (e_hi + e_lo) / w
        for amp, centre, width in self.steps:
            th = math.tanh((x - centre) / width)
            u += amp * th
            du += amp * (1.0 - th * th) / width
        return u, du


class SpaceCharge(BaseModel):
    """Space-charge storage at heterointerfaces (e.g. Li+ in Li2O facing e- in Fe)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    debye_length_m: float = Field(ge=1e-10, le=1e-7)  # 1-10 nm in the review
    epsilon_r: PositiveFloat
    interface_area_m2_g: PositiveFloat  # interface density: area per gram of active material
    layer_thickness_m: PositiveFloat | None = None  # phase between interfaces; None: >> Debye

    OVERLAP_SHARPNESS: ClassVar[float] = 4.0  # how sharply w turns from Debye length to l/2

    @property
    def width_m(self) -> float:
        """Space-charge width: the Debye length, or l/2 once the two zones overlap."""
        lam = self.debye_length_m
        if self.layer_thickness_m is None:
            return lam
        p = self.OVERLAP_SHARPNESS
        return (lam**-p + (0.5 * self.layer_thickness_m) ** -p) ** (-1.0 / p)

    @property
    def areal_capacitance_F_m2(self) -> float:
        return EPSILON_0 * self.epsilon_r / self.width_m

    @property
    def capacitance_F_g(self) -> float:
        return self.areal_capacitance_F_m2 * self.interface_area_m2_g


class CellParameters(BaseModel):
    """One simulated electrode (working electrode vs a Li counter/reference)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    material: str
    active_mass_g: PositiveFloat
    capacity_mAh_g: PositiveFloat  # reversible capacity in the voltage window (see nominal)
    interface_share: float = Field(ge=0.0, lt=1.0)  # part of it stored capacitively at interfaces
    space_charge: SpaceCharge | None = None  # sizes the interfacial store physically if given
    ocv: OcvCurve
    e_min_V: float
    e_max_V: float
    particle_radius_m: PositiveFloat
    diffusion_m2_s: PositiveFloat
    n_shells: int = Field(default=8, ge=3, le=40)
    shell_grading: float = Field(default=1.0, ge=1.0, le=2.0)  # >1: thinner shells at the surface
    r_ct_ohm: PositiveFloat  # charge-transfer resistance RT/(F i0) at T_REF_K (Butler-Volmer)
    r_ohm: PositiveFloat  # electrolyte + contacts
    double_layer_F_g: float = Field(default=0.0, ge=0.0)  # electrode/electrolyte double layer
    temperature_K: PositiveFloat = T_REF_K
    ea_diffusion_eV: float = Field(default=0.35, ge=0.0)  # Arrhenius activation of D
    ea_charge_transfer_eV: float = Field(default=0.5, ge=0.0)  # Arrhenius activation of i0
    # Rest potential of the electrode as assembled, before any current (a conversion electrode
    # against lithium rests near 3 V); None: assembled empty, at e_min_V.
    as_assembled_V: Optional[float] = None
    # Lithium plating below 0 V vs Li: exchange current density of Li/Li+ on the electrode,
    # times its area, as a charge-transfer resistance RT/(F i0) (small: plating is fast).
    r_plating_ohm: PositiveFloat = 5.0

    @model_validator(mode="after")
    def _window(self) -> CellParameters:
        if not self.e_max_V > self.e_min_V:
            raise ValueError(f"e_max_V ({self.e_max_V}) must exceed e_min_V ({self.e_min_V})")
        if self.as_assembled_V is not None and not self.e_min_V <= self.as_assembled_V <= self.e_max_V:
            raise ValueError(f"as_assembled_V ({self.as_assembled_V}) must lie in e_min_V..e_max_V")
        return self

    @property
    def nominal_capacity_mAh(self) -> float:
        """Bulk plus interfacial charge between e_min_V and e_max_V: the basis of C-rates.

        Equals ``capacity_mAh_g`` x mass unless ``space_charge`` sizes the interface otherwise.
        """
        window = self.e_max_V - self.e_min_V
        return self.bulk_capacity_C / 3.6 + self.interfacial_capacitance_F * window / 3.6

    @property
    def bulk_capacity_C(self) -> float:
        return (1.0 - self.interface_share) * self.capacity_mAh_g * self.active_mass_g * 3.6

    @property
    def interfacial_capacitance_F(self) -> float:
        """Space-charge store: physical if ``space_charge`` is given, else its share across the window."""
        if self.space_charge is not None:
            return self.space_charge.capacitance_F_g * self.active_mass_g
        share_C = self.interface_share * self.capacity_mAh_g * self.active_mass_g * 3.6
        return max(share_C, 1e-12) / (self.e_max_V - self.e_min_V)

    @property
    def double_layer_F(self) -> float:
        return self.double_layer_F_g * self.active_mass_g

    def r_ct_at(self, temperature_K: float) -> float:
        """Charge-transfer resistance RT/(F i0(T)), i0 Arrhenius-activated."""
        return self.r_ct_ohm * temperature_K / T_REF_K * _arrhenius(self.ea_charge_transfer_eV, T_REF_K, temperature_K)

    def diffusion_at(self, temperature_K: float) -> float:
        return self.diffusion_m2_s / _arrhenius(self.ea_diffusion_eV, T_REF_K, temperature_K)

    @property
    def r_ct_at_temperature_ohm(self) -> float:
        return self.r_ct_at(self.temperature_K)

    def with_particle_size(self, thickness_m: float) -> CellParameters:
        """The same material made of particles (or layers) ``thickness_m`` thick.

        Radius = thickness / 2; interface area per gram scales as 1/thickness, and the
        space-charge zones see the new thickness (they overlap below ~2 Debye lengths).
        """
        update: dict = {"particle_radius_m": 0.5 * thickness_m}
        sc = self.space_charge
        if sc is not None:
            ref = sc.layer_thickness_m or 2.0 * self.particle_radius_m
            update["space_charge"] = sc.model_copy(
                update={
                    "interface_area_m2_g": sc.interface_area_m2_g * ref / thickness_m,
                    "layer_thickness_m": thickness_m,
                }
            )
        return self.model_copy(update=update)

    def c_rate_current_A(self, c_rate: float) -> float:
        return c_rate * self.nominal_capacity_mAh * 1e-3


def _arrhenius(ea_eV: float, t_ref_K: float, t_K: float) -> float:
    """Factor by which a rate activated by ``ea_eV`` is *slower* at t_K than at t_ref_K."""
    return math.exp(ea_eV / EV_PER_K * (1.0 / t_K - 1.0 / t_ref_K))
