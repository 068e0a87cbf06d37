"""Fault injection: every fault reaches the device layer naming the instrument; cell stays safe."""

import asyncio

import numpy as np
import pytest

from operando.devices.potentiostat import Potentiostat, PotentiostatFault
from operando.devices.raman import RamanSpectrometer
from operando.devices.skpm import Skpm
from operando.devices.techniques import ConstantCurrent, Limits, OpenCircuit, ScheduledStep
from operando.sim_devices.backends.detectors import SimMagnetometerBackend, SimRamanBackend
from operando.sim_devices.backends.potentiostat import SimPotentiostatBackend
from operando.sim_devices.backends.skpm import SimSkpmBackend
from operando.sim_devices.faults import (
    Fault,
    FaultSchedule,
    InstrumentFault,
    WireFault,
    inject_faults,
)
from operando.sim_devices.lab import build_sim_lab

T0 = 1_800_000_000.0
RAISING = ["disconnect", "timeout", "garbled", "truncated"]


def lab():
    return build_sim_lab("fe_li2o", speed=1e6, soc=0.0, start_time=T0, clock="virtual")


def schedule(instrument, kind, **kw):
    return FaultSchedule(faults=[Fault(instrument=instrument, kind=kind, **kw)])


def test_schedule_is_validated_data():
    s = FaultSchedule.from_yaml("faults:\n  - {instrument: mag, kind: timeout, at_s: 60, duration_s: 30, delay_s: 5}\n")
    assert s.for_instrument("mag")[0].delay_s == 5 and s.for_instrument("raman") == []
    with pytest.raises(ValueError, match="kind"):
        FaultSchedule.from_yaml("faults: [{instrument: mag, kind: gremlins}]")
    with pytest.raises(ValueError, match="extra"):
        FaultSchedule.from_yaml("faults: [{instrument: mag, kind: slow, when: 3}]")


# ---- potentiostat: the error names it, and the cell ends at open circuit -------------------
@pytest.mark.parametrize("kind", RAISING)
def test_potentiostat_fault_stops_the_run_and_opens_the_circuit(kind, tmp_path, caplog):
    the_lab = lab()
    p = the_lab.cell.params
    steps = [
        ScheduledStep(technique=ConstantCurrent(current_A=p.c_rate_current_A(1.0), e_max_V=p.e_max_V), cycle=1, step=1),
        ScheduledStep(technique=OpenCircuit(duration_s=600), cycle=1, step=2),
    ]
    backend = inject_faults(
        SimPotentiostatBackend(the_lab),
        "potentiostat",
        schedule("potentiostat", kind, at_s=600, delay_s=5),
        the_lab.clock,
    )
    limits = Limits(e_min_V=p.e_min_V, e_max_V=p.e_max_V, i_max_A=0.01)

    async def go():
        dev = Potentiostat(backend, limits, tmp_path, poll_period_s=0.001, name="potentiostat")
        await dev.connect()
        await dev.prepare(steps)
        await dev.kickoff()
        with pytest.raises(PotentiostatFault, match=f"potentiostat: .*injected {kind} fault"):
            await dev.complete()
        reason = dev.stop_reason
        # Unstage tries the open circuit once more; a disconnected instrument cannot be reached
        # and the device says so in the log, without raising over the fault the run ended with
        # (in a several-cell run, the other channels' run must still close cleanly).
        await dev.unstage()
        return reason

    with caplog.at_level("ERROR", logger="operando.devices.potentiostat"):
        reason = asyncio.run(go())
    unreachable = [r for r in caplog.records if "open_circuit failed" in r.getMessage()]
    assert bool(unreachable) == (kind == "disconnect")
    assert reason.startswith("fault") and kind in reason
    engine = the_lab.potentiostat
    assert engine.done and not engine.running and engine.last_current == 0.0
    assert engine.stop_reason.startswith("fault")
    t_stop = the_lab.clock.time()
    engine.advance_to(t_stop + 120)  # later on, nothing flows
    assert the_lab.cell.current_A == 0.0
    assert 600 <= engine.time - T0  # it ran until the fault


# ---- detectors ---------------------------------------------------------------------------------
def detector(kind_of, the_lab, sched):
    if kind_of == "raman":
        return RamanSpectrometer(
            inject_faults(SimRamanBackend(the_lab), "raman", sched, the_lab.clock), 1.0, 1, name="raman"
        )
    if kind_of == "skpm":
        return Skpm(inject_faults(SimSkpmBackend(the_lab), "skpm", sched, the_lab.clock), 16, 4, name="skpm")
    raise ValueError(kind_of)


def measure_magnetometer(the_lab, sched, n=3):
    backend = inject_faults(SimMagnetometerBackend(the_lab), "magnetometer", sched, the_lab.clock)

    async def go():
        return [await backend.measure(10.0) for _ in range(n)]

    return asyncio.run(go())


