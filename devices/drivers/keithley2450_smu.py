"""The few things a cell needs from a Keithley 2450, said through pymeasure's own ``Keithley2450``.

No second SCPI driver: every command goes through pymeasure's instrument (its properties where it
has them, its ``write``/``ask`` for the 2450 commands it lacks: output-off mode, source readback,
``:READ?`` with buffer elements). This class only remembers what it set, so a staircase sends one
``:SOUR:VOLT:LEV`` per stair and nothing else.

Facts used (Keithley 2450 Reference Manual):
- the voltage limit of a current source (``:SOUR:CURR:VLIM``) and the current limit of a voltage
  source (``:SOUR:VOLT:ILIM``) are magnitudes; at the limit the instrument holds it (compliance);
- the default output-off state ("normal") sources 0 V, which would discharge a battery: the
  high-impedance state (``:OUTP:CURR:SMOD HIMP``, ``:OUTP:VOLT:SMOD HIMP``) opens the circuit, so
  it is set before anything else (and ``*RST``, which restores "normal", is never sent);
- ``:READ? "defbuffer1", READ, SOUR`` returns the sense reading and, with source readback on,
  the measured source value: voltage and current in one round trip.
"""

from __future__ import annotations

import math
import socket

from pymeasure.instruments.keithley import Keithley2450

DEFAULT_TIMEOUT_MS = 2000
# The 2450 answers 9.91E+37 (its NaN) for a reading it could not make; +-9.9E+37 is overflow.
NO_READING = 9.9e37


def open_keithley2450(resource: str, timeout_ms: int = DEFAULT_TIMEOUT_MS, visa_library: str = "@py") -> Keithley2450:
    """pymeasure's Keithley2450 on ``resource`` (e.g. ``TCPIP::10.0.0.5::5025::SOCKET``, ``USB0::...``).

    pymeasure sets no terminations for a raw socket; the 2450 ends every message with LF. And
    pyvisa-py leaves Nagle's algorithm on for sockets (VISA's default is TCPIP_NODELAY true): a
    command followed by a query then waits for the peer's delayed ACK, ~40 ms per exchange.
    """
    k = Keithley2450(
        resource, visa_library=visa_library, read_termination="\n", write_termination="\n", timeout=timeout_ms
    )
    if resource.upper().endswith("::SOCKET"):
        _no_delay(k.adapter.connection)
    return k


def _no_delay(connection) -> None:
    # pyvisa-py 0.8.1 refuses VI_ATTR_TCPIP_NODELAY on a SOCKET session; its socket is reachable.
    session = getattr(connection.visalib, "sessions", {}).get(connection.session)
    sock = getattr(session, "interface", None)
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Keithley2450Smu:
    def __init__(self, instrument: Keithley2450, nplc: float = 1.0):
        self.instrument = instrument
        self.nplc = nplc
        self.function: str | None = None  # "CURR" | "VOLT" as last set
        self.output = False
        self.sourced = False  # the output was switched on at least once (through this object)
        self._limit: float | None = None
        self._level: float | None = None

    def prepare(self) -> None:
        """Safe output-off state first, then readback and integration time; errors checked."""
        k = self.instrument
        k.clear()  # *CLS
        k.write(":OUTP:CURR:SMOD HIMP")
        k.write(":OUTP:VOLT:SMOD HIMP")
        k.write(":SOUR:CURR:READ:BACK ON")
        k.write(":SOUR:VOLT:READ:BACK ON")
        k.write(f":SENS:VOLT:NPLC {self.nplc:g}")
        k.write(f":SENS:CURR:NPLC {self.nplc:g}")
        self.check_errors()

    def check_errors(self) -> None:
        errors = self.instrument.check_errors()
        if errors:
            raise Keithley2450Error(f"Keithley 2450 reported {errors}")

    def source_current(self, current_A: float, vlim_V: float) -> None:
        """Current source at ``current_A`` with voltage limit ``vlim_V``; output on."""
        self._source("CURR", current_A, vlim_V)

    def source_voltage(self, voltage_V: float, ilim_A: float) -> None:
        """Voltage source at ``voltage_V`` with current limit ``ilim_A``; output on."""
        self._source("VOLT", voltage_V, ilim_A)

    def _source(self, function: str, level: float, limit: float) -> None:
        k = self.instrument
        if function != self.function:
            if self.output:
                self.output_off()  # the 2450 turns its output off on a function change anyway
            k.source_mode = "current" if function == "CURR" else "voltage"
            k.write(':SENS:FUNC "VOLT"' if function == "CURR" else ':SENS:FUNC "CURR"')
            self.function, self._limit, self._level = function, None, None
        if limit != self._limit:
            if function == "CURR":
                k.compliance_voltage = limit
            else:
                k.compliance_current = limit
            self._limit = limit
        if level != self._level:
            if function == "CURR":
                k.source_current = level
            else:
                k.source_voltage = level
            self._level = level
        if not self.output:
            self.sourced = True  # before the write: if it fails, the output may still be on
            k.enable_source()
            self.output = True

    def measure(self) -> tuple[float, float]:
        """(Ewe, I) in one round trip; a reply that is not two finite numbers is a
        Keithley2450Error (pymeasure's ``values`` keeps what is no number as text)."""
        values = self.instrument.values(':READ? "defbuffer1", READ, SOUR')
        if len(values) != 2 or not all(isinstance(v, float) and math.isfinite(v) for v in values):
            raise Keithley2450Error(f"Keithley 2450 answered :READ? with {values!r}, not two finite numbers")
        if any(abs(v) >= NO_READING for v in values):
            raise Keithley2450Error(
                f"Keithley 2450 answered :READ? with {values!r}: its no-reading value (9.91E+37), no measurement"
            )
        reading, source = values
        return (reading, source) if self.function == "CURR" else (source, reading)

    def output_off(self) -> None:
        """Output off, confirmed: ``:OUTP OFF`` is a write with no reply, so the state is read back
        (which also means the instrument has acted on it when this returns)."""
        self.output = False  # first: if the write fails, the caller must still try again
        self.instrument.disable_source()
        if self.instrument.source_enabled:
            raise Keithley2450Error("Keithley 2450 output still on after OUTPUT OFF")


class Keithley2450Error(RuntimeError):
    """The instrument reported an error (its SYST:ERR? queue)."""
