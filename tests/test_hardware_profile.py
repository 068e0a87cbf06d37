"""An all-hardware profile: the potentiostat's address points at its wire-level simulator started as
a separate process (as a real instrument would be), so the run's own process simulates nothing.

The run goes through `operando run` in a child process that records every simulated lab, cell or
simulation clock made while it runs, and afterwards every live object whose class comes from
``operando.sim_devices`` (registrations, which only describe what could be simulated, aside):
both lists must be empty, and the run must have used the wall clock.
"""

import subprocess
import sys
import textwrap

import pytest
import yaml

from operando.acquisition.config import PROFILES_DIR
from operando.storage.catalog import open_catalog

RUN_AND_LOOK = """
import gc, sys
from operando.sim_devices import cell, clock, lab
made = []  # every simulation object made during the run, whenever it is collected
for cls in (lab.SimLab, cell.SimCell, clock.SimClock, clock.VirtualClock):
    def init(self, *a, __init=cls.__init__, **k):
        made.append(type(self).__name__)
        __init(self, *a, **k)
    cls.__init__ = init
from operando.acquisition.cli import main
code = main(sys.argv[1:])
gc.collect()
def module(o):
    m = getattr(type(o), "__module__", None)  # some types' __module__ is a descriptor
    return m if isinstance(m, str) else ""
alive = sorted({module(o) + "." + type(o).__qualname__ for o in gc.get_objects()
                if module(o).startswith("operando.sim_devices")
                and module(o) != "operando.sim_devices.wire.registry"})
print("SIMULATION OBJECTS:", sorted(set(made)), alive)
sys.exit(code)
"""

PROTOCOL = textwrap.dedent(
    """
    name: hardware_short
    sampling: {interval_s: 0.5}
    steps:
      - {kind: rest, duration_s: 2}
      - {kind: cc, c_rate: 1, e_max_V: 3.0, max_duration_s: 4}
    """
)

SERVE = {
    "methodscript": ["potentiostat-methodscript"],
    "keithley2450": ["keithley2450", "--port", "0"],
}


def _serve(backend):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "operando.acquisition.cli",
            "sim",
            "serve",
            *SERVE[backend],
            "--speed",
            "1",
            "--active-mass-g",
            "0.002",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline().strip()
    assert line, proc.stderr.read()
    return proc, line.split()[-1]  # a pty path, or "Serving keithley2450 on TCPIP::..."


@pytest.mark.parametrize("backend", sorted(SERVE))
def test_an_all_hardware_run_has_no_simulation_in_its_process(tmp_path, backend):
    server, address = _serve(backend)
    try:
        base = yaml.safe_load((PROFILES_DIR / f"sim-{backend}.yaml").read_text())
        pot = {**base["instruments"]["potentiostat"], "address": address}
        profile = {**base, "name": f"hardware-{backend}", "instruments": {"potentiostat": pot}}
        profile.pop("sim")
        (tmp_path / "lab.yaml").write_text(yaml.safe_dump(profile))
        (tmp_path / "short.yaml").write_text(PROTOCOL)
        data = tmp_path / "data"
        run = subprocess.run(
            [
                sys.executable,
                "-c",
                RUN_AND_LOOK,
                "run",
                str(tmp_path / "short.yaml"),
                "--profile",
                str(tmp_path / "lab.yaml"),
                "--data",
                str(data),
                "--quiet",
                "--no-report",
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )
    finally:
        server.terminate()
        server.wait(10)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "SIMULATION OBJECTS: [] []" in run.stdout, run.stdout
    with open_catalog(data) as catalog:
        stored = catalog.client[-1]
        start = stored.metadata["start"]
        assert start["clock_speed"] == 1.0  # the wall clock
        assert start["instruments"]["potentiostat"]["address"] == address
        assert stored.metadata["stop"]["exit_status"] == "success"
        t = stored["echem"]["timestamp"].read()
        assert len(t) >= 8 and 5.0 < t[-1] - t[0] < 12.0  # 6 s of protocol, in real time
