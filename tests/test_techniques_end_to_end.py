"""A protocol with formation, rate test, CV series, GITT and EIS runs end to end and is stored:
on the in-process simulator and through the MethodSCRIPT driver on its wire-level simulator."""

from pathlib import Path

import numpy as np
import pytest

from operando.acquisition.config import load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.devices.techniques import TECHNIQUE_CODES
from operando.plans.protocol import compile_protocol
from operando.sim_devices.materials import preset
from operando.storage.catalog import open_catalog

PROTOCOL = Path(__file__).parent / "protocols" / "characterisation_short.yaml"


def _columns(stream, keys):
    return {k: np.asarray(stream[k].read()) for k in keys}


@pytest.mark.parametrize("profile_name", ["sim", "sim-methodscript"])
def test_characterisation_runs_end_to_end_and_is_stored(tmp_path, profile_name):
    profile, protocol = load_profile(profile_name), load_protocol(PROTOCOL)
    steps = compile_protocol(protocol, profile.sample, profile.limits)
    result = run_experiment(profile, protocol, tmp_path, speed=8000, report=False)
    assert result.exit_status == "success"

    with open_catalog(tmp_path) as catalog:
        run = catalog.client[result.uid]
        e = _columns(run["echem"], ["step", "technique", "Ewe", "I", "charge", "timestamp"])
        z = _columns(run["impedance"], [f"impedance-{k}" for k in ("step", "frequency", "Z_re", "Z_im")])
        assert run["echem"].metadata["data_keys"]["technique"]["choices"] == list(TECHNIQUE_CODES)

    # every step ran, in order, each sample labelled with its step's technique
    assert sorted(set(e["step"].tolist())) == [s.step for s in steps]
    assert np.all(np.diff(e["step"]) >= 0) and np.all(np.diff(e["timestamp"]) > 0)
    for s in steps:
        assert set(e["technique"][e["step"] == s.step].tolist()) == {TECHNIQUE_CODES[s.technique.kind]}
    by_kind = {kind: [s for s in steps if s.technique.kind == kind] for kind in TECHNIQUE_CODES}

    # cccv: charges at constant current, then holds e_hold_V while the current decays to the cut-off
    (cccv,) = by_kind["cccv"]
    m = e["step"] == cccv.step
    t = cccv.technique
    assert e["I"][m][0] == pytest.approx(t.current_A, rel=1e-6)
    held = np.abs(e["Ewe"][m] - t.e_hold_V) < 2e-3
    assert held.sum() > 10 and e["I"][m][-1] <= t.i_cutoff_A * 1.1
    assert np.all(np.diff(e["I"][m][held]) <= 1e-9)  # the CV-phase current only decays

    # cv: the current changes sign with the scan direction, and reaches both vertices
    for cv in by_kind["cv"]:
        m = e["step"] == cv.step
        assert e["I"][m].min() < 0 < e["I"][m].max()
        assert e["Ewe"][m].min() == pytest.approx(0.01, abs=0.01) and e["Ewe"][m].max() == pytest.approx(3.0, abs=0.01)

    # gitt: 4 pulses of the set current, each followed by rest at open circuit
    (gitt,) = by_kind["gitt"]
    current = e["I"][e["step"] == gitt.step]
    pulses = np.flatnonzero(np.diff((current != 0).astype(int)) == 1).size + int(current[0] != 0)
    assert pulses == 4 and current[-1] == 0
    assert set(np.round(current[current != 0] / gitt.technique.current_A, 6).tolist()) == {1.0}

    # impedance: one row per frequency, high to low; Z' at the highest frequency is the cell's R_ohm
    r_ohm = preset(profile.sim_material, profile.sample.active_mass_g).r_ohm
    for eis in by_kind["peis"] + by_kind["geis"]:
        m = z["impedance-step"] == eis.step
        assert z["impedance-frequency"][m].tolist() == pytest.approx(eis.technique.frequencies_Hz)
        assert z["impedance-Z_re"][m][0] == pytest.approx(r_ohm, rel=0.05)
        assert z["impedance-Z_im"][m][-1] < 0  # capacitive at the lowest frequency


def test_keithley2450_refuses_impedance_before_the_start_and_runs_the_rest(tmp_path):
    """The 2450 is a source-measure unit: no frequency-response analyser, so PEIS/GEIS are refused
    before anything starts; the protocol without them runs through pymeasure on the TCP simulator."""
    import yaml

    from operando.acquisition.prepare import CapabilityError

    profile = load_profile("sim-keithley2450")
    with pytest.raises(CapabilityError) as info:
        run_experiment(profile, load_protocol(PROTOCOL), tmp_path / "refused", speed=2000, report=False)
    assert "keithley2450 cannot run peis" in str(info.value) and "Keithley 2450" in str(info.value)
    assert not (tmp_path / "refused").exists()  # refused before the data directory was touched

    spec = yaml.safe_load(PROTOCOL.read_text())
    spec["steps"] = [s for s in spec["steps"] if "peis" not in str(s) and "geis" not in str(s)]
    spec["sampling"] = {"interval_s": 10.0}  # host-timed: one SCPI round trip per sample
    no_eis = tmp_path / "no_eis.yaml"
    no_eis.write_text(yaml.safe_dump(spec))
    protocol = load_protocol(no_eis)
    steps = compile_protocol(protocol, profile.sample, profile.limits)
    assert {s.technique.kind for s in steps} == {"ocv", "cccv", "cc", "cv", "ca", "gitt"}
    # The profile's own speed (500x): the 2450 is host-timed, and a discharge to a positive
    # potential is ended by the host (its compliance is a magnitude), so a host stall of a few
    # ms on a loaded machine at 2000x was seconds of simulated over-discharge, an excursion.
    result = run_experiment(profile, protocol, tmp_path / "run", speed=500, report=False)
    assert result.exit_status == "success"
    with open_catalog(tmp_path / "run") as catalog:
        run = catalog.client[result.uid]
        assert run.metadata["start"]["instruments"]["potentiostat"]["backend"] == "keithley2450"
        e = _columns(run["echem"], ["step", "technique", "I"])
    assert sorted(set(e["step"].tolist())) == [s.step for s in steps]
    (gitt,) = [s for s in steps if s.technique.kind == "gitt"]
    current = e["I"][e["step"] == gitt.step]
    assert np.flatnonzero(np.diff((np.abs(current) > 1e-6).astype(int)) == 1).size + int(abs(current[0]) > 1e-6) == 4
