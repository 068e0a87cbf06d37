"""The Raman-shift axis calibrated against silicon (acquisition/raman_calibration.py): a
simulated spectrometer whose axis is off by a known amount, the offset found, stored, applied to
the next runs and recorded with them."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from operando.acquisition.cli import main as cli
from operando.acquisition.config import load_profile
from operando.acquisition.ipython import open_lab
from operando.acquisition.raman_calibration import calibrate_raman, calibration_path, load_calibration
from operando.analysis.raman_bands import BandGuess, fit_bands
from operando.devices.configuration import ConfigError
from operando.storage.catalog import open_catalog
from operando.storage.runs import find_run

AXIS_ERROR_CM1 = 2.4


def _profile(tmp_path, error=AXIS_ERROR_CM1, offset=None):
    data = load_profile("sim").model_dump(mode="json", exclude_none=True)
    data["instruments"].pop("magnetometer")
    data["sim"].update(raman_axis_error_cm1=error, clock="virtual", speed=20000)
    data["suspenders"] = [s for s in data["suspenders"] if s["watch"].startswith("raman")]
    if offset is not None:
        data["instruments"]["raman"]["settings"]["shift_offset_cm1"] = offset
    path = tmp_path / f"lab-{error}-{offset}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_silicon_calibration_finds_the_axis_error_and_later_runs_use_it(tmp_path):
    data = tmp_path / "data"
    lab = open_lab(_profile(tmp_path), data=data)
    try:
        record = calibrate_raman(lab)
        assert record.offset_cm1 == pytest.approx(AXIS_ERROR_CM1, abs=0.1)
        assert record.fitted_cm1 == pytest.approx(520.7 - AXIS_ERROR_CM1, abs=0.1) and record.fitted_err_cm1 < 0.1
        assert load_calibration(data, "raman") == record  # stored as data
        with lab.catalog as cat:
            assert find_run(cat.client, record.run_uid).metadata["start"]["plan_name"] == "raman_calibration"
    finally:
        lab.close()
    assert cli(["run", "galvanostatic_cycling", "--profile", _profile(tmp_path), "--data", str(data), "--quiet"]) == 0
    with open_catalog(data) as cat:
        run = find_run(cat.client, "-1")
        config = run["raman"].metadata["configuration"]["raman"]["data"]
        spectrum = np.asarray(run["raman"]["raman-spectrum"].read())[0]
    assert config["raman-shift_offset"] == pytest.approx(record.offset_cm1)
    assert "silicon 520.7 cm-1" in config["raman-shift_calibration"]
    axis = np.asarray(config["raman-raman_shift"])
    (g,) = fit_bands(axis, spectrum, [BandGuess("G", 1590.0, 40.0)])
    assert g.centre_cm1 == pytest.approx(1590.0, abs=0.5)  # the carbon G band where it truly is


def test_the_profiles_offset_wins_and_a_missing_band_is_an_error(tmp_path):
    data = tmp_path / "data"
    lab = open_lab(_profile(tmp_path, offset=1.0), data=data)
    try:
        assert lab.RE is not None
        device = lab.devices["raman"]
        from bluesky.run_engine import call_in_bluesky_event_loop

        assert call_in_bluesky_event_loop(device.shift_offset.get_value()) == 1.0
        assert call_in_bluesky_event_loop(device.shift_calibration.get_value()).startswith("profile")
        lab.instruments.sim_lab.raman.sample = "cell"  # no silicon in the beam: the cell's spectrum
        original = lab.instruments.sim_lab.raman.__class__.clean_rate
        try:
            lab.instruments.sim_lab.raman.__class__.clean_rate = lambda self: np.full(1024, 100.0)
            with pytest.raises(ConfigError, match="no silicon band near 520.7"):
                calibrate_raman(lab)
        finally:
            lab.instruments.sim_lab.raman.__class__.clean_rate = original
        assert not calibration_path(data, "raman").exists()  # nothing stored from a failed calibration
    finally:
        lab.close()


def test_calibrate_raman_from_the_shell(tmp_path, capsys):
    data = tmp_path / "data"
    assert cli(["calibrate-raman", "--profile", _profile(tmp_path, error=-1.5), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "offset -1.5" in out and str(calibration_path(data, "raman")) in out
