"""The impedance panel (offscreen): Nyquist and Bode of a stored run with PEIS/GEIS steps, the
time cursor, live events, no redraw on echem rows, and the notice for a run without impedance."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # CI has no display
os.environ.setdefault("MPLBACKEND", "Agg")

from pathlib import Path

import numpy as np
import pytest

from operando.acquisition.config import load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.gui.model import RunData
from operando.gui.panels_impedance import ImpedancePanel, spectrum_bounds
from operando.gui.plots import configure
from operando.gui.stored import read_run
from operando.storage.catalog import open_catalog

PROTOCOL = Path(__file__).parent / "protocols" / "characterisation_short.yaml"
Z = "impedance-"


pytestmark = pytest.mark.usefixtures("gc_on_the_gui_thread")


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """The short characterisation protocol (PEIS in cycle 0, PEIS + GEIS in cycle 4), run once."""
    data_dir = tmp_path_factory.mktemp("gui-impedance")
    result = run_experiment(load_profile("sim"), load_protocol(PROTOCOL), data_dir, speed=8000, report=False)
    assert result.exit_status == "success"
    with open_catalog(data_dir) as catalog:
        run = read_run(catalog.client[result.uid])
    return data_dir, result.uid, run


@pytest.fixture
def panel(qtbot):
    configure()
    p = ImpedancePanel()
    qtbot.addWidget(p)
    p.resize(700, 450)
    p.show()
    return p


def full(run) -> RunData:
    data = run.new_data()
    run.feed(data, run.t_end)
    return data


def spectra(run):
    """step -> (frequency, Z_re, Z_im, experiment time) of each stored spectrum."""
    z = run.streams["impedance"][2]
    t = run.times["impedance"]
    return {
        int(s): (z[Z + "frequency"][m], z[Z + "Z_re"][m], z[Z + "Z_im"][m], t[m])
        for s in np.unique(z[Z + "step"])
        for m in [z[Z + "step"] == s]
    }


def test_one_curve_per_impedance_step_with_the_stored_points(stored, panel):
    _, _, run = stored
    data = full(run)
    assert panel.refresh(data)
    by_step = spectra(run)
    assert sorted(by_step) == [2, 12, 13]  # PEIS, PEIS, GEIS
    assert [label for _, _, label in panel.shown] == [
        "step 2 PEIS · cycle 0",
        "step 12 PEIS · cycle 4",
        "step 13 GEIS · cycle 4",
    ]
    assert not panel.empty.isVisibleTo(panel) and panel.tabs.isVisibleTo(panel)
    for k, step in enumerate([2, 12, 13]):
        f, re, im, _ = by_step[step]
        nyquist, modulus, phase = panel.items[k]
        x, y = nyquist.getData()
        np.testing.assert_array_equal(x, re)
        np.testing.assert_array_equal(y, -im)
        assert x[np.argmax(f)] == re[np.argmax(f)]  # Z' at the highest frequency, as measured
        fx, mz = modulus.getData()  # Bode: log10(f); |Z| linear, as it spans less than a decade
        assert not panel.log_modulus
        np.testing.assert_allclose(10**fx, f)
        np.testing.assert_allclose(mz, np.hypot(re, im))
        px, py = phase.getData()
        np.testing.assert_allclose(10**px, f)
        np.testing.assert_allclose(py, -np.degrees(np.arctan2(im, re)))
    assert len(panel.items) == 3
    assert panel.highlighted == 2  # the newest spectrum
    assert panel.legend.items and len(panel.legend.items) == 3


def test_cursor_selects_the_spectra_measured_before_it(stored, panel):
    _, _, run = stored
    data = full(run)
    by_step = spectra(run)
    t12, t13 = by_step[12][3], by_step[13][3]

    assert panel.refresh(data) and len(panel.shown) == 3  # latest: all three
    data.cursor = 0.5 * (t12[-1] + t13[0])  # between the final PEIS and the GEIS
    assert panel.refresh(data)
    assert [label.split(" · ")[0] for _, _, label in panel.shown] == ["step 2 PEIS", "step 12 PEIS"]
    assert panel.highlighted == 1
    np.testing.assert_array_equal(panel.items[1][0].getData()[0], by_step[12][1])
    assert panel.items[2][0].getData()[0] is None  # the GEIS curve is cleared

    data.cursor = t13[4]  # during the GEIS: its first five frequencies only
    assert panel.refresh(data)
    assert panel.highlighted == 2 and panel.shown[2][2].startswith("step 13 GEIS")
    np.testing.assert_array_equal(panel.items[2][0].getData()[0], by_step[13][1][:5])

    data.cursor = by_step[2][3][0] - 1.0  # before the first impedance row: nothing yet
    assert panel.refresh(data)
    assert panel.shown == [] and panel.highlighted is None
    assert not panel.empty.isVisibleTo(panel)  # the run has impedance, just not yet


def test_replay_brings_each_spectrum_at_its_experiment_time(stored, panel):
    _, _, run = stored
    by_step = spectra(run)
    data = run.new_data()
    run.feed(data, by_step[12][3][0] - 1.0)  # up to just before the final PEIS
    assert data.streams["impedance"].rows == len(by_step[2][0])
    panel.refresh(data)
    assert [label.split(" · ")[0] for _, _, label in panel.shown] == ["step 2 PEIS"]
    run.feed(data, run.t_end)
    assert panel.refresh(data) and len(panel.shown) == 3


def test_window_opens_the_impedance_tab_for_a_run_with_eis(stored, qtbot):
    from operando.gui.window import MainWindow

    data_dir, uid, _ = stored
    configure()
    w = MainWindow(data_dir)
    qtbot.addWidget(w)
    w.resize(1400, 900)
    w.show()
    try:
        assert w.lower_tabs.currentWidget() is w.map  # no run yet: the map as before
        w.open_run(uid)
        assert w.lower_tabs.currentWidget() is w.impedance
        assert len(w.impedance.shown) == 3
        w.scrub(0.0)
        assert w.impedance.shown == []
    finally:
        w.close()


def synthetic() -> RunData:
    data = RunData()
    data.set_start({"uid": "x"})
    data.add_stream(
        "echem",
        {
            k: {"dtype": "number", "shape": []}
            for k in ("timestamp", "Ewe", "I", "cycle", "step", "charge", "technique")
        },
    )
    return data


def echem_rows(data, t):
    t = np.atleast_1d(np.asarray(t, float))
    data.append(
        "echem",
        {
            "timestamp": t,
            "Ewe": 3.0 + 0 * t,
            "I": 0 * t,
            "cycle": 0 * t,
            "step": 0 * t + 1,
            "charge": 0 * t,
            "technique": 0 * t + 7,
        },
    )


def test_live_events_redraw_on_impedance_rows_not_on_echem_rows(panel):
    from event_model import compose_run

    from operando.gui.documents import DocumentHandler

    handler = DocumentHandler()
    bundle = compose_run(metadata={"instruments": {}})
    handler("start", bundle.start_doc)
    data = handler.data
    data.add_stream(
        "echem", {k: {"dtype": "number", "shape": []} for k in ("timestamp", "Ewe", "I", "cycle", "step", "charge")}
    )
    keys = ("frequency", "Z_re", "Z_im", "step", "cycle", "timestamp")  # a device named "eis"
    desc = bundle.compose_descriptor(
        name="spectra", data_keys={f"eis-{k}": {"source": "sim", "dtype": "number", "shape": []} for k in keys}
    )
    handler("descriptor", desc.descriptor_doc)

    def point(f, re, im, t):
        values = dict(zip(keys, (f, re, im, 1, 0, t)))
        handler(
            "event",
            desc.compose_event(
                data={f"eis-{k}": v for k, v in values.items()}, timestamps={f"eis-{k}": 0 for k in keys}
            ),
        )

    echem_rows(data, [0.0, 1.0])
    assert panel.refresh(data)
    assert panel.shown == [] and not panel.empty.isVisibleTo(panel)  # a stream, no row yet
    point(1000.0, 5.0, -0.1, 2.0)
    assert panel.refresh(data) and len(panel.shown) == 1
    draws = panel.draws
    for t in range(3, 40):
        echem_rows(data, float(t))
        assert not panel.refresh(data)  # a potentiostat sample: nothing to redraw
    assert panel.draws == draws
    point(100.0, 6.0, -2.0, 41.0)
    assert panel.refresh(data) and panel.draws == draws + 1
    x, y = panel.items[0][0].getData()
    np.testing.assert_array_equal(x, [5.0, 6.0])
    np.testing.assert_array_equal(y, [0.1, 2.0])
    data.cursor = 10.0  # the cursor moved: redraw, the first frequency only
    assert panel.refresh(data) and panel.draws == draws + 2
    np.testing.assert_array_equal(panel.items[0][0].getData()[0], [5.0])
    data.cursor = None
    point(0.1, 80.0, -60.0, 60.0)  # |Z| now spans more than a decade: a log |Z| axis
    assert panel.refresh(data) and panel.log_modulus
    np.testing.assert_allclose(panel.items[0][1].getData()[1], np.log10(np.hypot([5, 6, 80], [0.1, 2, 60])))


def test_a_run_without_impedance_shows_the_notice(panel):
    data = synthetic()
    data.add_stream(
        "raman",
        {
            "raman-spectrum": {"dtype": "array", "shape": [8]},
            "raman-exposure_start": {"dtype": "number", "shape": []},
            "raman-exposure_end": {"dtype": "number", "shape": []},
        },
    )
    echem_rows(data, np.arange(10.0))
    assert panel.refresh(data)
    assert panel.empty.isVisibleTo(panel) and not panel.tabs.isVisibleTo(panel)
    assert "No impedance" in panel.empty.text() and panel.shown == []
    echem_rows(data, [11.0])
    assert not panel.refresh(data)  # and nothing to redraw as echem rows arrive


def test_spectrum_bounds_split_at_step_or_cycle_changes():
    step = np.array([2, 2, 2, 12, 12, 12, 12])
    cycle = np.array([0, 0, 0, 4, 4, 5, 5])  # a repeated step in the next cycle is a new spectrum
    assert spectrum_bounds(step, cycle, 7) == [(0, 3), (3, 5), (5, 7)]
    assert spectrum_bounds(step, None, 4) == [(0, 3), (3, 4)]
    assert spectrum_bounds(None, None, 0) == []
