"""Fixtures shared by the test modules."""

import gc
import shutil
import socket
import subprocess
import time

import pytest


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
