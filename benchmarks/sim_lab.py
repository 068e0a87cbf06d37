"""The simulated lab end to end: a 100-cycle galvanostatic run with magnetometer, Raman and SKPM.

    python -m operando.benchmarks.sim_lab [--cycles N] [--clock virtual|scaled]

Runs the real stack (RunEngine, operando plan, ophyd-async devices, embedded Tiled catalog) on
the Fe/Li2O preset and prints wall seconds, simulated seconds per wall second, rows stored,
and the ratio against a baseline measured in the same process: the same cycling with no
detectors. The target is <= 30 s of wall time for 100 cycles with all three detectors, with no
scheduled frame skipped; the full run is repeated with the same seed and must match frame for
frame (exposure times and moments).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from bluesky.run_engine import call_in_bluesky_event_loop

from operando.acquisition.session import make_run_engine
from operando.devices.magnetometer import Magnetometer
from operando.devices.potentiostat import Potentiostat
from operando.devices.raman import RamanSpectrometer
from operando.devices.skpm import Skpm
from operando.devices.techniques import ConstantCurrent, Limits, OpenCircuit, ScheduledStep
from operando.plans.operando import DetectorSchedule, operando_cycling
from operando.sim_devices.backends.detectors import SimRamanBackend
from operando.sim_devices.backends.mpms import SimMpmsBackend
from operando.sim_devices.backends.potentiostat import SimPotentiostatBackend
from operando.sim_devices.backends.skpm import SimSkpmBackend
from operando.sim_devices.lab import build_sim_lab
from operando.storage.catalog import files_dir, open_catalog

TARGET_WALL_S = 30.0
START = 1_800_000_000.0
# detector cadences (experiment seconds) and settings for the 100-cycle run
MAG_PERIOD_S, RAMAN_PERIOD_S, SKPM_PERIOD_S = 600.0, 3600.0, 7200.0


def cycling_steps(lab, cycles: int, c_rate: float = 1.0) -> list[ScheduledStep]:
    p = lab.cell.params
    i = p.c_rate_current_A(c_rate)
    steps, n = [], 0
    for cycle in range(1, cycles + 1):
        for tech in (
            ConstantCurrent(current_A=i, e_max_V=p.e_max_V, max_duration_s=2 * 3600 / c_rate),
            OpenCircuit(duration_s=300.0),
            ConstantCurrent(current_A=-i, e_min_V=p.e_min_V, max_duration_s=2 * 3600 / c_rate),
        ):
            n += 1
            steps.append(ScheduledStep(technique=tech, cycle=cycle, step=n))
    return steps


def run_once(data_dir: Path, cycles: int, clock: str, detectors: bool, speed: float) -> dict:
    data_dir.mkdir(parents=True, exist_ok=True)
    with open_catalog(data_dir) as catalog:
        RE = make_run_engine(catalog)
        lab = build_sim_lab(
            "fe_li2o", active_mass_g=1e-3, speed=speed, sample_interval_s=10.0, seed=0, start_time=START, clock=clock
        )
        p = lab.cell.params
        limits = Limits(e_min_V=p.e_min_V, e_max_V=p.e_max_V, i_max_A=0.01)
        # 2 ms polls: each detector frame waits for the echem samples around its midpoint
        pot = Potentiostat(
            SimPotentiostatBackend(lab), limits, lambda: files_dir(data_dir), poll_period_s=0.002, name="potentiostat"
        )
        schedules = []
        if detectors:
            schedules = [
                DetectorSchedule.every(
                    Magnetometer(SimMpmsBackend(lab, 1.0, 300.0), 10.0, name="magnetometer"),
                    MAG_PERIOD_S,
                    "magnetometer",
                ),
                DetectorSchedule.every(
                    RamanSpectrometer(SimRamanBackend(lab), 10.0, 2, name="raman"), RAMAN_PERIOD_S, "raman"
                ),
                DetectorSchedule.every(
                    Skpm(SimSkpmBackend(lab), 32, 32, 200e-9, 200e-9, 0.5, name="skpm"), SKPM_PERIOD_S, "skpm"
                ),
            ]
        devices = [pot, *[d.device for d in schedules]]

        async def connect():
            for d in devices:
                await d.connect()

        call_in_bluesky_event_loop(connect())
        steps = cycling_steps(lab, cycles)
        t0 = time.perf_counter()
        (uid,) = RE(operando_cycling(pot, steps, schedules, lab.clock))
        RE.catalog_writer.flush()
        wall = time.perf_counter() - t0
        run = catalog.client[uid]
        keys = {"echem": "Ewe", "magnetometer": "magnetometer-moment", "raman": "raman-spectrum", "skpm": "skpm-cpd"}
        rows = {s: len(run[s][k].read()) for s, k in keys.items() if s in run}
        stop = run.metadata["stop"]
        stamps = run["echem"]["timestamp"].read()
        sim_s = float(stamps[-1] - stamps[0])
        periods = {"magnetometer": MAG_PERIOD_S, "raman": RAMAN_PERIOD_S, "skpm": SKPM_PERIOD_S}
        # the schedule's slots: one at the start, then every period until the last echem sample
        missed = {s: max(math.floor(sim_s / T + 1e-9) + 1 - rows[s], 0) for s, T in periods.items() if s in rows}
        frames = {s: run[s][f"{s}-exposure_start"].read().tolist() for s in periods if s in run}
        moments = run["magnetometer"]["magnetometer-moment"].read().tolist() if "magnetometer" in run else []
        return {
            "wall_s": wall,
            "sim_s": sim_s,
            "rows": rows,
            "exit": stop.get("exit_status"),
            "missed": missed,
            "frames": frames,  # exposure start of every frame, per detector (reproducibility)
            "moments": moments,
            "cycles_done": int(run["echem"]["cycle"].read()[-1]),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--clock", choices=("virtual", "scaled"), default="virtual")
    parser.add_argument("--speed", type=float, default=4e4, help="simulated s per wall s")
    parser.add_argument("--no-repeat", dest="repeat", action="store_false", help="skip the reproducibility rerun")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = run_once(Path(tmp) / "baseline", args.cycles, args.clock, False, args.speed)
        full = run_once(Path(tmp) / "full", args.cycles, args.clock, True, args.speed)
        again = run_once(Path(tmp) / "again", args.cycles, args.clock, True, args.speed) if args.repeat else None
    for label, r in (("cycling alone (baseline)", base), ("with magnetometer, Raman, SKPM", full)):
        print(
            f"{label}: {r['wall_s']:.1f} s wall for {r['sim_s'] / 3600:.0f} h simulated "
            f"({r['sim_s'] / r['wall_s']:,.0f}x real time), {r['cycles_done']} cycles, "
            f"exit {r['exit']}, rows {r['rows']}, frames missed {r['missed']}"
        )
    print(f"detector overhead: {full['wall_s'] / base['wall_s']:.2f}x the baseline's wall time")
    skipped = sum(max(n, 0) for n in full["missed"].values())
    print(f"scheduled frames skipped: {skipped}")
    same = True
    if again is not None:
        same = again["frames"] == full["frames"] and again["moments"] == full["moments"]
        n = sum(len(v) for v in full["frames"].values())
        print(f"second run, same seed: {'identical' if same else 'DIFFERENT'} frame for frame ({n} frames, moments)")
    ok = full["wall_s"] <= TARGET_WALL_S and full["cycles_done"] == args.cycles and skipped == 0 and same
    print(f"target <= {TARGET_WALL_S:.0f} s for {args.cycles} cycles: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
