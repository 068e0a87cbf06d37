"""One cell of the wire-level fault matrix: a short run through ``run_experiment`` (the path
``operando run`` takes) with one ``sim.wire_faults`` entry, judged afterwards.

    python -m operando.benchmarks.fault_cells BACKEND FAULT WHEN WORKDIR

prints one JSON line (``CellResult``). ``fault_matrix.py`` runs cells in child processes so a
driver that hangs costs one cell its time limit, not the matrix.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# backend -> (shipped profile, the instrument that gets the fault, settings to override or None)
ROWS: dict[str, tuple[str, str, dict | None]] = {
    "methodscript": ("sim-methodscript", "potentiostat", None),
    "keithley2450": ("sim-keithley2450", "potentiostat", None),
    "mpms3": ("mpms3-sim", "magnetometer", None),
    "ocean_hdx": ("hdx-sim", "raman", None),
    "labspec": (
        "hdx-sim",
        "raman",
        {"backend": "labspec", "settings": {"exposure_s": 10, "accumulations": 1, "period_s": 120}},
    ),
    "nanonis": ("nanonis-sim", "skpm", None),
}
AFTER_S = 600.0  # mid-run and frame faults begin 10 simulated minutes into the run

# Rest, a 15-minute discharge and a charge: long enough for frames after AFTER_S on every row.
PROTOCOL = {
    "name": "fault_matrix_cycle",
    "steps": [
        {"kind": "rest", "duration_min": 5},
        {"kind": "cc", "c_rate": -4, "e_min_V": 0.01, "max_duration_h": 0.5},
        {"kind": "cc", "c_rate": 4, "e_max_V": 3.0, "max_duration_h": 0.5},
    ],
}


@dataclass
class CellResult:
    backend: str
    fault: str
    when: str
    outcome: str = "?"  # completed | frames lost | resumed | aborted | refused | UNSAFE ... (see judge)
    safe: bool = False
    exit_status: str = ""
    reason: str = ""  # the stop document's reason, the refusal's message, or a frame failure's
    current_A: float | None = None  # the simulated cell's current after the run (0: open circuit)
    echem_rows: int = 0
    echem_rows_in_file: int = 0
    frames: int = 0
    frame_failures: int = 0
    interruptions: list[str] = field(default_factory=list)
    relay: list[str] = field(default_factory=list)  # what the fault relay did
    problems: list[str] = field(default_factory=list)  # why the outcome is not a safe one
    raised: str = ""  # what run_experiment raised (a run that fails raises its error)
    wall_s: float = 0.0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))


def cell_profile(backend: str, fault: str, when: str, folder: Path) -> Path:
    from operando.acquisition.config import PROFILES_DIR

    name, instrument, override = ROWS[backend]
    profile = yaml.safe_load((PROFILES_DIR / f"{name}.yaml").read_text())
    inst = profile["instruments"][instrument]
    if override:
        inst.update({**override, "address": "sim"})
    sim = profile.setdefault("sim", {})
    sim["wire_faults"] = [{"instrument": instrument, "fault": fault, "when": when, "after_s": AFTER_S}]
    path = folder / f"{backend}-{fault}-{when}.yaml"
    path.write_text(yaml.safe_dump(profile, sort_keys=False))
    return path


def run_cell(backend: str, fault: str, when: str, workdir: Path) -> CellResult:
    from operando.acquisition import experiment
    from operando.acquisition.config import load_profile, load_protocol
    from operando.sim_devices.wire import fault_relay

    workdir.mkdir(parents=True, exist_ok=True)
    result = CellResult(backend, fault, when)
    profile = load_profile(cell_profile(backend, fault, when, workdir))
    protocol_path = workdir / "protocol.yaml"
    protocol_path.write_text(yaml.safe_dump(PROTOCOL, sort_keys=False))
    prepared, injectors = [], []
    prepare_run, relay = experiment.prepare_run, fault_relay.relay

    def watched_prepare(*args, **kwargs):  # the same call, kept so the lab can be read afterwards
        run = prepare_run(*args, **kwargs)
        prepared.append(run)
        return run

    def watched_relay(*args, **kwargs):  # kept too: a refused connection leaves no prepared run
        served, injector = relay(*args, **kwargs)
        injectors.append(injector)
        return served, injector

    experiment.prepare_run, fault_relay.relay = watched_prepare, watched_relay
    started = time.monotonic()
    raised = ""
    try:
        experiment.run_experiment(profile, load_protocol(protocol_path), workdir / "data", report=False)
    except BaseException as exc:  # judged below: a refusal, or a run that ended in an exception
        raised = f"{type(exc).__name__}: {exc}"
        result.raised = raised[:500]
    finally:
        experiment.prepare_run, fault_relay.relay = prepare_run, relay
    result.wall_s = round(time.monotonic() - started, 1)
    if prepared:
        instruments = prepared[0].instruments
        result.current_A = float(instruments.sim_lab.cell.current_A)
    elif injectors and injectors[0].lab is not None:  # refused before the run: the cell still counts
        result.current_A = float(injectors[0].lab.cell.current_A)
    result.relay = [event for injector in injectors for event in injector.events]
    _read_run(result, workdir / "data")
    judge(result, raised, ROWS[backend][1])
    return result


def _read_run(result: CellResult, data_dir: Path) -> None:
    from operando.storage.catalog import open_catalog

    if not (data_dir / "catalog.db").exists() and not (data_dir / "storage.sqlite").exists():
        return
    with open_catalog(data_dir) as catalog:
        client = catalog.client
        if len(client) == 0:
            return
        run = client.values().last()
        stop = run.metadata.get("stop") or {}
        result.exit_status = stop.get("exit_status", "no stop document")
        result.reason = stop.get("reason", "")
        counts = stop.get("num_events", {})
        streams = {name for name in run if counts.get(name, 1)}  # a declared stream may hold no event
        if "echem" in streams:
            result.echem_rows = len(run["echem"]["Ewe"].read())
        detectors = run.metadata["start"].get("detectors", [])
        result.frames = sum(len(run[d]["frame-time"].read()) for d in detectors if d in streams)
        if "frame_failures" in streams:
            errors = run["frame_failures"]["failure-error"].read()
            result.frame_failures = len(errors)
            if not result.reason and len(errors):
                result.reason = str(errors[0])
        if "interruptions" in streams:
            result.interruptions = [str(x) for x in run["interruptions"]["interruption"].read()]
    result.echem_rows_in_file = _rows_in_files(data_dir / "files")


def _rows_in_files(folder: Path) -> int:
    """Echem rows the potentiostat wrote to its HDF5 file (what the catalog must hold)."""
    import h5py

    rows = 0
    for path in folder.glob("potentiostat-*.h5"):
        with h5py.File(path, "r", swmr=True) as f:
            columns = [d for d in f.get("entry", f).values() if isinstance(d, h5py.Dataset) and d.shape]
            rows += min(d.shape[0] for d in columns) if columns else 0
    return rows


def judge(result: CellResult, raised: str, instrument: str) -> None:
    """Name the outcome and whether it is one the issue counts as safe."""
    if result.current_A not in (None, 0.0):
        result.problems.append(f"cell driven at {result.current_A:.3g} A after the run")
    if result.echem_rows != result.echem_rows_in_file:
        result.problems.append(
            f"echem: {result.echem_rows} rows in the catalog, {result.echem_rows_in_file} in the file"
        )
    if not result.exit_status:  # no run opened: refused before anything moved
        result.reason = raised
        result.outcome = "refused"
        if instrument not in raised:
            result.problems.append("the refusal does not name the instrument")
    elif result.exit_status == "success":
        if any("resum" in i.lower() for i in result.interruptions):
            result.outcome = "resumed"
        elif result.frame_failures:
            result.outcome = "frames lost"
            if instrument not in result.reason:
                result.problems.append("the frame failures do not name the instrument")
        else:
            result.outcome = "completed"
    else:
        result.outcome = "aborted"
        if instrument not in result.reason:
            result.problems.append("the stop reason does not name the instrument")
    result.safe = not result.problems
    if not result.safe:
        result.outcome = "UNSAFE: " + result.outcome


def main(argv: list[str] | None = None) -> None:
    backend, fault, when, workdir = (argv or sys.argv[1:])[:4]
    result = run_cell(backend, fault, when, Path(workdir))
    print("FAULT-CELL " + result.to_json(), flush=True)


if __name__ == "__main__":
    main()
