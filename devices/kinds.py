"""The instrument kinds: the settings every backend of a kind understands, and the kind's device.

A backend's settings model extends its kind's (``MethodScriptSettings(PotentiostatSettings)``),
so what a kind means — a sample interval, an exposure, a period — is spelt the same on every
backend, and the device is made the same way whichever backend is under it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Optional

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, StrictBool, model_validator

from .configuration import StrictModel
from .magnetometer import Magnetometer
from .raman import RamanSpectrometer
from .raman_corrections import DEFAULT_THRESHOLD_SIGMA
from .skpm import Skpm
from .stage import Stage


class PotentiostatSettings(StrictModel):
    # seconds between echem samples; a protocol's `sampling: {interval_s}` overrides it
    sample_interval_s: PositiveFloat = 1.0


class DetectorSettings(StrictModel):
    # without a `schedule:` in the profile, a frame every period_s of experiment time
    period_s: PositiveFloat
    # "hardware": each exposure starts on the potentiostat's trigger output (a TTL edge)
    trigger: Literal["software", "hardware"] = "software"


class MagnetometerSettings(DetectorSettings):
    period_s: PositiveFloat = 10.0
    averaging_s: PositiveFloat = 1.0  # moment averaged over this long per reading


class RamanSettings(DetectorSettings):
    period_s: PositiveFloat = 60.0
    exposure_s: PositiveFloat = 10.0  # per accumulation
    accumulations: PositiveInt = 1
    # when the device takes a dark (same exposure and accumulations, shutter closed), see
    # devices/raman.py: before each frame, every dark_every_n-th frame, when the exposure or
    # accumulations changed, or never (nothing subtracted)
    dark: Literal["each_frame", "every_n", "on_exposure_change", "none"] = "on_exposure_change"
    dark_every_n: PositiveInt = 10
    # across accumulations (needs accumulations >= 2; see devices/raman_corrections.py)
    cosmic_ray_removal: StrictBool = True
    # noise multiples above the other accumulations' median: at 6, one real pixel replaced in
    # ~8e7 on the simulator (none at a band peak), and 200-count cosmic rays still caught on
    # pixels up to ~550 counts; below 3 it would replace noise (0.1 % of pixels at 3)
    cosmic_threshold_sigma: float = Field(DEFAULT_THRESHOLD_SIGMA, ge=3.0, le=100.0)
    laser_power_mW: Optional[PositiveFloat] = None  # at the sample; recorded with each run
    # added to the instrument's Raman-shift axis; None: the data directory's latest calibration
    # of this instrument (`operando calibrate-raman`), else 0
    shift_offset_cm1: Optional[float] = Field(None, ge=-50.0, le=50.0)


class ShutterlessRamanSettings(RamanSettings):
    """A Raman backend that cannot close the laser shutter takes no darks: ``dark`` defaults to
    none, and any other rule is refused naming what cannot do it (``shutterless``)."""

    shutterless: ClassVar[str] = "this instrument"
    dark: Literal["each_frame", "every_n", "on_exposure_change", "none"] = "none"

    @model_validator(mode="after")
    def _no_dark_without_a_shutter(self):
        if self.dark != "none":
            raise ValueError(
                f"dark: {self.dark!r} needs the laser shutter closed, which {self.shutterless} cannot do: "
                "set dark: none (spectra are then not dark-corrected)"
            )
        return self


class SkpmSettings(DetectorSettings):
    period_s: PositiveFloat = 900.0
    pixels: int = Field(64, ge=2, le=4096)
    lines: int = Field(64, ge=1, le=4096)
    line_rate_hz: PositiveFloat = 1.0  # trace + retrace per line
    width_m: PositiveFloat = 200e-9
    height_m: PositiveFloat = 200e-9


class StageSettings(StrictModel):
    # where the sample may go, [low, high] µm in the stage's own coordinates: every position of
    # a map is checked against it before anything moves. No default: a wrong travel can drive
    # the sample into the objective.
    x_travel_um: tuple[float, float]
    y_travel_um: tuple[float, float]
    speed_um_s: PositiveFloat = 1000.0
    settle_s: NonNegativeFloat = 0.1  # waited after every move, before the next spectrum

    @model_validator(mode="after")
    def _travel_ordered(self):
        for axis in ("x", "y"):
            low, high = getattr(self, f"{axis}_travel_um")
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"{axis}_travel_um must be [low, high] with low < high (got [{low:g}, {high:g}])")
        return self


def make_stage(backend, settings: StageSettings, name: str) -> Stage:
    return Stage(backend, settings.x_travel_um, settings.y_travel_um, name=name)


@dataclass(frozen=True)
class DetectorKind:
    settings: type[DetectorSettings]
    make_device: Callable[[Any, Any, str], Any]  # (backend, settings, name) -> ophyd-async device


DETECTOR_KINDS: dict[str, DetectorKind] = {
    "magnetometer": DetectorKind(
        MagnetometerSettings,
        lambda backend, s, name: Magnetometer(
            backend,
            s.averaging_s,
            name=name,
            # backends that set field and temperature declare their ranges in their settings
            field_range_T=getattr(s, "field_range_T", (-math.inf, math.inf)),
            temperature_range_K=getattr(s, "temperature_range_K", (0.0, math.inf)),
        ),
    ),
    "raman": DetectorKind(
        RamanSettings,
        lambda backend, s, name: RamanSpectrometer(
            backend,
            s.exposure_s,
            s.accumulations,
            name=name,
            dark_rule=s.dark,
            dark_every_n=s.dark_every_n,
            cosmic_ray_removal=s.cosmic_ray_removal,
            cosmic_threshold_sigma=s.cosmic_threshold_sigma,
            laser_power_mW=s.laser_power_mW,
        ),
    ),
    "skpm": DetectorKind(
        SkpmSettings,
        lambda backend, s, name: Skpm(
            backend,
            pixels=s.pixels,
            lines=s.lines,
            width_m=s.width_m,
            height_m=s.height_m,
            line_rate_hz=s.line_rate_hz,
            name=name,
        ),
    ),
}

KIND_SETTINGS: dict[str, type[StrictModel]] = {
    "potentiostat": PotentiostatSettings,
    "stage": StageSettings,
    **{kind: k.settings for kind, k in DETECTOR_KINDS.items()},
}


def kind_settings(kind: str) -> Optional[type[StrictModel]]:
    return KIND_SETTINGS.get(kind)
