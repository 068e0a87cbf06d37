"""One way to put a run together (acquisition/prepare.py) on the backend registry: settings checked
against each backend's model, capabilities checked before anything is built, simulation only
where a profile asks for it, and a failed scripted run stored whole."""

import textwrap

import bluesky.plan_stubs as bps
import pytest
import yaml

from operando.acquisition.backends import all_backends, wire_simulator
from operando.acquisition.cli import main
from operando.acquisition.config import PROFILES_DIR, ConfigError, load_profile, load_protocol
from operando.acquisition.prepare import CapabilityError, check_run

SHORT = textwrap.dedent(
    """
    name: short
    steps:
      - {kind: rest, duration_min: 5}
      - {kind: cc, c_rate: 2, e_max_V: 3.0, max_duration_h: 1}
    """
)


def _profile_file(tmp_path, edit, base="sim.yaml"):
    data = yaml.safe_load((PROFILES_DIR / base).read_text())
    edit(data)
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _refused(tmp_path, capsys, profile, protocol="galvanostatic_cycling"):
    data = tmp_path / "data"
    code = main(["run", str(protocol), "--profile", str(profile), "--data", str(data), "--quiet"])
    assert not (data / "catalog.db").exists()  # nothing was opened, nothing started
    assert code == 2
    return capsys.readouterr().err


def _base_for(spec):
    """A profile in which instrument ``spec.kind`` uses ``spec``'s backend (at its simulator)."""

    def edit(data):
        name = spec.kind
        inst = data["instruments"].setdefault(name, {"kind": spec.kind})
        inst["backend"] = spec.name
        inst.pop("address", None)
        if spec.address is not None:
            inst["address"] = "sim"
        inst["settings"] = {"sample_intervall_s": 1}

    return edit


@pytest.mark.parametrize("spec", all_backends(), ids=lambda s: f"{s.kind}-{s.name}")
def test_a_misspelt_setting_stops_every_backend_before_anything_starts(tmp_path, capsys, spec):
    err = _refused(tmp_path, capsys, _profile_file(tmp_path, _base_for(spec)))
    line = next(text for text in err.splitlines() if "sample_intervall_s" in text)
    assert f"lab.yaml: instruments.{spec.kind}.settings.sample_intervall_s: unknown key" in line
    allowed = sorted(spec.settings.model_fields)
    assert f"(allowed keys: {', '.join(allowed)})" in line
    assert line.endswith("(got 1)")


def test_a_wrong_setting_value_names_its_field(tmp_path):
    path = _profile_file(tmp_path, lambda d: d["instruments"]["raman"]["settings"].update(accumulations=0))
    with pytest.raises(
        ConfigError, match=r"lab.yaml: instruments.raman.settings.accumulations: .*greater than 0 \(got 0\)"
    ):
        load_profile(path)


def test_a_hold_rule_on_a_potentiostat_that_cannot_hold_is_refused_before_start(tmp_path, capsys):
    def edit(data):
        data["instruments"]["raman"]["schedule"] = [{"every_s": 600}, {"at": "cycle_end", "hold": "ocv"}]
        data["suspenders"] = [{"watch": "raman.interlock_closed", "when": False, "echem": "hold"}]

    err = _refused(tmp_path, capsys, _profile_file(tmp_path, edit, "sim-methodscript.yaml"))
    assert (
        "lab.yaml: instruments.raman.schedule[1].hold: needs a potentiostat that can hold at "
        "open circuit; methodscript cannot (got 'ocv')"
    ) in err
    assert "lab.yaml: suspenders[0].echem: suspending raman.interlock_closed with the cell held" in err


def test_impedance_on_a_source_measure_unit_is_refused_before_start(tmp_path, capsys):
    err = _refused(tmp_path, capsys, PROFILES_DIR / "sim-keithley2450.yaml", "cycling_with_eis")
    assert "sim-keithley2450.yaml: instruments.potentiostat.backend: keithley2450 cannot run peis (step" in err
    assert "no frequency-response analyser" in err


