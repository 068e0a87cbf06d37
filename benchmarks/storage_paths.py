"""The storage paths measured by `make bench`; each returns (samples stored, seconds)."""

from __future__ import annotations

import time

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky import RunEngine
from bluesky.run_engine import call_in_bluesky_event_loop
from bluesky_tiled_plugins import TiledWriter
from event_model import compose_run
from ophyd_async.core import AsyncStatus, StandardReadable, soft_signal_r_and_setter

from operando.devices.potentiostat import Potentiostat
from operando.devices.techniques import ECHEM_COLUMNS, ConstantCurrent, Limits, ScheduledStep
from operando.plans.operando import galvanostatic_cycling
from operando.sim_devices.backends.potentiostat import SimPotentiostatBackend
from operando.sim_devices.lab import build_sim_lab


class _SampleReadable(StandardReadable):
    """One potentiostat sample per trigger, as the stock idiom would read it."""

    def __init__(self, name="echem"):
        self._setters = {}
        with self.add_children_as_readables():
            for key, (units, dtype) in ECHEM_COLUMNS.items():
                kind = int if dtype.startswith("<i") else float
                sig, setter = soft_signal_r_and_setter(kind, units=units)
                setattr(self, key, sig)
                self._setters[key] = (kind, setter)
        self._n = 0
        super().__init__(name=name)

    @AsyncStatus.wrap
    async def trigger(self):
        self._n += 1
        for kind, setter in self._setters.values():
            setter(kind(self._n))


def bench_one_event_per_sample(catalog, n: int) -> tuple[int, float]:
    RE = RunEngine({})
    RE.subscribe(TiledWriter(catalog.client))
    dev = _SampleReadable()
    call_in_bluesky_event_loop(dev.connect())

    @bpp.run_decorator(md={"plan_name": "bench_one_event_per_sample"})
    def plan():
        for _ in range(n):
            yield from bps.trigger_and_read([dev], name="echem")

    t0 = time.perf_counter()
    (uid,) = RE(plan())
    seconds = time.perf_counter() - t0
    rows = catalog.client[uid]["echem"]["echem-Ewe"].read().shape[0]
    return rows, seconds


def bench_event_pages(catalog, n: int, page: int = 5_000) -> tuple[int, float]:
    writer = TiledWriter(catalog.client)
    data_keys = {
        key: {"source": "bench", "dtype": "integer" if dt.startswith("<i") else "number", "shape": [], "units": u}
        for key, (u, dt) in ECHEM_COLUMNS.items()
    }
    t0 = time.perf_counter()
    run = compose_run(metadata={"plan_name": "bench_event_pages"})
    writer("start", run.start_doc)
    desc = run.compose_descriptor(name="echem", data_keys=data_keys)
    writer("descriptor", desc.descriptor_doc)
    for first in range(0, n, page):
        rows = np.arange(first, min(first + page, n))
        data = {
            key: (rows.tolist() if dt.startswith("<i") else (rows * 1.0).tolist())
            for key, (_, dt) in ECHEM_COLUMNS.items()
        }
        now = time.time()
        writer(
            "event_page",
            desc.compose_event_page(
                data=data,
                timestamps={key: [now] * len(rows) for key in data},
                seq_num=(rows + 1).tolist(),
                time=[now] * len(rows),
            ),
        )
    writer("stop", run.compose_stop())
    seconds = time.perf_counter() - t0
    stored = catalog.client[run.start_doc["uid"]]["echem"]["Ewe"].read().shape[0]
    return stored, seconds


# The simulated source for (c): a sample every 10 µs of experiment time on a clock at 100x wall
# time, i.e. 10 M samples/s offered (the engine alone makes ~5-12 M/s here), so the source is not
# the limit: each poll of the device carries what has accumulated since the last one. The run
# still has several polls, collects (every 0.5 s) and catalog flushes (every second), as a real
# run does; at speed 1e6 (before 2026-12) the whole run came in one poll and one flush.
FAST_INTERVAL_S = 1e-5
FAST_SPEED = 100.0


def bench_fast_path(
    catalog,
    n: int,
    interval_s: float = FAST_INTERVAL_S,
    speed: float = FAST_SPEED,
    stock_consolidation: bool = False,
) -> tuple[int, float]:
    """The potentiostat on the simulated lab through the RunEngine into the catalog, read back.

    ``stock_consolidation=True`` is the path as it was before 2026-12: the same RunEngine set-up
    with bluesky-tiled-plugins' consolidator as released (a dict entry per row per column).
    """
    from operando.acquisition.session import make_run_engine
    from operando.storage.catalog import files_dir

    RE = _run_engine_stock_consolidation(catalog) if stock_consolidation else make_run_engine(catalog)
    lab = build_sim_lab("fe_li2o", active_mass_g=1.0, speed=speed, sample_interval_s=interval_s, soc=0.3)
    limits = Limits(e_min_V=0.0, e_max_V=3.0, i_max_A=1.0)
    dev = Potentiostat(SimPotentiostatBackend(lab), limits, files_dir(catalog.data_dir), name="potentiostat")
    call_in_bluesky_event_loop(dev.connect())
    # A small current for exactly n samples: no cut-off is reached.
    step = ConstantCurrent(current_A=1e-4, e_max_V=3.0, max_duration_s=n * interval_s)
    steps = [ScheduledStep(technique=step, cycle=1, step=1)]
    t0 = time.perf_counter()
    (uid,) = RE(galvanostatic_cycling(dev, steps, lab.clock, md={"plan_name": "bench_fast_path"}))
    RE.catalog_writer.flush()  # stored, not just queued
    seconds = time.perf_counter() - t0
    rows = catalog.client[uid]["echem"]["Ewe"].read().shape[0]
    return rows, seconds


def _run_engine_stock_consolidation(catalog):
    """``make_run_engine`` (acquisition/session.py) with the catalog writer as it was before
    2026-12: FlushingTiledWriter on the plugin's own per-run writer and consolidators. Keep it
    in step with ``make_run_engine``: only the writer may differ, or (c0) is no baseline."""
    from operando.acquisition.session import OperandoRunEngine
    from operando.storage.background import BackgroundConsumer
    from operando.storage.catalog_writer import FlushingTiledWriter
    from operando.storage.journal import DocumentJournal
    from operando.storage.metadata import JsonMetadataStore

    RE = OperandoRunEngine(JsonMetadataStore(catalog.data_dir / "run_engine.json"))
    RE.record_interruptions = True
    RE.journal = DocumentJournal(catalog.data_dir)
    RE.subscribe(RE.journal)
    RE.catalog_writer = BackgroundConsumer(FlushingTiledWriter(catalog.client, stock_consolidation=True))
    RE.subscribe(RE.catalog_writer)
    RE.subscribe(lambda name, doc: RE.catalog_writer.wait(), "stop")
    catalog.writers.append(RE.catalog_writer)
    return RE
