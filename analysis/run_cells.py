"""The cells of a several-cell run (plan ``multichannel_cycling``): each one seen as a run of its
own, and summarised per cell for `operando show`.

``cell_start(start, cell)`` is the start document as a one-cell run of that cell would have it
(its echem stream, sample, capacity): every analysis that reads a run's start document then works
on one cell unchanged. ``cell_outcomes(run)`` is how each cell ended (stream ``channel_outcomes``).

``CellRun(run, cell)`` is the whole run seen as a one-cell run of ``cell``: its start document is
``cell_start``'s, its stop document says how that cell ended, and its streams carry the one-cell
names (``echem``, ``impedance``, ``raman``, ``magnetometer``, ``timebase``, ...) mapped to the
cell's own (``echem_ch03``, ``raman_ch03``, ...); the other cells' streams are not in it. Every
one-cell reader (`operando analyse`, `export`, `report`, the GUI's run browser) takes it as a run.
"""

from __future__ import annotations

import re

import numpy as np

OUTCOMES_STREAM = "channel_outcomes"


class CellNotFound(KeyError):
    """No such cell in the run; the message names the cells there are."""

    def __str__(self) -> str:
        return str(self.args[0])


def cell_names(start: dict) -> list[str]:
    return list(start.get("cells") or {})


def cell_start(start: dict, cell: str) -> dict:
    """``start`` seen as a one-cell run of ``cell``; a KeyError naming the cells if there is none."""
    cells = start.get("cells") or {}
    if cell not in cells:
        have = ", ".join(cells) or "none: this run has one cell, drop --cell"
        raise CellNotFound(f"no cell {cell!r} in run {str(start.get('uid', '?'))[:8]} (cells: {have})")
    info = cells[cell]
    return {
        **start,
        "echem_stream": info["echem_stream"],
        "sample": info["sample"],
        "capacity_mAh": info["capacity_mAh"],
        "protocol": info["protocol"],
        "cell": cell,
    }


def cell_stream(stream: str, cell: str) -> str:
    """A detector's stream of one cell (``raman`` -> ``raman_ch03``)."""
    return f"{stream}_{cell}"


def _stop_status(status: str) -> str:
    return {"completed": "success", "stopped": "abort"}.get(status, "fail")


class CellRun:
    """A several-cell run as a one-cell run of ``cell`` (see the module's docstring). Streams
    are the stored nodes themselves; only names and the start and stop documents change."""

    def __init__(self, run, cell: str, *, _shared: tuple | None = None):
        metadata, stored_names, outcomes = _shared or (dict(run.metadata), list(run), None)
        start = metadata["start"]
        one = cell_start(start, cell)  # CellNotFound naming the cells
        self._run = run
        self.whole_run = run  # the stored run of every cell
        self.cell = cell
        info = start["cells"][cell]
        cells = cell_names(start)
        names: dict[str, str] = {}  # one-cell name -> stored name
        for stored in stored_names:
            owner = max((c for c in cells if stored.endswith(f"_{c}")), key=len, default=None)
            if owner == cell:
                names[stored[: -len(cell) - 1]] = stored
            elif owner is None and stored != OUTCOMES_STREAM:  # run-wide: interruptions, frame_failures
                names[stored] = stored
        echem = info.get("echem_stream") or cell_stream("echem", cell)
        names = {k: v for k, v in names.items() if v != echem}
        if echem in stored_names:
            names = {"echem": echem, **names}
        self.streams = names
        suffix = f"_{cell}"
        one.pop("cells", None)
        one.pop("echem_streams", None)
        one.update(
            echem_stream="echem",
            run_sample=start.get("sample"),
            channel=f"{info.get('instrument', '?')}:{info.get('channel', '?')}",
            limits=info.get("limits"),
            protocol_file=info.get("protocol_file", start.get("protocol_file")),
            total_steps=info.get("total_steps", start.get("total_steps")),
            schedules={k[: -len(suffix)]: v for k, v in (start.get("schedules") or {}).items() if k.endswith(suffix)},
        )
        stop = self._stop(metadata.get("stop"), names, run if outcomes is None else None, outcomes)
        self._metadata = {**metadata, "start": one, "stop": stop}

    def _stop(self, stop, names: dict[str, str], run, outcomes) -> dict | None:
        if not stop:
            return stop
        stop = dict(stop)
        out = (cell_outcomes(run) if outcomes is None else outcomes).get(self.cell)
        if out is not None:
            stop["exit_status"] = _stop_status(str(out["status"]))
            stop["reason"] = "" if out["status"] == "completed" else f"{out['status']}: {out['reason']}"
        else:
            stop["reason"] = f"no outcome of cell {self.cell} (run: {stop.get('reason') or stop.get('exit_status')})"
        stored = {v: k for k, v in names.items()}
        events = stop.get("num_events") or {}
        stop["num_events"] = {stored[k]: n for k, n in events.items() if k in stored}
        return stop

    @property
    def metadata(self) -> dict:
        return self._metadata

    def stored_name(self, name: str) -> str:
        """The stored stream behind a one-cell name (``raman`` -> ``raman_ch03``)."""
        return self.streams[name]

    def __iter__(self):
        return iter(self.streams)

    def __contains__(self, name) -> bool:
        return name in self.streams

    def __len__(self) -> int:
        return len(self.streams)

    def keys(self) -> list[str]:
        return list(self.streams)

    def __getitem__(self, name: str):
        if name not in self.streams:
            raise KeyError(name)
        return self._run[self.streams[name]]

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._run, name)


