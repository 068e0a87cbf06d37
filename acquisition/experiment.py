"""One experiment end to end: profile + protocol → instruments → operando plan → catalog."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bluesky.utils import RunEngineInterrupted

from operando.plans.operando import operando_cycling
from operando.plans.protocol import compile_protocol, estimate_duration_s
from operando.plans.suspenders import build_suspender

from .catalog import open_catalog, resolve_data_dir
from .instruments import build_instruments, check_buildable
from .runs import describe_run
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
    profile, protocol, data_dir: Path, *, speed=None, progress=None, report=True, callbacks=(),
    interrupt_reason=lambda: INTERRUPTED,
):
    """Run ``protocol`` on ``profile``'s instruments; store it under ``data_dir``.

    ``callbacks`` receive every document (name, doc) as the RunEngine emits it. Ctrl-C (or a
    signal the caller turns into one) pauses the RunEngine at its next checkpoint, the cell held
    at open circuit; nobody is there to resume it, so the run is aborted and closes with
    ``interrupt_reason()``.
    """
    # Compiling checks currents and cut-offs against the profile's limits: nothing is touched yet.
    steps = compile_protocol(protocol, profile.sample, profile.limits)
    check_buildable(profile)
    data_dir = resolve_data_dir(data_dir)  # created and checked writable, or a clear error
    with open_catalog(data_dir) as catalog:
        RE = make_run_engine(catalog)
        for callback in callbacks:
            RE.subscribe(callback)
        interval = protocol.sampling.interval_s if protocol.sampling else None
        instruments = build_instruments(profile, data_dir, speed, interval)
        if progress is not None:
            progress.total_s = estimate_duration_s(steps, profile.sample.capacity_mAh)
            progress.speed = instruments.clock.speed
        plan = operando_plan(profile, protocol, steps, instruments, progress=progress)
        try:
            try:
                (uid,) = RE(plan)
            except RunEngineInterrupted:
                uids = RE.abort(reason=interrupt_reason())
                if not uids:
                    raise KeyboardInterrupt from None  # interrupted before the run opened
                (uid,) = uids
        finally:
            instruments.close()  # ports and in-process simulators; the cell is at open circuit
            RE.catalog_writer.flush()  # every document is in the catalog before we read it
        run = catalog.client[uid]
        stop = run.metadata.get("stop") or {}
        summary = describe_run(run)
        report_path = None
        if report:
            from .report import write_operando_figure, write_overview

            report_path = write_overview(run, data_dir / "reports")
            summary += f"\nOverview: {report_path}"
            operando_path = write_operando_figure(run, data_dir / "reports")
            if operando_path is not None:
                summary += f"\nOperando figure: {operando_path}"
        return ExperimentResult(
            uid, run.metadata["start"]["scan_id"], stop.get("exit_status", "?"), summary, report_path
        )


def operando_plan(profile, protocol, steps, instruments, *, md=None, progress=None):
    """The operando plan for ``protocol`` on built ``instruments``, with the run's metadata and
    the profile's suspenders (shared by ``run_experiment`` and the queue server's worker)."""
    run_md = {
        "sample": profile.sample.model_dump(mode="json"),
        "profile": profile.name,
        "protocol": protocol.name,
        "protocol_file": str(getattr(protocol, "source", "") or ""),
        "instruments": {
            name: {"kind": i.kind, "backend": i.backend}
            for name, i in profile.instruments.items()
            if i.enabled
        },
        **(md or {}),
    }
    by_name = {d.name: d for d in instruments.devices}
    suspenders = [
        build_suspender(rule, by_name, instruments.potentiostat, instruments.clock)
        for rule in profile.suspenders
    ]
    return operando_cycling(
        instruments.potentiostat,
        steps,
        instruments.detectors,
        instruments.clock,
        capacity_mAh=profile.sample.capacity_mAh,
        md=run_md,
        progress=progress,
        suspenders=suspenders,
    )
