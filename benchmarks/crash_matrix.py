"""Crash matrix: SIGKILL a real run at chosen moments, recover it, measure the echem it lost.

    python -m operando.benchmarks.crash_matrix [--kills 20] [--parallel 4] [--seed 0]

Each kill runs a simulated experiment in real time (speed 1) in its own process — `operando run`,
or the GUI's acquisition process for a pause — whose simulated potentiostat writes its own record
of every sample it hands over (``record_path``: time stamps, one unbuffered write per poll). At a
chosen moment — during a 20 s Raman exposure, during an SKPM map, during a hold at open circuit,
during an EIS sweep, during a pause, during a suspension (laser interlock open), at random, or
during the catalog writer's drain after the stop ("post-stop-drain": the child's catalog writer is
made to block at the stop document — ``FlushingTiledWriter.__call__`` patched in that child only —
and the kill comes once the journal is closed) — the process gets SIGKILL. Then `operando runs`
recovers the run, and the loss is measured against the simulator's record: the time between the
last sample the simulator produced and the last sample the recovered run holds (0 when nothing
was lost), and the rows must match the record without a hole. The promise is ≤ 1 s lost at any
moment. Each kill also checks that it landed where it was meant to (mid-exposure: no frame of
that detector stored yet; mid-sweep: some but not all impedance rows; held or paused: the cell at
0 A at the end; post-stop drain: the run repaired from its closed journal, with its own stop).

tests/test_crash_matrix.py runs each scenario once (CI); ``make crash`` runs 20 kills and prints
the worst loss.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

LOSS_BOUND_S = 1.0
SAMPLE_INTERVAL_S = 0.1
START_TIMEOUT_S = 120.0  # imports and catalog set-up on a loaded 2-core machine


@dataclass(frozen=True)
class Scenario:
    name: str
    protocol: str  # YAML text
    edit: Callable[[dict], None]  # changes to the sim profile
    kill_after_s: tuple[float, float]  # range, seconds after the sequence's first sample
    check: Callable[[object, float], str | None]  # (recovered run, kill time) -> problem or None
    pause_after_s: float | None = None  # the GUI's acquisition process gets "pause" then
    # The catalog writer blocks at the stop; the kill comes once the journal is closed (the
    # drain after the stop), not at ``kill_after_s``; recovery replays the closed journal.
    after_stop: bool = False


@dataclass
class Kill:
    scenario: str
    kill_after_s: float
    loss_s: float = float("nan")
    rows: int = 0
    record_rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.loss_s <= LOSS_BOUND_S


def _protocol(*steps: str) -> str:
    head = f"name: crash\nsampling: {{interval_s: {SAMPLE_INTERVAL_S:g}}}\nsteps:\n"
    return head + "".join(f"  - {s}\n" for s in steps)


def _only(*names: str) -> Callable[[dict], None]:
    def edit(p: dict) -> None:
        for name, inst in p["instruments"].items():
            if inst["kind"] != "potentiostat" and name not in names:
                inst["enabled"] = False
        p["suspenders"] = [s for s in p.get("suspenders", []) if s["watch"].split(".")[0] in names]

    return edit


def _skpm(schedule: list[dict]) -> Callable[[dict], None]:
    def edit(p: dict) -> None:
        _only("skpm")(p)
        p["instruments"]["skpm"] = {
            "kind": "skpm", "backend": "sim", "schedule": schedule,
            "settings": {"pixels": 32, "lines": 20, "line_rate_hz": 1.0},
        }  # fmt: skip

    return edit


def _no_frame_of(stream: str) -> Callable[[object, float], str | None]:
    def check(run, _kill):
        n = len(run[stream]["time"].read()) if stream in run and list(run[stream]) else 0
        return None if n == 0 else f"the kill missed the {stream} frame in flight ({n} stored)"

    return check


def _held_at_the_end(run, _kill):
    echem = run["echem"]
    if not list(echem):
        return "no echem"
    current = np.asarray(echem["I"].read())
    return None if len(current) > 10 and np.all(current[-5:] == 0.0) else "the cell was not held at 0 A"


def _mid_sweep(run, _kill):
    n = len(run["impedance"]["time"].read()) if "impedance" in run and list(run["impedance"]) else 0
    techniques = np.asarray(run["echem"]["technique"].read())
    if not np.any(techniques == 7):  # TECHNIQUE_CODES["peis"]
        return "the kill came before the EIS step"
    return None if n < 26 else f"the EIS sweep had ended ({n} frequencies stored)"


def _stopped_as_journaled(run, _kill):
    stop = run.metadata["stop"]
    return None if stop.get("exit_status") == "success" and not stop.get("recovered") else f"stop {dict(stop)}"


def _suspended(run, kill):
    n = len(run["interruptions"]["time"].read()) if "interruptions" in run and list(run["interruptions"]) else 0
    return _held_at_the_end(run, kill) or (None if n else "no suspension recorded in the interruptions stream")


SCENARIOS = {
    "raman-exposure": Scenario(
        "raman-exposure",
        _protocol("{kind: rest, duration_min: 10}"),
        lambda p: (_only("raman")(p), p["instruments"]["raman"].update(schedule=[{"every_s": 600}])),
        (6.0, 16.0),  # the 2 x 10 s exposure starts with the sequence
        _no_frame_of("raman"),
    ),
    "skpm-map": Scenario(
        "skpm-map",
        _protocol("{kind: rest, duration_min: 10}"),
        _skpm([{"every_s": 900}]),
        (6.0, 16.0),  # a 20-line map at 1 line/s starts with the sequence
        _no_frame_of("skpm"),
    ),
    "hold": Scenario(
        "hold",
        _protocol("{kind: rest, duration_s: 4}", "{kind: cc, c_rate: 1, e_max_V: 3.0, max_duration_h: 1}"),
        _skpm([{"at": "step_end", "hold": "ocv"}]),
        (12.0, 20.0),  # step 1 ends at 4 s: a 20 s map with the cell held, then charging again
        _held_at_the_end,
    ),
    "eis": Scenario(
        "eis",
        _protocol(
            "{kind: rest, duration_s: 3}",
            "{kind: peis, f_max_Hz: 10000, f_min_Hz: 0.01, points_per_decade: 4}",
        ),
        _only(),
        (10.0, 25.0),  # the sweep down to 10 mHz lasts minutes
        _mid_sweep,
    ),
    "pause": Scenario(
        "pause",
        _protocol("{kind: cc, c_rate: 1, e_max_V: 3.0, max_duration_h: 1}"),
        _only("magnetometer"),
        (9.0, 14.0),
        _held_at_the_end,
        pause_after_s=4.0,
    ),
    "suspension": Scenario(
        "suspension",
        _protocol("{kind: cc, c_rate: 1, e_max_V: 3.0, max_duration_h: 1}"),
        lambda p: (
            _only("raman")(p),
            p["instruments"]["raman"].update(schedule=[{"every_s": 600}]),
            p["instruments"]["raman"]["settings"].update(exposure_s=1, accumulations=1),
            p["sim"].update(faults=[{"instrument": "raman", "kind": "interlock_open", "at_s": 3}]),
        ),
        (9.0, 14.0),  # the interlock opens ~3 s in: the run suspends with the cell held
        _suspended,
    ),
    "post-stop-drain": Scenario(
        "post-stop-drain",
        _protocol("{kind: rest, duration_s: 6}"),
        _only(),
        (0.0, 0.0),  # killed when the journal closes (about 6 s)
        _stopped_as_journaled,
        after_stop=True,
    ),
    "random": Scenario(
        "random",
        _protocol(
            "{kind: rest, duration_s: 5}",
            "{kind: cc, c_rate: 2, e_max_V: 3.0, max_duration_min: 2}",
            "{kind: peis, f_max_Hz: 10000, f_min_Hz: 1, points_per_decade: 3}",
            "{kind: cc, c_rate: -2, e_min_V: 0.01, max_duration_min: 2}",
        ),
        lambda p: p["instruments"]["raman"]["settings"].update(period_s=30),
        (3.0, 40.0),
        lambda run, kill: None,
    ),
}


def run_kill(scenario: Scenario, workdir: Path, kill_after_s: float) -> Kill:
    """One run of ``scenario`` killed ``kill_after_s`` after its first sample; recovered; measured."""
    from operando.acquisition.config import PROFILES_DIR

    workdir.mkdir(parents=True, exist_ok=True)
    record = workdir / "simulator-record.f8"
    profile = yaml.safe_load((PROFILES_DIR / "sim.yaml").read_text())
    profile["sim"]["speed"] = 1.0
    profile["instruments"]["potentiostat"]["settings"]["record_path"] = str(record)
    scenario.edit(profile)
    (workdir / "profile.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    (workdir / "protocol.yaml").write_text(scenario.protocol)
    data = workdir / "data"
    data.mkdir(exist_ok=True)
    child = _start(scenario, workdir, data)
    result = Kill(scenario.name, kill_after_s)
    try:
        first = _first_sample(record, child)
        if scenario.pause_after_s is not None:
            _sleep_until(first + scenario.pause_after_s)
            child.stdin.write(b"pause\n")
            child.stdin.flush()
        if scenario.after_stop:
            _wait_for_closed_journal(data, child)
            result.kill_after_s = round(time.time() - first, 2)
        else:
            _sleep_until(first + kill_after_s)
        if child.poll() is not None:
            result.problems.append(f"the run ended (code {child.returncode}) before the kill")
            return result
        kill_time = time.time()
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    _measure(result, scenario, data, record, kill_time)
    return result


# `operando run`, its catalog writer blocked at the stop document (the journal already has it).
STUCK_AT_STOP = """
import sys, time
from operando.storage import catalog_writer
from operando.acquisition.cli import main
write = catalog_writer.FlushingTiledWriter.__call__
def stuck(self, name, doc):
    if name == "stop":
        time.sleep(3600)
    return write(self, name, doc)
