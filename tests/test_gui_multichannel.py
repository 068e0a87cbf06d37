"""The GUI and a stored several-cell run (offscreen): a cell selector above the panels switches
what they show to that cell's streams, and the Cycling tab overlays every cell's capacity."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # CI has no display

import textwrap

import numpy as np
import pytest
import yaml

from operando.acquisition.config import PROFILES_DIR, load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.gui.plots import configure
from operando.gui.window import MainWindow
from operando.storage.catalog import open_catalog
from operando.storage.runs import find_run

SHORT = textwrap.dedent(
    """
    name: one_cycle
    steps:
      - {kind: rest, duration_min: 5}
      - {kind: cc, c_rate: -2, e_min_V: 0.01, max_duration_h: 1}
      - {kind: cc, c_rate: 2, e_max_V: 3.0, max_duration_h: 1}
    """
)
CELLS = ["ch01", "ch03", "ch05"]


@pytest.fixture(scope="module")
def several(tmp_path_factory):
    """Three cells of sim-16-cells, one protocol pass on the virtual clock: data dir, uid, and
    per cell its stored echem potentials and Raman frame count."""
    tmp = tmp_path_factory.mktemp("gui-cells")
    profile = yaml.safe_load((PROFILES_DIR / "sim-16-cells.yaml").read_text())
    profile["sim"]["speed"] = 1e6
    profile["cells"] = {name: profile["cells"][name] for name in CELLS}
    (tmp / "lab.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    (tmp / "one.yaml").write_text(SHORT)
    data = tmp / "data"
    result = run_experiment(load_profile(tmp / "lab.yaml"), load_protocol(tmp / "one.yaml"), data, report=False)
    with open_catalog(data) as cat:
        run = find_run(cat.client, result.uid)
        stored = {
            c: (np.asarray(run[f"echem_{c}"]["Ewe"].read()), len(run[f"raman_{c}"]["raman-spectrum"].read()))
            for c in CELLS
        }
    return data, result.uid, stored


@pytest.mark.usefixtures("gc_on_the_gui_thread")
def test_the_cell_selector_and_the_capacity_overlay(qapp, several, open_from_browser):
    data, uid, stored = several
    configure()
    w = MainWindow(data)
    w.show()
    try:
        assert not w.cell_select.isVisibleTo(w)  # nothing open: no cells
        open_from_browser(w, uid)
        assert w.cell_select.isVisibleTo(w)
        assert [w.cell_select.itemText(i) for i in range(w.cell_select.count())] == CELLS
        assert w.cell_select.currentText() == "ch01" and w.data.start["cell"] == "ch01"
        assert np.array_equal(w.data.echem["Ewe"], stored["ch01"][0])

        w.cell_select.setCurrentText("ch03")  # as the user picks it
        assert w.data.start["cell"] == "ch03" and "cell ch03" in w.title.text()
        assert w.data.start["sample"]["sim_preset"] == "composite"
        assert np.array_equal(w.data.echem["Ewe"], stored["ch03"][0])
        assert w.data.streams["raman"].rows == stored["ch03"][1]  # raman_ch03, as a one-cell `raman`
        assert not any(name.endswith(("_ch01", "_ch05")) for name in w.data.streams)

        w.lower_tabs.setCurrentWidget(w.cycling)
        w.refresh()
        assert w.cycling.overlay.isVisibleTo(w)
        assert list(w.cycling.overlay_curves) == CELLS  # one curve per cell...
        legend = [label.text for _, label in w.cycling.overlay_legend.items]
        assert legend == CELLS  # ...named in the legend
        widths = {c: item.opts["pen"].width() for c, item in w.cycling.overlay_curves.items()}
        assert widths["ch03"] > widths["ch01"]  # the selected one stands out
        x, y = w.cycling.overlay_curves["ch05"].getData()
        assert len(x) == 1 and y[0] > 0  # its one cycle's discharge capacity
        assert w.cycling.table.rowCount() == 1  # the selected cell's own cycling table

        w.show_live()
        assert not w.cell_select.isVisibleTo(w) and not w.cycling.overlay.isVisibleTo(w)
    finally:
        w.close()
        w.deleteLater()
