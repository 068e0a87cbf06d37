"""The SKPM done-when run: an operando run cycles the simulated cell and maps its heterointerface
through the real Nanonis driver on the wire-level simulator at three states of charge, the cell
held at open circuit for each map; every map carries its echem state, and the fitted potential
step and space-charge width match the simulator's within 10 %."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from operando.acquisition.config import PROFILES_DIR
from operando.acquisition.ipython import open_lab
from operando.analysis.run_analysis import analyse_run, analysis_json
from operando.plans.protocol import Protocol
from operando.storage.runs import find_run

TIP_SIGMA_M = 6e-9  # the simulated probe's lateral averaging (SimSkpmPhysics.tip_footprint_m)


@pytest.fixture
def lab(tmp_path):
    profile = yaml.safe_load((PROFILES_DIR / "nanonis-sim.yaml").read_text())
    # 0.8 nm pixels (the space-charge widths here are 5-10 nm) over 200 nm: the simulated tip
    # drifts ~70 nm an hour (SimSkpmPhysics), and the interface must stay in the frame
    profile["instruments"]["skpm"]["settings"].update(pixels=256, lines=16, width_m=200e-9, height_m=50e-9)
    profile["sim"]["soc"] = 0.0  # empty (lithiated, at 0.01 V), not as assembled: charged from there
    path = tmp_path / "nanonis-fine.yaml"
    path.write_text(yaml.safe_dump(profile))
    lab = open_lab(path, data=tmp_path / "data")
    yield lab
    lab.close()


def test_maps_at_three_states_of_charge_give_the_simulators_step_and_width(lab):
    physics = lab.instruments.sim_lab.skpm
    assert physics.tip_footprint_m == TIP_SIGMA_M
    truth = []  # (step V, width m) while each map's event is emitted: the cell still held

    def record(name, doc):
        if name == "descriptor" and doc["name"] == "skpm":
            record.descriptor = doc["uid"]
        elif name == "event" and doc["descriptor"] == getattr(record, "descriptor", None):
            truth.append((physics.built_in_potential_V(), physics.space_charge_width_m()))

    steps = [
        {"kind": "cc", "c_rate": 2, "e_max_V": 1.3, "max_duration_h": 1},
        {"kind": "cc", "c_rate": 2, "e_max_V": 3.0, "max_duration_h": 1},
        {"kind": "cc", "c_rate": -2, "e_min_V": 0.01, "max_duration_h": 1},
    ]
    (uid,) = lab.RE(lab.operando(Protocol(name="three states", steps=steps)), record)
    run = find_run(lab.catalog.client, uid)
    assert run.metadata["stop"]["exit_status"] == "success"
    maps = np.asarray(run["skpm"]["skpm-cpd"].read())
    assert maps.shape == (3, 16, 256) and np.isfinite(maps).all()
    ewe = np.asarray(run["skpm"]["frame-Ewe"].read())
    # each map at the end of its step (the cell relaxing at open circuit from 1.3, 3.0, 0.01 V)
    assert 1.0 < ewe[0] <= 1.3 and 2.5 < ewe[1] <= 3.0 and ewe[2] < 0.5

    analysed = analyse_run(run, skpm_tip_sigma_m=TIP_SIGMA_M)
    fitted = analysis_json(analysed)["skpm"]["maps"]
    assert len(fitted) == len(truth) == 3
    steps_V = [t[0] for t in truth]
    assert max(steps_V) - min(steps_V) > 0.3  # three different states, not one state thrice
    for got, (step_V, width_m) in zip(fitted, truth):
        assert got["step_V"] == pytest.approx(step_V, rel=0.10)
        assert got["width_m"] == pytest.approx(width_m, rel=0.10)
        assert got["step_stderr"] < 0.01 * step_V and got["frame_soc"] is not None
