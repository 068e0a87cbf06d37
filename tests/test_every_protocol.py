"""Every shipped protocol on every shipped profile: accepted, or refused before start naming why;
and run to the end on the path `operando run` takes.

The pre-start check covers the whole matrix in every test run. Running every pair takes hours
(a week of cell time through host-timed instruments), so `make test` runs a sample: every
protocol on the default profile, and the demo protocol on every profile but four whose own
tests run them: three through their wire-level simulators in real or host-timed time (mpms3-sim:
test_mpms3_backend, sim-keithley2450: test_techniques_end_to_end, nanonis-sim:
test_skpm_operando) and sim-16-cells (test_multichannel runs its sixteen cells to the end; the
demo on it took 54 s of CI's 45 minutes); `make matrix` (OPERANDO_FULL_MATRIX=1) runs every pair.
"""

import os

import pytest

from operando.acquisition.config import PROFILES_DIR, PROTOCOLS_DIR, load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.acquisition.prepare import CapabilityError, check_run

PROTOCOLS = sorted(p.stem for p in PROTOCOLS_DIR.glob("*.yaml"))
PROFILES = sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))
FULL = os.environ.get("OPERANDO_FULL_MATRIX") == "1"
DEFAULT_PROFILE, DEMO_PROTOCOL = "sim", "galvanostatic_cycling"
# Impedance is the only technique a shipped backend lacks (the Keithley 2450: a source-measure unit).
IMPEDANCE_PROTOCOLS = {"characterisation", "cycling_with_eis"}
IN_PROCESS_SPEED = 1e6  # cell seconds per wall second where nothing runs in real time


def _expect_refusal(profile_name: str, protocol_name: str) -> bool:
    return profile_name == "sim-keithley2450" and protocol_name in IMPEDANCE_PROTOCOLS


def _in_process(profile) -> bool:
    """Every instrument simulated in this process (no wire-level simulator, nothing host-timed)."""
    return all(instrument.address is None for instrument in profile.instruments.values())


@pytest.mark.parametrize("protocol_name", PROTOCOLS)
@pytest.mark.parametrize("profile_name", PROFILES)
def test_every_pair_is_accepted_or_refused_before_start_naming_why(profile_name, protocol_name):
    profile, protocol = load_profile(profile_name), load_protocol(protocol_name)
    if not _expect_refusal(profile_name, protocol_name):
        checked = check_run(profile, protocol)
        assert checked.total_s > 0
        return
    with pytest.raises(CapabilityError) as refused:
        check_run(profile, protocol)
    message = str(refused.value)
    # the file, the field, the technique, the step and what the backend can run instead
    assert "sim-keithley2450.yaml: instruments.potentiostat.backend: keithley2450 cannot run" in message
    assert ("cannot run peis" in message or "cannot run geis" in message) and "it runs ca, cc" in message


RUN_BY_THEIR_OWN_TESTS = {"mpms3-sim", "sim-keithley2450", "nanonis-sim", "sim-16-cells"}


def _sampled(profile_name: str, protocol_name: str) -> bool:
    if FULL or profile_name == DEFAULT_PROFILE:
        return True
    return protocol_name == DEMO_PROTOCOL and profile_name not in RUN_BY_THEIR_OWN_TESTS


@pytest.mark.parametrize("protocol_name", PROTOCOLS)
@pytest.mark.parametrize("profile_name", PROFILES)
def test_every_pair_runs_to_the_end(tmp_path, profile_name, protocol_name):
    if _expect_refusal(profile_name, protocol_name):
        pytest.skip("refused before start (checked above)")
    if not _sampled(profile_name, protocol_name):
        pytest.skip("outside the make-test sample; make matrix runs every pair")
    profile, protocol = load_profile(profile_name), load_protocol(protocol_name)
    speed = IN_PROCESS_SPEED if _in_process(profile) else None  # wire simulators: the profile's own
    result = run_experiment(profile, protocol, tmp_path / "data", speed=speed, report=False)
    assert result.exit_status == "success", result.summary
    assert "cycle" in result.summary  # the stored run has its echem stream and cycles
