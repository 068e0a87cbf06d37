"""A scientist's session at the IPython prompt, or in a script: one call, then ``RE(plan)``.

    In [1]: from operando.acquisition.ipython import open_lab
    In [2]: lab = open_lab("sim", speed=2000)      # profile name or YAML path; data in ./data
    In [3]: RE, pstat = lab.RE, lab.potentiostat
    In [4]: RE(lab.operando("galvanostatic_cycling"))   # the same run as `operando run`
    In [5]: import bluesky.plans as bp
    In [6]: RE(bp.count([lab.devices["magnetometer"]], num=3))

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
from operando.storage.catalog import Catalog, open_catalog, resolve_data_dir

from .build import Instruments, build_instruments
from .config import Profile, load_profile, load_protocol
from .prepare import check_run, operando_plan
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
    _check_profile(profile, speed)
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


def _check_profile(profile: Profile, speed: Optional[float]) -> None:
    """The profile's own checks (clock, material, capabilities) with an empty protocol."""
    from operando.plans.protocol import Protocol

    check_run(profile, Protocol(name="open_lab", steps=[{"kind": "rest", "duration_s": 1}]), speed=speed)
