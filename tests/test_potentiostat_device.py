"""The potentiostat device on the simulated lab: limits before start, excursions, safe exits."""

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.run_engine import call_in_bluesky_event_loop

from operando.devices.potentiostat import Potentiostat, PotentiostatFault
from operando.devices.safety import LimitError
from operando.devices.techniques import ConstantCurrent, Limits, OpenCircuit, ScheduledStep
from operando.plans.operando import galvanostatic_cycling
from operando.sim_devices.backends.potentiostat import SimPotentiostatBackend
from operando.sim_devices.lab import build_sim_lab

LIMITS = Limits(e_min_V=0.01, e_max_V=3.0, i_max_A=0.005)


@pytest.fixture
def RE():
    return RunEngine({})


def make(RE, tmp_path, limits=LIMITS, speed=20000.0):
    lab = build_sim_lab("fe_li2o", active_mass_g=1e-3, speed=speed, sample_interval_s=1.0)
    dev = Potentiostat(SimPotentiostatBackend(lab), limits, tmp_path, name="potentiostat")
    call_in_bluesky_event_loop(dev.connect())
    return lab, dev


def step(technique, n=1, cycle=1):
    return ScheduledStep(technique=technique, cycle=cycle, step=n)


def test_out_of_window_setpoints_are_refused_before_the_cell_is_touched(RE, tmp_path):
    lab, dev = make(RE, tmp_path)
    steps = [
        step(ConstantCurrent(current_A=0.02, e_max_V=2.0), 1),  # |I| above i_max
        step(ConstantCurrent(current_A=-1e-3, e_min_V=-0.5), 2),  # cut-off below the window
    ]
    docs = []
    with pytest.raises(LimitError) as info:
        RE(galvanostatic_cycling(dev, steps, lab.clock), lambda n, d: docs.append(n))
    message = str(info.value)
    assert "step 1" in message and "exceeds |I| max" in message
    assert "step 2" in message and "e_min_V -0.5 V is outside the window" in message
    assert lab.potentiostat.start_time is None  # the engine never started
    assert "start" not in docs  # no run was opened


def test_sequence_streams_every_sample_and_ends_at_open_circuit(RE, tmp_path):
    lab, dev = make(RE, tmp_path)
    i = 1e-3
    steps = [
        step(OpenCircuit(duration_s=60), 1, cycle=0),
        step(ConstantCurrent(current_A=i, e_max_V=3.0, max_duration_s=1800), 2),
        step(ConstantCurrent(current_A=-i, e_min_V=0.01, max_duration_s=1800), 3),
    ]
    docs = []
    RE(galvanostatic_cycling(dev, steps, lab.clock), lambda n, d: docs.append((n, d)))
    names = [n for n, _ in docs]
    assert names[0] == "start" and names[-1] == "stop"
    assert docs[-1][1]["exit_status"] == "success"
    datums = [d for n, d in docs if n == "stream_datum" and d["stream_resource"]]
    ewe_res = next(d["uid"] for n, d in docs if n == "stream_resource" and d["data_key"] == "Ewe")
    rows = sum(d["indices"]["stop"] - d["indices"]["start"] for d in datums if d["stream_resource"] == ewe_res)
    assert rows == call_in_bluesky_event_loop(dev.get_index()) > 1000
    assert lab.potentiostat.done and lab.potentiostat.last_current == 0.0
    assert dev.stop_reason == "completed"
    # No event per sample: the echem stream has no events at all (the one event is the
    # end-of-run timebase record).
    echem_desc = next(d["uid"] for n, d in docs if n == "descriptor" and d["name"] == "echem")
    assert not [d for n, d in docs if n == "event" and d["descriptor"] == echem_desc]
    timebase = [d for n, d in docs if n == "event"]
    assert len(timebase) == 1 and timebase[0]["data"]["timebase-source"] == "host"


