"""``MagnetometerBackend`` on a Quantum Design MPMS3 (or PPMS, DynaCool): field and temperature
through QD's MultiPyVu (``drivers/mpms3.py``), the moment from MultiVu's `.dat` file
(``drivers/multivu_tail.py``).

- A reading is the newest row(s) MultiVu wrote since the last trigger: the rows whose windows
  end within ``averaging_s`` (run time) of the newest one are averaged (standard errors added in
  quadrature). With no new row yet, it waits for one (``row_timeout_s`` of wall time, then an
  error naming the instrument: MultiVu's sequence is not measuring). Its window is the rows'
  own, mapped onto the run's clock (the `.dat` stamp's local time, the MultiVu PC's zone and
  clock offset, then the run clock's speed): the plan stamps the echem state at that midpoint,
  not at the moment it asked.
- Field and temperature states: MultiVu's names mapped onto the device's (``ramping``,
  ``relaxing``, ``stable``; ``sweeping``, ``tracking``, ``stable``; ``fault`` for its error
  states). ``field_stable`` is true only when stable. MultiPyVu is asked at most every
  ``status_period_s`` (the device polls 20 times a second); a failed status is a disconnection
  (``connected`` false) that a profile suspender can act on, and the client reconnects at the
  next status once the server answers again.
- Errors: a malformed or truncated row, a vanished or replaced file, a server that stops
  answering (or takes longer than ``exchange_timeout_s``): ``Mpms3Error`` naming the instrument
  (the plan records a failed frame with it). Rows that are not a new measurement fail the
  reading too, never stored as a moment: a row whose status columns carry one of MultiVu's
  failure states, and a row that repeats the previous one's every measured value (a VSM moment
  carries noise to its last digit: an exact repeat is a frozen writer, not a measurement).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from pathlib import Path
from typing import Literal, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, NonNegativeFloat, PositiveFloat, field_validator, model_validator

from operando.devices.clock import Clock, WallClock
from operando.devices.drivers.mpms3 import Mpms3Client, Mpms3Error
from operando.devices.drivers.multivu_datafile import DatFileError, DatRow
from operando.devices.drivers.multivu_tail import DatTail
from operando.devices.kinds import MagnetometerSettings
from operando.devices.magnetometer import MomentReading
from operando.devices.registry import BackendSpec, BuildContext, Capability, register

AVERAGING_COLUMN = "Averaging Time (sec)"
POLL_WALL_S = 0.1  # wall seconds between looks at the file or the states while waiting
FIELD_STATES = {"Stable": "stable", "Holding (driven)": "stable"}
FIELD_STATES |= dict.fromkeys(("Ramping", "Iterate", "Switch Warming", "Switch Cooling", "Resetting"), "ramping")
TEMPERATURE_STATES = {"Stable": "stable", "Tracking": "tracking", "Near": "tracking", "Chasing": "sweeping"}


def field_state(multivu: str) -> str:
    """MultiVu's field state -> ramping / stable / fault (Unknown, Quenching, the errors)."""
    return FIELD_STATES.get(multivu, "fault")


def temperature_state(multivu: str) -> str:
    """MultiVu's temperature state -> sweeping / tracking / stable / fault (Standby, errors...)."""
    return TEMPERATURE_STATES.get(multivu, "fault")


