"""A scientist's session at the IPython prompt, or in a script: one call, then ``RE(plan)``.

    In [1]: from operando.acquisition.ipython import open_lab
    In [2]: lab = open_lab("sim", speed=2000)      # profile name or YAML path; data in ./data
    In [3]: RE, pstat = lab.RE, lab.potentiostat
    In [4]: RE(lab.operando("galvanostatic_cycling"))   # the same run as `operando run`
    In [5]: import bluesky.plans as bp
    In [6]: RE(bp.count([lab.devices["magnetometer"]], num=3))
    In [7]: RE(lab.mt_sweep([5, 10, 20, 50, 100, 150], field_T=1.0))   # M–T at the cell's state now
    In [8]: RE(lab.raman_area_map(x_um=(-100, 100, 11), y_um=(-100, 100, 11)))   # with a stage
    In [9]: RE(lab.skpm_map(pixels=128, lines=32))                               # with an SKPM

``lab.mt_sweep`` and ``lab.mh_loop`` run the M–T and M–H plans (``plans/magnetometry.py``) on the
profile's magnetometer that sets field and temperature: between operando runs they measure the
cell at the state of charge the last run left it in (at open circuit), each as one stored run
whose start document carries the sample and that state (``cell_state``). ``lab.raman_line_map``
and ``lab.raman_area_map`` do the same for Raman maps (``plans/raman_map.py``) on a profile with
a ``kind: stage`` instrument, and ``lab.skpm_map`` / ``lab.skpm_line_profile`` for SKPM maps
(``plans/skpm.py``).

``open_lab`` builds the profile's instruments once (through the same registry and checks as
every other entry point), a RunEngine whose documents go to the data directory's catalog (journal
first), and ``lab.operando(protocol)``: the operando plan of a protocol on those instruments, with
the profile's suspenders and the same start-document metadata as ``operando run``. A run that
fails is stored whole: the catalog's writer is flushed before anything closes, at ``lab.close()``
or at interpreter exit.
"""

from __future__ import annotations

import atexit
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from operando.devices.configuration import ConfigError
from operando.devices.registry import Capability
from operando.plans.magnetometry import mh_loop, mt_sweep
from operando.plans.raman_map import raman_area_map, raman_line_map
from operando.plans.skpm import skpm_line_profile, skpm_map
from operando.storage.catalog import Catalog, open_catalog, resolve_data_dir

from .build import Instruments, build_instruments
from .config import Profile, load_profile, load_protocol
from .prepare import check_run, operando_plan, profile_metadata
from .session import make_run_engine


