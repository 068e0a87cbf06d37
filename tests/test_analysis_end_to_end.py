"""`operando analyse` on simulated runs: CV series on a bulk and an interfacial cell give their
b-values; the shipped short characterisation gives GITT D and EIS fits that match the cell."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from operando.acquisition.cli import main
from operando.acquisition.config import load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.analysis.eis import fit_spectrum
from operando.sim_devices.cell import SimCell
from operando.sim_devices.materials import preset

CHARACTERISATION = Path(__file__).parent / "protocols" / "characterisation_short.yaml"
PROFILE = Path(__file__).parents[1] / "config" / "profiles" / "sim.yaml"

# Realistic but fast rates within the profile's 10 mA (fe_li2o at 2 mg: ~7 mA at 2 mV/s).
CV_SERIES = {"bulk_micron": [0.5, 1.0, 2.0], "fe_li2o": [0.5, 1.0, 2.0]}


def _potentiostat_only_profile(tmp_path: Path, material: str) -> Path:
    """The sim profile with only its potentiostat, on ``material`` with that cell's window."""
    data = yaml.safe_load(PROFILE.read_text())
    p = preset(material)
    data["instruments"] = {"potentiostat": data["instruments"]["potentiostat"]}
    data["instruments"]["potentiostat"]["limits"].update(e_min_V=p.e_min_V, e_max_V=p.e_max_V)
    data["suspenders"] = []
    data["sample"]["sim_preset"] = data["sim"]["material"] = material
    data["sim"]["soc"] = 0.0  # empty, at the lower vertex (not as assembled): the CVs start there
    path = tmp_path / f"{material}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _cv_series(tmp_path: Path, material: str) -> Path:
    p = preset(material)
    # Both presets start empty, at their lower vertex: each scan goes up and back from there.
    steps = [
        {
            "kind": "cv",
            "e_start_V": p.e_min_V,
            "e_vertex1_V": p.e_max_V,
            "e_vertex2_V": p.e_min_V,
            "scan_rate_mV_s": rate,
            "cycles": 1,
        }
        for rate in CV_SERIES[material]
    ]
    path = tmp_path / f"cv_{material}.yaml"
    protocol = {"name": f"cv_{material}", "sampling": {"interval_s": 2.0}, "steps": steps}
    path.write_text(yaml.safe_dump(protocol))
    return path


def _analyse(capsys, *args) -> tuple[int, str, str]:
    rc = main(["analyse", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("material, b_lo, b_hi", [("bulk_micron", 0.4, 0.65), ("fe_li2o", 0.85, 1.1)])
def test_cv_series_b_value_tells_bulk_from_interfacial_storage(tmp_path, capsys, material, b_lo, b_hi):
    profile = load_profile(_potentiostat_only_profile(tmp_path, material))
    result = run_experiment(profile, load_protocol(_cv_series(tmp_path, material)), tmp_path, speed=20000, report=False)
    assert result.exit_status == "success"
    rc, out, _ = _analyse(capsys, result.uid, "--data", str(tmp_path), "--json")
    assert rc == 0
    cv = yaml.safe_load(out)["cv"]  # JSON is YAML
    assert cv["scan_rate_V_s"] == pytest.approx([r * 1e-3 for r in CV_SERIES[material]], rel=0.02)
    assert b_lo < cv["b_anodic"] < b_hi and b_lo < abs(cv["b_cathodic"]) < b_hi
    assert cv["b_anodic_stderr"] < 0.1
    # the interfacial cell's current is mostly capacitive, the bulk cell's mostly diffusive
    frac = cv["capacitive_fraction"][0]
    assert (frac > 0.7) if material == "fe_li2o" else (frac < 0.5)
    assert list((tmp_path / "reports").glob("*-analysis.png"))


def test_characterisation_gitt_and_eis_match_the_simulated_cell(tmp_path, capsys):
    profile = load_profile("sim")
    result = run_experiment(profile, load_protocol(CHARACTERISATION), tmp_path, speed=8000, report=False)
    assert result.exit_status == "success"
    cell = preset(profile.sample.sim_preset, profile.sample.active_mass_g)
    radius_um = cell.particle_radius_m * 1e6

    rc, out, _ = _analyse(capsys, "-1", "--data", str(tmp_path), "--json", "--diffusion-length-um", str(radius_um))
    assert rc == 0
    report = yaml.safe_load(out)
    (pulses,) = report["gitt"].values()
    assert len(pulses) == 4
    for p in pulses:  # Weppner-Huggins recovers the cell's D within a factor ~1.5
        assert cell.diffusion_m2_s / 1.5 < p["D_m2_s"] < cell.diffusion_m2_s * 1.5
    assert [p["ocv_V"] for p in pulses] == sorted((p["ocv_V"] for p in pulses), reverse=True)
    assert len(report["eis"]) == 3  # PEIS before formation, final PEIS, GEIS
    for fit in report["eis"].values():
        assert fit["R_ohm"]["value"] == pytest.approx(cell.r_ohm, rel=0.03)
    # two rates in the CV series: b with no standard error
    assert report["cv"]["b_anodic_stderr"] is None

    rc, out, _ = _analyse(capsys, "-1", "--data", str(tmp_path))  # the table
    assert rc == 0 and "R_ohm" in out and "ohm" in out and "D/L2 s-1" in out


def test_a_run_with_nothing_to_analyse_is_named_with_what_is_missing(tmp_path, capsys):
    protocol = tmp_path / "rest.yaml"
    protocol.write_text(
        yaml.safe_dump(
            {
                "name": "rest",
                "steps": [
                    {"kind": "rest", "duration_min": 2},
                    {"kind": "cv", "e_start_V": 0.01, "e_vertex1_V": 0.5, "e_vertex2_V": 0.01, "scan_rate_mV_s": 2},
                ],
            }
        )
    )
    result = run_experiment(
        load_profile(_potentiostat_only_profile(tmp_path, "fe_li2o")),
        load_protocol(protocol),
        tmp_path,
        speed=20000,
        report=False,
    )
    rc, out, err = _analyse(capsys, result.uid, "--data", str(tmp_path))
    assert rc == 2 and out == ""
    assert f"run {result.uid[:8]}" in err and "no cv steps at two or more scan rates" in err
    assert "no gitt step" in err and "no impedance stream" in err


def test_eis_fit_finds_the_cell_resistances_where_its_semicircle_is_in_the_band():
    # The simulated cell's own small-signal spectrum, relaxed at half charge (no stored run: a
    # run's spectra carry measurement noise and, after cycling, the particles' gradients).
    # bulk: R_ct C ~ 0.6 s. (composite's semicircle overlaps its diffusion arc: R_ct comes out
    # 11 % low; fe_li2o's R_ct C ~ 35 s puts it below 0.01 Hz.)
    p = preset("bulk", 2e-3)
    cell = SimCell(p, soc=0.5)
    cell.relax(3600.0)
    f = 1e4 * (1e-2 / 1e4) ** (np.arange(37) / 36)
    z = cell.impedance(f)
    fit = fit_spectrum(f, z.real, z.imag)
    assert fit.value("R_ohm") == pytest.approx(p.r_ohm, rel=0.01)
    assert fit.value("R_ct") == pytest.approx(p.r_ct_ohm, rel=0.05)
    assert fit.error("R_ct") < 0.05 * p.r_ct_ohm
