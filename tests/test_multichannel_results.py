"""Looking at a several-cell run: `operando analyse`, `export` and `report` of one cell (--cell)
as of a one-cell run, and of every cell without it, through ``analysis.run_cells.CellRun``."""

import json

import h5py
import numpy as np
import pytest

from operando.acquisition.cli import main
from operando.analysis.run_analysis import analyse_run, analysis_json
from operando.analysis.run_cells import CellNotFound, CellRun, cell_runs
from operando.storage.catalog import open_catalog
from operando.storage.runs import find_run

CELLS = ["ch01", "ch03", "ch05"]  # the conftest's three_cell_run


@pytest.fixture
def several(three_cell_run):
    return three_cell_run


def test_a_cell_is_a_one_cell_run_of_its_own_streams(several):
    data, uid = several
    with open_catalog(data) as cat:
        run = find_run(cat.client, uid)
        view = CellRun(run, "ch03")
        start = view.metadata["start"]
        assert start["cell"] == "ch03" and start["echem_stream"] == "echem" and "cells" not in start
        assert start["sample"]["name"].endswith("ch03") and start["sample"]["sim_preset"] == "composite"
        assert view.stored_name("echem") == "echem_ch03"
        assert {"echem", "raman", "magnetometer", "timebase"} <= set(view)
        assert not any(name.endswith(("_ch01", "_ch05")) or name == "channel_outcomes" for name in view)
        assert np.array_equal(view["echem"]["Ewe"].read(), run["echem_ch03"]["Ewe"].read())
        assert view.metadata["stop"]["exit_status"] == "success"  # the cell completed
        assert set(cell_runs(run)) == set(CELLS)
        with pytest.raises(CellNotFound, match="no cell 'ch09' .*cells: ch01, ch03, ch05"):
            CellRun(run, "ch09")
        # the one-cell analysis of the view reads that cell's echem and detector streams
        a = analyse_run(view)
        assert a.run_label.endswith("cell ch03") and len(a.cycling) == 1
        assert a.active_mass_g == pytest.approx(0.002)
        assert a.raman is not None and a.raman.stream == "raman"
        assert a.magnetometry is not None or any(n.startswith("magnetometer: ") for n in a.notes)  # read it


def test_analyse_tabulates_every_cell_and_analyses_one(several, capsys):
    data, uid = several
    assert main(["analyse", uid, "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "3 cells" in out and "-cells.png" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(tuple(CELLS))]
    assert [r[0] for r in rows] == CELLS  # one cycle each: one row per cell
    assert all(r[1] == "completed" and r[2] == "0" for r in rows), out  # no repeat: cycle 0

    assert main(["analyse", uid, "--data", str(data), "--json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert list(table["cells"]) == CELLS
    with open_catalog(data) as cat:
        one = analysis_json(analyse_run(CellRun(find_run(cat.client, uid), "ch05")))
    assert table["cells"]["ch05"]["cycling"] == one["cycling"]

    assert main(["analyse", uid, "--data", str(data), "--cell", "ch05", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["cycling"] == one["cycling"]
    assert "-ch05-analysis.png" in captured.err


def test_a_wrong_cell_is_one_line_naming_the_cells(several, capsys):
    data, uid = several
    for command in (["analyse"], ["report"], ["export", "--out", str(data / "x")]):
        assert main([*command, uid, "--data", str(data), "--cell", "ch3"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"operando: error: --cell: no cell 'ch3' in run {uid[:8]} (cells: ch01, ch03, ch05)"


def test_export_one_cell_or_a_file_set_per_cell(several, tmp_path, capsys):
    data, uid = several
    stem = f"scan00001-{uid[:8]}"
    assert main(["export", uid, "--data", str(data), "--cell", "ch03", "--out", str(tmp_path / "one")]) == 0
    names = {p.split("/")[-1] for p in capsys.readouterr().out.split()}
    assert {f"{stem}-ch03-echem.csv", f"{stem}-ch03-raman.csv", f"{stem}-ch03.json"} <= names
    assert not any("ch01" in n or "ch05" in n for n in names)
    sidecar = json.loads((tmp_path / "one" / f"{stem}-ch03.json").read_text())
    assert sidecar["cell"] == "ch03" and "echem" in sidecar["streams"]

    assert main(["export", uid, "--data", str(data), "--format", "hdf5", "--out", str(tmp_path / "all")]) == 0
    paths = capsys.readouterr().out.split()
    assert [p.split("/")[-1] for p in paths] == [f"{stem}-{c}.h5" for c in CELLS]
    with open_catalog(data) as cat:
        rows = {c: len(find_run(cat.client, uid)[f"echem_{c}"]["Ewe"].read()) for c in CELLS}
    for cell, path in zip(CELLS, paths):
        with h5py.File(path) as f:
            assert f.attrs["cell"] == cell and f["echem"]["Ewe"].shape == (rows[cell],)
            assert "raman" in f and "echem_ch01" not in f

    assert main(["export", uid, "--data", str(data), "--format", "pyprobe", "--out", str(tmp_path / "pp")]) == 0
    csvs = [p for p in capsys.readouterr().out.split() if p.endswith("-pyprobe.csv")]
    assert [p.split("/")[-1] for p in csvs] == [f"{stem}-{c}-pyprobe.csv" for c in CELLS]


def test_report_of_one_cell_and_of_each(several, tmp_path, capsys):
    data, uid = several
    out = tmp_path / "r.html"
    assert main(["report", uid, "--data", str(data), "--cell", "ch03", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    html = out.read_text()
    assert "cell ch03 of a several-cell run" in html and "echem_ch01" not in html
    assert "id='cycling-table'" in html or 'id="cycling-table"' in html

    assert main(["report", uid, "--data", str(data), "--out", str(tmp_path / "each.html")]) == 0
    paths = capsys.readouterr().out.split()
    assert [p.split("/")[-1] for p in paths] == [f"each-{c}.html" for c in CELLS]
