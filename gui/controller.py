"""Run control without Qt: a RunEngine in its own thread, documents handed over through a queue.

``RunControl`` is what the GUI needs from any way of running plans: start, pause, resume, abort,
and two things to poll — documents and state. ``InProcessRunControl`` implements it with a
RunEngine on a worker thread; a queue-server implementation (later) would send the same commands
over its API and receive documents from its 0MQ stream. Nothing the GUI does can block or end
acquisition: the callbacks only append to a deque, the GUI drains it on its own timer, and the
worker thread is not a daemon, so closing (or crashing) the window leaves a run to finish and
store itself.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

IDLE, STARTING, RUNNING, PAUSING, PAUSED, ABORTING, FINISHED, FAILED = (
    "idle",
    "starting",
    "running",
    "pausing",
    "paused",
    "aborting",
    "finished",
    "failed",
)


@dataclass
class RunStatus:
    state: str = IDLE
    message: str = ""
    uid: str | None = None
    exit_status: str | None = None  # from the stop document: success / abort / fail
    progress: object | None = None  # the plan's latest Progress
    total_s: float | None = None  # estimated experiment duration
    speed: float = 1.0  # experiment seconds per wall second
    instruments: dict | None = None  # name -> "connected" once built
    can_pause: bool = True  # False: the potentiostat cannot hold, a pause would end the sequence


class RunControl:
    """The interface the GUI drives; see ``InProcessRunControl``."""

    status: RunStatus

    def start(self, profile, protocol, data_dir: Path, speed: float | None = None) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def abort(self, reason: str = "aborted from the GUI") -> None: ...
    def drain(self) -> list[tuple[str, dict]]: ...


class InProcessRunControl(RunControl):
    def __init__(self):
        self.status = RunStatus()
        self._docs: deque[tuple[str, dict]] = deque()
        self._commands: queue.Queue[str] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.RE = None
        self._abort_reason: str | None = None  # an abort waiting for the RunEngine to pause
        self.prepared = None  # the current run, as prepare_run built it (tests look at its lab)

    # -- GUI side ----------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, profile, protocol, data_dir, speed=None) -> None:
        from operando.acquisition.prepare import check_run

        if self.busy:
            raise RuntimeError("a run is already in progress")
        # Refuse bad input here, in the caller's thread, before anything is built.
        checked = check_run(profile, protocol, speed=speed)
        self.status = RunStatus(STARTING, "building instruments", total_s=checked.total_s)
        self._commands = queue.Queue()
        self._abort_reason = None
        # Not a daemon: the interpreter waits for the run to end and be stored, GUI or not.
        self._thread = threading.Thread(
            target=self._work, args=(checked, Path(data_dir), speed), name="operando-run", daemon=False
        )
        self._thread.start()

    def pause(self) -> None:
        if not self.status.can_pause:  # a pause would open the circuit for good
            self.status.message = "this potentiostat cannot hold the cell at open circuit: abort instead"
            return
        if self.status.state == RUNNING and self.RE is not None:
            self.status.state = PAUSING
            try:
                self._pause_at_checkpoint()
            except Exception as exc:  # e.g. the run ended in the meantime
                self.status.message = f"cannot pause: {exc}"

    def resume(self) -> None:
        if self.status.state == PAUSED:
            self._commands.put("resume")

    def abort(self, reason: str = "aborted from the GUI") -> None:
        if self.status.state in (RUNNING, PAUSING) and self.RE is not None:
            # Stopped at the plan's next checkpoint, then aborted from there (see
            # _pause_at_checkpoint); the plan's cleanup opens the circuit.
            was = self.status.state
            self._abort_reason = reason
            self.status.state = ABORTING
            self._commands.put("abort:" + reason)  # in case the worker is already paused
            if was == RUNNING:
                try:
                    self._pause_at_checkpoint()
                except Exception:  # no checkpoint any more (the run is ending): abort outright
                    try:
                        self.RE.abort(reason)
                    except Exception as exc:  # the run ended in the meantime
                        self.status.message = f"cannot abort: {exc}"
        elif self.status.state == PAUSED:
            self.status.state = ABORTING
            self._commands.put("abort:" + reason)  # a paused RE is unwound by the thread owning it

    def _pause_at_checkpoint(self) -> None:
        """Ask the RunEngine to pause at the plan's next checkpoint (thread-safe).

        Not an immediate pause or abort: those cancel the RunEngine's task wherever it is
        awaiting, and that cancellation was seen lost now and then (the run went on to finish
        with 'success' after a Pause or Abort click). At a checkpoint the RunEngine cancels
        itself at a known point, every time; the operando plan reaches one each poll (20 ms
        wall) plus bluesky's fixed 0.5 s grace.
        """
        self.RE.request_pause(defer=True)

    def drain(self) -> list[tuple[str, dict]]:
        out = []
        while self._docs:
            out.append(self._docs.popleft())
        return out

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the worker to end (tests, shutdown); True if it has."""
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.busy

    # -- worker thread -----------------------------------------------------------------------
    def _on_document(self, name, doc):
        self._docs.append((name, doc))  # the only work done in the acquisition thread
        if name == "start":
            self.status.uid = doc["uid"]
        elif name == "stop":
            self.status.exit_status = doc.get("exit_status")

    def _on_progress(self, progress):
        self.status.progress = progress

    def _work(self, checked, data_dir, speed):
        os.environ.setdefault("MPLBACKEND", "Agg")
        from bluesky.utils import DuringTask, RunEngineInterrupted

        from operando.acquisition.prepare import prepare_run
        from operando.acquisition.session import make_run_engine
        from operando.storage.catalog import open_catalog

        try:
            with open_catalog(data_dir) as catalog:
                RE = make_run_engine(catalog)
                RE.context_managers = []  # SIGINT handling only works in the main thread
                RE._during_task = DuringTask()  # just wait: never drive Qt from this thread
                RE.subscribe(self._on_document)
                # The same run as `operando run` and a queued item: prepare_run puts it together.
                prepared = prepare_run(
                    checked.profile,
                    checked.protocol,
                    data_dir,
                    speed=speed,
                    progress=self._on_progress,
                    checked=checked,
                )
                self.prepared = prepared
                self.status.speed = prepared.clock.speed
                self.status.can_pause = prepared.can_pause
                self.status.instruments = {d.name: "connected" for d in prepared.instruments.devices}
                self.RE = RE
                self.status.state, self.status.message = RUNNING, "running"
                try:
                    self._drive(RE, prepared.plan, RunEngineInterrupted)
                finally:
                    prepared.close()  # ports and in-process simulators; the cell is at open circuit
                    RE.catalog_writer.flush()  # everything stored before we say it ended
                    self.RE = None
            ok = self.status.exit_status == "success"
            self.status.state = FINISHED if ok else FAILED
            self.status.message = f"run ended: {self.status.exit_status or 'no stop document'}"
        except Exception as exc:  # shown in the GUI; the plan's own cleanup already made the cell safe
            log.exception("run failed")
            self.status.state, self.status.message = FAILED, f"{type(exc).__name__}: {exc}"

    def _drive(self, RE, plan, interrupted):
        call = lambda: RE(plan)
        while True:
            try:
                call()
                return
            except interrupted:
                if RE.state != "paused":
                    return  # aborted or stopped: the run is closed
            if self._abort_reason is not None:  # paused on the way to an abort
                command = "abort:" + self._abort_reason
            else:
                self.status.state, self.status.message = PAUSED, "paused (cell at open circuit)"
                command = self._commands.get()
            if command == "resume":
                self.status.state, self.status.message = RUNNING, "running"
                call = RE.resume
            else:
                try:
                    RE.abort(command.partition(":")[2])
                except interrupted:
                    pass
                return
