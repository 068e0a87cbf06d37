"""`operando report RUN`: the run's metadata, cycling results, every analysis that applies and
their figures in one self-contained HTML file (``analysis/run_report.py``); prints its path."""

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
        "(default: DATA/reports/scanNNNNN-<uid8>-report.html)",
    )
    rp.set_defaults(func=_cmd_report)


def output_path(out: str | None, data_dir: Path, start: dict) -> Path:
    from operando.analysis.run_report import report_path

    default = report_path(data_dir, start)
    if not out:
        return default
    path = Path(out)
    if path.is_dir() or out.endswith(("/", "\\")) or path.suffix.lower() not in (".html", ".htm"):
        return path / default.name
    return path


def _cmd_report(args) -> int:
    from operando.analysis.run_report import write_report
    from operando.storage.catalog import open_catalog
    from operando.storage.runs import find_run

    data_dir = resolve_data_dir(args.data)
    with open_catalog(data_dir) as cat:
        run = find_run(cat.client, args.run)  # not found: one line, exit 2 (cli.main)
        path = write_report(run, output_path(args.out, data_dir, run.metadata["start"]))
    print(path)
    return 0
