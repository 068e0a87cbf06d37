"""Conformance of every registered potentiostat backend: one suite, each backend built through the
registry exactly as a run builds it (hardware backends through their real driver, on their
wire-level simulator), on a simulated cell whose physical state is the judge.

A backend added to the registry is added to this suite by its registration alone.
"""

import threading
import time

import pytest
import yaml
from bluesky.run_engine import RunEngine, call_in_bluesky_event_loop
from bluesky.utils import RunEngineInterrupted

from operando.acquisition.backends import all_backends
from operando.acquisition.build import build_instruments
from operando.acquisition.config import Profile
from operando.acquisition.prepare import check_run
from operando.devices.registry import Capability
from operando.devices.safety import LimitError, UnsupportedTechnique
from operando.devices.techniques import (
    TECHNIQUE_CODES,
    ConstantCurrent,
    ConstantPotential,
    CyclicVoltammetry,
    GalvanostaticEis,
    Gitt,
    LinearSweep,
    OpenCircuit,
    PotentiostaticEis,
    ScheduledStep,
)
from operando.devices.techniques import ConstantCurrentConstantVoltage as Cccv
from operando.plans.operando import galvanostatic_cycling

POTENTIOSTATS = [s for s in all_backends() if s.kind == "potentiostat"]
# Simulated seconds per wall second: host-timed backends make one round trip per sample.
SPEED = {"keithley2450": 200.0}
LIMITS = {"e_min_V": 0.01, "e_max_V": 3.0, "i_max_A": 0.01}
I_CHARGE = 1e-3  # 0.5C of the 2 mg electrode below: charges for an hour from empty
ONE_OF_EACH = {
    "ocv": OpenCircuit(duration_s=60),
    "cc": ConstantCurrent(current_A=I_CHARGE, e_max_V=2.9, max_duration_s=600),
    "cccv": Cccv(current_A=I_CHARGE, e_hold_V=2.5, i_cutoff_A=1e-4, max_duration_s=600),
    "lsv": LinearSweep(e_start_V=0.5, e_end_V=0.6, scan_rate_V_s=1e-3, e_step_V=0.01),
    "cv": CyclicVoltammetry(
        e_start_V=0.5, e_vertex1_V=0.6, e_vertex2_V=0.5, scan_rate_V_s=1e-3, e_step_V=0.01, cycles=1
    ),
    "ca": ConstantPotential(e_V=0.5, duration_s=60),
    "gitt": Gitt(current_A=I_CHARGE, pulse_s=60, relax_s=60, max_pulses=2, e_max_V=2.9),
    "peis": PotentiostaticEis(e_dc_V=None, amplitude_V=0.01, f_max_Hz=1e4, f_min_Hz=100, points_per_decade=2),
    "geis": GalvanostaticEis(i_dc_A=0.0, amplitude_A=1e-4, f_max_Hz=1e4, f_min_Hz=100, points_per_decade=2),
}


def _profile(spec) -> Profile:
    return Profile.model_validate(
        {
            "name": f"conformance-{spec.name}",
            "instruments": {
                "potentiostat": {
                    "kind": "potentiostat",
                    "backend": spec.name,
                    "limits": LIMITS,
                    **({"address": "sim"} if spec.address is not None else {}),
                    "settings": {"sample_interval_s": 1.0},
                }
            },
            "sample": {
                "name": "conformance",
                "material": "Fe3O4",
                "sim_preset": "fe_li2o",
                "active_mass_g": 0.002,
                "theoretical_capacity_mAh_g": 926,
                "electrolyte": "-",
                "cell_type": "-",
                "operator": "test",
            },
            "sim": {"speed": SPEED.get(spec.name, 2000.0), "seed": 0, "soc": 0.0},  # empty: charges for an hour
        }
    )


@pytest.fixture(params=POTENTIOSTATS, ids=lambda s: s.name)
def built(request, tmp_path):
    spec = request.param
    RunEngine({})  # the event loop the devices connect in
    instruments = build_instruments(_profile(spec), tmp_path)
    yield spec, instruments
    instruments.close()


def _run(make):
    """Await ``make()`` in bluesky's event loop (an AsyncStatus must be made inside it)."""

    async def go():
        return await make()

    return call_in_bluesky_event_loop(go())


