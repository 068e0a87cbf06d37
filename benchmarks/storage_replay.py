"""Open a simulated 24-hour operando run for replay: how long until documents flow?

The run is written through the real storage path (document journal + TiledWriter into the
embedded catalog, echem on the HDF5 fast path): 10 Hz echem (864,000 rows, one collect — six
StreamDatums — per second of experiment), a 1024-pixel Raman spectrum every 30 s (2,880) and a
magnetometer moment every 5 s (17,280). Then, in the same process:

  (a) open for replay from the journal: open the catalog, find the run, first document delivered
  (b) the same through the catalog's own json-seq export (`run.documents()`), the fallback
  (c) a full replay pass from the journal at speed=inf (every document to a callback)

Target: (a) <= 2 s. Run: `python -m operando.benchmarks.storage_replay [--hours H]`.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
from event_model import compose_run

from operando.devices.stream_writer import HDF5StreamWriter
from operando.storage.catalog import files_dir, open_catalog
from operando.storage.catalog_writer import FlushingTiledWriter
from operando.storage.journal import DocumentJournal
from operando.storage.replay import replay, run_documents
from operando.storage.runs import find_run

TARGET_OPEN_S = 2.0
ECHEM = {
    "timestamp": ("s", "<f8"),
    "Ewe": ("V", "<f8"),
    "I": ("A", "<f8"),
    "charge": ("mA*h", "<f8"),
    "cycle": ("", "<i8"),
    "step": ("", "<i8"),
}


def write_day(data: Path, hours: float) -> tuple[str, dict[str, int]]:
    """Write the simulated run; returns its uid and rows per stream."""
    t0 = time.time() - hours * 3600
    bundle = compose_run(
        metadata={"plan_name": "benchmark_24h", "sample": {"name": "bench"}, "echem_stream": "echem"}, time=t0
    )
    uid = bundle.start_doc["uid"]
    journal, catalog = DocumentJournal(data), None
    with open_catalog(data) as cat:
        catalog = FlushingTiledWriter(cat.client)

        def emit(name, doc):
            journal(name, doc)
            catalog(name, doc)

        emit("start", bundle.start_doc)
        writer = HDF5StreamWriter(files_dir(data) / f"bench-{uid[:8]}.h5", ECHEM)
        writer.open()
        echem = bundle.compose_descriptor(name="echem", data_keys=writer.describe("bench"))
        mag = bundle.compose_descriptor(
            name="magnetometer",
            data_keys={"magnetometer-moment": {"source": "sim", "dtype": "number", "shape": [], "units": "emu"}},
        )
        raman = bundle.compose_descriptor(
            name="raman",
            data_keys={"raman-spectrum": {"source": "sim", "dtype": "array", "shape": [1024], "units": "counts"}},
        )
        for d in (echem, mag, raman):
            emit("descriptor", d.descriptor_doc)
        rng = np.random.default_rng(0)
        rows = {"echem": 0, "magnetometer": 0, "raman": 0}
        for s in range(int(hours * 3600)):
            t = t0 + s
            k = np.arange(10)
            writer.append(
                {
                    "timestamp": t + k / 10,
                    "Ewe": 3.0 + 0.1 * np.sin((s + k / 10) / 900),
                    "I": np.full(10, 1e-3),
                    "charge": (s + k / 10) / 3600,
                    "cycle": np.full(10, s // 7200),
                    "step": np.full(10, (s // 3600) % 2),
                }
            )
            for name, doc in writer.asset_docs():
                if name == "stream_resource":
                    doc = {**doc, "run_start": uid}
                else:
                    i = doc["indices"]
                    doc = {
                        **doc,
                        "descriptor": echem.descriptor_doc["uid"],
                        "seq_nums": {"start": i["start"] + 1, "stop": i["stop"] + 1},
                    }
                emit(name, doc)
            rows["echem"] += 10
            if s % 5 == 0:
                emit(
                    "event",
                    mag.compose_event(
                        data={"magnetometer-moment": 1e-3 + 1e-6 * s}, timestamps={"magnetometer-moment": t}, time=t
                    ),
                )
                rows["magnetometer"] += 1
            if s % 30 == 0:
                spectrum = rng.poisson(100, 1024).astype(float)
                emit(
                    "event",
                    raman.compose_event(data={"raman-spectrum": spectrum}, timestamps={"raman-spectrum": t}, time=t),
                )
                rows["raman"] += 1
        writer.close()
        emit("stop", bundle.compose_stop(exit_status="success", time=t0 + hours * 3600))
    journal.close()
    return uid, rows


def open_and_first(data: Path, uid: str, from_journal: bool) -> tuple[float, str]:
    """Seconds from nothing open to the first replayed document in a callback."""
    t = time.perf_counter()
    got = []
    with open_catalog(data) as cat:
        run = find_run(cat.client, uid[:8])
        docs = run_documents(run, data if from_journal else None)
        name, doc = next(docs)
        got.append(name)
        elapsed = time.perf_counter() - t
        docs.close()
    return elapsed, got[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--data", help="keep the run here (default: a temporary directory)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(args.data or tmp).absolute()
        data.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        uid, rows = write_day(data, args.hours)
        write_s = time.perf_counter() - t
        (journal,) = (data / "journal").glob(f"{uid}.jsonl")
        print(
            f"wrote a {args.hours:g} h run in {write_s:.1f} s: "
            + ", ".join(f"{k} {v:,} rows" for k, v in rows.items())
            + f"; journal {journal.stat().st_size / 1e6:.0f} MB"
        )
        open_journal, first = open_and_first(data, uid, True)
        print(f"(a) open for replay from the journal: {open_journal:.3f} s to the first document ({first})")
        open_export, first = open_and_first(data, uid, False)
        print(
            f"(b) open for replay from the catalog export: {open_export:.3f} s ({first}); "
            f"ratio b/a {open_export / open_journal:.1f}"
        )
        with open_catalog(data) as cat:
            run = find_run(cat.client, uid[:8])
            t = time.perf_counter()
            n = replay(run_documents(run, data), [lambda name, doc: None], speed=math.inf)
            full = time.perf_counter() - t
        print(
            f"(c) full replay pass from the journal at speed=inf: {n:,} documents in {full:.1f} s "
            f"({n / full:,.0f} documents/s; the run lasted {args.hours * 3600 / full:,.0f}x longer)"
        )
        ok = open_journal <= TARGET_OPEN_S
        print(f"target: open for replay <= {TARGET_OPEN_S} s: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
