"""Conformance of every registered Raman backend: one suite, each backend built through the
registry exactly as a run builds it (a hardware backend through its real driver on its wire-level
simulator: ``ocean_hdx`` is python-seabreeze speaking OBP over loopback TCP, ``labspec`` the
LabSpec 6 remote interface). A backend added to the registry joins the suite by registering."""

import time

import numpy as np
import psutil
import pytest
from bluesky.run_engine import RunEngine, call_in_bluesky_event_loop
from pydantic import ValidationError

from operando.acquisition.backends import all_backends
from operando.acquisition.build import build_instruments
from operando.acquisition.config import Profile, one_instrument_profile
from operando.devices.kinds import RamanSettings, ShutterlessRamanSettings

SPECTROMETERS = [s for s in all_backends() if s.kind == "raman"]
DEADLINE_S = 30.0
# What a hardware backend needs from its profile (no shutter of their own: no darks).
SETTINGS = {
    "ocean_hdx": {"laser_nm": 532.0, "dark": "none"},
    "labspec": {"dark": "none"},
}
EXPOSURE_S = 2.0


def _profile(spec, settings=None) -> Profile:
    settings = (
        settings
        if settings is not None
        else {"exposure_s": EXPOSURE_S, "accumulations": 2, **SETTINGS.get(spec.name, {})}
    )
    return one_instrument_profile("raman", spec.name, settings, hardware=spec.address is not None, speed=100.0)


@pytest.fixture(params=SPECTROMETERS, ids=lambda s: s.name)
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


def _reading(device) -> dict:
    return {k.removeprefix("raman-"): v["value"] for k, v in _run(device.read).items()}


def _frame(device, exposure_s=EXPOSURE_S):
    _run(lambda: device.exposure_time.set(exposure_s))
    _run(lambda: device.trigger())
    return _reading(device)


def test_registry_entry_settings_and_capabilities(built):
    spec, _instruments, device = built
    assert spec.summary and issubclass(spec.settings, RamanSettings)
    assert device._backend.capabilities == spec.capabilities


def test_describes_a_spectrum_on_a_raman_shift_axis_with_units(built):
    _spec, _instruments, device = built
    _frame(device)  # an array's shape is described from its value: the frame's, as a run's first event
    keys = _run(device.describe)
    units = {k.removeprefix("raman-"): v.get("units") for k, v in keys.items()}
    assert units["spectrum"] == "counts" and units["dark"] == "counts"
    assert units["exposure_start"] == "s" and units["exposure_end"] == "s"
    config = {k.removeprefix("raman-"): v for k, v in _run(device.read_configuration).items()}
    axis = np.asarray(config["raman_shift"]["value"])
    assert axis.size == keys["raman-spectrum"]["shape"][0] > 100
    assert np.all(np.diff(axis) > 0) or np.all(np.diff(axis) < 0)
    assert 400 < config["laser_wavelength"]["value"] < 1100  # nm
    assert _run(device.status_poller.poll_once)["connected"] is True


def test_a_frame_shows_the_simulators_bands_and_grows_with_exposure(built):
    _spec, instruments, device = built
    lab = instruments.sim_lab
    config = {k.removeprefix("raman-"): v for k, v in _run(device.read_configuration).items()}
    axis = np.asarray(config["raman_shift"]["value"])
    short = _frame(device, EXPOSURE_S)
    assert short["exposure_start"] < short["exposure_end"] <= instruments.clock.time() + 1.0
    spectrum = np.asarray(short["spectrum"])
    assert spectrum.shape == axis.shape and np.isfinite(spectrum).all()
    assert isinstance(short["saturated"], (bool, np.bool_)) and not short["saturated"]
    # The strongest band of the simulated cell is where the physics puts it (within 3 pixels).
    name, centre, _fwhm, _ = max(lab.raman.bands(), key=lambda b: b[3])
    window = (axis > 300) & (axis < 1800)  # away from the laser's edge-filter tail
    peak = axis[window][np.argmax(spectrum[window])]
    assert abs(peak - centre) < 3 * np.median(np.abs(np.diff(axis))), name
    long = np.asarray(_frame(device, 2 * EXPOSURE_S)["spectrum"])
    band = np.abs(axis - centre) < 5
    assert long[band].sum() == pytest.approx(2 * spectrum[band].sum(), rel=0.15)


def test_misspelt_settings_are_refused_naming_the_allowed_keys(built):
    spec, _instruments, _device = built
    with pytest.raises(ValidationError) as err:
        _profile(spec, {**SETTINGS.get(spec.name, {}), "exposur_s": 1.0})
    text = str(err.value)
    assert "exposur_s" in text and "did you mean 'exposure_s'" in text


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


def test_a_backend_without_a_shutter_takes_no_darks_and_says_so(built):
    spec, _instruments, _device = built
    if not issubclass(spec.settings, ShutterlessRamanSettings):
        assert spec.settings(exposure_s=1.0).dark == "on_exposure_change"  # it can close its shutter
        return
    needs = {k: v for k, v in SETTINGS.get(spec.name, {}).items() if k != "dark"}
    assert spec.settings(**needs).dark == "none"  # the default it can keep
    with pytest.raises(ValidationError) as err:
        _profile(spec, {**needs, "dark": "each_frame"})
    text = str(err.value)
    assert "instruments.raman.settings" in text and "dark: 'each_frame' needs the laser shutter closed" in text
    assert spec.settings.shutterless in text
