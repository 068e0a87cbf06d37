"""`operando` command line: run, mt-sweep, mh-loop, runs, show, export, serve."""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import signal
import sys
import time

from operando.storage.catalog import DataDirectoryError, resolve_data_dir
from operando.storage.runs import RunNotFound

from .cli_magnetometry import add_commands as add_magnetometry_commands
from .cli_magnetometry import parse_values
from .cli_raman import add_command as add_raman_commands
from .cli_report import add_command as add_report_command
from .cli_skpm import add_command as add_skpm_command
from .config import ConfigError


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False) or os.environ.get("OPERANDO_DEBUG"))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not debug:  # the cause is printed below, in one line; the RunEngine's traceback only with --debug
        logging.getLogger("bluesky").addFilter(_no_abort_traceback)
    try:
        _recover_abandoned_runs(args)
        return args.func(args)
    except (ConfigError, DataDirectoryError, RunNotFound) as exc:  # bad input: one line, exit 2
        print(f"operando: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("operando: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a clear one-line cause; the traceback with --debug or OPERANDO_DEBUG=1
        if debug:
            raise
        print(f"operando: error: {_cause(exc)}", file=sys.stderr)
        return 1


def _cause(exc: BaseException) -> str:
    """The failure a user can act on: through bluesky's FailedStatus to what failed (a device's
    fault names the instrument, the step and the state of the cell)."""
    from bluesky.utils import FailedStatus

    while isinstance(exc, FailedStatus) and exc.__cause__ is not None:
        exc = exc.__cause__
    text = str(exc)
    return text if type(exc).__module__.startswith("operando.") else f"{type(exc).__name__}: {text}"


def _no_abort_traceback(record: logging.LogRecord) -> bool:
    # bluesky logs "Run aborted" with the whole chain of tracebacks before the CLI prints the cause
    return not (record.exc_info and record.getMessage().startswith("Run aborted"))


def _recover_abandoned_runs(args) -> None:
    """Before any command on a data directory: close runs whose process died (see recovery.py)."""
    if not hasattr(args, "data"):
        return
    from operando.storage.recovery import recover_data_dir

    for run in recover_data_dir(resolve_data_dir(args.data)):
        if run is not None:
            print(f"operando: {run.describe()}", file=sys.stderr)


CELL_HELP = "one cell of a several-cell run (e.g. ch03): that cell as a run of its own"


def cell_view(run, cell: str | None):
    """``run`` as a one-cell run of ``cell`` (``analysis.run_cells.CellRun``); ``run`` when
    ``cell`` is None. A wrong cell is a ConfigError naming the run's cells (one line, exit 2)."""
    from operando.analysis.run_cells import CellNotFound, cell_run

    try:
        return cell_run(run, cell)
    except CellNotFound as exc:
        raise ConfigError(f"--cell: {exc}") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="operando", description=__doc__)
    p.add_argument("--debug", action="store_true", help="on a failure, the whole traceback (also OPERANDO_DEBUG=1)")
    sub = p.add_subparsers(dest="command", required=True)
    data_help = "data directory (default: $OPERANDO_DATA or ./data)"

    run = sub.add_parser("run", help="run a protocol on a profile's instruments")
    run.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="on a failure, the traceback")
    run.add_argument("protocol", help="protocol name (config/protocols) or YAML path")
    run.add_argument("--profile", default="sim", help="profile name or YAML path (default: sim)")
    run.add_argument("--speed", type=float, help="simulation clock speed-up (sim backends only)")
    run.add_argument("--data", help=data_help)
    run.add_argument("--no-report", action="store_true", help="do not write the overview PNG")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=_cmd_run)
    add_magnetometry_commands(sub, data_help)
    add_raman_commands(sub, data_help)
    add_skpm_command(sub, data_help)

    runs = sub.add_parser("runs", help="list stored runs (optionally only those matching)")
    runs.add_argument("--data", help=data_help)
    runs.add_argument("--sample", help="sample name contains this")
    runs.add_argument("--material", help="sample material contains this")
    runs.add_argument("--plan", help="plan name, e.g. operando_cycling, import_eclab")
    runs.add_argument("--since", help="started on/after YYYY-MM-DD[ HH:MM[:SS]]")
    runs.add_argument("--until", help="started before the end of YYYY-MM-DD (or before a time)")
    runs.add_argument(
        "--status",
        choices=["success", "abort", "fail", "recovered", "incomplete"],
        help="how runs ended; recovered: closed by crash recovery (exit_status fail)",
    )
    runs.add_argument("--tag", action="append", default=[], help="sample tag (repeat: all must match)")
    runs.set_defaults(func=_cmd_runs)

    replay = sub.add_parser("replay", help="re-emit a stored run's documents with their timing")
    replay.add_argument("run", help="uid, partial uid, scan id, or -1 for the latest")
    replay.add_argument(
        "--speed", type=float, default=1.0, help="times faster than the original (default 1; inf = no waiting)"
    )
    replay.add_argument("--data", help=data_help)
    replay.set_defaults(func=_cmd_replay)

    imp = sub.add_parser("import", help="import an EC-Lab .mpr/.mpt or MultiVu .dat file as a run")
    imp.add_argument("file", help="BioLogic EC-Lab .mpr/.mpt or Quantum Design MultiVu .dat")
    imp.add_argument("--sample", help="sample name (default: the file name)")
    imp.add_argument("--data", help=data_help)
    imp.set_defaults(func=_cmd_import)

    show = sub.add_parser("show", help="streams, rows, cycles and capacities of one run")
    show.add_argument("run", help="uid, partial uid, scan id, or -1 for the latest")
    show.add_argument("--data", help=data_help)
    show.set_defaults(func=_cmd_show)

    export = sub.add_parser("export", help="export a run's streams to CSV or HDF5, or its echem to PyProBE")
    export.add_argument("run", help="uid, partial uid, scan id, or -1 for the latest")
    export.add_argument("--format", choices=["csv", "hdf5", "pyprobe"], default="csv")
    export.add_argument("--out", required=True, help="output directory")
    export.add_argument("--data", help=data_help)
    export.add_argument("--cell", help=CELL_HELP)
    export.set_defaults(func=_cmd_export)

    analyse = sub.add_parser(
        "analyse",
        help="CV b-values, GITT diffusion, EIS fits, dM/dQ, Curie–Weiss, Raman bands and SKPM steps of a stored run",
    )
    analyse.add_argument("run", help="uid, partial uid, scan id, or -1 for the latest")
    analyse.add_argument("--data", help=data_help)
    analyse.add_argument("--cell", help=CELL_HELP)
    analyse.add_argument(
        "--diffusion-length-um",
        type=float,
        help="GITT diffusion length L (particle radius), um; without it D/L^2 is shown",
    )
    analyse.add_argument(
        "--curie-weiss-K",
        nargs=2,
        type=float,
        metavar=("T_MIN", "T_MAX"),
        help="fit M–T branches over this temperature range only, K (default: every point)",
    )
    analyse.add_argument(
        "--raman-bands",
        help="Raman band centres to fit, cm-1 (e.g. 505,880,1010); default: the mean spectrum's peaks",
    )
    analyse.add_argument(
        "--raman-shape", choices=["lorentzian", "gaussian", "voigt"], default="lorentzian", help="band line shape"
    )
    analyse.add_argument(
        "--skpm-tip-nm",
        type=float,
        default=0.0,
        help="SKPM tip footprint (Gaussian sigma, nm) deconvolved from the space-charge width (default 0: apparent)",
    )
    analyse.add_argument("--json", action="store_true", help="print the results as JSON")
    analyse.set_defaults(func=_cmd_analyse)
    add_report_command(sub, data_help)

    serve = sub.add_parser("serve", help="serve the data directory with a stock Tiled server")
    serve.add_argument("--data", help=data_help)
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default: loopback)")
    serve.set_defaults(func=_cmd_serve)

    sim = sub.add_parser("sim", help="wire-level instrument simulators (real protocols)")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True)
    sim_serve = sim_sub.add_parser(
        "serve",
        help="serve one simulated instrument until Ctrl-C",
        description="Serve one wire-level simulated instrument; the options after its name are "
        "its own (`operando sim serve NAME --help`): --material, --speed, --soc, ... "
        "TCP simulators listen on loopback unless --host says otherwise.",
    )
    # names come from the registry, looked up only when this command runs (imports are costly)
    sim_serve.add_argument(
        "instrument", help="potentiostat-methodscript, keithley2450, ... (each registered wire-level simulator)"
    )
    sim_serve.add_argument("options", nargs=argparse.REMAINDER, help="the simulator's own options")
    sim_serve.set_defaults(func=_cmd_sim_serve)

    gui = sub.add_parser("gui", help="the lab GUI: set up, run, watch, browse and replay runs")
    gui.add_argument("--data", help=data_help)
    gui.add_argument("--replay", metavar="RUN", help="open this stored run (uid, partial uid, scan id, -1)")
    gui.add_argument("--screenshot", metavar="FILE.png", help="render offscreen, save, exit")
    gui.add_argument("--at", type=float, help="with --replay: place the time cursor at this fraction (0-1)")
    gui.add_argument(
        "--in-process",
        action="store_true",
        help="run acquisition on a thread of the GUI's process (default: a child process)",
    )
    gui.set_defaults(func=_cmd_gui)
    return p


