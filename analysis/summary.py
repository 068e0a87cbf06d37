"""A run summarised for people: the `operando runs` table and `operando show`."""

from __future__ import annotations

import datetime as dt

import numpy as np

from operando.storage.runs import RunRow, data_keys, run_row, stream_rows

from .cycling import CycleCapacity, cycle_capacities
from .run_cells import cell_names, describe_cells, grouped_streams


def format_time(t: float) -> str:
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def format_runs(rows: list[RunRow]) -> str:
    head = f"{'scan':>5}  {'uid':8}  {'start':19}  {'plan':22}  {'sample':28}  {'duration':>9}  status"
    lines = [head]
    for r in rows:
        dur = f"{r.duration_s:8.1f}s" if r.duration_s is not None else "        -"
        lines.append(
            f"{r.scan_id:>5}  {r.uid[:8]:8}  {format_time(r.start):19}  {r.plan[:22]:22}  "
            f"{r.sample[:28]:28}  {dur:>9}  {r.status}"
        )
    return "\n".join(lines)


def echem_capacities(run, stream: str = "echem") -> list[CycleCapacity]:
    s = run[stream]
    return cycle_capacities(s["cycle"].read(), s["I"].read(), s["charge"].read())


def describe_run(run) -> str:
    row = run_row(run)
    start = run.metadata["start"]
    lines = [
        f"Run {row.uid}  (scan {row.scan_id})",
        f"  plan      {row.plan}",
        f"  sample    {row.sample}",
        f"  started   {format_time(row.start)}",
        f"  duration  {row.duration_s:.1f} s wall" if row.duration_s is not None else "  duration  -",
        f"  status    {row.status}",
    ]
    stop = run.metadata.get("stop") or {}
    if stop.get("reason"):
        lines.append(f"  reason    {stop['reason']}")
    cells = cell_names(start)
    if cells:  # several cells: how each ended, and their streams grouped
        lines.append(f"  cells     {len(cells)}")
        lines += describe_cells(run)
        lines.append("  streams (rows per cell: least-most):")
        for name, counts in grouped_streams(stream_rows(run), cells).items():
            rows = f"{min(counts):>9}" if len(counts) == 1 else f"{min(counts)}-{max(counts)} x{len(counts)}"
            lines.append(f"    {name:22} {rows:>18} rows")
        lines.append(f"  per cell: operando analyse RUN --cell {cells[0]} (or export --cell)")
        return "\n".join(lines)
    lines.append("  streams:")
    for name, n in stream_rows(run).items():
        lines.append(f"    {name:16} {n:>9} rows  ({', '.join(data_keys(run[name]))})")
    echem = start.get("echem_stream", "echem")
    if echem in run and {"timestamp", "cycle", "I", "charge"} <= set(run[echem]):  # empty: no keys
        s = run[echem]
        t = np.asarray(s["timestamp"].read())
        if t.size:
            lines.append(f"  experiment time  {(t[-1] - t[0]) / 3600:.3f} h")
        caps = echem_capacities(run, start.get("echem_stream", "echem"))
        lines.append("  cycle  charge/mAh  discharge/mAh  coulombic eff.")
        for c in caps:
            if c.charge_mAh == 0 and c.discharge_mAh == 0:
                continue  # a rest-only cycle (e.g. the initial OCV, cycle 0)
            lines.append(
                f"  {c.cycle:>5}  {c.charge_mAh:10.4f}  {c.discharge_mAh:13.4f}  {c.coulombic_efficiency:14.3f}"
            )
    return "\n".join(lines)