class Mpms3Backend:
    capabilities = frozenset({Capability.FIELD_CONTROL, Capability.TEMPERATURE_CONTROL})

    def __init__(
        self,
        client: Mpms3Client,
        tail: DatTail,
        clock: Optional[Clock] = None,
        *,
        field_rate_T_s: float = 0.01,
        field_approach: str = "linear",
        temperature_rate_K_s: float = 10.0 / 60.0,
        temperature_approach: str = "fast_settle",
        field_tolerance_Oe: float = 1.0,
        temperature_tolerance_K: float = 0.05,
        field_relax_s: float = 0.0,
        row_timeout_s: float = 120.0,
        settle_timeout_s: float = 1800.0,
        status_period_s: float = 1.0,
    ):
        self.client, self.tail = client, tail
        self.name = client.name
        self.clock = clock or WallClock()
        self.description = f"Quantum Design MPMS3 at {client.host}:{client.port} (MultiVu data file {tail.path})"
        self.field_rate_T_s, self.field_approach = field_rate_T_s, field_approach
        self.temperature_rate_K_s, self.temperature_approach = temperature_rate_K_s, temperature_approach
        self.field_tolerance_Oe, self.temperature_tolerance_K = field_tolerance_Oe, temperature_tolerance_K
        self.field_relax_s = field_relax_s
        self.row_timeout_s, self.settle_timeout_s = row_timeout_s, settle_timeout_s
        self.status_period_s = status_period_s
        self._io = threading.Lock()  # one MultiPyVu exchange at a time (status vs set-points)
        self._pending: list[tuple[float, DatRow]] = []  # rows since the last trigger, run time
        self._not_before = -math.inf  # run time: rows starting earlier are not read (set at the first)
        self._status: Optional[dict | Exception] = None
        self._status_at = -math.inf
        self._field_target_oe: Optional[float] = None  # our last set-point, until relaxed
        self._temperature_target_K: Optional[float] = None
        self._relaxed_at: Optional[float] = None  # run time the field is relaxed (after a set)
        self._last_values: Optional[dict] = None  # the last row's measured values (repeat check)

    # ---- life cycle ----------------------------------------------------------------------------
    def open(self) -> Mpms3Backend:
        """Connect to MultiPyVu and start following the file (rows already there are skipped)."""
        with self._io:
            self.client.open()
        try:
            self.tail.poll()  # rows from before the connection are not this run's
        except DatFileError as e:
            raise Mpms3Error(f"{self.name}: {e}") from e
        return self

    def close(self) -> None:
        with self._io:
            self.client.close()

    def start_at(self, field_T: Optional[float], temperature_K: Optional[float]) -> None:
        """Set the run's starting field and temperature (without waiting; None: left as is)."""
        if field_T is not None:
            self._exchange(self.client.set_field, field_T * 1e4, self.field_rate_T_s * 1e4, self.field_approach)
            self._field_target_oe, self._relaxed_at = field_T * 1e4, None
        if temperature_K is not None:
            rate_k_min = self.temperature_rate_K_s * 60.0
            self._exchange(self.client.set_temperature, temperature_K, rate_k_min, self.temperature_approach)
            self._temperature_target_K = temperature_K

    # ---- the moment ----------------------------------------------------------------------------
    async def measure(self, averaging_s: float) -> MomentReading:
        deadline = time.monotonic() + self.row_timeout_s
        if self._not_before == -math.inf:
            # The first reading: rows measured (wholly) after it was asked for, none from before
            # the run; later ones: every row since the last reading.
            self._not_before = self.clock.time()
        while True:
            rows, bad = await asyncio.to_thread(self._poll_rows)
            speed = self.clock.speed
            self._pending += [(t, r) for t, r in rows if t - _averaging_s(r) * speed >= self._not_before]
            if bad is not None:
                raise bad
            if self._pending:
                break
            if time.monotonic() > deadline:
                raise Mpms3Error(
                    f"{self.name}: no new row in {self.tail.where} for {self.row_timeout_s:g} s "
                    "(is MultiVu's sequence measuring?)"
                )
            await asyncio.sleep(POLL_WALL_S)
        rows, self._pending = self._pending, []
        return _combine(rows, averaging_s, self.clock.speed)

    def _poll_rows(self) -> tuple[list[tuple[float, DatRow]], Optional[Mpms3Error]]:
        """New measurements, each with its end on the run's clock, and the error of the first row
        that is not one (None if all are)."""
        rows: list[DatRow] = []
        bad: Optional[Mpms3Error] = None
        try:
            rows = self.tail.poll()
        except DatFileError as e:  # the good rows before it come with the next poll
            bad = Mpms3Error(f"{self.name}: {e}")
        good: list[DatRow] = []
        for r in rows:
            if not r.has_moment:
                continue
            values = {k: v for k, v in r.values.items() if not math.isnan(v)}
            problem = r.failure
            if problem is None and values == self._last_values:
                problem = "repeats the previous row's every value (a frozen writer, not a new measurement)"
            self._last_values = values
            if problem is None:
                good.append(r)
            elif bad is None:
                bad = Mpms3Error(f"{self.name}: {self.tail.where}, line {r.line}: {problem}; its moment is not used")
        now_run, now_wall = self.clock.time(), time.time()
        return [(now_run - (now_wall - self.tail.run_time(r)) * self.clock.speed, r) for r in good], bad

    # ---- health --------------------------------------------------------------------------------
    async def status(self) -> dict:
        if time.monotonic() - self._status_at >= self.status_period_s:
            try:
                self._status = await asyncio.to_thread(self._read_status)
            except Mpms3Error as e:
                self._status = e
            self._status_at = time.monotonic()
        if isinstance(self._status, Exception):
            raise self._status
        return dict(self._status)

    def _read_status(self) -> dict:
        with self._io:
            if not self.client.connected:
                self.client.open()  # the link failed earlier: try again
            field_oe, f_multivu = self.client.get_field()
            temperature, t_multivu = self.client.get_temperature()
        f_state = field_state(f_multivu)
        if f_state == "stable" and self._field_target_oe is not None:
            if abs(field_oe - self._field_target_oe) > self.field_tolerance_Oe:
                f_state = "ramping"  # MultiVu keeps its old state for a moment after a set
            else:
                if self._relaxed_at is None:
                    self._relaxed_at = self.clock.time() + self.field_relax_s
                if self.clock.time() < self._relaxed_at:
                    f_state = "relaxing"
                else:
                    self._field_target_oe = None
        return {
            "connected": True,
            "field_T": field_oe * 1e-4,
            "temperature_K": temperature,
            "field_state": f_state,
            "field_stable": f_state == "stable",
            "temperature_state": temperature_state(t_multivu),
        }

    async def _fresh_status(self) -> dict:
        self._status_at = -math.inf
        return await self.status()

    # ---- control -------------------------------------------------------------------------------
    async def set_field(
        self, target_T: float, rate_T_s: float | None = None, approach: str = "linear", wait_stable: bool = False
    ) -> None:
        rate_oe_s = (rate_T_s or self.field_rate_T_s) * 1e4
        approach = approach or self.field_approach
        target_oe = target_T * 1e4
        await asyncio.to_thread(self._exchange, self.client.set_field, target_oe, rate_oe_s, approach)
        self._field_target_oe, self._relaxed_at = target_oe, None
        self._status_at = -math.inf
        if wait_stable:
            await self.wait_field_stable()

    async def set_temperature(self, target_K: float, rate_K_s: float | None = None, wait_stable: bool = False) -> None:
        rate_k_min = (rate_K_s or self.temperature_rate_K_s) * 60.0
        await asyncio.to_thread(
            self._exchange, self.client.set_temperature, target_K, rate_k_min, self.temperature_approach
        )
        self._temperature_target_K = target_K
        self._status_at = -math.inf
        if wait_stable:
            await self.wait_temperature_stable()

    async def wait_field_stable(self) -> None:
        await self._wait("field", lambda s: s["field_state"] == "stable")

    async def wait_temperature_stable(self) -> None:
        target = self._temperature_target_K

        def ok(s: dict) -> bool:
            near = target is None or abs(s["temperature_K"] - target) <= self.temperature_tolerance_K
            return s["temperature_state"] == "stable" and near

        await self._wait("temperature", ok)

    async def _wait(self, what: str, done) -> None:
        deadline = time.monotonic() + self.settle_timeout_s
        while True:
            s = await self._fresh_status()
            if s[f"{what}_state"] == "fault":
                raise Mpms3Error(f"{self.name}: the {what} is in a fault state while waiting for it to settle")
            if done(s):
                return
            if time.monotonic() > deadline:
                raise Mpms3Error(f"{self.name}: the {what} did not settle within {self.settle_timeout_s:g} s")
            await asyncio.sleep(POLL_WALL_S)

    def _exchange(self, command, *args):
        with self._io:
            return command(*args)


