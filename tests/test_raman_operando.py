"""Raman done-when (issue 14): an operando run on the simulated lab stores ≥ 100 dark-corrected
spectra with their axis, exposure, dark and each frame's echem state, and `operando analyse`
tracks the bands — positions within 0.5 cm⁻¹ of the simulator's, and the lattice band's shift
against state of charge. Through the command line, on the virtual clock (deterministic)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from operando.acquisition.cli import main as cli
from operando.sim_devices.materials import preset
from operando.storage.catalog import open_catalog
from operando.storage.runs import find_run

BANDS = {"lattice": 505.0, "M-O-M": 880.0, "M-O-C": 1010.0, "D": 1350.0, "G": 1590.0}  # the simulator's
LATTICE_SHIFT_PER_SOC = -6.0  # sim_devices/raman.py: 505 - 6·SOC
MASS_G = 0.002

PROFILE = {
    "name": "raman-operando",
    "instruments": {
        "potentiostat": {
            "kind": "potentiostat",
            "backend": "sim",
            "limits": {"e_min_V": 0.01, "e_max_V": 3.0, "i_max_A": 0.01},
            "settings": {"sample_interval_s": 5.0},
        },
        "raman": {
            "kind": "raman",
            "backend": "sim",
            "settings": {"exposure_s": 5, "accumulations": 2, "period_s": 60, "dark": "on_exposure_change"},
        },
    },
    "sample": {
        "name": "raman-01",
        "material": "Fe3O4",
        "sim_preset": "fe_li2o",
        "active_mass_g": MASS_G,
        "theoretical_capacity_mAh_g": 926,
        "electrolyte": "-",
        "cell_type": "in-situ Raman cell",
        "operator": "test",
    },
    # empty (not as assembled): one charge crosses the whole window, and soc = charge / nominal
    "sim": {"material": "fe_li2o", "speed": 20000, "seed": 0, "clock": "virtual", "soc": 0.0},
}
PROTOCOL = {
    "name": "charge",
    "steps": [{"kind": "cc", "c_rate": 0.5, "e_max_V": 3.0, "max_duration_h": 2.5}],
}


def test_an_operando_run_stores_dark_corrected_spectra_and_the_bands_are_tracked(tmp_path, capsys):
    (tmp_path / "profile.yaml").write_text(yaml.safe_dump(PROFILE))
    (tmp_path / "protocol.yaml").write_text(yaml.safe_dump(PROTOCOL))
    data = str(tmp_path / "data")
    run = ["run", str(tmp_path / "protocol.yaml"), "--profile", str(tmp_path / "profile.yaml")]
    assert cli([*run, "--data", data, "--quiet", "--no-report"]) == 0
    with open_catalog(data) as cat:
        stored = find_run(cat.client, "-1")
        s = stored["raman"]
        spectra = np.asarray(s["raman-spectrum"].read())
        darks = np.asarray(s["raman-dark"].read())
        charge = np.asarray(s["frame-charge"].read())
        ewe = np.asarray(s["frame-Ewe"].read())
        config = stored["raman"].metadata["configuration"]["raman"]["data"]
    n = spectra.shape[0]
    assert n >= 100
    assert np.all(np.isfinite(ewe)) and np.all(np.diff(charge) > 0)  # each frame's own state
    assert len(config["raman-raman_shift"]) == spectra.shape[1] and config["raman-exposure_time"] == 5
    # dark-corrected: the dark (≈ 2 counts/s x 10 s per pixel) is stored and was subtracted
    assert darks.shape == spectra.shape and np.median(darks) == pytest.approx(20.0, rel=0.3)

    capsys.readouterr()
    bands = ",".join(f"{c:g}" for c in BANDS.values())
    assert cli(["analyse", "-1", "--data", data, "--raman-bands", bands, "--json"]) == 0
    raman = json.loads(capsys.readouterr().out)["raman"]
    soc0, q_nom = 0.0, preset("fe_li2o", active_mass_g=MASS_G).nominal_capacity_mAh
    soc = soc0 + charge / q_nom  # the simulated cell's state of charge at each frame
    fitted = {name: np.array(raman["bands"][f"band {c:g}"]["centre_cm1"], float) for name, c in BANDS.items()}
    for name, centre in BANDS.items():
        assert np.isfinite(fitted[name]).all(), name
        truth = centre + (LATTICE_SHIFT_PER_SOC * soc if name == "lattice" else 0.0)
        assert np.abs(fitted[name] - truth).max() < 0.5, name
    slope = np.polyfit(soc, fitted["lattice"], 1)[0]
    assert slope == pytest.approx(LATTICE_SHIFT_PER_SOC, abs=0.5)
    assert np.ptp(fitted["lattice"]) > 3.0  # the shift is there, not a flat line
