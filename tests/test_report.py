"""`operando report RUN`: one self-contained HTML file per run. A simulated cycling run with the
`sim` profile's magnetometer and Raman (virtual clock) gets a report that parses, carries the
cycling table with cycle_metrics' numbers, embeds its figures as PNGs and escapes its metadata; a
recovered run with an empty echem stream gets one that says what is missing; an unknown run is
one error line and exit status 2."""

from __future__ import annotations

import base64
import os
from html.parser import HTMLParser
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np
import pytest

from operando.acquisition.cli import main
from operando.acquisition.cli_report import output_path
from operando.acquisition.config import Profile, load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.analysis.cycling import cycle_metrics
from operando.storage.catalog import open_catalog
from operando.storage.journal import closed_journal_path, encode, open_journal_path, read_journal
from operando.storage.runs import find_run

SAMPLE = "cell <script>alert('x')</script> & co"
PROTOCOL = """
name: two quick cycles
steps:
  - {kind: rest, duration_min: 2}
  - kind: loop
    repeat: 2
    steps:
      - {kind: cc, c_rate: 4, e_max_V: 3.0, max_duration_h: 1}
      - {kind: cc, c_rate: -4, e_min_V: 0.01, max_duration_h: 1}
"""
PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """What a test looks at: tables by id (cells as text and data-value), images by figure id, text."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.images: dict[str, str] = {}
        self.text: list[str] = []
        self._table = self._figure = self._cell = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id"):
            self._table = self.tables.setdefault(a["id"], [])
        elif tag == "tr" and self._table is not None:
            self._table.append([])
        elif tag == "td" and self._table is not None:
            self._cell = ["", a.get("data-value")]
        elif tag == "figure":
            self._figure = a.get("id")
        elif tag == "img" and self._figure:
            self.images[self._figure] = a["src"]

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        elif tag == "td" and self._cell is not None:
            self._table[-1].append(tuple(self._cell))
            self._cell = None
        elif tag == "figure":
            self._figure = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell[0] += data


def _png(uri: str) -> bytes:
    head, _, data = uri.partition(",")
    assert head == "data:image/png;base64"
    return base64.b64decode(data, validate=True)


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """A stored sim run (magnetometer + Raman, virtual clock) and its report, written through the CLI."""
    base = tmp_path_factory.mktemp("report")
    profile = load_profile("sim").model_dump(mode="json")
    profile["sim"]["clock"] = "virtual"  # the same frames every time, as fast as the machine goes
    profile["sample"]["name"] = SAMPLE
    (base / "quick.yaml").write_text(PROTOCOL)
    data = base / "data"
    result = run_experiment(
        Profile.model_validate(profile), load_protocol(base / "quick.yaml"), data, speed=20000, report=False
    )
    assert result.exit_status == "success"
    return data, result.uid


def test_report_of_a_cycling_run_with_magnetometry_and_raman(reported, capsys):
    data, uid = reported
    assert main(["report", uid[:8], "--data", str(data)]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == data / "reports" / f"scan00001-{uid[:8]}-report.html" and path.is_file()
    html = path.read_text(encoding="utf-8")
    page = Page(html)
    text = "".join(page.text)

    # the metadata, every string escaped: the sample name is text, never markup
    assert "<script>" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co" in html
    assert SAMPLE in text and uid in text and "quick.yaml" in text  # the sample, the run, its protocol
    assert "operando_cycling" in text and "magnetometer" in text and "raman" in text and "recovered" in text

    # the cycling table: cycle_metrics' numbers, from the stored echem's galvanostatic steps
    with open_catalog(data) as cat:
        s = find_run(cat.client, uid)["echem"]
        cycle, current, charge, ewe, tech = (
            np.asarray(s[k].read()) for k in ("cycle", "I", "charge", "Ewe", "technique")
        )
        choices = s.metadata["data_keys"]["technique"]["choices"]
    galvanostatic = np.isin(tech, [choices.index("cc"), choices.index("cccv")])
    metrics = cycle_metrics(cycle, current, charge, ewe, include=galvanostatic)
    expected = [m for m in metrics if m.charge_mAh or m.discharge_mAh]  # as operando analyse keeps them
    rows = [r for r in page.tables["cycling-table"] if r]
    assert [int(r[0][0]) for r in rows] == [m.cycle for m in expected] and len(expected) == 2
    for row, m in zip(rows, expected):
        values = [float(v) for _, v in row[1:]]
        q_ch, q_dis, q_ch_g, q_dis_g, e_ch, e_dis, ce, ee, v_ch, v_dis, hyst, retention = values
        assert (q_ch, q_dis, e_ch, e_dis) == pytest.approx(
            (m.charge_mAh, m.discharge_mAh, m.charge_mWh, m.discharge_mWh)
        )
        assert (q_ch_g, q_dis_g) == pytest.approx((m.charge_mAh / 0.002, m.discharge_mAh / 0.002))
        assert (ce, ee, retention) == pytest.approx((m.coulombic_efficiency, m.energy_efficiency, m.retention))
        assert (v_ch, v_dis, hyst) == pytest.approx((m.mean_charge_V, m.mean_discharge_V, m.hysteresis_V))
        assert row[1][0] == f"{m.charge_mAh:.4f}" and row[7][0] == f"{m.coulombic_efficiency * 100:.2f}"

    # the figures, embedded: nothing is fetched from anywhere
    for fig in ("fig-echem", "fig-cycling", "fig-dqdv", "fig-moment", "fig-raman", "fig-operando"):
        png = _png(page.images[fig])
        assert png.startswith(PNG) and len(png) > 10_000, fig
    assert "10 mV bins" in text  # dQ/dV says how it was smoothed
    assert "Moment against charge passed" in text and "Raman bands" in text  # analyse's own tables
    assert 'src="http' not in html and "<link" not in html


def test_out_is_a_file_or_a_directory(tmp_path):
    start = {"scan_id": 7, "uid": "0123456789abcdef"}
    default = tmp_path / "data" / "reports" / "scan00007-01234567-report.html"
    assert output_path(None, tmp_path / "data", start) == default
    assert output_path(str(tmp_path / "sent" / "r.html"), tmp_path, start) == tmp_path / "sent" / "r.html"
    assert output_path(str(tmp_path / "sent"), tmp_path, start) == tmp_path / "sent" / default.name
    assert output_path(str(tmp_path), tmp_path, start) == tmp_path / default.name


def test_a_recovered_run_with_empty_echem_still_gets_a_report(reported, tmp_path, capsys):
    """Crashed before its first sample (the journal cut before any data, as tests/test_recovered_runs.py
    does), recovered by the next command: the report shows the run and says what is missing."""
    source, uid = reported
    docs = list(read_journal(closed_journal_path(source, uid)))
    first_data = next(i for i, (n, _) in enumerate(docs) if n in ("stream_resource", "event"))
    data = tmp_path / "data"
    path = open_journal_path(data, uid)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(encode(n, d) for n, d in docs[:first_data]))

    assert main(["report", "-1", "--data", str(data), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr()
    assert "recovered run" in out.err
    html = Path(out.out.strip()).read_text(encoding="utf-8")
    assert Path(out.out.strip()).parent == tmp_path / "out"
    text = "".join(Page(html).text)
    assert "yes: closed by crash recovery" in text and "fail" in text
    assert "No electrochemistry to show" in text and "nothing to analyse" in text
    assert "the echem stream is empty" in text


def test_an_unknown_run_is_one_error_line_and_exit_2(reported, capsys):
    data, _ = reported
    assert main(["report", "zzzz-no-such-run", "--data", str(data)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1 and "no run matches 'zzzz-no-such-run'" in out.err
