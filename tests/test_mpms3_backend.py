"""The MPMS3 backend (devices/backends/mpms3.py): readings from MultiVu's `.dat` rows, states, errors
naming the instrument; and, done-when, an in-situ run with the real driver on the simulator.

The file tests use a `.dat` written by the simulator's own writer and a stand-in for the MultiPyVu
client (so every case is exact); the run uses QD's MultiPyVu server in a child process, which
moves in wall time: generous deadlines, no durations asserted.
"""

from __future__ import annotations

import math
import time

import numpy as np
import psutil
import pytest
import yaml
from bluesky.run_engine import RunEngine, call_in_bluesky_event_loop

from operando.acquisition.config import load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.devices.backends.mpms3 import Mpms3Backend, field_state, temperature_state
from operando.devices.drivers.mpms3 import Mpms3Error
from operando.devices.drivers.multivu_tail import DatTail
from operando.devices.magnetometer import Magnetometer
from operando.sim_devices.wire.mpms3_datafile import SimMultiVuDataFile
from operando.storage.catalog import open_catalog
from operando.storage.runs import find_run


class FakeClient:
    """What the backend uses of ``Mpms3Client``; ``answering = False``: the server is gone."""

    name, host, port = "squid-1", "127.0.0.1", 27183

    def __init__(self):
        self.connected, self.answering = False, True
        self.field = (10000.0, "Holding (driven)")
        self.temperature = (300.0, "Stable")
        self.sent = []

    def open(self):
        if not self.answering:
            raise Mpms3Error(f"{self.name}: no MultiPyVu server answering at {self.host}:{self.port}")
        self.connected = True

    def close(self):
        self.connected = False

    def _ask(self, value):
        if not self.answering:
            self.connected = False
            raise Mpms3Error(f"{self.name} at {self.host}:{self.port} stopped answering (read the field)")
        return value

    def get_field(self):
        return self._ask(self.field)

    def get_temperature(self):
        return self._ask(self.temperature)

    def set_field(self, *args):
        self.sent.append(("field", args))

    def set_temperature(self, *args):
        self.sent.append(("temperature", args))


class ManualClock:
    speed = 1.0

    def __init__(self):
        self.now = 1.0e9

    def time(self):
        return self.now


def _run(make):
    async def go():
        return await make()

    return call_in_bluesky_event_loop(go())


@pytest.fixture
def bench(tmp_path):
    RunEngine({})
    dat = SimMultiVuDataFile(tmp_path / "cell.dat", time.time())
    client = FakeClient()
    backend = Mpms3Backend(client, DatTail(dat.path), row_timeout_s=0.3, status_period_s=0.0).open()
    return dat, client, backend


def _row(dat, end, moment, error=1e-6, field=10000.0):
    dat.append(end, 0.5, (300.0, 300.0, 300.0), (field, field, field), moment, error, 4, 1)


def test_a_reading_is_the_newest_rows_since_the_last_trigger_at_their_own_time(bench):
    dat, _client, backend = bench
    now = time.time()
    _row(dat, now - 0.1, 9e-3)  # measured before the first trigger: not this run's
    for k, m in enumerate((1.0, 2.0, 4.0)):  # stamped ahead, so that they count as after it
        _row(dat, now + 1 + k, m * 1e-3, error=(k + 1) * 1e-6)
    r = _run(lambda: backend.measure(1.5))  # the rows ending within 1.5 s of the newest: 2 and 4
    assert r.moment_emu == pytest.approx(3e-3)
    assert r.moment_err_emu == pytest.approx(math.sqrt(2e-6**2 + 3e-6**2) / 2)
    assert r.exposure_end == pytest.approx(now + 3, abs=0.05)  # stamped at the row's end
    assert r.exposure_start == pytest.approx(now + 2 - 0.5, abs=0.05)  # the earlier row's start
    assert r.field_T == pytest.approx(1.0) and r.temperature_K == pytest.approx(300.0)
    _row(dat, now + 4, 5e-3)
    assert _run(lambda: backend.measure(1.0)).moment_emu == pytest.approx(5e-3)  # only what is new


def test_no_new_row_is_an_error_naming_the_instrument(bench):
    _dat, _client, backend = bench
    with pytest.raises(Mpms3Error, match=r"squid-1: no new row in MultiVu data file .* for 0.3 s"):
        _run(lambda: backend.measure(1.0))


@pytest.mark.parametrize(
    "spoil, message",
    [
        (lambda p: p.open("a").write("," + "x," * 20 + "x\n"), r"line \d+: .* not a number"),
        (lambda p: p.write_text(p.read_text()[:200]), "shrank"),
        (lambda p: p.unlink(), "vanished"),
    ],
    ids=["malformed-row", "truncated", "vanished"],
)
def test_a_spoilt_file_is_an_error_naming_the_instrument(bench, spoil, message):
    dat, _client, backend = bench
    _row(dat, time.time() + 1, 1e-3)
    assert _run(lambda: backend.measure(1.0)).moment_emu == pytest.approx(1e-3)
    spoil(dat.path)
    with pytest.raises(Mpms3Error, match=f"squid-1: MultiVu data file .*{message}"):
        _run(lambda: backend.measure(1.0))


def test_multivu_states_map_onto_the_devices():
    assert [field_state(s) for s in ("Stable", "Holding (driven)", "Ramping", "Iterate", "Quenching")] == [
        *("stable", "stable", "ramping", "ramping", "fault")
    ]
    assert [temperature_state(s) for s in ("Stable", "Near", "Tracking", "Chasing", "Standby")] == [
        *("stable", "tracking", "tracking", "sweeping", "fault")
    ]


