"""Byte-exact transcripts of what the Keithley 2450 backend sends for each technique's set-up and
run, through pymeasure's own Keithley2450 on its ProtocolAdapter (`expected_protocol`): one wrong
byte, one missing or extra command fails. Time is a manual clock that jumps on every wait, so the
number of readings is exact."""

import asyncio

import numpy as np
import pytest
from pymeasure.instruments.keithley import Keithley2450
from pymeasure.test import expected_protocol

from operando.devices.backends.keithley2450 import Keithley2450Backend
from operando.devices.safety import UnsupportedTechnique
from operando.devices.techniques import (
    ConstantCurrent,
    ConstantCurrentConstantVoltage,
    ConstantPotential,
    CyclicVoltammetry,
    GalvanostaticEis,
    Gitt,
    LinearSweep,
    OpenCircuit,
    PotentiostaticEis,
    ScheduledStep,
)

READ = ':READ? "defbuffer1", READ, SOUR'
PREPARE = [
    ("*CLS", None),
    (":OUTP:CURR:SMOD HIMP", None),  # open circuit when off, before anything else
    (":OUTP:VOLT:SMOD HIMP", None),
    (":SOUR:CURR:READ:BACK ON", None),
    (":SOUR:VOLT:READ:BACK ON", None),
    (":SENS:VOLT:NPLC 1", None),
    (":SENS:CURR:NPLC 1", None),
    ("SYST:ERR?", '0,"No error"'),
]
CURRENT_SOURCE = [(":SOUR:FUNC CURR", None), (':SENS:FUNC "VOLT"', None)]
VOLTAGE_SOURCE = [(":SOUR:FUNC VOLT", None), (':SENS:FUNC "CURR"', None)]
OFF = [("OUTPUT OFF", None), ("OUTPUT?", "0")]  # off, and confirmed


class JumpClock:
    """Experiment time that jumps to the end of every wait (no real waiting)."""

    speed = 1.0

    def __init__(self):
        self.t = 1.0e9

    def time(self):
        return self.t

    def wall_seconds(self, seconds):
        self.t += seconds
        return 0.0


def run(technique, comm_pairs, interval_s=10.0):
    steps = [ScheduledStep(technique=technique, cycle=1, step=1)]
    with expected_protocol(Keithley2450, PREPARE + comm_pairs) as instrument:
        backend = Keithley2450Backend(instrument, JumpClock(), sample_interval_s=interval_s, min_command_wall_s=0)

        async def drive():
            await backend.start(steps)
            blocks = []
            while not backend.done:
                blocks.append(await backend.poll())
                await asyncio.sleep(0.001)
            blocks.append(await backend.poll())
            return {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}

        return asyncio.run(drive())


def test_ocv_is_zero_current_for_its_duration():
    rows = run(
        OpenCircuit(duration_s=20),
        CURRENT_SOURCE
        + [
            (":SOUR:CURR:VLIM 5", None),
            (":SOUR:CURR:LEV 0", None),
            ("OUTPUT ON", None),
            (READ, "1.5E+00,0.0E+00"),
            (READ, "1.5E+00,0.0E+00"),
            (READ, "1.5E+00,0.0E+00"),
        ]
        + OFF,
    )
    assert list(rows["timestamp"] - rows["timestamp"][0]) == [0.0, 10.0, 20.0]
    assert list(rows["Ewe"]) == [1.5] * 3 and list(rows["step"]) == [1] * 3


def test_cc_discharge_ends_at_its_cutoff():
    rows = run(
        ConstantCurrent(current_A=-1e-3, e_min_V=1.0),
        CURRENT_SOURCE
        + [
            (":SOUR:CURR:VLIM 5", None),
            (":SOUR:CURR:LEV -0.001", None),
            ("OUTPUT ON", None),
            (READ, "1.2E+00,-1.0E-03"),
            (READ, "9.9E-01,-1.0E-03"),
        ]
        + OFF,
    )
    assert rows["charge"][-1] == pytest.approx(-1e-3 * 10 / 3.6)  # mA*h from I over time


def test_cc_charge_sets_its_voltage_limit_beyond_the_cutoff():
    run(
        ConstantCurrent(current_A=1e-3, e_max_V=3.0),
        CURRENT_SOURCE
        + [
            (":SOUR:CURR:VLIM 3.05", None),
            (":SOUR:CURR:LEV 0.001", None),
            ("OUTPUT ON", None),
            (READ, "3.01E+00,1.0E-03"),
        ]
        + OFF,
    )


