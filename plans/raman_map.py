"""Raman line and area maps: a spectrum at each point of a line or a grid, moving a stage.

Built on bluesky's own scans (``bluesky.plans.scan`` for a line — both axes move together from
the start point to the stop point — and ``grid_scan`` for an area, snaking by default so the
stage never flies back across the sample). Each point is one event of the ``primary`` stream
with the spectrometer's corrected spectrum (its dark rule applies as in any run) and the stage's
readbacks (``<stage>-x``, ``<stage>-y``, µm): the coordinates are where the stage said it was, not
where it was asked to go. The start document records the map (``map``: kind, points, shape,
start/stop of each axis) besides bluesky's own ``shape``/``extents``/``snaking``.

Every point is checked against the stage's travel when the plan is made (a ValueError naming the
stage and axis, before anything moves). The cell is held at open circuit meanwhile when a
``potentiostat`` sequence is running (``held.py``); with ``restore`` (default) the stage goes back
to where it was, so an operando run goes on looking at the same spot.
"""

from __future__ import annotations

from collections.abc import Sequence

import bluesky.plan_stubs as bps
import bluesky.plans as bp
import bluesky.preprocessors as bpp

from .held import held_at_open_circuit


def _points(values: Sequence[float], what: str) -> tuple[float, float, int]:
    try:
        start, stop, num = values
        start, stop, num = float(start), float(stop), int(num)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be (start_um, stop_um, points) (got {values!r})") from None
    if num < 1 or (num == 1 and start != stop):
        raise ValueError(f"{what}: points must be >= 2 (or 1 with start == stop) (got {num})")
    return start, stop, num


def _run_md(kind: str, spectrometer, stage, axes: dict, shape: list[int], md) -> dict:
    return {
        "plan_name": "raman_map",
        "map": {"kind": kind, "shape": shape, "stage": stage.name, **axes},
        "detectors": [spectrometer.name],
        **(md or {}),
    }


def _restoring(stage, plan, restore: bool):
    """Run ``plan``; then, with ``restore``, move the stage back to where it was before."""
    yield from bps.wait_for([stage.x.refresh, stage.y.refresh])
    x0 = yield from bps.rd(stage.x.readback)
    y0 = yield from bps.rd(stage.y.readback)
    uid = yield from plan
    if restore:
        yield from bps.mv(stage.x, x0, stage.y, y0)
    return uid


def raman_line_map(
    spectrometer,
    stage,
    start_um: Sequence[float],
    stop_um: Sequence[float],
    points: int,
    *,
    potentiostat=None,
    restore: bool = True,
    md: dict | None = None,
):
    """``points`` spectra evenly spaced from ``start_um`` (x, y) to ``stop_um`` (x, y), inclusive."""
    (x0, y0), (x1, y1) = (tuple(float(v) for v in p) for p in (start_um, stop_um))
    if int(points) < 2:
        raise ValueError(f"a line map needs at least 2 points (got {points})")
    for x, y in ((x0, y0), (x1, y1)):  # a straight line between two points inside a box stays inside
        stage.x.check(x)
        stage.y.check(y)
    run_md = _run_md("line", spectrometer, stage, {"x_um": [x0, x1], "y_um": [y0, y1]}, [int(points)], md)
    scan = bp.scan([spectrometer], stage.x, x0, x1, stage.y, y0, y1, num=int(points), md=run_md)
    staged = bpp.stage_wrapper(_restoring(stage, scan, restore), [stage])
    return held_at_open_circuit(potentiostat, "Raman line map", staged)


def raman_area_map(
    spectrometer,
    stage,
    x_um: Sequence[float],
    y_um: Sequence[float],
    *,
    snake: bool = True,
    potentiostat=None,
    restore: bool = True,
    md: dict | None = None,
):
    """A grid of spectra: ``x_um`` and ``y_um`` are each (start, stop, points); rows along x, one
    row per y, alternate rows reversed with ``snake``."""
    xs, ys = _points(x_um, "x_um"), _points(y_um, "y_um")
    for v in xs[:2]:
        stage.x.check(v)
    for v in ys[:2]:
        stage.y.check(v)
    if xs[2] * ys[2] < 2:
        raise ValueError(f"an area map needs at least 2 points (got {xs[2]} x {ys[2]})")
    axes = {"x_um": list(xs[:2]), "y_um": list(ys[:2])}
    run_md = _run_md("area", spectrometer, stage, axes, [ys[2], xs[2]], md)
    scan = bp.grid_scan([spectrometer], stage.y, *ys, stage.x, *xs, snake_axes=snake, md=run_md)
    staged = bpp.stage_wrapper(_restoring(stage, scan, restore), [stage])
    return held_at_open_circuit(potentiostat, "Raman area map", staged)
