"""Several cells under load: 16 channels at 1 kHz, a shared Raman spectrometer taking a spectrum
per second and a shared magnetometer a moment per second, for one simulated hour.

    python -m operando.benchmarks.multichannel_load [--cells 16] [--rate-hz 1000] [--hours 1]

The run goes the user's way (a profile with ``cells:``, ``run_experiment``, the embedded catalog)
on the virtual clock, as fast as the host allows. Afterwards every cell's stream is checked:
every sample the simulated channel produced is stored (rows = duration x rate), the samples are
contiguous (every step is one sample interval, to the ~2e-7 s resolution of an epoch time
stamp), and the StreamDatum documents of each cell cover its rows without a gap or an overlap.
Prints the acquisition's wall time (start to stop document), the wall time until everything is in
the catalog, CPU µs per sample, frames, and the ratio of CPU per sample against a baseline
measured in the same process: the simulated cells producing the same samples with nothing
acquiring them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from operando.acquisition.config import Profile
from operando.acquisition.experiment import run_experiment
from operando.plans.protocol import Protocol
from operando.sim_devices.lab import build_sim_lab
from operando.sim_devices.potentiostat import SimPotentiostatEngine
from operando.storage.catalog import open_catalog

PRESETS = ("fe_li2o", "composite", "bulk", "bulk_micron")


def load_profile(cells: int, rate_hz: float, spectrum_s: float, moment_s: float) -> Profile:
    """Cells on one simulated multichannel potentiostat; the detectors visit them in turn so the
    run as a whole takes a spectrum every ``spectrum_s`` and a moment every ``moment_s``."""
    return Profile.model_validate(
        {
            "name": "multichannel-load",
            "instruments": {
                "vmp": {
                    "kind": "potentiostat",
                    "backend": "sim",
                    "limits": {"e_min_V": -0.5, "e_max_V": 3.5, "i_max_A": 0.01, "excursion_s": 2.0},
                    "settings": {"sample_interval_s": 1.0 / rate_hz},
                },
                "magnetometer": {
                    "kind": "magnetometer",
                    "backend": "sim",
                    "settings": {"averaging_s": 0.4 * moment_s, "period_s": cells * moment_s},
                },
                "raman": {
                    "kind": "raman",
                    "backend": "sim",
                    "settings": {
                        "exposure_s": 0.2 * spectrum_s,
                        "accumulations": 1,
                        "dark": "none",
                        "period_s": cells * spectrum_s,
                    },
                },
            },
            "sample": {
                "name": "load",
                "material": "Fe3O4",
                "sim_preset": "fe_li2o",
                "active_mass_g": 0.002,
                "theoretical_capacity_mAh_g": 926,
                "electrolyte": "-",
                "cell_type": "-",
                "operator": "bench",
            },
            "cells": {
                f"ch{i:02d}": {"channel": i, "sample": {"sim_preset": PRESETS[(i - 1) % len(PRESETS)]}}
                for i in range(1, cells + 1)
            },
            "sim": {"speed": 1e9, "seed": 0, "clock": "virtual"},
        }
    )


def load_protocol(hours: float) -> Protocol:
    # a slow discharge from where each cell rests: no cut-off is reached within the hour
    return Protocol.model_validate(
        {"name": "load", "steps": [{"kind": "cc", "c_rate": -0.05, "e_min_V": -0.4, "max_duration_h": hours}]}
    )


def baseline_us_per_sample(cells: int, rate_hz: float, seconds: float) -> float:
    """CPU µs per sample for the simulated cells alone to produce ``seconds`` of samples."""
    protocol = load_protocol(seconds / 3600)
    from operando.plans.protocol import compile_protocol
    from operando.plans.sample import Sample

    sample = load_profile(1, rate_hz, 1, 1).sample
    engines = []
    for i in range(cells):
        lab = build_sim_lab(PRESETS[i % len(PRESETS)], 0.002, sample_interval_s=1 / rate_hz, clock="virtual")
        engine = SimPotentiostatEngine(lab.cell, lab.clock, 1 / rate_hz)
        steps = compile_protocol(protocol, Sample.model_validate(sample.model_dump()), _limits())
        engine.load(steps)
        engine.start()
        engines.append((lab, engine))
    start, produced = time.process_time(), 0
    for chunk in np.arange(1, int(seconds) + 1):
        for lab, engine in engines:
            engine.advance_to(lab.clock.time() + chunk)
            produced += len(engine.drain()["timestamp"])
    return (time.process_time() - start) * 1e6 / max(produced, 1)


def _limits():
    from operando.devices.techniques import Limits

    return Limits(e_min_V=-0.5, e_max_V=3.5, i_max_A=0.01)


def check_stored(run, cells: list[str], expected_rows: int, interval_s: float, datums: dict) -> list[str]:
    """Problems with what was stored; [] when every sample of every cell is there, contiguous."""
    problems = []
    for cell in cells:
        t = np.asarray(run[f"echem_{cell}"]["timestamp"].read())
        if t.size != expected_rows:
            problems.append(f"{cell}: {t.size} rows stored, {expected_rows} produced")
        steps = np.diff(t)
        off = np.abs(steps - interval_s) > 5e-7  # a float64 epoch time resolves ~2.4e-7 s
        if off.any():
            problems.append(f"{cell}: {int(off.sum())} steps between samples are not {interval_s:g} s")
        ranges = sorted(datums.get(f"echem_{cell}", []))
        covered = 0
        for start, stop in ranges:
            if start != covered:
                problems.append(f"{cell}: StreamDatum rows {covered}..{start} missing or overlapping")
                break
            covered = stop
        if covered != t.size:
            problems.append(f"{cell}: StreamDatums cover {covered} rows of {t.size}")
    return problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m operando.benchmarks.multichannel_load", description=__doc__)
    parser.add_argument("--cells", type=int, default=16)
    parser.add_argument("--rate-hz", type=float, default=1000.0)
    parser.add_argument("--hours", type=float, default=1.0, help="simulated hours (default 1)")
    parser.add_argument("--spectrum-s", type=float, default=1.0, help="a spectrum every this many s, all cells")
    parser.add_argument("--moment-s", type=float, default=1.0, help="a moment every this many s, all cells")
    args = parser.parse_args(argv)
    seconds = args.hours * 3600
    expected_rows = int(round(seconds * args.rate_hz))
    print(
        f"{args.cells} cells x {args.rate_hz:g} Hz for {seconds:g} simulated s "
        f"({args.cells * expected_rows:,} samples), a spectrum every {args.spectrum_s:g} s and a moment "
        f"every {args.moment_s:g} s shared by all cells",
        flush=True,
    )
    base = baseline_us_per_sample(args.cells, args.rate_hz, min(seconds, 60.0))
    profile = load_profile(args.cells, args.rate_hz, args.spectrum_s, args.moment_s)
    datums: dict[str, list[tuple[int, int]]] = {}
    resources: dict[str, str] = {}
    descriptors: dict[str, str] = {}

    times: dict[str, float] = {}

    def count(name, doc):
        if name in ("start", "stop"):
            times[name] = doc["time"]
        elif name == "descriptor":
            descriptors[doc["uid"]] = doc["name"]
        elif name == "stream_resource":
            resources[doc["uid"]] = doc.get("data_key", "")
        elif name == "stream_datum" and resources.get(doc["stream_resource"]) == "timestamp":
            stream = descriptors[doc["descriptor"]]
            datums.setdefault(stream, []).append((doc["indices"]["start"], doc["indices"]["stop"]))

    with tempfile.TemporaryDirectory(prefix="operando-load-") as tmp:
        wall0, cpu0 = time.perf_counter(), time.process_time()
        result = run_experiment(profile, load_protocol(args.hours), Path(tmp), report=False, callbacks=[count])
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        with open_catalog(Path(tmp)) as catalog:
            run = catalog.client[result.uid]
            cells = list(profile.cells)
            problems = check_stored(run, cells, expected_rows, 1.0 / args.rate_hz, datums)
            frames = {
                d: sum(len(run[f"{d}_{c}"]["frame-time"].read()) for c in cells if f"{d}_{c}" in run)
                for d in ("raman", "magnetometer")
            }
    samples = args.cells * expected_rows
    us = cpu * 1e6 / samples
    print(f"  exit status         {result.exit_status}")
    acquired = times["stop"] - times["start"]
    speedup = seconds / acquired
    print(f"  acquisition         {acquired:.1f} s wall from start to stop document ({speedup:.1f}x real time)")
    print(f"  wall                {wall:.1f} s until every document is in the catalog (set-up and draining included)")
    print(f"  CPU                 {cpu:.1f} s, {us:.2f} µs per sample (all threads of this process)")
    print(f"  baseline            {base:.2f} µs per sample: the simulated cells alone; ratio {us / base:.2f}x")
    print(f"  frames              {frames['raman']} spectra, {frames['magnetometer']} moments")
    print(f"  samples stored      {samples:,} expected; dropped: {'none' if not problems else 'SOME (below)'}")
    for problem in problems:
        print(f"  PROBLEM: {problem}")
    return 0 if not problems and result.exit_status == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
