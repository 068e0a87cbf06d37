"""GUI benchmark: panel refresh rate with 1,000,000 echem points, and time to open long runs.

Run with ``python -m operando.benchmarks.gui`` (offscreen). Measured in one process:

  (1) time to open a stored run from the catalog into every panel (the click in the run
      browser to every panel drawn and painted), for a 24 h run at 10 Hz (864,000 echem rows,
      17,280 magnetometer readings, 2,880 Raman spectra) and a 7-day run (seven times that),
      written by ``long_run.py`` the way real runs are stored (echem through HDF5 and
      StreamResource/StreamDatum, detectors as events); against the time to read their arrays
      whole (``stored.read_run``, the baseline, what opening did before 2026-12-01), measured
      right after in the same process. Goals: <= 2 s (24 h) and <= 3 s (7 days). Writing the
      week takes minutes: ``--runs DIR`` keeps both runs there for the next invocation;
  (2) frames/s with 1,000,000 echem points and 50 new rows per frame, first idle (baseline), then
      while a simulated run acquires, in the GUI's run-control thread and then in a child process
      (``gui/process_control.py``, what ``operando gui`` uses); goal >= 30 frames/s. Three
      kinds of frame: the E/I panel redrawn and painted; the window's tick (documents drained,
      every changed panel redrawn) with what changed painted, as the window does 10 times a
      second; and the same tick followed by a forced repaint of every widget of the window (the
      measure used before 2026-11-25 12:30). The window's own timer is stopped meanwhile: the
      benchmark drives the frames.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import textwrap
import time
from pathlib import Path

FPS_GOAL = 30.0
LONG_RUNS = (  # (label, hours, goal in seconds to every panel drawn)
    ("24 h", 24.0, 2.0),
    ("7 days", 168.0, 3.0),
)
DAY_PROTOCOL = textwrap.dedent(
    """
    name: one_day
    steps:
      - {kind: rest, duration_min: 10}
      - kind: loop
        repeat: 12
        steps:
          - {kind: cc, c_rate: -1, e_min_V: 0.01, max_duration_h: 1}
          - {kind: cc, c_rate: 1, e_max_V: 3.0, max_duration_h: 1}
    """
)


def million_points(n: int):
    """A RunData holding ``n`` echem samples of the simulated cell (many cycles) and a few frames."""
    from operando.acquisition.config import load_profile
    from operando.devices.techniques import ConstantCurrent, Limits, ScheduledStep
    from operando.gui.model import RunData
    from operando.sim_devices.lab import build_sim_lab

    profile = load_profile("sim")
    lab = build_sim_lab(material="fe_li2o", active_mass_g=0.002, sample_interval_s=1.0)
    amps = profile.sample.capacity_mAh / 1000
    lim = Limits(e_min_V=0.01, e_max_V=3.0, i_max_A=0.01)
    steps = []
    for c in range(1, 400):
        for sign in (-1, 1):
            tech = ConstantCurrent(current_A=sign * amps, e_min_V=lim.e_min_V, e_max_V=lim.e_max_V, max_duration_s=3600)
            steps.append(ScheduledStep(technique=tech, cycle=c, step=len(steps) + 1))
    pot = lab.potentiostat
    pot.load(steps)
    pot.start()
    pot.advance_to(pot.start_time + (n + 100_000) * 1.0)  # spare rows: 50 appended per frame
    block = pot.drain()
    data = RunData()
    data.set_start(
        {
            "uid": "bench",
            "sample": profile.sample.model_dump(mode="json"),
            "instruments": {"potentiostat": {"kind": "potentiostat", "backend": "sim"}},
        }
    )
    keys = {k: {"dtype": "number", "shape": []} for k in block}
    data.add_stream("echem", keys)
    data.append("echem", {k: v[:n] for k, v in block.items()})
    return data, {k: v[n:] for k, v in block.items()}


def frames_per_second(app, data, extra: dict, seconds: float, draw, k: int = 0) -> float:
    """Append 50 rows, then ``draw()`` (refresh and paint synchronously), as often as possible."""
    frames = 0
    t_end = time.perf_counter() + seconds
    start = time.perf_counter()
    m = len(extra["timestamp"]) // 50 * 50
    span = float(extra["timestamp"][m - 1] - extra["timestamp"][0]) + 1.0
    while time.perf_counter() < t_end:
        # the spare rows again, shifted later, when a fast panel has used them all up
        a, lap = k % m, k // m
        rows = {key: v[a : a + 50] for key, v in extra.items()}
        rows["timestamp"] = rows["timestamp"] + lap * span
        data.append("echem", rows)
        k += 50
        draw()
        app.processEvents()
        frames += 1
    return frames / (time.perf_counter() - start), k


def long_runs(directory: Path, rate_hz: float = 10.0) -> dict[str, tuple[str, float]]:
    """label -> (uid, seconds to write it; 0 if it was already there) of the LONG_RUNS in
    ``directory``'s catalog, written (long_run.py) unless a run of that composition is there."""
    from operando.benchmarks.long_run import make_long_run
    from operando.storage.catalog import open_catalog, resolve_data_dir

    data_dir = resolve_data_dir(directory)
    out = {}
    with open_catalog(data_dir) as cat:
        have = {}
        for run in cat.client.values():
            comp = run.metadata["start"].get("composition") or {}
            have[(comp.get("hours"), comp.get("rate_hz"))] = run.metadata["start"]["uid"]
        for label, hours, _goal in LONG_RUNS:
            uid = have.get((hours, rate_hz))
            if uid is None:
                print(f"writing the {label} run at {rate_hz:g} Hz into {data_dir} ...", flush=True)
                made = make_long_run(cat.client, data_dir, hours=hours, rate_hz=rate_hz)
                out[label] = (made.uid, made.seconds)
            else:
                out[label] = (uid, 0.0)
    return out


