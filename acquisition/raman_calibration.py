"""The Raman-shift axis checked against a reference, and the offset kept and applied.

``calibrate_raman`` takes a spectrum of the reference in the beam (silicon: its band at
520.7 cm⁻¹), fits the band (``analysis/raman_bands.py``) on the instrument's own axis, and the
offset — 520.7 minus where the axis put it — is written to ``<data>/calibration/raman-<name>.yaml``
(data, read back with yaml.safe_load) and applied. The calibration spectrum is itself a stored run
(``plan_name: raman_calibration``).

Every later run built on that data directory applies the instrument's latest calibration
(``apply_raman_calibration``), unless the profile gives ``settings.shift_offset_cm1``; the device
records the offset and where it came from (``shift_offset``, ``shift_calibration``) in every
frame's configuration, and its ``raman_shift`` axis is the corrected one. A calibration made for
another backend or address is not applied (and a warning says why).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import bluesky.plans as bp
import numpy as np
import yaml
from bluesky.run_engine import call_in_bluesky_event_loop

from operando.devices.configuration import ConfigError

log = logging.getLogger(__name__)

REFERENCES_CM1 = {"silicon": 520.7}  # the first-order phonon of crystalline Si
MAX_OFFSET_CM1 = 50.0


@dataclass(frozen=True)
class RamanCalibration:
    instrument: str
    backend: str
    address: Optional[str]
    reference: str
    reference_cm1: float
    fitted_cm1: float  # where the instrument's own axis put the reference band
    fitted_err_cm1: float
    offset_cm1: float  # added to the instrument's axis
    measured_at: str  # ISO 8601, UTC
    run_uid: Optional[str] = None

    @property
    def source(self) -> str:
        return f"{self.reference} {self.reference_cm1:g} cm-1, {self.measured_at} (run {str(self.run_uid)[:8]})"


def calibration_path(data_dir: Path, name: str) -> Path:
    return Path(data_dir) / "calibration" / f"raman-{name}.yaml"


def load_calibration(data_dir: Path, name: str) -> Optional[RamanCalibration]:
    path = calibration_path(data_dir, name)
    if not path.exists():
        return None
    try:
        record = yaml.safe_load(path.read_text())
        return RamanCalibration(**record)
    except (yaml.YAMLError, TypeError) as exc:
        raise ConfigError(f"{path}: not a Raman calibration record ({exc})") from None


def apply_raman_calibration(device, name: str, inst, settings, data_dir: Optional[Path]) -> None:
    """The profile's offset if it gives one, else this data directory's latest calibration of
    the instrument (same backend and address), else none."""
    if settings.shift_offset_cm1 is not None:
        device.apply_shift_offset(settings.shift_offset_cm1, "profile: settings.shift_offset_cm1")
        return
    record = load_calibration(data_dir, name) if data_dir is not None else None
    if record is None:
        return
    if (record.backend, record.address) != (inst.backend, inst.address):
        log.warning(
            "%s: calibration in %s is for %s at %s, not %s at %s: not applied",
            name,
            calibration_path(data_dir, name),
            record.backend,
            record.address,
            inst.backend,
            inst.address,
        )
        return
    device.apply_shift_offset(record.offset_cm1, record.source)


def calibrate_raman(
    lab,
    reference: str = "silicon",
    *,
    instrument: Optional[str] = None,
    exposure_s: float = 1.0,
    accumulations: int = 2,
) -> RamanCalibration:
    """Measure ``reference`` on the lab's Raman spectrometer, store the offset, apply it.

    On a simulated lab the simulated reference sample is put in the beam for the measurement; on
    a real instrument the caller has put it there.
    """
    from operando.analysis.raman_bands import BandGuess, fit_bands  # lmfit: only when calibrating

    if reference not in REFERENCES_CM1:
        raise ConfigError(f"unknown reference {reference!r}; known: {', '.join(REFERENCES_CM1)}")
    name, inst = _raman_instrument(lab.profile, instrument)
    device = lab.devices[name]
    true_cm1 = REFERENCES_CM1[reference]
    sim = lab.instruments.sim_lab.raman if lab.instruments.sim_lab is not None else None
    spectra: list[np.ndarray] = []

    def keep(doc_name, doc):
        if doc_name == "event":
            spectra.extend(np.asarray(v) for k, v in doc["data"].items() if k.endswith("-spectrum"))

    settings = (device.exposure_time, device.accumulations)
    before = [call_in_bluesky_event_loop(s.get_value()) for s in settings]
    for signal, value in zip(settings, (exposure_s, accumulations)):
        call_in_bluesky_event_loop(_set(signal, value))
    if sim is not None:
        sim.sample = reference
    try:
        md = {"plan_name": "raman_calibration", "reference": reference, "reference_cm1": true_cm1}
        (uid,) = lab.RE(bp.count([device], md=md), keep)
    finally:
        if sim is not None:
            sim.sample = "cell"
        for signal, value in zip(settings, before):
            call_in_bluesky_event_loop(_set(signal, value))
    offset_now = call_in_bluesky_event_loop(device.shift_offset.get_value())
    axis = np.asarray(call_in_bluesky_event_loop(device.raman_shift.get_value())) - offset_now  # the instrument's
    (fit,) = fit_bands(axis, spectra[-1], [BandGuess(reference, true_cm1, 5.0)])
    if not fit.ok or not fit.centre_err < 1.0:
        raise ConfigError(
            f"{name}: no {reference} band near {true_cm1:g} cm-1 in the calibration spectrum (run {uid[:8]}): "
            "is the reference in the beam and the exposure long enough?"
        )
    offset = true_cm1 - fit.centre_cm1
    if not abs(offset) <= MAX_OFFSET_CM1 or not math.isfinite(offset):
        raise ConfigError(f"{name}: offset {offset:+.2f} cm-1 is beyond {MAX_OFFSET_CM1:g}: not applied")
    record = RamanCalibration(
        name,
        inst.backend,
        inst.address,
        reference,
        true_cm1,
        round(fit.centre_cm1, 4),
        round(fit.centre_err, 4),
        round(offset, 4),
        dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        uid,
    )
    path = calibration_path(lab.data_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(asdict(record), sort_keys=False))
    device.apply_shift_offset(record.offset_cm1, record.source)
    return record


async def _set(signal, value) -> None:
    await signal.set(value)


def _raman_instrument(profile, instrument: Optional[str]):
    ramans = {n: i for n, i in profile.instruments.items() if i.kind == "raman" and i.enabled}
    where = profile.source or profile.name
    if instrument is not None:
        if instrument not in ramans:
            raise ConfigError(f"{where}: no Raman instrument named {instrument!r} (Raman: {sorted(ramans) or 'none'})")
        return instrument, ramans[instrument]
    if len(ramans) != 1:
        raise ConfigError(f"{where}: {'no Raman instrument' if not ramans else 'several: name one'} ({sorted(ramans)})")
    return next(iter(ramans.items()))
