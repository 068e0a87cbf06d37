"""What an hour of a run at real cadence adds to its journal and to the catalog database.

    python -m operando.benchmarks.storage_growth [--journal-hours 2] [--catalog-minutes 10]
                                                 [--rows-every 30]

The documents of an operando run at its real cadence, composed on a simulated clock (nothing
waits in real time): the potentiostat's 8 columns (10 Hz) appended to an HDF5 file and announced
every 0.5 s, one StreamDatum per column; a magnetometer moment every 5 s; a 1024-point Raman
spectrum every 30 s; a 64 x 64 SKPM map every hour.

(1) Journal: the documents through ``DocumentJournal``, rotated every 15 simulated minutes
    (``segment_s`` on the simulated clock) with the segments compacted in the background, then
    compacted whole at the stop. Before: the journal as it was (one plain JSON-lines file, every
    document as emitted: the bytes written). After: ``<uid>.jsonl.gz``; also the largest the
    journal folder was during the run (open segment + compacted segments). Replay of the
    compacted journal is checked to give back every document as emitted.
(2) Catalog: the same documents through ``FlushingTiledWriter`` into a fresh SQLite catalog,
    ``flush_buffers()`` once per simulated second (what the background writer does at real
    cadence), with streamed rows registered at every flush (``rows_every_s=0``: as before) and
    every ``--rows-every`` seconds; bytes of ``catalog.db`` and of Tiled's ``structures`` table
    per hour. Both in this process, one after the other (the ratio is what to compare).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from event_model import compose_run

from operando.devices.potentiostat import STREAM_COLUMNS
from operando.devices.stream_writer import HDF5StreamWriter
from operando.storage.journal import DocumentJournal, encode, find_journal, journal_dir, read_journal

HOUR = 3600.0


def run_documents(
    files: Path,
    seconds: float,
    *,
    collect_s: float = 0.5,
    rate_hz: float = 10.0,
    moment_every_s: float = 5.0,
    raman_every_s: float = 30.0,
    map_every_s: float = 3600.0,
    fast_forward_s: float = 0.0,
    fast_collect_s: float = 60.0,
    seed: int = 0,
) -> Iterator[tuple[float, str, dict]]:
    """(simulated seconds since the start, name, document) of a run at real cadence; for the
    first ``fast_forward_s`` the echem rows are announced every ``fast_collect_s`` instead (same
    rows, same events: what a catalog holds after them is the same, in far fewer documents)."""
    rng = np.random.default_rng(seed)
    t0 = time.time() - seconds
    bundle = compose_run(metadata={"plan_name": "storage_growth", "echem_stream": "echem"}, time=t0)
    uid = bundle.start_doc["uid"]
    yield 0.0, "start", bundle.start_doc
    writer = HDF5StreamWriter(files / f"potentiostat-{uid[:12]}.h5", STREAM_COLUMNS, choices={"technique": ["cc"]})
    writer.open()
    echem = bundle.compose_descriptor(name="echem", data_keys=writer.describe("potentiostat"))
    number = {"source": "sim", "dtype": "number", "shape": []}
    mag = bundle.compose_descriptor(name="magnetometer", data_keys={"magnetometer-moment": {**number, "units": "emu"}})
    raman = bundle.compose_descriptor(
        name="raman",
        data_keys={"raman-spectrum": {"source": "sim", "dtype": "array", "shape": [1024], "units": "counts"}},
    )
    skpm = bundle.compose_descriptor(
        name="skpm",
        data_keys={"skpm-potential": {"source": "sim", "dtype": "array", "shape": [64, 64], "units": "V"}},
    )
    for d in (echem, mag, raman, skpm):
        yield 0.0, "descriptor", d.descriptor_doc
    tick = 0.5  # the events' time grid
    last_collect = 0.0
    for k in range(1, int(seconds / tick) + 1):
        s = k * tick
        t = t0 + s
        every = fast_collect_s if s <= fast_forward_s else collect_s
        if s - last_collect >= every - 1e-9:
            n = int(round(rate_hz * (s - last_collect)))
            ts = t0 + last_collect + np.arange(1, n + 1) / rate_hz
            last_collect = s
            writer.append(
                {
                    "timestamp": ts,
                    "Ewe": 3.0 + 0.1 * np.sin(ts / 900) + rng.normal(0, 2e-4, n),
                    "I": np.full(n, 1e-3),
                    "charge": (ts - t0) / 3600,
                    "cycle": np.full(n, int(s // 7200), dtype="<i8"),
                    "step": np.full(n, int(s // 3600) % 2, dtype="<i8"),
                    "instrument_time": ts - t0,
                    "technique": np.zeros(n, dtype="<i8"),
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
                yield s, name, doc
        if s % moment_every_s < tick:
            yield s, "event", mag.compose_event(data={"magnetometer-moment": 1e-3 + rng.normal(0, 1e-6)},
                                                timestamps={"magnetometer-moment": t}, time=t)  # fmt: skip
        if s % raman_every_s < tick:
            spectrum = rng.normal(7000, 150, 1024)
            yield s, "event", raman.compose_event(data={"raman-spectrum": spectrum},
                                                  timestamps={"raman-spectrum": t}, time=t)  # fmt: skip
        if s % map_every_s < tick:
            image = rng.normal(0.2, 0.01, (64, 64))
            yield s, "event", skpm.compose_event(data={"skpm-potential": image},
                                                 timestamps={"skpm-potential": t}, time=t)  # fmt: skip
    writer.close()
    yield seconds, "stop", bundle.compose_stop(exit_status="success", time=t0 + seconds)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def measure_journal(data: Path, hours: float, segment_s: float = 900.0) -> dict:
    now = [0.0]
    journal = DocumentJournal(data, segment_s=segment_s, clock=lambda: now[0])
    kinds: dict[str, int] = {}
    written, peak, uid = 0, 0, None
    t = time.perf_counter()
    for s, name, doc in run_documents(data / "files", hours * HOUR):
        now[0] = s
        if name == "start":
            uid = doc["uid"]
        journal(name, doc)
        n = len(encode(name, doc))
        written += n
        kind = name if name != "event" else f"event {_stream_of(doc)}"
        kinds[kind] = kinds.get(kind, 0) + n
        if name == "event":
            peak = max(peak, folder_bytes(journal_dir(data)))
    write_s = time.perf_counter() - t
    t = time.perf_counter()
    journal.compact(uid)
    compact_s = time.perf_counter() - t
    journal.close()
    final = find_journal(data, uid)
    t = time.perf_counter()
    documents = sum(1 for _ in read_journal(final))
    read_s = time.perf_counter() - t
    return {
        "hours": hours,
        "written": written,
        "by_kind": kinds,
        "compacted": final.stat().st_size,
        "peak_folder": peak,
        "documents": documents,
        "write_s": write_s,
        "compact_s": compact_s,
        "read_s": read_s,
        "final": final.name,
    }


def _stream_of(doc: dict) -> str:
    data = doc.get("data", {})
    return next(iter(data)).split("-")[0] if data else "?"


def catalog_bytes(data: Path) -> tuple[int, int, int]:
    """(catalog.db bytes incl. its WAL, structures records, bytes of their JSON)."""
    db = sqlite3.connect(data / "catalog.db")
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        count, size = db.execute("SELECT count(*), coalesce(sum(length(structure)), 0) FROM structures").fetchone()
    finally:
        db.close()
    files = [data / "catalog.db", data / "catalog.db-wal"]
    return sum(p.stat().st_size for p in files if p.exists()), count, size


def measure_catalog(data: Path, minutes: float, rows_every_s: float, after_h: float = 0.0) -> dict:
    """Catalog growth over ``minutes`` of real cadence, after ``after_h`` hours of run (written
    coarsely: rows announced every minute, a forced flush every 10 min — and one right after the
    first spectrum, so its chunks are one spectrum each, as at real cadence)."""
    from operando.storage.catalog import files_dir, open_catalog
    from operando.storage.catalog_writer import FlushingTiledWriter

    ahead = after_h * HOUR
    with open_catalog(data) as catalog:
        now = [0.0]
        writer = FlushingTiledWriter(catalog.client, rows_every_s=rows_every_s, clock=lambda: now[0])
        base = None
        last_flush, flushes, writes = 0.0, 0, 0
        t = time.perf_counter()
        docs = run_documents(files_dir(data), ahead + minutes * 60, fast_forward_s=ahead)
        for s, name, doc in docs:
            now[0] = s
            if name == "stop":
                break
            writer(name, doc)
            if s <= ahead:
                if s - last_flush >= 600 or (name == "event" and flushes == 0 and "raman-spectrum" in doc["data"]):
                    writer.flush_buffers(force=True)
                    last_flush, flushes = s, flushes + 1
                continue
            if base is None:
                writer.flush_buffers(force=True)
                base, flushes, last_flush, t = catalog_bytes(data), 0, s, time.perf_counter()
            if s - last_flush >= 1.0:
                writes += writer.flush_buffers()
                flushes += 1
                last_flush = s
        end = catalog_bytes(data)
        wall = time.perf_counter() - t
        writer(name, doc)
    return {
        "after_h": after_h,
        "minutes": minutes,
        "rows_every_s": rows_every_s,
        "flushes": flushes,
        "writes": writes,
        "db_bytes": end[0] - base[0],
        "structures": end[1] - base[1],
        "structure_bytes": end[2] - base[2],
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--journal-hours", type=float, default=2.0)
    p.add_argument("--catalog-minutes", type=float, default=10.0)
    p.add_argument("--rows-every", type=float, default=30.0)
    p.add_argument("--skip-catalog", action="store_true")
    p.add_argument("--after", type=float, nargs="+", default=[0.0, 144.0], help="measure after this many hours of run")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "journal"
        j = measure_journal(data, args.journal_hours)
        per_h = 1 / j["hours"]
        print(f"(1) journal, {j['hours']:g} h at real cadence ({j['documents']:,} documents):")
        print(
            f"    before: {j['written'] * per_h / 1e6:8.2f} MB/h = "
            f"{j['written'] * per_h * 24 / 1e6:7.1f} MB/day (plain)"
        )
        for kind, n in sorted(j["by_kind"].items(), key=lambda kv: -kv[1]):
            print(f"            {kind:28} {n * per_h / 1e6:8.2f} MB/h")
        print(
            f"    after:  {j['compacted'] * per_h / 1e6:8.2f} MB/h = {j['compacted'] * per_h * 24 / 1e6:7.1f} MB/day "
            f"({j['final']}; ratio {j['written'] / j['compacted']:.1f}x); largest during the run "
            f"{j['peak_folder'] / 1e6:.1f} MB"
        )
        print(
            f"    wrote in {j['write_s']:.1f} s, final compaction {j['compact_s']:.2f} s, "
            f"full read back (expanded) {j['read_s']:.2f} s"
        )
        if args.skip_catalog:
            return 0
        for after_h in args.after:
            results = []
            for every in (0.0, args.rows_every):
                path = Path(tmp) / f"catalog-{after_h:g}-{every:g}"
                results.append(measure_catalog(path, args.catalog_minutes, every, after_h))
            print(
                f"(2) catalog (SQLite), {args.catalog_minutes:g} min at real cadence after {after_h:g} h of run, "
                "a flush every second:"
            )
            for r in results:
                f = 60 / r["minutes"]
                print(
                    f"    array rows every {r['rows_every_s']:>4g} s: {r['writes']:6,} writes, "
                    f"catalog.db +{r['db_bytes'] * f / 1e6:7.2f} MB/h ({r['db_bytes'] * f * 24 / 1e6:7.1f} MB/day), "
                    f"structures +{r['structures'] * f:8,.0f} records/h "
                    f"({r['structure_bytes'] * f / 1e6:.2f} MB/h of JSON); wall {r['wall_s']:.0f} s"
                )
            a, b = results
            if b["db_bytes"] > 0:
                print(f"    ratio (catalog.db bytes per hour, before/after): {a['db_bytes'] / b['db_bytes']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
