"""Start bluesky-queueserver's RE manager for operando: loopback unless a key is configured.

``python -m operando.acquisition.queue.server [--control tcp://127.0.0.1:60615] ...`` (what
``make queue-server`` runs). The control socket accepts requests from any process that reaches
it, so it binds 127.0.0.1 by default; any other address is refused unless the control channel is
encrypted ($QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER, from ``qserver-zmq-keys``), so that only clients
holding the public key can talk to it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import urlsplit

from operando.storage.catalog import DATA_ENV, resolve_data_dir

from .documents import DEFAULT_DOCS_IN, DEFAULT_DOCS_OUT, DOCS_IN_ENV, DOCS_OUT_ENV

HERE = Path(__file__).resolve().parent
STARTUP_DIR = HERE / "startup"
PERMISSIONS = HERE.parents[1] / "config" / "queue" / "user_group_permissions.yaml"
KEY_ENV = "QSERVER_ZMQ_PRIVATE_KEY_FOR_SERVER"
DEFAULT_CONTROL = "tcp://127.0.0.1:60615"
DEFAULT_INFO = "tcp://127.0.0.1:60625"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


class UnsafeAddressError(ValueError):
    pass


def is_loopback(address: str) -> bool:
    return urlsplit(address).hostname in LOOPBACK


def manager_command(
    data_dir: Path,
    *,
    control: str = DEFAULT_CONTROL,
    info: str = DEFAULT_INFO,
    docs_in: str = DEFAULT_DOCS_IN,
    docs_out: str = DEFAULT_DOCS_OUT,
    redis: str = "127.0.0.1:6379",
    redis_prefix: str = "operando",
    env: dict | None = None,
) -> tuple[list[str], dict]:
    """(argv, environment) for ``start-re-manager``; raises UnsafeAddressError if unsafe."""
    env = dict(os.environ if env is None else env)
    keyed = bool(env.get(KEY_ENV))
    for what, address in (("control", control), ("info", info), ("docs_in", docs_in), ("docs_out", docs_out)):
        if not address.startswith("tcp://"):
            raise UnsafeAddressError(f"--{what}: expected tcp://HOST:PORT (got {address!r})")
        if not is_loopback(address) and not (what == "control" and keyed):
            needs = f"set ${KEY_ENV} (see qserver-zmq-keys)" if what == "control" else "use 127.0.0.1"
            raise UnsafeAddressError(f"--{what} {address}: not loopback; {needs}")
    data_dir = Path(data_dir)
    plans_file = data_dir / "queue" / "existing_plans_and_devices.yaml"
    plans_file.parent.mkdir(parents=True, exist_ok=True)
    env.update({DATA_ENV: str(data_dir), DOCS_IN_ENV: docs_in, DOCS_OUT_ENV: docs_out})
    argv = [
        _start_re_manager(),
        "--startup-dir",
        str(STARTUP_DIR),
        "--existing-plans-devices",
        str(plans_file),
        "--user-group-permissions",
        str(PERMISSIONS),
        "--zmq-control-addr",
        control,
        "--zmq-info-addr",
        info,
        "--redis-addr",
        redis,
        "--redis-name-prefix",
        redis_prefix,
    ]
    return argv, env


def _start_re_manager() -> str:
    # The one installed next to this interpreter (the venv's), else whatever is on PATH.
    local = Path(sys.executable).with_name("start-re-manager")
    return str(local) if local.exists() else (shutil.which("start-re-manager") or "start-re-manager")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m operando.acquisition.queue.server", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--data", help=f"data directory (default: ${DATA_ENV} or ./data)")
    parser.add_argument("--control", default=DEFAULT_CONTROL, help="control socket (default %(default)s)")
    parser.add_argument("--info", default=DEFAULT_INFO, help="info socket (default %(default)s)")
    parser.add_argument("--docs-in", default=DEFAULT_DOCS_IN, help="document proxy input (default %(default)s)")
    parser.add_argument("--docs-out", default=DEFAULT_DOCS_OUT, help="document proxy output (default %(default)s)")
    parser.add_argument("--redis", default="127.0.0.1:6379", help="Redis address (default %(default)s)")
    parser.add_argument("--redis-prefix", default="operando", help="Redis key prefix (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        cmd, env = manager_command(
            resolve_data_dir(args.data),
            control=args.control,
            info=args.info,
            docs_in=args.docs_in,
            docs_out=args.docs_out,
            redis=args.redis,
            redis_prefix=args.redis_prefix,
        )
    except UnsafeAddressError as exc:
        print(f"operando queue server: {exc}", file=sys.stderr)
        return 2
    os.execve(cmd[0], cmd, env)  # the RE manager takes over this process (signals, exit code)


if __name__ == "__main__":
    sys.exit(main())