@pytest.mark.parametrize("kind", RAISING)
@pytest.mark.parametrize("instrument", ["raman", "skpm"])
def test_detector_faults_reach_the_device_naming_the_instrument(instrument, kind):
    the_lab = lab()
    dev = detector(instrument, the_lab, schedule(instrument, kind, delay_s=7))

    async def go():
        await dev.connect()
        t = the_lab.clock.time()
        with pytest.raises(InstrumentFault, match=f"^{instrument}: .*injected {kind} fault"):
            await dev.trigger()
        return the_lab.clock.time() - t

    waited = asyncio.run(go())
    if kind == "timeout":
        assert waited == pytest.approx(7.0)  # the driver gave up after its timeout, on the clock


@pytest.mark.parametrize("kind", RAISING)
def test_magnetometer_faults_name_it(kind):
    with pytest.raises(InstrumentFault, match=f"^magnetometer: .*{kind}"):
        measure_magnetometer(lab(), schedule("magnetometer", kind))


def test_fault_window_opens_and_closes():
    readings = measure_magnetometer(lab(), schedule("magnetometer", "stuck", at_s=15, duration_s=20), n=6)
    moments = [r.moment_emu for r in readings]  # readings start at 0, 10, ..., 50 s
    assert moments[2] == moments[3] == moments[1]  # started at 20 and 30 s: frozen at the last good
    assert len(set(moments[:2] + moments[4:])) == 4  # before and after the window: alive
    assert [r.exposure_end - T0 for r in readings] == [10, 20, 30, 40, 50, 60]


def test_slow_and_drifting_instruments_are_silent_but_visible():
    slow = measure_magnetometer(lab(), schedule("magnetometer", "slow", delay_s=20), n=2)
    assert slow[1].exposure_start - slow[0].exposure_start == pytest.approx(30.0)
    drift = measure_magnetometer(lab(), schedule("magnetometer", "clock_drift", drift_ppm=1e4), n=3)
    assert drift[2].exposure_end - T0 == pytest.approx(30.0 * 1.01)


def test_stuck_potentiostat_freezes_ewe(tmp_path):
    the_lab = lab()
    p = the_lab.cell.params
    backend = inject_faults(
        SimPotentiostatBackend(the_lab), "potentiostat", schedule("potentiostat", "stuck", at_s=100), the_lab.clock
    )

    async def go():
        await backend.start(
            [
                ScheduledStep(
                    technique=ConstantCurrent(current_A=p.c_rate_current_A(1.0), e_max_V=p.e_max_V), cycle=1, step=1
                )
            ]
        )
        blocks = []
        for _ in range(6):
            await the_lab.clock.sleep(60)
            blocks.append(await backend.poll())
        return blocks

    blocks = asyncio.run(go())
    late = np.concatenate([b["Ewe"] for b in blocks[1:]])  # polled from 120 s on: stuck
    assert np.all(late == blocks[0]["Ewe"][-1])
    assert np.ptp(blocks[0]["Ewe"]) > 1e-3  # while healthy, Ewe moved under the current


# ---- wire level --------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["garbled", "truncated"])
def test_wire_fault_reaches_the_methodscript_driver(kind):
    from operando.devices.drivers.methodscript import MethodScriptDriver
    from operando.sim_devices.cell import SimCell, preset
    from operando.sim_devices.clock import SimClock
    from operando.sim_devices.wire.methodscript_server import MethodScriptSimulator

    sim = MethodScriptSimulator(SimCell(preset("fe_li2o")), SimClock(speed=100.0))
    sim.wire_fault = WireFault(kind)  # every reply line
    path = sim.start()
    try:
        with MethodScriptDriver(path, timeout_s=1.0) as drv:
            with pytest.raises(Exception, match=path):
                drv.firmware_version()
    finally:
        sim.stop()
    assert sim.wire_fault.hits >= 1


def test_a_stuck_spectrometer_freezes_light_and_dark_frames_each_at_their_own_last_good():
    """A stuck Raman repeats its last good spectrum, not a light frame in place of a dark (which
    would leave a near-zero, corrupted spectrum after the dark subtraction)."""
    the_lab = lab()
    backend = inject_faults(
        SimRamanBackend(the_lab), "raman", schedule("raman", "stuck", at_s=25, duration_s=100), the_lab.clock
    )
    raman = RamanSpectrometer(backend, 5.0, 2, name="raman", dark_rule="each_frame")

    async def frames(n):
        await raman.connect()
        out = []
        for _ in range(n):
            await raman.trigger()
            out.append(np.asarray(await raman.spectrum.get_value()))
        return out

    spectra = asyncio.run(frames(5))  # each frame: a 10 s dark, then 10 s of light
    good = spectra[0]
    peak = good.max()
    for s in spectra[2:4]:  # taken while stuck
        assert s.max() == pytest.approx(peak, rel=0.2)  # a spectrum, not dark minus dark
