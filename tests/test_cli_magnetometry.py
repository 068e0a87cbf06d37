"""`operando mt-sweep` / `operando mh-loop`: the same Lab code as a session, from the shell."""

from __future__ import annotations

import json

import numpy as np
import pytest

from operando.acquisition.cli import main as cli
from operando.acquisition.cli_magnetometry import parse_values
from operando.devices.configuration import ConfigError
from operando.storage.catalog import open_catalog
from operando.storage.runs import find_run


def test_mt_sweep_from_the_shell_stores_a_run_that_analyse_fits(tmp_path, capsys):
    data = str(tmp_path / "data")
    args = ["mt-sweep", "--temperatures", "5:300:8", "--field-T", "1", "--data", data, "--speed", "50000"]
    assert cli(args) == 0
    out = capsys.readouterr().out
    assert out.count("zfc ") == 8 and out.count("fc ") == 16  # "fc" is in "zfc" too
    assert "ended: success" in out
    with open_catalog(data) as cat:
        run = find_run(cat.client, "-1")
        t = np.asarray(run["zfc"]["magnetometer-temperature"].read())
        start = run.metadata["start"]
    assert t == pytest.approx(np.geomspace(5, 300, 8), abs=0.1)  # stable within 0.05 K
    assert start["profile"] == "mpms-sim" and start["restore"] is True
    assert cli(["analyse", "-1", "--data", data, "--json"]) == 0
    fits = json.loads(capsys.readouterr().out)["magnetometry"]["curie_weiss"]
    assert fits["zfc"]["C_cm3K_mol"] == pytest.approx(1.5, rel=0.02)  # the cell as made (0.01 V)


def test_mh_loop_from_the_shell_and_its_refusals(tmp_path, capsys):
    data = str(tmp_path / "data")
    loop = ["mh-loop", "--fields-T", "0,2,-2", "--temperature-K", "10", "--data", data, "--speed", "50000"]
    assert cli([*loop, "--relax-s", "0", "--quiet"]) == 0
    assert "mh " not in capsys.readouterr().out  # --quiet: no line per point
    # A set-point outside the magnetometer's range: refused before any run, naming it.
    assert cli(["mh-loop", "--fields-T", "0,9", "--temperature-K", "10", "--data", data]) == 2
    assert "field 9.0 T is outside -7.0..7.0 T" in capsys.readouterr().err
    # A profile whose magnetometer cannot sweep.
    assert cli([*loop, "--profile", "sim"]) == 2
    assert "cannot set field and temperature" in capsys.readouterr().err
    with open_catalog(data) as cat:
        assert sum(1 for _ in cat.client.values()) == 1  # only the first loop was stored


@pytest.mark.parametrize(
    "text, spacing, expected",
    [
        ("5,10,20", "log", [5.0, 10.0, 20.0]),
        ("1:100:3", "log", [1.0, 10.0, 100.0]),
        ("-2:2:5", "linear", [-2.0, -1.0, 0.0, 1.0, 2.0]),
    ],
)
def test_values_from_a_list_or_a_range(text, spacing, expected):
    assert parse_values(text, "--x", spacing) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["", "5,a", "0:300:10", "1:2:1", "1:2", "nan,1"])
def test_bad_values_name_the_option(text):
    with pytest.raises(ConfigError, match="--temperatures"):
        parse_values(text, "--temperatures", "log")
