"""Brings a shared detector's probe to one cell of a several-cell run.

``set(cell)`` moves the stage (if the detector has one) to the cell's ``position_um`` — each axis
within its travel, checked before it moves, on the experiment clock — and then tells whoever
needs to know that the probe is there (a simulated lab switches the cell its detector observes).
Read into every frame of the detector: ``<changer>-cell`` (where the probe was) and
``<changer>-move_s`` (experiment seconds the move took, 0 when it was there already).
"""

from __future__ import annotations

from collections.abc import Callable

from ophyd_async.core import AsyncStatus, StandardReadable, soft_signal_r_and_setter


class CellChanger(StandardReadable):
    def __init__(
        self,
        positions: dict[str, tuple[float, float] | None],
        clock,
        stage=None,
        on_arrival: Callable[[str], None] | None = None,
        name: str = "",
    ):
        missing = [cell for cell, p in positions.items() if p is None]
        if stage is not None and missing:
            raise ValueError(f"{name}: the stage needs a position_um for every cell; missing: {', '.join(missing)}")
        if stage is not None:
            for cell, (x, y) in positions.items():  # every cell within the travel, before any run
                try:
                    stage.x.check(x)
                    stage.y.check(y)
                except ValueError as exc:
                    raise ValueError(f"cells.{cell}.position_um: {exc}") from None
        self._positions, self._clock, self._stage, self._on_arrival = positions, clock, stage, on_arrival
        self._at: str | None = None
        with self.add_children_as_readables():
            self.cell, self._set_cell = soft_signal_r_and_setter(str)
            self.move_s, self._set_move_s = soft_signal_r_and_setter(float, units="s")
        super().__init__(name=name)

    @property
    def at(self) -> str | None:
        return self._at

    @AsyncStatus.wrap
    async def set(self, cell: str) -> None:
        if cell not in self._positions:
            raise ValueError(f"{self.name}: no cell {cell!r} (cells: {', '.join(self._positions)})")
        started = self._clock.time()
        if self._stage is not None and cell != self._at:
            x, y = self._positions[cell]
            self._at = None  # in between while it moves: a failed move leaves it nowhere known
            await self._stage.x.set(x)
            await self._stage.y.set(y)
        if self._on_arrival is not None:
            self._on_arrival(cell)
        self._at = cell
        self._set_cell(cell)
        self._set_move_s(self._clock.time() - started)
