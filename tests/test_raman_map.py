"""Raman line and area maps on a (simulated) stage: stored with their coordinates, the map's
band areas following the simulated electrode's interface domains; travel checked before any
move; the same Lab code from IPython and from the shell."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from bluesky.utils import FailedStatus

from operando.acquisition.cli import main as cli
from operando.acquisition.config import PROFILES_DIR, load_profile
from operando.acquisition.ipython import open_lab
from operando.analysis.run_analysis import analyse_run, analysis_json
from operando.devices.configuration import ConfigError
from operando.sim_devices.raman import interface_coverage_at
from operando.storage.catalog import open_catalog
from operando.storage.runs import find_run

MOC_CM1 = 1010.0  # the simulator's metal-oxygen-carbon interface band


@pytest.fixture
def lab(tmp_path):
    lab = open_lab("raman-map-sim", data=tmp_path / "data")
    yield lab
    lab.close()


def _band_areas(run, near_cm1: float) -> np.ndarray:
    out = analysis_json(analyse_run(run, raman_bands_cm1=[505.0, 880.0, MOC_CM1, 1590.0]))["raman"]
    (name,) = [n for n in out["bands"] if abs(float(n.split()[-1]) - near_cm1) < 1]
    return np.asarray(out["bands"][name]["area"], float), out


def test_area_map_stores_spectra_at_their_coordinates_and_finds_the_interface_domains(lab):
    stage = lab.devices["stage"]
    (uid,) = lab.RE(lab.raman_area_map(x_um=(-100, 100, 9), y_um=(-100, 100, 7)))
    run = find_run(lab.catalog.client, uid)
    start = run.metadata["start"]
    assert start["plan_name"] == "raman_map" and start["map"]["shape"] == [7, 9]
    assert start["profile"] == "raman-map-sim" and start["cell_state"] is None  # nothing ran yet
    primary = run["primary"]
    x, y = (np.asarray(primary[f"stage-{a}"].read()) for a in "xy")
    spectra = np.asarray(primary["raman-spectrum"].read())
    assert spectra.shape == (63, 1024)
    # every grid point once, snaking: row 2 runs from +100 back to -100
    grid = {(round(a, 6), round(b, 6)) for a in np.linspace(-100, 100, 9) for b in np.linspace(-100, 100, 7)}
    assert set(zip(np.round(x, 6), np.round(y, 6))) == grid
    assert x[9] == pytest.approx(100) and x[17] == pytest.approx(-100)
    # the interface band's area follows the interface coverage under the spot
    area, out = _band_areas(run, MOC_CM1)
    truth = interface_coverage_at(x, y)
    assert np.corrcoef(area, truth)[0, 1] > 0.97
    assert out["map"]["kind"] == "area" and out["map"]["x_um"] == pytest.approx(list(x))
    # the stage went back to where it began (the travel's centre)
    assert lab.instruments.sim_lab.raman.spot_um == (0.0, 0.0)
    assert stage.x.check(0) == 0.0


def test_a_point_beyond_the_travel_is_refused_before_anything_moves(lab):
    backend = lab.devices["stage"]._backend
    with pytest.raises(ValueError, match=r"stage: x = 600.0 µm is outside its travel -500 to 500 µm"):
        lab.raman_area_map(x_um=(-100, 600, 5), y_um=(0, 10, 2))
    with pytest.raises(ValueError, match=r"stage: y = -501.0 µm is outside"):
        lab.raman_line_map((0, 0), (0, -501), 5)
    with pytest.raises(ValueError, match="at least 2 points"):
        lab.raman_line_map((0, 0), (10, 0), 1)
    assert backend.moves == 0 and not list(lab.catalog.client)


def test_a_stage_that_stops_answering_fails_the_map_naming_it_and_keeps_what_was_taken(lab):
    backend = lab.devices["stage"]._backend
    real_move = backend.move

    async def failing_move(axis, position_um):
        if backend.moves >= 6:
            backend.connected = False
        return await real_move(axis, position_um)

    backend.move = failing_move
    with pytest.raises(FailedStatus, match=r"device: stage-x.*simulated XY stage: no answer"):
        lab.RE(lab.raman_line_map((-50, 0), (50, 0), 11))
    lab.RE.catalog_writer.flush()
    run = find_run(lab.catalog.client, "-1")
    assert run.metadata["stop"]["exit_status"] == "fail"
    assert 1 <= len(run["primary"]["raman-spectrum"].read()) < 11


def test_line_map_from_the_shell(tmp_path, capsys):
    data = str(tmp_path / "data")
    assert cli(["raman-map", "--line=-100,-20:100,-20", "--points", "11", "--data", data]) == 0
    out = capsys.readouterr().out
    assert "spectrum 11/11 at x = 100, y = -20 µm" in out and "ended: success, 11 spectra" in out
    with open_catalog(data) as cat:
        run = find_run(cat.client, "-1")
        x = np.asarray(run["primary"]["stage-x"].read())
        y = np.asarray(run["primary"]["stage-y"].read())
        assert run.metadata["start"]["map"]["kind"] == "line"
    assert x == pytest.approx(np.linspace(-100, 100, 11)) and y == pytest.approx(np.full(11, -20.0))
    assert cli(["analyse", "-1", "--data", data, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["raman"]["map"]["y_um"] == pytest.approx([-20.0] * 11)
    # refusals: a malformed line, a mix of line and area, a profile without a stage
    assert cli(["raman-map", "--line", "0,0;1,1", "--points", "3", "--data", data]) == 2
    assert "--line '0,0;1,1': expected X0,Y0:X1,Y1" in capsys.readouterr().err
    assert cli(["raman-map", "--line", "0,0:1,1", "--x-um", "0:1:2", "--data", data]) == 2
    assert "a line map takes --line" in capsys.readouterr().err
    assert cli(["raman-map", "--profile", "sim", "--x-um", "0:10:2", "--y-um", "0:10:2", "--data", data]) == 2
    assert "0 stage instruments []: add an instrument with kind: stage" in capsys.readouterr().err


def _load_with_stage(tmp_path, **stage) -> None:
    data = yaml.safe_load((PROFILES_DIR / "raman-map-sim.yaml").read_text())
    data["instruments"]["stage"].update(stage)
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(data))
    load_profile(path)


def test_stage_configuration_errors_name_the_file_and_field(tmp_path):
    with pytest.raises(ConfigError, match=r"mapping.yaml.*instruments.stage.*x_travel_um must be \[low, high\]"):
        _load_with_stage(tmp_path, settings={"x_travel_um": [5, -5], "y_travel_um": [0, 1]})
    with pytest.raises(ConfigError, match="a stage has no acquisition schedule"):
        _load_with_stage(tmp_path, schedule=[{"every_s": 60}])
    with pytest.raises(ConfigError, match="unknown key; did you mean 'speed_um_s'"):
        _load_with_stage(tmp_path, settings={"speed_ums": 5})
