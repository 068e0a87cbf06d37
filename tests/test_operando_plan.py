"""The operando plan on the simulated lab: schedules in a run, holds, pause/resume, abort."""

import threading
import time

import numpy as np
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop
from bluesky.utils import RunEngineInterrupted

from operando.acquisition.session import OperandoRunEngine
from operando.devices.magnetometer import Magnetometer
from operando.devices.potentiostat import Potentiostat
from operando.devices.raman import RamanSpectrometer
from operando.devices.techniques import ConstantCurrent, Limits, OpenCircuit, ScheduledStep
from operando.plans.operando import DetectorSchedule, operando_cycling
from operando.plans.schedules import AtBoundary, AtVoltage
from operando.sim_devices.backends.detectors import SimMagnetometerBackend, SimRamanBackend
from operando.sim_devices.backends.potentiostat import SimPotentiostatBackend
from operando.sim_devices.lab import build_sim_lab

LIMITS = Limits(e_min_V=0.01, e_max_V=3.0, i_max_A=0.01)


class Bench:
    """A simulated lab with its devices, a RunEngine and every document it emitted."""

    def __init__(self, tmp_path, speed=2000.0, interval=1.0):
        self.RE = OperandoRunEngine({})
        self.RE.record_interruptions = True
        # The virtual clock: a loaded host delays the run but skips no experiment time (on the
        # scaled clock two of these tests failed while other work loaded the machine).
        self.lab = build_sim_lab(
            "fe_li2o", active_mass_g=1e-3, speed=speed, sample_interval_s=interval, clock="virtual"
        )
        self.pstat = Potentiostat(SimPotentiostatBackend(self.lab), LIMITS, tmp_path, name="potentiostat")
        self.mag = Magnetometer(SimMagnetometerBackend(self.lab), averaging_s=1.0, name="magnetometer")
        self.raman = RamanSpectrometer(SimRamanBackend(self.lab), exposure_s=5.0, name="raman")
        for d in (self.pstat, self.mag, self.raman):
            call_in_bluesky_event_loop(d.connect())
        self.docs = []
        self.capacity = self.lab.cell.params.nominal_capacity_mAh

    def plan(self, steps, detectors, **kw):
        return operando_cycling(self.pstat, steps, detectors, self.lab.clock, capacity_mAh=self.capacity, **kw)

    def run(self, plan):
        return self.RE(plan, lambda n, d: self.docs.append((n, d)))

    def events(self, stream):
        uids = {d["uid"] for n, d in self.docs if n == "descriptor" and d["name"] == stream}
        return [d for n, d in self.docs if n == "event" and d["descriptor"] in uids]

    def echem(self):
        _, cols = self.pstat.history.since(0)
        return cols


def cycle_steps(bench, c_rate=2.0, cycles=1):
    i = bench.lab.cell.params.c_rate_current_A(c_rate)
    steps, n = [ScheduledStep(technique=OpenCircuit(duration_s=300), cycle=0, step=1)], 2
    for c in range(1, cycles + 1):
        for current, cut in ((i, {"e_max_V": 3.0}), (-i, {"e_min_V": 0.01})):
            tech = ConstantCurrent(current_A=current, max_duration_s=3 * 3600 / c_rate, **cut)
            steps.append(ScheduledStep(technique=tech, cycle=c, step=n))
            n += 1
    return steps


def test_frames_follow_their_schedules_and_carry_the_echem_state(tmp_path):
    b = Bench(tmp_path, speed=1000.0)  # a 120 s cadence is 0.12 s of wall time: room for load
    detectors = [
        DetectorSchedule.every(b.mag, 120.0, "magnetometer"),
        DetectorSchedule(b.raman, (AtBoundary(at="step_start"), AtVoltage(at_V=[1.5], direction="up")), "raman"),
    ]
    b.run(b.plan(cycle_steps(b), detectors))
    assert b.docs[-1][1]["exit_status"] == "success"
    echem = b.echem()
    mags = b.events("magnetometer")
    t = np.array([e["data"]["magnetometer-exposure_start"] for e in mags])
    duration = echem["timestamp"][-1] - echem["timestamp"][0]
    assert len(mags) >= 0.7 * duration / 120.0  # slots a slow frame overran are skipped
    assert np.median(np.diff(t)) == pytest.approx(120.0, abs=2.0)

    ramans = b.events("raman")
    reasons = [e["data"]["frame-trigger_reason"] for e in ramans]
    assert sum("step_start" in r for r in reasons) == 3  # OCV, charge, discharge
    assert sum("at_V" in r for r in reasons) == 1  # one upward crossing of 1.5 V, on charge
    crossing = next(e for e in ramans if "at_V" in e["data"]["frame-trigger_reason"])
    # The frame's echem state is the interpolated state at its exposure midpoint.
    mid = crossing["data"]["frame-time"]
    e_at = np.interp(mid, echem["timestamp"], echem["Ewe"])
    assert crossing["data"]["frame-Ewe"] == pytest.approx(e_at, abs=1e-9)
    assert crossing["data"]["frame-Ewe"] > 1.5 - 0.05  # taken just after the crossing
    assert crossing["data"]["frame-step"] == 2 and crossing["data"]["frame-I"] > 0
    start, end = crossing["data"]["raman-exposure_start"], crossing["data"]["raman-exposure_end"]
    # At 2000x a millisecond of wall-clock jitter is 2 s of experiment time: never shorter.
    assert mid == pytest.approx(0.5 * (start + end)) and end - start >= 5.0


