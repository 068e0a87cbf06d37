"""A simulated Keithley 2450 SourceMeter: its SCPI commands (native 2450 command set) executed on
a simulated cell. Written from the 2450 Reference Manual, not from any driver.

``Keithley2450Simulator.handle(line) -> reply or None`` is the whole protocol; the transport
(keithley2450_server) only moves lines. Before each message the cell is advanced on the clock
under the source state that held since the previous message.

Implemented: ``*IDN? *RST *CLS *OPC? *WAI *TRG``, ``:SYST:ERR[:NEXT]? :SYST:CLE :SYST:BEEP``,
``:SOUR:FUNC[?]``, ``:SOUR:CURR[:LEV][?] :SOUR:VOLT[:LEV][?]``, ``:SOUR:CURR:VLIM[?]``,
``:SOUR:VOLT:ILIM[?]``, source/sense ranges and auto-range, ``:SOUR:*:READ:BACK``,
``:SOUR:*:DEL[:AUTO]``, ``:SENS:FUNC[?]``, ``:SENS:*:NPLC``, ``:OUTP[:STAT][?]``,
``:OUTP:*:SMOD``, ``:READ?`` (optionally with a buffer name and elements READ, SOUR, REL,
SEC), ``:MEAS:VOLT? :MEAS:CURR?``, ``:TRAC:...`` bookkeeping, ``:STAT:PRES``, ``:ABOR``,
``:INIT``, ``:ROUT:TERM``. Unknown headers queue -113 "Undefined header".
"""

from __future__ import annotations

import threading

import numpy as np

from operando.sim_devices.cell import SimCell

from .keithley2450_scpi import (
    ILLEGAL_PARAMETER,
    MISSING_PARAMETER,
    UNDEFINED_HEADER,
    MessageUnit,
    Pattern,
    ScpiError,
    format_number,
    parse_bool,
    parse_message,
    parse_number,
    unquote,
)
from .keithley2450_source import SourceState, advance, terminal_reading

IDN = "KEITHLEY INSTRUMENTS,MODEL 2450,SIM2450,1.7.12b"
ERROR_QUEUE_LENGTH = 32
_FUNCTIONS = {"CURR": "CURR", "CURRENT": "CURR", "VOLT": "VOLT", "VOLTAGE": "VOLT", "RES": "RES", "RESISTANCE": "RES"}


