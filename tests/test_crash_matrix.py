"""The crash matrix, short: each scenario of benchmarks/crash_matrix.py killed once with SIGKILL at
a random moment of its window (a Raman exposure, an SKPM map, a hold, an EIS sweep, a pause, a
suspension, anywhere; and after the stop, while the catalog writer drains), recovered, and
measured against the simulator's own record: ≤ 1 s of echem lost, no hole, the kill where it was
meant to land. `make crash` runs 20 kills."""

import random

from operando.benchmarks.crash_matrix import LOSS_BOUND_S, SCENARIOS, run_matrix, table


def test_every_scenario_loses_at_most_a_second(tmp_path):
    rng = random.Random()
    kills = [(name, round(rng.uniform(*s.kill_after_s), 2)) for name, s in SCENARIOS.items()]
    results = run_matrix(kills, tmp_path, parallel=len(kills))
    report = table(results)
    print("\n" + report)
    assert all(r.ok for r in results), report
    assert max(r.loss_s for r in results) <= LOSS_BOUND_S