def test_field_is_ramping_until_at_the_set_point_then_relaxing(tmp_path):
    RunEngine({})
    clock, client = ManualClock(), FakeClient()
    dat = SimMultiVuDataFile(tmp_path / "cell.dat", time.time())
    backend = Mpms3Backend(client, DatTail(dat.path), clock, field_relax_s=300.0, status_period_s=0.0).open()
    _run(lambda: backend.set_field(2.0, 0.01))
    assert client.sent == [("field", (20000.0, 100.0, "linear"))]
    # MultiVu still says 'Holding' at the old field right after the command: not yet there.
    assert _run(backend.status)["field_state"] == "ramping"
    client.field = (20000.0, "Holding (driven)")
    status = _run(backend.status)
    assert status["field_state"] == "relaxing" and status["field_stable"] is False
    clock.now += 300.0
    status = _run(backend.status)
    assert status["field_state"] == "stable" and status["field_stable"] is True


def test_a_server_that_stops_answering_is_a_disconnection_then_reconnects(bench):
    _dat, client, backend = bench
    device = Magnetometer(backend, name="magnetometer")
    assert _run(device.status_poller.poll_once)["connected"] is True
    client.answering = False
    assert _run(device.status_poller.poll_once) == {"connected": False}  # a suspender acts on it
    assert _run(device.connected.get_value) is False
    with pytest.raises(Mpms3Error, match="squid-1.* 127.0.0.1:27183"):
        _run(backend.status)
    client.answering = True
    assert _run(device.status_poller.poll_once)["connected"] is True  # opened again


PROTOCOL = {
    "name": "mpms3_short",
    "description": "rest, one 2C cycle",
    "steps": [
        {"kind": "rest", "duration_min": 10},
        {
            "kind": "loop",
            "repeat": 1,
            "steps": [
                {"kind": "cc", "c_rate": -2, "e_min_V": 0.01, "max_duration_h": 0.75},
                {"kind": "cc", "c_rate": 2, "e_max_V": 3.0, "max_duration_h": 0.75},
            ],
        },
    ],
}


def test_in_situ_run_with_the_real_driver_stores_moment_with_each_points_echem_state(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "short.yaml").write_text(yaml.safe_dump(PROTOCOL))
    children = {p.pid for p in psutil.Process().children(recursive=True)}
    result = run_experiment(load_profile("mpms3-sim"), load_protocol(tmp_path / "short.yaml"), tmp_path, report=False)
    assert result.exit_status == "success"
    with open_catalog(tmp_path) as cat:
        run = find_run(cat.client, "-1")
        assert run.metadata["start"]["instruments"]["magnetometer"]["backend"] == "mpms3"
        s = run["magnetometer"]
        col = {k.removeprefix("magnetometer-"): np.asarray(s[k].read()) for k in s}
        t_echem = np.asarray(run["echem"]["timestamp"].read())
    assert col["moment"].size >= 5
    assert np.isfinite(col["moment"]).all() and (col["moment_err"] > 0).all()
    assert col["field"] == pytest.approx(1.0)  # the profile's field, set through MultiPyVu
    assert (np.diff(col["exposure_end"]) > 0).all()  # each frame a newer row
    # Each point carries the echem state at its own time, inside the echem record.
    assert ((col["frame-time"] >= t_echem[0]) & (col["frame-time"] <= t_echem[-1])).all()
    assert {"frame-charge", "frame-Ewe", "frame-cycle"} <= set(col)
    assert 1 in set(col["frame-cycle"]) and col["frame-charge"].min() < -0.5  # mAh, cycle 1 discharged
    # The simulator in its own process measures the run's cell: discharging the oxide as assembled
    # forms superparamagnetic Fe (charging re-forms the oxide), so the moment rises as charge is
    # taken out, far beyond the noise.
    moment_mEmu, charge = col["moment"] * 1e3, col["frame-charge"]
    assert np.ptp(moment_mEmu) > 100 * np.median(col["moment_err"]) * 1e3
    assert np.corrcoef(moment_mEmu, charge)[0, 1] < -0.95
    deadline = time.monotonic() + 30
    while {p.pid for p in psutil.Process().children(recursive=True)} - children and time.monotonic() < deadline:
        time.sleep(0.1)
    assert {p.pid for p in psutil.Process().children(recursive=True)} <= children  # simulator stopped


def test_a_row_with_multivu_failure_status_is_not_a_moment(bench):
    # Fault matrix (error): MultiVu marks the measurement failed in its status columns.
    dat, _client, backend = bench
    now = time.time()
    dat.append(now + 1, 0.5, (300.0,) * 3, (1e4,) * 3, 7e-3, 1e-6, 15, 1)  # field: General Failure
    with pytest.raises(Mpms3Error, match=r"squid-1: .*line \d+: field status 15 \(General Failure\)"):
        _run(lambda: backend.measure(1.0))
    _row(dat, now + 2, 1e-3)  # the next good row is read
    assert _run(lambda: backend.measure(1.0)).moment_emu == pytest.approx(1e-3)


def test_a_row_repeating_the_last_measurement_is_not_a_moment(bench):
    # Fault matrix (stuck): the writer repeats its last row with a new time stamp.
    dat, _client, backend = bench
    now = time.time()
    _row(dat, now + 1, 1e-3)
    assert _run(lambda: backend.measure(1.0)).moment_emu == pytest.approx(1e-3)
    lines = dat.path.read_text().splitlines()
    fields = lines[-1].split(",")
    fields[1] = repr(float(fields[1]) + 1.0)
    with open(dat.path, "a") as f:
        f.write(",".join(fields) + "\n")
    with pytest.raises(Mpms3Error, match="squid-1: .*repeats the previous row"):
        _run(lambda: backend.measure(1.0))
