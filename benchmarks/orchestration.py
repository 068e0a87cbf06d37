"""Software dead time between consecutive detector frames while the echem stream runs at 1 kHz.

    python -m operando.benchmarks.orchestration [--seconds S] [--exposure-s X]

Real time (clock speed 1). A detector is scheduled back to back (period = its exposure), so the
time between one frame's exposure end and the next one's start is pure software overhead:
schedule evaluation, the frame's echem stamp, event emission, storage hand-off. Measured in the
same process against a baseline: the same detector read back to back by bluesky's stock
``trigger_and_read`` loop with no potentiostat running. Goal: median <= 5 ms (the 95th
percentile is printed too).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.run_engine import call_in_bluesky_event_loop

from operando.acquisition.session import make_run_engine
from operando.devices.magnetometer import Magnetometer
from operando.devices.potentiostat import Potentiostat
from operando.devices.techniques import ConstantCurrent, Limits, ScheduledStep
from operando.plans.operando import DetectorSchedule, operando_cycling
from operando.sim_devices.backends.detectors import SimMagnetometerBackend
from operando.sim_devices.backends.potentiostat import SimPotentiostatBackend
from operando.sim_devices.lab import build_sim_lab
from operando.storage.catalog import files_dir, open_catalog

GOAL_S = 5e-3


def _dead_times(RE, uid_stream) -> np.ndarray:
    uid, stream = uid_stream
    run = RE.catalog.client[uid]
    s = run[stream]
    start, end = s[f"{stream}-exposure_start"].read(), s[f"{stream}-exposure_end"].read()
    return np.asarray(start[1:] - end[:-1])


def measure(seconds: float, exposure_s: float) -> dict[str, np.ndarray]:
    out = {}
    with tempfile.TemporaryDirectory(prefix="operando-bench-") as tmp, open_catalog(Path(tmp)) as catalog:
        RE = make_run_engine(catalog)
        RE.catalog = catalog
        lab = build_sim_lab("fe_li2o", active_mass_g=1e-2, speed=1.0, sample_interval_s=1e-3, soc=0.3)
        pstat = Potentiostat(
            SimPotentiostatBackend(lab),
            Limits(e_min_V=0.0, e_max_V=3.0, i_max_A=1.0),
            files_dir(catalog.data_dir),
            name="potentiostat",
            clock=lab.clock,
        )
        mag = Magnetometer(SimMagnetometerBackend(lab), averaging_s=exposure_s, name="magnetometer")
        for d in (pstat, mag):
            call_in_bluesky_event_loop(d.connect())

        # Baseline: the stock idiom, the same detector back to back, nothing else running.
        n_frames = max(int(seconds / exposure_s), 10)

        @bpp.stage_decorator([mag])
        @bpp.run_decorator(md={"plan_name": "bench_baseline_frames"})
        def baseline():
            for _ in range(n_frames):
                yield from bps.trigger_and_read([mag], name="magnetometer")

        (uid,) = RE(baseline())
        RE.catalog_writer.flush()
        out["baseline: trigger_and_read, no echem"] = _dead_times(RE, (uid, "magnetometer"))

        step = ConstantCurrent(current_A=1e-4, e_max_V=3.0, max_duration_s=seconds)
        plan = operando_cycling(
            pstat,
            [ScheduledStep(technique=step, cycle=1, step=1)],
            [DetectorSchedule.every(mag, exposure_s, "magnetometer")],
            lab.clock,
        )
        (uid,) = RE(plan)
        RE.catalog_writer.flush()
        out["operando plan, echem at 1 kHz"] = _dead_times(RE, (uid, "magnetometer"))
        out["_echem_rows"] = np.array([catalog.client[uid]["echem"]["Ewe"].shape[0]])
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m operando.benchmarks.orchestration", description=__doc__)
    p.add_argument("--seconds", type=float, default=10.0, help="length of the echem sequence")
    p.add_argument("--exposure-s", type=float, default=0.1, help="detector exposure")
    args = p.parse_args(argv)
    results = measure(args.seconds, args.exposure_s)
    rows = results.pop("_echem_rows")[0]
    print(f"detector dead time between consecutive frames, exposure {args.exposure_s * 1e3:.0f} ms")
    print(f"{'':40} {'frames':>7} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    stats = {}
    for name, dead in results.items():
        med, p95, mx = np.median(dead), np.percentile(dead, 95), dead.max()
        stats[name] = (med, p95)
        print(f"{name:40} {dead.size + 1:>7} {med * 1e3:>10.2f} {p95 * 1e3:>8.2f} {mx * 1e3:>8.2f}")
    (base_med, _), (op_med, op_p95) = stats.values()
    print(f"echem rows stored meanwhile: {rows:,} (1 kHz)")
    print(f"ratio operando / baseline (median): {op_med / base_med:.2f}x")
    ok = op_med <= GOAL_S
    print(
        f"goal: median <= {GOAL_S * 1e3:.0f} ms: {'met' if ok else 'NOT met'} (95th percentile {op_p95 * 1e3:.1f} ms)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
