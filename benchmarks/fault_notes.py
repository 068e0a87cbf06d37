"""Why some fault-matrix cells cannot be made safe, and what the user sees then.

Each entry matches cells by (backend, fault, when) — ``None`` matches any — and the outcome the
explanation is for; a cell with another outcome is not explained by it (a change in behaviour
must be looked at again, not waved through).
"""

from __future__ import annotations

# (backend, fault, when, outcome) -> what happens and what the user sees
EXPLAINED: list[tuple[str | None, str | None, str | None, str, str]] = []


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