def test_a_hardware_trigger_needs_a_trigger_output_and_a_trigger_input(tmp_path, capsys):
    path = _profile_file(
        tmp_path, lambda d: d["instruments"]["raman"]["settings"].update(trigger="hardware"), "sim-methodscript.yaml"
    )
    err = _refused(tmp_path, capsys, path)
    assert (
        "lab.yaml: instruments.raman.settings.trigger: hardware triggering needs the potentiostat's "
        "trigger output; methodscript has none (got 'hardware')"
    ) in err
    # on the simulated potentiostat, which has one, the same setting is accepted
    ok = _profile_file(tmp_path, lambda d: d["instruments"]["raman"]["settings"].update(trigger="hardware"))
    assert check_run(load_profile(ok), load_protocol("galvanostatic_cycling")).steps


def test_faults_are_injected_into_simulated_backends_only(tmp_path):
    def edit(data):
        data["sim"]["faults"] = [{"instrument": "potentiostat", "kind": "timeout", "at_s": 10}]

    with pytest.raises(
        ConfigError,
        match=r"lab.yaml: sim: faults: timeout on 'potentiostat', which is not "
        r"an in-process simulation \(methodscript\)",
    ):
        load_profile(_profile_file(tmp_path, edit, "sim-methodscript.yaml"))


def test_a_real_instrument_keeps_real_time(tmp_path, capsys):
    path = _profile_file(
        tmp_path, lambda d: d["instruments"]["potentiostat"].update(address="/dev/ttyACM7"), "sim-methodscript.yaml"
    )
    err = _refused(tmp_path, capsys, path)
    assert "instruments.potentiostat.address: a real instrument runs in real time, but sim.speed is 2000" in err


def test_simulated_material_is_checked_only_when_something_is_simulated(tmp_path):
    def all_hardware(data):
        data["instruments"] = {"potentiostat": {**data["instruments"]["potentiostat"], "address": "/dev/ttyACM7"}}
        data["sample"]["sim_preset"] = "no_such_material"
        data.pop("sim")

    profile = load_profile(_profile_file(tmp_path, all_hardware, "sim-methodscript.yaml"))
    assert check_run(profile, load_protocol("galvanostatic_cycling")).steps  # nothing simulated
    simulated = _profile_file(tmp_path, lambda d: d["sample"].update(sim_preset="no_such_material") or d.pop("sim"))
    with pytest.raises(CapabilityError, match=r"lab.yaml: sample.sim_preset: unknown simulated material"):
        check_run(load_profile(simulated), load_protocol("galvanostatic_cycling"))


# Settings a backend cannot run without (no laser line known to an HDX; no shutter: no darks).
REQUIRED_SETTINGS = {"ocean_hdx": {"laser_nm": 532.0, "dark": "none"}, "labspec": {"dark": "none"}}


def test_every_hardware_backend_with_an_address_names_what_it_needs(tmp_path, capsys):
    for spec in all_backends():
        if spec.address is None:
            continue

        def edit(data, spec=spec):
            entry = {"kind": spec.kind, "backend": spec.name, "settings": REQUIRED_SETTINGS.get(spec.name, {})}
            if spec.kind == "potentiostat":  # limits belong to the potentiostat only
                entry["limits"] = data["instruments"]["potentiostat"].get("limits")
            data["instruments"][spec.kind] = entry

        err = _refused(tmp_path, capsys, _profile_file(tmp_path, edit))
        sim = ", or 'sim' for its wire-level simulator" if wire_simulator(spec.kind, spec.name) else ""
        assert f"instruments.{spec.kind}.address: the {spec.name} backend needs {spec.address}{sim}" in err


