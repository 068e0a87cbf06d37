"""Raman spectrometer device: one corrected spectrum per trigger, on a Raman-shift axis.

Each trigger acquires ``accumulations`` exposures of ``exposure_time`` and reads them as one
frame of the stream. Readbacks: ``spectrum`` (counts, hinted: the one to plot) — the summed
accumulations, cosmic rays removed across accumulations, minus the dark; ``dark`` (counts, the
dark that was subtracted, summed over its accumulations; zeros with the rule ``none``);
``saturated`` (a pixel of an accumulation reached the detector's full scale: flagged and logged,
never dropped); ``cosmic_pixels`` (pixels replaced by the cosmic-ray removal in this frame's
accumulations; 0 when it is off or with one accumulation, see ``raman_corrections``); the
exposure window (``exposure_start``/``exposure_end``, experiment clock) and, hardware-triggered,
the potentiostat's time of the edge. The raw sum is not stored: ``spectrum + dark`` is it at
every pixel the cosmic-ray removal left alone (``cosmic_pixels`` of them were replaced), and a
third array per frame would add a third to the stream's size (8 kB a frame at 1024 pixels).

Darks (``dark_rule``): the device takes a dark — the same exposure and accumulations with the
laser shutter closed (``acquire(..., dark=True)``), software-timed, so it never takes the
potentiostat's trigger edge meant for the frame — before a frame when the rule says so, and
keeps it for the next frames otherwise: ``each_frame``; ``every_n`` (the first frame, then every
``dark_every_n``-th); ``on_exposure_change`` (the first frame, then whenever the exposure or the
accumulations changed since the dark); ``none`` (nothing subtracted). A dark taken at another
exposure or accumulations is never subtracted: ``every_n`` also takes a new one when they
change. The dark's own time is not the frame's: the exposure window stays the light frame's.
Staging forgets the dark, so every run takes its own. A dark is cleaned of cosmic rays as the
frame is (a cosmic ray left in a kept dark would be a dip in every spectrum it is subtracted
from).

The laser interlock is left to the backend (it refuses exposures while open) and to the
suspenders watching ``interlock_closed``; no backend reports its shutter, so there is no
shutter health signal.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np
from ophyd_async.core import (
    Array1D,
    AsyncStatus,
    StandardReadable,
    soft_signal_r_and_setter,
    soft_signal_rw,
)
from ophyd_async.core import StandardReadableFormat as Format

from .raman_corrections import DEFAULT_THRESHOLD_SIGMA, Dark, remove_cosmic_rays, saturated_pixels, subtract_dark
from .status import PolledStatus, StatusPoller

log = logging.getLogger(__name__)

DARK_RULES = ("each_frame", "every_n", "on_exposure_change", "none")


def raman_shift_cm1(wavelength_nm, laser_nm: float) -> np.ndarray:
    """Stokes Raman shift (cm-1) of each wavelength (nm) for a laser at ``laser_nm``."""
    return 1e7 / float(laser_nm) - 1e7 / np.asarray(wavelength_nm, float)


@dataclass(frozen=True)
class SpectrumReading:
    exposure_start: float  # experiment-clock seconds since the epoch
    exposure_end: float
    counts: np.ndarray  # raw counts summed over the accumulations: frames.sum(axis=0)
    # Hardware-triggered: the potentiostat's own time of the trigger edge that started it.
    trigger_instrument_time: float = math.nan
    # accumulations x pixels, raw counts, one row per accumulation; None: the instrument gives
    # only the sum, taken as one frame (then no cosmic-ray removal is possible)
    frames: Optional[np.ndarray] = None
    full_scale: float = math.inf  # counts at which a pixel of one frame saturates

    def __post_init__(self):
        counts = np.asarray(self.counts, dtype=np.float64)
        frames = counts[None, :] if self.frames is None else np.asarray(self.frames, dtype=np.float64)
        if frames.ndim != 2 or frames.shape[1] != counts.size:
            raise ValueError(f"frames must be accumulations x {counts.size} pixels, got shape {frames.shape}")
        object.__setattr__(self, "frames", frames)


def accumulated_reading(
    name: str, start: float, end: float, frames, n_pixels: int, error=ValueError, full_scale: float = math.inf
) -> SpectrumReading:
    """A reading from one spectrum per accumulation, each checked against the axis's length
    (``error`` names ``name`` and the accumulation): never a spectrum of the wrong shape."""
    for i, frame in enumerate(frames):
        if np.size(frame) != n_pixels:
            raise error(f"{name}: spectrum {i + 1} has {np.size(frame)} pixels, the axis {n_pixels}")
    stack = np.vstack(frames)
    return SpectrumReading(start, end, stack.sum(axis=0), math.nan, stack, full_scale)


class RamanBackend(Protocol):
    description: str
    raman_shift_cm1: np.ndarray
    laser_nm: float
    # rms counts per pixel and accumulation (the cosmic-ray test's noise floor); a backend without
    # it is taken as 0: shot noise alone, which underestimates the noise of a dark's pixels.
    read_noise_counts: float

    async def acquire(self, exposure_s: float, accumulations: int, dark: bool = False) -> SpectrumReading:
        """Expose ``accumulations`` times for ``exposure_s`` each (experiment time): one frame per
        accumulation and their sum. ``dark``: with the laser shutter closed (no light: dark
        current and read noise only), software-timed."""

    async def status(self) -> dict:
        """{"connected", "interlock_closed"}: polled while staged."""


class RamanSpectrometer(PolledStatus, StandardReadable):
    def __init__(
        self,
        backend: RamanBackend,
        exposure_s: float = 10.0,
        accumulations: int = 1,
        name: str = "",
        *,
        # "none" here, so a device built by hand acquires as before; profiles go through
        # RamanSettings, whose default is on_exposure_change
        dark_rule: str = "none",
        dark_every_n: int = 10,
        cosmic_ray_removal: bool = True,
        cosmic_threshold_sigma: float = DEFAULT_THRESHOLD_SIGMA,
        laser_power_mW: Optional[float] = None,
    ):
        self._check_dark_rule(dark_rule, dark_every_n, name)
        self._backend = backend
        self._dark: Optional[Dark] = None
        self._frames_since_dark = 0
        n_pixels = len(backend.raman_shift_cm1)
        with self.add_children_as_readables(Format.HINTED_SIGNAL):
            self.spectrum, self._set_spectrum = soft_signal_r_and_setter(Array1D[np.float64], units="counts")
        with self.add_children_as_readables():
            self.dark, self._set_dark = soft_signal_r_and_setter(
                Array1D[np.float64], np.zeros(n_pixels), units="counts"
            )
            self.saturated, self._set_saturated = soft_signal_r_and_setter(bool, False)
            self.cosmic_pixels, self._set_cosmic_pixels = soft_signal_r_and_setter(int, 0)
            self.exposure_start, self._set_start = soft_signal_r_and_setter(float, units="s")
            self.exposure_end, self._set_end = soft_signal_r_and_setter(float, units="s")
            self.trigger_instrument_time, self._set_trigger_time = soft_signal_r_and_setter(float, math.nan, units="s")
        with self.add_children_as_readables(Format.CONFIG_SIGNAL):
            self.exposure_time = soft_signal_rw(float, exposure_s, units="s")
            self.accumulations = soft_signal_rw(int, accumulations)
            self.dark_rule = soft_signal_rw(str, dark_rule)
            self.dark_every_n = soft_signal_rw(int, dark_every_n)
            self.cosmic_ray_removal = soft_signal_rw(bool, cosmic_ray_removal)
            self.cosmic_threshold_sigma = soft_signal_rw(float, cosmic_threshold_sigma)
            self.laser_power, _ = soft_signal_r_and_setter(
                float, math.nan if laser_power_mW is None else float(laser_power_mW), units="mW"
            )
            # the instrument's axis plus the calibration offset (apply_shift_offset), and both
            # recorded: what the run's spectra are plotted and fitted against
            self.raman_shift, self._set_raman_shift = soft_signal_r_and_setter(
                Array1D[np.float64], np.asarray(backend.raman_shift_cm1, float), units="1/cm"
            )
            self.shift_offset, self._set_shift_offset = soft_signal_r_and_setter(float, 0.0, units="1/cm")
            self.shift_calibration, self._set_shift_calibration = soft_signal_r_and_setter(str, "none")
            self.laser_wavelength, _ = soft_signal_r_and_setter(float, backend.laser_nm, units="nm")
            self.backend_description, _ = soft_signal_r_and_setter(str, backend.description)
        # Health, not data: watched by suspenders, not read into frames.
        self.connected, set_connected = soft_signal_r_and_setter(bool, True)
        self.interlock_closed, set_interlock = soft_signal_r_and_setter(bool, True)
        super().__init__(name=name)
        self.status_poller = StatusPoller(
            self.name, backend.status, {"connected": set_connected, "interlock_closed": set_interlock}
        )

    def apply_shift_offset(self, offset_cm1: float, source: str) -> None:
        """Correct the Raman-shift axis by ``offset_cm1`` (reference band's true shift minus where
        the instrument's axis put it) and record where the offset came from."""
        if not math.isfinite(offset_cm1):
            raise ValueError(f"{self.name}: a Raman-shift offset must be finite (got {offset_cm1!r})")
        self._set_raman_shift(np.asarray(self._backend.raman_shift_cm1, float) + float(offset_cm1))
        self._set_shift_offset(float(offset_cm1))
        self._set_shift_calibration(source)

    @staticmethod
    def _check_dark_rule(rule: str, every_n: int, name: str) -> None:
        if rule not in DARK_RULES:
            raise ValueError(f"{name}: dark rule must be one of {', '.join(DARK_RULES)} (got {rule!r})")
        if every_n < 1:
            raise ValueError(f"{name}: dark_every_n must be >= 1 (got {every_n})")

    @AsyncStatus.wrap
    async def stage(self) -> None:
        self._dark = None  # each run takes its own darks
        self._frames_since_dark = 0
        await super().stage()

    def _dark_due(self, rule: str, every_n: int, exposure: float, accumulations: int) -> bool:
        if rule == "none":
            return False
        if rule == "each_frame" or self._dark is None or not self._dark.matches(exposure, accumulations):
            return True
        return rule == "every_n" and self._frames_since_dark >= every_n

    async def _take_dark(self, exposure: float, accumulations: int, clean: bool, threshold: float) -> Dark:
        r = await self._backend.acquire(exposure, accumulations, dark=True)
        frames, replaced = self._clean(r, clean, threshold)
        log.debug("%s: dark at %g s x %d, %d cosmic-ray pixels removed", self.name, exposure, accumulations, replaced)
        counts = np.asarray(r.counts, np.float64) - (r.frames - frames).sum(axis=0)
        return Dark(counts, float(exposure), int(accumulations))

    def _clean(self, r: SpectrumReading, clean: bool, threshold: float) -> tuple[np.ndarray, int]:
        if not clean:
            return r.frames, 0
        read_noise = float(getattr(self._backend, "read_noise_counts", 0.0))
        return remove_cosmic_rays(r.frames, threshold, read_noise)

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        exposure = await self.exposure_time.get_value()
        accumulations = await self.accumulations.get_value()
        if exposure <= 0 or accumulations < 1:
            raise ValueError(
                f"{self.name}: exposure_time must be > 0 s and accumulations >= 1 (got {exposure} s, {accumulations})"
            )
        rule = await self.dark_rule.get_value()
        every_n = await self.dark_every_n.get_value()
        self._check_dark_rule(rule, every_n, self.name)
        clean = await self.cosmic_ray_removal.get_value()
        threshold = await self.cosmic_threshold_sigma.get_value()
        if self._dark_due(rule, every_n, exposure, accumulations):
            self._dark = await self._take_dark(exposure, accumulations, clean, threshold)
            self._frames_since_dark = 0
        r = await self._backend.acquire(exposure, accumulations)
        self._frames_since_dark += 1
        frames, replaced = self._clean(r, clean, threshold)
        # The instrument's sum, less what the cosmic-ray removal took out of its accumulations.
        summed = np.asarray(r.counts, np.float64) - (r.frames - frames).sum(axis=0)
        if rule == "none":
            spectrum, dark = summed, np.zeros_like(summed)
        else:
            spectrum, dark = subtract_dark(summed, self._dark, exposure, accumulations), self._dark.counts
        full = saturated_pixels(frames, r.full_scale)
        if full.any():
            shift = np.asarray(self._backend.raman_shift_cm1, float)[full]  # the instrument's own axis
            log.warning(
                "%s: saturated: %d pixels at the detector's full scale (%g counts), %.0f-%.0f cm-1; "
                "the frame is kept and flagged",
                self.name,
                int(full.sum()),
                r.full_scale,
                shift.min(),
                shift.max(),
            )
        self._set_trigger_time(r.trigger_instrument_time)
        self._set_start(r.exposure_start)
        self._set_end(r.exposure_end)
        self._set_dark(dark)
        self._set_saturated(bool(full.any()))
        self._set_cosmic_pixels(replaced)
        self._set_spectrum(spectrum)