catalog_writer.FlushingTiledWriter.__call__ = stuck
sys.exit(main(sys.argv[1:]))
"""


def _start(scenario: Scenario, workdir: Path, data: Path) -> subprocess.Popen:
    log = open(workdir / "child.log", "wb")
    if scenario.pause_after_s is None:
        head = ["-c", STUCK_AT_STOP] if scenario.after_stop else ["-m", "operando.acquisition.cli"]
        return subprocess.Popen(
            [sys.executable, *head, "run", str(workdir / "protocol.yaml"),
             "--profile", str(workdir / "profile.yaml"), "--data", str(data), "--quiet", "--no-report"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    # The GUI's acquisition process: the same run, driven by the window's commands on stdin.
    from operando.acquisition.config import load_profile

    read_fd, write_fd = os.pipe()
    child = subprocess.Popen(
        [sys.executable, "-m", "operando.gui.run_process", str(write_fd)],
        stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, pass_fds=(write_fd,),
    )  # fmt: skip
    os.close(write_fd)
    threading.Thread(target=_drain, args=(read_fd,), daemon=True).start()  # the window's reader
    request = {
        "profile": load_profile(workdir / "profile.yaml").model_dump(mode="json"),
        "profile_file": str(workdir / "profile.yaml"),
        "protocol_file": str(workdir / "protocol.yaml"),
        "data_dir": str(data),
        "speed": 1.0,
    }
    child.stdin.write((json.dumps(request) + "\n").encode())
    child.stdin.flush()
    return child


def _drain(fd: int) -> None:
    with os.fdopen(fd, "rb") as pipe:
        while pipe.read(65536):
            pass


def _first_sample(record: Path, child: subprocess.Popen) -> float:
    """Wall time of the sequence's first sample (speed 1: experiment time is wall time)."""
    deadline = time.time() + START_TIMEOUT_S
    while time.time() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"the run ended before it started (code {child.returncode})")
        if record.exists() and record.stat().st_size >= 8:
            return float(np.fromfile(record, "<f8", count=1)[0])
        time.sleep(0.02)
    raise TimeoutError(f"no sample within {START_TIMEOUT_S:g} s")