class Keithley2450Simulator:
    def __init__(self, cell: SimCell, clock, seed: int = 0, noise_V: float = 2e-6, noise_rel: float = 1e-5):
        self.cell = cell
        self.clock = clock
        self.lock = threading.Lock()  # one message at a time; also for in-process observers
        self._rng = np.random.default_rng(seed)
        self._noise_V, self._noise_rel = noise_V, noise_rel
        self._t = clock.time()
        self.commands: list[str] = []  # every line received, for tests
        self._table = [(Pattern(p), fn) for p, fn in self._commands()]
        self.reset()

    # ---- state -------------------------------------------------------------------------------
    def reset(self) -> None:
        """*RST defaults (Reference Manual): voltage source 0 V, ILIM 105 µA, output off."""
        self.source = SourceState()
        self.sense_function = "CURR"
        self.settings: dict[str, object] = {}  # ranges, NPLC, delays...: accepted, remembered
        self.readback = True
        self.output_off_mode = {"CURR": "NORM", "VOLT": "NORM"}
        self.errors: list[tuple[int, str]] = []
        self.buffer_start = self.clock.time()

    def sync(self) -> None:
        """Advance the cell to the clock's now under the source state that held until now."""
        now = self.clock.time()
        advance(self.cell, self.source, now - self._t)
        self._t = now

    def _error(self, code: int, message: str) -> None:
        if len(self.errors) < ERROR_QUEUE_LENGTH:
            self.errors.append((code, message))
        else:
            self.errors[-1] = (-350, "Queue overflow")

    # ---- the protocol ------------------------------------------------------------------------
    def handle(self, line: str) -> str | None:
        """Execute one program message; the replies of its queries joined by ``;``, or None."""
        with self.lock:
            self.commands.append(line)
            self.sync()
            replies = []
            try:
                units = parse_message(line)
            except ScpiError as exc:
                self._error(exc.code, exc.message)
                return None
            for unit in units:
                try:
                    reply = self._execute(unit)
                except ScpiError as exc:
                    self._error(exc.code, exc.message)
                    continue
                if reply is not None:
                    replies.append(reply)
            return ";".join(replies) if replies else None

    def _execute(self, unit: MessageUnit) -> str | None:
        for pattern, fn in self._table:
            if pattern.matches(unit.nodes):
                return fn(unit)
        raise ScpiError(*UNDEFINED_HEADER)

    def _commands(self):
        s = self
        return [
            ("*IDN", s._idn),
            ("*RST", s._rst),
            ("*CLS", s._cls),
            ("*OPC", s._opc),
            ("*WAI", s._nothing),
            ("*TRG", s._nothing),
            ("SYSTem:ERRor[:NEXT]", s._syst_err),
            ("SYSTem:CLEar", s._cls),
            ("SYSTem:BEEPer[:IMMediate]", s._nothing),
            ("SOURce:FUNCtion[:MODE]", s._sour_func),
            ("SOURce:CURRent[:LEVel][:IMMediate][:AMPLitude]", s._level("CURR")),
            ("SOURce:VOLTage[:LEVel][:IMMediate][:AMPLitude]", s._level("VOLT")),
            ("SOURce:CURRent:VLIMit[:LEVel]", s._limit("CURR")),
            ("SOURce:VOLTage:ILIMit[:LEVel]", s._limit("VOLT")),
            ("SOURce:CURRent:READ:BACK", s._readback),
            ("SOURce:VOLTage:READ:BACK", s._readback),
            ("SOURce:CURRent:RANGe", s._setting),
            ("SOURce:CURRent:RANGe:AUTO", s._setting),
            ("SOURce:VOLTage:RANGe", s._setting),
            ("SOURce:VOLTage:RANGe:AUTO", s._setting),
            ("SOURce:CURRent:DELay", s._setting),
            ("SOURce:CURRent:DELay:AUTO", s._setting),
            ("SOURce:VOLTage:DELay", s._setting),
            ("SOURce:VOLTage:DELay:AUTO", s._setting),
            ("[SENSe]:FUNCtion[:ON]", s._sens_func),
            ("[SENSe]:CURRent[:DC]:RANGe[:UPPer]", s._setting),
            ("[SENSe]:CURRent[:DC]:RANGe:AUTO", s._setting),
            ("[SENSe]:VOLTage[:DC]:RANGe[:UPPer]", s._setting),
            ("[SENSe]:VOLTage[:DC]:RANGe:AUTO", s._setting),
            ("[SENSe]:RESistance:RANGe[:UPPer]", s._setting),
            ("[SENSe]:RESistance:RANGe:AUTO", s._setting),
            ("[SENSe]:CURRent[:DC]:NPLCycles", s._setting),
            ("[SENSe]:VOLTage[:DC]:NPLCycles", s._setting),
            ("[SENSe]:RESistance:NPLCycles", s._setting),
            ("[SENSe]:RESistance:RSENse", s._setting),
            ("[SENSe]:CURRent[:DC]:AVERage[:STATe]", s._setting),
            ("[SENSe]:CURRent[:DC]:AVERage:TCONtrol", s._setting),
            ("[SENSe]:CURRent[:DC]:AVERage:COUNt", s._setting),
            ("[SENSe]:VOLTage[:DC]:AVERage[:STATe]", s._setting),
            ("[SENSe]:VOLTage[:DC]:AVERage:TCONtrol", s._setting),
            ("[SENSe]:VOLTage[:DC]:AVERage:COUNt", s._setting),
            ("OUTPut[:STATe]", s._output),
            ("OUTPut:CURRent:SMODe", s._smod("CURR")),
            ("OUTPut:VOLTage:SMODe", s._smod("VOLT")),
            ("READ", s._read),
            ("MEASure[:VOLTage]", s._measure("VOLT")),
            ("MEASure:CURRent", s._measure("CURR")),
            ("TRACe:POINts", s._setting),
            ("TRACe:CLEar", s._nothing),
            ("TRACe:FEED:CONTrol", s._setting),
            ("TRACe:STATistics:AVERage", s._stat("mean")),
            ("TRACe:STATistics:MAXimum", s._stat("max")),
            ("TRACe:STATistics:MINimum", s._stat("min")),
            ("TRACe:STATistics:STDDev", s._stat("std")),
            ("STATus:PRESet", s._nothing),
            ("ABORt", s._nothing),
            ("INITiate[:IMMediate]", s._nothing),
            ("ROUTe:TERMinals", s._setting),
            ("TRIGger:COUNt", s._setting),
        ]

    # ---- handlers ----------------------------------------------------------------------------
    @staticmethod
    def _param(unit: MessageUnit) -> str:
        if not unit.params:
            raise ScpiError(*MISSING_PARAMETER)
        return unit.params[0]

    def _nothing(self, unit):
        return None

    def _idn(self, unit):
        if not unit.query:
            raise ScpiError(*UNDEFINED_HEADER)
        return IDN

    def _rst(self, unit):
        self.reset()

    def _cls(self, unit):
        self.errors.clear()

    def _opc(self, unit):
        return "1" if unit.query else None

    def _syst_err(self, unit):
        if not unit.query:
            raise ScpiError(*UNDEFINED_HEADER)
        code, message = self.errors.pop(0) if self.errors else (0, "No error")
        return f'{code},"{message}"'

    def _sour_func(self, unit):
        if unit.query:
            return self.source.function
        word = unquote(self._param(unit)).upper()
        if _FUNCTIONS.get(word) not in ("CURR", "VOLT"):
            raise ScpiError(*ILLEGAL_PARAMETER)
        if self.source.function != _FUNCTIONS[word]:
            # Reference Manual: changing the source function turns the output off.
            self.source.function = _FUNCTIONS[word]
            self.source.output = False
            self.source.in_compliance = False
        return None

    def _level(self, function: str):
        attr = "current_A" if function == "CURR" else "voltage_V"

        def handler(unit):
            if unit.query:
                return format_number(getattr(self.source, attr))
            setattr(self.source, attr, parse_number(self._param(unit), allow={"MINIMUM": 0.0, "DEFAULT": 0.0}))
            if self.source.function == function:
                self.source.in_compliance = False  # re-evaluated from the next interval on
            return None

        return handler

    def _limit(self, function: str):
        attr = "vlim_V" if function == "CURR" else "ilim_A"

        def handler(unit):
            if unit.query:
                return format_number(getattr(self.source, attr))
            value = parse_number(self._param(unit), allow={"DEFAULT": 21.0 if function == "CURR" else 1.05e-4})
            if value <= 0:
                raise ScpiError(*ILLEGAL_PARAMETER)
            setattr(self.source, attr, value)
            return None

        return handler

    def _readback(self, unit):
        if unit.query:
            return "1" if self.readback else "0"
        self.readback = parse_bool(self._param(unit))
        return None

    def _setting(self, unit):
        key = ":".join(unit.nodes)
        if unit.query:
            return str(self.settings.get(key, "0"))
        self.settings[key] = ",".join(unit.params)
        return None

    def _sens_func(self, unit):
        if unit.query:
            return f'"{self.sense_function}:DC"' if self.sense_function != "RES" else '"RES"'
        word = unquote(self._param(unit)).upper().split(":")[0]
        if word not in _FUNCTIONS:
            raise ScpiError(*ILLEGAL_PARAMETER)
        self.sense_function = _FUNCTIONS[word]
        return None

    def _output(self, unit):
        if unit.query:
            return "1" if self.source.output else "0"
        self.source.output = parse_bool(self._param(unit))
        self.source.in_compliance = False
        return None

    def _smod(self, function: str):
        def handler(unit):
            if unit.query:
                return self.output_off_mode[function]
            word = self._param(unit).upper()[:4]
            if word not in ("HIMP", "NORM", "ZERO", "GUAR"):
                raise ScpiError(*ILLEGAL_PARAMETER)
            self.output_off_mode[function] = word
            return None

        return handler

    # ---- measurements ------------------------------------------------------------------------
    def _reading(self) -> tuple[float, float]:
        v, i = terminal_reading(self.cell, self.source)
        v += self._rng.normal(0.0, self._noise_V)
        i += self._rng.normal(0.0, self._noise_rel * abs(i) + 1e-12)
        return v, i

    def _value(self, function: str, v: float, i: float) -> float:
        if function == "VOLT":
            return v
        if function == "CURR":
            return i
        return v / i if i else 9.9e37  # the 2450's overflow reading

    def _read(self, unit):
        """``:READ? ["buffer"[, element...]]``: the sense function's reading by default; the
        elements READ, SOUR (the measured source value with readback on, else the setpoint),
        REL (s since the buffer was cleared), SEC (s since the epoch)."""
        if not unit.query:
            raise ScpiError(*UNDEFINED_HEADER)
        v, i = self._reading()
        elements = [p.upper() for p in unit.params[1:]] or ["READ"]
        out = []
        for element in elements:
            if element.startswith("READ"):
                out.append(self._value(self.sense_function, v, i))
            elif element.startswith("SOUR"):
                if self.source.function == "CURR":
                    out.append(i if self.readback else self.source.current_A)
                else:
                    out.append(v if self.readback else self.source.voltage_V)
            elif element.startswith("REL"):
                out.append(self.clock.time() - self.buffer_start)
            elif element.startswith("SEC"):
                out.append(self.clock.time())
            else:
                raise ScpiError(*ILLEGAL_PARAMETER)
        self._remember(v, i)
        return ",".join(format_number(x) for x in out)

    def _measure(self, function: str):
        def handler(unit):
            if not unit.query:
                raise ScpiError(*UNDEFINED_HEADER)
            self.sense_function = function
            v, i = self._reading()
            self._remember(v, i)
            return format_number(self._value(function, v, i))

        return handler

    def _remember(self, v: float, i: float) -> None:
        readings = self.settings.setdefault("_buffer", [])
        readings.append((v, i))
        del readings[:-10_000]

    def _stat(self, kind: str):
        def handler(unit):
            readings = np.asarray(self.settings.get("_buffer") or [(0.0, 0.0)])
            column = readings[:, 0 if self.sense_function == "VOLT" else 1]
            fn = {"mean": np.mean, "max": np.max, "min": np.min, "std": np.std}[kind]
            return format_number(float(fn(column)))

        return handler

    # ---- what tests and in-process users may look at -------------------------------------------
    @property
    def output_on(self) -> bool:
        return self.source.output