def cell_run(run, cell: str | None):
    """``run`` as a one-cell run of ``cell``; ``run`` itself when ``cell`` is None. A
    ``CellNotFound`` naming the cells when the run has no such cell (or has one cell only)."""
    return run if cell is None else CellRun(run, cell)


def cell_runs(run) -> dict:
    """{cell: CellRun} of a several-cell run; {} of a one-cell run."""
    metadata = dict(run.metadata)
    cells = cell_names(metadata["start"])
    if not cells:
        return {}
    shared = (metadata, list(run), cell_outcomes(run) if metadata.get("stop") else {})
    return {cell: CellRun(run, cell, _shared=shared) for cell in cells}


def cell_outcomes(run) -> dict[str, dict]:
    """{cell: {status, reason, samples, step, cycle}} from the run's ``channel_outcomes``."""
    if OUTCOMES_STREAM not in run:
        return {}
    s = run[OUTCOMES_STREAM]
    cols = {
        k: list(np.asarray(s[f"outcome-{k}"].read())) for k in ("cell", "status", "reason", "samples", "step", "cycle")
    }
    return {
        str(cell): {k: cols[k][i] for k in ("status", "reason", "samples", "step", "cycle")}
        for i, cell in enumerate(cols["cell"])
    }


def describe_cells(run) -> list[str]:
    """One line per cell: where it is, its sample, how it ended and why."""
    start = run.metadata["start"]
    outcomes = cell_outcomes(run)
    lines = [f"  {'cell':6} {'channel':>14}  {'sample':22} {'sim':12} {'status':9} {'samples':>9}  cycle  reason"]
    for name, info in (start.get("cells") or {}).items():
        out = outcomes.get(name, {"status": "running?", "reason": "no outcome (the run did not end normally)"})
        where = f"{info['instrument']}:{info['channel']}"
        sample = info["sample"]
        reason = "" if out["status"] == "completed" else str(out["reason"])
        lines.append(
            f"  {name:6} {where:>14}  {sample['name'][:22]:22} {str(sample.get('sim_preset') or '-')[:12]:12} "
            f"{out['status']:9} {out.get('samples', 0):>9}  {out.get('cycle', 0):>5}  {reason}"
        )
    return lines


def grouped_streams(streams: dict[str, int], cells: list[str]) -> dict[str, list[int]]:
    """Streams of the same kind across cells under one name (``echem_<cell>``): their row counts."""
    if not cells:
        return {name: [n] for name, n in streams.items()}
    pattern = re.compile(rf"^(.*)_({'|'.join(map(re.escape, cells))})$")
    out: dict[str, list[int]] = {}
    for name, n in streams.items():
        m = pattern.match(name)
        out.setdefault(f"{m.group(1)}_<cell>" if m else name, []).append(n)
    return out