def _combine(rows: list[tuple[float, DatRow]], averaging_s: float, speed: float) -> MomentReading:
    """One reading from the newest row and those ending within ``averaging_s`` before it."""
    newest_end = rows[-1][0]
    used = [(t, r) for t, r in rows if newest_end - t < averaging_s] or rows[-1:]
    n = len(used)

    def mean(values) -> float:
        return float(sum(values) / n)

    starts = [t - _averaging_s(r) * speed for t, r in used]
    errors = [r.moment_error_emu for _, r in used]
    return MomentReading(
        exposure_start=min(starts),
        exposure_end=newest_end,
        moment_emu=mean(r.moment_emu for _, r in used),
        field_T=mean(r.field_oe for _, r in used) * 1e-4,
        temperature_K=mean(r.temperature_k for _, r in used),
        moment_err_emu=math.sqrt(sum(e * e for e in errors)) / n,
    )


def _averaging_s(row: DatRow) -> float:
    value = row.get(AVERAGING_COLUMN)
    return value if math.isfinite(value) and value >= 0 else 0.0


# ---- settings and registration -----------------------------------------------------------------
class Mpms3Settings(MagnetometerSettings):
    # MultiVu's .dat file being written (as this computer sees it); with address: sim, the
    # simulator's own. "host:port;path" in the address gives it too.
    data_file: Optional[str] = None
    timezone: Optional[str] = None  # IANA zone of the MultiVu PC (default: this computer's)
    clock_offset_s: float = 0.0  # the run's clock minus the MultiVu PC's (0 with NTP on both)
    field_T: Optional[float] = None  # set when the run's instruments are built (None: left as is)
    temperature_K: Optional[float] = Field(None, gt=0)
    field_range_T: tuple[float, float] = (-7.0, 7.0)  # set-points outside are refused
    temperature_range_K: tuple[float, float] = (1.8, 400.0)
    field_rate_T_s: PositiveFloat = 0.01  # 100 Oe/s
    field_approach: Literal["linear", "no_overshoot", "oscillate"] = "linear"
    temperature_rate_K_s: float = Field(10.0 / 60.0, ge=0.01 / 60, le=20.0 / 60)  # MultiPyVu's limits
    temperature_approach: Literal["fast_settle", "no_overshoot"] = "fast_settle"
    field_tolerance_Oe: PositiveFloat = 1.0  # at the set-point within this: reached
    temperature_tolerance_K: PositiveFloat = 0.05
    field_relax_s: NonNegativeFloat = 0.0  # 'relaxing' (not stable) this long after a set field
    row_timeout_s: PositiveFloat = 120.0  # wall seconds with no new row before a reading fails
    settle_timeout_s: PositiveFloat = 1800.0  # wall seconds a wait for stability may take
    status_period_s: PositiveFloat = 1.0  # wall seconds between MultiPyVu state queries
    exchange_timeout_s: PositiveFloat = 30.0  # wall seconds one MultiPyVu exchange may take
    multipyvu_log: Optional[str] = None  # where QD's client logs (default: nowhere)

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, zone: Optional[str]) -> Optional[str]:
        if zone is not None:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {zone!r} (an IANA name, e.g. Europe/Berlin)") from None
        return zone

    @model_validator(mode="after")
    def _set_points_within_ranges(self):
        lo, hi = self.field_range_T
        tlo, thi = self.temperature_range_K
        if not (lo < hi and 0 < tlo < thi):
            raise ValueError("field_range_T and temperature_range_K must be [low, high] with low < high (K > 0)")
        if self.field_T is not None and not lo <= self.field_T <= hi:
            raise ValueError(f"field_T {self.field_T} lies outside field_range_T {list(self.field_range_T)}")
        if self.temperature_K is not None and not tlo <= self.temperature_K <= thi:
            raise ValueError(f"temperature_K {self.temperature_K} lies outside temperature_range_K")
        return self


