"""ΔM/ΔQ per cycle and voltage window, and `operando analyse` on a stored simulated in-situ run;
the Curie–Weiss fit reported for a run with zfc/fc streams."""

from __future__ import annotations

import json

import numpy as np
import pytest

from operando.acquisition.cli import main
from operando.acquisition.config import Profile, load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.analysis.magnetometry import ELECTRONS_PER_MAH, MU_B_EMU, moment_against_charge
from operando.analysis.run_magnetometry import analyse_magnetometry, format_magnetometry
from operando.sim_devices.lab import build_sim_lab
from operando.storage.catalog import open_catalog
from operando.storage.runs import find_run


def test_moment_against_charge_per_branch_and_window():
    q = np.array([0.0, 0.0, 0.1, 0.2, 0.3, 0.4, 0.3, 0.2, 0.1])  # rest, charge, discharge (mAh)
    e = np.array([1.0, 1.0, 1.2, 1.4, 1.6, 1.8, 1.7, 1.3, 1.1])
    i = np.array([0.0, 0.0, 1, 1, 1, 1, -1, -1, -1]) * 1e-3
    m = 1e-3 - 2e-3 * q  # 2 memu per mAh lost while charging, regained on discharge
    changes = moment_against_charge(m, q, e, i, np.ones_like(q), windows_V=[1.0, 1.5, 2.0])
    by = {(c.direction, c.window_V): c for c in changes}
    charge = by[("charge", None)]
    assert (charge.n_points, charge.dQ_mAh, charge.dM_emu) == (4, pytest.approx(0.3), pytest.approx(-6e-4))
    assert charge.slope_emu_mAh == pytest.approx(-2e-3) and charge.slope_err == pytest.approx(0, abs=1e-12)
    assert charge.muB_per_electron == pytest.approx(-2e-3 / (MU_B_EMU * ELECTRONS_PER_MAH))
    assert by[("charge", (1.0, 1.5))].n_points == 2 and by[("charge", (1.5, 2.0))].n_points == 2
    assert by[("discharge", None)].dQ_mAh == pytest.approx(-0.2)  # the rest frames belong to no branch
    assert ("discharge", (1.5, 2.0)) not in by  # one frame there: no change to report
    with pytest.raises(ValueError, match="increasing"):
        moment_against_charge(m, q, e, i, q, windows_V=[2.0, 1.0])


def test_operando_analyse_reports_dm_dq_of_a_stored_in_situ_run(tmp_path, capsys):
    profile = load_profile("sim").model_dump(mode="json")
    profile["sim"]["clock"] = "virtual"  # the same frames every time
    profile["instruments"]["magnetometer"]["settings"]["period_s"] = 300
    protocol = load_protocol("galvanostatic_cycling")
    result = run_experiment(Profile.model_validate(profile), protocol, tmp_path, speed=20000, report=False)
    assert result.exit_status == "success"
    assert main(["analyse", "-1", "--data", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["magnetometry"]
    rows = report["moment_against_charge"]
    with open_catalog(tmp_path) as cat:
        s = find_run(cat.client, "-1")["magnetometer"]
        m, q, i, c = (
            np.asarray(s[k].read()) for k in ("magnetometer-moment", "frame-charge", "frame-I", "frame-cycle")
        )
    for row in (r for r in rows if r["window_V"] is None):
        sel = (c == row["cycle"]) & (np.sign(i) == (1 if row["branch"] == "charge" else -1))
        assert row["dQ_mAh"] == pytest.approx(q[sel][-1] - q[sel][0])  # from the frames' own state
        assert row["dM_emu"] == pytest.approx(m[sel][-1] - m[sel][0])
    # Cycle 2, both branches: the moment falls on charge (delithiation oxidises the Fe) and comes
    # back on discharge: a negative dM/dQ, a fraction of a Bohr magneton per electron.
    for branch in ("charge", "discharge"):
        (row,) = [r for r in rows if (r["cycle"], r["branch"], r["window_V"]) == (2, branch, None)]
        assert row["n_points"] >= 4 and -1.0 < row["muB_per_electron"] < -0.1
    assert any(r["window_V"] is not None for r in rows)  # per voltage window too


class _Column:
    def __init__(self, values):
        self.values = np.asarray(values, float)

    def read(self):
        return self.values


class _Mapping(dict):
    metadata: dict = {}


def test_curie_weiss_of_zfc_fc_streams_is_reported():
    lab = build_sim_lab("fe_li2o", active_mass_g=1e-3, speed=1.0, sample_interval_s=1.0, clock="virtual")
    physics = lab.magnetometer
    t = np.linspace(10.0, 190.0, 19)
    m = np.array([physics.clean_moment_emu(1.0, k) for k in t])
    stream = lambda temps, moments: _Mapping(
        {
            "magnetometer-temperature": _Column(temps),
            "magnetometer-moment": _Column(moments),
            "magnetometer-field_Oe": _Column(np.full(t.size, 1e4)),
        }
    )
    run = _Mapping(zfc=stream(t, m), fc=stream(t[::-1], m[::-1]))
    run.metadata = {"start": {"sample": {"active_mass_g": 1e-3, "magnetic_ion_mol_per_g": physics.fe_mol / 1e-3}}}
    notes: list[str] = []
    result = analyse_magnetometry(run, notes)
    assert set(result.curie_weiss) == {"zfc", "fc"} and not result.changes
    for fit in result.curie_weiss.values():
        assert fit.curie_cm3K_mol == pytest.approx(physics.curie_constant_cm3K_mol(), rel=0.02)
    assert "Curie–Weiss fit of the zfc branch" in "\n".join(format_magnetometry(result))