def _cmd_run(args) -> int:
    from .config import load_profile, load_protocol
    from .experiment import run_experiment

    # Everything that can be wrong with the input is found before any instrument is built.
    profile = load_profile(args.profile)
    protocol = load_protocol(args.protocol)
    data_dir = resolve_data_dir(args.data)
    if args.speed is not None and not args.speed > 0:
        raise ConfigError(f"--speed must be > 0 (got {args.speed})")
    bar = None if args.quiet else ProgressBar()
    with _sigterm_as_interrupt() as interrupt_reason:
        result = run_experiment(
            profile,
            protocol,
            data_dir,
            speed=args.speed,
            progress=bar,
            report=not args.no_report,
            interrupt_reason=interrupt_reason,
        )
    if bar:
        bar.finish()
    print(result.summary)
    return 0 if result.exit_status == "success" else 1


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM and SIGHUP (a service stop, a closed terminal) end a run like Ctrl-C does: the
    RunEngine pauses at its next checkpoint with the cell at open circuit, the run is aborted
    and closes with the signal named as its reason. Python's default would exit at once."""
    from .experiment import INTERRUPTED

    received: list[str] = []

    def forward(signum, _frame):
        received.append(signal.Signals(signum).name)
        os.kill(os.getpid(), signal.SIGINT)  # bluesky's SIGINT handler requests the pause

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield lambda: f"terminated by {received[0]}" if received else INTERRUPTED
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _cmd_runs(args) -> int:
    from operando.analysis.summary import format_runs
    from operando.storage.catalog import open_catalog
    from operando.storage.runs import list_runs, search_runs

    with open_catalog(resolve_data_dir(args.data)) as cat:
        try:
            found = search_runs(
                cat.client,
                sample=args.sample,
                material=args.material,
                plan=args.plan,
                since=args.since,
                until=args.until,
                status=args.status,
                tags=args.tag,
            )
        except ValueError as exc:
            raise ConfigError(f"operando runs: {exc}") from None
        rows = list_runs(found)
        filtered = found is not cat.client
        print(format_runs(rows) if rows else f"no {'matching ' if filtered else ''}runs in {cat.data_dir}")
    return 0


