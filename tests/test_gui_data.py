"""GUI data path without Qt: documents → RunData, stored runs → RunData, curves, field lookup."""

import textwrap

import numpy as np
import pytest
from event_model import compose_run

from operando.acquisition.config import PROFILES_DIR, load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.gui.curves import CycleCurves, capacity_curve, dqdv_curve
from operando.gui.documents import DocumentHandler
from operando.gui.stored import read_run, search_runs
from operando.gui.validation import field_line, locate
from operando.storage.catalog import open_catalog

SHORT = textwrap.dedent(
    """
    name: gui_short
    steps:
      - {kind: rest, duration_min: 5}
      - kind: loop
        repeat: 2
        steps:
          - {kind: cc, c_rate: 2, e_max_V: 3.0, max_duration_h: 1}
          - {kind: cc, c_rate: -2, e_min_V: 0.01, max_duration_h: 1}
    """
)


@pytest.fixture(scope="module")
def live_and_stored(tmp_path_factory):
    base = tmp_path_factory.mktemp("gui-data")
    (base / "short.yaml").write_text(SHORT)
    (base / "data").mkdir()
    # The virtual clock: every frame is taken at its scheduled experiment time however loaded the
    # machine is (on the scaled clock at 20000x a busy machine skipped most: 2 spectra of ~25).
    profile = base / "sim-virtual.yaml"
    profile.write_text((PROFILES_DIR / "sim.yaml").read_text().replace("  seed: 0\n", "  seed: 0\n  clock: virtual\n"))
    handler = DocumentHandler()
    result = run_experiment(
        load_profile(profile),
        load_protocol(base / "short.yaml"),
        base / "data",
        speed=20000,
        report=False,
        callbacks=[handler],
    )
    with open_catalog(base / "data") as cat:
        stored = read_run(cat.client[result.uid])
        rows = search_runs(cat.client, "fe3o4")
        none = search_runs(cat.client, "no-such-sample")
    return handler.data, stored, rows, none, result


def test_documents_and_catalog_give_the_same_arrays(live_and_stored):
    live, stored, *_ = live_and_stored
    echem = live.echem
    assert echem.rows > 1000
    for key in ("timestamp", "Ewe", "I", "charge", "cycle"):  # read from HDF5 per StreamDatum
        np.testing.assert_array_equal(echem[key], stored.streams["echem"][2][key])
    moment = live.streams["magnetometer"]["magnetometer-moment"]
    np.testing.assert_allclose(moment, stored.streams["magnetometer"][2]["magnetometer-moment"])
    assert live.streams["raman"]["raman-spectrum"].shape[1] == 1024
    assert live.streams["raman"].configuration["raman-raman_shift"].__len__() == 1024
    assert live.stop["exit_status"] == "success"


def test_replay_feeds_rows_in_time_order(live_and_stored):
    _, stored, *_ = live_and_stored
    data = stored.new_data()
    half = stored.t0 + (stored.t_end - stored.t0) / 2
    assert not stored.feed(data, half)
    assert data.echem["timestamp"][-1] <= half < stored.times["echem"][data.echem.rows]
    mag = data.streams["magnetometer"]
    assert 0 < mag.rows < len(stored.times["magnetometer"])
    assert stored.feed(data, stored.t_end) and data.stop["exit_status"] == "success"
    assert data.echem.rows == len(stored.times["echem"])


def test_search_by_sample(live_and_stored):
    *_, rows, none, result = live_and_stored
    assert [r.uid for r in rows] == [result.uid] and none == []


def test_cursor_picks_the_frame_acquired_before_it(live_and_stored):
    live, *_ = live_and_stored
    raman = live.streams["raman"]
    t = raman.experiment_time()
    assert live.row_at(raman, t[3] + 1e-3) == 3
    assert live.row_at(raman, t[0] - 1) is None


