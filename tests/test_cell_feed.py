"""The run's cell fed to a simulator in another process (sim_devices/wire/cell_feed.py): JSON
lines on a pipe, the child's stand-in cell follows them, the end of the feed stops the child."""

from __future__ import annotations

import io
import json
import os
import time

import pytest

from operando.devices.drivers.mpms3 import Mpms3Client
from operando.devices.drivers.multivu_tail import DatTail
from operando.sim_devices.cell import SimCell, preset
from operando.sim_devices.magnetometer import SimMagnetometerPhysics
from operando.sim_devices.wire.cell_feed import STATE_FIELDS, CellFeed, FollowedCell, cell_state, parse_state
from operando.sim_devices.wire.mpms3_server import start_process, stop_process


def _cell(soc: float) -> SimCell:
    return SimCell(preset("fe_li2o", active_mass_g=2e-3), soc=soc)


def test_feed_writes_the_cells_state_and_the_followed_cell_answers_with_it():
    read_fd, write_fd = os.pipe()
    empty, full = _cell(0.0), _cell(1.0)
    with os.fdopen(read_fd) as source:
        feed = CellFeed(full, os.fdopen(write_fd, "w"), period_s=0.01).start()
        ended = []
        followed = FollowedCell(empty, source, on_end=lambda: ended.append(True)).start(wait_s=5)
        time.sleep(0.05)
        feed.stop()  # closes the pipe: the reader sees its end
        deadline = time.monotonic() + 5
        while not ended and time.monotonic() < deadline:
            time.sleep(0.01)
    assert ended and followed.lines >= 2
    assert {name: getattr(followed, name) for name in STATE_FIELDS} == cell_state(full) != cell_state(empty)
    # A magnetometer measuring the stand-in sees the fed cell, not its own.
    at = (1.0, 300.0)
    assert SimMagnetometerPhysics(followed).clean_moment_emu(*at) == SimMagnetometerPhysics(full).clean_moment_emu(*at)


def test_before_the_first_line_the_followed_cell_is_the_local_one():
    local = _cell(0.3)
    followed = FollowedCell(local, io.StringIO(""))
    assert followed.rest_potential_V == local.rest_potential_V
    assert followed.params is local.params
    with pytest.raises(AttributeError):
        followed.no_such_attribute  # noqa: B018


def test_a_bad_line_is_reported_and_the_last_good_state_kept(capsys):
    good = cell_state(_cell(0.5))
    lines = [json.dumps(good), "not json", json.dumps({**good, "extra": 1.0}), ""]
    followed = FollowedCell(_cell(0.0), io.StringIO("\n".join(lines) + "\n")).start(wait_s=5)
    followed._thread.join(5)
    assert followed.lines == 1 and followed.rest_potential_V == good["rest_potential_V"]
    assert "cell feed" in capsys.readouterr().err


@pytest.mark.parametrize(
    "line, why",
    [
        ("{", "not JSON"),
        ("[1, 2]", "expected the fields"),
        (json.dumps(dict.fromkeys(STATE_FIELDS[:-1], 1.0)), "expected the fields"),
        (json.dumps({**dict.fromkeys(STATE_FIELDS, 1.0), "rest_potential_V": "1"}), "finite number"),
        (json.dumps({**dict.fromkeys(STATE_FIELDS, 1.0), "rest_potential_V": True}), "finite number"),
        (json.dumps(dict.fromkeys(STATE_FIELDS, 1.0)).replace("1.0", "NaN", 1), "finite number"),
        ("\x80\x04\x95cos\nsystem\n", "not JSON"),  # a pickle is text to be refused, never loaded
    ],
)
def test_parse_state_refuses_anything_but_the_state(line, why):
    with pytest.raises(ValueError, match=why):
        parse_state(line)


def test_the_mpms3_simulator_measures_the_fed_cell_and_stops_when_the_feed_ends(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # QD's client may log where it runs
    full = _cell(1.0)
    proc, address, dat = start_process(tmp_path / "fed.dat", extra=("--period", "0.2", "--averaging", "0.1"), cell=full)
    try:
        with Mpms3Client(address, name="mpms3-sim") as mpms:
            mpms.set_field(10000.0, 10000.0, "linear")
        tail, rows, deadline = DatTail(dat), [], time.monotonic() + 30
        while len(rows) < 3 and time.monotonic() < deadline:
            rows += [r for r in tail.poll() if r.has_moment and r.field_oe == pytest.approx(10000.0)]
            time.sleep(0.1)
        assert len(rows) >= 3
        row = rows[-1]
        expected = SimMagnetometerPhysics(full).clean_moment_emu(row.field_oe * 1e-4, row.temperature_k)
        own = SimMagnetometerPhysics(_cell(0.0)).clean_moment_emu(row.field_oe * 1e-4, row.temperature_k)
        sigma = SimMagnetometerPhysics(full).noise_sigma_emu(0.1)
        assert abs(row.moment_emu - expected) < 6 * sigma < abs(own - expected)
        proc.cell_feed.stop()  # the run ends: no terminate needed, the child sees its input end
        assert proc.wait(timeout=15) == 0
    finally:
        stop_process(proc)
