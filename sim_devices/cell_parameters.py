"""Parameters of the simulated cell: open-circuit curve, transport, interface, resistances.

Stoichiometry convention: ``x`` is the charged fraction of the bulk (0 = fully discharged,
1 = fully charged), so the open-circuit voltage rises with ``x`` and current > 0 raises ``x``.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

FARADAY = 96485.33212  # C/mol
GAS_CONSTANT = 8.314462618  # J/(mol K)
T_REF_K = 298.15
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


class CellParameters(BaseModel):
    """One simulated electrode (working electrode vs a Li counter/reference)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    material: str
    active_mass_g: PositiveFloat
    capacity_mAh_g: PositiveFloat  # total reversible capacity in the voltage window
    interface_share: float = Field(ge=0.0, lt=1.0)  # part of it stored capacitively at interfaces
    ocv: OcvCurve
    e_min_V: float
    e_max_V: float
    particle_radius_m: PositiveFloat
    diffusion_m2_s: PositiveFloat
    n_shells: int = Field(default=8, ge=3, le=30)
    r_ct_ohm: PositiveFloat  # charge-transfer resistance at T_REF_K (linearised Butler-Volmer)
    r_ohm: PositiveFloat  # electrolyte + contacts
    temperature_K: PositiveFloat = T_REF_K

    @model_validator(mode="after")
    def _window(self) -> "CellParameters":
        if not self.e_max_V > self.e_min_V:
            raise ValueError(f"e_max_V ({self.e_max_V}) must exceed e_min_V ({self.e_min_V})")
        return self

    @property
    def nominal_capacity_mAh(self) -> float:
        """Charge between e_min_V and e_max_V at a slow rate: the basis of C-rates."""
        return self.capacity_mAh_g * self.active_mass_g

    @property
    def bulk_capacity_C(self) -> float:
        return (1.0 - self.interface_share) * self.nominal_capacity_mAh * 3.6

    @property
    def interfacial_capacitance_F(self) -> float:
        """Space-charge store sized so it holds its share of the capacity across the window."""
        share_C = self.interface_share * self.nominal_capacity_mAh * 3.6
        return max(share_C, 1e-12) / (self.e_max_V - self.e_min_V)

    @property
    def r_ct_at_temperature_ohm(self) -> float:
        # linearised Butler-Volmer: R_ct = RT / (F i0), i0 held constant
        return self.r_ct_ohm * self.temperature_K / T_REF_K

    def c_rate_current_A(self, c_rate: float) -> float:
        return c_rate * self.nominal_capacity_mAh * 1e-3
