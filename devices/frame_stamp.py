"""The echem state a detector frame belongs to, read into the frame's own event.

Every detector frame carries the cell's state interpolated at its exposure midpoint on the one
experiment clock, and why it was taken. Keys: ``frame-time`` (s, midpoint), ``frame-Ewe`` (V),
``frame-I`` (A), ``frame-charge`` (mA*h), ``frame-soc`` (charge / theoretical capacity),
``frame-cycle``, ``frame-step``, ``frame-instrument_time`` (the same instant on the
potentiostat's own clock), ``frame-trigger_reason`` (the schedule rules that fired).
"""

from __future__ import annotations

import math

from ophyd_async.core import StandardReadable, soft_signal_r_and_setter

from .echem_history import EchemState


class FrameStamp(StandardReadable):
    def __init__(self, name: str = "frame"):
        with self.add_children_as_readables():
            self.time, self._set_time = soft_signal_r_and_setter(float, units="s")
            self.Ewe, self._set_ewe = soft_signal_r_and_setter(float, units="V")
            self.I, self._set_i = soft_signal_r_and_setter(float, units="A")
            self.charge, self._set_charge = soft_signal_r_and_setter(float, units="mA*h")
            self.soc, self._set_soc = soft_signal_r_and_setter(float)
            self.cycle, self._set_cycle = soft_signal_r_and_setter(int)
            self.step, self._set_step = soft_signal_r_and_setter(int)
            self.instrument_time, self._set_inst = soft_signal_r_and_setter(float, units="s")
            self.trigger_reason, self._set_reason = soft_signal_r_and_setter(str)
        super().__init__(name=name)

    def stamp(self, state: EchemState | None, midpoint: float, reason: str, capacity_mAh=None):
        """Set the values the next read returns (NaN / -1 when no echem sample exists yet)."""
        nan = math.nan
        self._set_time(midpoint)
        self._set_ewe(state.Ewe if state else nan)
        self._set_i(state.I if state else nan)
        self._set_charge(state.charge if state else nan)
        self._set_soc(state.charge / capacity_mAh if state and capacity_mAh else nan)
        self._set_cycle(state.cycle if state else -1)
        self._set_step(state.step if state else -1)
        self._set_inst(state.instrument_time if state else nan)
        self._set_reason(reason)


class FrameFailure(StandardReadable):
    """A detector frame that failed (disconnection, timeout...): the run goes on, this records it.

    Read into the ``frame_failures`` stream: ``failure-detector``, ``failure-error``,
    ``failure-time`` (experiment clock).
    """

    def __init__(self, name: str = "failure"):
        with self.add_children_as_readables():
            self.detector, self._set_detector = soft_signal_r_and_setter(str)
            self.error, self._set_error = soft_signal_r_and_setter(str)
            self.time, self._set_time = soft_signal_r_and_setter(float, units="s")
        super().__init__(name=name)

    def record(self, detector: str, error: BaseException, t: float) -> None:
        self._set_detector(detector)
        self._set_error(f"{type(error).__name__}: {error}")
        self._set_time(t)


class TimebaseRecord(StandardReadable):
    """How the potentiostat's clock was mapped onto the experiment clock, read once at the end
    of a run into the ``timebase`` stream: ``timebase-offset_s``, ``timebase-drift_ppm``,
    ``timebase-instrument_time0``, ``timebase-pairs`` (arrivals the estimate used), and
    ``timebase-source`` ("host": no mapping was needed)."""

    def __init__(self, name: str = "timebase"):
        with self.add_children_as_readables():
            self.offset_s, self._set_offset = soft_signal_r_and_setter(float, units="s")
            self.drift_ppm, self._set_drift = soft_signal_r_and_setter(float)
            self.instrument_time0, self._set_t0 = soft_signal_r_and_setter(float, units="s")
            self.pairs, self._set_pairs = soft_signal_r_and_setter(int)
            self.source, self._set_source = soft_signal_r_and_setter(str)
        super().__init__(name=name)

    def record(self, mapping: dict, source: str) -> None:
        self._set_offset(mapping["offset_s"])
        self._set_drift(mapping["drift_ppm"])
        t0 = mapping["instrument_time0"]
        self._set_t0(math.nan if t0 is None else t0)
        self._set_pairs(mapping["pairs"])
        self._set_source(source)
