"""Field and temperature of a Quantum Design MPMS3 (or PPMS, DynaCool) through QD's MultiPyVu.

No second implementation of QD's protocol: every command goes through ``MultiPyVu.Client``
(3.8.0), which talks to ``MultiPyVu.Server`` running beside MultiVu on the instrument's PC (TCP,
default port 27183, one client at a time). This class adds what a long run needs:

- units in the names (Oe, Oe/s, K, K/min) and approach modes by name;
- every failure of the link (server gone, connection reset, timeout, a MultiPyVu error, a reply
  QD's client cannot parse) is an ``Mpms3Error`` naming the instrument and its address, never a
  bare socket error or a silent zero (MultiPyVu's ``get_*`` return 0 with the error text as the
  status when a reply does not convert: that is turned into an error here too);
- every exchange has a deadline (``exchange_timeout_s`` of wall time): QD's client waits for a
  command's completion without one (``process_receiving_message(..., timeout=None)``) and, on a
  reply cut short, loops on its buffer without reading the socket again. A silent server would
  hang the run; here the exchange runs in a thread of its own, and when the deadline passes the
  link is given up (its socket shut, the client dropped: the next call reconnects);
- MultiPyVu's logging set-up (it reconfigures the root logger, disables every logger that
  already exists, and writes ``QdMultiVu.log`` in the current directory) is confined: the
  process's logging is restored after connecting and QD's log goes to ``log_path`` (default:
  nowhere).

The moment is not here: MultiPyVu has no call that reads it. MultiVu writes it to its `.dat`
data file, which ``multivu_tail.DatTail`` follows.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any, Optional, TypeVar

import MultiPyVu
from MultiPyVu import logging_config as _mpv_logging
from MultiPyVu.exceptions import MultiPyVuError

DEFAULT_PORT = 27183
FIELD_APPROACHES = ("linear", "no_overshoot", "oscillate")
TEMPERATURE_APPROACHES = ("fast_settle", "no_overshoot")
TEMPERATURE_RATE_K_MIN = (0.01, 20.0)  # what MultiPyVu 3.8.0's client accepts
DEFAULT_EXCHANGE_TIMEOUT_S = 30.0  # wall seconds one MultiPyVu exchange may take
# What a dropped or damaged link raises inside MultiPyVu: its own errors, socket errors
# (ConnectionError, TimeoutError and socket.timeout are all OSError), sys.exit(0) when a socket
# fails mid-command (SystemExit), and what its parsing raises on a damaged reply: ValueError
# (bad JSON, "Incorrect Message ID"), KeyError, and UnboundLocalError from ``get_field`` when a
# reply does not convert (3.8.0 returns a variable it never set).
LINK_ERRORS = (MultiPyVuError, OSError, ValueError, AttributeError, SystemExit, LookupError, NameError, TypeError)


class _Stalled(Exception):
    """An exchange passed its deadline."""


T = TypeVar("T")


class Mpms3Error(RuntimeError):
    """The instrument (named, with its address) did not do or answer what was asked."""


def split_address(address: str) -> tuple[str, int]:
    """``host[:port]`` -> (host, port); MultiPyVu's default port if none is given."""
    host, sep, port = address.rpartition(":")
    if not sep:
        return address, DEFAULT_PORT
    try:
        return host, int(port)
    except ValueError:
        raise ValueError(f"MPMS3 address {address!r}: the port is not a number") from None


@contextmanager
def confined_multipyvu_logging(log_path: Optional[str]):
    """Let MultiPyVu configure its logging, then give the process its own logging back."""
    root = logging.getLogger()
    saved_root = (list(root.handlers), root.level)
    manager = logging.Logger.manager
    saved_disabled = {name: lg.disabled for name, lg in manager.loggerDict.items() if isinstance(lg, logging.Logger)}
    saved_name = _mpv_logging.LOG_NAME
    _mpv_logging.LOG_NAME = log_path or os.devnull
    try:
        yield
    finally:
        _mpv_logging.LOG_NAME = saved_name
        for handler in root.handlers[:]:
            if handler not in saved_root[0]:
                root.removeHandler(handler)
        for handler in saved_root[0]:
            if handler not in root.handlers:
                root.addHandler(handler)
        root.setLevel(saved_root[1])
        for name, disabled in saved_disabled.items():
            lg = manager.loggerDict.get(name)
            if isinstance(lg, logging.Logger):
                lg.disabled = disabled
        # QD's loggers print every exchange on stdout: keep their records in this process's
        # logging (warnings and above) instead.
        for name in ("MultiVuClient", "MultiVuServer"):
            qd = logging.getLogger(name)
            for handler in qd.handlers[:]:
                if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                    qd.removeHandler(handler)
            qd.propagate = True
            qd.setLevel(logging.WARNING)