def _wait_for_closed_journal(data: Path, child: subprocess.Popen) -> None:
    """Until the run's journal is closed: its stop document is on disk, the catalog lacks it."""
    deadline = time.time() + START_TIMEOUT_S
    folder = data / "journal"
    while not any(not p.name.endswith(".open.jsonl") for p in folder.glob("*.jsonl")):
        if child.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"the run's journal was not closed (code {child.poll()})")
        time.sleep(0.02)


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


def _measure(result: Kill, scenario: Scenario, data: Path, record: Path, kill_time: float) -> None:
    from operando.storage.catalog import open_catalog
    from operando.storage.recovery import RepairedRun, recover_data_dir

    truth = np.fromfile(record, "<f8")
    result.record_rows = len(truth)
    recovered = recover_data_dir(data, repair_after_s=0)  # the child is dead: nothing is draining
    if len(recovered) != 1:
        result.problems.append(f"{len(recovered)} runs recovered, expected 1")
        return
    if isinstance(recovered[0], RepairedRun) != scenario.after_stop:
        result.problems.append(f"expected {'a repaired' if scenario.after_stop else 'a recovered'} run")
    with open_catalog(data) as catalog:
        run = catalog.client[recovered[0].uid]
        stop = run.metadata["stop"]
        if not scenario.after_stop and (stop.get("exit_status") != "fail" or not stop.get("recovered")):
            result.problems.append(f"stop document not marked recovered: {dict(stop)}")
        echem = run["echem"]
        stored = np.asarray(echem["timestamp"].read()) if list(echem) else np.empty(0)
        result.rows = len(stored)
        if not np.array_equal(stored, truth[: len(stored)]):
            result.problems.append("the stored echem differs from the simulator's record (a hole)")
        last_stored = stored[-1] if len(stored) else truth[0] - SAMPLE_INTERVAL_S
        result.loss_s = float(truth[-1] - last_stored) if len(truth) else 0.0
        problem = scenario.check(run, kill_time)
        if problem:
            result.problems.append(problem)


