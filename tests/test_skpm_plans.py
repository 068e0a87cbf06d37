"""SKPM maps between runs: `lab.skpm_map` and `lab.skpm_line_profile` on the Nanonis simulator
(one stored run each, the scan parameters changed for that map only, the cell's state recorded),
and the same from the shell (`operando skpm-map`), with its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from operando.acquisition.cli import main as cli
from operando.acquisition.ipython import open_lab
from operando.storage.catalog import open_catalog
from operando.storage.runs import find_run


@pytest.fixture
def lab(tmp_path):
    lab = open_lab("nanonis-sim", data=tmp_path / "data")
    yield lab
    lab.close()


def test_a_map_and_a_line_profile_of_the_cell_as_it_is(lab):
    skpm = lab.devices["skpm"]
    (uid,) = lab.RE(lab.skpm_map(pixels=32, lines=4, kelvin_setpoint=0.02))
    run = find_run(lab.catalog.client, uid)
    start = run.metadata["start"]
    assert start["plan_name"] == "skpm_map" and start["scan"] == {"pixels": 32, "lines": 4, "kelvin_setpoint": 0.02}
    config = run["primary"].metadata["configuration"]["skpm"]["data"]
    assert config["skpm-kelvin_setpoint"] == pytest.approx(0.02)  # what the map was taken with
    assert start["profile"] == "nanonis-sim" and "cell_state" in start
    assert np.asarray(run["primary"]["skpm-cpd"].read()).shape == (1, 4, 32)
    assert lab.RE(lab.skpm_line_profile(64, 200e-9, repeats=3))
    line = find_run(lab.catalog.client, "-1")
    assert line.metadata["start"]["plan_name"] == "skpm_line_profile"
    cpd = np.asarray(line["primary"]["skpm-cpd"].read())[0]
    assert cpd.shape == (3, 64)
    config = line["primary"].metadata["configuration"]["skpm"]["data"]
    assert config["skpm-height"] == pytest.approx(200e-9 / 64 * 3)  # square pixels
    # the profile's parameters were for those maps only
    assert lab.RE(lab.skpm_map())  # the profile's scan again, and its Kelvin setpoint
    last_config = find_run(lab.catalog.client, "-1")["primary"].metadata["configuration"]["skpm"]["data"]
    assert last_config["skpm-kelvin_setpoint"] == 0.0 and skpm.name == "skpm"
    last = find_run(lab.catalog.client, "-1")
    assert np.asarray(last["primary"]["skpm-cpd"].read()).shape == (1, 16, 64)


def test_a_map_with_an_unknown_parameter_is_refused_before_the_run(lab):
    with pytest.raises(ValueError, match="unknown scan parameter 'pixel'"):
        lab.skpm_map(pixel=32)
    assert not list(lab.catalog.client)


def test_skpm_map_from_the_shell(tmp_path, capsys):
    data = str(tmp_path / "data")
    assert cli(["skpm-map", "--pixels", "48", "--lines", "4", "--width-nm", "150", "--data", data]) == 0
    assert "ended: success" in capsys.readouterr().out
    with open_catalog(data) as cat:
        run = find_run(cat.client, "-1")
        assert np.asarray(run["primary"]["skpm-cpd"].read()).shape == (1, 4, 48)
    assert cli(["analyse", "-1", "--data", data, "--json", "--skpm-tip-nm", "6"]) == 0
    fitted = json.loads(capsys.readouterr().out)["skpm"]["maps"]
    assert len(fitted) == 1 and fitted[0]["step_V"] > 0.2
    # refusals, before any run
    assert cli(["skpm-map", "--pixels", "40", "--data", data]) == 1  # not a multiple of 16: the run fails
    assert "pixels must be a multiple of 16" in capsys.readouterr().err
    assert cli(["skpm-map", "--line-profile", "4", "--lines", "3", "--data", data]) == 2
    assert "--line-profile REPEATS takes --pixels and --width-nm" in capsys.readouterr().err
    assert cli(["skpm-map", "--width-nm", "-5", "--data", data]) == 2
    assert "--width-nm must be > 0" in capsys.readouterr().err


def test_a_partial_map_is_reported_as_such():
    from operando.analysis.run_skpm import SkpmMapFit, SkpmResult, format_skpm, skpm_json
    from operando.analysis.skpm_profile import InterfaceStep

    fit = InterfaceStep(0.5, 0.01, 8e-9, 1e-10, 0.0, 1e-10, -0.2, 6e-9, 1e-3)
    result = SkpmResult("skpm", 200e-9, 6e-9, [SkpmMapFit(0, 1.0, 2.0, 0.5, fit, lines_done=5)])
    assert "(partial: 5 lines)" in format_skpm(result)[1]
    assert json.loads(json.dumps(skpm_json(result)))["maps"][0]["lines_done"] == 5