def test_a_hold_rule_freezes_the_sequence_at_open_circuit_for_the_acquisition(tmp_path):
    b = Bench(tmp_path)
    b.raman = RamanSpectrometer(SimRamanBackend(b.lab), exposure_s=600.0, name="raman")  # a long map
    call_in_bluesky_event_loop(b.raman.connect())
    detectors = [DetectorSchedule(b.raman, (AtBoundary(at="step_end", hold="ocv"),), "raman")]
    steps = cycle_steps(b)
    b.run(b.plan(steps, detectors))
    echem = b.echem()
    charge_step = echem["step"] == 2
    # While held the current is zero inside a current step...
    held = charge_step & (echem["I"] == 0)
    assert held.sum() * b.lab.potentiostat.sample_interval_s == pytest.approx(600.0, abs=30.0)
    # ...and the step still ran its full course afterwards (ended on its cut-off).
    assert echem["Ewe"][charge_step].max() >= 3.0 - 0.01


def test_pause_holds_the_cell_and_resume_continues_where_it_stopped(tmp_path):
    b = Bench(tmp_path, speed=1000.0)
    steps = cycle_steps(b, c_rate=1.0)
    timer = threading.Timer(1.0, b.RE.request_pause)
    timer.start()
    with pytest.raises(RunEngineInterrupted):
        b.run(b.plan(steps, [DetectorSchedule.every(b.mag, 300.0, "magnetometer")]))
    assert b.RE.state == "paused"
    assert b.pstat.held and b.lab.potentiostat.last_current == 0.0
    step_at_pause = b.lab.potentiostat.current_step.step
    time.sleep(0.5)  # 500 s of experiment time at open circuit
    b.run_resume = b.RE.resume()
    assert b.docs[-1][1]["exit_status"] == "success"
    echem = b.echem()
    paused = (echem["step"] == step_at_pause) & (echem["I"] == 0)
    assert paused.sum() >= 400  # the pause is in the data, at open circuit
    assert np.all(np.diff(echem["timestamp"]) > 0)  # one time base, no gap, no repeat
    assert set(np.unique(echem["step"])) == {1, 2, 3}  # the sequence completed after resuming
    interruptions = b.events("interruptions")
    assert [e["data"]["interruption"] for e in interruptions] == ["pause", "resume"]


def test_abort_leaves_open_circuit_and_closes_the_run_with_its_reason(tmp_path):
    b = Bench(tmp_path, speed=1000.0)
    timer = threading.Timer(1.0, b.RE.request_pause)
    timer.start()
    with pytest.raises(RunEngineInterrupted):
        b.run(b.plan(cycle_steps(b, c_rate=1.0), []))
    b.RE.abort(reason="operator saw smoke")
    stop = b.docs[-1][1]
    assert b.docs[-1][0] == "stop" and stop["exit_status"] == "abort"
    assert stop["reason"] == "operator saw smoke"
    assert b.lab.potentiostat.done and b.lab.potentiostat.last_current == 0.0
    b.lab.sync()
    assert b.lab.potentiostat.drain()["Ewe"].size == 0
    # Everything measured before the abort was announced to the catalog.
    ewe_res = next(d["uid"] for n, d in b.docs if n == "stream_resource" and d["data_key"] == "Ewe")
    announced = max(d["indices"]["stop"] for n, d in b.docs if n == "stream_datum" and d["stream_resource"] == ewe_res)
    assert announced == b.pstat.history.count


