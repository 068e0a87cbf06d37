"""Export a stored run: every stream to CSV files or one HDF5 file, with units; or the echem
stream in PyProBE's format (``export_battery.py``).

One cell of a several-cell run is exported as a run of its own (``analysis.run_cells.CellRun``,
passed in by the CLI): its start document names the cell, which goes into every file name
(``scanNNNNN-<uid8>-ch03-echem.csv``) and into the sidecar and HDF5 attributes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .export_battery import csv_extra_columns, export_pyprobe, stream_choices, write_csv_sidecar

FORMATS = ("csv", "hdf5", "pyprobe")


def _stream_arrays(stream) -> dict[str, np.ndarray]:
    return {key: np.asarray(stream[key].read()) for key in stream}


def _units(run, stream_name: str) -> dict[str, str]:
    """Units of each data key, from the stream's descriptor (kept as the stream's metadata)."""
    data_keys = run[stream_name].metadata.get("data_keys") or {}
    return {key: (dk.get("units") or "") for key, dk in data_keys.items()}


def export_run(run, out: str | Path, fmt: str) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    uid = run.metadata["start"]["uid"]
    scan = run.metadata["start"].get("scan_id", 0)
    cell = run.metadata["start"].get("cell")
    stem = f"scan{scan:05d}-{uid[:8]}" + (f"-{cell}" if cell else "")
    if fmt == "csv":
        return _export_csv(run, out, stem)
    if fmt == "hdf5":
        return [_export_hdf5(run, out / f"{stem}.h5")]
    if fmt == "pyprobe":
        return export_pyprobe(run, out, stem)
    raise ValueError(f"unknown export format {fmt!r} (choices: {', '.join(FORMATS)})")


def _export_csv(run, out: Path, stem: str) -> list[Path]:
    """One CSV per stream, the stored columns as they were (first line: ``key [units]``), then
    ``<key> since start [s]`` for each epoch time and ``<key>_name`` for each coded column (the
    technique's name); ``<stem>.json`` holds the uid and start time (ISO 8601 UTC)."""
    written, streams = [], {}
    for name in run:
        arrays = _stream_arrays(run[name])
        units = _units(run, name)
        scalars = {k: v for k, v in arrays.items() if v.ndim == 1}
        header = [f"{k} [{units[k]}]" if units.get(k) else k for k in scalars]
        columns = dict(zip(header, scalars.values()))
        columns.update(csv_extra_columns(run, name, scalars, units))
        path = out / f"{stem}-{name}.csv"
        with path.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(columns)
            w.writerows(zip(*columns.values()))
        written.append(path)
        streams[name] = {"file": path.name, "units": units, "choices": stream_choices(run, name)}
        for key, arr in arrays.items():
            if arr.ndim == 2:  # one row per frame (e.g. a spectrum)
                apath = out / f"{stem}-{name}-{key}.csv"
                np.savetxt(apath, arr, delimiter=",", header=f"{key} [{units.get(key, '')}]")
                written.append(apath)
                streams[name].setdefault("arrays", {})[key] = apath.name
    written.append(write_csv_sidecar(run, out / f"{stem}.json", streams))
    return written


def _export_hdf5(run, path: Path) -> Path:
    import h5py

    with h5py.File(path, "w") as f:
        f.attrs["uid"] = run.metadata["start"]["uid"]
        f.attrs["scan_id"] = run.metadata["start"].get("scan_id", 0)
        f.attrs["start"] = json.dumps(dict(run.metadata["start"]), default=str)
        f.attrs["stop"] = json.dumps(dict(run.metadata.get("stop") or {}), default=str)
        if run.metadata["start"].get("cell"):
            f.attrs["cell"] = run.metadata["start"]["cell"]
        for name in run:
            grp = f.create_group(name)
            units = _units(run, name)
            for key, arr in _stream_arrays(run[name]).items():
                if arr.dtype.kind in "UO":  # text (e.g. frame-trigger_reason): variable-length UTF-8
                    arr = np.asarray(arr.astype(str), dtype=h5py.string_dtype())
                ds = grp.create_dataset(key, data=arr)
                ds.attrs["units"] = units.get(key, "")
    return path
