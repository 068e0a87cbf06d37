"""The real MethodSCRIPT driver against the wire-level EmStat4 simulator on a pty."""

import asyncio
import time

import numpy as np
import pytest

from operando.devices.backends.methodscript import MethodScriptPotentiostatBackend
from operando.devices.backends.methodscript_steps import build_script
from operando.devices.drivers.methodscript import MethodScriptDriver, MethodScriptError
from operando.devices.drivers.methodscript_protocol import (
    AbortAccepted,
    DataPackage,
    EndOfScript,
    MeasLoopEnd,
    ScriptOptions,
)
from operando.devices.techniques import (
    ECHEM_COLUMNS,
    ConstantCurrent,
    OpenCircuit,
    ScheduledStep,
)
from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.clock import SimClock
from operando.sim_devices.wire.methodscript_server import MethodScriptSimulator

SPEED = 5000.0  # simulated seconds per wall second: a 4C charge in well under a second


@pytest.fixture
def params():
    return preset("fe_li2o")


@pytest.fixture
def sim(params):
    clock = SimClock(speed=SPEED)
    simulator = MethodScriptSimulator(SimCell(params, soc=0.0), clock)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def drv(sim):
    with MethodScriptDriver(sim.path, timeout_s=2.0) as d:
        yield d


def cc(current, step=1, cycle=1, **kw):
    return ScheduledStep(technique=ConstantCurrent(current_A=current, **kw), cycle=cycle, step=step)


def rest(duration, step=2, cycle=1):
    return ScheduledStep(technique=OpenCircuit(duration_s=duration), cycle=cycle, step=step)


def test_identity(drv):
    assert drv.firmware_version().startswith("es4_hr")
    assert drv.serial_number() == "ES4SIM00001"
    assert drv.methodscript_version()


def test_galvanostatic_charge_stops_at_cutoff(drv, params):
    current = params.c_rate_current_A(4.0)
    step = cc(current, e_max_V=params.e_max_V, max_duration_s=3 * 3600)
    drv.run_script(build_script([step]))
    packages = list(drv.read_packages(idle_timeout_s=5.0))
    t = np.array([p.first("eb").value for p in packages])
    ewe = np.array([p.first("ab").value for p in packages])
    i = np.array([p.first("ba").value for p in packages])
    assert 50 < len(packages) < 3 * 3600  # the cut-off ended it, not the time limit
    assert np.all(np.diff(t) == pytest.approx(1.0))
    assert ewe[-1] >= params.e_max_V > ewe[-2]
    assert ewe[-1] - ewe[0] > 1.0 and np.mean(np.diff(ewe) > 0) > 0.95
    assert i == pytest.approx(current, rel=1e-6)
    assert {p.first("ja").value for p in packages} == {1}


def test_abort_stops_the_script(drv, sim):
    drv.run_script(build_script([rest(10 * 24 * 3600)]))  # ten simulated days
    first = [p for _, p in zip(range(3), drv.read_packages(idle_timeout_s=2.0))]
    assert len(first) == 3
    events = drv.abort()
    kinds = [type(e) for e in events]
    assert AbortAccepted in kinds and kinds[-2:] == [MeasLoopEnd, EndOfScript]
    assert len([e for e in events if isinstance(e, DataPackage)]) < 1000
    assert not sim.running
    assert drv.serial_number() == "ES4SIM00001"  # the instrument answers again at once


def test_abort_during_a_charge_leaves_the_cell_at_open_circuit(drv, sim, params):
    # the script's on_finished block switches the cell off: the simulated cell must stop
    # passing current then (the fault matrix reads it to judge a run safe)
    drv.run_script(build_script([cc(params.c_rate_current_A(0.2), max_duration_s=24 * 3600)]))
    first = [p for _, p in zip(range(3), drv.read_packages(idle_timeout_s=2.0))]
    assert sim.firmware.cell.current_A == pytest.approx(params.c_rate_current_A(0.2))
    assert first[-1].first("ba").value == pytest.approx(params.c_rate_current_A(0.2))
    drv.abort()
    assert not sim.running
    assert sim.firmware.cell.current_A == 0.0


