"""Run control with the acquisition in a child process (``run_process.py``): the window watches.

The same ``RunControl`` interface as ``InProcessRunControl``: start, pause, resume, abort, and
``drain()`` / ``status`` polled by the window's timer. A reader thread only decodes frames from the
child's pipe into a deque (msgpack, never pickle); the child runs the RunEngine, the catalog
writer and every instrument, so painting never waits for the acquisition's interpreter lock and
the acquisition never waits for painting. The child is in its own session: closing the window,
a crash of the GUI or a Ctrl-C in its terminal does not stop it; it finishes and stores the run.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path

from .controller import FAILED, FINISHED, PAUSED, RUNNING, STARTING, RunControl, RunStatus

log = logging.getLogger(__name__)


class ProcessRunControl(RunControl):
    separate_process = True  # the window must leave the catalog to it while it runs

    def __init__(self):
        self.status = RunStatus()
        self._docs: deque[tuple[str, dict]] = deque()
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, profile, protocol, data_dir, speed=None) -> None:
        from operando.acquisition.prepare import check_run

        if self.busy:
            raise RuntimeError("a run is already in progress")
        # Refuse bad input here, before a process is started (the child checks again).
        checked = check_run(profile, protocol, speed=speed)
        if protocol.source is None:
            raise RuntimeError(f"protocol {protocol.name!r} has no file: save it first")
        self.status = RunStatus(STARTING, "starting the acquisition process", total_s=checked.total_s)
        self._docs = deque()
        read_fd, write_fd = os.pipe()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "operando.gui.run_process", str(write_fd)],
                stdin=subprocess.PIPE,
                pass_fds=(write_fd,),
                start_new_session=True,
            )
        finally:
            os.close(write_fd)  # the child holds it: EOF here means the child is gone
        # The profile as its file when it has one (so the run records it), else as data.
        request = {
            "profile": profile.model_dump(mode="json"),
            "profile_file": str(profile.source) if profile.source else None,
            "protocol_file": str(protocol.source),
            "data_dir": str(Path(data_dir)),
            "speed": speed,
        }
        self._proc.stdin.write((json.dumps(request) + "\n").encode())
        self._proc.stdin.flush()
        self._reader = threading.Thread(
            target=self._read, args=(os.fdopen(read_fd, "rb"),), name="operando-run-reader", daemon=True
        )
        self._reader.start()

    def _command(self, line: str) -> None:
        try:
            self._proc.stdin.write((line + "\n").encode())
            self._proc.stdin.flush()
        except (OSError, ValueError) as exc:  # the child has ended
            self.status.message = f"cannot send {line.split()[0]}: {exc}"

    def pause(self) -> None:
        if self.status.state == RUNNING and self.busy:
            self._command("pause")

    def resume(self) -> None:
        if self.status.state == PAUSED and self.busy:
            self._command("resume")

    def abort(self, reason: str = "aborted from the GUI") -> None:
        if self.busy:
            self._command("abort " + " ".join(reason.split()))

    def drain(self) -> list[tuple[str, dict]]:
        out = []
        while self._docs:
            out.append(self._docs.popleft())
        return out

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the child to end and its last frames to be read; True if it has."""
        if self._proc is not None:
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            if self._reader is not None:
                self._reader.join(timeout)
        return not self.busy

    def detach(self) -> None:
        """Stop watching (the window closes): the child keeps acquiring and storing."""
        if self._proc is not None and self._proc.stdin:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    # -- reader thread -----------------------------------------------------------------------
    def _read(self, pipe) -> None:
        from operando.acquisition.prepare import Progress
        from operando.acquisition.queue.serialization import deserialize

        with pipe:
            while True:
                head = pipe.read(4)
                if len(head) < 4:
                    break
                (size,) = struct.unpack(">I", head)
                body = pipe.read(size)
                if len(body) < size:
                    break
                message = deserialize(body)
                if message[0] == "doc":
                    self._docs.append((message[1], message[2]))
                elif message[0] == "status":
                    fields = dict(message[1])
                    if isinstance(fields.get("progress"), dict):
                        # a several-cell run's progress also has each cell's (the CLI shows them)
                        summary = {k: v for k, v in fields["progress"].items() if k != "channels"}
                        fields["progress"] = Progress(**summary)
                    self.status = RunStatus(**fields)
        code = self._proc.wait()
        if self.status.state not in (FINISHED, FAILED):  # ended without saying how
            self.status = RunStatus(
                FAILED,
                f"acquisition process exited with code {code}",
                uid=self.status.uid,
                exit_status=self.status.exit_status,
            )
