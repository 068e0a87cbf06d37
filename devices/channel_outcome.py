"""How each cell of a several-cell run ended, read once per cell into the ``channel_outcomes``
stream at the end of the run: ``outcome-cell``, ``outcome-status`` (completed | fault | stopped),
``outcome-reason``, ``outcome-samples``, ``outcome-step``, ``outcome-cycle`` (where it ended)."""

from __future__ import annotations

from ophyd_async.core import StandardReadable, soft_signal_r_and_setter


class ChannelOutcome(StandardReadable):
    def __init__(self, name: str = "outcome"):
        with self.add_children_as_readables():
            self.cell, self._set_cell = soft_signal_r_and_setter(str)
            self.status, self._set_status = soft_signal_r_and_setter(str)
            self.reason, self._set_reason = soft_signal_r_and_setter(str)
            self.samples, self._set_samples = soft_signal_r_and_setter(int)
            self.step, self._set_step = soft_signal_r_and_setter(int)
            self.cycle, self._set_cycle = soft_signal_r_and_setter(int)
        super().__init__(name=name)

    def record(self, cell: str, status: str, reason: str, samples: int, step: int, cycle: int) -> None:
        self._set_cell(cell)
        self._set_status(status)
        self._set_reason(reason)
        self._set_samples(int(samples))
        self._set_step(int(step))
        self._set_cycle(int(cycle))