def test_unknown_command_and_bad_script_raise(drv):
    with pytest.raises(MethodScriptError) as info:
        drv.send_command("x")
    assert info.value.port == drv.port and info.value.code == 0x0003
    drv.run_script(["var e", "meas_loop_ocp e 1.5 10", "endloop"])  # no decimal points
    with pytest.raises(MethodScriptError, match="0x4001"):
        list(drv.read_packages(idle_timeout_s=2.0))


def test_backend_streams_echem_columns(sim, params):
    drv = MethodScriptDriver(sim.path, timeout_s=2.0)
    clock = sim.firmware.clock
    current = params.c_rate_current_A(8.0)
    steps = [
        cc(current, step=1, e_max_V=params.e_max_V, max_duration_s=2 * 3600),
        rest(60, step=2),
        cc(-current, step=3, cycle=1, e_min_V=params.e_min_V, max_duration_s=2 * 3600),
    ]
    backend = MethodScriptPotentiostatBackend(
        drv, ScriptOptions(sample_interval_s=2.0, steps_per_script=2), clock=clock.time
    )

    async def run():
        blocks = []
        await backend.start(steps)
        while not backend.done:
            blocks.append(await backend.poll())
            await asyncio.sleep(0.01)
        blocks.append(await backend.poll())
        await backend.open_circuit("test over")
        return blocks

    t_start = clock.time()
    blocks = asyncio.run(run())
    drv.close()
    for block in blocks:
        assert list(block) == list(ECHEM_COLUMNS)
        for name, (_unit, dtype) in ECHEM_COLUMNS.items():
            assert block[name].dtype == np.dtype(dtype)
    data = {k: np.concatenate([b[k] for b in blocks]) for k in ECHEM_COLUMNS}
    assert sorted(set(data["step"])) == [1, 2, 3] and set(data["cycle"]) == {1}
    assert len(backend.time_offsets_s) == 2  # two scripts: steps 1-2, then step 3
    t = data["timestamp"]
    assert t[0] == pytest.approx(t_start + 2.0, abs=0.5 * SPEED)  # on the experiment clock
    assert np.all(np.diff(t) > 0)
    charge, step = data["charge"], data["step"]
    assert charge[step == 1][-1] > 0.5 * params.nominal_capacity_mAh
    assert np.all(data["I"][step == 2] == 0)
    assert charge[step == 3][-1] < charge[step == 1][-1]
    assert data["Ewe"][step == 3][-1] <= params.e_min_V


def test_samples_per_second_from_the_pty(params):
    """Prints how fast the driver parses packages from the simulator (no timing assertion)."""
    sim = MethodScriptSimulator(SimCell(params, soc=0.0), SimClock(speed=1e7))
    try:
        with MethodScriptDriver(sim.start(), timeout_s=2.0) as drv:
            drv.run_script(build_script([rest(5000)], ScriptOptions(sample_interval_s=0.5)))
            t0 = time.perf_counter()
            n = sum(1 for _ in drv.read_packages(idle_timeout_s=5.0))
            elapsed = time.perf_counter() - t0
    finally:
        sim.stop()
    assert n == 10_000
    print(f"\nMethodSCRIPT over pty: {n} packages in {elapsed:.3f} s = {n / elapsed:,.0f} samples/s")


def test_operando_sim_serve_prints_a_pty_the_driver_can_open():
    import subprocess
    import sys

    from operando.devices.drivers.methodscript import MethodScriptDriver

    proc = subprocess.Popen(
        [sys.executable, "-m", "operando.acquisition.cli", "sim", "serve", "potentiostat-methodscript"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/")
        driver = MethodScriptDriver(path)
        try:
            assert driver.firmware_version()
        finally:
            driver.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
