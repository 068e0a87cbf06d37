"""Run a plan with the cell held at open circuit (still measured), released after.

For plans that stop the electrochemistry for a while without ending it: an M–T sweep, a Raman
map. With a ``potentiostat`` whose sequence runs (the plan is a sub-plan of a cycling plan, at
the state of charge it was brought to), the cell is held exactly as a ``hold: ocv`` detector
frame holds it; with ``None`` the plan runs as it is.
"""

from __future__ import annotations

import bluesky.plan_stubs as bps


def held_at_open_circuit(potentiostat, why: str, plan):
    """Run ``plan`` with ``potentiostat`` held (open circuit, measured); released afterwards."""
    if potentiostat is None:
        return (yield from plan)
    yield from bps.wait_for([lambda: potentiostat.hold(why)])
    try:
        return (yield from plan)
    finally:
        yield from bps.wait_for([lambda: potentiostat.release(why)])
