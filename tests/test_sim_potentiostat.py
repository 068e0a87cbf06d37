"""The simulated potentiostat firmware executing a list of scheduled steps."""

import time

import numpy as np
import pytest

from operando.devices.techniques import (
    ECHEM_COLUMNS,
    ConstantCurrent,
    OpenCircuit,
    ScheduledStep,
)
from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.lab import build_sim_lab
from operando.sim_devices.potentiostat import TIME_COLUMN, SimPotentiostatEngine

T0 = 1_800_000_000.0


class ManualClock:
    def __init__(self, t=T0):
        self.t = t

    def time(self):
        return self.t


def cc(current, cycle, step, **kw):
    return ScheduledStep(technique=ConstantCurrent(current_A=current, **kw), cycle=cycle, step=step)


def rest(duration, cycle, step):
    return ScheduledStep(technique=OpenCircuit(duration_s=duration), cycle=cycle, step=step)


def engine(dt=1.0, soc=0.0, name="fe_li2o"):
    p = preset(name)
    clock = ManualClock()
    return SimPotentiostatEngine(SimCell(p, soc=soc), clock, dt), clock, p


def cycling_programme(p, c_rate=4.0):
    i = p.c_rate_current_A(c_rate)
    return [
        cc(i, 1, 1, e_max_V=p.e_max_V),
        rest(60, 1, 2),
        cc(-i, 1, 3, e_min_V=p.e_min_V),
        cc(i, 2, 4, e_max_V=p.e_max_V),
    ]


def test_programme_runs_steps_in_order_and_ends_done():
    eng, clock, p = engine()
    eng.load(cycling_programme(p))
    eng.start()
    assert eng.running and eng.current_step.step == 1
    eng.advance_to(T0 + 10 * 3600)
    data = eng.drain()
    assert eng.done and not eng.running and eng.stop_reason == "completed"
    assert eng.current_step is None and eng.last_current == 0.0
    assert list(np.unique(data["step"])) == [1, 2, 3, 4]
    assert np.all(np.diff(data["step"]) >= 0) and np.all(np.diff(data["cycle"]) >= 0)
    assert np.count_nonzero(data["step"] == 2) == 60
    ends = np.flatnonzero(np.diff(data["step"]))  # last sample of steps 1-3
    assert data["Ewe"][ends[0]] >= p.e_max_V and data["Ewe"][ends[2]] <= p.e_min_V
    assert data["Ewe"][-1] >= p.e_max_V
    # idle after the programme: the cell relaxes but nothing is recorded
    eng.advance_to(T0 + 20 * 3600)
    assert eng.drain()[TIME_COLUMN].size == 0


def test_columns_and_dtypes_match_echem_columns():
    eng, clock, p = engine()
    eng.load(cycling_programme(p))
    eng.start()
    eng.advance_to(T0 + 5)
    data = eng.drain()
    assert list(data) == list(ECHEM_COLUMNS)
    for name, (_unit, dtype) in ECHEM_COLUMNS.items():
        assert data[name].dtype == np.dtype(dtype) and data[name].size == 5
    assert all(v.size == 0 for v in eng.drain().values())  # drained


def test_sample_times_are_exactly_on_the_grid_whatever_the_call_times():
    dt = 1e-3
    eng, clock, p = engine(dt=dt, soc=0.5)
    steps = [cc(p.c_rate_current_A(1.0), 1, 1, max_duration_s=2.0), rest(1.0, 1, 2)]
    eng.load(steps)
    clock.t = T0 + 0.1234567
    eng.start()
    start = eng.start_time
    rng = np.random.default_rng(3)
    for t in np.cumsum(rng.uniform(0.0005, 0.007, 1000)):
        eng.advance_to(start + t)
    eng.advance_to(start + 10)
    a = eng.drain()
    assert eng.done
    k = np.arange(1, 3001)
    np.testing.assert_array_equal(a[TIME_COLUMN], start + k * dt)
    assert np.count_nonzero(a["step"] == 1) == 2000

    # the same programme advanced in one call gives the same data (to round-off)
    eng2, clock2, _ = engine(dt=dt, soc=0.5)
    eng2.load(steps)
    clock2.t = clock.t
    eng2.start()
    eng2.advance_to(start + 10)
    b = eng2.drain()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=1e-12)