def test_capacity_and_dqdv_per_cycle(live_and_stored):
    live, *_ = live_and_stored
    curves = CycleCurves(capacity_curve).curves(live.echem, live.active_mass_g)
    assert [c for c, _, _ in curves] == [1, 2]
    x = curves[0][1]
    # each current step starts at zero capacity and reaches about the 2C capacity in mAh/g
    assert np.nanmin(x) == 0 and 300 < np.nanmax(x) < 1200
    dq = CycleCurves(dqdv_curve).curves(live.echem, live.active_mass_g)
    y = dq[0][2]
    assert np.nanmax(y) > 0 > np.nanmin(y)  # charge and discharge branches


def test_2d_event_streams_become_frames():
    handler = DocumentHandler()
    bundle = compose_run(metadata={"sample": {"name": "x", "active_mass_g": 1e-3}})
    handler("start", bundle.start_doc)
    desc = bundle.compose_descriptor(
        name="skpm",
        data_keys={
            "skpm-cpd": {"source": "sim", "dtype": "array", "shape": [8, 16], "units": "V"},
            "skpm-exposure_start": {"source": "sim", "dtype": "number", "shape": []},
            "skpm-exposure_end": {"source": "sim", "dtype": "number", "shape": []},
        },
    )
    handler("descriptor", desc.descriptor_doc)
    for k in range(3):
        frame = np.full((8, 16), float(k))
        handler(
            "event",
            desc.compose_event(
                data={"skpm-cpd": frame, "skpm-exposure_start": 100.0 * k, "skpm-exposure_end": 100.0 * k + 50},
                timestamps={"skpm-cpd": 0, "skpm-exposure_start": 0, "skpm-exposure_end": 0},
            ),
        )
    s = handler.data.streams["skpm"]
    assert s["skpm-cpd"].shape == (3, 8, 16) and s.keys_of_ndim(2) == ["skpm-cpd"]
    assert handler.data.row_at(s, 180.0) == 1  # mid-exposure times 25, 125, 225


def test_problems_land_on_their_yaml_line():
    text = (
        "name: p\nsteps:\n  - {kind: rest, duration_min: 5}\n  - kind: loop\n    repeat: 2\n"
        "    steps:\n      - {kind: cc, c_rate: 40}\n"
    )
    assert field_line(text, "steps[1].steps[0].c_rate") == 7
    assert field_line(text, "steps[1].repeat") == 5
    problems = locate(["f.yaml: steps[1].steps[0].c_rate: 40C is 0.07 A, above the limit (got 40)"], "f.yaml", text)
    assert problems[0].line == 7 and problems[0].field == "steps[1].steps[0].c_rate"
    assert "above the limit" in problems[0].message


def test_envelope_keeps_every_extreme_and_grows_incrementally():
    from operando.gui.envelope import Envelope

    rng = np.random.default_rng(3)
    y = rng.normal(size=200_003).cumsum()
    x = np.arange(len(y), dtype=float)
    grown, k = Envelope(), 0
    for step in rng.integers(1, 3000, size=150):  # rows arrive in uneven blocks
        k = min(len(y), k + int(step))
        grown.update(y[:k])
    grown.update(y)
    whole = Envelope()
    whole.update(y)
    assert len(grown.levels) == len(whole.levels) > 3
    for (a, b), (c, d) in zip(grown.levels, whole.levels):
        np.testing.assert_array_equal(a.values, c.values)
        np.testing.assert_array_equal(b.values, d.values)
    for i0, i1 in [(0, len(y)), (1234, 187_654), (5, 9000), (100, 200)]:
        xs, ys = whole.window(x, y, i0, i1, 2000)
        assert len(xs) <= 2000 + 6 and np.all(np.diff(xs) >= 0)
        assert xs[0] == x[i0] and (xs[-1], ys[-1]) == (x[i1 - 1], y[i1 - 1])
        assert ys.max() == y[i0:i1].max() and ys.min() == y[i0:i1].min()
    shorter = Envelope()
    shorter.update(y)
    shorter.update(y[:50])  # a new series: started again
    assert shorter.n == 50 and shorter.levels[0][0].n == 50 // 8
