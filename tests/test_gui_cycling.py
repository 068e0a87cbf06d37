"""The GUI's Cycling tab (offscreen): a stored cycling run opened from the browser shows per cycle
the numbers `operando analyse` reports for it, from the same analysis."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # CI has no display

import pytest
import yaml

from operando.acquisition.config import PROFILES_DIR, load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.analysis.run_analysis import analyse_run, analysis_json
from operando.gui.plots import configure
from operando.gui.window import MainWindow
from operando.storage.catalog import open_catalog
from operando.storage.runs import find_run


@pytest.fixture(scope="module")
def cycled(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gui-cycling")
    profile = yaml.safe_load((PROFILES_DIR / "sim.yaml").read_text())
    profile["instruments"] = {"potentiostat": profile["instruments"]["potentiostat"]}
    profile["suspenders"], profile["sim"]["clock"] = [], "virtual"
    (tmp / "profile.yaml").write_text(yaml.safe_dump(profile))
    data = tmp / "data"
    result = run_experiment(
        load_profile(tmp / "profile.yaml"), load_protocol("galvanostatic_cycling"), data, speed=100000, report=False
    )
    with open_catalog(data) as catalog:
        cycling = analysis_json(analyse_run(find_run(catalog.client, result.uid)))["cycling"]
    return data, result.uid, cycling


@pytest.mark.usefixtures("gc_on_the_gui_thread")
def test_the_cycling_tab_shows_what_analyse_reports(qapp, cycled, open_from_browser):
    data, uid, cycling = cycled
    assert [c["cycle"] for c in cycling] == [1, 2]
    configure()
    w = MainWindow(data)
    w.show()
    try:
        open_from_browser(w, uid)
        w.lower_tabs.setCurrentWidget(w.cycling)
        w.refresh()
        table = w.cycling.table
        headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
        assert table.rowCount() == 2
        for r, want in enumerate(cycling):
            got = {h: table.item(r, c).text() for c, h in enumerate(headers)}
            assert got["cycle"] == str(want["cycle"])
            assert float(got["Q_dis / mAh"]) == pytest.approx(want["discharge_mAh"], abs=1e-4)
            assert float(got["CE / %"]) == pytest.approx(100 * want["coulombic_efficiency"], abs=0.01)
            assert float(got["EE / %"]) == pytest.approx(100 * want["energy_efficiency"], abs=0.01)
        assert "CE = Q_ch/Q_dis" in w.cycling.note.text()  # the demo protocol discharges first
    finally:
        w.close()
        w.deleteLater()
