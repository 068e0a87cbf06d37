"""The security promises (docs/remote.md, "Security"), as tests on the real processes.

1. Every network service the project starts listens on loopback unless told otherwise, checked on
   the real listening sockets (psutil) of the process and its children, each started through its
   real entry point with its default host: every TCP simulator of ``operando sim serve`` (the
   registry's names; ``potentiostat-methodscript`` serves a pseudo-terminal, no socket at all, and
   is checked to listen on nothing), ``operando serve`` (the stock Tiled server) and the queue
   server (``python -m operando.acquisition.queue.server``: the RE manager's control and info
   sockets, the worker's document proxy in and out).
2. Remote control refuses requests without the key: the queue server's control socket (CURVE
   encrypted once ``$QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER`` is set) does not answer a client
   without the public key or with another key, and nothing it asked for happens; ``operando
   serve`` answers 401 without ``api_key`` or with a wrong one, and nothing is written.
3. No pickle crosses a socket: a pickle whose unpickling would create a marker file is sent to
   every listener that reads bytes (each TCP simulator; the queue server's control socket inside
   a 0MQ message and as raw bytes, its info and document sockets as raw bytes, and through the
   document proxy to a subscriber); the marker never appears and every listener still serves.
4. Configuration cannot execute code: profiles and protocols with YAML python tags are refused
   by ``load_profile`` / ``load_protocol`` and by ``operando run`` with an error naming the file.

The queue server needs Redis: the one on 127.0.0.1:6379 (``make redis``), else a private
``redis-server`` on a free port; those tests are skipped, saying so, when there is neither.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
import yaml

from operando.acquisition.backends import all_wire_simulators
from operando.acquisition.config import ConfigError, load_profile, load_protocol
from operando.devices.drivers import obp
from operando.devices.drivers.labspec import LabSpecClient
from operando.devices.drivers.mpms3 import Mpms3Client
from operando.devices.drivers.nanonis import NanonisClient
from operando.plans.protocol import ProtocolError

LOOPBACK = {"127.0.0.1", "::1"}
PTY_SIMULATORS = {"potentiostat-methodscript"}  # a pseudo-terminal: no socket to check
READY_S = 30.0


# ---- helpers -------------------------------------------------------------------------------------
class _Touch:
    """Unpickling this creates ``path`` (pathlib.Path.touch): a harmless stand-in for code."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


def pickle_bomb(marker: Path) -> bytes:
    return pickle.dumps({"doc": _Touch(marker)}, protocol=pickle.HIGHEST_PROTOCOL)


