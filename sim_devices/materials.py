"""Material presets for the simulated cell, from bulk-dominated to interface-dominated."""

from __future__ import annotations

from collections.abc import Callable

from .cell_parameters import CellParameters, OcvCurve, SpaceCharge


def _space_charge(
    capacity_mAh_g: float,
    interface_share: float,
    window_V: float,
    debye_length_m: float,
    epsilon_r: float,
    particle_size_m: float,
) -> SpaceCharge:
    """Space charge whose interface area holds ``interface_share`` of the capacity.

    The area per gram comes out large because this linear capacitor stands for the whole
    interfacial store (spin-polarised electrons, adsorbed ions) across the window.
    """
    sc = SpaceCharge(
        debye_length_m=debye_length_m,
        epsilon_r=epsilon_r,
        interface_area_m2_g=1.0,
        layer_thickness_m=particle_size_m,
    )
    share_C_g = interface_share * capacity_mAh_g * 3.6
    area = share_C_g / window_V / (sc.areal_capacitance_F_m2)
    return sc.model_copy(update={"interface_area_m2_g": area})


def _bulk(active_mass_g: float) -> CellParameters:
    # LiFePO4-like two-phase reference: flat plateau at ~3.43 V, almost no interfacial storage.
    return CellParameters(
        material="bulk",
        active_mass_g=active_mass_g,
        capacity_mAh_g=160.0,
        interface_share=0.02,
        ocv=OcvCurve(e0_V=3.43, slope_V=0.05, n_ideal=0.4, end_amp_V=1.0, end_width=0.015),
        e_min_V=2.5,
        e_max_V=4.2,  # as assembled: fully lithiated, i.e. discharged (as_assembled_V None)
        space_charge=_space_charge(160.0, 0.02, 1.7, 5e-9, 10.0, 200e-9),
        particle_radius_m=100e-9,
        diffusion_m2_s=5e-17,  # R^2/D = 200 s
        n_shells=12,
        shell_grading=1.15,  # resolves the diffusion layer under the surface in fast sweeps
        r_ct_ohm=40.0,
        r_ohm=15.0,
        double_layer_F_g=0.2,
    )


def _bulk_micron(active_mass_g: float) -> CellParameters:
    # The bulk reference made of 10 um particles with slow solid-state diffusion (R^2/D ~ 7 h):
    # the diffusion-limited case (CV peak current ~ v^1/2; low capacity at high C-rates).
    return _bulk(active_mass_g).model_copy(
        update={
            "material": "bulk_micron",
            "space_charge": _space_charge(160.0, 0.02, 1.7, 5e-9, 10.0, 10e-6),
            "particle_radius_m": 5e-6,
            "diffusion_m2_s": 1e-15,
            "n_shells": 24,
            "shell_grading": 1.3,
        }
    )


def _composite(active_mass_g: float) -> CellParameters:
    # Nanocomposite (anatase-TiO2/graphene-like): an intercalation plateau near 1.85 V plus a
    # third of the capacity stored at the oxide/carbon interface.
    return CellParameters(
        material="composite",
        active_mass_g=active_mass_g,
        capacity_mAh_g=250.0,
        interface_share=0.35,
        ocv=OcvCurve(e0_V=1.85, slope_V=0.25, n_ideal=0.6, end_amp_V=0.8, end_width=0.03),
        e_min_V=1.0,
        e_max_V=3.0,
        as_assembled_V=2.6,  # the oxide as made holds no lithium: fully charged in this convention
        space_charge=_space_charge(250.0, 0.35, 2.0, 2e-9, 30.0, 40e-9),
        particle_radius_m=20e-9,
        diffusion_m2_s=1e-18,  # R^2/D = 400 s
        r_ct_ohm=30.0,
        r_ohm=12.0,
        double_layer_F_g=0.2,
    )


def _fe_li2o(active_mass_g: float) -> CellParameters:
    # Fe/Li2O conversion electrode (from an iron oxide): sloping profile, with the "extra"
    # capacity held as spin-polarised space charge at the Fe/Li2O interfaces.
    return CellParameters(
        material="fe_li2o",
        active_mass_g=active_mass_g,
        capacity_mAh_g=1000.0,
        interface_share=0.6,
        ocv=OcvCurve(e0_V=1.4, slope_V=1.2, n_ideal=2.0, end_amp_V=1.2, end_width=0.03),
        e_min_V=0.01,
        e_max_V=3.0,
        as_assembled_V=2.9,  # the iron oxide as made, against lithium, before its first discharge
        space_charge=_space_charge(1000.0, 0.6, 2.99, 1e-9, 60.0, 10e-9),
        particle_radius_m=5e-9,
        diffusion_m2_s=1e-19,  # R^2/D = 250 s
        r_ct_ohm=25.0,
        r_ohm=10.0,
        double_layer_F_g=0.2,
    )


PRESETS: dict[str, Callable[[float], CellParameters]] = {
    "bulk": _bulk,
    "bulk_micron": _bulk_micron,
    "composite": _composite,
    "fe_li2o": _fe_li2o,
}


def preset(name: str, active_mass_g: float = 1e-3) -> CellParameters:
    """Parameters of a named material for an electrode of ``active_mass_g`` grams."""
    try:
        make = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown cell preset {name!r}; choose one of {sorted(PRESETS)}") from None
    return make(active_mass_g)
