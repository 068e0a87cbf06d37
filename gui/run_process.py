"""The acquisition process the GUI starts: one run, its documents and state sent back over a pipe.

``python -m operando.gui.run_process FD`` reads one JSON line on stdin — the profile (as data),
the protocol file, the data directory and the speed — and runs it with the same
``InProcessRunControl`` the window uses in-process, so the run, its pause/abort semantics and its
storage are the same code. Out, on file descriptor FD: frames of a 4-byte big-endian length and a
msgpack body (``acquisition/queue/serialization``: numpy arrays as raw buffers, never pickle),
``["doc", name, doc]`` and ``["status", {...}]``. In, on stdin: lines ``pause``, ``resume``,
``abort <reason>``.

Why a process: the window's painting and the run then hold two different interpreters' locks (on
two cores), and a window that crashes or closes cannot take the run with it — when the pipe
breaks, the run goes on, unobserved, until its protocol ends and everything is stored.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
import sys
import threading
import time
from pathlib import Path

TICK_S = 0.02  # how often documents and state are forwarded


def send_frame(out, message) -> None:
    from operando.acquisition.queue.serialization import serialize

    body = serialize(message)
    out.write(struct.pack(">I", len(body)) + body)
    out.flush()


def status_dict(status) -> dict:
    return dataclasses.asdict(status)  # its Progress (a dataclass too) becomes a nested dict


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = os.fdopen(int(argv[0]), "wb", buffering=0)
    real_stdout, sys.stdout = sys.stdout, sys.stderr  # nothing a library prints may reach a pipe
    del real_stdout
    os.environ.setdefault("MPLBACKEND", "Agg")
    from operando.acquisition.config import Profile, load_protocol

    from .controller import FAILED, FINISHED, InProcessRunControl

    request = json.loads(sys.stdin.readline())  # data only: yaml/json, never code
    control = InProcessRunControl()
    watching = True

    def send(message) -> None:
        nonlocal watching
        if not watching:
            return
        try:
            send_frame(out, message)
        except (BrokenPipeError, OSError):  # the window is gone: the run is not
            watching = False

    try:
        profile = Profile.model_validate(request["profile"])
        # The file the set-up panel loaded it from (as the in-process path keeps it).
        profile._source = Path(request["profile_file"]) if request.get("profile_file") else None
        protocol = load_protocol(request["protocol_file"])
        control.start(profile, protocol, request["data_dir"], request.get("speed"))
    except Exception as exc:  # refused before anything was built: say why, and end
        send(["status", {"state": FAILED, "message": f"{type(exc).__name__}: {exc}"}])
        return 2

    def commands() -> None:
        for line in sys.stdin:  # EOF: the window closed; the run goes on
            word, _, rest = line.strip().partition(" ")
            if word == "pause":
                control.pause()
            elif word == "resume":
                control.resume()
            elif word == "abort":
                control.abort(rest or "aborted from the GUI")

    threading.Thread(target=commands, name="operando-run-commands", daemon=True).start()
    last = None
    while True:
        alive = control.busy
        for name, doc in control.drain():
            send(["doc", name, doc])
        now = status_dict(control.status)
        if now != last:
            send(["status", now])
            last = now
        if not alive:
            break
        time.sleep(TICK_S)
    return 0 if control.status.state == FINISHED else 1


if __name__ == "__main__":
    raise SystemExit(main())
