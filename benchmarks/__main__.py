"""`make bench`: potentiostat samples per second end to end into the catalog.

Three ways of storing the same echem columns, measured in one process, one run each:
  (a) one bluesky event per sample (RunEngine + TiledWriter),
  (b) TiledWriter fed event pages of 5,000 rows (documents composed directly),
  (c) operando's path: the potentiostat device on the simulated lab, HDF5 + StreamResource/
      StreamDatum through the RunEngine and TiledWriter, read back and counted.
Prints the three rates and the ratios of (c) to each baseline.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from .storage_paths import bench_event_pages, bench_fast_path, bench_one_event_per_sample


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m operando.benchmarks", description=__doc__)
    p.add_argument("--events", type=int, default=2_000, help="samples for (a)")
    p.add_argument("--paged", type=int, default=100_000, help="samples for (b)")
    p.add_argument("--fast", type=int, default=2_000_000, help="samples for (c)")
    args = p.parse_args(argv)
    from operando.storage.catalog import open_catalog

    with tempfile.TemporaryDirectory(prefix="operando-bench-") as tmp:
        with open_catalog(Path(tmp)) as catalog:
            results = [
                ("(a) one event per sample", bench_one_event_per_sample(catalog, args.events)),
                ("(b) TiledWriter, event pages of 5,000", bench_event_pages(catalog, args.paged)),
                ("(c) operando HDF5 + StreamDatum path", bench_fast_path(catalog, args.fast)),
            ]
    print(f"{'path':40} {'samples':>10} {'seconds':>9} {'samples/s':>12}")
    for name, (n, seconds) in results:
        print(f"{name:40} {n:>10,} {seconds:>9.3f} {n / seconds:>12,.0f}")
    rate = {name[:3]: n / s for name, (n, s) in results}
    print(f"ratio (c)/(a): {rate['(c)'] / rate['(a)']:,.0f}x")
    print(f"ratio (c)/(b): {rate['(c)'] / rate['(b)']:,.1f}x")
    floor, goal = 100_000, 1_000_000
    verdict = (
        "meets the goal" if rate["(c)"] >= goal else "meets the floor" if rate["(c)"] >= floor else "BELOW the floor"
    )
    print(f"(c) {rate['(c)']:,.0f} samples/s: {verdict} (floor {floor:,}, goal {goal:,})")
    return 0 if rate["(c)"] >= floor else 1


if __name__ == "__main__":
    raise SystemExit(main())
