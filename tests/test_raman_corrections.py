"""Raman corrections on the simulated spectrometer: darks, cosmic rays across accumulations,
saturation; the dark rules; the settings; and the corrected frames in an operando run."""

import asyncio
import dataclasses
import logging

import numpy as np
import pytest
import yaml
from bluesky.run_engine import call_in_bluesky_event_loop

from operando.acquisition.config import PROFILES_DIR, ConfigError, load_profile
from operando.acquisition.session import OperandoRunEngine
from operando.devices.kinds import DETECTOR_KINDS, RamanSettings
from operando.devices.potentiostat import Potentiostat
from operando.devices.raman import RamanSpectrometer
from operando.devices.raman_corrections import Dark, remove_cosmic_rays, saturated, subtract_dark
from operando.devices.techniques import ConstantCurrent, Limits, OpenCircuit, ScheduledStep
from operando.plans.operando import DetectorSchedule, operando_cycling
from operando.sim_devices.backends.detectors import SimRamanBackend
from operando.sim_devices.backends.potentiostat import SimPotentiostatBackend
from operando.sim_devices.lab import build_sim_lab

T0 = 1_800_000_000.0
READ_NOISE = 3.0


def lab(seed=0, soc=0.3):
    return build_sim_lab("fe_li2o", speed=1e6, soc=soc, start_time=T0, clock="virtual", seed=seed)


class Recording:
    """A backend wrapper: counts dark and light acquisitions; adds ``spikes`` to light frames
    ((accumulation, first pixel, width, counts) each) as a cosmic ray would."""

    def __init__(self, inner, spikes=()):
        self._inner = inner
        self.spikes = list(spikes)
        self.darks, self.lights = 0, 0
        self.dark_windows = []

    def __getattr__(self, name):
        return getattr(self._inner, name)

    async def acquire(self, exposure_s, accumulations, dark=False):
        r = await self._inner.acquire(exposure_s, accumulations, dark=dark)
        if dark:
            self.darks += 1
            self.dark_windows.append((r.exposure_start, r.exposure_end))
            return r
        self.lights += 1
        frames = r.frames.copy()
        for acc, pixel, width, counts in self.spikes:
            frames[acc, pixel : pixel + width] += counts
        return dataclasses.replace(r, counts=frames.sum(axis=0), frames=frames)


def device(the_lab, exposure_s=10.0, accumulations=3, spikes=(), cosmic_rays=True, **kw):
    if not cosmic_rays:
        the_lab.raman.COSMIC_RATE_S = 0.0  # the physics' own spikes off: only the injected ones
    backend = Recording(SimRamanBackend(the_lab), spikes)
    return RamanSpectrometer(backend, exposure_s, accumulations, name="raman", **kw), backend


async def frame(dev):
    await dev.trigger()
    return {k.removeprefix("raman-"): v["value"] for k, v in (await dev.read()).items()}


def expected_counts(the_lab, exposure_s, accumulations):
    """Fluorescence + bands (+ the laser line's tail) the spectrum should hold, and its noise:
    the light's shot noise and read noise, and the dark's, for each accumulation."""
    physics = the_lab.raman
    expected = physics.clean_rate() * exposure_s * accumulations
    dark_var = physics.DARK_COUNTS_S * exposure_s + physics.READ_NOISE_COUNTS**2
    return expected, np.sqrt(expected + 2 * accumulations * dark_var)


def band_height(shift, spectrum, centre, fwhm):
    """Peak counts above a straight baseline through the band's wings (3 FWHM away)."""
    peak = spectrum[np.abs(shift - centre) < 2.0].mean()
    wings = spectrum[(np.abs(shift - centre) > 3 * fwhm - 4) & (np.abs(shift - centre) < 3 * fwhm + 4)].mean()
    return peak - wings


# ---- dark subtraction ----------------------------------------------------------------------------
def test_dark_subtraction_leaves_the_fluorescence_and_the_bands():
    the_lab = lab()
    dev, backend = device(the_lab, 10.0, 3, dark_rule="each_frame")
    expected, sigma = expected_counts(the_lab, 10.0, 3)

    async def go():
        await dev.connect()
        return [await frame(dev) for _ in range(4)]

    frames = asyncio.run(go())
    assert backend.darks == 4 and backend.lights == 4
    dark_level = the_lab.raman.DARK_COUNTS_S * 10.0 * 3  # 60 counts a pixel
    for f in frames:
        z = (f["spectrum"] - expected) / sigma
        # Left in, the dark would sit 60 counts (~0.5-1 sigma a pixel) above: mean z ~ +0.6.
        assert abs(z.mean()) < 0.12 and 0.9 < z.std() < 1.1
        assert f["dark"].mean() == pytest.approx(dark_level, abs=1.0)
        assert f["dark"].std() < 3 * np.sqrt(dark_level + 3 * READ_NOISE**2)  # no bands in a dark
        assert not f["saturated"]