def _steps(*techniques):
    return [ScheduledStep(technique=t, cycle=1, step=i) for i, t in enumerate(techniques, 1)]


def _wait_sim(instruments, sim_seconds):
    time.sleep(instruments.clock.wall_seconds(sim_seconds))
    instruments.sim_lab.sync()


def test_registry_entry_is_complete(built):
    spec, instruments = built
    backend = instruments.potentiostat._backend
    assert spec.techniques and spec.techniques <= set(TECHNIQUE_CODES)
    assert spec.summary and spec.settings.model_fields["sample_interval_s"]
    assert backend.capabilities == spec.capabilities and backend.techniques == spec.techniques


def test_connects_and_closes_twice(built, tmp_path):
    spec, instruments = built
    instruments.close()
    instruments.close()
    again = build_instruments(_profile(spec), tmp_path)  # ports and simulators were released
    try:
        assert again.potentiostat.name == "potentiostat"
    finally:
        again.close()
        again.close()


def test_refuses_out_of_window_setpoints_before_sending_anything(built):
    _spec, instruments = built
    pstat, cell = instruments.potentiostat, instruments.sim_lab.cell
    backend = pstat._backend
    started = []
    original = backend.start
    backend.start = lambda steps: started.append(steps) or original(steps)
    charge = cell.charge_mAh
    for bad in (
        ConstantCurrent(current_A=0.02, e_max_V=2.9, max_duration_s=60),  # |I| > i_max
        ConstantPotential(e_V=3.5, duration_s=60),  # above e_max
        Cccv(current_A=I_CHARGE, e_hold_V=3.2, i_cutoff_A=1e-4),
    ):
        with pytest.raises(LimitError, match="potentiostat"):
            _run(lambda bad=bad: pstat.prepare(_steps(OpenCircuit(duration_s=10), bad)))
    assert not started and cell.current_A == 0 and cell.charge_mAh == charge


def test_leaves_the_cell_at_open_circuit_on_abort(built):
    _spec, instruments = built
    pstat, cell = instruments.potentiostat, instruments.sim_lab.cell
    RE = RunEngine({})
    steps = _steps(ConstantCurrent(current_A=I_CHARGE, e_max_V=2.9, max_duration_s=3600))
    timer = threading.Timer(instruments.clock.wall_seconds(120), RE.request_pause)
    timer.start()
    try:
        with pytest.raises(RunEngineInterrupted):
            RE(galvanostatic_cycling(pstat, steps, instruments.clock))
        RE.abort("conformance: abort")
    finally:
        timer.cancel()
    _wait_sim(instruments, 5)
    charged = cell.charge_mAh
    assert charged > 0.01  # it was charging before the abort
    _wait_sim(instruments, 60)
    assert cell.current_A == 0.0 and cell.charge_mAh == pytest.approx(charged, abs=1e-9)
    assert not pstat.running


def test_honours_exactly_the_techniques_it_declares(built):
    spec, instruments = built
    backend = instruments.potentiostat._backend
    for kind, technique in ONE_OF_EACH.items():
        if kind in spec.techniques:
            backend.check(_steps(technique))
        else:
            with pytest.raises(UnsupportedTechnique, match=kind):
                backend.check(_steps(technique))
    protocol_kinds = set(ONE_OF_EACH)
    assert protocol_kinds == set(TECHNIQUE_CODES)  # every technique is exercised above


def test_honours_exactly_the_hold_it_declares(built):
    spec, instruments = built
    pstat, cell = instruments.potentiostat, instruments.sim_lab.cell
    _run(lambda: pstat.prepare(_steps(ConstantCurrent(current_A=I_CHARGE, e_max_V=2.9, max_duration_s=3600))))
    _run(lambda: pstat.kickoff())
    try:
        _wait_sim(instruments, 30)
        assert cell.current_A == pytest.approx(I_CHARGE)
        _run(lambda: pstat.hold("conformance"))
        _wait_sim(instruments, 30)
        assert cell.current_A == 0.0  # held or stopped: the cell is at open circuit either way
        if Capability.HOLD in spec.capabilities:
            assert pstat.running  # held, not stopped
            _run(lambda: pstat.release("conformance"))
            _wait_sim(instruments, 30)
            assert cell.current_A == pytest.approx(I_CHARGE)  # the frozen step goes on
        else:
            assert not pstat.running and "cannot hold" in pstat.stop_reason
    finally:
        _run(lambda: pstat.open_circuit("conformance: end"))
    assert cell.current_A == 0.0


