"""The profile's `field_stable` suspender on a field-controlling magnetometer (backend mpms): a field
change mid-run (ramp, then relaxation) suspends acquisition and the run resumes once the magnet
is stable again; cycling goes on throughout. Experiment time on the virtual clock."""

import threading
import time

from bluesky.run_engine import call_in_bluesky_event_loop

from operando.acquisition.session import OperandoRunEngine
from operando.devices.magnetometer import Magnetometer
from operando.devices.potentiostat import Potentiostat
from operando.devices.techniques import ConstantCurrent, Limits, OpenCircuit, ScheduledStep
from operando.plans.operando import DetectorSchedule, operando_cycling
from operando.plans.suspenders import SuspenderRule, build_suspender
from operando.sim_devices.backends.mpms import SimMpmsBackend
from operando.sim_devices.backends.potentiostat import SimPotentiostatBackend
from operando.sim_devices.lab import build_sim_lab

LIMITS = Limits(e_min_V=0.01, e_max_V=3.0, i_max_A=0.01)


def test_a_field_leaving_stable_suspends_the_run_and_it_resumes_when_relaxed(tmp_path):
    RE = OperandoRunEngine({})
    RE.record_interruptions = True
    lab = build_sim_lab("fe_li2o", active_mass_g=1e-3, speed=1000.0, sample_interval_s=1.0, clock="virtual")
    pstat = Potentiostat(SimPotentiostatBackend(lab), LIMITS, tmp_path, name="potentiostat")
    backend = SimMpmsBackend(lab, field_T=1.0, temperature_K=300.0)
    mag = Magnetometer(backend, averaging_s=1.0, name="magnetometer", field_range_T=(-7, 7))
    for d in (pstat, mag):
        call_in_bluesky_event_loop(d.connect())
    rule = SuspenderRule(watch="magnetometer.field_stable", when=False, echem="continue")
    suspender = build_suspender(rule, {"magnetometer": mag}, pstat, lab.clock)
    i = lab.cell.params.c_rate_current_A(1.0)
    steps = [
        ScheduledStep(technique=OpenCircuit(duration_s=300), cycle=0, step=1),
        ScheduledStep(technique=ConstantCurrent(current_A=i, e_max_V=3.0, max_duration_s=3 * 3600), cycle=1, step=2),
    ]
    change = {}

    async def new_field():
        change["at"] = lab.clock.time()
        await backend.set_field(1.2, 0.01)  # 20 s ramp, then the magnet relaxes (minutes)
        change["stable_at"] = backend.magnet.field_stable_at(0)

    def later():
        time.sleep(1.0)
        call_in_bluesky_event_loop(new_field())

    threading.Thread(target=later, daemon=True).start()
    docs = []
    detectors = [DetectorSchedule.every(mag, 30.0, "magnetometer")]
    RE(operando_cycling(pstat, steps, detectors, lab.clock, suspenders=[suspender]), lambda n, d: docs.append((n, d)))

    def events(stream):
        uids = {d["uid"] for n, d in docs if n == "descriptor" and d["name"] == stream}
        return [d["data"] for n, d in docs if n == "event" and d["descriptor"] in uids]

    assert docs[-1][1]["exit_status"] == "success"
    (suspension,) = events("interruptions")
    assert "magnetometer.field_stable" in suspension["interruption"]
    frames = events("magnetometer")
    starts = [f["magnetometer-exposure_start"] for f in frames]
    # Nothing measured while the field ramped and relaxed (the first 60 s allow for the trigger
    # in flight and the 50 ms status poll at 1000x), and acquisition came back after.
    assert not [t for t in starts if change["at"] + 60.0 < t < change["stable_at"]]
    after = [f for f in frames if f["magnetometer-exposure_start"] >= change["stable_at"]]
    assert after and all(abs(f["magnetometer-field"] - 1.2) < 1e-4 for f in after)
    assert any(t < change["at"] for t in starts)  # it had been measuring before
    _, cols = pstat.history.since(0)
    assert (cols["I"][cols["step"] == 2] > 0).all()  # cycling went on through the suspension