def test_subtract_dark_refuses_a_dark_of_another_exposure():
    dark = Dark(np.full(4, 20.0), exposure_s=1.0, accumulations=2)
    np.testing.assert_array_equal(subtract_dark(np.full(4, 100.0), dark, 1.0, 2), np.full(4, 80.0))
    with pytest.raises(ValueError, match="dark taken at 1 s x 2"):
        subtract_dark(np.full(4, 100.0), dark, 2.0, 2)
    with pytest.raises(ValueError):
        subtract_dark(np.full(4, 100.0), dark, 1.0, 3)


# ---- cosmic rays ---------------------------------------------------------------------------------
def test_a_cosmic_ray_in_one_accumulation_is_removed_and_counted_and_the_bands_are_kept():
    the_lab = lab()
    shift = the_lab.raman.raman_shift_cm1
    bands = {name: (centre, fwhm) for name, centre, fwhm, _ in the_lab.raman.bands()}
    on_band = int(np.argmin(np.abs(shift - bands["M-O-C"][0])))  # the top of a band
    off_band = int(np.argmin(np.abs(shift - 1200.0)))  # between bands
    spikes = [(1, off_band, 2, 800.0), (2, on_band, 3, 1500.0)]
    dev, backend = device(the_lab, 10.0, 3, spikes=spikes, cosmic_rays=False, dark_rule="on_exposure_change")
    expected, sigma = expected_counts(the_lab, 10.0, 3)

    async def go():
        await dev.connect()
        return await frame(dev)

    f = asyncio.run(go())
    assert f["cosmic_pixels"] == 5  # the 2 + 3 pixels hit, and nothing else
    z = (f["spectrum"] - expected) / sigma
    # The spikes are gone: those pixels hold what the other accumulations saw.
    assert np.all(np.abs(z[off_band : off_band + 2]) < 5)
    assert np.all(np.abs(z[on_band : on_band + 3]) < 5)
    # The bands are untouched: every band's height is what the physics puts there.
    for name, (centre, fwhm) in bands.items():
        got = band_height(shift, f["spectrum"], centre, fwhm)
        want = band_height(shift, expected, centre, fwhm)
        assert got == pytest.approx(want, rel=0.03), name

    # Without removal, the spike stays in the spectrum (so the check above can fail).
    the_lab = lab()
    dev, _ = device(the_lab, 10.0, 3, spikes=spikes, cosmic_rays=False, cosmic_ray_removal=False)
    raw = asyncio.run(go())
    assert raw["cosmic_pixels"] == 0
    assert raw["spectrum"][on_band] - f["spectrum"][on_band] == pytest.approx(1500.0, abs=6 * sigma[on_band])


def test_no_false_removals_without_cosmic_rays_even_on_band_peaks():
    the_lab = lab(seed=4)
    physics = the_lab.raman
    physics.COSMIC_RATE_S = 0.0
    shift = physics.raman_shift_cm1
    peaks = np.zeros(shift.size, bool)
    for _, centre, fwhm, _ in physics.bands():
        peaks |= np.abs(shift - centre) < fwhm
    replaced = 0
    for accumulations, exposure_s, dark in [(2, 10.0, False), (3, 10.0, False), (2, 10.0, True), (3, 1.0, False)]:
        for _ in range(150):
            frames = physics.frames(exposure_s, accumulations, dark=dark)
            cleaned, n = remove_cosmic_rays(frames, 6.0, READ_NOISE)
            replaced += n
            assert n == 0, (accumulations, exposure_s, dark, np.flatnonzero((cleaned != frames).any(axis=0)))
    assert replaced == 0 and peaks.sum() > 100  # the band peaks were among the pixels checked


def test_one_accumulation_is_left_as_it_is():
    frames = np.array([[10.0, 5000.0, 10.0]])
    cleaned, n = remove_cosmic_rays(frames)
    assert n == 0 and np.array_equal(cleaned, frames)
    with pytest.raises(ValueError):
        remove_cosmic_rays(np.zeros(3))


def test_the_physics_cosmic_rays_are_caught():
    # 60 s of 3 x 20 s accumulations: ~1.2 spikes of 200-3000 counts per acquisition.
    the_lab = lab(seed=7)
    physics = the_lab.raman
    expected = (physics.clean_rate() + physics.DARK_COUNTS_S) * 20.0
    found = missed = 0
    for _ in range(100):
        frames = physics.frames(20.0, 3)
        spikes = frames - expected > 10 * np.sqrt(expected + READ_NOISE**2)  # unmistakable ones
        cleaned, _ = remove_cosmic_rays(frames, 6.0, READ_NOISE)
        found += np.count_nonzero(spikes & (cleaned != frames))
        missed += np.count_nonzero(spikes & (cleaned == frames))
    assert found >= 100 and missed == 0


