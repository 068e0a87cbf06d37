"""Several cells in one run (profile ``cells:``): a stream per cell on one clock, shared detectors
whose frames carry their cell's state, and per-channel safety — through run_experiment, the path
every entry point takes."""

import threading

import numpy as np
import pytest

from operando.acquisition.cli import main
from operando.acquisition.config import ConfigError, load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.storage.catalog import open_catalog


@pytest.fixture
def lab(tmp_path, several_cells):
    """``lab(edit=None)``: sim-16-cells, edited, as tmp_path/lab.yaml (one.yaml beside it)."""
    return lambda edit=None: several_cells(tmp_path, edit)[0]


def _run(tmp_path, profile_path):
    result = run_experiment(
        load_profile(profile_path), load_protocol(tmp_path / "one.yaml"), tmp_path / "data", report=False
    )
    return result, open_catalog(tmp_path / "data")


def _refusal(lab, edit) -> str:
    with pytest.raises(ConfigError) as err:
        load_profile(lab(edit))
    return str(err.value)


def test_cells_are_refused_with_the_field_named(tmp_path, lab):
    def beyond(d):
        d["cells"]["ch16"]["channel"] = 17

    assert "cells.ch16.channel: vmp (sim) has 16 channels; got 17" in _refusal(lab, beyond)

    def twice(d):
        d["cells"]["ch02"]["channel"] = 1

    assert "cells.ch02.channel: vmp channel 1 is already ch01's" in _refusal(lab, twice)

    def bad_mass(d):
        d["cells"]["ch05"]["sample"] = {"active_mass_g": -1}

    assert "cells.ch05.sample.active_mass_g" in _refusal(lab, bad_mass)

    def nowhere(d):
        del d["cells"]["ch09"]["position_um"]

    assert "instruments.raman.stage: cells ch09 have no position_um for xy to go to" in _refusal(lab, nowhere)

    def two_potentiostats(d):
        d["instruments"]["vmp2"] = dict(d["instruments"]["vmp"])
        del d["cells"], d["instruments"]["raman"]["stage"]

    text = _refusal(lab, two_potentiostats)
    assert "expected exactly one instrument of kind potentiostat, found 2" in text and "cells:" in text

    def outside(d):
        d["cells"]["ch08"]["position_um"] = [90000, 0]

    code = main(["run", str(tmp_path / "one.yaml"), "--profile", str(lab(outside)), "--quiet"])
    assert code != 0  # refused before any cell is touched: the stage cannot reach ch08


def test_sixteen_cells_one_stream_each_frames_carry_their_cells_state(tmp_path, lab):
    result, catalog = _run(tmp_path, lab())
    run = catalog.client[result.uid]
    start = run.metadata["start"]
    assert result.exit_status == "success", run.metadata["stop"]["reason"]
    cells = list(start["cells"])
    assert len(cells) == 16 and all(f"echem_{c}" in run for c in cells)
    finals = {}
    for cell in cells:
        echem = run[f"echem_{cell}"]
        t, e = np.asarray(echem["timestamp"].read()), np.asarray(echem["Ewe"].read())
        assert t.size > 100 and np.all(np.diff(t) > 0)
        finals[cell] = e[-1]
        for detector in ("magnetometer", "raman"):
            frames = run[f"{detector}_{cell}"]
            ft, fe = np.asarray(frames["frame-time"].read()), np.asarray(frames["frame-Ewe"].read())
            assert ft.size >= 1
            # the frame's state is its own cell's echem at the frame's time, not another cell's
            assert np.allclose(fe, np.interp(ft, t, e), atol=0.02), (cell, detector)
            assert set(np.asarray(frames[f"{detector}_changer-cell"].read())) == {cell}
    # Different electrodes end in different places: a frame stamped from the wrong cell would show
    assert len({round(float(v), 2) for v in finals.values()}) >= 3
    # The stage carried the Raman probe between cells: a move takes time on the experiment clock
    moves = np.concatenate([np.asarray(run[f"raman_{c}"]["raman_changer-move_s"].read()) for c in cells])
    assert moves.max() >= 10000 / 5000  # at least one 10 mm move at 5 mm/s
    outcomes = run["channel_outcomes"]
    assert list(np.asarray(outcomes["outcome-status"].read())) == ["completed"] * 16


