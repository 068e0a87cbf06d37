"""What every `operando sim serve <instrument>` over TCP shares: its command-line options and
serving until interrupted, printing ``Serving <name> on HOST:PORT`` (tests and users read it)."""

from __future__ import annotations

import argparse
import threading


def sim_parser(description: str, default_port: int) -> argparse.ArgumentParser:
    """--host (loopback by default), --port, and the simulated cell's --material,
    --active-mass-g, --soc, --speed, --seed; add an instrument's own options to it."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (loopback by default)")
    parser.add_argument("--port", type=int, default=default_port, help="TCP port (0: any free port)")
    parser.add_argument("--material", default="fe_li2o")
    parser.add_argument("--active-mass-g", type=float, default=1e-3)
    parser.add_argument(
        "--soc",
        type=float,
        default=None,
        help="state of charge to start at, 0..1 (default: as assembled, e.g. 2.9 V for fe_li2o)",
    )
    parser.add_argument("--speed", type=float, default=1.0, help="simulated s per wall s")
    parser.add_argument("--seed", type=int, default=0, help="measurement noise seed")
    return parser


def serve_until_interrupted(server, name: str) -> None:
    """Start ``server``, print where it listens, serve until Ctrl-C or SIGTERM's default."""
    print(f"Serving {name} on {server.start()}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