def test_honours_exactly_the_impedance_and_trigger_it_declares(built):
    spec, instruments = built
    backend = instruments.potentiostat._backend
    eis = _steps(ONE_OF_EACH["peis"])
    if Capability.IMPEDANCE in spec.capabilities:
        pstat = instruments.potentiostat
        _run(lambda: pstat.prepare(eis))
        _run(lambda: pstat.kickoff())
        deadline = time.monotonic() + 60
        while pstat.running and time.monotonic() < deadline:
            time.sleep(0.05)
        _run(lambda: pstat.wait_done(5))
        rows = pstat.drain_impedance()
        assert len(rows["frequency"]) == len(ONE_OF_EACH["peis"].frequencies_Hz)
        assert rows["Z_re"][0] > 0
    else:
        assert "peis" not in spec.techniques and "geis" not in spec.techniques
        with pytest.raises(UnsupportedTechnique):
            backend.check(eis)
    assert callable(getattr(backend, "trigger_output", None)) == (Capability.TRIGGER_OUT in spec.capabilities)


def test_a_profile_asking_for_an_undeclared_capability_is_refused_before_start(built):
    spec, _instruments = built
    data = yaml.safe_load(yaml.safe_dump(_profile(spec).model_dump(mode="json")))
    data["instruments"]["raman"] = {
        "kind": "raman",
        "backend": "sim",
        "schedule": [{"at": "step_end", "hold": "ocv"}],
        "settings": {"trigger": "hardware"},
    }
    profile = Profile.model_validate(data)
    from operando.acquisition.config import load_protocol

    protocol = load_protocol("cycling_with_eis")
    expect = []
    if Capability.HOLD not in spec.capabilities:
        expect.append("schedule[0].hold")
    if Capability.TRIGGER_OUT not in spec.capabilities:
        expect.append("settings.trigger")
    if Capability.IMPEDANCE not in spec.capabilities:
        expect.append("cannot run peis")
    if not expect:
        assert check_run(profile, protocol).steps
        return
    with pytest.raises(Exception) as info:
        check_run(profile, protocol)
    for text in expect:
        assert text in str(info.value)


def test_potentiostatic_steps_from_open_circuit_start_where_the_cell_rests(built):
    """``e_start: ocv`` / ``e: ocv``: the backend measures where the cell rests when the step begins
    and starts there, on the instrument's side; a CV started 1.5 V away would draw far more than
    the 10 mA limit through the cell's resistance. Each step follows a rest, whose last reading
    is where the cell rests."""
    spec, instruments = built
    pstat = instruments.potentiostat
    wanted = [kind for kind in ("lsv", "cv", "ca") if kind in spec.techniques]
    assert wanted, f"{spec.name} runs no potentiostatic technique"
    from_rest = {
        "lsv": LinearSweep(e_end_V=0.06, scan_rate_V_s=1e-3, e_step_V=0.005),
        "cv": CyclicVoltammetry(e_vertex1_V=0.2, e_vertex2_V=LIMITS["e_min_V"], scan_rate_V_s=2e-3, e_step_V=0.005),
        "ca": ConstantPotential(duration_s=60),
    }
    steps = _steps(*(t for k in wanted for t in (OpenCircuit(duration_s=30), from_rest[k])))
    RE = RunEngine({})
    RE(galvanostatic_cycling(pstat, steps, instruments.clock))
    _n, rows = pstat.history.since(0)
    for index, kind in enumerate(wanted):
        rest, mine = rows["step"] == 2 * index + 1, rows["step"] == 2 * index + 2
        assert mine.sum() >= 3, f"{kind}: {mine.sum()} rows"
        rest_V, first_V = rows["Ewe"][rest][-1], rows["Ewe"][mine][0]
        # the first row is the open-circuit reading or the first stair: within a stair of the rest
        assert first_V == pytest.approx(rest_V, abs=0.006), kind
        peak_A = abs(rows["I"][mine]).max()
        assert peak_A < LIMITS["i_max_A"] / 2, f"{kind}: {peak_A} A from open circuit"
        if kind == "ca":  # held where it rests: almost nothing flows
            assert abs(rows["I"][mine]).max() < 1e-4