def test_a_fault_on_one_channel_opens_that_channel_and_the_others_cycle_on(tmp_path, lab):
    def fault(d):
        d["sim"]["faults"] = [
            {"instrument": "ch03", "kind": "disconnect", "at_s": 1200},
            # the stage carrying the Raman probe stops answering for a while: frames lost, not cells
            {"instrument": "xy", "kind": "disconnect", "at_s": 300, "duration_s": 600},
        ]
        d["instruments"]["raman"]["settings"]["period_s"] = 600

    result, catalog = _run(tmp_path, lab(fault))
    run = catalog.client[result.uid]
    stop = run.metadata["stop"]
    assert stop["exit_status"] == "fail"
    assert "1 of 16 cells ended early (ch03: fault:" in stop["reason"] and "injected disconnect" in stop["reason"]
    statuses = dict(
        zip(
            np.asarray(run["channel_outcomes"]["outcome-cell"].read()),
            np.asarray(run["channel_outcomes"]["outcome-status"].read()),
        )
    )
    assert statuses.pop("ch03") == "fault"
    assert set(statuses.values()) == {"completed"}
    # ch03 stopped about 20 min in; its neighbours ran their whole protocol
    span = {c: np.ptp(np.asarray(run[f"echem_{c}"]["timestamp"].read())) for c in ("ch03", "ch04", "ch11")}
    assert span["ch03"] < 1300 < span["ch04"] and span["ch11"] > 1300
    assert "ch03" in result.summary and "fault" in result.summary
    failures = run["frame_failures"]
    lost = list(np.asarray(failures["failure-detector"].read()))
    assert lost and all(name.startswith("raman_ch") for name in lost)
    assert all("xy" in str(e) for e in np.asarray(failures["failure-error"].read()))


def test_an_abort_opens_every_channel(tmp_path, lab):
    """Ctrl-C (a RunEngine pause nobody resumes, then abort: what run_experiment does) leaves
    every cell at open circuit, and each cell's samples up to then are stored."""
    from bluesky.utils import RunEngineInterrupted

    from operando.acquisition.prepare import prepare_run
    from operando.acquisition.session import make_run_engine

    profile = load_profile(lab())
    with open_catalog(tmp_path / "data") as catalog:
        RE = make_run_engine(catalog)
        prepared = prepare_run(profile, load_protocol(tmp_path / "one.yaml"), tmp_path / "data")
        events = []

        def pause_after_some_frames(name, doc):
            if name == "event":
                events.append(doc)
                if len(events) == 5:  # the first frames of the first cells: mid-run
                    # as Ctrl-C does, from another thread (this callback runs in the RunEngine's)
                    threading.Thread(target=RE.request_pause).start()

        RE.subscribe(pause_after_some_frames)
        lab = prepared.instruments.sim_lab
        try:
            with pytest.raises(RunEngineInterrupted):
                RE(prepared.plan)
            (uid,) = RE.abort(reason="test abort")
        finally:
            prepared.close()
            RE.catalog_writer.flush()
        for cell in profile.cells:
            engine = lab.cell_lab(cell).potentiostat
            assert not engine.running and engine.last_current == 0.0, cell
        run = catalog.client[uid]
        assert run.metadata["stop"]["exit_status"] == "abort"
        assert all(len(run[f"echem_{c}"]["timestamp"].read()) > 0 for c in profile.cells)


def test_cells_on_two_instruments_each_with_its_own_protocol(tmp_path, lab):
    rest_only = "name: rest_only\nsteps:\n  - {kind: rest, duration_min: 10}\n"
    (tmp_path / "rest_only.yaml").write_text(rest_only)

    def two(d):
        d["instruments"]["bench"] = dict(d["instruments"]["vmp"])
        del d["instruments"]["raman"], d["instruments"]["xy"], d["instruments"]["magnetometer"]
        d["cells"] = {
            "a": {"instrument": "vmp", "channel": 1},
            "b": {"instrument": "vmp", "channel": 2, "sample": {"sim_preset": "composite"}},
            "c": {"instrument": "bench", "protocol": "rest_only.yaml"},  # beside the profile
        }

    result, catalog = _run(tmp_path, lab(two))
    run = catalog.client[result.uid]
    cells = run.metadata["start"]["cells"]
    assert result.exit_status == "success"
    assert {c: (v["instrument"], v["channel"], v["protocol"]) for c, v in cells.items()} == {
        "a": ("vmp", 1, "one_cycle"),
        "b": ("vmp", 2, "one_cycle"),
        "c": ("bench", 1, "rest_only"),
    }
    rest = np.asarray(run["echem_c"]["I"].read())
    assert rest.size > 100 and np.all(rest == 0)  # its own protocol: a rest, no current
    assert np.any(np.asarray(run["echem_a"]["I"].read()) != 0)
