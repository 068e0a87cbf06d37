"""A run started from the GUI — the default child-process path, through the window — honours the
profile's suspenders: the laser interlock opens mid-run, echem is held at open circuit until it
closes, then the sequence resumes. The same profile and protocol run from the CLI give the same
start-document metadata (suspenders included).
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # CI has no display
os.environ.setdefault("MPLBACKEND", "Agg")

import textwrap

import numpy as np
import pytest
import yaml

from operando.acquisition.cli import main as operando
from operando.acquisition.config import PROFILES_DIR
from operando.gui.controller import FAILED, FINISHED
from operando.gui.plots import configure
from operando.gui.process_control import ProcessRunControl
from operando.gui.window import MainWindow
from operando.storage.catalog import open_catalog

SPEED = 500
OPEN_AT_S, OPEN_FOR_S = 900.0, 600.0  # experiment seconds after the instruments are built
PROTOCOL = textwrap.dedent(
    """
    name: interlock_discharge
    steps:
      - {kind: rest, duration_min: 5}
      - {kind: cc, c_rate: -0.5, e_min_V: 0.01, max_duration_min: 40}
    """
)
DIFFERS_PER_RUN = {"uid", "time", "scan_id"}


pytestmark = pytest.mark.usefixtures("gc_on_the_gui_thread")


def _profile(tmp_path):
    data = yaml.safe_load((PROFILES_DIR / "sim.yaml").read_text())
    assert {"watch": "raman.interlock_closed", "when": False, "echem": "hold"} in data["suspenders"]
    data["instruments"]["raman"]["settings"].update(period_s=120, exposure_s=5, accumulations=1)
    # The virtual clock: the interlock opens and closes at its experiment times and every frame
    # and suspension lands where the schedule puts it, however loaded the machine (the GUI fits
    # Raman bands meanwhile; a scaled clock let a busy machine move the hold's edges).
    data["sim"]["clock"] = "virtual"
    data["sim"]["faults"] = [
        {"instrument": "raman", "kind": "interlock_open", "at_s": OPEN_AT_S, "duration_s": OPEN_FOR_S}
    ]
    path = tmp_path / "interlock.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_gui_child_process_run_holds_echem_while_the_interlock_is_open(qtbot, tmp_path):
    profile, protocol = _profile(tmp_path), tmp_path / "interlock_discharge.yaml"
    protocol.write_text(PROTOCOL)
    data = tmp_path / "data"
    data.mkdir()
    configure()
    w = MainWindow(data / "gui", ProcessRunControl())
    qtbot.addWidget(w)
    w.setup.load_profile(str(profile))
    w.setup.load_protocol(str(protocol))
    w.setup.speed.setValue(SPEED)
    assert w.setup.check(), [p.message for p in w.setup.problems]
    control = w.control
    try:
        w.start_run()
        qtbot.waitUntil(lambda: control.status.state in (FINISHED, FAILED), timeout=120_000)
        assert control.status.state == FINISHED, control.status.message
    finally:
        if control.busy:
            control.abort("test teardown")
            control.wait(60)
        w.close()

    with open_catalog(data / "gui") as catalog:
        run = catalog.client[-1]
        gui_start = dict(run.metadata["start"])
        assert run.metadata["stop"]["exit_status"] == "success"
        interruptions = [str(x) for x in run["interruptions"]["interruption"].read()]
        echem = {k: run["echem"][k].read() for k in ("timestamp", "I", "step")}
        raman_t = run["raman"]["raman-exposure_start"].read()

    t, current, step = echem["timestamp"], echem["I"], echem["step"]
    charge = step == 2  # the discharge step (the cell as assembled rests at 2.9 V)
    i_charge = np.median(current[charge][current[charge] < 0])
    # the interlock opened in the discharge step; the cell sat at open circuit for that long
    zero = charge & (current == 0.0)
    assert zero.sum() >= 0.8 * OPEN_FOR_S  # 1 s samples at 0 A while held
    held_from, held_to = t[zero].min(), t[zero].max()
    assert 0.8 * OPEN_FOR_S <= held_to - held_from <= OPEN_FOR_S + 120
    assert np.all(np.isclose(current[charge & (t > held_to + 2)], i_charge, rtol=1e-3))  # resumed
    assert np.all(np.isclose(current[charge & (t < held_from - 2)], i_charge, rtol=1e-3))
    assert not np.any((raman_t > held_from + 1) & (raman_t < held_to - 1))  # no frame meanwhile
    # the suspension, recorded with its cause
    assert any("raman.interlock_closed is false" in x for x in interruptions), interruptions

    # The same profile and protocol from the CLI: the same description of the run.
    code = operando(
        [
            "run",
            str(protocol),
            "--profile",
            str(profile),
            "--speed",
            str(SPEED),
            "--data",
            str(data / "cli"),
            "--quiet",
            "--no-report",
        ]
    )
    assert code == 0
    with open_catalog(data / "cli") as catalog:
        cli_start = dict(catalog.client[-1].metadata["start"])
    assert {k: v for k, v in gui_start.items() if k not in DIFFERS_PER_RUN} == {
        k: v for k, v in cli_start.items() if k not in DIFFERS_PER_RUN
    }
    assert gui_start["suspenders"][2]["watch"] == "raman.interlock_closed"
