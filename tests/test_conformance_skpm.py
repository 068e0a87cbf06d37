"""Conformance of every registered SKPM backend: one suite, each backend built through the
registry exactly as a run builds it (``nanonis`` through its real driver on its wire-level
simulator over loopback TCP). A backend added to the registry joins the suite by registering."""

import time

import numpy as np
import psutil
import pytest
from bluesky.run_engine import RunEngine, call_in_bluesky_event_loop
from pydantic import ValidationError

from operando.acquisition.backends import all_backends
from operando.acquisition.build import build_instruments
from operando.acquisition.config import Profile, one_instrument_profile
from operando.devices.kinds import SkpmSettings
from operando.devices.registry import Capability

MICROSCOPES = [s for s in all_backends() if s.kind == "skpm"]
DEADLINE_S = 30.0
SCAN = {"pixels": 32, "lines": 8, "line_rate_hz": 2.0, "width_m": 200e-9, "height_m": 100e-9}


def _profile(spec, settings=None) -> Profile:
    settings = settings if settings is not None else SCAN
    return one_instrument_profile("skpm", spec.name, settings, hardware=spec.address is not None, speed=200.0)


@pytest.fixture(params=MICROSCOPES, ids=lambda s: s.name)
def built(request, tmp_path):
    spec = request.param
    RunEngine({})  # the event loop the devices connect in
    instruments = build_instruments(_profile(spec), tmp_path)
    yield spec, instruments, instruments.detectors[0].device
    instruments.close()


def _run(make):
    async def go():
        return await make()

    return call_in_bluesky_event_loop(go())


def _frame(device) -> dict:
    _run(lambda: device.trigger())
    return {k.removeprefix("skpm-"): v["value"] for k, v in _run(device.read).items()}


def test_registry_entry_settings_and_capabilities(built):
    spec, _instruments, device = built
    assert spec.summary and issubclass(spec.settings, SkpmSettings)
    assert device._backend.capabilities == spec.capabilities and Capability.MAPPING in spec.capabilities


def test_describes_both_maps_with_units(built):
    _spec, _instruments, device = built
    _frame(device)
    keys = {k.removeprefix("skpm-"): v for k, v in _run(device.describe).items()}
    assert keys["cpd"]["units"] == "V" and keys["topography"]["units"] == "m"
    assert keys["exposure_start"]["units"] == keys["exposure_end"]["units"] == "s"
    config = {k.removeprefix("skpm-"): v["value"] for k, v in _run(device.read_configuration).items()}
    assert (config["pixels"], config["lines"]) == (SCAN["pixels"], SCAN["lines"])


def test_a_frame_maps_the_simulated_interface(built):
    _spec, instruments, device = built
    lab = instruments.sim_lab
    frame = _frame(device)
    shape = (SCAN["lines"], SCAN["pixels"])
    cpd, topography = np.asarray(frame["cpd"]), np.asarray(frame["topography"])
    assert cpd.shape == topography.shape == shape and np.isfinite(cpd).all() and np.isfinite(topography).all()
    assert frame["lines_done"] == SCAN["lines"] and frame["problem"] == ""
    duration = SCAN["lines"] / SCAN["line_rate_hz"]
    assert frame["exposure_end"] - frame["exposure_start"] >= 0.9 * duration  # it scanned at the set speed
    # the CPD steps across the interface by the simulator's built-in potential
    profile = cpd.mean(axis=0)
    step = profile[-4:].mean() - profile[:4].mean()
    assert step == pytest.approx(lab.skpm.built_in_potential_V(), rel=0.15)
    assert 4e-9 < np.ptp(topography) < 40e-9  # the 8 nm topographic step, with roughness


def test_misspelt_settings_are_refused_naming_the_allowed_keys(built):
    spec, _instruments, _device = built
    with pytest.raises(ValidationError) as err:
        _profile(spec, {**SCAN, "line_rat_hz": 1.0})
    text = str(err.value)
    assert "line_rat_hz" in text and "did you mean 'line_rate_hz'" in text


def _connections() -> set:
    me = psutil.Process()
    return {(c.laddr, c.raddr) for c in me.net_connections(kind="inet") if c.status != psutil.CONN_NONE and c.raddr}


def test_close_leaves_no_connection_behind(built, tmp_path):
    spec, instruments, _device = built
    instruments.close()
    instruments.close()  # idempotent
    before = _connections()
    again = build_instruments(_profile(spec), tmp_path)  # ports released
    again.close()
    again.close()
    deadline = time.monotonic() + DEADLINE_S
    while _connections() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _connections() - before == set()
