"""The queue server worker's session: a RunEngine writing to the data directory's catalog and
publishing documents over 0MQ, and the plans a queue item may name.

A queue item is data: ``operando_protocol(protocol="galvanostatic_cycling", profile="sim",
speed=20000)``, ``operando_raman_map(profile="raman-map-sim", x_um=[-100, 100, 11], y_um=[...])``,
``operando_mt_sweep(temperatures_K=[...], field_T=1)``, ``operando_mh_loop(...)``,
``operando_skpm_map(profile="nanonis-sim", pixels=64)`` — names (or
paths) of configuration files and numbers, never objects. Maps and sweeps go through the same
``Lab`` methods as an IPython session and the CLI. Each item
is put together by ``prepare_run`` (``acquisition/prepare.py``), as the CLI and the GUI do, so its
checks, suspenders and start-document metadata are theirs; the devices are built per item,
because the protocol's sampling interval and the clock speed are fixed when they are made.
"""

from __future__ import annotations

import asyncio

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp

from operando.acquisition.build import build_instruments
from operando.acquisition.config import load_profile, load_protocol
from operando.acquisition.prepare import check_run, prepare_run
from operando.acquisition.session import make_run_engine
from operando.storage.catalog import open_catalog, resolve_data_dir

from .documents import docs_addresses, make_publisher, start_proxy

_session: dict = {}


def start_session():
    """Open the catalog ($OPERANDO_DATA), make the RunEngine, start the 0MQ document proxy.

    Returns the RunEngine; the queue server finds it as ``RE`` in the startup namespace.
    """
    data_dir = resolve_data_dir()
    catalog = open_catalog(data_dir)
    RE = make_run_engine(catalog)
    in_address, out_address = docs_addresses()
    start_proxy(in_address, out_address)
    RE.subscribe(make_publisher(in_address))
    _session.update(RE=RE, catalog=catalog, data_dir=data_dir)
    return RE


def operando_protocol(protocol: str, profile: str = "sim", speed: float | None = None, md: dict | None = None):
    """Run ``protocol`` (name in config/protocols or a path) on ``profile``'s instruments.

    The same experiment as ``operando run PROTOCOL --profile P --speed X``; ``speed`` applies to
    simulated instruments only. The run is in the catalog when the plan ends.
    """
    prof = load_profile(profile)
    proto = load_protocol(protocol)
    checked = check_run(prof, proto, speed=speed)  # before anything is built or touched
    data_dir = _session["data_dir"]
    prepared = yield from _in_thread(prepare_run, prof, proto, data_dir, speed=speed, md=md, checked=checked)
    return (yield from _closing(prepared.plan, prepared.close))


def operando_raman_map(
    profile: str = "raman-map-sim",
    x_um: list | None = None,
    y_um: list | None = None,
    line: list | None = None,
    points: int | None = None,
    snake: bool = True,
    restore: bool = True,
    speed: float | None = None,
    md: dict | None = None,
):
    """A Raman map on ``profile``'s stage, as ``operando raman-map`` and ``lab.raman_*_map``: an
    area with ``x_um`` and ``y_um`` = [start, stop, points], or a line with ``line`` =
    [[x0, y0], [x1, y1]] and ``points``."""
    if line is not None:
        if x_um is not None or y_um is not None or points is None:
            raise ValueError("a line map takes line=[[x0, y0], [x1, y1]] and points (not x_um/y_um)")
        return (
            yield from _on_lab(profile, speed, lambda lab: lab.raman_line_map(*line, points, restore=restore, md=md))
        )
    if x_um is None or y_um is None:
        raise ValueError("give x_um and y_um (an area) or line and points (a line)")
    return (
        yield from _on_lab(
            profile, speed, lambda lab: lab.raman_area_map(x_um, y_um, snake=snake, restore=restore, md=md)
        )
    )


def operando_skpm_map(
    profile: str = "nanonis-sim",
    pixels: int | None = None,
    lines: int | None = None,
    width_m: float | None = None,
    height_m: float | None = None,
    line_rate_hz: float | None = None,
    speed: float | None = None,
    md: dict | None = None,
):
    """One SKPM map of the cell as it is now, as ``operando skpm-map`` and ``lab.skpm_map``."""
    scan = {"pixels": pixels, "lines": lines, "width": width_m, "height": height_m, "line_rate": line_rate_hz}
    return (yield from _on_lab(profile, speed, lambda lab: lab.skpm_map(md=md, **scan)))


def operando_mt_sweep(
    temperatures_K: list, field_T: float, profile: str = "mpms-sim", speed: float | None = None, md: dict | None = None
):
    """An M–T sweep (ZFC then FC) on ``profile``'s magnetometer, as ``operando mt-sweep``."""
    return (yield from _on_lab(profile, speed, lambda lab: lab.mt_sweep(temperatures_K, field_T, md=md)))


def operando_mh_loop(
    fields_T: list, temperature_K: float, profile: str = "mpms-sim", speed: float | None = None, md: dict | None = None
):
    """An M–H loop on ``profile``'s magnetometer, as ``operando mh-loop``."""
    return (yield from _on_lab(profile, speed, lambda lab: lab.mh_loop(fields_T, temperature_K, md=md)))


def _on_lab(profile: str, speed, make_plan):
    """The plan ``make_plan(lab)`` on a Lab of ``profile``'s instruments built for this item (the
    same Lab methods as IPython and the CLI), closed when the plan ends."""
    from operando.acquisition.ipython import Lab, check_profile

    RE, catalog, data_dir = _session["RE"], _session["catalog"], _session["data_dir"]
    prof = load_profile(profile)
    check_profile(prof, speed)
    instruments = yield from _in_thread(build_instruments, prof, data_dir, speed)
    try:
        lab = Lab(RE, catalog, prof, instruments, data_dir, speed, {d.name: d for d in instruments.devices})
        plan = make_plan(lab)  # a set-point or point out of range: refused here, nothing moved
    except BaseException:
        instruments.close()
        raise
    return (yield from _closing(plan, instruments.close))


def _in_thread(fn, *args, **kwargs):
    """``fn(*args)`` in a worker thread while the RunEngine awaits it: devices connect in the
    RunEngine's loop, which runs this plan, so building must not block that loop."""
    (task,) = yield from bps.wait_for([lambda: asyncio.to_thread(fn, *args, **kwargs)])
    return task.result()  # re-raises a build error (e.g. an instrument not answering)


def _closing(plan, close):
    RE = _session["RE"]

    def flush():
        # Whatever happened, the catalog holds every document before the queue moves on, and
        # ports and in-process simulators are closed.
        close()
        yield from bps.wait_for([lambda: asyncio.to_thread(RE.catalog_writer.flush)])

    return (yield from bpp.finalize_wrapper(plan, flush()))
