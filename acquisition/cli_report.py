"""`operando report RUN`: the run's metadata, cycling results, every analysis that applies and
their figures in one self-contained HTML file (``analysis/run_report.py``); prints its path.

A several-cell run: ``--cell ch03`` reports that cell as a run of its own; without ``--cell``,
one report per cell (file names end in the cell: ``...-ch03-report.html``), one path a line."""

from __future__ import annotations

from pathlib import Path

from operando.storage.catalog import resolve_data_dir


def add_command(sub, data_help: str) -> None:
    rp = sub.add_parser("report", help="one self-contained HTML report of a stored run (metadata, cycling, analyses)")
    rp.add_argument("run", help="uid, partial uid, scan id, or -1 for the latest")
    rp.add_argument("--data", help=data_help)
    rp.add_argument(
        "--out",
        help="output file (.html), or a directory for the default name "
        "(default: DATA/reports/scanNNNNN-<uid8>-report.html; -<cell>-report.html per cell)",
    )
    rp.add_argument("--cell", help="one cell of a several-cell run (e.g. ch03); without it, one report per cell")
    rp.set_defaults(func=_cmd_report)


def output_path(out: str | None, data_dir: Path, start: dict, several: bool = False) -> Path:
    from operando.analysis.run_report import report_path

    default = report_path(data_dir, start)
    if not out:
        return default
    path = Path(out)
    if path.is_dir() or out.endswith(("/", "\\")) or path.suffix.lower() not in (".html", ".htm"):
        return path / default.name
    if start.get("cell") and several:  # one file given for several cells: each gets its name in it
        return path.with_name(f"{path.stem}-{start['cell']}{path.suffix}")
    return path


def _cmd_report(args) -> int:
    from operando.analysis.run_cells import cell_runs
    from operando.analysis.run_report import write_report
    from operando.storage.catalog import open_catalog
    from operando.storage.runs import find_run

    from .cli import cell_view

    data_dir = resolve_data_dir(args.data)
    with open_catalog(data_dir) as cat:
        run = cell_view(find_run(cat.client, args.run), args.cell)  # not found: one line, exit 2 (cli.main)
        views = (list(cell_runs(run).values()) if args.cell is None else []) or [run]
        for view in views:
            path = write_report(view, output_path(args.out, data_dir, view.metadata["start"], len(views) > 1))
            print(path, flush=True)
    return 0