def _cmd_analyse(args) -> int:
    import json

    from operando.analysis.run_analysis import (
        AnalysisError,
        analyse_run,
        analysis_json,
        format_analysis,
        write_analysis_figure,
    )
    from operando.analysis.run_cells import cell_names
    from operando.storage.catalog import open_catalog
    from operando.storage.runs import find_run

    length = args.diffusion_length_um
    if length is not None and not length > 0:
        raise ConfigError(f"--diffusion-length-um must be > 0 (got {length})")
    bands = parse_values(args.raman_bands, "--raman-bands", "linear") if args.raman_bands else None
    t_range = tuple(args.curie_weiss_K or (0.0, math.inf))
    if not 0 <= t_range[0] < t_range[1]:
        raise ConfigError(f"--curie-weiss-K needs 0 <= T_MIN < T_MAX (got {t_range[0]:g} {t_range[1]:g})")
    if not 0 <= args.skpm_tip_nm < 1000:
        raise ConfigError(f"--skpm-tip-nm must be 0..1000 nm (got {args.skpm_tip_nm})")
    data_dir = resolve_data_dir(args.data)
    with open_catalog(data_dir) as cat:
        try:
            run = cell_view(find_run(cat.client, args.run), args.cell)
            if args.cell is None and cell_names(run.metadata["start"]):
                return _analyse_cells(run, data_dir, args.json)
            result = analyse_run(
                run,
                length * 1e-6 if length else None,
                curie_weiss_K=t_range,
                raman_bands_cm1=bands,
                raman_shape=args.raman_shape,
                skpm_tip_sigma_m=args.skpm_tip_nm * 1e-9,
            )
        except (RunNotFound, AnalysisError) as exc:
            print(f"operando: error: {exc}", file=sys.stderr)
            return 2
        figure = write_analysis_figure(result, _analysis_figure_path(data_dir, run.metadata["start"]))
    print(json.dumps(analysis_json(result), indent=1) if args.json else format_analysis(result))
    print(f"figure: {figure}", file=sys.stderr if args.json else sys.stdout)
    return 0


