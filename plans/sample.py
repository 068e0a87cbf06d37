"""The sample under test: its mass and capacity turn C-rates and A/g into amps.

It lives in the plans layer because plans need it and nothing below acquisition may import
acquisition; the profile (``acquisition/config.py``) holds one.
"""

from __future__ import annotations

from typing import Optional

from pydantic import Field, PositiveFloat

from operando.devices.configuration import StrictModel


class Sample(StrictModel):
    """The cell under test; its mass and specific capacity turn C-rates and A/g into amps."""

    name: str = Field(min_length=1)
    material: str  # free text, e.g. "Fe3O4 (Fe/Li2O conversion)"
    sim_preset: Optional[str] = None  # simulator material preset standing in for this sample
    active_mass_g: PositiveFloat
    theoretical_capacity_mAh_g: PositiveFloat
    electrolyte: str
    cell_type: str
    operator: str
    # mol of the magnetic ion per gram of active material (Fe in Fe2O3: 2/159.69), for Curie
    # constants per mole (analysis/magnetometry.py)
    magnetic_ion_mol_per_g: Optional[PositiveFloat] = None
    notes: Optional[str] = None
    tags: list[str] = []

    @property
    def capacity_mAh(self) -> float:
        return self.active_mass_g * self.theoretical_capacity_mAh_g
