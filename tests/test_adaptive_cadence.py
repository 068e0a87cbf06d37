"""Adaptive detector cadence: frames follow the electrochemistry (plans/schedules.py Adaptive).

On the simulated nanocomposite (an intercalation plateau near 1.85 V: a dQ/dV peak), a detector
on ``adaptive_s`` takes several times more frames per mAh inside the peak than outside it, where
a fixed period takes the same number per mAh everywhere at constant current.
"""

import numpy as np
import pytest
from bluesky.run_engine import RunEngine, call_in_bluesky_event_loop

from operando.devices.magnetometer import Magnetometer
from operando.devices.potentiostat import Potentiostat
from operando.devices.techniques import ConstantCurrent, Limits, OpenCircuit, ScheduledStep
from operando.plans.operando import DetectorSchedule, operando_cycling
from operando.plans.schedules import Adaptive, EveryTime, ScheduleEvaluator
from operando.sim_devices.backends.detectors import SimMagnetometerBackend
from operando.sim_devices.backends.potentiostat import SimPotentiostatBackend
from operando.sim_devices.lab import build_sim_lab


def _samples(e, q, i):
    e = np.asarray(e, float)
    return {"Ewe": e, "charge": np.asarray(q, float), "I": np.asarray(i, float), "step": np.ones(e.size, int),
            "cycle": np.ones(e.size, int)}  # fmt: skip


def test_the_period_shortens_on_a_dqdv_peak_and_stays_long_on_a_slope_or_at_rest():
    ev = ScheduleEvaluator([Adaptive(adaptive_s=(60, 1200))], 0.0)
    assert ev.adaptive_period_s(0) == 1200  # nothing known yet
    # a sloping stretch: 1 V per mAh, then a plateau: 20 mV per mAh (dQ/dV 50x the slope's)
    q = np.linspace(0, 1, 201)
    ev.update(_samples(3.0 - q, -q, -np.ones_like(q)), 10.0)
    assert ev.adaptive_period_s(0) == pytest.approx(1200, rel=0.05)  # the mean so far is the slope
    q2 = np.linspace(1, 2, 201)[1:]
    ev.update(_samples(2.0 - 0.02 * (q2 - 1), -q2, -np.ones_like(q2)), 20.0)
    assert ev.adaptive_period_s(0) == 60  # far above the mean dQ/dV: the shortest period
    ev.update(_samples([1.98], [-2.0], [0.0]), 30.0)
    assert ev.adaptive_period_s(0) == 1200  # at rest: the longest
    follow_e = ScheduleEvaluator([Adaptive(adaptive_s=(60, 1200), follow="dedt")], 0.0)
    follow_e.update(_samples(3.0 - q, -q, -np.ones_like(q)), 10.0)
    follow_e.update(_samples(2.0 - 0.02 * (q2 - 1), -q2, -np.ones_like(q2)), 20.0)
    assert follow_e.adaptive_period_s(0) == 1200  # the potential hardly moves: the longest
    with pytest.raises(ValueError, match="must be in order"):
        Adaptive(adaptive_s=(600, 60))


def _frames_per_mAh(tmp_path, rules):
    """A C/2 discharge of the nanocomposite; frames per mAh inside / outside its dQ/dV peak."""
    RE = RunEngine({})  # the event loop the devices connect in
    lab = build_sim_lab("composite", active_mass_g=2e-3, speed=2000.0, sample_interval_s=10.0, soc=1.0,
                        clock="virtual")  # fmt: skip
    p = lab.cell.params
    pstat = Potentiostat(SimPotentiostatBackend(lab), Limits(e_min_V=1.0, e_max_V=3.0, i_max_A=0.01), tmp_path,
                         name="potentiostat")  # fmt: skip
    mag = Magnetometer(SimMagnetometerBackend(lab), averaging_s=1.0, name="magnetometer")
    for d in (pstat, mag):
        call_in_bluesky_event_loop(d.connect())
    steps = [
        ScheduledStep(technique=OpenCircuit(duration_s=60), cycle=0, step=1),
        ScheduledStep(technique=ConstantCurrent(current_A=-p.c_rate_current_A(0.5), e_min_V=1.0,
                                                max_duration_s=3 * 3600), cycle=1, step=2),
    ]  # fmt: skip
    docs = []
    RE(
        operando_cycling(pstat, steps, [DetectorSchedule(mag, tuple(rules), "magnetometer")], lab.clock,
                         capacity_mAh=p.nominal_capacity_mAh),
        lambda name, doc: docs.append((name, doc)),
    )  # fmt: skip
    assert docs[-1][1]["exit_status"] == "success"
    _, echem = pstat.history.since(0)
    on = echem["step"] == 2
    e, q = echem["Ewe"][on], echem["charge"][on]
    # the peak: where dQ/dV (over 20 mV) is above twice its median
    grid = np.arange(e.min() + 0.02, e.max() - 0.02, 0.01)
    q_at = np.interp(grid, e[::-1], q[::-1])
    dqdv = np.abs(np.gradient(q_at, grid))
    in_peak = dqdv > 2 * np.median(dqdv)
    peak_lo, peak_hi = grid[in_peak].min(), grid[in_peak].max()
    frame_e = np.array([d["data"]["frame-Ewe"] for n, d in docs if n == "event" and "frame-Ewe" in d["data"]])
    frame_e = frame_e[(frame_e > e.min() + 0.02) & (frame_e < e.max() - 0.02)]
    inside = (frame_e >= peak_lo) & (frame_e <= peak_hi)
    q_in = abs(np.interp(peak_hi, e[::-1], q[::-1]) - np.interp(peak_lo, e[::-1], q[::-1]))
    q_all = abs(q[-1] - q[0])
    return inside.sum() / q_in, (~inside).sum() / (q_all - q_in), len(frame_e)


def test_frames_cluster_at_the_cells_dqdv_peak(tmp_path):
    inside, outside, n = _frames_per_mAh(tmp_path / "adaptive", [Adaptive(adaptive_s=(30, 600))])
    assert n >= 15 and inside >= 3 * outside, (inside, outside, n)
    fixed_in, fixed_out, fixed_n = _frames_per_mAh(tmp_path / "fixed", [EveryTime(every_s=120)])
    assert fixed_in == pytest.approx(fixed_out, rel=0.35), (fixed_in, fixed_out, fixed_n)  # uniform per mAh