def split_address(address: str, data_file: Optional[str], name: str) -> tuple[str, Path]:
    """``host:port[;path]`` and the settings' data_file -> (host:port, the .dat path)."""
    server, _, path = address.partition(";")
    if path and data_file and Path(path) != Path(data_file):
        raise ValueError(f"{name}: the address names data file {path!r}, settings.data_file {data_file!r}")
    if not (path or data_file):
        raise ValueError(f"{name}: which MultiVu data file? give settings.data_file (the .dat MultiVu writes)")
    return server, Path(path or data_file)


def build(ctx: BuildContext) -> Mpms3Backend:
    s: Mpms3Settings = ctx.settings
    server, dat = split_address(ctx.address, s.data_file, ctx.name)
    zone = ZoneInfo(s.timezone) if s.timezone else None
    backend = Mpms3Backend(
        Mpms3Client(server, name=ctx.name, log_path=s.multipyvu_log, exchange_timeout_s=s.exchange_timeout_s),
        DatTail(dat, zone=zone, clock_offset_s=s.clock_offset_s),
        ctx.clock,
        field_rate_T_s=s.field_rate_T_s,
        field_approach=s.field_approach,
        temperature_rate_K_s=s.temperature_rate_K_s,
        temperature_approach=s.temperature_approach,
        field_tolerance_Oe=s.field_tolerance_Oe,
        temperature_tolerance_K=s.temperature_tolerance_K,
        field_relax_s=s.field_relax_s,
        row_timeout_s=s.row_timeout_s,
        settle_timeout_s=s.settle_timeout_s,
        status_period_s=s.status_period_s,
    )
    try:
        backend.open()
        backend.start_at(s.field_T, s.temperature_K)
    except Exception as e:
        backend.close()
        if isinstance(e, DatFileError):
            raise Mpms3Error(f"{ctx.name}: {e}") from e
        raise
    ctx.on_close(backend.close, first=True)  # the client closes before any simulator stops
    return backend


register(
    BackendSpec(
        kind="magnetometer",
        name="mpms3",
        settings=Mpms3Settings,
        build=build,
        summary="a Quantum Design MPMS3 / PPMS: field and temperature through QD's MultiPyVu, the moment "
        "from MultiVu's .dat file as it grows",
        capabilities=Mpms3Backend.capabilities,
        address="the MultiPyVu server's host:port (e.g. 192.168.1.30:27183), with settings.data_file",
    )
)
