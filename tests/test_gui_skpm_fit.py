"""The map panel's interface fit (offscreen): a CPD map shows the mean profile of its finished
lines and the fitted step, the numbers `operando analyse` gets from the same map; a topography
map or a map without a scan width shows no fit; a map without a step says so."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # CI has no display

import numpy as np
import pytest

from operando.analysis.skpm_profile import fit_interface_step, line_profile, step_model
from operando.gui.model import RunData
from operando.gui.panels_detectors import MapPanel
from operando.gui.plots import configure

WIDTH_M = 200e-9


def _run(frames: np.ndarray, key: str = "skpm-cpd", configuration=None) -> RunData:
    data = RunData()
    data.set_start({"uid": "x"})
    data.add_stream(
        "skpm",
        {
            key: {"dtype": "array", "shape": list(frames.shape[1:])},
            "skpm-exposure_start": {"dtype": "number", "shape": []},
            "skpm-exposure_end": {"dtype": "number", "shape": []},
        },
        {"skpm-width": WIDTH_M} if configuration is None else configuration,
    )
    starts = np.arange(len(frames)) * 10.0
    data.append(
        "skpm", {key: frames, "skpm-exposure_start": starts, "skpm-exposure_end": starts + 5, "time": starts + 5}
    )
    return data


def _map(step_V=0.4, width_m=12e-9, lines=6, pixels=96, seed=0) -> np.ndarray:
    x = np.linspace(-WIDTH_M / 2, WIDTH_M / 2, pixels)
    rng = np.random.default_rng(seed)
    clean = step_model(x, -0.2, step_V, 5e-9, width_m)
    return clean[None, :] + rng.normal(0, 2e-3, (lines, pixels))


@pytest.fixture
def panel(qtbot):
    configure()
    p = MapPanel()
    qtbot.addWidget(p)
    p.show()
    return p


def test_a_cpd_map_shows_the_fit_analyse_makes(panel, qtbot):
    frame = _map()
    assert panel.refresh(_run(frame[None]))
    qtbot.waitUntil(lambda: panel.profile_fit.result is not None, timeout=10_000)
    want = fit_interface_step(*line_profile(frame, WIDTH_M))
    got = panel.profile_fit.result
    assert got.step_V == pytest.approx(want.step_V, rel=1e-9) and got.width_m == pytest.approx(want.width_m, rel=1e-9)
    assert got.step_V == pytest.approx(0.4, rel=0.02) and got.width_m == pytest.approx(12e-9, rel=0.1)
    x, y = panel.profile_fit.fit_curve.getData()
    assert len(x) == 96 and np.nanmax(y) - np.nanmin(y) == pytest.approx(0.4, rel=0.05)
    assert "step +0.40" in panel.fit_label.text() and "nm (apparent)" in panel.fit_label.text()


def test_no_fit_for_a_topography_map_or_without_a_scan_width(panel, qtbot):
    assert panel.refresh(_run(_map()[None], key="skpm-topography"))
    qtbot.wait(500)
    assert panel.profile_fit.result is None and panel.fit_label.text() == ""
    assert panel.refresh(_run(_map()[None], configuration={}))
    qtbot.wait(500)
    assert panel.profile_fit.result is None and panel.fit_label.text() == ""


def test_a_map_without_a_step_says_so(panel, qtbot):
    flat = np.random.default_rng(1).normal(0.1, 2e-3, (1, 6, 96))
    assert panel.refresh(_run(flat))
    qtbot.waitUntil(lambda: "no interface fit" in panel.fit_label.text(), timeout=10_000)
    assert panel.profile_fit.result is None
