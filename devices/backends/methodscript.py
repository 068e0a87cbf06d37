"""``PotentiostatBackend`` on a MethodSCRIPT instrument: the driver's blocking calls off the loop.

The steps run as scripts of ``ScriptOptions.steps_per_script`` steps (see
``methodscript_steps``); the next chunk is uploaded as soon as the previous one ends. Each
package carries the instrument timer ``t`` (from the script's ``timer_start``) and ``step_no``.
Timestamps: the host clock's time when the script has been written to the port is taken as the
instrument's t = 0 (the firmware starts it, and its timer, on the closing blank line; reading
the ``e`` acknowledgement would add the poll's and the link's delay); ``time_offsets_s`` records
that offset for every script once it is acknowledged (instrument time + offset = host time).
Charge integrates I over the time since the previous sample (the current is held between
samples). Potential: the package's ``ab`` (measured) or, in potentiostatic
loops, ``da`` (applied). An impedance package (it carries ``dc`` frequency, ``cc`` Z', ``cd``
Z'') adds one row to ``poll_impedance()`` and one echem row at the DC values it carries.

Faults (each ends the run through the device's fault path, which then calls ``open_circuit``):
an error line ``!XXXX``, a line that does not parse (a garbled link), a data package whose timer
did not advance (a repeated, frozen package), silence while a script runs longer than
``idle_timeout_s`` plus twice the longest gap the script's loops leave between packages (a dead
instrument or link), or a lost serial port. The packages read before the fault are kept; a
script that may still run is aborted (``Z``), never just abandoned. A script whose
acknowledgement was lost is timed from when it was sent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import Field, PositiveFloat, PositiveInt

from operando.devices.drivers.methodscript import MethodScriptDriver, MethodScriptError, MethodScriptReplyError
from operando.devices.drivers.methodscript_protocol import (
    DataPackage,
    EndOfScript,
    ErrorReply,
    MeasLoopStart,
    ReplyEvent,
    ScriptAccepted,
    ScriptOptions,
    UnknownLine,
)
from operando.devices.kinds import PotentiostatSettings
from operando.devices.registry import BackendSpec, BuildContext, Capability, register
from operando.devices.safety import UnsupportedTechnique
from operando.devices.techniques import ECHEM_COLUMNS, IMPEDANCE_COLUMNS, TECHNIQUE_CODES, ScheduledStep

from .methodscript_steps import build_script, chunk_steps, longest_gap_s

_MAX_LINES_PER_POLL = 20_000
DEFAULT_IDLE_TIMEOUT_S = 30.0  # wall seconds of silence (beyond the loops' own gaps) = dead
# the epoch-time column ("time" is reserved by Tiled's events table, hence "timestamp")
_TIME_COLUMN = "timestamp" if "timestamp" in ECHEM_COLUMNS else "time"


class MethodScriptPotentiostatBackend:
    # No hold: a running MethodSCRIPT cannot be frozen and continued. No trigger output: the
    # instrument's GPIO could give one, but no script here drives it yet.
    capabilities = frozenset({Capability.IMPEDANCE})
    techniques = frozenset(TECHNIQUE_CODES)
    timebase = "host"  # each script's timer is offset to the host clock when it is accepted

    def __init__(
        self,
        driver: MethodScriptDriver,
        options: ScriptOptions | None = None,
        clock: Callable[[], float] = time.time,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        speed: float = 1.0,
    ) -> None:
        """``idle_timeout_s``: wall seconds without a byte while a script runs, beyond the
        longest gap its loops leave, before the instrument counts as lost; ``speed``: experiment
        seconds per wall second of ``clock`` (a simulation's), to turn those gaps into wall time."""
        self.driver = driver
        self.options = options or ScriptOptions()
        self._now = clock  # the experiment clock's time(); a SimClock's in simulation
        self.idle_timeout_s, self.speed = float(idle_timeout_s), float(speed)
        self.description = f"PalmSens MethodSCRIPT on {driver.port}"
        self.time_offsets_s: list[float] = []
        self.stop_reason: str | None = None
        self._reset([])

    def _reset(self, steps: Sequence[ScheduledStep]) -> None:
        self._chunks = chunk_steps(steps, self.options) if steps else []
        self._chunk: list[ScheduledStep] = []
        self._by_number = {s.step: s for s in steps}
        self._loop_index = -1
        self._running = False
        self._done = not steps
        self._rows: list[tuple[float, float, float, float, int]] = []  # t, E, I, Q, step no
        self._z_rows: list[tuple[float, float, float, float, float, float, int]] = []
        self._charge_mAh = 0.0
        self._last_t: float | None = None
        self._sent_at = 0.0  # experiment time the running script was sent
        self._acked = False  # its acknowledgement 'e' was read
        self._script_t: float | None = None  # instrument time of its newest package
        self._silence_limit_s = self.idle_timeout_s
        self._launched_at = time.monotonic()
        self._fault: Exception | None = None  # raised by poll once the rows before it are out

    # ---- PotentiostatBackend ---------------------------------------------------------------
    def check(self, steps: Sequence[ScheduledStep]) -> None:
        """Every step must have a script (a set-point with no exact script literal has none)."""
        for step in steps:
            try:
                build_script([step], self.options)
            except (ValueError, TypeError) as exc:
                raise UnsupportedTechnique(
                    f"{self.description}: step {step.step} ({step.technique.kind}) has no MethodSCRIPT: {exc}"
                ) from exc

    async def start(self, steps: Sequence[ScheduledStep]) -> None:
        if self._running:
            raise RuntimeError(f"{self.description}: a sequence is already running")
        self._reset(list(steps))
        self.time_offsets_s, self.stop_reason = [], None
        await asyncio.to_thread(self._launch_next)

    async def poll(self) -> dict[str, np.ndarray]:
        """Rows parsed since the last poll. A fault is raised once the rows read before it have
        been returned (the device stops polling at the first exception)."""
        if self._running and not self._done and self._fault is None:
            try:
                events = await asyncio.to_thread(self.driver.read_events, _MAX_LINES_PER_POLL)
                self._handle(events)
                if self._running:
                    self._check_silence()
            except TimeoutError as exc:  # an OSError, but the port is still there
                self._fail(exc)
            except OSError as exc:  # pyserial's SerialException too: the port is gone
                self._fail(
                    ConnectionError(
                        f"{self.description}: serial link lost while its script runs ({exc}); the "
                        f"instrument may still be running it"
                    )
                )
            except Exception as exc:
                self._fail(exc)
            if not self._running and self._chunks:
                await asyncio.to_thread(self._launch_next)
        rows = self._drain()
        if self._fault is not None and len(rows["Ewe"]) == 0:
            fault, self._fault = self._fault, None  # once: later polls return the abort's rows
            raise fault
        return rows

    def _fail(self, fault: Exception) -> None:
        """Nothing more is started; ``_running`` stays as it is, so open_circuit aborts a script
        that may still be running."""
        self._fault, self._done, self._chunks = fault, True, []

    def _check_silence(self) -> None:
        silent_s = time.monotonic() - max(self.driver.last_rx, self._launched_at)
        if silent_s > self._silence_limit_s:
            raise TimeoutError(
                f"{self.description}: no reply for {silent_s:.3g} s (wall) while its script runs "
                f"(idle_timeout_s {self.idle_timeout_s:g} s): instrument or link dead"
            )

    async def poll_impedance(self) -> dict[str, np.ndarray]:
        """PEIS/GEIS rows (IMPEDANCE_COLUMNS) parsed since the last call; the device calls it
        right after ``poll``, so no package is read here."""
        rows, self._z_rows = self._z_rows, []
        columns = list(zip(*rows)) if rows else [()] * 7
        values = dict(zip(("timestamp", "frequency", "Z_re", "Z_im", "Ewe_dc", "I_dc"), columns[:6]))
        numbers = [int(n) for n in columns[6]]
        values.update(cycle=[getattr(self._by_number.get(n), "cycle", 0) for n in numbers], step=numbers)
        return {name: np.asarray(values[name], dtype) for name, (_u, dtype) in IMPEDANCE_COLUMNS.items()}

    @property
    def done(self) -> bool:
        return self._done

    async def open_circuit(self, reason: str) -> None:
        """Abort a running script (its on_finished switches the cell off), else run cell_off."""
        self._chunks = []
        if self._running:  # also after an error line: the script may still be running
            try:
                events = await asyncio.to_thread(self.driver.abort, True)
            except OSError as exc:
                raise ConnectionError(
                    f"{self.description}: cannot send the abort, serial link lost ({exc}); the "
                    f"instrument may still be running its script"
                ) from exc
            self._handle(events, raise_errors=False)
            self._running = False
        else:
            await asyncio.to_thread(self._cell_off)
        self._done = True
        self.stop_reason = reason

    def close(self) -> None:
        """Close the serial port (the cell is at open circuit by then); safe twice."""
        self.driver.close()

    # ---- script flow -----------------------------------------------------------------------
    def _launch_next(self) -> None:
        self._chunk = self._chunks.pop(0)
        self._loop_index = -1
        self._silence_limit_s = self.idle_timeout_s + 2 * longest_gap_s(self._chunk, self.options) / self.speed
        self._acked, self._script_t = False, None
        self.driver.run_script(build_script(self._chunk, self.options))
        self._sent_at, self._launched_at = self._now(), time.monotonic()
        self._running = True

    def _cell_off(self) -> None:
        self.driver.run_script(["cell_off"])
        for _ in self.driver.iter_script_output(idle_timeout_s=self.driver.timeout_s):
            pass

    def _handle(self, events: list[ReplyEvent], raise_errors: bool = True) -> None:
        """Every event is used, then the first fault among them raised: the packages read in
        the same poll as an error line are measured data, kept."""
        fault: Exception | None = None
        for event in events:
            if isinstance(event, DataPackage):
                problem = self._sample(event)
                fault = fault or problem
            elif isinstance(event, MeasLoopStart):
                self._loop_index += 1
            elif isinstance(event, ScriptAccepted) and not self._acked:
                self._accepted(self._sent_at)
            elif isinstance(event, EndOfScript):
                self._running = False
                self._done = not self._chunks
            elif isinstance(event, ErrorReply):
                fault = fault or MethodScriptError(self.driver.port, event.code, event.detail, event.command)
            elif isinstance(event, UnknownLine):
                fault = fault or MethodScriptReplyError(
                    self.driver.port, f"unreadable reply line {event.text[:60]!r} (garbled link?)"
                )
        if fault is not None and raise_errors:
            raise fault

    def _accepted(self, at: float) -> None:
        self._acked = True
        self.time_offsets_s.append(at)
        self._last_t = self._last_t if self._last_t is not None else at

    def _sample(self, package: DataPackage) -> Exception | None:
        """Store one package; returns (not raises) the fault it shows, if any."""
        t_var, e_var = package.first("eb"), package.first("ab") or package.first("da")
        if t_var is None or e_var is None:
            return None  # not one of our packages
        if not self._acked:  # its 'e' was lost or garbled: time the script from its upload
            self._accepted(self._sent_at)
        if self._script_t is not None and t_var.value <= self._script_t:
            return MethodScriptReplyError(
                self.driver.port,
                f"data package repeated: the instrument timer did not advance (t = {t_var.value:g} s "
                f"after {self._script_t:g} s); readings frozen?",
            )
        self._script_t = t_var.value
        i_var, step_var = package.first("ba"), package.first("ja")
        if step_var is not None:
            number = int(step_var.value)
        else:  # a foreign script: the n-th measurement loop is the n-th step of the chunk
            number = self._chunk[min(max(self._loop_index, 0), len(self._chunk) - 1)].step
        t = self.time_offsets_s[-1] + t_var.value
        current = 0.0 if i_var is None else i_var.value
        if self._last_t is not None:
            self._charge_mAh += current * (t - self._last_t) / 3.6
        self._last_t = t
        self._rows.append((t, e_var.value, current, self._charge_mAh, number))
        f_var = package.first("dc")
        if f_var is not None:
            z_re, z_im = package.first("cc"), package.first("cd")
            self._z_rows.append(
                (
                    t,
                    f_var.value,
                    z_re.value if z_re else np.nan,
                    z_im.value if z_im else np.nan,
                    e_var.value,
                    current,
                    number,
                )
            )
        return None

    def _drain(self) -> dict[str, np.ndarray]:
        rows, self._rows = self._rows, []
        columns = list(zip(*rows)) if rows else [()] * 5
        numbers = [int(n) for n in columns[4]]
        cycles = [getattr(self._by_number.get(n), "cycle", 0) for n in numbers]
        values = dict(zip((_TIME_COLUMN, "Ewe", "I", "charge"), columns[:4]))
        values.update(cycle=cycles, step=numbers)
        return {name: np.asarray(values[name], dtype) for name, (_u, dtype) in ECHEM_COLUMNS.items()}


class MethodScriptSettings(PotentiostatSettings):
    baudrate: PositiveInt = 230400  # EmStat Pico/4 USB-CDC
    potential_range_V: PositiveFloat = 4.0  # set_range ab: the largest |Ewe| expected
    steps_per_script: int = Field(50, ge=1)  # script memory is finite: long protocols in chunks
    # wall seconds without a byte while a script runs (beyond the gaps its loops leave) before
    # the instrument counts as dead and the run stops
    idle_timeout_s: PositiveFloat = DEFAULT_IDLE_TIMEOUT_S


def _build(ctx: BuildContext) -> MethodScriptPotentiostatBackend:
    s = ctx.settings
    driver = MethodScriptDriver(ctx.address, baudrate=s.baudrate)
    backend = MethodScriptPotentiostatBackend(
        driver,
        ScriptOptions(
            sample_interval_s=s.sample_interval_s,
            potential_range_V=s.potential_range_V,
            steps_per_script=s.steps_per_script,
        ),
        clock=ctx.clock.time,
        idle_timeout_s=s.idle_timeout_s,
        speed=float(getattr(ctx.clock, "speed", 1.0)),
    )
    ctx.on_close(backend.close, first=True)  # the port closes before any simulator stops
    return backend


register(
    BackendSpec(
        kind="potentiostat",
        name="methodscript",
        settings=MethodScriptSettings,
        build=_build,
        summary="a PalmSens EmStat4/Nexus running MethodSCRIPT over USB-CDC serial (no hold)",
        capabilities=MethodScriptPotentiostatBackend.capabilities,
        techniques=MethodScriptPotentiostatBackend.techniques,
        address="a serial port (e.g. /dev/ttyACM0)",
    )
)
