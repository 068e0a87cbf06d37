"""`make bench`: potentiostat samples per second end to end into the catalog.

Ways of storing the same echem columns, measured in one process, one run each:
  (a)  one bluesky event per sample (RunEngine + TiledWriter),
  (b)  TiledWriter fed event pages of 5,000 rows (documents composed directly),
  (c0) operando's path as it was before 2026-12: the potentiostat device on the simulated lab,
       HDF5 + StreamResource/StreamDatum through the RunEngine into TiledWriter with the
       plugin's consolidator as released (a dict entry per row per column),
  (c)  operando's path now: the same, rows registered as ranges (storage/catalog_writer.py),
       at the same number of samples as (c0) and at --fast samples (the headline rate).
Each run is read back and counted. Prints the rates, the ratios of (c) to each baseline, and
checks (c) at --fast samples against the goal.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .storage_paths import (
    FAST_INTERVAL_S,
    FAST_SPEED,
    bench_event_pages,
    bench_fast_path,
    bench_one_event_per_sample,
)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m operando.benchmarks", description=__doc__)
    p.add_argument("--events", type=int, default=2_000, help="samples for (a)")
    p.add_argument("--paged", type=int, default=100_000, help="samples for (b)")
    p.add_argument("--before", type=int, default=2_000_000, help="samples for (c0), and for (c) beside it")
    p.add_argument("--fast", type=int, default=10_000_000, help="samples for (c), the headline rate")
    args = p.parse_args(argv)
    from operando.storage.catalog import open_catalog

    print(
        f"(c0)/(c) source: simulated potentiostat, a sample every {FAST_INTERVAL_S * 1e6:g} µs of experiment "
        f"time on a clock at {FAST_SPEED:g}x: {FAST_SPEED / FAST_INTERVAL_S:,.0f} samples/s offered"
    )
    with tempfile.TemporaryDirectory(prefix="operando-bench-") as tmp:
        with open_catalog(Path(tmp)) as catalog:
            bench_fast_path(catalog, 20_000)  # warm-up: imports, first run's catalog tables
            results = [
                ("(a) one event per sample", bench_one_event_per_sample(catalog, args.events)),
                ("(b) TiledWriter, event pages of 5,000", bench_event_pages(catalog, args.paged)),
                ("(c0) before: stock consolidator", bench_fast_path(catalog, args.before, stock_consolidation=True)),
                ("(c) now: rows as ranges", bench_fast_path(catalog, args.before)),
                ("(c) now: rows as ranges", bench_fast_path(catalog, args.fast)),
            ]
    print(f"{'path':40} {'samples':>11} {'seconds':>9} {'samples/s':>12}")
    for name, (n, seconds) in results:
        print(f"{name:40} {n:>11,} {seconds:>9.3f} {n / seconds:>12,.0f}")
    (na, sa), (nb, sb), (n0, s0), (n1, s1), (nc, sc) = (r for _, r in results)
    a, b, c0, c1, c = na / sa, nb / sb, n0 / s0, n1 / s1, nc / sc
    print(f"ratio (c)/(a):  {c / a:,.0f}x")
    print(f"ratio (c)/(b):  {c / b:,.1f}x")
    print(f"ratio (c)/(c0): {c1 / c0:,.2f}x at {n0:,} samples each; {c / c0:,.2f}x with (c) at {nc:,}")
    floor, goal = 100_000, 1_000_000
    verdict = "meets the goal" if c >= goal else "meets the floor" if c >= floor else "BELOW the floor"
    print(f"(c) {c:,.0f} samples/s at {nc:,} samples: {verdict} (floor {floor:,}, goal {goal:,})")
    return 0 if c >= floor else 1


if __name__ == "__main__":
    raise SystemExit(main())
