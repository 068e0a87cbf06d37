"""`make bench`: the Raman device's software overhead per frame (dark, cosmic-ray removal,
saturation check, reads) against a stock ``trigger_and_read`` of a plain ophyd-async detector with
the same spectrum size, in one process, on one RunEngine.

Both detectors take no exposure time (an instant backend returns pre-made accumulations of the
simulated cell's spectrum), so the time per frame is software alone. The Raman device runs its
worst case: a dark before every frame (``each_frame``: two acquisitions), cosmic-ray removal across
the accumulations. Per-frame times are the intervals between consecutive events' arrival at a
subscriber; the two detectors alternate in one run, so each Raman frame is compared with the stock
frame just before it (the same machine load). Goal (issue 14): the 95th percentile of that
pairwise overhead ≤ 5 ms.
"""

from __future__ import annotations

import argparse
import math
import time

import bluesky.plan_stubs as bps
import numpy as np
from bluesky import RunEngine
from bluesky.preprocessors import run_decorator, stage_decorator
from ophyd_async.core import Array1D, AsyncStatus, StandardReadable, soft_signal_r_and_setter
from ophyd_async.core import StandardReadableFormat as Format

from operando.devices.kinds import DETECTOR_KINDS, RamanSettings
from operando.devices.raman import SpectrumReading
from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.raman import SimRamanPhysics

GOAL_P95_MS = 5.0


class InstantBackend:
    """Pre-made accumulations, returned at once: the device's own work is all that is timed."""

    capabilities = frozenset()
    read_noise_counts = SimRamanPhysics.READ_NOISE_COUNTS

    def __init__(self, accumulations: int, pixels: int):
        physics = SimRamanPhysics(SimCell(preset("fe_li2o"), soc=0.5), n_pixels=pixels)
        self.raman_shift_cm1 = physics.raman_shift_cm1
        self.laser_nm = physics.laser_nm
        self.description = "instant benchmark backend"
        self._light = np.vstack([physics.spectrum(5.0, 1) for _ in range(accumulations)])
        self._dark = np.vstack([np.random.default_rng(i).normal(10, 3, pixels) for i in range(accumulations)])
        self._t = 0.0

    async def acquire(self, exposure_s: float, accumulations: int, dark: bool = False) -> SpectrumReading:
        frames = self._dark if dark else self._light
        self._t += exposure_s * accumulations
        return SpectrumReading(
            self._t - exposure_s * accumulations, self._t, frames.sum(axis=0), math.nan, frames, 65535.0
        )

    async def status(self) -> dict:
        return {"connected": True, "interlock_closed": True}


class StockDetector(StandardReadable):
    """The baseline: one spectrum-sized array set in trigger, read as a hinted signal."""

    def __init__(self, spectrum: np.ndarray, name: str = "stock"):
        self._spectrum = spectrum
        with self.add_children_as_readables(Format.HINTED_SIGNAL):
            self.spectrum, self._set = soft_signal_r_and_setter(Array1D[np.float64], units="counts")
        super().__init__(name=name)

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        self._set(self._spectrum.copy())


def paired_frame_times(RE, stock, raman, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Stock and Raman frames alternately in one run: each pair meets the same machine load."""
    arrivals: list[float] = []

    def on_event(name, doc):
        if name == "event":
            arrivals.append(time.perf_counter())

    @stage_decorator([stock, raman])
    @run_decorator()
    def plan():
        for _ in range(frames):
            yield from bps.trigger_and_read([stock], name="stock")
            yield from bps.trigger_and_read([raman], name="raman")

    RE(plan(), on_event)
    t = np.asarray(arrivals)
    stock_ms = (t[2::2] - t[1:-1:2]) * 1e3  # from the previous Raman event to this stock event
    raman_ms = (t[3::2] - t[2:-1:2]) * 1e3
    n = min(stock_ms.size, raman_ms.size)
    return stock_ms[5:n], raman_ms[5:n]  # the first frames warm caches and describe


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m operando.benchmarks.raman_frame", description=__doc__)
    p.add_argument("--frames", type=int, default=500)
    p.add_argument("--pixels", type=int, default=2068, help="2068: an HDX; 1024: the simulated CCD")
    p.add_argument("--accumulations", type=int, default=3)
    args = p.parse_args(argv)
    RE = RunEngine({})
    settings = RamanSettings(exposure_s=5.0, accumulations=args.accumulations, dark="each_frame")
    raman = DETECTOR_KINDS["raman"].make_device(InstantBackend(args.accumulations, args.pixels), settings, "raman")
    stock = StockDetector(np.zeros(args.pixels))
    for d in (raman, stock):
        RE(bps.wait_for([d.connect]))
    base, ours = paired_frame_times(RE, stock, raman, args.frames)
    overhead = ours - base
    p95 = float(np.percentile(overhead, 95))
    print(
        f"Raman frame overhead ({args.frames} frame pairs, {args.pixels} pixels, "
        f"{args.accumulations} accumulations, dark each frame)"
    )
    print(f"  stock trigger_and_read   median {np.median(base):6.2f} ms   p95 {np.percentile(base, 95):6.2f} ms")
    print(f"  Raman device             median {np.median(ours):6.2f} ms   p95 {np.percentile(ours, 95):6.2f} ms")
    ratio = np.median(ours) / np.median(base)
    print(f"  overhead (pairwise)      median {np.median(overhead):6.2f} ms   p95 {p95:6.2f} ms")
    print(f"  ratio of medians, Raman / stock: {ratio:.2f}x")
    ok = p95 <= GOAL_P95_MS
    print(f"  goal p95 overhead <= {GOAL_P95_MS:g} ms: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
