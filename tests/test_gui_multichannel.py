"""The GUI and a stored several-cell run (offscreen): a cell selector above the panels switches
what they show to that cell's streams, and the Cycling tab overlays every cell's capacity."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # CI has no display


import numpy as np
import pytest

from operando.gui.plots import configure
from operando.gui.window import MainWindow
from operando.storage.catalog import open_catalog
from operando.storage.runs import find_run

CELLS = ["ch01", "ch03", "ch05"]  # the conftest's three_cell_run


@pytest.fixture
def several(three_cell_run):
    """The three-cell run, and per cell its stored echem potentials and Raman frame count."""
    data, uid = three_cell_run
    with open_catalog(data) as cat:
        run = find_run(cat.client, uid)
        stored = {
            c: (np.asarray(run[f"echem_{c}"]["Ewe"].read()), len(run[f"raman_{c}"]["raman-spectrum"].read()))
            for c in CELLS
        }
    return data, uid, stored


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


def test_the_gui_starts_a_several_cell_run_as_the_cli_does(qtbot, tmp_path):
    """The user's path: pick the shipped sim-16-cells profile in the set-up panel, start; the
    acquisition runs in a child process through prepare_run, its progress (every cell summed)
    reaches the run panel, and the run is stored with a stream per cell."""
    from operando.gui.controller import FAILED, FINISHED
    from operando.gui.process_control import ProcessRunControl

    steps = "  - {kind: rest, duration_min: 5}\n  - {kind: cc, c_rate: -2, e_min_V: 0.01, max_duration_h: 1}\n"
    (tmp_path / "one.yaml").write_text("name: short\nsteps:\n" + steps)
    configure()
    w = MainWindow(tmp_path / "data", ProcessRunControl())
    qtbot.addWidget(w)
    w.show()
    w.setup.profile_box.setCurrentText("sim-16-cells")
    w.setup.load_protocol(str(tmp_path / "one.yaml"))  # what its Open… button does
    assert w.setup.check(), w.setup.problems
    w.start_run()
    control = w.control
    qtbot.waitUntil(lambda: control.status.state in (FINISHED, FAILED), timeout=300000)
    assert control.status.state == FINISHED, control.status.message
    assert control.status.progress.samples > 16 * 300  # all cells' samples, summed
    assert "samples" in w.run_panel.detail.text()
    with open_catalog(tmp_path / "data") as cat:
        run = cat.client[control.status.uid]
        assert len(run.metadata["start"]["cells"]) == 16 and all(f"echem_ch{i:02d}" in run for i in range(1, 17))
