"""Why some fault-matrix cells cannot be made safe, and what the user sees then.

Each entry matches cells by (backend, fault, when) — ``None`` matches any — and the outcome the
explanation is for; a cell with another outcome is not explained by it (a change in behaviour
must be looked at again, not waved through).
"""

from __future__ import annotations

# (backend, fault, when, outcome) -> what happens and what the user sees
EXPLAINED: list[tuple[str | None, str | None, str | None, str, str]] = [
    (
        "methodscript",
        "disconnect",
        None,
        "UNSAFE: aborted",
        "the pseudo-terminal (USB) vanishes for good, so the host cannot send the abort; a real "
        "EmStat goes on running the script it holds, with the script's own cut-offs, to its end "
        "(at most `steps_per_script` steps). The run closes with 'serial link lost while its "
        "script runs ...; the instrument may still be running it; open circuit FAILED: check the "
        "cell at once' and `operando run` exits 1. Lower `steps_per_script` where that matters.",
    ),
]


def explanation(result) -> str | None:
    for backend, fault, when, outcome, text in EXPLAINED:
        if (
            backend in (None, result.backend)
            and fault in (None, result.fault)
            and when in (None, result.when)
            and result.outcome == outcome
        ):
            return text
    return None
