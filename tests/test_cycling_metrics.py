"""Cycling results: capacity, energy, mean voltages, efficiencies and retention per cycle, exact
on a synthetic record, and what `operando analyse` reports for a simulated cycling run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from operando.acquisition.cli import main as cli
from operando.acquisition.config import PROFILES_DIR
from operando.analysis.cycling import cycle_capacities, cycle_metrics


def _record():
    """Cycle 1: charge 1 mAh with E rising 1 → 2 V, discharge 0.9 mAh with E 1.8 → 0.8 V;
    cycle 2: the same charge, discharge 0.72 mAh (80 % of the first)."""

    def leg(cycle, sign, q_mAh, e0, e1, n=101):
        return np.full(n, cycle), np.full(n, sign * 1e-3), np.linspace(0, q_mAh, n), np.linspace(e0, e1, n)

    legs = [
        leg(1, +1, 1.0, 1.0, 2.0),
        leg(1, -1, 0.9, 1.8, 0.8),
        leg(2, +1, 1.0, 1.0, 2.0),
        leg(2, -1, 0.72, 1.8, 1.08),
    ]
    cycle, current, ewe, charge = [], [], [], []
    q = 0.0
    for c, i, dq, e in legs:
        # the running charge column: up on charge, down on discharge; each leg starts where the last ended
        step = np.diff(dq, prepend=0.0)
        q_leg = q + np.cumsum(np.sign(i) * step)
        cycle.append(c), current.append(i), ewe.append(e), charge.append(q_leg)
        q = q_leg[-1]
    return (np.concatenate(a) for a in (cycle, current, charge, ewe))


def test_metrics_of_a_synthetic_record_are_exact():
    cycle, current, charge, ewe = _record()
    first, second = cycle_metrics(cycle, current, charge, ewe)
    assert first.charge_mAh == pytest.approx(1.0) and first.discharge_mAh == pytest.approx(0.9)
    assert first.charge_mWh == pytest.approx(1.5) and first.discharge_mWh == pytest.approx(0.9 * 1.3)
    assert first.coulombic_efficiency == pytest.approx(0.9)
    assert first.energy_efficiency == pytest.approx(0.9 * 1.3 / 1.5)
    assert first.mean_charge_V == pytest.approx(1.5) and first.mean_discharge_V == pytest.approx(1.3)
    assert first.hysteresis_V == pytest.approx(0.2)
    assert first.retention == pytest.approx(1.0) and second.retention == pytest.approx(0.8)
    # the capacities are those the run summary has always shown
    caps = cycle_capacities(cycle, current, charge)
    assert [c.discharge_mAh for c in caps] == pytest.approx([first.discharge_mAh, second.discharge_mAh])


def test_analyse_reports_cycling_for_a_galvanostatic_run(tmp_path, capsys):
    profile = tmp_path / "sim-virtual.yaml"
    profile.write_text((PROFILES_DIR / "sim.yaml").read_text().replace("  seed: 0\n", "  seed: 0\n  clock: virtual\n"))
    proto = tmp_path / "two.yaml"
    proto.write_text(
        # the cell as assembled rests at 2.9 V: topped up to 3.0 V (cycle 0), then two full cycles
        "name: two cycles\nsteps:\n  - {kind: cc, c_rate: 1, e_max_V: 3.0, max_duration_h: 1}\n"
        "  - kind: loop\n    repeat: 2\n    steps:\n"
        "      - {kind: cc, c_rate: -1, e_min_V: 0.01, max_duration_h: 2}\n"
        "      - {kind: cc, c_rate: 1, e_max_V: 3.0, max_duration_h: 2}\n"
    )
    data = str(tmp_path / "data")
    assert (
        cli(
            ["run", str(proto), "--profile", str(profile), "--speed", "20000", "--quiet", "--no-report", "--data", data]
        )
        == 0
    )
    capsys.readouterr()
    assert cli(["analyse", "-1", "--data", data]) == 0
    text = capsys.readouterr().out
    assert "Cycling (3 cycles; specific per 2 mg of active material)" in text and "CE/%" in text and "EE/%" in text
    assert cli(["analyse", "-1", "--data", data, "--json"]) == 0
    cycles = json.loads(capsys.readouterr().out)["cycling"]
    assert [c["cycle"] for c in cycles] == [0, 1, 2]
    assert cycles[0]["discharge_mAh"] == 0 and "Q_ch/Q_dis (discharge first)" not in text  # mixed order
    cycles = cycles[1:]
    for c in cycles:
        assert c["discharge_first"]
        assert 0.95 < c["coulombic_efficiency"] <= 1.0001 and 0.5 < c["energy_efficiency"] < 1.0
        assert c["hysteresis_V"] > 0 and c["discharge_mAh_g"] == pytest.approx(c["discharge_mAh"] / 0.002)
    assert cycles[0]["retention"] == 1.0 and 0.9 < cycles[1]["retention"] <= 1.05
