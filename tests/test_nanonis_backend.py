"""The `nanonis` SKPM backend under the SKPM device, on the Nanonis simulator: a frame with both
channels; a scan that stalls comes back partial — its finished lines kept, flagged with the
command that failed — and is stored so; the controller's refusal fails the frame naming the
command; a channel name the controller does not have is refused at connect, listing its own."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from bluesky.run_engine import call_in_bluesky_event_loop

from operando.devices.backends.nanonis import NanonisSettings, NanonisSkpmBackend
from operando.devices.drivers.nanonis import NanonisClient, NanonisError
from operando.devices.skpm import Skpm
from operando.sim_devices.lab import build_sim_lab
from operando.sim_devices.wire.nanonis_server import NanonisServer


@pytest.fixture
def bench():
    from bluesky import RunEngine

    RunEngine({})  # the event loop the device runs in
    lab = build_sim_lab("fe_li2o", 1e-3, speed=500.0, soc=0.5, seed=5)
    with NanonisServer(lab.skpm, lab.clock) as server:
        yield lab, server


def _device(server, lab, **settings):
    s = NanonisSettings(period_s=60, **settings)
    backend = NanonisSkpmBackend(NanonisClient.from_address(server.address, s.timeout_s, "skpm"), s, lab.clock).open()
    device = Skpm(backend, s.pixels, s.lines, s.width_m, s.height_m, s.line_rate_hz, name="skpm")
    call_in_bluesky_event_loop(device.connect())
    return backend, device


def _frame(device) -> dict:
    async def go():
        await device.trigger()
        return {k: v["value"] for k, v in (await device.read()).items()}

    return call_in_bluesky_event_loop(go())


def test_a_frame_has_both_channels_and_the_kelvin_controller_on(bench):
    lab, server = bench
    backend, device = _device(server, lab, pixels=32, lines=8, bias_limits_V=(-1.5, 1.5))
    frame = _frame(device)
    assert frame["skpm-cpd"].shape == frame["skpm-topography"].shape == (8, 32)
    assert frame["skpm-lines_done"] == 8 and frame["skpm-problem"] == ""
    c = server.controller
    assert c.kelvin_on and c.kelvin_limits == pytest.approx((1.5, -1.5)) and c.line_time_s == pytest.approx((0.5, 0.5))
    cpd = frame["skpm-cpd"]
    assert np.ptp(cpd.mean(axis=0)) == pytest.approx(lab.skpm.built_in_potential_V(), rel=0.1)
    # what the backend set up is recorded with the run's configuration, with units
    config = call_in_bluesky_event_loop(device.read_configuration())
    described = call_in_bluesky_event_loop(device.describe_configuration())
    assert config["skpm-bias_limit_high"]["value"] == 1.5 and described["skpm-bias_limit_high"]["units"] == "V"
    assert config["skpm-modulation_frequency"]["value"] == 70e3 and config["skpm-cpd_channel"]["value"] == "Bias (V)"
    backend.close()


def test_a_stalled_scan_is_kept_partial_and_flagged(bench, caplog):
    lab, server = bench
    backend, device = _device(server, lab, pixels=16, lines=12, timeout_s=1.0)
    server.controller.stall_after_lines = 5
    with caplog.at_level(logging.ERROR):
        frame = _frame(device)
    assert frame["skpm-lines_done"] == 5
    assert "Scan.WaitEndOfScan: the scan did not end" in frame["skpm-problem"]
    cpd = frame["skpm-cpd"]
    assert np.isfinite(cpd[:5]).all() and np.isnan(cpd[5:]).all()
    assert "partial map, 5 of 12 lines kept" in caplog.text
    assert not server.controller.scanning  # the backend stopped it
    server.controller.stall_after_lines = None
    assert _frame(device)["skpm-lines_done"] == 12  # the next frame is whole again
    backend.close()


def test_a_refused_command_fails_the_frame_naming_it(bench):
    lab, server = bench
    backend, device = _device(server, lab, pixels=32, lines=8)
    server.controller.scanning = True  # a scan someone else started: the frame cannot be set
    with pytest.raises(NanonisError, match=r"skpm at .*: Scan.FrameSet failed: not while a scan runs"):
        _frame(device)
    server.controller.scanning = False
    backend.close()


def test_an_unknown_channel_is_refused_at_connect(bench):
    lab, server = bench
    with pytest.raises(ValueError, match=r"settings.cpd_channel: no signal 'CPD \(V\)' \(the controller has: Current"):
        _device(server, lab, cpd_channel="CPD (V)")


def test_pixels_must_be_a_multiple_of_16():
    with pytest.raises(ValueError, match="multiple of 16"):
        NanonisSettings(period_s=60, pixels=40)
    with pytest.raises(ValueError, match=r"bias_limits_V must be \[low, high\]"):
        NanonisSettings(period_s=60, bias_limits_V=(1.0, -1.0))


@pytest.mark.parametrize(
    "fault, said",
    [
        ("garbled", "garbled command name"),
        ("short", "body too short"),
        ("silent", "no reply in"),
        ("error", "failed: simulated controller error"),
    ],
)
def test_a_broken_reply_mid_scan_keeps_the_finished_lines_flagged(bench, fault, said):
    lab, server = bench
    backend, device = _device(server, lab, pixels=16, lines=12, timeout_s=1.0)
    server.controller.stall_after_lines = 5
    server.faults["Scan.WaitEndOfScan"] = fault
    frame = _frame(device)
    assert frame["skpm-lines_done"] == 5
    assert "Scan.WaitEndOfScan" in frame["skpm-problem"] and said in frame["skpm-problem"]
    assert np.isfinite(frame["skpm-cpd"][:5]).all() and np.isnan(frame["skpm-cpd"][5:]).all()
    assert not server.controller.scanning
    backend.close()


def test_backward_and_amplitude_maps_and_settings_a_plan_changes(bench):
    lab, server = bench
    channels = ["Kelvin Amplitude (V)", "Phase (deg)"]
    backend, device = _device(server, lab, pixels=16, lines=4, backward=True, extra_channels=channels)
    frame = _frame(device)
    for key in ("skpm-topography_backward", "skpm-cpd_backward", "skpm-kelvin_amplitude", "skpm-phase"):
        assert frame[key].shape == (4, 16) and np.isfinite(frame[key]).all()
    assert not np.array_equal(frame["skpm-cpd_backward"], frame["skpm-cpd"])  # its own pass, own noise
    units = {k: v.get("units") for k, v in call_in_bluesky_event_loop(device.describe()).items()}
    assert units["skpm-kelvin_amplitude"] == "V" and units["skpm-phase"] == "deg"
    assert units["skpm-topography_backward"] == "m"
    # a plan changes the Kelvin controller and the frame between frames; only the changes are sent
    c = server.controller
    sent = len(c.commands)

    async def change():
        await device.kelvin_setpoint.set(0.05)
        await device.centre_x.set(1e-6)

    call_in_bluesky_event_loop(change())
    _frame(device)
    new = c.commands[sent:]
    assert "KelvinCtrl.SetpntSet" in new and "KelvinCtrl.GainSet" not in new
    assert c.kelvin_setpoint == pytest.approx(0.05) and c.frame[0] == pytest.approx(1e-6)

    async def too_high():
        await device.bias_limit_low.set(5.0)  # above the high limit

    call_in_bluesky_event_loop(too_high())
    with pytest.raises(ValueError, match="bias limits must be low < high"):
        _frame(device)
    assert c.kelvin_limits == pytest.approx((2.0, -2.0))  # nothing was sent
    backend.close()


def test_a_down_scan_reports_its_lines_from_the_top_and_keeps_them_partial_from_the_top(bench):
    lab, server = bench
    backend, device = _device(server, lab, pixels=16, lines=10, timeout_s=1.0)

    async def down():
        await device.scan_direction.set("down")

    call_in_bluesky_event_loop(down())
    whole = _frame(device)
    rows = [line.row for line in device.drain_lines()]
    assert rows == list(range(9, -1, -1)) and whole["skpm-lines_done"] == 10
    assert server.controller.scan_up is False
    server.controller.stall_after_lines = 4
    partial = _frame(device)
    assert partial["skpm-lines_done"] == 4
    cpd = partial["skpm-cpd"]
    assert np.isfinite(cpd[6:]).all() and np.isnan(cpd[:6]).all()  # the top four rows, scanned first
    assert [line.row for line in device.drain_lines()] == [9, 8, 7, 6]
    backend.close()


def test_extra_channels_need_names_that_can_be_stored():
    with pytest.raises(ValueError, match="cannot be stored as 'cpd'"):
        NanonisSettings(period_s=60, extra_channels=["CPD (V)"])
    with pytest.raises(ValueError, match="two channels would be stored under one name"):
        NanonisSettings(period_s=60, extra_channels=["Phase (deg)", "phase (rad)"])


def _freeze_frame_data(server, after_first_grab: bool):
    """The controller's Scan.FrameDataGrab stuck (the fault matrix's ``stuck``): from ``freeze()``
    on, each grab repeats the last reply it gave before (from its first reply on, with
    ``after_first_grab``)."""
    grab = server.controller._handlers["Scan.FrameDataGrab"]
    last, state = {}, {"frozen": after_first_grab}

    def stuck(r):
        key = r.body
        if state["frozen"] and key in last:
            r.u32(), r.u32()  # the request's arguments, read as the controller does
            return last[key]
        last[key] = grab(r)
        return last[key]

    server.controller._handlers["Scan.FrameDataGrab"] = stuck
    return lambda: state.update(frozen=True)


def test_a_stuck_controller_repeating_the_last_frame_fails_the_frame_and_reports_no_line(bench):
    lab, server = bench
    backend, device = _device(server, lab, pixels=16, lines=4)
    freeze = _freeze_frame_data(server, after_first_grab=False)
    assert _frame(device)["skpm-lines_done"] == 4
    device.drain_lines()
    freeze()
    with pytest.raises(NanonisError, match=r"skpm at .*: Scan.FrameDataGrab returned the last frame's maps again"):
        _frame(device)
    assert device.drain_lines() == []  # none of the old lines stored as the new frame's
    backend.close()


def test_stale_data_after_the_scan_ended_is_kept_partial_and_flagged(bench):
    lab, server = bench
    # 8 lines of 100 s (0.2 s wall each): the first grab, 1 s in, finds about 5 done
    backend, device = _device(server, lab, pixels=16, lines=8, line_rate_hz=0.01)
    _freeze_frame_data(server, after_first_grab=True)
    frame = _frame(device)
    assert 0 < frame["skpm-lines_done"] < 8
    assert "Scan.FrameDataGrab: the scan ended but only" in frame["skpm-problem"]
    done = frame["skpm-lines_done"]
    assert np.isfinite(frame["skpm-cpd"][:done]).all() and np.isnan(frame["skpm-cpd"][done:]).all()
    backend.close()
