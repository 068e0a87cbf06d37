"""Frames against the echem stream, measured against the simulator's truth, in real time.

The simulated potentiostat keeps its own clock, an hour and half a second off the experiment
clock and drifting 200 ppm (a time-zone error plus a cheap crystal); the device layer must map
it. Each frame's echem state is taken at the frame's midpoint; the alignment error is how far,
in seconds, that point of the echem stream is from the true middle of the exposure.
"""

import numpy as np
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop

from operando.acquisition.session import OperandoRunEngine
from operando.devices.magnetometer import Magnetometer
from operando.devices.potentiostat import Potentiostat
from operando.devices.techniques import ConstantCurrent, Limits, ScheduledStep
from operando.plans.operando import DetectorSchedule, operando_cycling
from operando.sim_devices.backends.detectors import SimMagnetometerBackend
from operando.sim_devices.backends.potentiostat import SimPotentiostatBackend
from operando.sim_devices.cell import SimCell
from operando.sim_devices.lab import build_sim_lab

OFFSET_S, DRIFT_PPM = 3600.5, 200.0


@pytest.fixture(scope="module")
def aligned_run(tmp_path_factory):
    # A streaming instrument sends each sample as it is measured; the simulated engine hands
    # them over in chunks of its internal step, so that step is made 2 ms (USB-packet-like).
    SimCell.STEP_S, default = 0.002, SimCell.STEP_S
    try:
        lab = build_sim_lab("fe_li2o", active_mass_g=1e-3, speed=1.0, sample_interval_s=1e-3, soc=0.2)
    finally:
        SimCell.STEP_S = default
    pbackend = SimPotentiostatBackend(lab, instrument_clock=(OFFSET_S, DRIFT_PPM))
    pstat = Potentiostat(
        pbackend,
        Limits(e_min_V=0.0, e_max_V=3.0, i_max_A=1.0),
        tmp_path_factory.mktemp("h5"),
        name="potentiostat",
        clock=lab.clock,
    )
    soft = Magnetometer(SimMagnetometerBackend(lab), averaging_s=0.1, name="soft")
    hard = Magnetometer(SimMagnetometerBackend(lab, trigger_source=pbackend), averaging_s=0.1, name="hard")
    RE = OperandoRunEngine({})
    for d in (pstat, soft, hard):
        call_in_bluesky_event_loop(d.connect())
    # A fast charge so the potential moves visibly: 10 s of 50C.
    step = ConstantCurrent(current_A=lab.cell.params.c_rate_current_A(50.0), e_max_V=3.0, max_duration_s=8.0)
    docs = []
    RE(
        operando_cycling(
            pstat,
            [ScheduledStep(technique=step, cycle=1, step=1)],
            [DetectorSchedule.every(soft, 0.5, "soft"), DetectorSchedule.every(hard, 0.5, "hard")],
            lab.clock,
        ),
        lambda n, d: docs.append((n, d)),
    )
    _, echem = pstat.history.since(0)
    return pbackend, echem, docs


def alignment_errors(pbackend, echem, docs, stream):
    desc = next(d["uid"] for n, d in docs if n == "descriptor" and d["name"] == stream)
    errors = []
    for n, d in docs:
        if n != "event" or d["descriptor"] != desc:
            continue
        data = d["data"]
        if data["frame-time"] > echem["timestamp"][-1]:
            continue  # after the sequence ended nothing is recorded: the frame keeps the last state
        true_mid = 0.5 * (data[f"{stream}-exposure_start"] + data[f"{stream}-exposure_end"])
        # The instant of the instrument's echem record whose state the frame carries, against
        # the instrument's clock at the true middle of the exposure.
        err = data["frame-instrument_time"] - float(pbackend.instrument_time(true_mid))
        errors.append(err / (1 + DRIFT_PPM * 1e-6))
    return np.abs(np.array(errors))


def test_the_instrument_clock_is_mapped_and_recorded(aligned_run):
    pbackend, echem, docs = aligned_run
    (tb,) = [d["data"] for n, d in docs if n == "event" and "timebase-offset_s" in d["data"]]
    assert tb["timebase-source"] == "instrument"
    assert tb["timebase-offset_s"] == pytest.approx(-OFFSET_S, abs=0.01)
    assert tb["timebase-drift_ppm"] == pytest.approx(-DRIFT_PPM, abs=150)  # 8 s is a short baseline
    # Stored timestamps are on the experiment clock, instrument times kept beside them.
    assert np.all(np.abs(echem["timestamp"] - echem["instrument_time"] + OFFSET_S) < 0.01)


def test_software_timed_frames_align_within_a_millisecond(aligned_run):
    errors = alignment_errors(*aligned_run, "soft")
    print(
        f"\nsoftware-timed: {errors.size} frames, alignment error max {errors.max() * 1e3:.3f} ms, "
        f"median {np.median(errors) * 1e3:.3f} ms"
    )
    assert errors.size >= 10
    assert errors.max() <= 1e-3


def test_hardware_triggered_frames_share_the_echem_time_base(aligned_run):
    errors = alignment_errors(*aligned_run, "hard")
    print(
        f"\nhardware-triggered: {errors.size} frames, alignment error max {errors.max() * 1e6:.3f} us, "
        f"median {np.median(errors) * 1e6:.3f} us"
    )
    assert errors.size >= 10
    # The edge is a sample instant of the echem record itself: only the drift estimate's error
    # over half an exposure (tens of ppm x 50 ms: microseconds) can separate them.
    assert errors.max() <= 25e-6
