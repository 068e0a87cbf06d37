"""One experiment end to end: profile + protocol → instruments → operando plan → catalog."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bluesky.utils import RunEngineInterrupted

from operando.analysis.summary import describe_run
from operando.storage.catalog import open_catalog, resolve_data_dir

from .prepare import check_run, prepare_run
from .session import make_run_engine


@dataclass
class ExperimentResult:
    uid: str
    scan_id: int
    exit_status: str
    summary: str
    report: Path | None


INTERRUPTED = "interrupted by the user (Ctrl-C)"


def run_experiment(
    profile,
    protocol,
    data_dir: Path,
    *,
    speed=None,
    progress=None,
    report=True,
    callbacks=(),
    interrupt_reason=lambda: INTERRUPTED,
):
    """Run ``protocol`` on ``profile``'s instruments; store it under ``data_dir``.

    ``callbacks`` receive every document (name, doc) as the RunEngine emits it. Ctrl-C (or a
    signal the caller turns into one) pauses the RunEngine at its next checkpoint, the cell held
    at open circuit; nobody is there to resume it, so the run is aborted and closes with
    ``interrupt_reason()``.
    """
    # Limits, capabilities, clock and material are checked before anything is built or opened.
    checked = check_run(profile, protocol, speed=speed)
    data_dir = resolve_data_dir(data_dir)  # created and checked writable, or a clear error
    with open_catalog(data_dir) as catalog:
        RE = make_run_engine(catalog)
        for callback in callbacks:
            RE.subscribe(callback)
        prepared = prepare_run(profile, protocol, data_dir, speed=speed, progress=progress, checked=checked)
        if progress is not None:
            progress.total_s = checked.total_s
            progress.speed = prepared.clock.speed
        try:
            try:
                (uid,) = RE(prepared.plan)
            except RunEngineInterrupted:
                uids = RE.abort(reason=interrupt_reason())
                if not uids:
                    raise KeyboardInterrupt from None  # interrupted before the run opened
                (uid,) = uids
        finally:
            prepared.close()  # ports and in-process simulators; the cell is at open circuit
            RE.catalog_writer.flush()  # every document is in the catalog before we read it
        run = catalog.client[uid]
        stop = run.metadata.get("stop") or {}
        summary = describe_run(run)
        report_path = None
        if report:
            from operando.analysis.report import write_operando_figure, write_overview

            report_path = write_overview(run, data_dir / "reports")
            summary += f"\nOverview: {report_path}"
            operando_path = write_operando_figure(run, data_dir / "reports")
            if operando_path is not None:
                summary += f"\nOperando figure: {operando_path}"
        return ExperimentResult(
            uid, run.metadata["start"]["scan_id"], stop.get("exit_status", "?"), summary, report_path
        )