def _family(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _listening(pid: int) -> list[tuple[str, int]]:
    """Every (address, port) the process and its children listen on (TCP, IPv4 and IPv6)."""
    out = []
    for p in _family(pid):
        try:
            connections = p.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        out += [(c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN]
    return out


def _stop(proc: subprocess.Popen) -> None:
    """The process and whatever it started: terminate, then kill."""
    family = _family(proc.pid)
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


def _start(argv: list[str], cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """``python -m operando.acquisition.cli ARGV`` (its real entry point), output on a pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "operando.acquisition.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env=env,
    )


def _wait_ready(proc: subprocess.Popen, ready: str) -> list[str]:
    """The lines it printed up to the first that starts with ``ready``; what it prints after is
    read on a thread (a full pipe would block it)."""
    lines = []
    for line in proc.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith(ready):
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return lines
    raise AssertionError(f"no {ready!r} line; exit {proc.wait()}: " + "\n".join(lines))


def _host_port(address: str) -> tuple[str, int]:
    if address.startswith("TCPIP::"):  # the Keithley's VISA resource TCPIP::HOST::PORT::SOCKET
        _, host, port, _ = address.split("::")
        return host, int(port)
    host, port = address.rsplit(":", 1)
    return host, int(port)


def _send_and_drain(host: str, port: int, payload: bytes, wait_s: float = 0.3) -> bytes:
    """Send ``payload`` on a fresh connection, collect what comes back for ``wait_s``, close."""
    got = b""
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(payload)
        deadline = time.monotonic() + wait_s
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            got += chunk
    return got


# ---- how each TCP simulator is asked something it must answer ------------------------------------
def _probe_keithley2450(host: str, port: int) -> str:
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(b"*IDN?\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = sock.recv(4096)
            assert chunk, "the Keithley simulator closed without answering *IDN?"
            reply += chunk
    return reply.decode("ascii").strip()


def _probe_labspec(host: str, port: int) -> str:
    client = LabSpecClient(f"{host}:{port}", timeout_s=5).open()
    try:
        return client.identification
    finally:
        client.close()


def _probe_ocean_hdx(host: str, port: int) -> str:
    frames = obp.FrameBuffer()
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(obp.encode_request(obp.GET_SERIAL))
        while True:
            chunk = sock.recv(65536)
            assert chunk, "the HDX simulator closed without answering GET_SERIAL"
            frames.feed(chunk)
            for frame in frames.frames():
                reply = obp.decode_reply(frame, obp.GET_SERIAL)
                assert not reply.nack, reply.error_name
                return reply.data.decode("ascii")


def _probe_nanonis(host: str, port: int) -> str:
    with NanonisClient(host, port, timeout_s=5) as client:
        return f"bias {client.bias_get():g} V"


def _probe_mpms3(host: str, port: int) -> str:
    client = Mpms3Client(f"{host}:{port}").open()
    try:
        return f"field {client.get_field()[0]:g} Oe"
    finally:
        client.close()


PROBES = {
    "keithley2450": _probe_keithley2450,
    "labspec": _probe_labspec,
    "ocean-hdx": _probe_ocean_hdx,
    "nanonis": _probe_nanonis,
    "mpms3": _probe_mpms3,
}


def test_every_registered_simulator_is_covered():
    names = {sim.command for sim in all_wire_simulators()}
    assert names == set(PROBES) | PTY_SIMULATORS, "a new wire simulator: add its probe here"


@pytest.fixture(scope="module")
def simulators(tmp_path_factory):
    """Every `operando sim serve NAME` with its default host, started at once: name -> (process,
    host, port, the lines it printed)."""
    workdir = tmp_path_factory.mktemp("sims")
    extra = {"mpms3": ["--dat", str(workdir / "mpms3.dat")]}
    started = {}
    try:
        for name in sorted(PROBES):
            started[name] = _start(["sim", "serve", name, "--port", "0", *extra.get(name, [])], workdir)
        running = {}
        for name, proc in started.items():
            lines = _wait_ready(proc, f"Serving {name} on ")
            address = next(x for x in lines if x.startswith(f"Serving {name} on ")).split()[-1]
            running[name] = (proc, *_host_port(address), lines)
        yield running
    finally:
        for proc in started.values():
            _stop(proc)


@pytest.mark.parametrize("name", sorted(PROBES))
def test_simulator_listens_on_loopback_only(simulators, name):
    proc, host, port, _ = simulators[name]
    assert host in LOOPBACK
    listening = _listening(proc.pid)
    assert (host, port) in listening
    assert {ip for ip, _ in listening} <= LOOPBACK, listening


def test_pty_simulator_listens_on_nothing(tmp_path):
    proc = _start(["sim", "serve", "potentiostat-methodscript"], tmp_path)
    try:
        _wait_ready(proc, "/dev/")
        assert _listening(proc.pid) == []
    finally:
        _stop(proc)


def test_the_pickle_payload_would_run_if_unpickled(tmp_path):
    """The payload the listeners are fed is live: unpickling it creates the marker."""
    marker = tmp_path / "unpickled"
    pickle.loads(pickle_bomb(marker))
    assert marker.exists()


def _feed_pickles(host: str, port: int, marker: Path) -> int:
    """The pickle as is, as a line, after a header's worth of zeros, each on a new connection;
    returns how many were delivered (a listener that stopped listening refuses the rest)."""
    bomb = pickle_bomb(marker)
    for sent, payload in enumerate((bomb, bomb + b"\r\n", b"\x00" * 64 + bomb)):
        try:
            _send_and_drain(host, port, payload)
        except ConnectionRefusedError:
            return sent
    return 3


# (These follow the loopback tests: QD's MultiPyVu server, the mpms3 simulator's peer, stops
# listening on the first malformed packet.)
@pytest.mark.parametrize("name", sorted(PROBES))
def test_simulator_never_unpickles(simulators, tmp_path, name):
    proc, host, port, _ = simulators[name]
    marker = tmp_path / f"{name}-unpickled"
    assert _feed_pickles(host, port, marker) >= 1
    assert proc.poll() is None, f"{name} died on a pickle"
    assert not marker.exists()


MULTIPYVU_STOPS = pytest.mark.xfail(
    strict=True,
    reason="QD's MultiPyVu 3.8.0 server (the mpms3 simulator's peer, and a real MPMS3's) ends its "
    "serving thread on the first packet that is not its JSON framing: SocketError, then a NameError "
    "on the Windows-only pywin_com_error in SocketMessageServer.monitor_socket_connection; the "
    "process lives on, listening on nothing",
)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=MULTIPYVU_STOPS) if n == "mpms3" else n for n in sorted(PROBES)]
)
def test_simulator_keeps_serving_after_a_pickle(simulators, tmp_path, name):
    proc, host, port, _ = simulators[name]
    marker = tmp_path / f"{name}-unpickled"
    _feed_pickles(host, port, marker)
    assert PROBES[name](host, port)  # a fresh client is answered in the instrument's protocol
    assert proc.poll() is None and not marker.exists()


# ---- operando serve: the stock Tiled server --------------------------------------------------------
@pytest.fixture(scope="module")
def tiled_server(tmp_path_factory):
    data = tmp_path_factory.mktemp("served")
    key = uuid.uuid4().hex
    env = {**os.environ, "OPERANDO_API_KEY": key}
    proc = _start(["serve", "--data", str(data), "--port", "0"], data, env)
    try:
        line = _wait_ready(proc, "Serving http://")[-1]
        yield proc, line.split()[-1], key
    finally:
        _stop(proc)


def test_operando_serve_listens_on_loopback_only(tiled_server):
    proc, uri, _ = tiled_server
    host, port = _host_port(uri.split("/")[2])
    assert host in LOOPBACK
    listening = _listening(proc.pid)
    assert (host, port) in listening
    assert {ip for ip, _ in listening} <= LOOPBACK, listening


def test_operando_serve_refuses_requests_without_the_key(tiled_server):
    httpx = pytest.importorskip("httpx")
    _, uri, key = tiled_server
    base = uri.split("?")[0]

    def node(name: str) -> dict:  # a new container at the catalog's top level
        return {"id": name, "structure_family": "container", "metadata": {"planted": True}, "specs": []}

    # One request per connection, no cookies kept (as a script would send them).
    for query in ({}, {"api_key": "0" * 32}):  # no key, a wrong key
        assert httpx.get(f"{base}/search/", params=query).status_code == 401, query
        assert httpx.get(f"{base}/metadata/", params=query).status_code == 401, query
        refused = httpx.post(f"{base}/metadata/", params=query, json=node("planted"))
        assert refused.status_code == 401, (query, refused.text[:300])
    # The same request with the key is carried out: the refusal was the key's doing.
    accepted = httpx.post(f"{base}/metadata/", params={"api_key": key}, json=node("control"))
    assert accepted.status_code == 200, accepted.text[:300]
    listing = httpx.get(f"{base}/search/", params={"api_key": key})
    assert listing.status_code == 200, listing.text[:300]
    assert {entry["id"] for entry in listing.json()["data"]} == {"control"}


# ---- the queue server ----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def queue_server(redis_port, tmp_path_factory):
    """`python -m operando.acquisition.queue.server` with a key for its control channel and its
    default addresses (loopback) when they are free, else free loopback ports named on the command
    line; yields (process, addresses, an API client holding the key, the public key)."""
    from bluesky_queueserver import generate_zmq_keys
    from bluesky_queueserver_api.comm_base import RequestTimeoutError
    from bluesky_queueserver_api.zmq import REManagerAPI

    from operando.acquisition.queue.documents import DEFAULT_DOCS_IN, DEFAULT_DOCS_OUT
    from operando.acquisition.queue.server import DEFAULT_CONTROL, DEFAULT_INFO, KEY_ENV

    public_key, private_key = generate_zmq_keys()
    defaults = {
        "control": DEFAULT_CONTROL,
        "info": DEFAULT_INFO,
        "docs_in": DEFAULT_DOCS_IN,
        "docs_out": DEFAULT_DOCS_OUT,
    }
    argv = ["--data", str(tmp_path_factory.mktemp("queue-data")), "--redis", f"127.0.0.1:{redis_port}"]
    prefix = f"operando_security_{uuid.uuid4().hex[:8]}"
    argv += ["--redis-prefix", prefix]
    if all(_port_free(_host_port(a.removeprefix("tcp://"))[1]) for a in defaults.values()):
        addresses = defaults  # what `make queue-server` binds
    else:
        addresses = {k: f"tcp://127.0.0.1:{_free_port()}" for k in defaults}
        for k, a in addresses.items():
            argv += [f"--{k.replace('_', '-')}", a]
    log_path = tmp_path_factory.mktemp("queue-log") / "manager.log"
    log = open(log_path, "w")
    manager = subprocess.Popen(
        [sys.executable, "-m", "operando.acquisition.queue.server", *argv],
        env={**os.environ, KEY_ENV: private_key},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = REManagerAPI(zmq_control_addr=addresses["control"], zmq_public_key=public_key)
    try:
        deadline = time.monotonic() + READY_S
        while True:
            try:
                api.status()
                break
            except RequestTimeoutError:
                assert manager.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, "the RE manager did not answer"
                time.sleep(0.2)
        yield manager, addresses, api, public_key
    finally:
        api.close()
        _stop(manager)
        log.close()
        import redis

        store = redis.Redis(host="127.0.0.1", port=redis_port)
        leftovers = store.keys(f"{prefix}*")
        if leftovers:
            store.delete(*leftovers)
        store.close()


def test_queue_control_refuses_clients_without_the_key(queue_server):
    from bluesky_queueserver import generate_zmq_keys
    from bluesky_queueserver_api import BPlan
    from bluesky_queueserver_api.comm_base import RequestTimeoutError
    from bluesky_queueserver_api.zmq import REManagerAPI

    _, addresses, api, _ = queue_server
    other_public, _ = generate_zmq_keys()
    plan = BPlan("operando_protocol", protocol="galvanostatic_cycling", profile="sim")
    for key in (None, other_public):  # no key, another server's key
        stranger = REManagerAPI(
            zmq_control_addr=addresses["control"], zmq_public_key=key, timeout_recv=1, timeout_send=1
        )
        try:
            with pytest.raises(RequestTimeoutError):
                stranger.item_add(plan)
            with pytest.raises(RequestTimeoutError):
                stranger.environment_open()
        finally:
            stranger.close()
    status = api.status()
    assert status["items_in_queue"] == 0 and status["worker_environment_exists"] is False, status


def test_queue_control_never_unpickles_and_keeps_serving(queue_server, tmp_path):
    import zmq

    manager, addresses, api, public_key = queue_server
    marker = tmp_path / "control-unpickled"
    bomb = pickle_bomb(marker)
    # Inside a 0MQ message on the encrypted channel: the manager decodes JSON only and says so.
    ctx = zmq.Context()
    req = ctx.socket(zmq.REQ)
    public, secret = zmq.curve_keypair()
    req.curve_secretkey, req.curve_publickey, req.curve_serverkey = secret, public, public_key.encode()
    req.setsockopt(zmq.RCVTIMEO, 5000)
    req.setsockopt(zmq.LINGER, 0)
    try:
        req.connect(addresses["control"])
        req.send(bomb)
        reply = json.loads(req.recv())
    finally:
        req.close()
        ctx.term()
    assert "decode error" in json.dumps(reply), reply
    # As raw bytes on every socket the manager listens on: not a 0MQ greeting, dropped.
    for host, port in _listening(manager.pid):
        _send_and_drain(host, port, bomb, wait_s=0.2)
    assert not marker.exists()
    assert manager.poll() is None
    assert api.status()["manager_state"] == "idle"


def test_queue_sockets_listen_on_loopback_and_documents_are_never_unpickled(queue_server, tmp_path):
    """Opens the worker environment (~10 s): the document proxy lives in the worker."""
    import zmq

    from operando.acquisition.queue.documents import subscribe_documents
    from operando.acquisition.queue.serialization import serialize

    manager, addresses, api, _ = queue_server
    assert api.environment_open()["success"]
    api.wait_for_idle(timeout=60)
    assert api.status()["worker_environment_exists"] is True

    family = _family(manager.pid)
    assert len(family) >= 2, family  # the manager and its worker
    listening = _listening(manager.pid)
    for what in ("control", "docs_in", "docs_out"):  # (info: only with --zmq-publish-console ON)
        assert _host_port(addresses[what].removeprefix("tcp://")) in listening, (what, listening)
    assert {ip for ip, _ in listening} <= LOOPBACK, listening

    marker = tmp_path / "documents-unpickled"
    bomb = pickle_bomb(marker)
    received: list[tuple[str, dict]] = []
    subscription = subscribe_documents(addresses["docs_out"], lambda name, doc: received.append((name, doc)))
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    try:
        pub.connect(addresses["docs_in"])

        def until_received(n: int) -> None:
            # 0MQ drops what a subscriber is not yet connected for: publish until it arrives.
            deadline = time.monotonic() + 10
            while len(received) < n:
                assert time.monotonic() < deadline, f"no document through the proxy ({received})"
                pub.send(b" start " + serialize({"uid": f"probe-{n}", "time": 0.0}))
                time.sleep(0.1)

        until_received(1)
        count = len(received)
        pub.send(b" start " + bomb)  # as bluesky's Publisher frames a document, body pickled
        pub.send(bomb)  # no frame at all
        until_received(count + 1)
    finally:
        subscription.stop()
        pub.close()
        ctx.term()
    # Raw bytes on every listening socket, the proxy's included: not a 0MQ greeting, dropped.
    for host, port in listening:
        _send_and_drain(host, port, bomb, wait_s=0.2)
    assert not marker.exists()
    assert all(name == "start" and doc["uid"].startswith("probe-") for name, doc in received), received
    assert manager.poll() is None and all(p.is_running() for p in family)
    api.environment_close()
    api.wait_for_idle(timeout=30)


# ---- configuration is data ----------------------------------------------------------------------------
def _python_tags(marker: Path) -> dict[str, str]:
    """YAML values that would run code (or name it) if the loader built Python objects."""
    return {
        "object/apply os.system": f'!!python/object/apply:os.system ["touch {marker}"]',
        "object/apply os.mkdir": f"!!python/object/apply:os.mkdir [{marker}]",
        "object/new": f"!!python/object/new:pathlib.Path [{marker}]",
        "name": "!!python/name:os.system",
        "module": "!!python/module:os",
    }


def test_the_yaml_payload_would_run_if_loaded_unsafely(tmp_path):
    marker = tmp_path / "loaded"
    yaml.load(_python_tags(marker)["object/apply os.mkdir"], Loader=yaml.UnsafeLoader)
    assert marker.exists()


def _tagged_profile(tmp_path: Path, tag: str) -> Path:
    from operando.acquisition.config import PROFILES_DIR

    text = (PROFILES_DIR / "sim.yaml").read_text()
    lines = text.splitlines()
    # The tag as the value of a key the profile has (its description, else a new top-level key).
    for i, line in enumerate(lines):
        if line.startswith("description:"):
            lines[i] = f"description: {tag}"
            break
    else:
        lines.append(f"description: {tag}")
    path = tmp_path / "tagged-profile.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _tagged_protocol(tmp_path: Path, tag: str) -> Path:
    from operando.acquisition.config import PROTOCOLS_DIR

    data = yaml.safe_load((PROTOCOLS_DIR / "galvanostatic_cycling.yaml").read_text())
    data["name"] = "__TAG__"
    path = tmp_path / "tagged-protocol.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False).replace("__TAG__", tag))
    return path


@pytest.mark.parametrize("which", ["object/apply os.system", "object/apply os.mkdir", "object/new", "name", "module"])
def test_python_tags_in_a_profile_or_protocol_are_refused_naming_the_file(tmp_path, which):
    marker = tmp_path / "executed"
    tag = _python_tags(marker)[which]
    profile = _tagged_profile(tmp_path, tag)
    protocol = _tagged_protocol(tmp_path, tag)
    with pytest.raises(ConfigError, match=rf"{profile}: line \d+, column \d+: invalid YAML: .*python/"):
        load_profile(profile)
    with pytest.raises(ProtocolError, match=rf"{protocol}: line \d+, column \d+: invalid YAML: .*python/"):
        load_protocol(protocol)
    assert not marker.exists()


def test_operando_run_refuses_python_tags_naming_the_file(tmp_path):
    marker = tmp_path / "executed"
    tags = _python_tags(marker)
    profile = _tagged_profile(tmp_path, tags["object/apply os.mkdir"])
    protocol = _tagged_protocol(tmp_path, tags["object/apply os.system"])
    data = tmp_path / "data"
    for proto, prof, named in (("galvanostatic_cycling", profile, profile), (protocol, "sim", protocol)):
        done = subprocess.run(
            [sys.executable, "-m", "operando.acquisition.cli", "run", str(proto), "--profile", str(prof)]
            + ["--data", str(data), "--quiet", "--no-report", "--speed", "1000"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stdout + done.stderr
        assert done.stderr.startswith(f"operando: error: {named}: line "), done.stderr
        assert "invalid YAML" in done.stderr and "python/" in done.stderr, done.stderr
        assert not marker.exists()
    assert not (data / "files").exists() or not any((data / "files").iterdir())