def test_cccv_charge_uses_the_instruments_compliance():
    rows = run(
        ConstantCurrentConstantVoltage(current_A=1e-3, e_hold_V=2.8, i_cutoff_A=1e-4),
        CURRENT_SOURCE
        + [
            (":SOUR:CURR:VLIM 2.8", None),
            (":SOUR:CURR:LEV 0.001", None),
            ("OUTPUT ON", None),
            (READ, "2.5E+00,1.0E-03"),
            (READ, "2.8E+00,5.0E-04"),
            (READ, "2.8E+00,5.0E-05"),
        ]
        + OFF,
    )
    assert len(rows["I"]) == 3


def test_cccv_discharge_switches_to_a_voltage_source():
    rows = run(
        ConstantCurrentConstantVoltage(current_A=-1e-3, e_hold_V=1.2, i_cutoff_A=1e-4),
        CURRENT_SOURCE
        + [
            (":SOUR:CURR:VLIM 5", None),
            (":SOUR:CURR:LEV -0.001", None),
            ("OUTPUT ON", None),
            (READ, "1.3E+00,-1.0E-03"),
            (READ, "1.19E+00,-1.0E-03"),
        ]
        + OFF
        + VOLTAGE_SOURCE
        + [
            (":SOUR:VOLT:ILIM 0.001", None),
            (":SOUR:VOLT:LEV 1.2", None),
            ("OUTPUT ON", None),
            (READ, "-5.0E-04,1.2E+00"),
            (READ, "-5.0E-05,1.2E+00"),  # sensing current: I, then E
        ]
        + OFF,
    )
    assert list(rows["Ewe"][-2:]) == [1.2, 1.2] and list(rows["I"][-2:]) == [-5e-4, -5e-5]


def test_ca_holds_with_the_current_limit():
    run(
        ConstantPotential(e_V=2.0, duration_s=20),
        VOLTAGE_SOURCE
        + [
            (":SOUR:VOLT:ILIM 0.1", None),
            (":SOUR:VOLT:LEV 2", None),
            ("OUTPUT ON", None),
            (READ, "1.0E-04,2.0E+00"),
            (READ, "5.0E-05,2.0E+00"),
            (READ, "2.0E-05,2.0E+00"),
        ]
        + OFF,
    )


def test_lsv_is_a_staircase_one_reading_per_stair():
    levels = ["2", "2.01", "2.02"]
    pairs = []
    for level in levels:
        pairs += [(f":SOUR:VOLT:LEV {level}", None)] + ([("OUTPUT ON", None)] if level == "2" else [])
        pairs += [(READ, f"1.0E-05,{level}")]
    run(
        LinearSweep(e_start_V=2.0, e_end_V=2.03, scan_rate_V_s=1e-3, e_step_V=0.01),
        VOLTAGE_SOURCE
        + [(":SOUR:VOLT:ILIM 0.1", None)]
        + pairs
        + [(":SOUR:VOLT:LEV 2.03", None), (READ, "1.0E-05,2.03")]
        + OFF,
    )


def test_cv_turns_at_its_vertices():
    levels = ["2", "2.01", "2.02", "2.01", "2", "1.99", "1.98", "1.99"]
    pairs = []
    for k, level in enumerate(levels):
        if k == 0 or level != levels[k - 1]:
            pairs.append((f":SOUR:VOLT:LEV {level}", None))
        if k == 0:
            pairs.append(("OUTPUT ON", None))
        pairs.append((READ, f"1.0E-05,{level}"))
    rows = run(
        CyclicVoltammetry(e_start_V=2.0, e_vertex1_V=2.02, e_vertex2_V=1.98, scan_rate_V_s=1e-3, e_step_V=0.01),
        VOLTAGE_SOURCE
        + [(":SOUR:VOLT:ILIM 0.1", None)]
        + pairs
        + [(":SOUR:VOLT:LEV 2", None), (READ, "1.0E-05,2")]
        + OFF,
    )
    assert rows["timestamp"][-1] - rows["timestamp"][0] == pytest.approx(70.0)


def test_gitt_pulse_then_zero_current_relaxation():
    run(
        Gitt(current_A=1e-3, pulse_s=10, relax_s=10, max_pulses=1),
        CURRENT_SOURCE
        + [
            (":SOUR:CURR:VLIM 5", None),
            (":SOUR:CURR:LEV 0.001", None),
            ("OUTPUT ON", None),
            (READ, "2.0E+00,1.0E-03"),
            (READ, "2.1E+00,1.0E-03"),
            (":SOUR:CURR:LEV 0", None),  # the relaxation: only the level changes
            (READ, "2.05E+00,0.0E+00"),
            (READ, "2.04E+00,0.0E+00"),
        ]
        + OFF,
    )