def test_start_metadata_describes_the_run_the_same_way_for_every_entry_point():
    profile, protocol = load_profile("sim"), load_protocol("galvanostatic_cycling")
    md = check_run(profile, protocol).metadata
    assert md == check_run(load_profile("sim"), load_protocol("galvanostatic_cycling")).metadata
    assert md["profile"] == "sim" and md["protocol"] == "galvanostatic_cycling"
    assert md["suspenders"] == [r.model_dump(mode="json") for r in profile.suspenders]
    assert md["instruments"]["potentiostat"]["capabilities"] == ["hold", "impedance", "trigger_out"]
    assert md["instruments"]["raman"]["settings"] == {
        "period_s": 300.0,
        "trigger": "software",
        "exposure_s": 10.0,
        "accumulations": 2,
        # the corrections' settings, defaults included: the run says how its spectra were made
        "dark": "on_exposure_change",
        "dark_every_n": 10,
        "cosmic_ray_removal": True,
        "cosmic_threshold_sigma": 6.0,
        "laser_power_mW": None,
        "shift_offset_cm1": None,
    }


def test_a_scripted_run_that_fails_is_stored_whole_before_the_catalog_closes(tmp_path):
    """The pattern of a script: a RunEngine inside `with open_catalog(...)`, a plan that raises.
    The catalog's writer is flushed before the catalog closes, so the failed run is complete."""
    from operando.acquisition.ipython import open_lab
    from operando.acquisition.session import make_run_engine
    from operando.storage.catalog import open_catalog

    lab = open_lab("sim", data=tmp_path / "lab", speed=5000)
    magnetometer = lab.devices["magnetometer"]
    lab.RE.catalog_writer.flush()

    def failing():
        yield from bps.open_run(md={"purpose": "fails"})
        for _ in range(3):
            yield from bps.trigger_and_read([magnetometer])
        raise RuntimeError("boom")

    data = tmp_path / "script"
    with pytest.raises(RuntimeError, match="boom"):
        with open_catalog(data) as catalog:
            RE = make_run_engine(catalog)
            RE(failing())
    lab.close()
    lab.close()  # safe twice
    with open_catalog(data) as catalog:
        run = catalog.client[-1]
        assert run.metadata["start"]["purpose"] == "fails"
        assert run.metadata["stop"]["exit_status"] == "fail" and "boom" in run.metadata["stop"]["reason"]
        assert len(run["primary"]["magnetometer-moment"].read()) == 3


def test_ipython_lab_runs_a_protocol_as_the_cli_does(tmp_path):
    import bluesky.plans as bp

    from operando.acquisition.ipython import open_lab

    (tmp_path / "short.yaml").write_text(SHORT)
    lab = open_lab("sim", data=tmp_path / "data", speed=20000)
    try:
        (uid,) = lab.RE(lab.operando(tmp_path / "short.yaml"))
        (count_uid,) = lab.RE(bp.count([lab.devices["magnetometer"]], num=2))
        run = lab.catalog.client[uid]
        start = run.metadata["start"]
        assert start["profile"] == "sim" and start["protocol"] == "short"
        assert (
            start["suspenders"]
            == check_run(load_profile("sim"), load_protocol(tmp_path / "short.yaml")).metadata["suspenders"]
        )
        assert run.metadata["stop"]["exit_status"] == "success"
        assert len(run["echem"]["Ewe"].read()) > 100
        assert len(lab.catalog.client[count_uid]["primary"]["magnetometer-moment"].read()) == 2
        # a protocol sampling at another interval than the lab's instruments is refused, named
        other = tmp_path / "fine.yaml"
        other.write_text(SHORT.replace("name: short", "name: fine\nsampling: {interval_s: 0.1}"))
        with pytest.raises(ConfigError, match=r"fine.yaml: sampling.interval_s: .*sample_interval_s=0.1"):
            lab.operando(other)
    finally:
        lab.close()


def test_a_simulated_lab_is_needed_only_when_something_is_simulated(tmp_path):
    """The rule; tests/test_hardware_profile.py checks it on a real run in its own process."""
    from operando.acquisition import build

    profile = load_profile(_profile_file(tmp_path, lambda d: None))
    assert build.needs_sim_lab(profile)

    def hardware(data):
        data["instruments"] = {"potentiostat": {**data["instruments"]["potentiostat"], "address": "/dev/ttyACM7"}}
        data.pop("sim")

    profile = load_profile(_profile_file(tmp_path, hardware, "sim-methodscript.yaml"))
    assert not build.needs_sim_lab(profile) and build.has_hardware(profile)
