"""Conformance of every registered magnetometer backend: one suite, each backend built through the
registry exactly as a run builds it (a hardware backend through its real driver on its wire-level
simulator: ``mpms3`` is QD's MultiPyVu server in a child process plus a simulated `.dat` file).

A backend added to the registry is added to this suite by its registration alone. The MPMS3
simulator runs in wall time: waits have generous deadlines, durations are never asserted.
"""

import math
import time

import psutil
import pytest
from bluesky.run_engine import RunEngine, call_in_bluesky_event_loop
from pydantic import ValidationError

from operando.acquisition.backends import all_backends
from operando.acquisition.build import build_instruments
from operando.acquisition.config import Profile, one_instrument_profile
from operando.devices.kinds import MagnetometerSettings
from operando.devices.registry import Capability

MAGNETOMETERS = [s for s in all_backends() if s.kind == "magnetometer"]
DEADLINE_S = 60.0
FIELD_STATES = {"ramping", "relaxing", "stable", "fault"}
TEMPERATURE_STATES = {"sweeping", "tracking", "stable", "fault"}
# Backend-specific settings that keep the suite short (fast field ramps, early failures).
SETTINGS = {"mpms3": {"field_rate_T_s": 1.0, "row_timeout_s": 30.0, "status_period_s": 0.2}}


def _profile(spec, settings=None) -> Profile:
    settings = settings if settings is not None else SETTINGS.get(spec.name, {})
    return one_instrument_profile("magnetometer", spec.name, settings, hardware=spec.address is not None, speed=1.0)


@pytest.fixture(params=MAGNETOMETERS, ids=lambda s: s.name)
def built(request, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # MultiPyVu's client writes nothing here, but be sure
    spec = request.param
    RunEngine({})  # the event loop the devices connect in
    instruments = build_instruments(_profile(spec), tmp_path)
    yield spec, instruments, instruments.detectors[0].device
    instruments.close()


def _run(make):
    async def go():
        return await make()

    return call_in_bluesky_event_loop(go())


def test_registry_entry_and_declared_capabilities(built):
    spec, _instruments, device = built
    assert spec.summary and issubclass(spec.settings, MagnetometerSettings)
    assert device._backend.capabilities == spec.capabilities
    assert device.controls_field == (Capability.FIELD_CONTROL in spec.capabilities)
    assert device.controls_temperature == (Capability.TEMPERATURE_CONTROL in spec.capabilities)


def test_describes_its_readings_with_units_and_reports_its_states(built):
    _spec, _instruments, device = built
    keys = _run(device.describe)
    units = {k.removeprefix("magnetometer-"): v.get("units") for k, v in keys.items()}
    assert units["moment"] == "emu" and units["moment_err"] == "emu"
    assert units["field"] == "T" and units["field_Oe"] == "Oe" and units["temperature"] == "K"
    assert units["exposure_start"] == "s" and units["exposure_end"] == "s"
    status = _run(device.status_poller.poll_once)
    assert status["connected"] is True
    assert _run(device.connected.get_value) is True
    assert _run(device.field_state.get_value) in FIELD_STATES
    assert _run(device.temperature_state.get_value) in TEMPERATURE_STATES
    assert isinstance(_run(device.field_stable.get_value), bool)


def test_trigger_returns_a_reading(built):
    _spec, instruments, device = built
    before = instruments.clock.time()
    _run(lambda: device.trigger())
    reading = {k.removeprefix("magnetometer-"): v["value"] for k, v in _run(device.read).items()}
    assert math.isfinite(reading["moment"]) and reading["moment"] != 0.0
    assert math.isfinite(reading["moment_err"]) and reading["moment_err"] > 0
    assert reading["field_Oe"] == pytest.approx(reading["field"] * 1e4)
    assert reading["temperature"] > 0
    assert reading["exposure_start"] <= reading["exposure_end"] <= instruments.clock.time() + 1.0
    # A reading is measured after the device was made: not a row left over from earlier.
    assert reading["exposure_end"] >= before - DEADLINE_S


def test_out_of_range_setpoints_are_refused_before_anything_is_sent(built):
    _spec, _instruments, device = built
    backend = device._backend
    sent = []
    for method in ("set_field", "set_temperature"):
        if hasattr(backend, method):
            setattr(backend, method, lambda *a, method=method, **k: sent.append((method, a, k)))
    for call in (lambda: device.set_field(100.0), lambda: device.set_field(-100.0)):
        with pytest.raises(ValueError, match="magnetometer: .*(outside|does not set the field)"):
            _run(call)
    for call in (lambda: device.set_temperature(1000.0), lambda: device.set_temperature(0.01)):
        with pytest.raises(ValueError, match="magnetometer: .*(outside|does not set the temperature)"):
            _run(call)
    assert sent == []


def test_misspelt_settings_are_refused_naming_the_allowed_keys(built):
    spec, _instruments, _device = built
    with pytest.raises(ValidationError) as err:
        _profile(spec, {"averagin_s": 1.0})
    text = str(err.value)
    assert "averagin_s" in text and "did you mean 'averaging_s'" in text
    assert "allowed keys: " + ", ".join(sorted(spec.settings.model_fields)) in text


def _ours() -> tuple[set[int], set[tuple]]:
    me = psutil.Process()
    children = {p.pid for p in me.children(recursive=True)}
    sockets = {(c.laddr, c.raddr) for c in me.net_connections(kind="inet") if c.status != psutil.CONN_NONE}
    return children, sockets


def test_close_leaves_no_process_or_socket_behind(built, tmp_path):
    spec, instruments, _device = built
    instruments.close()
    instruments.close()  # idempotent
    children0, sockets0 = _ours()
    again = build_instruments(_profile(spec), tmp_path)  # ports and simulators were released
    again.close()
    again.close()
    deadline = time.monotonic() + DEADLINE_S
    while _ours()[0] - children0 and time.monotonic() < deadline:
        time.sleep(0.1)
    children, sockets = _ours()
    assert children - children0 == set()
    assert {s for s in sockets - sockets0 if s[1]} == set()  # no connection left open
