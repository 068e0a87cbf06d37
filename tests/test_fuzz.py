"""Every parser fuzzed with hypothesis (benchmarks/fuzz.py): only the module's typed errors come out.

CI runs each target with 200 examples, the same ones every run (derandomized), after the inputs
that found the bugs fixed so far; ``OPERANDO_FUZZ_EXAMPLES=N`` runs N instead. ``make fuzz`` runs
100,000 per target, new ones each time, and prints a table (docs/fuzz.md).
"""

from __future__ import annotations

import pytest

from operando.benchmarks.fuzz import TARGETS, examples_from_env, property_test


@pytest.mark.parametrize("name", [t.name for t in TARGETS])
def test_only_typed_errors_come_out(name, tmp_path):
    target = next(t for t in TARGETS if t.name == name)
    property_test(target, tmp_path, examples_from_env(), derandomize=True)()


def test_every_parser_module_has_a_target():
    """The parsers named in docs/fuzz.md: a new protocol module gets a target (or a reason)."""
    covered = " ".join(t.what for t in TARGETS)
    for module in (
        "methodscript_replies", "methodscript_values", "methodscript_language", "keithley2450_scpi",
        "keithley2450_protocol", "keithley2450_smu", "nanonis_protocol", "nanonis_firmware", "nanonis.NanonisClient",
        "labspec_protocol", "labspec_protocol_sim", "labspec.LabSpecClient", "obp", "ocean_hdx_firmware",
        "ocean_hdx.OceanHdxClient", "multivu_datafile", "multivu_tail", "importers/multivu", "importers/eclab",
        "load_profile", "load_protocol", "serialization",
    ):  # fmt: skip
        assert module in covered, module
