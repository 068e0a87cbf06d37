"""HTML pieces of `operando report` (``run_report.py``): escaping, tables, the run's metadata,
the cycling table, and figures as ``<figure>`` elements with embedded PNGs. Every string that
comes from a run (metadata is user input) goes through ``esc``."""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable

from operando.storage.runs import data_keys, run_status, stream_rows

from . import report_figures as figs
from .run_analysis import Analysis
from .run_cycling import cycling_json

CSS = """
body { font: 14px/1.45 system-ui, sans-serif; max-width: 1150px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.6em 0; } td, th { padding: 2px 10px; border-bottom: 1px solid #eee; }
th { text-align: left; background: #f4f4f4; } table.num td { text-align: right; font-variant-numeric: tabular-nums; }
td.key { color: #555; white-space: nowrap; } img { max-width: 100%; } figure { margin: 1em 0; }
figcaption { color: #555; font-size: 0.92em; } pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; }
.status-success { color: #176317; } .status-bad { color: #a11; font-weight: bold; } .missing li { color: #8a5300; }
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def when(t) -> str:
    if not isinstance(t, (int, float)) or not t > 0:
        return "-"
    return dt.datetime.fromtimestamp(t).astimezone().isoformat(sep=" ", timespec="seconds")


def plain_text(value) -> str:
    """A metadata value as one line of text (lists joined, mappings as k=v)."""
    if isinstance(value, dict):
        return "; ".join(f"{k}={plain_text(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, (list, tuple)):
        return ", ".join(plain_text(v) for v in value)
    return "-" if value is None else str(value)


def key_values(rows) -> str:
    body = "".join(f'<tr><td class="key">{esc(k)}</td><td>{esc(v)}</td></tr>' for k, v in rows)
    return f"<table>{body}</table>"


def table(head: list[str], rows: list[list], cls: str = "", table_id: str = "") -> str:
    """Cells: a string (escaped), or (text, value) for a number shown as text with its full value
    in ``data-value``."""

    def cell(c) -> str:
        if isinstance(c, tuple):
            shown, value = c
            return f'<td data-value="{esc(value)}">{esc(shown)}</td>'
        return f"<td>{esc(c)}</td>"

    attrs = (f' class="{cls}"' if cls else "") + (f' id="{table_id}"' if table_id else "")
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(cell(c) for c in r) + "</tr>" for r in rows)
    return f"<table{attrs}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


class Figures:
    """Figures drawn for the report; one that fails is named in the report instead of ending it."""

    def __init__(self):
        self.problems: list[str] = []

    def __call__(self, fig_id: str, alt: str, caption: str, draw: Callable) -> str:
        try:
            fig = draw()
        except Exception as exc:  # a report shows what it can; the failure is written in it
            self.problems.append(f"figure {alt!r} not drawn: {type(exc).__name__}: {exc}")
            return ""
        if fig is None:
            return ""
        uri = figs.png_bytes_uri(fig) if isinstance(fig, bytes) else figs.png_data_uri(fig)
        return (
            f'<figure id="fig-{fig_id}"><img alt="{esc(alt)}" src="{uri}">'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )


def metadata_section(run, start: dict, stop: dict, echem) -> str:
    status = run_status(stop)
    recovered = stop.get("recovered")
    rows = [
        ("uid", start.get("uid", "?")),
        ("scan id", start.get("scan_id", "?")),
        ("plan", start.get("plan_name", "?")),
        ("profile", f"{start.get('profile', '-')}  ({start.get('profile_file', '-')})"),
        ("protocol", f"{start.get('protocol', '-')}  ({start.get('protocol_file', '-')})"),
    ]
    if start.get("total_steps") is not None:
        rows.append(("steps, cycles", f"{start.get('total_steps')} steps, {start.get('total_cycles', '-')} cycles"))
    if isinstance(start.get("capacity_mAh"), (int, float)):
        rows.append(("capacity (1C)", f"{start['capacity_mAh']:g} mAh"))
    rows += [("started", when(start.get("time"))), ("stopped", when(stop.get("time")))]
    if stop.get("time") and start.get("time"):
        rows.append(("duration (wall clock)", f"{stop['time'] - start['time']:.1f} s"))
    if echem is not None:
        rows.append(("experiment time (echem)", f"{(echem.t_s[-1] - echem.t_s[0]) / 3600:.3f} h"))
    if isinstance(start.get("clock_speed"), (int, float)) and start["clock_speed"] != 1:
        rows.append(("clock", f"simulated, {start['clock_speed']:g}× real time"))
    exit_status = stop.get("exit_status", "none (no stop document)")
    rows.append(("exit status", exit_status if exit_status == status else f"{exit_status} ({status})"))
    if stop.get("reason"):
        rows.append(("reason", stop["reason"]))
    rows.append(
        (
            "recovered",
            f"yes: closed by crash recovery at {when(recovered.get('at'))}"
            if isinstance(recovered, dict)
            else ("yes" if recovered else "no"),
        )
    )
    out = ["<section id='metadata'><h2>Run</h2>", key_values(rows)]
    sample = start.get("sample") or {}
    if isinstance(sample, dict) and sample:
        out += ["<h3>Sample</h3>", key_values((k, plain_text(v)) for k, v in sample.items() if v is not None)]
    instruments = start.get("instruments") or {}
    if instruments:
        schedules = start.get("schedules") or {}
        out += [
            "<h3>Instruments</h3>",
            table(
                ["name", "kind", "backend", "address", "settings", "schedule", "capabilities"],
                [
                    [
                        name,
                        i.get("kind", "-"),
                        i.get("backend", "-"),
                        plain_text(i.get("address")),
                        plain_text(i.get("settings") or {}),
                        plain_text(schedules.get(name, "-")),
                        plain_text(i.get("capabilities") or []),
                    ]
                    for name, i in instruments.items()
                ],
            ),
        ]
    if start.get("suspenders"):
        out += ["<h3>Suspenders</h3><ul>", *(f"<li>{esc(plain_text(s))}</li>" for s in start["suspenders"]), "</ul>"]
    streams = stream_rows(run)
    out += [
        "<h3>Streams</h3>",
        table(["stream", "rows", "keys"], [[n, str(r), ", ".join(data_keys(run[n]))] for n, r in streams.items()]),
        "</section>",
    ]
    return "\n".join(out)


def cycling_table(a: Analysis) -> str:
    def n(value, fmt: str, scale: float = 1.0):
        if value is None or not math.isfinite(value):
            return ("-", "")
        return (f"{value * scale:{fmt}}", repr(float(value)))

    specific = a.active_mass_g is not None
    head = ["cycle", "Q charge / mAh", "Q discharge / mAh"]
    head += ["Q charge / mAh g⁻¹", "Q discharge / mAh g⁻¹"] if specific else []
    head += ["E charge / mWh", "E discharge / mWh", "CE / %", "EE / %", "⟨V⟩ charge / V", "⟨V⟩ discharge / V"]
    head += ["hysteresis / V", "retention / %"]
    rows = []
    for c in cycling_json(a.cycling, a.active_mass_g):
        row = [str(c["cycle"]), n(c["charge_mAh"], ".4f"), n(c["discharge_mAh"], ".4f")]
        row += [n(c["charge_mAh_g"], ".1f"), n(c["discharge_mAh_g"], ".1f")] if specific else []
        row += [n(c["charge_mWh"], ".4f"), n(c["discharge_mWh"], ".4f")]
        row += [n(c["coulombic_efficiency"], ".2f", 100), n(c["energy_efficiency"], ".2f", 100)]
        row += [n(c["mean_charge_V"], ".3f"), n(c["mean_discharge_V"], ".3f"), n(c["hysteresis_V"], ".3f")]
        row += [n(c["retention"], ".2f", 100)]
        rows.append(row)
    return table(head, rows, "num", "cycling-table")


def pre(lines) -> str:
    joined = "\n".join(lines).strip("\n")
    return f"<pre>{esc(joined)}</pre>" if joined else ""
