"""A suspension that outlasts its rule's ``limit_s`` ends the run — cell at open circuit, every
sample stored, the reason naming the instrument and the rule — instead of waiting for ever on an
instrument that will not come back (seen on the wire: a MultiPyVu server that never serves a
client again). Through run_experiment, the path every entry point takes."""

import pytest
import yaml

from operando.acquisition.config import PROFILES_DIR, load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.plans.suspenders import SuspenderRule, SuspensionLimitExceeded
from operando.storage.catalog import open_catalog

PROTOCOL = """
name: long_discharge
steps:
  - {kind: rest, duration_min: 5}
  - {kind: cc, c_rate: -0.2, e_min_V: 0.01, max_duration_min: 120}
"""


def _profile(tmp_path, limit_s, open_for_s, discharge_min=120):
    data = yaml.safe_load((PROFILES_DIR / "sim.yaml").read_text())
    data["suspenders"] = [{"watch": "raman.interlock_closed", "when": False, "echem": "hold", "limit_s": limit_s}]
    data["instruments"]["raman"]["settings"].update(period_s=120, exposure_s=5, accumulations=1)
    data["sim"]["clock"] = "virtual"
    data["sim"]["faults"] = [{"instrument": "raman", "kind": "interlock_open", "at_s": 900, "duration_s": open_for_s}]
    path = tmp_path / "profile.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    protocol = tmp_path / "protocol.yaml"
    protocol.write_text(PROTOCOL.replace("max_duration_min: 120", f"max_duration_min: {discharge_min}"))
    return load_profile(path), load_protocol(protocol)


def test_a_suspension_longer_than_its_limit_ends_the_run_safely(tmp_path):
    profile, protocol = _profile(tmp_path, limit_s=600, open_for_s=100_000)
    with pytest.raises(SuspensionLimitExceeded, match="raman: raman.interlock_closed is false for 600 s"):
        run_experiment(profile, protocol, tmp_path / "data", speed=500, report=False)
    with open_catalog(tmp_path / "data") as catalog:
        run = catalog.client.values().last()
        stop = run.metadata["stop"]
        assert stop["exit_status"] == "fail"
        assert "raman.interlock_closed is false for 600 s" in stop["reason"]
        t = run["echem"]["instrument_time"].read()
        # measured up to the end: ~900 s before the interlock opened, then 600 s held at open circuit
        assert t[-1] - t[0] >= 1400, t[-1] - t[0]
        assert run["echem"]["I"].read()[-1] == 0.0  # the cell was left at open circuit


def test_a_suspension_that_clears_within_its_limit_resumes(tmp_path):
    profile, protocol = _profile(tmp_path, limit_s=1200, open_for_s=300, discharge_min=30)
    result = run_experiment(profile, protocol, tmp_path / "data", speed=500, report=False)
    assert result.exit_status == "success"


def test_limit_s_must_be_positive():
    with pytest.raises(ValueError, match="limit_s"):
        SuspenderRule(watch="raman.connected", when=False, limit_s=0)