# ---- saturation ----------------------------------------------------------------------------------
def test_a_long_exposure_saturates_flagged_and_kept(caplog):
    the_lab = lab()
    dev, _ = device(the_lab, 10.0, 2, dark_rule="on_exposure_change")

    async def go():
        await dev.connect()
        short = await frame(dev)
        await dev.exposure_time.set(120.0)  # ~1400 counts/s at the strongest band: > 65535
        long = await frame(dev)
        return short, long

    with caplog.at_level(logging.WARNING, logger="operando.devices.raman"):
        short, long = asyncio.run(go())
    assert not short["saturated"] and long["saturated"]
    assert long["spectrum"].shape == (1024,)  # the frame is kept
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert "raman" in warning.getMessage() and "saturated" in warning.getMessage()
    assert sum("saturated" in r.getMessage() for r in caplog.records) == 1  # the long frame only
    assert saturated(np.array([[1.0, 65535.0], [2.0, 3.0]]), 65535.0)
    assert not saturated(np.array([[1.0, 65534.0]]), 65535.0)


# ---- dark rules ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "rule, darks_at",
    [
        ("each_frame", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        ("every_n", [1, 4, 6, 9]),  # every 3rd frame, and anew when the exposure changes
        ("on_exposure_change", [1, 6]),
        ("none", []),
    ],
)
def test_each_dark_rule_takes_darks_exactly_when_it_says(rule, darks_at):
    the_lab = lab()
    dev, backend = device(the_lab, 1.0, 2, dark_rule=rule, dark_every_n=3)

    async def go():
        await dev.connect()
        taken, frames = [], []
        for i in range(1, 11):
            if i == 6:
                await dev.exposure_time.set(2.0)  # the exposure changes in the middle
            before = backend.darks
            f = await frame(dev)
            if backend.darks > before:
                taken.append(i)
            frames.append(f)
        return taken, frames

    taken, frames = asyncio.run(go())
    assert taken == darks_at and backend.lights == 10
    for i, f in enumerate(frames, start=1):
        exposure = 1.0 if i < 6 else 2.0
        assert f["exposure_end"] - f["exposure_start"] == pytest.approx(2 * exposure)  # the light's own
        if rule == "none":
            assert not f["dark"].any()
        else:
            assert f["dark"].mean() == pytest.approx(2.0 * exposure * 2, abs=0.5)  # 2 counts/s x 2 acc.
    if rule == "on_exposure_change":  # one dark kept for frames 1-5, another for 6-10
        assert all(np.array_equal(frames[0]["dark"], f["dark"]) for f in frames[:5])
        assert not np.array_equal(frames[0]["dark"], frames[5]["dark"])
    # every dark was taken before its frame, outside the frame's exposure window
    lights = [(f["exposure_start"], f["exposure_end"]) for f in frames]
    for start, end in backend.dark_windows:
        assert not any(s < end and start < e for s, e in lights)


def test_a_new_run_takes_its_own_dark_and_accumulations_count_as_a_change():
    the_lab = lab()
    dev, backend = device(the_lab, 1.0, 2, dark_rule="on_exposure_change")

    async def go():
        await dev.connect()
        await frame(dev)
        await frame(dev)
        await dev.accumulations.set(3)
        await frame(dev)
        await dev.stage()
        await dev.unstage()
        await frame(dev)

    asyncio.run(go())
    assert backend.darks == 3 and backend.lights == 4


# ---- settings ------------------------------------------------------------------------------------
def _load_with(tmp_path, **settings):
    data = yaml.safe_load((PROFILES_DIR / "sim.yaml").read_text())
    data["instruments"]["raman"].setdefault("settings", {}).update(settings)
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_profile(path)


@pytest.mark.parametrize(
    "settings, expected",
    [
        ({"drak": "none"}, "instruments.raman.settings.drak: unknown key; did you mean 'dark'?"),
        ({"dark": "sometimes"}, "instruments.raman.settings.dark: Input should be 'each_frame', 'every_n'"),
        ({"dark_every_n": 0}, "instruments.raman.settings.dark_every_n: Input should be greater than 0"),
        ({"cosmic_threshold_sigma": 1}, "instruments.raman.settings.cosmic_threshold_sigma: Input should be"),
        ({"laser_power_mW": -5}, "instruments.raman.settings.laser_power_mW: Input should be greater than 0"),
        ({"cosmic_ray_removal": "maybe"}, "instruments.raman.settings.cosmic_ray_removal:"),
    ],
)
def test_raman_settings_refuse_misspellings_and_bad_values_naming_the_key(tmp_path, settings, expected):
    with pytest.raises(ConfigError) as info:
        _load_with(tmp_path, **settings)
    assert expected in str(info.value)


