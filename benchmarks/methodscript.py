"""MethodSCRIPT throughput: samples per second from the pty firmware simulator, parsed and stored.

    python -m operando.benchmarks.methodscript [--samples N]

One process, one run each, the same N open-circuit samples (a rest script, 0.5 s interval, on a
clock at 10^7 x real time, so the simulator never waits):
  (a) raw: lines read from the pty by the driver, no parsing (the baseline: what the wire and
      the simulated firmware deliver);
  (b) parsed: the driver's ``read_packages`` (reply events, package variables decoded);
  (c) stored: the Potentiostat device with the MethodSCRIPT backend in a catalog run (HDF5 +
      StreamResource/StreamDatum, TiledWriter), read back from the catalog and counted;
  (d) the in-process simulated backend through the same device into the same catalog.
Prints rates and the ratios (b)/(a), (c)/(b) and (c)/(d).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bluesky.run_engine import call_in_bluesky_event_loop

from operando.acquisition.session import make_run_engine
from operando.devices.backends.methodscript import MethodScriptPotentiostatBackend
from operando.devices.backends.methodscript_steps import build_script
from operando.devices.drivers.methodscript import MethodScriptDriver
from operando.devices.drivers.methodscript_protocol import ScriptOptions
from operando.devices.potentiostat import Potentiostat
from operando.devices.techniques import Limits, OpenCircuit, ScheduledStep
from operando.plans.operando import galvanostatic_cycling
from operando.sim_devices.backends.potentiostat import SimPotentiostatBackend
from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.clock import SimClock
from operando.sim_devices.lab import build_sim_lab
from operando.sim_devices.wire.methodscript_server import MethodScriptSimulator
from operando.storage.catalog import files_dir, open_catalog

INTERVAL_S = 0.5
SPEED = 1e7
LIMITS = Limits(e_min_V=0.0, e_max_V=3.5, i_max_A=1.0)


def _rest(n: int) -> list[ScheduledStep]:
    return [ScheduledStep(technique=OpenCircuit(duration_s=n * INTERVAL_S), cycle=1, step=1)]


def _simulator() -> MethodScriptSimulator:
    return MethodScriptSimulator(SimCell(preset("fe_li2o"), soc=0.5), SimClock(speed=SPEED))


def bench_raw(n: int) -> tuple[int, float]:
    with _simulator() as sim, MethodScriptDriver(sim.path, timeout_s=5.0) as drv:
        t0 = time.perf_counter()
        drv.run_script(build_script(_rest(n), ScriptOptions(sample_interval_s=INTERVAL_S)))
        count = 0
        while (line := drv.read_line(5.0)) != "":
            if line is None:
                raise TimeoutError("the simulator stopped sending")
            count += line.startswith("P")
        return count, time.perf_counter() - t0


def bench_parsed(n: int) -> tuple[int, float]:
    with _simulator() as sim, MethodScriptDriver(sim.path, timeout_s=5.0) as drv:
        t0 = time.perf_counter()
        drv.run_script(build_script(_rest(n), ScriptOptions(sample_interval_s=INTERVAL_S)))
        count = sum(1 for _ in drv.read_packages(idle_timeout_s=5.0))
        return count, time.perf_counter() - t0


def _store(catalog, backend, clock, steps, plan_name: str) -> tuple[int, float]:
    RE = make_run_engine(catalog)
    dev = Potentiostat(backend, LIMITS, files_dir(catalog.data_dir), name="potentiostat", clock=clock)
    call_in_bluesky_event_loop(dev.connect())
    t0 = time.perf_counter()
    (uid,) = RE(galvanostatic_cycling(dev, steps, clock, md={"plan_name": plan_name}))
    RE.catalog_writer.flush()  # stored, not just queued
    seconds = time.perf_counter() - t0
    return catalog.client[uid]["echem"]["Ewe"].read().shape[0], seconds


def bench_stored(catalog, n: int) -> tuple[int, float]:
    with _simulator() as sim:
        clock = sim.firmware.clock
        driver = MethodScriptDriver(sim.path, timeout_s=5.0)
        backend = MethodScriptPotentiostatBackend(driver, ScriptOptions(sample_interval_s=INTERVAL_S), clock.time)
        try:
            return _store(catalog, backend, clock, _rest(n), "bench_methodscript_stored")
        finally:
            driver.close()


def bench_in_process(catalog, n: int) -> tuple[int, float]:
    lab = build_sim_lab("fe_li2o", active_mass_g=1e-3, speed=SPEED, sample_interval_s=INTERVAL_S, soc=0.5)
    return _store(catalog, SimPotentiostatBackend(lab), lab.clock, _rest(n), "bench_sim_stored")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m operando.benchmarks.methodscript", description=__doc__)
    p.add_argument("--samples", type=int, default=50_000)
    args = p.parse_args(argv)
    n = args.samples
    with tempfile.TemporaryDirectory(prefix="operando-bench-ms-") as tmp:
        with open_catalog(Path(tmp)) as catalog:
            results = [
                ("(a) raw pty lines, no parsing", bench_raw(n)),
                ("(b) parsed packages (driver)", bench_parsed(n)),
                ("(c) stored: device + catalog", bench_stored(catalog, n)),
                ("(d) in-process sim, same device", bench_in_process(catalog, n)),
            ]
    print(f"{'MethodSCRIPT path':34} {'samples':>9} {'seconds':>8} {'samples/s':>11}")
    for name, (count, seconds) in results:
        print(f"{name:34} {count:>9,} {seconds:>8.2f} {count / seconds:>11,.0f}")
    rate = {name[:3]: count / seconds for name, (count, seconds) in results}
    print(f"ratio (b)/(a) parsing cost:        {rate['(b)'] / rate['(a)']:.2f}")
    print(f"ratio (c)/(b) storing cost:        {rate['(c)'] / rate['(b)']:.2f}")
    print(f"ratio (c)/(d) vs in-process sim:   {rate['(c)'] / rate['(d)']:.3f}")
    missing = [name for name, (count, _s) in results if count != n]
    if missing:
        print(f"LOST SAMPLES in: {', '.join(missing)} (expected {n:,} each)")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
