"""The wire-level fault matrix, sampled: two cells per wire simulator (benchmarks/fault_matrix.py
CI_SAMPLE), each a real run whose real driver meets the fault in its bytes. Every cell must end
safe (or as fault_notes.py explains). ``make faults`` runs all 168 cells and writes the docs table.
"""

import pytest

from operando.benchmarks.fault_cells import CellResult, judge
from operando.benchmarks.fault_matrix import CI_SAMPLE, accepted, line, markdown, run_matrix


def test_the_sampled_cells_end_safe(tmp_path):
    results = run_matrix(CI_SAMPLE, tmp_path, parallel=2, echo=lambda _: None)
    report = "\n".join(line(r) for r in results)
    print("\n" + report)
    assert all(accepted(r) for r in results), report
    # the relay really acted in every cell: the driver met the fault, not a quiet wire
    assert all(r.relay for r in results), report
    assert "| fault |" in markdown(results, 1.0)


@pytest.mark.parametrize(
    "current, rows, reason, safe",
    [
        (0.0, (10, 10), "potentiostat: link lost", True),
        (1e-3, (10, 10), "potentiostat: link lost", False),  # the cell left driven
        (0.0, (8, 10), "potentiostat: link lost", False),  # rows in the file, not in the catalog
        (0.0, (10, 10), "something failed", False),  # the reason names no instrument
    ],
)
def test_the_judge_flags_what_is_not_safe(current, rows, reason, safe):
    r = CellResult("keithley2450", "garbled", "mid_run", exit_status="fail", reason=reason, current_A=current)
    r.echem_rows, r.echem_rows_in_file = rows
    judge(r, "", "potentiostat")
    assert r.safe is safe and r.outcome == ("aborted" if safe else "UNSAFE: aborted")
