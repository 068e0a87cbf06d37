"""Fixtures shared by the test modules."""

import gc
import shutil
import socket
import subprocess
import textwrap
import time

import pytest
import yaml

# One discharge-charge cycle: what the several-cell tests run on each cell
ONE_CYCLE = textwrap.dedent(
    """
    name: one_cycle
    steps:
      - {kind: rest, duration_min: 5}
      - {kind: cc, c_rate: -2, e_min_V: 0.01, max_duration_h: 1}
      - {kind: cc, c_rate: 2, e_max_V: 3.0, max_duration_h: 1}
    """
)


@pytest.fixture(scope="session")
def several_cells():
    """A factory: ``(folder, edit=None, cells=None)`` writes ``lab.yaml`` (sim-16-cells on the
    virtual clock at 10^6, ``cells`` kept if given, then ``edit(data)``) and ``one.yaml`` (one
    cycle) into ``folder``; returns their paths."""
    from operando.acquisition.config import PROFILES_DIR

    def write(folder, edit=None, cells=None):
        data = yaml.safe_load((PROFILES_DIR / "sim-16-cells.yaml").read_text())
        data["sim"]["speed"] = 1e6  # the virtual clock: only the host's speed limits the run
        if cells is not None:
            data["cells"] = {name: data["cells"][name] for name in cells}
        if edit is not None:
            edit(data)
        (folder / "lab.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        (folder / "one.yaml").write_text(ONE_CYCLE)
        return folder / "lab.yaml", folder / "one.yaml"

    return write


@pytest.fixture(scope="session")
def three_cell_run(tmp_path_factory, several_cells):
    """ch01, ch03 and ch05 of sim-16-cells, one cycle each, stored: (data dir, uid)."""
    from operando.acquisition.config import load_profile, load_protocol
    from operando.acquisition.experiment import run_experiment

    folder = tmp_path_factory.mktemp("three-cells")
    profile, protocol = several_cells(folder, cells=["ch01", "ch03", "ch05"])
    result = run_experiment(load_profile(profile), load_protocol(protocol), folder / "data", report=False)
    return folder / "data", result.uid


@pytest.fixture
def gc_on_the_gui_thread():
    """Cyclic garbage (closed windows, pyqtgraph's parentless menus) is collected here, on the GUI
    thread, not by the automatic collector on whichever thread allocates (the catalog's in-process
    server, a run's threads): Qt destructors run there deadlock with the GUI thread's (Qt's
    signal-slot mutex against the GIL; seen as a hung test_gui_window after the other modules)."""
    gc.collect()
    gc.disable()
    yield
    gc.collect()
    gc.enable()


@pytest.fixture
def open_from_browser():
    """As a user opens a stored run in the GUI: search the runs for its uid, open the row found."""

    def open_run(window, uid: str) -> None:
        window.browser.text.setText(uid[:8])
        window.browser.search()
        assert window.browser.table.rowCount() == 1
        window.browser.open_row(0)
        assert window.data.start["uid"] == uid

    return open_run


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory):
    """A Redis on loopback for the queue server: the one `.ci/run` / `make redis` started on
    127.0.0.1:6379, else a private redis-server on a free port; skipped, saying why, if neither."""
    redis = pytest.importorskip("redis")

    def ping(port: int) -> bool:
        try:
            return bool(redis.Redis(host="127.0.0.1", port=port, socket_timeout=0.5).ping())
        except redis.exceptions.RedisError:
            return False

    if ping(6379):
        yield 6379
        return
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("the queue server needs Redis: none on 127.0.0.1:6379 and no redis-server (run `make redis`)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    workdir = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not ping(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"redis-server did not start (exit {proc.poll()})")
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