def run_matrix(kills: list[tuple[str, float]], workdir: Path, parallel: int) -> list[Kill]:
    def one(i_kill):
        i, (name, after) = i_kill
        try:
            return run_kill(SCENARIOS[name], workdir / f"{i:02d}-{name}", after)
        except Exception as exc:  # reported in the table, not a crash of the matrix
            return Kill(name, after, problems=[f"{type(exc).__name__}: {exc}"])

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(one, enumerate(kills)))


def plan_kills(n: int, seed: int) -> list[tuple[str, float]]:
    """Every scenario once at a random moment within its window, then random scenarios."""
    rng = random.Random(seed)
    names = list(SCENARIOS)
    chosen = names + [rng.choice(names) for _ in range(max(0, n - len(names)))]
    return [(name, round(rng.uniform(*SCENARIOS[name].kill_after_s), 2)) for name in chosen[:n]]


def table(results: list[Kill]) -> str:
    lines = [f"{'scenario':16} {'kill at':>8} {'rows':>7} {'record':>7} {'lost':>7}  result"]
    for r in results:
        verdict = "ok" if r.ok else "FAIL: " + "; ".join(r.problems or [f"lost {r.loss_s:.2f} s"])
        lines.append(
            f"{r.scenario:16} {r.kill_after_s:7.2f}s {r.rows:7d} {r.record_rows:7d} {r.loss_s:6.2f}s  {verdict}"
        )
    worst = max((r.loss_s for r in results if np.isfinite(r.loss_s)), default=float("nan"))
    lines.append(f"worst loss over {len(results)} kills: {worst:.2f} s (bound {LOSS_BOUND_S:g} s)")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m operando.benchmarks.crash_matrix", description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--parallel", type=int, default=4, help="runs at once (each is real time)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--keep", help="keep the runs in this directory")
    args = p.parse_args(argv)
    kills = plan_kills(args.kills, args.seed)
    print(f"crash matrix: {len(kills)} kills, {args.parallel} at a time, seed {args.seed}", flush=True)
    with tempfile.TemporaryDirectory(prefix="operando-crash-") as tmp:
        results = run_matrix(kills, Path(args.keep or tmp), args.parallel)
    print(table(results))
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