@pytest.mark.parametrize(
    "rule, trip, clear, echem_held",
    [
        (
            {"watch": "magnetometer.temperature", "outside": (295, 305), "echem": "continue"},
            lambda b: setattr(b.mag_backend, "temperature_K", 320.0),
            lambda b: setattr(b.mag_backend, "temperature_K", 300.0),
            False,
        ),
        (
            {"watch": "magnetometer.field_stable", "when": False, "echem": "continue"},
            lambda b: setattr(b.mag_backend, "field_stable", False),
            lambda b: setattr(b.mag_backend, "field_stable", True),
            False,
        ),
        (
            {"watch": "raman.interlock_closed", "when": False, "echem": "hold"},
            lambda b: setattr(b.raman_backend, "interlock_closed", False),
            lambda b: setattr(b.raman_backend, "interlock_closed", True),
            True,
        ),
        (
            {"watch": "magnetometer.connected", "when": False, "echem": "hold"},
            lambda b: setattr(b.mag_backend, "connected", False),
            lambda b: setattr(b.mag_backend, "connected", True),
            True,
        ),
    ],
    ids=["temperature-out-of-band", "field-not-stable", "laser-interlock-open", "disconnected"],
)
def test_each_suspender_pauses_acquisition_and_resumes_when_cleared(tmp_path, rule, trip, clear, echem_held):
    from operando.plans.suspenders import SuspenderRule, build_suspender

    b = Bench(tmp_path, speed=1000.0)
    b.mag_backend, b.raman_backend = b.mag._backend, b.raman._backend
    suspender = build_suspender(SuspenderRule(**rule), {"magnetometer": b.mag, "raman": b.raman}, b.pstat, b.lab.clock)
    detectors = [DetectorSchedule.every(b.mag, 30.0, "magnetometer"), DetectorSchedule.every(b.raman, 60.0, "raman")]
    marks = {}

    def fault():
        time.sleep(1.0)
        marks["trip"] = time.time()
        trip(b)
        time.sleep(0.6)
        marks["clear"] = time.time()
        clear(b)

    threading.Thread(target=fault, daemon=True).start()
    b.run(b.plan(cycle_steps(b, c_rate=1.0), detectors, suspenders=[suspender]))
    assert b.docs[-1][1]["exit_status"] == "success"
    # bluesky records the suspension (with its justification), not its end.
    (suspension,) = b.events("interruptions")
    assert rule["watch"] in suspension["data"]["interruption"]
    suspended_at, resumed_at = suspension["time"], marks["clear"]
    assert marks["trip"] <= suspended_at < marks["trip"] + 1.0  # noticed within a few polls (50 ms)
    frames = [e["time"] for s in ("magnetometer", "raman") for e in b.events(s)]
    assert not any(suspended_at < t < resumed_at for t in frames)  # nothing acquired meanwhile
    assert any(t > resumed_at for t in frames)  # and acquisition came back
    echem = b.echem()
    in_current_step = echem["step"] >= 2
    held = np.count_nonzero(in_current_step & (echem["I"] == 0))
    if echem_held:
        assert held >= 300  # ~0.6 s wall at 1000x: the cell waited at open circuit
    else:
        assert held == 0  # cycling went on through the suspension
    assert set(np.unique(echem["step"])) == {1, 2, 3}


def test_a_failing_detector_costs_frames_not_the_run(tmp_path):
    b = Bench(tmp_path, speed=2000.0)
    b.raman._backend.connected = False  # and no suspender to wait for it
    detectors = [DetectorSchedule.every(b.raman, 600.0, "raman"), DetectorSchedule.every(b.mag, 300.0, "magnetometer")]
    b.run(b.plan(cycle_steps(b), detectors))
    assert b.docs[-1][1]["exit_status"] == "success"
    failures = b.events("frame_failures")
    assert len(failures) >= 3 and not b.events("raman")
    assert all(f["data"]["failure-detector"] == "raman" for f in failures)
    assert "ConnectionError" in failures[0]["data"]["failure-error"]
    assert len(b.events("magnetometer")) >= 3  # the other detector went on
    assert set(np.unique(b.echem()["step"])) == {1, 2, 3}


def test_abort_during_a_detector_frame_is_not_taken_for_a_frame_failure(tmp_path):
    # Frames back to back, so the abort lands while a trigger is in flight: it must end the run,
    # not be recorded as a failed frame while cycling goes on.
    b = Bench(tmp_path, speed=1000.0)
    b.raman = RamanSpectrometer(SimRamanBackend(b.lab), exposure_s=300.0, name="raman")
    call_in_bluesky_event_loop(b.raman.connect())
    threading.Timer(1.0, b.RE.request_pause).start()
    with pytest.raises(RunEngineInterrupted):
        b.run(b.plan(cycle_steps(b, c_rate=1.0), [DetectorSchedule.every(b.raman, 300.0, "raman")]))
    b.RE.abort(reason="stop now")
    assert b.docs[-1][0] == "stop" and b.docs[-1][1]["exit_status"] == "abort"
    assert not b.events("frame_failures")
    assert b.lab.potentiostat.done and b.lab.potentiostat.last_current == 0.0
