"""Potentiostat backends chosen by a profile: errors that name the field, before anything starts."""

import pytest

from operando.acquisition.backends import backend_names
from operando.acquisition.cli import main
from operando.acquisition.config import PROFILES_DIR


def _profile(tmp_path, old, new, base="sim-methodscript.yaml"):
    text = (PROFILES_DIR / base).read_text()
    assert old in text
    path = tmp_path / "lab.yaml"
    path.write_text(text.replace(old, new))
    return path


def _run(capsys, tmp_path, profile):
    data = tmp_path / "data"
    code = main(["run", "galvanostatic_cycling", "--profile", str(profile), "--data", str(data), "--quiet"])
    assert not (data / "catalog.db").exists()  # nothing started
    return code, capsys.readouterr().err


def test_a_real_backend_needs_an_address(tmp_path, capsys):
    code, err = _run(capsys, tmp_path, _profile(tmp_path, "    address: sim\n", ""))
    assert code == 2
    assert "lab.yaml: instruments.potentiostat.address: the methodscript backend needs a serial port" in err


def test_a_real_instrument_runs_in_real_time(tmp_path, capsys):
    code, err = _run(capsys, tmp_path, _profile(tmp_path, "address: sim", "address: /dev/ttyACM7"))
    assert code == 2
    assert "instruments.potentiostat.address: a real instrument runs in real time, but sim.speed is 2000" in err


def test_hardware_trigger_needs_the_sim_potentiostat(tmp_path, capsys):
    profile = _profile(tmp_path, "accumulations: 2,", "accumulations: 2, trigger: hardware,")
    code, err = _run(capsys, tmp_path, profile)
    assert code == 2 and "instruments.raman.settings.trigger: hardware triggering needs" in err


def test_a_backend_must_be_registered_for_its_kind(tmp_path, capsys):
    profile = _profile(
        tmp_path, "  raman:\n    kind: raman\n    backend: sim", "  raman:\n    kind: raman\n    backend: seabreeze"
    )
    code, err = _run(capsys, tmp_path, profile)
    known = ", ".join(backend_names("raman"))
    assert code == 2 and f"instruments.raman.backend: expected one of {known} for kind raman (got 'seabreeze')" in err


@pytest.mark.parametrize("backend", ["sim", "methodscript"])
def test_wire_simulator_profiles_run_the_demo_protocol(tmp_path, capsys, backend):
    """The same protocol through the in-process engine and through the real MethodSCRIPT driver
    on a pty: same steps, same cell, nearly the same charge per step."""
    from operando.storage.catalog import open_catalog

    base = "sim.yaml" if backend == "sim" else "sim-methodscript.yaml"
    data = tmp_path / "data"
    code = main(
        [
            "run",
            "galvanostatic_cycling",
            "--profile",
            str(PROFILES_DIR / base),
            "--data",
            str(data),
            "--quiet",
            "--no-report",
            "--speed",
            "8000",
        ]
    )
    assert code == 0
    with open_catalog(data) as catalog:
        run = catalog.client.values().last()
        assert run.metadata["start"]["instruments"]["potentiostat"]["backend"] == backend
        description = run["echem"].metadata["configuration"]["potentiostat"]["data"]["potentiostat-backend_description"]
        assert ("MethodSCRIPT on /dev/pts/" in description) == (backend == "methodscript")
        charge = run["echem"]["charge"].read()
        # 2 cycles of a full 1C discharge (from 2.9 V, as assembled) and charge of a 1.852 mAh electrode
        assert 1.7 < -float(charge.min()) < 2.2 and 1.7 < float(charge.max() - charge.min()) < 2.2