def open_long_runs(app, window, directory: Path) -> bool:
    """(1): open each long run in ``window`` as the run browser does, then read it whole."""
    from operando.gui.stored import read_run

    runs = long_runs(directory)
    window.release_catalog()
    window.data_dir = directory
    window.catalog_client()  # the browser's catalog is open before the user clicks a run
    ok = True
    for label, _hours, goal in LONG_RUNS:
        uid, wrote_s = runs[label]
        t = time.perf_counter()
        window.open_run(uid)
        drawn = time.perf_counter()
        window.repaint()
        app.processEvents()
        open_s = time.perf_counter() - t
        stages = {**window.open_timings, "painted": time.perf_counter() - drawn}
        stored = window.stored
        waited = time.perf_counter()  # the background reads that follow, before the baseline
        while not stored.background.idle and time.perf_counter() - waited < 60:
            app.processEvents()
            time.sleep(0.01)
        t = time.perf_counter()
        whole = read_run(window.catalog_client()[uid])
        read_s = time.perf_counter() - t
        counts = {name: len(v) for name, v in whole.times.items() if len(v)}
        spectra = whole.streams["raman"][2]["raman-spectrum"].shape if "raman" in whole.streams else ()
        del whole
        span_h = (stored.t_end - stored.t0) / 3600
        met = open_s <= goal
        ok &= met
        written = f"; written in {wrote_s:.0f} s" if wrote_s else ""
        rows = ", ".join(f"{k} {v:,}" for k, v in counts.items())
        print(
            f"open the {label} run ({span_h:.1f} h at 10 Hz; rows {rows}; "
            f"spectra {' x '.join(f'{d:,}' for d in spectra)}{written}):\n"
            f"  {open_s:.2f} s to every panel drawn (goal <= {goal:g} s: {'met' if met else 'NOT met'}); "
            f"reading its arrays whole (the baseline): {read_s:.2f} s, {read_s / open_s:.1f}x"
        )
        print("  stages: " + " · ".join(f"{k} {v:.2f}" for k, v in stages.items()))
    window.stored.close()
    window.stored = None
    window.release_catalog()
    return ok


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m operando.benchmarks.gui", description=__doc__)
    p.add_argument("--points", type=int, default=1_000_000)
    p.add_argument("--seconds", type=float, default=5.0, help="per frame-rate measurement")
    p.add_argument(
        "--runs", type=Path, default=None, help="data directory for the long runs, kept (default: a temporary one)"
    )
    p.add_argument("--skip", choices=["open", "fps"], action="append", default=[], help="leave a measurement out")
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from operando.acquisition.config import load_profile, load_protocol
    from operando.gui.app import qt_app
    from operando.gui.controller import InProcessRunControl
    from operando.gui.process_control import ProcessRunControl
    from operando.gui.window import MainWindow

    app = qt_app(offscreen=True)
    ok = True
    with tempfile.TemporaryDirectory(prefix="operando-gui-bench-") as tmp:
        tmp = Path(tmp)
        (tmp / "data").mkdir()
        window = MainWindow(tmp / "data")
        window.resize(1680, 1050)
        window.show()
        app.processEvents()

        # (1) open the long runs
        if "open" not in args.skip:
            ok &= open_long_runs(app, window, (args.runs or tmp / "long").absolute())
            window.data_dir = tmp / "data"
        if "fps" in args.skip:
            window.close()
            return 0 if ok else 1
        (tmp / "day.yaml").write_text(DAY_PROTOCOL)

        # (2) refresh rate with a million points
        data, extra = million_points(args.points)
        window.viewing_live = False
        window.data = data
        window.refresh(force=True)

        window.timer.stop()  # the benchmark drives the frames (the loop's processEvents paints)

        def panel():  # the 1,000,000-point panel: E and I vs time
            window.echem.refresh(data)

        def whole():  # what the window's timer does: drain documents, redraw what changed
            window.tick()

        def full():  # and every widget of the window repainted, changed or not
            window.tick()
            window.repaint()

        kinds = (("panel", panel), ("window", whole), ("full", full))
        rows, offset = {}, 0
        for label, draw in kinds:
            fps, offset = frames_per_second(app, data, extra, args.seconds, draw, offset)
            rows[label, "idle"] = fps
        # the day's protocol at 2000x (43 s of wall time): still acquiring when the frames end
        samples = {}
        for where, control in (("thread", InProcessRunControl()), ("process", ProcessRunControl())):
            window.control = control
            if where == "process":
                window.release_catalog()  # as the window's Start does: the child writes the catalog
            control.start(load_profile("sim"), load_protocol(tmp / "day.yaml"), tmp / "data", speed=2000)
            while control.status.state in ("idle", "starting"):
                time.sleep(0.05)
            window.tick()  # documents so far
            before = control.status.progress.samples if control.status.progress else 0
            for label, draw in kinds:
                fps, offset = frames_per_second(app, data, extra, args.seconds, draw, offset)
                rows[label, where] = fps
            after = control.status.progress.samples if control.status.progress else 0
            samples[where] = (after - before, control.status.state)
            control.abort("benchmark over")
            control.wait(60)
        print(
            f"refresh with {data.echem.rows:,} echem points, while a simulated run (2000x) acquires "
            f"in the GUI's process (a thread: {samples['thread'][0]:,} samples meanwhile) or in a "
            f"child process ({samples['process'][0]:,} samples):"
        )
        for label, what in (
            ("panel", "E and I vs time panel"),
            ("window", "window tick, 7 panels"),
            ("full", "tick + full repaint"),
        ):
            idle, thread, proc = rows[label, "idle"], rows[label, "thread"], rows[label, "process"]
            print(
                f"  {what:22} {idle:6.1f} frames/s idle; acquiring: in a thread {thread:6.1f} "
                f"(ratio {thread / idle:.2f}), in a child process {proc:6.1f} (ratio {proc / idle:.2f})"
            )
        print(
            f"  goal: >= {FPS_GOAL:g} frames/s for the 1,000,000-point panel while acquiring "
            "(the window's default: a child process)"
        )
        for where, (_n, state) in samples.items():
            if state != "running":
                print(f"  note: the run in a {where} was {state!r} when measured, not running")
                ok = False
        ok &= rows["panel", "process"] >= FPS_GOAL
        window.close()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
