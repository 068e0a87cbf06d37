"""A Raman map run opened in the GUI (offscreen): the Raman bands panel shows the band-area ratio
where each spectrum was taken, the same ratio `operando analyse` reports, at the stored stage
positions, and a line map the ratio along the line (an operando run shows no map:
test_gui_raman_bands)."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # CI has no display

import time

import numpy as np
import pytest

from operando.acquisition.ipython import open_lab
from operando.analysis.run_analysis import analyse_run, analysis_json
from operando.gui import panels_raman_bands
from operando.gui.plots import configure
from operando.gui.window import MainWindow
from operando.storage.catalog import open_catalog
from operando.storage.runs import find_run


@pytest.fixture(scope="module")
def map_run(tmp_path_factory):
    data = tmp_path_factory.mktemp("gui-raman-map") / "data"
    lab = open_lab("raman-map-sim", data=data)
    try:
        (area,) = lab.RE(lab.raman_area_map(x_um=(-100, 100, 5), y_um=(-60, 60, 4)))
        (line,) = lab.RE(lab.raman_line_map((-100, -20), (100, -20), 6))
    finally:
        lab.close()
    with open_catalog(data) as catalog:
        analysed = {uid: analysis_json(analyse_run(find_run(catalog.client, uid)))["raman"] for uid in (area, line)}
    return data, area, line, analysed


def _fit_all(w, panel):
    w.lower_tabs.setCurrentWidget(panel)
    deadline = time.monotonic() + 60
    while (panel.fitter is None or panel.pending) and time.monotonic() < deadline:
        time.sleep(0.02)
        w.refresh()
    assert panel.fitter is not None and not panel.pending


@pytest.mark.usefixtures("gc_on_the_gui_thread")
def test_a_map_run_shows_the_ratio_where_each_spectrum_was_taken(qapp, map_run, monkeypatch, open_from_browser):
    data, area, line, analysed = map_run
    monkeypatch.setattr(panels_raman_bands, "SETTLE_S", 0.0)
    configure()
    w = MainWindow(data)
    w.resize(1400, 900)
    w.show()
    try:
        panel = w.raman_bands
        open_from_browser(w, area)
        _fit_all(w, panel)
        view = panel.map_view
        assert view.isVisible() and not w._broken
        want = analysed[area]["area_ratio"]
        assert list(panel.ratio) == want["bands"]  # analyse's default ratio
        assert view.values == pytest.approx(np.asarray(want["value"], float), rel=1e-9)
        sx, sy = view.squares.getData()
        assert sx == pytest.approx(analysed[area]["map"]["x_um"]) and sy == pytest.approx(analysed[area]["map"]["y_um"])
        assert "(dark)" in view.getPlotItem().titleLabel.text

        open_from_browser(w, line)
        _fit_all(w, panel)
        lx, ly = view.line.getData()
        assert lx == pytest.approx(np.linspace(0, 200, 6)) and len(ly) == 6
        assert len(view.squares.getData()[0]) == 0
    finally:
        w.close()
        w.deleteLater()