def _analysis_figure_path(data_dir, start: dict, what: str = "analysis"):
    cell = f"-{start['cell']}" if start.get("cell") else ""
    return data_dir / "reports" / f"scan{start.get('scan_id', 0):05d}-{start['uid'][:8]}{cell}-{what}.png"


def _analyse_cells(run, data_dir, as_json: bool) -> int:
    """A several-cell run without --cell: every cell's cycles in one table, and one figure."""
    import json

    from operando.analysis.cells_cycling import (
        analyse_cells,
        cells_cycling_json,
        format_cells_cycling,
        write_cells_figure,
    )

    result = analyse_cells(run)
    figure = write_cells_figure(result, _analysis_figure_path(data_dir, run.metadata["start"], "cells"))
    print(json.dumps(cells_cycling_json(result), indent=1) if as_json else format_cells_cycling(result))
    print(f"figure: {figure}", file=sys.stderr if as_json else sys.stdout)
    return 0


def _cmd_replay(args) -> int:
    from operando.storage.catalog import open_catalog
    from operando.storage.replay import ReplayProgress, replay_run
    from operando.storage.runs import find_run

    if not args.speed > 0:
        raise ConfigError(f"--speed must be > 0 (got {args.speed}); inf replays without waiting")
    data_dir = resolve_data_dir(args.data)
    with open_catalog(data_dir) as cat:
        run = find_run(cat.client, args.run)
        progress = ReplayProgress(print)
        count = replay_run(run, [progress], data_dir=data_dir, speed=args.speed)
        print(f"replayed {count} documents of run {run.metadata['start']['uid']}: {progress.summary()}")
    return 0


def _cmd_import(args) -> int:
    from pathlib import Path

    from operando.storage.catalog import open_catalog
    from operando.storage.importers import ImportFormatError, import_file

    path = Path(args.file)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    data_dir = resolve_data_dir(args.data)
    with open_catalog(data_dir) as cat:
        try:
            run = import_file(path, cat.client, data_dir, {"name": args.sample} if args.sample else None)
        except ImportFormatError as exc:
            raise ConfigError(str(exc)) from None
    print(f"imported {path} as run {run.uid} (scan {run.scan_id}): {run.rows} rows in stream {run.stream!r}")
    return 0


def _cmd_show(args) -> int:
    from operando.analysis.summary import describe_run
    from operando.storage.catalog import open_catalog
    from operando.storage.runs import find_run

    with open_catalog(resolve_data_dir(args.data)) as cat:
        print(describe_run(find_run(cat.client, args.run)))
    return 0


