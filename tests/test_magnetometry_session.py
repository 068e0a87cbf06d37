"""M–T sweeps at chosen states of charge the way a scientist runs them (issue 13 done-when):
``open_lab`` on the shipped ``mpms-sim`` profile, an operando run brings the cell to the state,
``lab.mt_sweep`` measures it, ``operando analyse`` fits it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from operando.acquisition.cli import main as cli
from operando.acquisition.ipython import open_lab
from operando.devices.configuration import ConfigError
from operando.plans.protocol import Protocol
from operando.storage.runs import find_run

GRID_K = [float(t) for t in np.geomspace(5.0, 300.0, 16)]


def _to(volts: float, through_V: float | None = None) -> Protocol:
    """Discharge at C/2 to ``through_V`` first if given, charge at C/2 to ``volts``, rest 10 min."""
    steps = [{"kind": "cc", "c_rate": -0.5, "e_min_V": through_V, "max_duration_h": 3}] if through_V else []
    steps += [
        {"kind": "cc", "c_rate": 0.5, "e_max_V": volts, "max_duration_h": 3},
        {"kind": "rest", "duration_min": 10},
    ]
    return Protocol(name=f"to {volts} V", steps=steps)


def _analyse(capsys, data, uid, *extra) -> dict:
    capsys.readouterr()
    assert cli(["analyse", uid, "--data", str(data), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)["magnetometry"]["curie_weiss"]


def test_mt_sweeps_at_three_states_of_charge_recover_the_curie_constants(tmp_path, capsys):
    data = tmp_path / "data"
    lab = open_lab("mpms-sim", data=data, speed=50_000)  # virtual clock: pacing only
    try:
        physics = lab.instruments.sim_lab.magnetometer
        truth, runs = {}, {}
        # the cell as assembled (pristine oxide, 2.9 V), discharged to 0.01 V and charged to 1.3 V,
        # then charged on to 3 V: the review's 1.5, 1.5 and 1.82 cm3 K/mol
        for volts in (None, 1.3, 3.0):
            if volts is not None:
                lab.RE(lab.operando(_to(volts, through_V=0.01 if volts == 1.3 else None)))
            state = physics._cell.rest_potential_V
            truth[volts] = physics.curie_constant_cm3K_mol()
            (runs[volts],) = lab.RE(lab.mt_sweep(GRID_K, field_T=1.0))
            assert physics._cell.rest_potential_V == pytest.approx(state, abs=0.05)  # held meanwhile
        with lab.catalog as cat:
            starts = {v: find_run(cat.client, uid).metadata["start"] for v, uid in runs.items()}
    finally:
        lab.close()
    fitted = {}
    for volts, uid in runs.items():
        start = starts[volts]
        assert start["plan_name"] == "mt_sweep" and start["sample"]["magnetic_ion_mol_per_g"] > 0
        assert start["instruments"]["magnetometer"]["backend"] == "mpms"
        if volts is not None:  # the state the operando run left the cell in, with the sweep
            assert start["cell_state"]["Ewe_V"] == pytest.approx(volts, abs=0.1)
        fits = _analyse(capsys, data, uid)
        fitted[volts] = fits["zfc"]["C_cm3K_mol"]
        for branch in ("zfc", "fc"):
            assert fits[branch]["C_cm3K_mol"] == pytest.approx(truth[volts], rel=0.02)
            assert fits[branch]["n_points"] == len(GRID_K)
    assert truth[None] == pytest.approx(1.5) and truth[1.3] == pytest.approx(1.5, abs=0.01)
    assert truth[3.0] == pytest.approx(1.82, abs=0.01)
    assert fitted[3.0] - fitted[1.3] == pytest.approx(0.32, abs=0.04)  # the step between 1.3 and 3 V
    # A temperature range: only the points inside it are fitted.
    low = _analyse(capsys, data, runs[3.0], "--curie-weiss-K", "0", "150")
    assert low["zfc"]["n_points"] == sum(t <= 150 for t in GRID_K)


def test_mh_loop_from_the_session_and_a_magnetometer_that_cannot_sweep_is_refused(tmp_path):
    lab = open_lab("mpms-sim", data=tmp_path / "data", speed=50_000)
    try:
        (uid,) = lab.RE(lab.mh_loop([0.0, 2.0, -2.0, 0.0], temperature_K=10.0, relax_s=60.0))
        with lab.catalog as cat:
            run = find_run(cat.client, uid)
            fields = np.asarray(run["mh"]["magnetometer-field"].read())
            moments = np.asarray(run["mh"]["magnetometer-moment"].read())
        assert fields == pytest.approx([0.0, 2.0, -2.0, 0.0], abs=1e-3)
        assert moments[1] > 0 > moments[2]  # odd in field
        with pytest.raises(ConfigError, match="no magnetometer named 'raman'"):
            lab.mt_sweep(GRID_K, 1.0, magnetometer="raman")
    finally:
        lab.close()
    sim = open_lab("sim", data=tmp_path / "sim")
    try:
        with pytest.raises(ConfigError, match="cannot set field and temperature"):
            sim.mt_sweep(GRID_K, 1.0)
    finally:
        sim.close()
