"""Exports that battery-analysis tools open as they are: PyProBE's format (``--format pyprobe``),
and what the general CSV export adds for them (times from the run's start, technique names, a
JSON sidecar with the start time and uid).

PyProBE format (checked against the pinned PyProBE 2.6.1, ``pyprobe-data`` on PyPI, source read):

- ``pyprobe.rawdata.required_columns`` is ``Time [s]``, ``Step``, ``Event``, ``Current [A]``,
  ``Voltage [V]``, ``Capacity [Ah]``; ``Date`` (a datetime) is optional and is what
  ``Result.add_data`` aligns other time-stamped data on. ``Cycle`` is not required: every
  ``.cycle()`` filter and ``pyprobe.analysis.cycling.summary`` recompute it from ``Step`` (a new
  cycle where the step number goes down, or from a README's cycle ranges), so ``Step`` is the
  program step of a cycler (BioLogic ``Ns``, Neware ``Step Index``), repeated in every cycle
  (``program_steps``). As for a cycler's file, steps before the first loop fall in PyProBE's first
  cycle and steps after the last in its last, and a loop of one step shows PyProBE no cycles;
  operando's own cycle is in ``Cycle`` for filtering on it directly.
- Sign convention: current is positive on charge. ``filters._charge`` selects
  ``Current [A] > max|I|/1e5`` and ``_discharge`` ``Current [A] < -max|I|/1e5``; importing a
  PyBaMM solution (discharge-positive) multiplies its current by -1; ``Capacity [Ah]`` is "the net
  charge passed since the start of the procedure", rising on charge (the cycler importers add the
  charge capacity and subtract the discharge capacity). operando's ``I`` (A, > 0 charging) and
  ``charge`` (mA*h, net charge since the run's start) follow the same convention, so current is
  written as stored and capacity is ``charge / 1000``.
- ``Event`` (PyProBE's "counts the changes in cycles and steps", from 0) counts operando's own
  steps, each scheduled step (every repetition of a loop included) one event.
- The generic CSV importer (``BaseCycler.read_file``) reads the header from the file's first line
  and ``process_cycler_data`` has no way to skip lines, so the CSV has no comment lines: the start
  time, uid and column descriptions are in the sidecar ``<stem>-pyprobe.json`` (also in the
  Parquet file's schema metadata, key ``operando``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

# Keys (after a device prefix) that hold epoch seconds on the experiment clock (``time``: the
# event's own time). Instrument clocks (``instrument_time``) are not converted: their origin is
# the instrument's.
EPOCH_TIME_KEYS = ("timestamp", "time", "exposure_start", "exposure_end")

PYPROBE_COLUMNS = {
    "Date": "UTC date and time of the sample (experiment clock), ISO 8601",
    "Time [s]": "seconds since the first sample of the echem stream (time_origin_utc)",
    "Step": "program step: the k-th step of every cycle has the number of the k-th step of the "
    "first cycle; steps outside loops continue the count (as a cycler's step index)",
    "Cycle": "operando's cycle: each repetition of an outermost protocol loop, from 1; 0 outside loops "
    "(PyProBE's .cycle() recomputes its own from Step)",
    "Event": "operando's scheduled steps counted from 0 (each repetition of a loop's step is a new event)",
    "Current [A]": "cell current, positive on charge",
    "Voltage [V]": "working-electrode potential (Ewe)",
    "Capacity [Ah]": "net charge passed since the start of the run, rising on charge",
    "Technique": "technique name of the sample's step (ocv, cc, cccv, cv, gitt, ...)",
    "Protocol Step": "operando's step number (1-based over the unrolled protocol, as `operando show` counts)",
}


def iso_utc(t: float) -> str:
    """Epoch seconds as ISO 8601 UTC with microseconds (``2026-12-02T11:13:00.407685+00:00``)."""
    return _iso_utc(np.asarray([t], dtype=float))[0]


def _iso_utc(t: np.ndarray) -> list[str]:
    us = np.round(np.asarray(t, dtype=float) * 1e6).astype("int64").astype("datetime64[us]")
    return [s + "+00:00" for s in np.datetime_as_string(us, unit="us")]


def stream_choices(run, stream_name: str) -> dict[str, list[str]]:
    """Names of the codes of each integer key that has them (``technique``: the code is the
    position in the descriptor's ``choices``)."""
    data_keys = run[stream_name].metadata.get("data_keys") or {}
    return {key: list(dk["choices"]) for key, dk in data_keys.items() if dk.get("choices")}


def _names(codes: np.ndarray, choices: list[str]) -> list[str]:
    return [choices[c] if 0 <= c < len(choices) else "" for c in np.asarray(codes, dtype=np.int64).tolist()]


def _is_epoch_time(key: str, units: str) -> bool:
    return units in ("s", "") and any(key == k or key.endswith("-" + k) for k in EPOCH_TIME_KEYS)


def run_start(run) -> float:
    """The run's start (the start document's time), epoch seconds."""
    return float(run.metadata["start"]["time"])


def csv_extra_columns(run, stream_name: str, scalars: dict[str, np.ndarray], units: dict[str, str]) -> dict:
    """Columns the general CSV export appends after the stored ones (which it keeps as they
    were): ``<key> since start [s]`` for each epoch time, ``<key>_name`` for each coded column."""
    t0 = run_start(run)
    extra = {}
    for key, values in scalars.items():
        if values.dtype.kind == "f" and _is_epoch_time(key, units.get(key, "")):
            extra[f"{key} since start [s]"] = values - t0
    for key, choices in stream_choices(run, stream_name).items():
        if key in scalars and scalars[key].dtype.kind in "iu":
            extra[f"{key}_name"] = np.asarray(_names(scalars[key], choices), dtype=object)
    return extra


def write_csv_sidecar(run, path: Path, streams: dict[str, dict]) -> Path:
    """The general CSV export's ``<stem>.json``: uid, scan, start time and, per stream, its
    file and the units and code names of its columns."""
    start = run.metadata["start"]
    meta = {
        "format": "csv",
        "uid": start["uid"],
        "scan_id": start.get("scan_id", 0),
        **({"cell": start["cell"]} if start.get("cell") else {}),
        "run_start_utc": iso_utc(run_start(run)),
        "run_start_epoch_s": run_start(run),
        "time_columns": "'<key> since start [s]' = <key> minus run_start_epoch_s (the stored epoch column is kept)",
        "streams": streams,
    }
    path.write_text(json.dumps(meta, indent=2, default=str))
    return path


# ---------------------------------------------------------------------------------- PyProBE


def _column(stream, name: str):
    """The data key ``name`` or ``<device>-name`` of ``stream``, read; None when there is none."""
    for key in stream:
        if key == name or key.endswith("-" + name):
            return np.asarray(stream[key].read())
    return None


def program_steps(step: np.ndarray, cycle: np.ndarray) -> np.ndarray:
    """PyProBE's ``Step`` from operando's global step and cycle columns, as a cycler numbers its
    program: the k-th step of every cycle gets the number of the k-th step of the first cycle;
    steps outside loops (cycle 0) keep their own number before the first cycle and continue the
    count after it. Reconstructed from the recorded samples (a step that recorded nothing at the
    start of a cycle shifts that cycle's numbers by one)."""
    step = np.asarray(step, dtype=np.int64)
    cycle = np.asarray(cycle, dtype=np.int64)
    if step.size == 0:
        return step.copy()
    starts = np.flatnonzero(np.r_[True, (np.diff(step) != 0) | (np.diff(cycle) != 0)])
    numbers: dict[tuple[int, int], int] = {}
    first_of_cycle: dict[int, int] = {}
    base = None
    last = 0
    for i in starts:
        g, c = int(step[i]), int(cycle[i])
        if (g, c) in numbers:
            continue
        if c > 0:
            first_of_cycle.setdefault(c, g)
            base = g if base is None else base
            n = base + g - first_of_cycle[c]
        else:
            n = g if base is None else last + 1
        numbers[(g, c)] = last = n
    out = np.empty_like(step)
    ends = np.r_[starts[1:], step.size]
    for i, j in zip(starts, ends):
        out[i:j] = numbers[(int(step[i]), int(cycle[i]))]
    return out


def pyprobe_table(run) -> tuple[dict[str, np.ndarray], dict]:
    """The run's echem stream as PyProBE columns, and the metadata for the sidecar."""
    start = run.metadata["start"]
    name = start.get("echem_stream") or "echem"
    label = f"run {start['uid'][:8]}" + (f" cell {start['cell']}" if start.get("cell") else "")
    if name not in run:
        raise ValueError(f"{label} has no {name!r} stream: the pyprobe format exports the echem stream")
    s = run[name]
    cols = {k: _column(s, k) for k in ("timestamp", "Ewe", "I", "charge", "cycle", "step", "technique")}
    missing = [k for k in ("timestamp", "Ewe", "I", "charge", "step") if cols[k] is None]
    if missing and list(s):
        raise ValueError(f"{label}: its {name!r} stream has no {', '.join(map(repr, missing))} column")

    def col(k, dtype):
        return np.zeros(0, dtype) if cols[k] is None else np.asarray(cols[k], dtype=dtype)

    ts, step = col("timestamp", float), col("step", np.int64)
    n = ts.size
    cycle = col("cycle", np.int64) if cols["cycle"] is not None else np.zeros(n, np.int64)
    key = next((k for k in s if k == "technique" or k.endswith("-technique")), None)
    choices = stream_choices(run, name).get(key, [])
    technique = _names(cols["technique"], choices) if cols["technique"] is not None else [""] * n
    origin = float(ts[0]) if n else run_start(run)
    new_step = np.r_[False, (np.diff(step) != 0) | (np.diff(cycle) != 0)] if n else np.zeros(0, bool)
    table = {
        "Date": ts,  # epoch seconds here; written as ISO 8601 UTC (CSV) or a UTC timestamp (Parquet)
        "Time [s]": ts - origin,
        "Step": program_steps(step, cycle),
        "Cycle": cycle,
        "Event": np.cumsum(new_step).astype(np.uint64),
        "Current [A]": col("I", float),
        "Voltage [V]": col("Ewe", float),
        "Capacity [Ah]": col("charge", float) / 1000.0,
        "Technique": technique,
        "Protocol Step": step,
    }
    meta = {
        "format": "pyprobe",
        "uid": start["uid"],
        "scan_id": start.get("scan_id", 0),
        **({"cell": start["cell"]} if start.get("cell") else {}),
        "sample": (start.get("sample") or {}).get("name"),
        "protocol": start.get("protocol"),
        "plan_name": start.get("plan_name"),
        "stream": name,
        "run_start_utc": iso_utc(run_start(run)),
        "time_origin_utc": iso_utc(origin),
        "time_origin_after_run_start_s": origin - run_start(run),
        "sign_convention": "current positive on charge; Capacity [Ah] rises on charge (PyProBE's and operando's)",
        "techniques": sorted(set(technique)),
        "rows": n,
        "columns": PYPROBE_COLUMNS,
    }
    return table, meta


def export_pyprobe(run, out: Path, stem: str) -> list[Path]:
    """``<stem>-pyprobe.csv``, ``<stem>-pyprobe.parquet`` (when pyarrow is installed) and the
    sidecar ``<stem>-pyprobe.json``."""
    table, meta = pyprobe_table(run)
    base = f"{stem}-pyprobe"
    written = [out / f"{base}.csv"]
    meta["files"] = [written[0].name]
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow comes with bluesky-tiled-plugins
        pq = None
    if pq is not None:
        written.append(out / f"{base}.parquet")
        meta["files"].append(written[-1].name)
    rows = {**table, "Date": _iso_utc(table["Date"])}
    with written[0].open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(list(rows))
        w.writerows(zip(*(v if isinstance(v, list) else v.tolist() for v in rows.values())))
    if pq is not None:
        us = np.round(table["Date"] * 1e6).astype("int64")
        date = pa.array(us, pa.timestamp("us", tz="UTC"))
        arrays = {**table, "Date": date, "Technique": pa.array(table["Technique"], pa.string())}
        pq.write_table(pa.table(arrays).replace_schema_metadata({"operando": json.dumps(meta)}), written[-1])
    sidecar = out / f"{base}.json"
    sidecar.write_text(json.dumps(meta, indent=2))
    return [*written, sidecar]
