"""``PotentiostatBackend`` on a MethodSCRIPT instrument: the driver's blocking calls off the loop.

The steps run as scripts of ``ScriptOptions.steps_per_script`` steps (see
``methodscript_steps``); the next chunk is uploaded as soon as the previous one ends. Each
package carries the instrument timer ``t`` (from the script's ``timer_start``) and ``step_no``.
Timestamps: the host clock's time when the script's ``e`` acknowledgement is read is taken as
the instrument's t = 0; ``time_offsets_s`` records that offset for every script (instrument time
+ offset = host time). Charge integrates I over the time since the previous sample (the current
is held between samples). Potential: the package's ``ab`` (measured) or, in potentiostatic
loops, ``da`` (applied). An impedance package (it carries ``dc`` frequency, ``cc`` Z', ``cd``
Z'') adds one row to ``poll_impedance()`` and one echem row at the DC values it carries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import Field, PositiveFloat, PositiveInt

from operando.devices.drivers.methodscript import MethodScriptDriver, MethodScriptError
from operando.devices.drivers.methodscript_protocol import (
    DataPackage,
    EndOfScript,
    ErrorReply,
    MeasLoopStart,
    ReplyEvent,
    ScriptAccepted,
    ScriptOptions,
)
from operando.devices.kinds import PotentiostatSettings
from operando.devices.registry import BackendSpec, BuildContext, Capability, register
from operando.devices.safety import UnsupportedTechnique
from operando.devices.techniques import ECHEM_COLUMNS, IMPEDANCE_COLUMNS, TECHNIQUE_CODES, ScheduledStep

from .methodscript_steps import build_script, chunk_steps

_MAX_LINES_PER_POLL = 20_000
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
    ) -> None:
        self.driver = driver
        self.options = options or ScriptOptions()
        self._now = clock  # the experiment clock's time(); a SimClock's in simulation
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
        if self._running:
            events = await asyncio.to_thread(self.driver.read_events, _MAX_LINES_PER_POLL)
            self._handle(events)
            if not self._running and self._chunks:
                await asyncio.to_thread(self._launch_next)
        return self._drain()

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
        if self._running:
            events = await asyncio.to_thread(self.driver.abort, True)
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
        self.driver.run_script(build_script(self._chunk, self.options))
        self._running = True

    def _cell_off(self) -> None:
        self.driver.run_script(["cell_off"])
        for _ in self.driver.iter_script_output(idle_timeout_s=self.driver.timeout_s):
            pass

    def _handle(self, events: list[ReplyEvent], raise_errors: bool = True) -> None:
        for event in events:
            if isinstance(event, DataPackage):
                self._sample(event)
            elif isinstance(event, MeasLoopStart):
                self._loop_index += 1
            elif isinstance(event, ScriptAccepted):
                self.time_offsets_s.append(self._now())
                self._last_t = self._last_t if self._last_t is not None else self._now()
            elif isinstance(event, EndOfScript):
                self._running = False
                self._done = not self._chunks
            elif isinstance(event, ErrorReply) and raise_errors:
                self._running, self._done, self._chunks = False, True, []
                raise MethodScriptError(self.driver.port, event.code, event.detail, event.command)

    def _sample(self, package: DataPackage) -> None:
        t_var, e_var = package.first("eb"), package.first("ab") or package.first("da")
        if t_var is None or e_var is None or not self.time_offsets_s:
            return  # not one of our packages
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