def test_one_wrong_byte_fails():
    with pytest.raises((AssertionError, RuntimeError)):
        run(
            OpenCircuit(duration_s=20),
            CURRENT_SOURCE
            + [
                (":SOUR:CURR:VLIM 5", None),
                (":SOUR:CURR:LEV 0 ", None),
                ("OUTPUT ON", None),
                (READ, "1.5E+00,0.0E+00"),
                (READ, "1.5E+00,0.0E+00"),
                (READ, "1.5E+00,0.0E+00"),
            ]
            + OFF,
        )


@pytest.mark.parametrize("technique", [PotentiostaticEis(e_dc_V=2.0), GalvanostaticEis(amplitude_A=1e-5)])
def test_impedance_refused_before_anything_is_sent(technique):
    steps = [
        ScheduledStep(technique=OpenCircuit(duration_s=5), cycle=1, step=1),
        ScheduledStep(technique=technique, cycle=1, step=2),
    ]
    with expected_protocol(Keithley2450, []) as instrument:  # any byte sent would fail
        backend = Keithley2450Backend(instrument, JumpClock())
        with pytest.raises(UnsupportedTechnique, match=rf"step 2 .*{technique.kind}.*frequency-response"):
            backend.check(steps)
        with pytest.raises(UnsupportedTechnique):
            asyncio.run(backend.start(steps))


def _fault_run(comm_pairs):
    """Start an OCV step, poll until the backend gives up; (rows, the error poll raised, the
    error open_circuit raised or None)."""
    steps = [ScheduledStep(technique=OpenCircuit(duration_s=60), cycle=1, step=1)]
    with expected_protocol(Keithley2450, PREPARE + comm_pairs) as instrument:
        backend = Keithley2450Backend(instrument, JumpClock(), sample_interval_s=10.0, min_command_wall_s=0)

        async def drive():
            await backend.start(steps)
            blocks, error = [], None
            for _ in range(5000):
                try:
                    blocks.append(await backend.poll())
                except RuntimeError as exc:
                    error = exc
                    break
                await asyncio.sleep(0.001)
            try:
                await backend.open_circuit("test over")
                stop_error = None
            except Exception as exc:
                stop_error = exc
            rows = np.concatenate([b["Ewe"] for b in blocks]) if blocks else np.empty(0)
            return rows, error, stop_error

        return asyncio.run(drive())


ON_AT_ZERO = CURRENT_SOURCE + [(":SOUR:CURR:VLIM 5", None), (":SOUR:CURR:LEV 0", None), ("OUTPUT ON", None)]


def test_the_no_reading_value_is_never_stored_as_volts():
    rows, error, stop_error = _fault_run(
        ON_AT_ZERO + [(READ, "1.5E+00,0.0E+00"), (READ, "9.91E+37,0.0E+00")] + OFF + OFF
    )
    assert list(rows) == [1.5]  # the reading before it kept, 9.91E+37 never stored
    assert "no-reading value" in str(error) and stop_error is None


def test_open_circuit_raises_when_the_output_is_not_confirmed_off():
    stuck_on = [("OUTPUT OFF", None), ("OUTPUT?", "1")]
    rows, error, stop_error = _fault_run(
        ON_AT_ZERO + [(READ, "1.5E+00,0.0E+00"), (READ, "9.91E+37,0.0E+00")] + stuck_on + stuck_on
    )
    assert "output off not confirmed" in str(stop_error) and "still on" in str(stop_error)


def test_an_error_while_connecting_faults_through_poll_naming_the_instrument():
    steps = [ScheduledStep(technique=OpenCircuit(duration_s=60), cycle=1, step=1)]
    refused = PREPARE[:-1] + [("SYST:ERR?", '-222,"Data out of range"'), ("SYST:ERR?", '0,"No error"')]
    with expected_protocol(Keithley2450, refused + OFF + OFF) as instrument:
        backend = Keithley2450Backend(instrument, JumpClock(), sample_interval_s=10.0, min_command_wall_s=0)

        async def drive():
            await backend.start(steps)  # does not raise: the device's fault path names the instrument
            while not backend.done:
                await asyncio.sleep(0.001)
            with pytest.raises(RuntimeError, match="Keithley 2450 SourceMeter on .*-222"):
                await backend.poll()
            await backend.open_circuit("fault")  # never switched on: nothing to confirm

        asyncio.run(drive())