def _cmd_export(args) -> int:
    from operando.analysis.run_cells import cell_runs
    from operando.storage.catalog import open_catalog
    from operando.storage.export import export_run
    from operando.storage.runs import find_run

    with open_catalog(resolve_data_dir(args.data)) as cat:
        run = cell_view(find_run(cat.client, args.run), args.cell)
        # a several-cell run without --cell: each cell as a run of its own, files named after it
        views = list(cell_runs(run).values()) if args.cell is None else [run]
        try:
            paths = [p for view in views or [run] for p in export_run(view, args.out, args.format)]
        except ValueError as exc:  # e.g. --format pyprobe of a run without an echem stream
            print(f"operando: error: {exc}", file=sys.stderr)
            return 2
        for path in paths:
            print(path)
    return 0


def _cmd_serve(args) -> int:
    from operando.storage.serve import serve

    serve(resolve_data_dir(args.data), host=args.host, port=args.port)
    return 0


def _wire_simulators() -> dict:
    """`sim serve` names -> wire-level simulators, as each registered itself."""
    from .backends import all_wire_simulators

    return {sim.command: sim for sim in all_wire_simulators()}


def _cmd_sim_serve(args) -> int:
    # Prints where to connect: a pty path (MethodSCRIPT) or a VISA resource string (Keithley).
    simulators = _wire_simulators()
    if args.instrument not in simulators:
        raise ConfigError(
            f"operando sim serve: no wire-level simulator named {args.instrument!r}; "
            f"choose one of {', '.join(sorted(simulators))}"
        )
    simulators[args.instrument].main(args.options)
    return 0


def _cmd_gui(args) -> int:
    from pathlib import Path

    from operando.gui.app import run as run_gui

    if args.at is not None and not 0 <= args.at <= 1:
        raise ConfigError(f"--at must be between 0 and 1 (got {args.at})")
    shot = Path(args.screenshot) if args.screenshot else None
    return run_gui(resolve_data_dir(args.data), replay=args.replay, shot=shot, at=args.at, in_process=args.in_process)


class ProgressBar:
    """One line on stderr: bar, cycle/step, samples, ETA (wall time)."""

    def __init__(self, width: int = 30):
        self.width = width
        # On a terminal the line redraws in place; in a log, a new line every few seconds.
        self.tty = sys.stderr.isatty()
        self.min_interval = 0.2 if self.tty else 5.0
        self.total_s: float | None = None  # estimated experiment duration
        self.speed = 1.0
        self._last = 0.0
        self._drawn = 0  # lines of the per-cell block last drawn

    def __call__(self, p) -> None:
        now = time.monotonic()
        if now - self._last < self.min_interval:
            return
        self._last = now
        frac = min(p.elapsed_s / self.total_s, 0.999) if self.total_s else 0.0
        filled = int(frac * self.width)
        eta = max(self.total_s - p.elapsed_s, 0.0) / self.speed if self.total_s else float("nan")
        bar = f"[{'#' * filled}{'.' * (self.width - filled)}] {frac * 100:5.1f}%  "
        if hasattr(p, "channels"):  # several cells: the bar, then a line per cell
            self._channels(bar + f"ETA {eta:5.0f} s", p.channels)
            return
        frames = " ".join(f"{k}={v}" for k, v in p.frames.items())
        sys.stderr.write(
            ("\r" if self.tty else "") + bar + f"cycle {p.cycle} step {p.step}/{p.total_steps}  {p.samples} samples  "
            f"{frames}  ETA {eta:5.0f} s " + ("" if self.tty else "\n")
        )
        sys.stderr.flush()

    def _channels(self, head: str, channels: dict) -> None:
        lines = [head]
        for name, c in channels.items():
            frames = " ".join(f"{k}={v}" for k, v in c.frames.items())
            lines.append(
                f"  {name}: {c.status:<9} cycle {c.cycle} step {c.step}/{c.total_steps}  {c.samples} samples  {frames}"
            )
        up = f"\x1b[{self._drawn}F" if self.tty and self._drawn else ""  # redraw the block in place
        sys.stderr.write(up + "".join(f"{line}\x1b[K\n" if self.tty else f"{line}\n" for line in lines))
        sys.stderr.flush()
        self._drawn = len(lines)

    def finish(self) -> None:
        if not self._drawn:
            sys.stderr.write("\n")
        sys.stderr.flush()


if __name__ == "__main__":
    sys.exit(main())
