"""Finding runs in a catalog: by uid, partial uid, scan id or -1, and by search (CLI `runs`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


class RunNotFound(LookupError):
    pass


def find_run(client, ref: str | int):
    """A run by uid, partial uid, scan id, or a negative index (-1 is the latest).

    A reference of digits only is a scan id first, else a partial uid (about 2 % of uids start
    with eight digits).
    """
    key: str | int = ref
    if isinstance(ref, str):
        try:
            key = int(ref)
        except ValueError:
            key = ref
    try:
        if isinstance(key, int) and key < 0:
            uids = list(client.keys())
            return client[uids[key]]
        try:
            return client[key]
        except KeyError:
            if isinstance(ref, str) and key != ref:
                return client[ref]  # digits that are no scan id: a partial uid
            raise
    except (KeyError, IndexError, ValueError) as exc:
        detail = f": {exc}" if isinstance(exc, ValueError) else ""
        raise RunNotFound(
            f"no run matches {ref!r}{detail} (give a uid, a partial uid, a scan id, or -1 for the latest; "
            f"`operando runs` lists them)"
        ) from None


@dataclass
class RunRow:
    scan_id: int
    uid: str
    start: float
    plan: str
    sample: str
    duration_s: float | None
    status: str


def run_row(run) -> RunRow:
    start = run.metadata.get("start", {})
    stop = run.metadata.get("stop") or {}
    sample = start.get("sample") or {}
    return RunRow(
        scan_id=start.get("scan_id", 0),
        uid=start.get("uid", ""),
        start=start.get("time", 0.0),
        plan=start.get("plan_name", ""),
        sample=sample.get("name", "") if isinstance(sample, dict) else str(sample),
        duration_s=(stop["time"] - start["time"]) if stop.get("time") else None,
        status=run_status(stop),
    )


def run_status(stop: dict | None) -> str:
    """success, abort, fail; "recovered" for a run closed by crash recovery (its exit_status is
    fail); "incomplete" for one recovered before recovery wrote schema-valid stops; "running" (or
    a run whose process died and no command has recovered yet) when there is no stop."""
    if not stop:
        return "running/incomplete"
    if stop.get("recovered"):
        return "recovered"
    return stop.get("exit_status", "?")


def list_runs(client) -> list[RunRow]:
    return [run_row(run) for run in client.values()]


def parse_date(text: str, *, end: bool = False) -> float:
    """``YYYY-MM-DD[ HH:MM[:SS]]`` (local time) → epoch seconds; a bare date with ``end`` means
    the end of that day, so ``--until 2026-11-25`` includes the 25th."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"date {text!r}: expected YYYY-MM-DD or 'YYYY-MM-DD HH:MM[:SS]'") from None
    if end and len(text.strip()) == 10:
        value += dt.timedelta(days=1)
    return value.timestamp()


def search_runs(
    client,
    *,
    sample: str | None = None,
    material: str | None = None,
    plan: str | None = None,
    since: str | float | None = None,
    until: str | float | None = None,
    status: str | None = None,
    tags: list[str] | tuple[str, ...] = (),
):
    """The catalog narrowed by each given criterion (all must hold), as Tiled queries run by the
    catalog database itself (SQLite or PostgreSQL), so it scales to many runs.

    ``sample`` and ``material`` match a substring of the start document's sample name/material;
    ``plan`` and ``status`` (success, abort, fail; recovered: closed by crash recovery;
    incomplete: recovered by an older version) match exactly; ``since``/``until``
    bound the start time (epoch seconds or dates, see ``parse_date``); every tag must be present.
    """
    from tiled.queries import Comparison, Contains, Eq, Like

    results = client
    if sample:
        results = results.search(Like("start.sample.name", f"%{sample}%"))
    if material:
        results = results.search(Like("start.sample.material", f"%{material}%"))
    if plan:
        results = results.search(Eq("start.plan_name", plan))
    if status == "recovered":
        results = results.search(Comparison("gt", "stop.recovered.at", 0))
    elif status:
        results = results.search(Eq("stop.exit_status", status))
    for tag in tags:
        results = results.search(Contains("start.sample.tags", tag))
    if since is not None:
        t = parse_date(since) if isinstance(since, str) else float(since)
        results = results.search(Comparison("ge", "start.time", t))
    if until is not None:
        t = parse_date(until, end=True) if isinstance(until, str) else float(until)
        results = results.search(Comparison("lt", "start.time", t))
    return results


def data_keys(stream) -> list[str]:
    """The measured keys of a stream, without bluesky's bookkeeping columns."""
    return [k for k in stream if k not in ("seq_num", "time") and not k.startswith("ts_")]


def stream_rows(run) -> dict[str, int]:
    """Rows per stream (length of the first array of each stream)."""
    rows = {}
    for name in run:
        stream = run[name]
        keys = list(stream)
        rows[name] = int(stream[keys[0]].shape[0]) if keys else 0
    return rows
