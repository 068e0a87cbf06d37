"""Profiles: shipped files load; every kind of mistake names the file and the field."""

import pytest
import yaml

from operando.acquisition.backends import backend_names
from operando.acquisition.config import (
    PROFILES_DIR,
    ConfigError,
    Profile,
    list_profiles,
    list_protocols,
    load_profile,
    load_protocol,
)


def _sim_data() -> dict:
    return yaml.safe_load((PROFILES_DIR / "sim.yaml").read_text())


def _write(tmp_path, data, name="lab.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _error(loader, path) -> str:
    with pytest.raises(ConfigError) as info:
        loader(path)
    return str(info.value)


@pytest.mark.parametrize("name", list_profiles())
def test_shipped_profiles_load(name):
    assert isinstance(load_profile(name), Profile)


def test_sim_profile_content():
    p = load_profile("sim")
    assert "sim" in list_profiles()
    assert {"galvanostatic_cycling", "rate_capability", "formation"} <= set(list_protocols())
    assert p.potentiostat_name == "potentiostat"
    assert (p.limits.e_min_V, p.limits.e_max_V, p.limits.i_max_A) == (0.01, 3.0, 0.01)
    assert p.instruments["magnetometer"].settings["field_T"] == 1.0
    assert p.instruments["raman"].settings["accumulations"] == 2
    assert p.sample.capacity_mAh == pytest.approx(0.002 * 926)
    assert p.sim.speed == 2000 and p.sim.seed == 0 and p.sim_material == "fe_li2o"
    assert p.source == PROFILES_DIR / "sim.yaml"


def test_path_and_name_give_same_profile():
    assert load_profile(PROFILES_DIR / "sim.yaml") == load_profile("sim")


def test_typo_in_key_names_file_path_and_suggestion(tmp_path):
    data = _sim_data()
    limits = data["instruments"]["potentiostat"]["limits"]
    limits["e_max_v"] = limits.pop("e_max_V")
    msg = _error(load_profile, _write(tmp_path, data))
    assert "lab.yaml: instruments.potentiostat.limits.e_max_v: unknown key" in msg
    assert "did you mean 'e_max_V'" in msg
    assert "lab.yaml: instruments.potentiostat.limits.e_max_V: required field missing" in msg


def test_wrong_type_names_field_and_value(tmp_path):
    data = _sim_data()
    data["sample"]["active_mass_g"] = "heavy"
    msg = _error(load_profile, _write(tmp_path, data))
    assert "lab.yaml: sample.active_mass_g:" in msg and "(got 'heavy')" in msg


def test_every_problem_reported_one_per_line(tmp_path):
    data = _sim_data()
    data["sample"]["active_mass_g"] = -1
    data["instruments"]["raman"]["backend"] = "seabrezee"
    lines = _error(load_profile, _write(tmp_path, data)).splitlines()
    assert len(lines) == 2
    assert all(line.startswith(str(tmp_path / "lab.yaml") + ": ") for line in lines)
    known = ", ".join(backend_names("raman"))
    assert any(
        f"instruments.raman.backend: expected one of {known} for kind raman (got 'seabrezee')" in line for line in lines
    )
    assert any("sample.active_mass_g:" in line and "(got -1)" in line for line in lines)


def test_inverted_limits_window(tmp_path):
    data = _sim_data()
    data["instruments"]["potentiostat"]["limits"] = {"e_min_V": 3.0, "e_max_V": 0.5, "i_max_A": 0.01}
    msg = _error(load_profile, _write(tmp_path, data))
    assert "lab.yaml: instruments.potentiostat.limits: e_max_V (0.5) must be above e_min_V (3)" in msg


def test_potentiostat_needs_limits_and_must_be_unique(tmp_path):
    data = _sim_data()
    del data["instruments"]["potentiostat"]["limits"]
    assert "instruments.potentiostat.limits: a potentiostat needs limits" in _error(
        load_profile, _write(tmp_path, data)
    )
    data = _sim_data()
    data["instruments"]["second"] = dict(data["instruments"]["potentiostat"])
    assert "cells: expected exactly one instrument of kind potentiostat, found 2" in _error(
        load_profile, _write(tmp_path, data)
    )


def test_unknown_instrument_kind(tmp_path):
    data = _sim_data()
    data["instruments"]["raman"]["kind"] = "xrd"
    msg = _error(load_profile, _write(tmp_path, data))
    assert "lab.yaml: instruments.raman.kind:" in msg and "(got 'xrd')" in msg


def test_missing_profile_name_lists_available():
    msg = _error(load_profile, "no_such_profile")
    assert "no_such_profile.yaml" in msg and "available profiles: " in msg and "sim" in msg


def test_missing_protocol_name_lists_available():
    msg = _error(load_protocol, "no_such_protocol")
    assert "no_such_protocol.yaml" in msg and "galvanostatic_cycling" in msg


def test_missing_file_path(tmp_path):
    msg = _error(load_profile, tmp_path / "gone.yaml")
    assert "gone.yaml: file not found" in msg


def test_broken_yaml_gives_line(tmp_path):
    path = _write(tmp_path, "name: lab\ninstruments:\n  potentiostat: {kind: potentiostat\n")
    msg = _error(load_profile, path)
    assert "lab.yaml: line 4" in msg and "invalid YAML" in msg


def test_duplicate_key_is_an_error(tmp_path):
    msg = _error(load_profile, _write(tmp_path, "name: a\nname: b\n"))
    assert "lab.yaml: line 2" in msg and "duplicate key 'name'" in msg


@pytest.mark.parametrize("text, got", [("", "an empty file"), ("- a\n- b\n", "a list")])
def test_top_level_must_be_mapping(tmp_path, text, got):
    msg = _error(load_profile, _write(tmp_path, text))
    assert "lab.yaml: top level: expected a mapping" in msg and got in msg


def test_yaml_tags_are_not_executed(tmp_path):
    path = _write(tmp_path, "name: !!python/object/apply:os.system ['echo pwned']\n")
    assert "lab.yaml: line 1" in _error(load_profile, path)


def test_a_suspender_must_watch_a_known_instrument_with_one_condition(tmp_path):
    data = _sim_data()
    data["suspenders"] = [{"watch": "squid.temperature", "outside": [290, 310]}]
    assert "suspenders: squid.temperature: no instrument named 'squid'" in _error(load_profile, _write(tmp_path, data))
    data["suspenders"] = [{"watch": "magnetometer.temperature", "outside": [290, 310], "when": False}]
    assert "give exactly one condition" in _error(load_profile, _write(tmp_path, data))