@dataclass
class Lab:
    RE: Any
    catalog: Catalog
    profile: Profile
    instruments: Instruments
    data_dir: Path
    speed: Optional[float] = None
    devices: dict = field(default_factory=dict)  # instrument name -> ophyd-async device

    @property
    def potentiostat(self):
        return self.instruments.potentiostat

    @property
    def clock(self):
        return self.instruments.clock

    def operando(self, protocol, md: Optional[dict] = None):
        """The operando plan of ``protocol`` (a name, a path or a loaded Protocol) on this lab's
        instruments; checked against the profile before it is returned."""
        if isinstance(protocol, (str, Path)):
            protocol = load_protocol(protocol)
        checked = check_run(self.profile, protocol, speed=self.speed)
        wanted, built = checked.sample_interval_s, self.profile.potentiostat.typed_settings.sample_interval_s
        if wanted and wanted != built:  # the interval is fixed when the instruments are built
            raise ConfigError(
                f"{protocol.source or protocol.name}: sampling.interval_s: this lab's potentiostat "
                f"samples every {built:g} s; open it with open_lab(..., sample_interval_s={wanted:g}) "
                f"(got {wanted!r})"
            )
        plan, _ = operando_plan(checked, self.instruments, md=md)
        return plan

    def magnetometer(self, name: Optional[str] = None):
        """The profile's magnetometer that sets field and temperature (by instrument ``name`` when
        the profile has several)."""
        able = {Capability.FIELD_CONTROL, Capability.TEMPERATURE_CONTROL}
        mags = {n: s for n, s in self.instruments.specs.items() if s.kind == "magnetometer"}
        where = self.profile.source or self.profile.name
        if name is not None and name not in mags:
            raise ConfigError(f"{where}: no magnetometer named {name!r} (magnetometers: {sorted(mags) or 'none'})")
        usable = sorted(n for n, s in mags.items() if able <= set(s.capabilities) and n in self.devices)
        if name is None and len(usable) > 1:
            raise ConfigError(f"{where}: several magnetometers set field and temperature {usable}: name one")
        chosen = name or (usable[0] if usable else None)
        if chosen is None or chosen not in usable:
            which = f"{chosen!r} ({mags[chosen].name})" if chosen else "none of its magnetometers"
            raise ConfigError(
                f"{where}: {which} cannot set field and temperature (M–T and M–H need a backend "
                "with field_control and temperature_control, e.g. backend: mpms or mpms3)"
            )
        return self.devices[chosen]

    def mt_sweep(self, temperatures_K, field_T: float, *, magnetometer: Optional[str] = None, md=None, **kwargs):
        """An M–T sweep (ZFC, then FC) of the cell as it is now, held at open circuit if a
        sequence runs; ``kwargs`` as for ``plans.magnetometry.mt_sweep`` (relax_s, rates...)."""
        mag = self.magnetometer(magnetometer)
        return mt_sweep(
            mag, temperatures_K, field_T, self.clock, potentiostat=self.potentiostat, md=self._md(md), **kwargs
        )

    def mh_loop(self, fields_T, temperature_K: float, *, magnetometer: Optional[str] = None, md=None, **kwargs):
        """An M–H loop of the cell as it is now (fields in the order given); as ``mt_sweep``."""
        mag = self.magnetometer(magnetometer)
        return mh_loop(
            mag, fields_T, temperature_K, self.clock, potentiostat=self.potentiostat, md=self._md(md), **kwargs
        )

    def device_of_kind(self, kind: str, name: Optional[str] = None):
        """The profile's instrument of ``kind`` (by ``name`` when it has several)."""
        names = sorted(n for n, s in self.instruments.specs.items() if s.kind == kind and n in self.devices)
        where = self.profile.source or self.profile.name
        if name is not None and name not in names:
            raise ConfigError(f"{where}: no {kind} named {name!r} ({kind} instruments: {names or 'none'})")
        if name is None and len(names) != 1:
            hint = "name one" if names else f"add an instrument with kind: {kind}"
            raise ConfigError(f"{where}: {len(names)} {kind} instruments {names}: {hint}")
        return self.devices[name or names[0]]

    def raman_line_map(
        self, start_um, stop_um, points: int, *, raman: Optional[str] = None, stage: Optional[str] = None, md=None, **kw
    ):
        """Spectra along a line from ``start_um`` (x, y) to ``stop_um``, the cell held at open
        circuit if a sequence runs; ``kw`` as for ``plans.raman_map.raman_line_map``."""
        return raman_line_map(
            self.device_of_kind("raman", raman),
            self.device_of_kind("stage", stage),
            start_um,
            stop_um,
            points,
            potentiostat=self.potentiostat,
            md=self._md(md),
            **kw,
        )

    def raman_area_map(self, x_um, y_um, *, raman: Optional[str] = None, stage: Optional[str] = None, md=None, **kw):
        """A grid of spectra, ``x_um``/``y_um`` each (start, stop, points); as ``raman_line_map``."""
        return raman_area_map(
            self.device_of_kind("raman", raman),
            self.device_of_kind("stage", stage),
            x_um,
            y_um,
            potentiostat=self.potentiostat,
            md=self._md(md),
            **kw,
        )

    def skpm_map(self, *, skpm: Optional[str] = None, md=None, **scan):
        """One SKPM map of the cell as it is now (held at open circuit if a sequence runs);
        ``scan``: pixels, lines, width, height, line_rate for this map only."""
        device = self.device_of_kind("skpm", skpm)
        return skpm_map(device, potentiostat=self.potentiostat, md=self._md(md), **scan)

    def skpm_line_profile(
        self, pixels: int, width_m: float, *, repeats: int = 8, skpm: Optional[str] = None, md=None, **kw
    ):
        """``repeats`` scans of one line across the interface; as ``plans.skpm.skpm_line_profile``."""
        device = self.device_of_kind("skpm", skpm)
        return skpm_line_profile(
            device,
            pixels=pixels,
            width_m=width_m,
            repeats=repeats,
            potentiostat=self.potentiostat,
            md=self._md(md),
            **kw,
        )

    def _md(self, md: Optional[dict]) -> dict:
        """Start metadata of a magnetometry or map run: the sample (for molar units), the
        instruments and the cell's state."""
        history = self.potentiostat.history
        last = history.last_time
        state = history.state_at(last) if last is not None else None
        cell = {"Ewe_V": state.Ewe, "charge_mAh": state.charge, "cycle": state.cycle} if state else None
        return {**profile_metadata(self.profile), "cell_state": {"time": last, **cell} if cell else None, **(md or {})}

    def close(self) -> None:
        """Store everything, close ports and simulators, close the catalog (safe twice)."""
        try:
            self.RE.catalog_writer.flush()
        finally:
            self.instruments.close()
            self.catalog.close()


def open_lab(
    profile: Union[str, Path, Profile] = "sim",
    *,
    data: Union[str, Path, None] = None,
    speed: Optional[float] = None,
    sample_interval_s: Optional[float] = None,
) -> Lab:
    """The profile's instruments, connected, and a RunEngine storing into ``data`` (default
    $OPERANDO_DATA or ./data). ``speed`` and ``sample_interval_s`` as for ``operando run``."""
    if not isinstance(profile, Profile):
        profile = load_profile(profile)
    if sample_interval_s is not None:
        pot = profile.potentiostat
        settings = {**pot.settings, "sample_interval_s": sample_interval_s}
        data_ = profile.model_dump(mode="json")
        data_["instruments"][profile.potentiostat_name]["settings"] = settings
        source, profile = profile.source, Profile.model_validate(data_)
        profile._source = source
    check_profile(profile, speed)
    data_dir = resolve_data_dir(data)
    catalog = open_catalog(data_dir)
    try:
        RE = make_run_engine(catalog)
        instruments = build_instruments(profile, data_dir, speed)
    except BaseException:
        catalog.close()
        raise
    lab = Lab(RE, catalog, profile, instruments, data_dir, speed, {d.name: d for d in instruments.devices})
    atexit.register(lab.close)
    return lab


def check_profile(profile: Profile, speed: Optional[float]) -> None:
    """The profile's own checks (clock, material, capabilities) with an empty protocol."""
    from operando.plans.protocol import Protocol

    check_run(profile, Protocol(name="open_lab", steps=[{"kind": "rest", "duration_s": 1}]), speed=speed)
