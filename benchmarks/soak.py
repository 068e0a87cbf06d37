"""Soak: seven simulated days of cycling with every detector, memory and disk measured day by day.

    python -m operando.benchmarks.soak [--days 7] [--speed 200000]

One run, in this process, on the simulated lab with the virtual clock (deterministic: a stalled
host delays the run, never changes it): 1C cycling for ``--days`` days, echem every second, a
moment every minute, a Raman spectrum every 5 min, an SKPM map every hour. At the end of each
simulated day it records this process's resident memory and the data directory's size by part
(HDF5 files, catalog and event tables, journal). Prints them, the memory growth from day 1 to the
last day (day 0 includes the imports and first allocations: the baseline), and the disk growth
per day. Goal: resident memory growth ≤ 50 MB over the week.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml

MEMORY_GOAL_MB = 50.0
DAY_S = 86_400.0


@dataclass
class DayMark:
    day: int
    wall_s: float
    rss_mb: float
    trimmed_mb: float  # after handing freed heap pages back to the system (malloc_trim)
    disk_mb: dict[str, float]


def _disk_mb(data: Path) -> dict[str, float]:
    def size(paths) -> float:
        return sum(p.stat().st_size for p in paths if p.is_file()) / 1e6

    return {
        "files (HDF5)": size((data / "files").rglob("*")),
        "catalog + tables": size(p for p in data.glob("*") if p.suffix in (".db", ".sqlite", ".duckdb", ".wal")
                                 or p.name.endswith(("-wal", "-shm"))),
        "journal": size((data / "journal").rglob("*")),
    }  # fmt: skip


def _malloc_trim() -> None:
    """Return free heap pages to the system (glibc), so what stays resident is what is in use:
    RSS alone also counts pages freed but kept by the allocator (fragmentation, not growth)."""
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: RSS as it is
        pass


class DayWatch:
    """The plan's progress callback: a mark at the end of every simulated day."""

    def __init__(self, data: Path):
        self.data, self.marks, self.started = data, [], time.monotonic()
        self.total_s = self.speed = None
        self._process = psutil.Process()
        self._mark(0)

    def _mark(self, day: int) -> None:
        rss = self._process.memory_info().rss / 1e6
        _malloc_trim()
        trimmed = self._process.memory_info().rss / 1e6
        self.marks.append(DayMark(day, time.monotonic() - self.started, rss, trimmed, _disk_mb(self.data)))

    def __call__(self, progress) -> None:
        day = int(progress.elapsed_s // DAY_S)
        if day > self.marks[-1].day:
            self._mark(day)


def _protocol(days: float) -> str:
    cycles = max(1, int(days * 24 / 2))  # 1C: an hour each way
    return yaml.safe_dump({
        "name": f"soak_{days:g}_days",
        "steps": [{"kind": "loop", "repeat": cycles, "steps": [
            {"kind": "cc", "c_rate": 1, "e_max_V": 3.0, "max_duration_h": 1.2},
            {"kind": "cc", "c_rate": -1, "e_min_V": 0.01, "max_duration_h": 1.2},
        ]}],
    })  # fmt: skip


def _profile() -> dict:
    from operando.acquisition.config import PROFILES_DIR

    p = yaml.safe_load((PROFILES_DIR / "sim.yaml").read_text())
    p["sim"]["clock"] = "virtual"
    p["instruments"]["magnetometer"]["settings"]["period_s"] = 60
    p["instruments"]["raman"]["settings"].update(period_s=300, exposure_s=10, accumulations=1)
    p["instruments"]["skpm"] = {"kind": "skpm", "backend": "sim", "settings": {"period_s": 3600}}
    return p


def run_soak(days: float, speed: float, workdir: Path) -> tuple[DayWatch, object]:
    from operando.acquisition.config import load_profile, load_protocol
    from operando.acquisition.experiment import run_experiment
    from operando.storage.catalog_writer import ROWS_EVERY_ENV, ROWS_EVERY_S

    # The catalog writer holds rows of arrays back for ROWS_EVERY_S of *wall* time; at 200,000x
    # that would be the whole week in memory, which no real-time run does. Scaled, it holds what
    # a real run holds: 30 s of experiment.
    os.environ[ROWS_EVERY_ENV] = repr(ROWS_EVERY_S / speed)
    (workdir / "soak.yaml").write_text(_protocol(days))
    (workdir / "profile.yaml").write_text(yaml.safe_dump(_profile()))
    data = workdir / "data"
    data.mkdir()
    watch = DayWatch(data)
    result = run_experiment(load_profile(workdir / "profile.yaml"), load_protocol(workdir / "soak.yaml"), data,
                            speed=speed, progress=watch, report=False)  # fmt: skip
    watch._mark(watch.marks[-1].day + 1)  # after the run: everything written
    return watch, result


def report(watch: DayWatch, result) -> str:
    marks = watch.marks
    parts = list(marks[0].disk_mb)
    lines = [f"soak: {len(marks) - 2} simulated days, exit {result.exit_status}, {marks[-1].wall_s:.0f} s wall",
             f"{'day':>5} {'wall s':>7} {'RSS MB':>8} {'trimmed':>8}  "
             + "  ".join(f"{k:>18}" for k in parts)]  # fmt: skip
    for m in marks:
        disk = "  ".join(f"{m.disk_mb[k]:16.1f}MB" for k in parts)
        label = "stop" if m is marks[-1] else str(m.day)
        lines.append(f"{label:>5} {m.wall_s:7.0f} {m.rss_mb:8.1f} {m.trimmed_mb:8.1f}  {disk}")
    # Day 0 holds the imports and the first allocations (the baseline); the last mark is after
    # the stop (the run's final writes and the journal's compaction).
    first, last_day, stop = marks[1] if len(marks) > 2 else marks[0], marks[-2], marks[-1]
    growth = last_day.rss_mb - first.rss_mb
    verdict = "met" if growth <= MEMORY_GOAL_MB else "NOT met"
    lines.append(f"resident memory growth from day {first.day} to day {last_day.day}: {growth:+.1f} MB "
                 f"(in use, after malloc_trim: {last_day.trimmed_mb - first.trimmed_mb:+.1f} MB; "
                 f"goal <= {MEMORY_GOAL_MB:g} MB: {verdict}); after the stop: "
                 f"{stop.rss_mb - first.rss_mb:+.1f} MB "
                 f"({stop.trimmed_mb - first.trimmed_mb:+.1f} MB in use)")  # fmt: skip
    days = max(1, stop.day - first.day)
    per_day = {k: (stop.disk_mb[k] - first.disk_mb[k]) / days for k in parts}
    lines.append("disk growth per simulated day: " + ", ".join(f"{k} {v:.1f} MB" for k, v in per_day.items())
                 + f"; total {sum(per_day.values()):.1f} MB")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m operando.benchmarks.soak", description=__doc__.splitlines()[0])
    p.add_argument("--days", type=float, default=7.0)
    p.add_argument("--speed", type=float, default=200_000.0, help="virtual clock pacing (sim s per wall s)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="operando-soak-") as tmp:
        watch, result = run_soak(args.days, args.speed, Path(tmp))
        print(report(watch, result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
