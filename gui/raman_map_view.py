"""A Raman map run's band-area ratio where each spectrum was taken: squares coloured by the ratio
at the stage's x, y (an area map), or the ratio along the line (a line map). Shown by the Raman
bands panel for runs of ``plans/raman_map.py``; positions are the stage's stored readbacks."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from .formatting import fmt
from .model import RunData, Stream

COLOUR_MAP = "viridis"  # perceptually uniform; low = dark, high = yellow


def map_layout(data: RunData, stream: Stream) -> tuple[str, np.ndarray, np.ndarray] | None:
    """(kind, x µm, y µm) of a map run's spectra, or None for any other run."""
    start = data.start or {}
    m = start.get("map") if start.get("plan_name") == "raman_map" else None
    if not isinstance(m, dict):
        return None
    keys = [f"{m.get('stage', 'stage')}-{axis}" for axis in ("x", "y")]
    if not all(k in stream.columns for k in keys):
        return None
    x, y = (np.asarray(stream[k], float) for k in keys)
    return str(m.get("kind")), x, y


class RamanMapView(pg.PlotWidget):
    def __init__(self):
        super().__init__()
        self.setBackground("w")
        self.colour_map = pg.colormap.get(COLOUR_MAP)
        self.squares = pg.ScatterPlotItem(symbol="s", size=14, pen=pg.mkPen(None))
        self.line = pg.PlotDataItem(pen=pg.mkPen("#2a8a3e", width=1), symbol="o", symbolSize=5)
        self.addItem(self.squares)
        self.addItem(self.line)
        self.values = np.empty(0)  # what is drawn (the tests read it)

    def show_map(self, kind: str, x: np.ndarray, y: np.ndarray, values: np.ndarray, label: str) -> None:
        n = min(len(x), len(y), len(values))
        x, y, v = x[:n], y[:n], np.asarray(values[:n], float)
        ok = np.isfinite(v) & np.isfinite(x) & np.isfinite(y)
        self.values = v[ok]
        item = self.getPlotItem()
        if kind == "line":
            along = np.hypot(x - x[0], y - y[0]) if n else x
            self.squares.setData([], [])
            self.line.setData(along[ok], v[ok])
            item.setLabel("bottom", "distance along the line", units="µm")
            item.setLabel("left", f"area {label}")
            item.setAspectLocked(False)
            item.setTitle(f"Raman line map: {ok.sum()} of {n} spectra fitted")
            return
        self.line.setData([], [])
        if ok.any():
            low, high = float(v[ok].min()), float(v[ok].max())
            scaled = (v[ok] - low) / (high - low) if high > low else np.zeros(ok.sum())
            brushes = [pg.mkBrush(c) for c in self.colour_map.map(scaled, mode="qcolor")]
            self.squares.setData(x[ok], y[ok], brush=brushes)
            span = f"{fmt(low, '.3f')} (dark) – {fmt(high, '.3f')} (yellow)"
        else:
            self.squares.setData([], [])
            span = "none fitted yet"
        item.setLabel("bottom", "x", units="µm")
        item.setLabel("left", "y", units="µm")
        item.setAspectLocked(True)
        item.setTitle(f"area {label}: {span}")