def test_excursion_opens_the_circuit_and_fails_the_run(RE, tmp_path):
    lab, dev = make(RE, tmp_path)
    # A charge limited only by time is allowed, but it drives E beyond the window.
    steps = [step(ConstantCurrent(current_A=4e-3, max_duration_s=4 * 3600), 1)]
    stops = []
    with pytest.raises(Exception) as info:
        RE(galvanostatic_cycling(dev, steps, lab.clock), lambda n, d: stops.append(d) if n == "stop" else None)
    assert isinstance(info.value, PotentiostatFault) or "excursion" in str(info.value)
    assert lab.potentiostat.done and lab.potentiostat.last_current == 0.0
    assert "excursion beyond limits" in lab.potentiostat.stop_reason
    assert stops and stops[0]["exit_status"] == "fail"
    assert "excursion" in stops[0]["reason"]


def test_an_error_in_the_plan_leaves_the_cell_at_open_circuit(RE, tmp_path):
    lab, dev = make(RE, tmp_path, speed=200.0)
    steps = [step(ConstantCurrent(current_A=1e-3, e_max_V=3.0, max_duration_s=3600), 1)]

    class Boom(RuntimeError):
        pass

    @bpp.stage_decorator([dev])
    @bpp.run_decorator()
    def plan():
        yield from bps.declare_stream(dev, name="echem", collect=True)
        yield from bps.kickoff(dev, wait=True)
        yield from bps.sleep(0.1)
        raise Boom("operator error")

    def whole():
        yield from bps.prepare(dev, steps, wait=True)
        yield from plan()

    with pytest.raises(Boom):
        RE(whole())
    assert lab.potentiostat.done and lab.potentiostat.last_current == 0.0
    assert dev.stop_reason == "run ended before the sequence completed"
    lab.sync()
    assert lab.potentiostat.drain()["Ewe"].size == 0  # nothing runs after the stop...
    assert call_in_bluesky_event_loop(dev.get_index()) > 0  # ...and what ran up to it is kept


def test_kickoff_without_prepare_is_refused(RE, tmp_path):
    lab, dev = make(RE, tmp_path)

    async def kickoff():
        await dev.kickoff()

    with pytest.raises(LimitError, match="prepare"):
        call_in_bluesky_event_loop(kickoff())
    assert lab.potentiostat.start_time is None
    assert np.isfinite(lab.cell.ewe_V)


def test_an_instant_older_than_the_samples_in_memory_is_read_from_the_file(RE, tmp_path):
    """The history in memory is bounded; the midpoint of a long frame at a high rate may be older
    than it reaches: the state then comes from the run's HDF5 file, the same as from all rows."""
    from operando.devices.echem_history import EchemHistory
    from operando.devices.potentiostat import STREAM_COLUMNS

    lab, dev = make(RE, tmp_path)
    dev.history = EchemHistory(capacity=50, columns=STREAM_COLUMNS)
    i = 1e-3
    steps = [
        step(ConstantCurrent(current_A=i, e_max_V=3.0, max_duration_s=600), 1),
        step(ConstantCurrent(current_A=-i, e_min_V=0.01, max_duration_s=600), 2),
    ]
    RE(galvanostatic_cycling(dev, steps, lab.clock))
    import h5py

    (path,) = tmp_path.glob("potentiostat-*.h5")
    with h5py.File(path, "r") as f:
        full = {k: f[f"entry/{k}"][:] for k in STREAM_COLUMNS}
    assert len(full["timestamp"]) > 200 and dev.history.first_time() > full["timestamp"][100]
    # the run's writer has closed: look up through an open writer holding the same rows
    from operando.devices.stream_writer import HDF5StreamWriter

    writer = HDF5StreamWriter(tmp_path / "copy.h5", STREAM_COLUMNS)
    writer.open()
    writer.append(full)
    dev._writer = writer
    for t in (full["timestamp"][10] + 0.3, full["timestamp"][300] + 0.7):
        state = dev.state_at(float(t))
        k = int(np.searchsorted(full["timestamp"], t) - 1)
        assert state.Ewe == pytest.approx(np.interp(t, full["timestamp"], full["Ewe"]))
        assert state.charge == pytest.approx(np.interp(t, full["timestamp"], full["charge"]))
        assert state.I == full["I"][k] and state.step == full["step"][k]
    writer.close()
