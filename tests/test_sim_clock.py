"""The virtual (discrete-event) clock: deterministic, ordered, and usable by wall-time pollers."""

import asyncio
import time

import numpy as np
import pytest

from operando.sim_devices.backends.detectors import SimMagnetometerBackend
from operando.sim_devices.clock import SimClock, VirtualClock, make_clock
from operando.sim_devices.lab import build_sim_lab

T0 = 1_800_000_000.0


def scenario(clock, stall_at=None):
    """Three actors sleeping on the clock; one stalls the host (blocking) once."""
    log = []

    async def actor(name, period, n):
        for i in range(n):
            await clock.sleep(period)
            if name == "b" and i == stall_at:
                time.sleep(0.15)  # the host freezes: a GC pause, a busy disk, another process
            log.append((name, round(clock.time() - T0, 9)))

    async def main():
        await asyncio.gather(actor("a", 3.0, 20), actor("b", 5.0, 12), actor("c", 7.0, 8))

    asyncio.run(main())
    return log


def test_virtual_clock_is_deterministic_despite_host_stalls():
    runs = [scenario(VirtualClock(speed=200.0, start_time=T0), stall_at=s) for s in (None, 2, 7)]
    assert runs[0] == runs[1] == runs[2]
    times = [t for _, t in runs[0]]
    assert times == sorted(times)  # the earliest waiter always wakes first
    assert ("a", 15.0) in runs[0] and ("b", 15.0) in runs[0]
    # ties wake in the order the actors went to sleep: b slept for t=15 (at 10) before a (at 12)
    assert runs[0].index(("b", 15.0)) < runs[0].index(("a", 15.0))


def test_scaled_clock_loses_simulated_time_in_a_stall():
    # the reason the virtual clock exists: with wall time x speed a stall skips time
    log = scenario(SimClock(speed=200.0, start_time=T0), stall_at=2)
    b_times = [t for n, t in log if n == "b"]
    assert b_times[2] > 15.0 + 20.0  # read after the stall: 0.15 s x 200 = 30 s skipped


def test_virtual_clock_paces_against_the_wall_and_parks_when_idle():
    clock = VirtualClock(speed=100.0, start_time=T0)

    async def main():
        t_wall = time.monotonic()
        await clock.sleep(20.0)  # 0.2 s of wall time at 100x
        elapsed = time.monotonic() - t_wall
        assert clock.time() == T0 + 20.0
        await asyncio.sleep(2 * VirtualClock.IDLE_WALL_S)
        parked_at = clock.events
        await asyncio.sleep(0.2)
        assert clock.events == parked_at  # nobody watching: no ticking, no busy loop
        return elapsed

    assert 0.19 < asyncio.run(main()) < 1.0
    assert clock.wall_seconds(20.0) == pytest.approx(0.2)


def test_wall_time_pollers_see_virtual_time_advance_in_ticks():
    clock = VirtualClock(speed=1000.0, start_time=T0, tick_s=0.5)

    async def main():
        seen = []
        for _ in range(20):
            seen.append(clock.time() - T0)
            await asyncio.sleep(0.005)  # a wall-time poller, like the potentiostat device
        return np.array(seen)

    seen = asyncio.run(main())
    assert seen[-1] > 0 and np.all(np.diff(seen) >= 0)
    assert np.allclose(seen / 0.5, np.round(seen / 0.5))  # only whole ticks


@pytest.mark.parametrize("tick_s", [0.1, 0.01, 0.001])
def test_fractional_ticks_from_an_epoch_start_keep_moving(tick_s):
    # start + 0.1 - start is 0.0999999 at epoch magnitudes: the clock once stalled at its first
    # tick for ever (a 10 Hz simulated potentiostat on the virtual clock never got a sample)
    clock = VirtualClock(speed=1e9, start_time=1_764_000_000.0, tick_s=tick_s)

    async def main():
        for _ in range(50):
            clock.time()
            await asyncio.sleep(0.001)
        return clock.time() - 1_764_000_000.0

    assert asyncio.run(main()) > 10 * tick_s


def test_make_clock_and_lab_selection():
    assert isinstance(make_clock("virtual", 10.0), VirtualClock)
    assert isinstance(make_clock("scaled", 10.0), SimClock)
    with pytest.raises(ValueError, match="unknown clock kind 'warp'"):
        make_clock("warp")
    with pytest.raises(ValueError, match="finite number > 0"):
        VirtualClock(speed=float("inf"))
    lab = build_sim_lab("bulk", speed=50.0, clock="virtual", start_time=T0)
    assert isinstance(lab.clock, VirtualClock) and lab.clock.tick_s == 1.0


def test_simulated_detectors_repeat_exactly_on_the_virtual_clock():
    def readings():
        lab = build_sim_lab("fe_li2o", speed=1e5, seed=3, soc=0.5, start_time=T0, clock="virtual")

        async def go():
            mag = SimMagnetometerBackend(lab)
            out = []
            for _ in range(5):
                r = await mag.measure(10.0)
                out.append((r.exposure_start, r.moment_emu))
            return out

        return asyncio.run(go())

    first = readings()
    assert first == readings()
    assert [s for s, _ in first] == [T0 + 10.0 * i for i in range(5)]