def test_settings_reach_the_device(tmp_path):
    profile = _load_with(tmp_path, dark="every_n", dark_every_n=4, laser_power_mW=12.5, cosmic_threshold_sigma=8)
    settings = RamanSettings(**profile.instruments["raman"].settings)
    assert RamanSettings().dark == "on_exposure_change" and RamanSettings().cosmic_ray_removal
    dev = DETECTOR_KINDS["raman"].make_device(SimRamanBackend(lab()), settings, "raman")

    async def go():
        await dev.connect()
        return {k.removeprefix("raman-"): v["value"] for k, v in (await dev.read_configuration()).items()}

    config = asyncio.run(go())
    assert config["dark_rule"] == "every_n" and config["dark_every_n"] == 4
    assert config["laser_power"] == 12.5 and config["cosmic_threshold_sigma"] == 8.0
    assert config["cosmic_ray_removal"] is True and config["accumulations"] == 2
    with pytest.raises(ValueError, match="dark rule must be one of"):
        RamanSpectrometer(SimRamanBackend(lab()), dark_rule="sometimes", name="raman")


# ---- in an operando run ---------------------------------------------------------------------------
def test_every_stored_frame_is_corrected_and_carries_the_echem_state(tmp_path):
    RE = OperandoRunEngine({})
    the_lab = build_sim_lab("fe_li2o", active_mass_g=1e-3, speed=2000.0, sample_interval_s=1.0, clock="virtual")
    pstat_backend = SimPotentiostatBackend(the_lab)
    pstat = Potentiostat(pstat_backend, Limits(e_min_V=0.01, e_max_V=3.0, i_max_A=0.01), tmp_path, name="potentiostat")
    settings = RamanSettings(
        exposure_s=5.0, accumulations=3, dark="every_n", dark_every_n=2, laser_power_mW=10.0, trigger="hardware"
    )
    backend = Recording(SimRamanBackend(the_lab, trigger_source=pstat_backend))
    raman = DETECTOR_KINDS["raman"].make_device(backend, settings, "raman")
    for d in (pstat, raman):
        call_in_bluesky_event_loop(d.connect())
    i = the_lab.cell.params.c_rate_current_A(2.0)
    steps = [
        ScheduledStep(technique=OpenCircuit(duration_s=120), cycle=0, step=1),
        ScheduledStep(technique=ConstantCurrent(current_A=i, max_duration_s=900, e_max_V=3.0), cycle=1, step=2),
    ]
    docs = []
    plan = operando_cycling(
        pstat,
        steps,
        [DetectorSchedule.every(raman, 120.0, "raman")],
        the_lab.clock,
        capacity_mAh=the_lab.cell.params.nominal_capacity_mAh,
    )
    RE(plan, lambda n, d: docs.append((n, d)))
    assert docs[-1][1]["exit_status"] == "success"
    (descriptor,) = [d for n, d in docs if n == "descriptor" and d["name"] == "raman"]
    events = [d for n, d in docs if n == "event" and d["descriptor"] == descriptor["uid"]]
    assert len(events) >= 6
    keys = descriptor["data_keys"]
    assert keys["raman-spectrum"]["shape"] == [1024] and keys["raman-dark"]["shape"] == [1024]
    assert keys["raman-saturated"]["dtype"] == "boolean" and keys["raman-cosmic_pixels"]["dtype"] == "integer"
    config = descriptor["configuration"]["raman"]["data"]
    assert config["raman-dark_rule"] == "every_n" and config["raman-laser_power"] == 10.0
    assert len(config["raman-raman_shift"]) == 1024
    _, echem = pstat.history.since(0)
    for e in events:
        data = e["data"]
        assert len(data["raman-spectrum"]) == 1024 and len(data["raman-dark"]) == 1024
        assert data["raman-saturated"] is False and data["raman-cosmic_pixels"] >= 0
        assert np.mean(data["raman-dark"]) == pytest.approx(2.0 * 5.0 * 3, abs=1.0)
        start, end = data["raman-exposure_start"], data["raman-exposure_end"]
        assert end - start == pytest.approx(15.0)  # the light frame's window, not its dark's
        assert np.isfinite(data["raman-trigger_instrument_time"])  # started on the trigger edge
        mid = data["frame-time"]
        assert mid == pytest.approx(0.5 * (start + end))
        assert data["frame-Ewe"] == pytest.approx(np.interp(mid, echem["timestamp"], echem["Ewe"]), abs=1e-9)
    assert backend.darks == (len(events) + 1) // 2  # every 2nd frame
    assert any(e["data"]["frame-step"] == 2 and e["data"]["frame-I"] > 0 for e in events)
