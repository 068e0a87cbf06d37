"""M–T sweeps (zero-field-cooled, then field-cooled) and M–H loops on a magnetometer that sets
field and temperature, with the cell held at open circuit meanwhile.

Each plan is one run. Every set-point is checked against the magnetometer's ranges when the plan
is made (a ValueError before anything reaches the RunEngine). With ``restore`` (the default) the
plan ends by bringing the temperature and then the field back to what the magnetometer reported
when it began, so an operando run can go on where it left off (a cell left at 5 K is frozen, and
an in-situ run's temperature suspender would wait for ever). After every field change the plan
waits ``relax_s`` of experiment time (the superconducting magnet's flux creep; default 6.25 min,
the 5–7 min users wait) and for the magnetometer to report the field stable; after every
temperature change, for the temperature to be stable. Points are read with ``trigger_and_read``
into streams ``zfc`` and ``fc`` (M–T) or ``mh`` (M–H).

The cell: with a ``potentiostat`` whose sequence is running (a sub-plan of a cycling plan, at
the state of charge it was brought to), the plans hold it at open circuit — still measured —
for the whole sweep, exactly as a ``hold: ocv`` detector frame does, and release it after.
"""

from __future__ import annotations

from collections.abc import Sequence

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp

from operando.devices.clock import Clock

from .held import held_at_open_circuit

RELAX_S = 375.0  # 5 x 75 s flux-creep time constants


def _set_field(mag, field_T, clock: Clock, relax_s: float, rate_T_s, approach):
    yield from bps.wait_for([lambda: _status(mag.set_field(field_T, rate_T_s, approach, wait_stable=True))])
    if relax_s > 0:
        yield from bps.wait_for([lambda: clock.sleep(relax_s)])
    yield from bps.wait_for([lambda: _status(mag.wait_for_stability())])


def _set_temperature(mag, temperature_K, rate_K_s):
    yield from bps.wait_for([lambda: _status(mag.set_temperature(temperature_K, rate_K_s, wait_stable=True))])


async def _status(status):
    await status


def _conditions(mag):
    """(field T, temperature K) now, as reported (rounded to 0.1 Oe and 1 mK)."""
    (task,) = yield from bps.wait_for([mag.conditions])
    field_T, temperature_K = task.result()
    return round(field_T, 5), round(temperature_K, 3)


def _restore(mag, conditions, clock, relax_s, field_rate_T_s, temperature_rate_K_s, approach):
    """Temperature first (the field is changed warm), then the field."""
    field_T, temperature_K = conditions
    yield from _set_temperature(mag, temperature_K, temperature_rate_K_s)
    yield from _set_field(mag, field_T, clock, relax_s, field_rate_T_s, approach)


def mt_sweep(
    magnetometer,
    temperatures_K: Sequence[float],
    field_T: float,
    clock: Clock,
    *,
    potentiostat=None,
    start_K: float | None = None,
    relax_s: float = RELAX_S,
    field_rate_T_s: float | None = None,
    temperature_rate_K_s: float | None = None,
    approach: str = "linear",
    restore: bool = True,
    md: dict | None = None,
):
    """ZFC: zero field at ``start_K`` (default the highest temperature), cool to the lowest,
    apply ``field_T``, measure warming through ``temperatures_K``; FC: in the field, measure
    cooling back through them."""
    temps = sorted(float(t) for t in temperatures_K)
    if len(temps) < 2:
        raise ValueError("an M–T sweep needs at least two temperatures")
    start = temps[-1] if start_K is None else float(start_K)
    for t in (*temps, start):
        magnetometer.check_temperature(t)
    for f in (0.0, field_T):
        magnetometer.check_field(f)
    run_md = {
        "plan_name": "mt_sweep",
        "field_T": field_T,
        "temperatures_K": temps,
        "relax_s": relax_s,
        "restore": restore,
        "detectors": [magnetometer.name],
        **(md or {}),
    }
    sf = lambda f: _set_field(magnetometer, f, clock, relax_s, field_rate_T_s, approach)

    @bpp.stage_decorator([magnetometer])
    @bpp.run_decorator(md=run_md)
    def inner():
        before = yield from _conditions(magnetometer)
        yield from _set_temperature(magnetometer, start, temperature_rate_K_s)
        yield from sf(0.0)
        yield from _set_temperature(magnetometer, temps[0], temperature_rate_K_s)
        yield from sf(field_T)
        for stream, branch in (("zfc", temps), ("fc", temps[::-1])):
            for t in branch:
                yield from bps.checkpoint()
                yield from _set_temperature(magnetometer, t, temperature_rate_K_s)
                yield from bps.trigger_and_read([magnetometer], name=stream)
        if restore:
            yield from _restore(magnetometer, before, clock, relax_s, field_rate_T_s, temperature_rate_K_s, approach)

    return held_at_open_circuit(potentiostat, "M–T sweep", inner())  # checked above, at the call


def mh_loop(
    magnetometer,
    fields_T: Sequence[float],
    temperature_K: float,
    clock: Clock,
    *,
    potentiostat=None,
    relax_s: float = RELAX_S,
    field_rate_T_s: float | None = None,
    temperature_rate_K_s: float | None = None,
    approach: str = "linear",
    restore: bool = True,
    md: dict | None = None,
):
    """At ``temperature_K``, measure at each of ``fields_T`` in the order given (e.g. 0 → +7 →
    −7 → +7 T for a full loop), waiting out the magnet's relaxation at each."""
    fields = [float(f) for f in fields_T]
    if len(fields) < 2:
        raise ValueError("an M–H loop needs at least two fields")
    magnetometer.check_temperature(temperature_K)
    for f in fields:
        magnetometer.check_field(f)
    run_md = {
        "plan_name": "mh_loop",
        "temperature_K": temperature_K,
        "fields_T": fields,
        "relax_s": relax_s,
        "restore": restore,
        "detectors": [magnetometer.name],
        **(md or {}),
    }

    @bpp.stage_decorator([magnetometer])
    @bpp.run_decorator(md=run_md)
    def inner():
        before = yield from _conditions(magnetometer)
        yield from _set_temperature(magnetometer, temperature_K, temperature_rate_K_s)
        for f in fields:
            yield from bps.checkpoint()
            yield from _set_field(magnetometer, f, clock, relax_s, field_rate_T_s, approach)
            yield from bps.trigger_and_read([magnetometer], name="mh")
        if restore:
            yield from _restore(magnetometer, before, clock, relax_s, field_rate_T_s, temperature_rate_K_s, approach)

    return held_at_open_circuit(potentiostat, "M–H loop", inner())
