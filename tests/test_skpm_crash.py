"""A process killed (SIGKILL) in the middle of an SKPM map keeps the lines already scanned: the
plan stores each line as it arrives (stream ``skpm_lines``), so the recovered run holds every
line the process had emitted, in order, and no map event (the map was never finished)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import yaml

from operando.acquisition.cli import main as cli_main
from operando.acquisition.config import PROFILES_DIR
from operando.storage.catalog import open_catalog

CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from operando.acquisition.config import load_profile
    from operando.acquisition.experiment import run_experiment
    from operando.plans.protocol import Protocol

    data, profile, progress_path = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    progress = open(progress_path, "a", buffering=1)
    streams = {}
    def report(name, doc):
        if name == "descriptor":
            streams[doc["uid"]] = doc["name"]
        elif name == "event":
            progress.write(f"{streams[doc['descriptor']]}\\n")
    steps = [{"kind": "rest", "duration_s": 20}, {"kind": "rest", "duration_s": 20}]
    run_experiment(load_profile(profile), Protocol(name="two rests", steps=steps), data,
                   speed=20, callbacks=[report], report=False)
    """
)


def test_a_kill_mid_map_keeps_the_lines_already_scanned(tmp_path, capsys):
    profile = yaml.safe_load((PROFILES_DIR / "nanonis-sim.yaml").read_text())
    # a slow map: 96 lines at 0.25 Hz, 384 s of experiment time, ~19 s of wall time at 20x; the
    # kill comes once 6 lines are stored (lines are reported every second of wall time)
    profile["instruments"]["skpm"]["settings"].update(pixels=32, lines=96, line_rate_hz=0.25)
    profile["sim"]["speed"] = 20
    path = tmp_path / "slow-skpm.yaml"
    path.write_text(yaml.safe_dump(profile))
    data, progress = tmp_path / "data", tmp_path / "progress.txt"
    progress.touch()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data), str(path), str(progress)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    lines = []
    while time.time() < deadline:  # mid-map: some lines stored, the map not yet
        lines = progress.read_text().split()
        if lines.count("skpm_lines") >= 6:
            break
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    assert "skpm" not in lines, "the map finished before the kill: slow it down"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    emitted = progress.read_text().split().count("skpm_lines")
    assert "skpm" not in progress.read_text().split()

    assert cli_main(["runs", "--data", str(data)]) == 0  # any command recovers first
    assert "recovered run" in capsys.readouterr().err
    with open_catalog(data) as cat:
        (run,) = cat.client.values()
        assert run.metadata["stop"]["recovered"]
        assert "skpm" not in run or not list(run["skpm"])  # no map event: it never finished
        stored = run["skpm_lines"]
        rows = np.asarray(stored["skpm_line-row"].read())
        frames = np.asarray(stored["skpm_line-frame"].read())
        cpd = np.asarray(stored["skpm_line-cpd"].read())
    assert len(rows) >= emitted >= 6  # every line emitted before the kill, none lost
    assert rows.tolist() == list(range(len(rows))) and set(frames.tolist()) == {1}
    assert cpd.shape == (len(rows), 32) and np.isfinite(cpd).all()
