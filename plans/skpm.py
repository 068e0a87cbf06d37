"""SKPM maps outside a protocol's schedule: one map of the cell as it is now, or a line profile
across the interface, each one stored run with the cell held at open circuit meanwhile.

Within an operando run, maps come from the SKPM's schedule (``plans/schedules.py``): at chosen
potentials (``at_V`` with ``hold: ocv``), at step or cycle ends, every so much charge — a series
across a cycle. A map held *at a potential* is a protocol step: a constant-potential step
(``kind: ca``) with ``{at: step_start}`` on the SKPM's schedule maps while the potentiostat holds
that potential. These plans are for between runs (the state the last run left the cell in) or
as sub-plans of a script.

``skpm_map`` changes the scan parameters given for this map only and restores them after — the
scan's size and speed, and whatever the backend lets a plan set (``Skpm.settable_names``: for
``nanonis`` the frame's centre and angle and the Kelvin controller's setpoint, gains, modulation
and bias limits); a
line profile is a map of ``repeats`` lines over a strip ``repeats`` pixels high (square pixels),
i.e. the same line scanned again and again, averaged by the analysis into one profile.
"""

from __future__ import annotations

import bluesky.plan_stubs as bps
import bluesky.plans as bp

from .held import held_at_open_circuit

SCAN_FIELDS = ("pixels", "lines", "width", "height", "line_rate")


def skpm_map(skpm, *, potentiostat=None, md: dict | None = None, **scan):
    """One map with the scan parameters ``scan`` (pixels, lines, width, height, line_rate: the
    device's own names and units) for this map only."""
    known = (*SCAN_FIELDS, *getattr(skpm, "settable_names", ()))
    unknown = sorted(set(scan) - set(known))
    if unknown:
        raise ValueError(f"{skpm.name}: unknown scan parameter {unknown[0]!r} (known: {', '.join(known)})")
    wanted = {k: v for k, v in scan.items() if v is not None}
    run_md = {"plan_name": "skpm_map", "detectors": [skpm.name], "scan": dict(wanted), **(md or {})}

    def plan():
        before = {}
        for field in wanted:
            before[field] = yield from bps.rd(getattr(skpm, field))
        yield from _set(skpm, wanted)
        try:
            return (yield from bp.count([skpm], md=run_md))
        finally:
            yield from _set(skpm, before)

    return held_at_open_circuit(potentiostat, "SKPM map", plan())


def skpm_line_profile(
    skpm,
    *,
    pixels: int,
    width_m: float,
    repeats: int = 8,
    line_rate_hz: float | None = None,
    potentiostat=None,
    md: dict | None = None,
):
    """``repeats`` scans of one line of ``pixels`` over ``width_m`` across the interface."""
    if repeats < 1 or pixels < 2 or not width_m > 0:
        raise ValueError(f"{skpm.name}: a line profile needs repeats >= 1, pixels >= 2 and width > 0")
    height = width_m / pixels * repeats
    profile_md = {"plan_name": "skpm_line_profile", "repeats": repeats, **(md or {})}
    return skpm_map(
        skpm,
        potentiostat=potentiostat,
        md=profile_md,
        pixels=pixels,
        lines=repeats,
        width=width_m,
        height=height,
        line_rate=line_rate_hz,
    )


def _set(skpm, values: dict):
    for field, value in values.items():
        yield from bps.mv(getattr(skpm, field), value)
