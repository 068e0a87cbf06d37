"""Process exit: SIGTERM, SIGHUP or Ctrl-C during `operando run` leaves the cell at open circuit,
and the stored run closes as aborted with the signal named as its reason."""

import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from operando.storage.catalog import open_catalog

# `operando run` in a child process, reporting the simulated engine's state once main() returns
CHILD = """
import sys
import operando.acquisition.prepare as prepare
from operando.acquisition.cli import main
built = []
def build_and_keep(*args, **kwargs):
    built.append(prepare_build(*args, **kwargs))
    return built[-1]
prepare_build, prepare.build_instruments = prepare.build_instruments, build_and_keep
code = main(sys.argv[1:])
engine = built[0].sim_lab.potentiostat
print(f"ENGINE done={engine.done} running={engine.running} current={engine.last_current!r}")
sys.exit(code)
"""


def _wait_for_running(data, proc, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if any((data / "journal").glob("*")):
            time.sleep(2.0)  # a couple of seconds of cycling
            return
        time.sleep(0.1)
    pytest.fail("the run did not start")


@pytest.mark.parametrize(
    "sig, reason",
    [
        (signal.SIGTERM, "terminated by SIGTERM"),
        (signal.SIGINT, "interrupted by the user (Ctrl-C)"),
    ],
)
def test_a_signal_aborts_the_run_at_open_circuit(tmp_path, sig, reason):
    data = tmp_path / "data"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            "run",
            "galvanostatic_cycling",
            "--speed",
            "300",
            "--quiet",
            "--no-report",
            "--data",
            str(data),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for_running(data, proc)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err  # the run ended, not successfully
    with open_catalog(data) as catalog:
        run = catalog.client.values().last()
        stop = run.metadata["stop"]
        current = np.asarray(run["echem"]["I"].read())
    assert stop["exit_status"] == "abort" and stop["reason"] == reason
    assert current.size > 100 and np.any(current != 0)  # it was cycling
    # and the cell ended at open circuit
    assert "ENGINE done=True running=False current=0.0" in out
    assert "status    abort" in out
