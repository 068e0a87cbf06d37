"""The queue server worker's session: a RunEngine writing to the data directory's catalog and
publishing documents over 0MQ, and the plans a queue item may name.

A queue item is data: ``operando_protocol(protocol="galvanostatic_cycling", profile="sim",
speed=20000)`` — names (or paths) of configuration files and numbers, never objects. Each item
is put together by ``prepare_run`` (``acquisition/prepare.py``), as the CLI and the GUI do, so its
checks, suspenders and start-document metadata are theirs; the devices are built per item,
because the protocol's sampling interval and the clock speed are fixed when they are made.
"""

from __future__ import annotations

import asyncio

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp

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
    RE, data_dir = _session["RE"], _session["data_dir"]
    prof = load_profile(profile)
    proto = load_protocol(protocol)
    checked = check_run(prof, proto, speed=speed)  # before anything is built or touched

    # Devices connect in the RunEngine's loop, which runs this plan: build in a worker thread
    # while the RunEngine awaits it, instead of blocking its loop.
    (built,) = yield from bps.wait_for(
        [lambda: asyncio.to_thread(prepare_run, prof, proto, data_dir, speed=speed, md=md, checked=checked)]
    )
    prepared = built.result()  # re-raises a build error (e.g. an instrument not answering)

    def flush():
        # Whatever happened, the catalog holds every document before the queue moves on, and
        # ports and in-process simulators are closed.
        prepared.close()
        yield from bps.wait_for([lambda: asyncio.to_thread(RE.catalog_writer.flush)])

    return (yield from bpp.finalize_wrapper(prepared.plan, flush()))