def test_charge_column_counts_from_start_and_equals_i_t():
    eng, clock, p = engine(soc=0.3)
    i = p.c_rate_current_A(1.0)
    eng.load([cc(i, 1, 1, max_duration_s=100)])
    eng.start()
    eng.advance_to(T0 + 1000)
    data = eng.drain()
    np.testing.assert_allclose(data["charge"], i * np.arange(1, 101) / 3.6, rtol=1e-9)
    np.testing.assert_array_equal(data["I"], i)


def test_open_circuit_stops_the_current():
    p = preset("fe_li2o")
    cell = SimCell(p, soc=0.3)
    eng = SimPotentiostatEngine(cell, ManualClock(), 1.0)
    eng.load([cc(p.c_rate_current_A(1.0), 1, 1, e_max_V=p.e_max_V)])
    eng.start()
    eng.advance_to(T0 + 30)
    assert eng.last_current > 0
    eng.open_circuit("safety: test")
    assert eng.done and not eng.running and eng.stop_reason == "safety: test"
    assert eng.last_current == 0.0
    charge = cell.charge_mAh
    eng.advance_to(T0 + 3600)
    assert cell.charge_mAh == charge  # no more current flowed
    data = eng.drain()
    assert data[TIME_COLUMN].size == 30 and data[TIME_COLUMN][-1] == T0 + 30


def test_time_limited_step_and_misuse():
    eng, clock, p = engine()
    with pytest.raises(ValueError):
        eng.start()  # nothing loaded
    eng.load([cc(p.c_rate_current_A(0.1), 1, 1, max_duration_s=2.5)])  # rounds up to 3 samples
    eng.start()
    with pytest.raises(RuntimeError):
        eng.load([])
    eng.advance_to(T0 + 100)
    assert eng.drain()["step"].size == 3 and eng.done


def test_millisecond_sampling_yields_every_sample():
    # Throughput is measured by `make bench`, not here.
    eng, clock, p = engine(dt=1e-3, soc=0.5)
    eng.load([cc(p.c_rate_current_A(1.0), 1, 1, max_duration_s=1000)])
    eng.start()
    eng.advance_to(T0 + 100)
    assert eng.drain()[TIME_COLUMN].size == 100_000


def test_lab_sync_follows_the_accelerated_clock():
    lab = build_sim_lab("fe_li2o", speed=2000.0, sample_interval_s=0.5, soc=0.5)
    lab.sync()
    lab.potentiostat.load([rest(3600, 1, 1)])
    lab.potentiostat.start()
    time.sleep(0.05)  # ~100 s of simulated time
    now = lab.sync()
    data = lab.potentiostat.drain()
    start = lab.potentiostat.start_time
    assert data[TIME_COLUMN].size >= 150
    assert data[TIME_COLUMN][-1] <= now
    n = data[TIME_COLUMN].size
    np.testing.assert_array_equal(data[TIME_COLUMN], start + np.arange(1, n + 1) * 0.5)
    assert "fe_li2o" in lab.cell_description


def test_hold_freezes_the_step_and_release_continues_with_the_time_left():
    eng, clock, p = engine(dt=1.0, soc=0.3)
    i = p.c_rate_current_A(0.5)
    eng.load([cc(i, 1, 1, max_duration_s=100)])
    eng.start()
    t0 = eng.start_time
    eng.advance_to(t0 + 40)
    clock.time = lambda: t0 + 40  # the hold starts exactly here
    eng.hold()
    assert eng.held
    eng.advance_to(t0 + 90)  # 50 s held: open circuit, recorded, same step
    clock.time = lambda: t0 + 90
    eng.release()
    eng.advance_to(t0 + 200)
    d = eng.drain()
    held = (d[TIME_COLUMN] > t0 + 40) & (d[TIME_COLUMN] <= t0 + 90)
    assert np.all(d["I"][held] == 0.0) and held.sum() == 50
    assert np.all(d["step"] == 1)
    assert np.count_nonzero(d["I"] == i) == 100  # the full 100 s of current, 40 + 60
    assert eng.done and d[TIME_COLUMN][-1] == t0 + 150
