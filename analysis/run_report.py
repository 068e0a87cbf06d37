"""`operando report RUN`: one self-contained HTML file per run, to send to a colleague.

The run's metadata (sample, profile, protocol, instruments, start and stop, how it ended), its
cycling results as a table, every analysis `operando analyse` makes of it (``analyse_run``: the
same numbers, the same text), and figures (``report_figures.py``) embedded as PNG data URIs, so
the file needs nothing beside it. Every string from the run's metadata is HTML-escaped
(``report_html.py``). A run with nothing to analyse (no echem, or a recovered run with empty
streams) still gets a report that says what is missing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Optional

import numpy as np

from operando import __version__
from operando.storage.runs import run_status

from . import report_figures as figs
from .report import instrument_stream, operando_figure
from .report_html import CSS, Figures, cycling_table, esc, metadata_section, pre, when
from .run_analysis import Analysis, AnalysisError, analyse_run, format_analysis
from .run_magnetometry import format_magnetometry
from .run_raman import format_raman
from .run_skpm import format_skpm


def report_path(data_dir: Path, start: dict) -> Path:
    """Where `operando report` writes by default: next to `operando analyse`'s figure (one cell of
    a several-cell run: its name before ``-report``)."""
    cell = f"-{start['cell']}" if start.get("cell") else ""
    return Path(data_dir) / "reports" / f"scan{start.get('scan_id', 0):05d}-{start['uid'][:8]}{cell}-report.html"


def write_report(run, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(build_report(run), encoding="utf-8")
    return path


class CachedNode:
    """A stored run, stream or column whose keys, metadata and arrays are fetched once. The
    report reads the same columns in several places (``analyse_run``, the figures, the stream
    table) and each read of a Tiled node is a request: this halves the time of a report."""

    def __init__(self, node):
        self._node = node
        self._keys: Optional[list] = None
        self._children: dict = {}
        self._value = None
        self._metadata = None

    @property
    def metadata(self):
        if self._metadata is None:
            self._metadata = self._node.metadata
        return self._metadata

    def _key_list(self) -> list:
        if self._keys is None:
            self._keys = list(self._node)
        return self._keys

    def __iter__(self):
        return iter(self._key_list())

    def __contains__(self, key) -> bool:
        return key in self._key_list()

    def __len__(self) -> int:
        return len(self._key_list())

    def keys(self) -> list:
        return list(self._key_list())

    def __getitem__(self, key):
        if key not in self._children:
            if key not in self._key_list():
                raise KeyError(key)
            self._children[key] = CachedNode(self._node[key])
        return self._children[key]

    def read(self):
        if self._value is None:
            self._value = self._node.read()
        return self._value.copy() if isinstance(self._value, np.ndarray) else self._value  # callers may write

    def __getattr__(self, name: str):
        return getattr(self._node, name)


def build_report(run) -> str:
    """The report of ``run`` as one HTML document."""
    run = CachedNode(run)
    start = run.metadata["start"]
    stop = run.metadata.get("stop") or {}
    missing: list[str] = []
    try:
        a = analyse_run(run)
        missing += a.notes
    except AnalysisError as exc:  # nothing to analyse: the report still shows the run
        a = None
        missing.append(str(exc))
    echem = figs.read_echem(run)
    figure = Figures()
    sample = start.get("sample") or {}
    name = sample.get("name", "") if isinstance(sample, dict) else str(sample)
    title = f"scan {start.get('scan_id', '?')} · {name} · {str(start.get('uid', '?'))[:8]}"
    if start.get("cell"):
        title += f" · cell {start['cell']} of a several-cell run"
    status = run_status(stop)
    body = [
        f"<h1>Run report: {esc(title)}</h1>",
        f"<p>{esc(start.get('plan_name', '?'))}, started {esc(when(start.get('time')))}; ended "
        f"<span class='status-{'success' if status == 'success' else 'bad'}'>{esc(status)}</span>.</p>",
        metadata_section(run, start, stop, echem),
        _electrochemistry(echem, a, figure),
        _magnetometry(run, echem, a, figure),
        _raman(run, echem, a, figure),
        _operando(run, figure),
        _skpm(a, figure),
    ]
    missing += figure.problems
    if missing:
        body += [
            "<section id='missing'><h2>Not analysed or missing</h2><ul class='missing'>",
            *(f"<li>{esc(m)}</li>" for m in missing),
            "</ul></section>",
        ]
    generated = dt.datetime.now().astimezone().isoformat(sep=" ", timespec="seconds")
    body.append(
        f"<footer><p>Written by operando {esc(__version__)} (operando report) on {esc(generated)}.</p></footer>"
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(b for b in body if b)
        + "\n</body></html>\n"
    )


def _electrochemistry(echem: Optional[figs.Echem], a: Optional[Analysis], figure: Figures) -> str:
    out = ["<section id='electrochemistry'><h2>Electrochemistry</h2>"]
    if echem is None:
        out.append("<p class='missing'>No electrochemistry to show: the run has no echem stream, or it is empty.</p>")
    else:
        out.append(
            figure(
                "echem",
                "potential and current against time",
                "Ewe and I against time.",
                lambda: figs.echem_time_figure(echem),
            )
        )
    if a is not None and a.cycling:
        per_g = f"; specific per {a.active_mass_g * 1e3:g} mg of active material" if a.active_mass_g else ""
        out += [
            f"<h3 id='cycling'>Cycling ({len(a.cycling)} cycles{per_g})</h3>",
            cycling_table(a),
            f"<p>CE = {_ce_definition(a)}, EE = E<sub>dis</sub>/E<sub>ch</sub> of the same cycle; "
            "only galvanostatic steps (cc, cccv) count; retention: discharge capacity over that of the "
            "first cycle that discharged.</p>",
        ]
        if echem is not None:
            out.append(
                figure(
                    "cycling",
                    "cycling: capacity and CE per cycle, potential against capacity",
                    "Left: discharge capacity (dots) and coulombic efficiency (squares) per cycle. "
                    "Right: Ewe against the capacity of each branch (charge solid, discharge dashed).",
                    lambda: figs.cycling_figure(echem, a),
                )
            )
            out.append(
                figure(
                    "dqdv",
                    "differential capacity dQ/dV",
                    f"dQ/dV per cycle and branch: {figs.DQDV_SMOOTHING}.",
                    lambda: figs.dqdv_figure(echem, a),
                )
            )
    elif echem is not None:
        out.append("<p class='missing'>No cycle passed charge in a galvanostatic step: no cycling results.</p>")
    if a is not None and (a.cv or a.gitt or a.eis):
        only = dataclasses.replace(a, cycling=[], magnetometry=None, raman=None, skpm=None, notes=[])
        out += [
            "<h3 id='analyses'>CV, GITT and impedance</h3>",
            pre(format_analysis(only).splitlines()[1:]),
            figure(
                "analyse", "CV, GITT and impedance", "As operando analyse draws them.", lambda: figs.analyse_figure(a)
            ),
        ]
    out.append("</section>")
    return "\n".join(out)


def _ce_definition(a: Analysis) -> str:
    """What came out over what went in, in the order the cycles ran (as ``format_cycling`` says)."""
    order = {getattr(c, "discharge_first", False) for c in a.cycling}
    if order == {True}:
        return "Q<sub>ch</sub>/Q<sub>dis</sub> (each cycle discharges first)"
    return "Q<sub>dis</sub>/Q<sub>ch</sub>" if order == {False} else "charge out / charge in, in each cycle's order"


def _magnetometry(run, echem, a: Optional[Analysis], figure: Figures) -> str:
    mag = instrument_stream(run, "magnetometer")
    sweeps = [s for s in ("zfc", "fc", "mh") if s in run]
    if not (mag or sweeps):
        return ""
    out = ["<section id='magnetometry'><h2>Magnetometry</h2>"]
    t0 = float(echem.t_s[0]) if echem is not None else None
    if mag:
        against_q = a is not None and a.magnetometry is not None and bool(a.magnetometry.points)
        caption = f"The {mag} stream's moment against time" + (
            "; against the charge passed, per cycle and branch (charge red, discharge blue)." if against_q else "."
        )
        out.append(figure("moment", "moment against time", caption, lambda: figs.moment_figure(run, mag, t0, a)))
    if sweeps:
        caption = "M–T (zfc, fc) and M–H (mh) streams."
        out.append(
            figure(
                "moment-sweep", "moment against temperature or field", caption, lambda: figs.moment_sweep_figure(run)
            )
        )
    if a is not None and a.magnetometry:
        out.append(pre(format_magnetometry(a.magnetometry)))
    out.append("</section>")
    return "\n".join(out)


def _raman(run, echem, a: Optional[Analysis], figure: Figures) -> str:
    start = run.metadata["start"]
    stream = instrument_stream(run, "raman")
    if stream is None and start.get("plan_name") == "raman_map" and "primary" in run:
        stream = "primary"
    if stream is None:
        return ""
    t0 = float(echem.t_s[0]) if echem is not None else None
    caption = (
        "Spectra stacked with an offset (colour: time), all spectra as an image against time, and each "
        "fitted band's centre shift from its mean (a map: the band-area ratio where each spectrum was taken)."
    )
    fitted = a is not None and a.raman is not None
    return "\n".join(
        [
            "<section id='raman'><h2>Raman</h2>",
            figure("raman", "Raman spectra and band centres", caption, lambda: figs.raman_figure(run, stream, t0, a)),
            pre(format_raman(a.raman)) if fitted else "<p class='missing'>Bands not fitted (see below).</p>",
            "</section>",
        ]
    )


def _operando(run, figure: Figures) -> str:
    if not (instrument_stream(run, "magnetometer") or instrument_stream(run, "raman")):
        return ""
    caption = (
        "The moment, the lattice band's centre (470–540 cm⁻¹) and the 1010/880 cm⁻¹ band-area ratio "
        "against Ewe over cycle 1, each frame at its own echem state (charge red, discharge blue)."
    )
    drawn = figure("operando", "moment and Raman bands against potential", caption, lambda: operando_figure(run))
    return f"<section id='operando'><h2>Operando: against the potential</h2>{drawn}</section>" if drawn else ""


def _skpm(a: Optional[Analysis], figure: Figures) -> str:
    if a is None or a.skpm is None:
        return ""
    caption = "Each map's line profile across the interface (dots) with its fitted step (line); step and width per map."
    return "\n".join(
        [
            "<section id='skpm'><h2>SKPM</h2>",
            figure("skpm", "SKPM profiles, interface step and width", caption, lambda: figs.skpm_figure(a)),
            pre(format_skpm(a.skpm)),
            "</section>",
        ]
    )
