"""One measured frequency of a PEIS/GEIS step, read into the ``impedance`` stream.

Impedance rows are few (tens per spectrum), so they travel as ordinary events, unlike the echem
samples: ``impedance-frequency`` (Hz), ``impedance-Z_re`` / ``impedance-Z_im`` (ohm; Z_im < 0 for a
capacitive cell), ``impedance-Ewe_dc`` (V), ``impedance-I_dc`` (A), ``impedance-cycle``,
``impedance-step`` and ``impedance-timestamp`` (when the frequency's measurement ended, on the
experiment clock).
"""

from __future__ import annotations

from ophyd_async.core import StandardReadable, soft_signal_r_and_setter

from .techniques import IMPEDANCE_COLUMNS


class ImpedancePoint(StandardReadable):
    def __init__(self, name: str = "impedance"):
        self._setters = {}
        with self.add_children_as_readables():
            for key, (units, dtype) in IMPEDANCE_COLUMNS.items():
                kind = int if dtype.startswith("<i") else float
                signal, self._setters[key] = soft_signal_r_and_setter(kind, units=units or None)
                setattr(self, key, signal)
        super().__init__(name=name)

    def record(self, row: dict) -> None:
        """Set every column from one row (a mapping of IMPEDANCE_COLUMNS names to values)."""
        for key, (_units, dtype) in IMPEDANCE_COLUMNS.items():
            value = row[key]
            self._setters[key](int(value) if dtype.startswith("<i") else float(value))