class Mpms3Client:
    """Field and temperature of one instrument; ``open()`` before use, ``close()`` is idempotent."""

    def __init__(
        self,
        address: str = f"127.0.0.1:{DEFAULT_PORT}",
        name: str = "mpms3",
        log_path: Optional[str] = None,
        exchange_timeout_s: float = DEFAULT_EXCHANGE_TIMEOUT_S,
    ):
        self.host, self.port = split_address(address)
        self.name = name
        self.log_path = log_path
        if not exchange_timeout_s > 0:
            raise ValueError(f"{name}: exchange_timeout_s must be > 0, got {exchange_timeout_s!r}")
        self.exchange_timeout_s = exchange_timeout_s
        self._client: Any = None

    def __repr__(self) -> str:
        return f"Mpms3Client({self.name!r} at {self.host}:{self.port})"

    @property
    def connected(self) -> bool:
        return self._client is not None

    # ---- life cycle --------------------------------------------------------------------------
    def open(self) -> Mpms3Client:
        if self._client is not None:
            return self
        client = MultiPyVu.Client(host=self.host, port=self.port)
        try:
            with confined_multipyvu_logging(self.log_path):
                self._bounded(client, client.open)
        except _Stalled:
            raise Mpms3Error(
                f"{self.name}: the MultiPyVu server at {self.host}:{self.port} did not complete the "
                f"connection within {self.exchange_timeout_s:g} s"
            ) from None
        except LINK_ERRORS as e:
            raise Mpms3Error(
                f"{self.name}: no MultiPyVu server answering at {self.host}:{self.port} "
                f"(is MultiPyVu.Server running beside MultiVu, with no other client?): {_brief(e)}"
            ) from e
        self._client = client
        return self

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            with confined_multipyvu_logging(self.log_path):
                self._bounded(client, client.close_client)
        except (_Stalled, *LINK_ERRORS):
            pass  # the link is already gone: nothing left to close

    def __enter__(self) -> Mpms3Client:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- commands ----------------------------------------------------------------------------
    def set_field(self, field_oe: float, rate_oe_s: float, approach: str = "linear") -> None:
        """Ramp to ``field_oe`` at ``rate_oe_s`` (linear, no_overshoot or oscillate approach)."""
        mode = _choice(approach, FIELD_APPROACHES, "field approach")
        if not rate_oe_s > 0:
            raise ValueError(f"{self.name}: field rate must be > 0 Oe/s, got {rate_oe_s!r}")
        enum = MultiPyVu.Client.field.approach_mode[mode]
        self._call(f"set field {field_oe:g} Oe", lambda c: c.set_field(float(field_oe), float(rate_oe_s), enum))

    def set_temperature(self, temperature_k: float, rate_k_min: float, approach: str = "fast_settle") -> None:
        """Go to ``temperature_k`` at ``rate_k_min`` (fast_settle or no_overshoot approach)."""
        mode = _choice(approach, TEMPERATURE_APPROACHES, "temperature approach")
        if not temperature_k > 0:
            raise ValueError(f"{self.name}: temperature must be > 0 K, got {temperature_k!r}")
        low, high = TEMPERATURE_RATE_K_MIN
        if not low <= rate_k_min <= high:
            raise ValueError(f"{self.name}: temperature rate must be {low:g} to {high:g} K/min, got {rate_k_min!r}")
        enum = MultiPyVu.Client.temperature.approach_mode[mode]
        self._call(
            f"set temperature {temperature_k:g} K",
            lambda c: c.set_temperature(float(temperature_k), float(rate_k_min), enum),
        )

    def get_field(self) -> tuple[float, str]:
        """(field in Oe, MultiVu's state: 'Holding (driven)', 'Stable', 'Ramping', ...)."""
        states = MultiPyVu.Client.field.state_code_dict().values()
        return self._reading("read the field", lambda c: c.get_field(), states)

    def get_temperature(self) -> tuple[float, str]:
        """(temperature in K, MultiVu's state: 'Stable', 'Tracking', 'Chasing', ...)."""
        states = MultiPyVu.Client.temperature.state_code_dict().values()
        return self._reading("read the temperature", lambda c: c.get_temperature(), states)

    # ---- plumbing ----------------------------------------------------------------------------
    def _call(self, what: str, command: Callable[[Any], T]) -> T:
        client = self._client
        if client is None:
            raise Mpms3Error(f"{self.name} at {self.host}:{self.port}: not connected (cannot {what})")
        try:
            return self._bounded(client, lambda: command(client))
        except _Stalled:
            self._client = None
            raise Mpms3Error(
                f"{self.name} at {self.host}:{self.port} did not answer within {self.exchange_timeout_s:g} s "
                f"({what}); the link is given up"
            ) from None
        except LINK_ERRORS as e:
            # MultiPyVu closes the connection on any of these: a new open() is needed.
            self._client = None
            failure = "refused" if isinstance(e, MultiPyVuError) else "stopped answering"
            raise Mpms3Error(f"{self.name} at {self.host}:{self.port} {failure} ({what}): {_brief(e)}") from e

    def _bounded(self, client: Any, exchange: Callable[[], T]) -> T:
        """``exchange()`` in a thread of its own, waited for ``exchange_timeout_s``; past that, the
        client's socket is shut (its thread then ends if it is reading) and ``_Stalled`` raised."""
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["value"] = exchange()
            except BaseException as e:  # SystemExit included: MultiPyVu exits on a failed socket
                box["error"] = e

        thread = threading.Thread(target=work, name=f"{self.name}-multipyvu", daemon=True)
        thread.start()
        thread.join(self.exchange_timeout_s)
        if thread.is_alive():
            _shut(client)
            raise _Stalled
        if "error" in box:
            raise box["error"]
        return box.get("value")

    def _reading(self, what: str, command: Callable[[Any], tuple], states) -> tuple[float, str]:
        value, state = self._call(what, command)
        # A reply MultiPyVu could not convert (a closed link among others) comes back as
        # (0, <error text>): anything but one of MultiVu's state names is a failure.
        if state in states and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value), state
        self._client = None
        raise Mpms3Error(f"{self.name} at {self.host}:{self.port} stopped answering ({what}): got {value!r}, {state!r}")


def _brief(e: BaseException) -> str:
    """One line of what QD's client raised (its decoding errors carry a whole traceback)."""
    if isinstance(e, SystemExit):  # MultiPyVu calls sys.exit(0) when its socket fails mid-command
        return "MultiPyVu's client gave up on the socket (it called sys.exit)"
    lines = str(e).strip().splitlines()
    text = lines[0] if lines else ""
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


def _shut(client: Any) -> None:
    sock = getattr(getattr(client, "_message", None), "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _choice(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
    return value
