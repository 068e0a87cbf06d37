"""The TCP simulator driven by pymeasure's unmodified Keithley2450 over pyvisa-py, its SCPI error
queue, the CLI that serves it, and a connection lost mid-run."""

import asyncio
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.run_engine import call_in_bluesky_event_loop
from pymeasure.instruments.keithley import Keithley2450

from operando.devices.backends.keithley2450 import Keithley2450Backend
from operando.devices.potentiostat import Potentiostat, PotentiostatFault
from operando.devices.techniques import ConstantCurrent, Limits, ScheduledStep
from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.clock import SimClock
from operando.sim_devices.wire.keithley2450_server import Keithley2450Server

PARAMS = preset("fe_li2o")


def connect(resource):
    return Keithley2450(resource, visa_library="@py", read_termination="\n", write_termination="\n", timeout=2000)


def test_pymeasure_reads_a_galvanostatic_discharge():
    i = -PARAMS.c_rate_current_A(2.0)
    with Keithley2450Server(SimCell(PARAMS, soc=0.8), SimClock(speed=500)) as server:
        k = connect(server.resource)
        assert k.id.startswith("KEITHLEY INSTRUMENTS,MODEL 2450")
        k.apply_current(compliance_voltage=4.0)  # :SOUR:FUNC CURR, auto range, VLIM, SYST:ERR?
        k.measure_voltage()
        k.source_current = i
        k.enable_source()
        volts = []
        for _ in range(6):
            volts.append(k.voltage)
            time.sleep(0.05)
        assert np.all(np.diff(volts) < 0)  # discharging: the voltage falls read after read
        k.measure_current()
        assert k.current == pytest.approx(i, rel=1e-3) and k.source_current == pytest.approx(i, rel=1e-5)
        k.disable_source()
        assert k.source_enabled is False
        assert k.check_errors() == []
        k.adapter.close()


def test_voltage_compliance_holds_the_limit_and_the_current_falls():
    i = PARAMS.c_rate_current_A(2.0)
    with Keithley2450Server(SimCell(PARAMS, soc=0.3), SimClock(speed=2000)) as server:
        k = connect(server.resource)
        rest = float(k.ask(":MEAS:VOLT?"))
        limit = round(rest + 0.3, 3)
        k.apply_current(compliance_voltage=limit)
        k.source_current = i
        k.enable_source()
        k.measure_voltage()
        volts = []
        for _ in range(30):
            volts.append(k.voltage)
            time.sleep(0.02)
        k.measure_current()
        currents = [k.current for _ in range(3)]
        k.disable_source()
        assert max(volts) == pytest.approx(limit, abs=1e-4)  # held at the limit ...
        assert 0 < currents[-1] < 0.9 * i  # ... while the current fell below the setpoint
        k.adapter.close()


def test_unknown_header_queues_minus_113():
    with Keithley2450Server(SimCell(PARAMS), SimClock()) as server:
        k = connect(server.resource)
        k.write(":SOUR:BOGUS 1")
        assert k.check_errors() == [[-113, '"Undefined header"']]
        assert k.next_error == [0, '"No error"']
        k.adapter.close()


def test_cli_serves_idn():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "operando.acquisition.cli",
            "sim",
            "serve",
            "keithley2450",
            "--port",
            "0",
            "--speed",
            "10",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("Serving keithley2450 on TCPIP::127.0.0.1::") and line.endswith("::SOCKET")
        k = connect(line.split(" on ")[1])
        assert k.id == "KEITHLEY INSTRUMENTS,MODEL 2450,SIM2450,1.7.12b"
        k.adapter.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_pymeasure_discharging_the_default_cell_reads_it_fall_from_near_3_V_to_lithium_plating():
    """`operando sim serve keithley2450` with no options: the cell as assembled (an iron oxide
    against lithium, 2.9 V), discharged at 1C through pymeasure's own client. Below 0 V it plates
    lithium at a small overpotential instead of falling without end."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "operando.acquisition.cli", "sim", "serve", "keithley2450", "--port", "0"]
    proc = subprocess.Popen([*cmd, "--speed", "5000"], stdout=subprocess.PIPE, text=True, env=env)
    try:
        k = connect(proc.stdout.readline().strip().split(" on ")[1])
        rest = float(k.ask(":MEAS:VOLT?"))
        assert rest == pytest.approx(2.9, abs=0.01)
        k.apply_current(compliance_voltage=4.0)
        k.measure_voltage()
        k.source_current = -PARAMS.c_rate_current_A(1.0)  # 1C of the default 1 mg electrode
        k.enable_source()
        volts, deadline = [], time.monotonic() + 3.0  # 1C for ~4 h of cell time at 5000x
        while time.monotonic() < deadline:
            volts.append(k.voltage)
        k.disable_source()
        k.adapter.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    volts = np.array(volts)
    assert 2.6 < volts[0] < 2.9  # near 3 V, minus the drop through the cell's resistance
    assert np.all(np.diff(volts) < 1e-3)  # falls (or stays) read after read
    assert volts.min() > -0.05  # lithium plating holds it just below 0 V
    assert -0.03 < volts[-1] < 0.0


@pytest.mark.parametrize("how", ["connection dropped", "server killed"])
def test_lost_instrument_faults_the_device_and_leaves_the_output_off(how):
    clock = SimClock(speed=200)
    with Keithley2450Server(SimCell(PARAMS, soc=0.8), clock) as server:
        backend = Keithley2450Backend(server.resource, clock, sample_interval_s=5, timeout_ms=500)
        step = ScheduledStep(
            technique=ConstantCurrent(current_A=-PARAMS.c_rate_current_A(1), e_min_V=0.5), cycle=1, step=1
        )
        with tempfile.TemporaryDirectory() as tmp:
            RunEngine({})
            dev = Potentiostat(backend, Limits(e_min_V=0, e_max_V=3.5, i_max_A=0.1), tmp, name="k", clock=clock)

            async def fly():
                await dev.connect()
                await dev.prepare([step])
                await dev.kickoff()
                await asyncio.sleep(0.3)
                assert server.simulator.output_on and len(dev.history.since(0)[1]["Ewe"]) > 5
                if how == "connection dropped":
                    server.drop_client()
                else:
                    server.stop()
                with pytest.raises(PotentiostatFault):
                    await asyncio.wait_for(dev.complete(), 10)

            call_in_bluesky_event_loop(fly())
        assert backend.done
        if how == "connection dropped":
            # open_circuit reconnected, switched it off and confirmed it (the server reads that
            # line on its own thread: allow it a moment)
            deadline = time.monotonic() + 3
            while server.simulator.output_on and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not server.simulator.output_on
            assert server.simulator.commands[-2:] == ["OUTPUT OFF", "OUTPUT?"]  # off, read back
