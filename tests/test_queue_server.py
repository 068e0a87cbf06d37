"""A queued operando plan through a real bluesky-queueserver and a real Redis.

Starts the RE manager (its own process, loopback sockets, encrypted control channel with a
fresh key pair, a throw-away Redis key prefix), queues ``operando_protocol`` with
bluesky-queueserver-api, and checks the catalog, the 0MQ document stream, the bound addresses
and that a client without the key is ignored. Redis: the one `.ci/run` / `make redis` started on
127.0.0.1:6379, else a private redis-server on a free port; skipped only if neither exists.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid

import numpy as np
import psutil
import pytest

redis = pytest.importorskip("redis")

from bluesky_queueserver import generate_zmq_keys  # noqa: E402
from bluesky_queueserver_api import BPlan  # noqa: E402
from bluesky_queueserver_api.comm_base import RequestTimeoutError  # noqa: E402
from bluesky_queueserver_api.zmq import REManagerAPI  # noqa: E402

from operando.acquisition.config import PROFILES_DIR  # noqa: E402
from operando.acquisition.queue.documents import subscribe_documents  # noqa: E402
from operando.acquisition.queue.server import KEY_ENV, manager_command  # noqa: E402
from operando.storage.catalog import open_catalog  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _family(proc: subprocess.Popen) -> list[psutil.Process]:
    try:
        return [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _stop(proc: subprocess.Popen) -> None:
    """The manager, its worker and anything else it started: terminate, then kill."""
    family = _family(proc)
    for p in reversed(family):
        try:
            p.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=10)
    for p in alive:
        p.kill()
    psutil.wait_procs(alive, timeout=5)
    proc.wait(5)


def _listening(family: list[psutil.Process]) -> list[tuple[str, int]]:
    return [
        (c.laddr.ip, c.laddr.port)
        for p in family
        for c in p.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]


def test_queued_operando_plan_runs_through_queue_server(tmp_path, redis_port, capsys):
    public_key, private_key = generate_zmq_keys()
    ports = {k: _free_port() for k in ("control", "info", "docs_in", "docs_out")}
    addr = {k: f"tcp://127.0.0.1:{p}" for k, p in ports.items()}
    prefix = f"operando_test_{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path / "data"
    argv, env = manager_command(
        data_dir,
        **addr,
        redis=f"127.0.0.1:{redis_port}",
        redis_prefix=prefix,
        env={**os.environ, KEY_ENV: private_key},
    )
    log = open(tmp_path / "manager.log", "w")
    manager = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    received: list[tuple[str, dict]] = []
    subscription = subscribe_documents(addr["docs_out"], lambda name, doc: received.append((name, doc)))
    api = REManagerAPI(zmq_control_addr=addr["control"], zmq_public_key=public_key)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                api.status()
                break
            except RequestTimeoutError:
                assert manager.poll() is None, (tmp_path / "manager.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "RE manager did not answer"
                time.sleep(0.2)

        # Without the key, the encrypted control socket ignores the client: no reply, no control.
        stranger = REManagerAPI(zmq_control_addr=addr["control"], timeout_recv=1, timeout_send=1)
        try:
            with pytest.raises(RequestTimeoutError):
                stranger.environment_open()
        finally:
            stranger.close()
        assert api.status()["worker_environment_exists"] is False

        assert api.environment_open()["success"]
        api.wait_for_idle(timeout=45)
        assert api.status()["worker_environment_exists"] is True

        # The virtual clock: every scheduled frame is taken however loaded the machine is (on the
        # scaled clock at 20000x a busy machine skipped frames: 9 moments instead of > 10).
        profile_file = tmp_path / "sim-virtual.yaml"
        profile_file.write_text(
            (PROFILES_DIR / "sim.yaml").read_text().replace("  seed: 0\n", "  seed: 0\n  clock: virtual\n")
        )
        plan = BPlan("operando_protocol", protocol="galvanostatic_cycling", profile=str(profile_file), speed=20000)
        assert api.item_add(plan)["success"]
        assert api.queue_start()["success"]
        api.wait_for_idle(timeout=45)
        result = api.history_get()["items"][-1]["result"]
        assert result["exit_status"] == "completed", result
        (uid,) = result["run_uids"]

        # A Raman area map through the same Lab code as IPython and `operando raman-map`; one
        # with a point beyond the stage's travel fails naming it, before anything moves.
        area = BPlan("operando_raman_map", profile="raman-map-sim", x_um=[-100, 100, 4], y_um=[-50, 50, 3])
        beyond = BPlan("operando_raman_map", profile="raman-map-sim", line=[[0, 0], [900, 0]], points=3)
        loop = BPlan("operando_mh_loop", fields_T=[0, 1], temperature_K=300, speed=50000)
        kelvin = BPlan("operando_skpm_map", profile="nanonis-sim", pixels=32, lines=4)
        for item in (area, loop, kelvin, beyond):  # a failed item stops the queue: it goes last
            assert api.item_add(item)["success"]
        assert api.queue_start()["success"]
        api.wait_for_idle(timeout=90)
        mapped, looped, kelvin_mapped, refused = (item["result"] for item in api.history_get()["items"][-4:])
        assert kelvin_mapped["exit_status"] == "completed", kelvin_mapped.get("msg")
        assert looped["exit_status"] == "completed", looped.get("msg", "") + looped.get("traceback", "")[-2000:]
        assert mapped["exit_status"] == "completed", mapped
        (map_uid,) = mapped["run_uids"]
        assert refused["exit_status"] == "failed" and not refused["run_uids"], refused
        assert "x = 900.0 µm is outside its travel -500 to 500 µm" in refused["msg"], refused

        # Every socket the manager and its worker listen on is bound to 127.0.0.1.
        family = _family(manager)
        assert len(family) >= 2  # the manager and its worker process
        listening = _listening(family)
        assert ("127.0.0.1", ports["control"]) in listening
        assert ("127.0.0.1", ports["docs_out"]) in listening
        assert {ip for ip, _ in listening} == {"127.0.0.1"}, listening

        api.environment_close()
        api.wait_for_idle(timeout=20)
    finally:
        api.close()
        subscription.stop()
        _stop(manager)
        log.close()
        store = redis.Redis(host="127.0.0.1", port=redis_port)
        leftovers = store.keys(f"{prefix}*")
        if leftovers:
            store.delete(*leftovers)
        store.close()
    # No process left behind.
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in family)

    # The run is in the data directory's catalog, with the echem and detector streams.
    with open_catalog(data_dir) as catalog:
        run = catalog.client[uid]
        assert run.metadata["start"]["protocol"] == "galvanostatic_cycling"
        queued_start = dict(run.metadata["start"])
        assert run.metadata["stop"]["exit_status"] == "success"
        streams = set(run)
        assert {"echem", "magnetometer", "raman"} <= streams, streams
        assert len(run["echem"]["Ewe"].read()) > 1000
        assert len(run["magnetometer"]["magnetometer-moment"].read()) > 10
        mapped = catalog.client[map_uid]
        assert mapped.metadata["start"]["map"]["shape"] == [3, 4]
        assert len(mapped["primary"]["stage-x"].read()) == 12

    # `operando runs --data DIR` lists it.
    from operando.acquisition.cli import main as operando

    # The same profile and protocol from the CLI: the same start-document metadata, suspenders
    # included (both go through acquisition/prepare.py).
    assert (
        operando(
            [
                "run",
                "galvanostatic_cycling",
                "--profile",
                str(tmp_path / "sim-virtual.yaml"),
                "--speed",
                "20000",
                "--data",
                str(tmp_path / "cli"),
                "--quiet",
                "--no-report",
            ]
        )
        == 0
    )
    with open_catalog(tmp_path / "cli") as catalog:
        cli_start = dict(catalog.client[-1].metadata["start"])
    per_run = {"uid", "time", "scan_id"}
    assert {k: v for k, v in queued_start.items() if k not in per_run} == {
        k: v for k, v in cli_start.items() if k not in per_run
    }
    assert [r["watch"] for r in queued_start["suspenders"]] == [
        "magnetometer.temperature",
        "magnetometer.field_stable",
        "raman.interlock_closed",
    ]

    capsys.readouterr()
    assert operando(["runs", "--data", str(data_dir)]) in (0, None)
    listing = capsys.readouterr().out
    assert uid[:8] in listing and "success" in listing, listing

    # The same documents arrived over 0MQ, decoded by the msgpack deserializer.
    names = [name for name, _ in received]
    starts = [doc for name, doc in received if name == "start"]
    assert [d["uid"] for d in starts] == [uid, map_uid, *looped["run_uids"], *kelvin_mapped["run_uids"]]
    assert [d.get("plan_name") for d in starts[1:]] == ["raman_map", "mh_loop", "skpm_map"]
    assert names[-1] == "stop" and received[-1][1]["run_start"] == kelvin_mapped["run_uids"][0]
    assert "stream_resource" in names and "stream_datum" in names
    spectra = [
        doc["data"]["raman-spectrum"]
        for name, doc in received
        if name == "event" and "raman-spectrum" in doc.get("data", {})
    ]
    spectra += [
        row
        for name, doc in received
        if name == "event_page" and "raman-spectrum" in doc.get("data", {})
        for row in doc["data"]["raman-spectrum"]
    ]
    assert spectra and isinstance(spectra[0], np.ndarray) and spectra[0].size > 100
