"""Excursion dwell: the circuit opens once samples stay beyond the limits for ``excursion_s``,
measured on the simulator's clock; a shorter excursion is ridden through."""

import numpy as np
from bluesky import RunEngine
from bluesky.run_engine import call_in_bluesky_event_loop

from operando.devices.potentiostat import Potentiostat
from operando.devices.techniques import ConstantCurrent, ConstantPotential, Limits, ScheduledStep
from operando.plans.operando import galvanostatic_cycling
from operando.sim_devices.backends.potentiostat import SimPotentiostatBackend
from operando.sim_devices.lab import build_sim_lab

SPEED = 100.0  # the device polls every 20 ms of wall time: 2 s of simulated time


def _run(tmp_path, technique, limits, soc):
    RE = RunEngine({})  # its event loop connects the device
    lab = build_sim_lab("fe_li2o", active_mass_g=1e-3, speed=SPEED, sample_interval_s=1.0, soc=soc)
    dev = Potentiostat(SimPotentiostatBackend(lab), limits, tmp_path, name="potentiostat")
    call_in_bluesky_event_loop(dev.connect())
    stops = []
    try:
        RE(
            galvanostatic_cycling(dev, [ScheduledStep(technique=technique, cycle=1, step=1)], lab.clock),
            lambda name, doc: stops.append(doc) if name == "stop" else None,
        )
    except Exception:
        pass  # a fault fails the run; the stop document says why
    data = {k: np.asarray(v) for k, v in dev.history.since(0)[1].items()}
    return lab, dev, stops[0], data


def test_a_lasting_excursion_opens_the_circuit_after_the_configured_time(tmp_path):
    limits = Limits(e_min_V=0.01, e_max_V=3.0, i_max_A=0.01, excursion_s=30.0)
    # a charge limited only by time drives a nearly full cell beyond the window and keeps it there
    lab, dev, stop, data = _run(tmp_path, ConstantCurrent(current_A=4e-3, max_duration_s=3600), limits, soc=0.97)
    assert stop["exit_status"] == "fail" and "lasting" in stop["reason"]
    assert lab.potentiostat.done and lab.potentiostat.last_current == 0.0
    t, ewe, current = data["instrument_time"], data["Ewe"], data["I"]
    beyond = ewe > 3.0 + 0.02 * (3.0 - 0.01)
    t_first = t[np.argmax(beyond)]
    t_open = t[np.flatnonzero(current != 0)[-1]]  # the last sample still under current
    # opened no sooner than 30 s, and no later than one sample plus the poll latency after it
    assert 30.0 - 1.0 <= t_open - t_first <= 30.0 + 1.0 + 0.02 * SPEED + 1.0
    assert np.all(current[t > t_open] == 0)


def test_an_excursion_shorter_than_the_dwell_is_ridden_through(tmp_path):
    # stepping an empty cell to 0.5 V draws > 10 mA for ~10 s while the interface charges
    hold = ConstantPotential(e_V=0.5, duration_s=120)
    tolerant = Limits(e_min_V=0.01, e_max_V=3.0, i_max_A=0.01, excursion_s=30.0)
    _, dev, stop, data = _run(tmp_path, hold, tolerant, soc=0.0)
    assert stop["exit_status"] == "success" and dev.stop_reason == "completed"
    over = np.abs(data["I"]) > 0.01
    assert 3 <= over.sum() < 30  # the excursion happened, and ended on its own

    strict = Limits(e_min_V=0.01, e_max_V=3.0, i_max_A=0.01)  # excursion_s = 0: at once
    _, dev, stop, data = _run(tmp_path, hold, strict, soc=0.0)
    assert stop["exit_status"] == "fail" and "excursion beyond limits" in stop["reason"]
    assert data["instrument_time"][-1] - data["instrument_time"][0] < 10
