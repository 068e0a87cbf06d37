"""Impedance panel: Nyquist (Z′ vs −Z″, equal aspect) and Bode (|Z| and phase vs frequency).

The stream is found by its data keys (scalar keys ending ``-Z_re``, ``-Z_im`` and ``-frequency``),
not by its name. One event is one frequency; a spectrum is a run of rows with the same step and
cycle. The panel shows the spectra measured at or before the time cursor (the last one cut at the
cursor), highlights the cursor's (or the newest) spectrum and redraws only when the impedance
stream gains a row or the cursor moves: echem samples never redraw it.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from .formatting import fmt, missing
from .model import RunData, Stream, key_ending
from .panels_echem import Panel
from .plots import COLOURS, CYCLE_COLOURS, plot, right_axis

LAST = 10  # spectra drawn: the cursor's and the ones before it (a legend of 50 reads as noise)


def find_impedance(data: RunData) -> tuple[Stream, dict[str, str | None]] | None:
    """The first detector stream with scalar Z_re, Z_im and frequency keys, and its key names."""
    for s in data.detector_streams():
        scalars = s.keys_of_ndim(0)
        keys = {k: key_ending(scalars, k) for k in ("Z_re", "Z_im", "frequency")}
        if all(keys.values()):
            prefix = keys["Z_re"][: -len("Z_re")]  # step/cycle of the same device, not frame-step
            for k in ("step", "cycle"):
                keys[k] = prefix + k if prefix + k in s.columns else key_ending(scalars, k)
            return s, keys
    return None


def spectrum_bounds(step: np.ndarray | None, cycle: np.ndarray | None, n: int) -> list[tuple[int, int]]:
    """[start, stop) of each spectrum: a new one wherever the step or the cycle changes."""
    change = np.zeros(max(n - 1, 0), bool)
    for col in (step, cycle):
        if col is not None and n > 1:
            change |= np.asarray(col[:n])[1:] != np.asarray(col[:n])[:-1]
    edges = [0, *(np.flatnonzero(change) + 1).tolist(), n] if n else []
    return list(zip(edges[:-1], edges[1:]))


def technique_of_step(data: RunData, step: int) -> str:
    """The technique name of ``step`` from the echem stream (its ``technique`` key's choices)."""
    e = data.echem
    if e is None or not e.rows or "technique" not in e.columns:
        return ""
    choices = e.data_keys.get("technique", {}).get("choices") or []
    steps = e["step"]
    i = int(np.searchsorted(steps, step))  # steps only grow along a run
    if i >= len(steps) or steps[i] != step:
        return ""
    code = int(e["technique"][i])
    return choices[code].upper() if 0 <= code < len(choices) else ""


class ImpedancePanel(Panel):
    def __init__(self):
        super().__init__()
        self.nyquist = plot("Nyquist", "Z′", "−Z″", "Ω", "Ω")
        self.nyquist.getPlotItem().setAspectLocked(True)  # a semicircle must look like one
        self.legend = self.nyquist.getPlotItem().addLegend(offset=(-5, 5), labelTextSize="8pt")
        # Bode in one plot: |Z| (solid, dots) on the left axis, −phase (dashed, triangles) on the
        # right, so it fits where the Nyquist plot does. The phase view shares the x axis, whose
        # values are log10(f): its curves are given log10(f) (the main plot's take f).
        self.bode = plot("Bode: |Z| ● solid, −phase ▲ dashed", "frequency", "|Z|", "Hz", "Ω")
        self.bode.getPlotItem().setLogMode(x=True, y=False)
        self.bode_legend = self.bode.getPlotItem().addLegend(offset=(-5, 5), labelTextSize="8pt")
        self.phase_view = right_axis(self.bode, "−phase", "°", COLOURS["grey"])
        self.log_modulus = False  # |Z| on a log axis once it spans more than a decade
        self.items: list[tuple[pg.PlotDataItem, pg.PlotDataItem, pg.PlotDataItem]] = []
        self.labels: list[pg.TextItem] = []  # decade frequencies along the highlighted spectrum
        self.shown: list[tuple[int, int, str]] = []  # (start, stop, label) per curve drawn
        self.highlighted: int | None = None  # index into ``shown``
        self.draws = 0

        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.nyquist, "Nyquist")
        self.tabs.addTab(self.bode, "Bode")
        self.empty = QtWidgets.QLabel("No impedance in this run (PEIS/GEIS steps record it).")
        self.empty.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("color: #777")
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.tabs)
        lay.addWidget(self.empty)
        self._show_empty(True)

    def depends(self, data):
        found = find_impedance(data)
        return None if found is None else (found[0].name, found[0].rows)

    def _show_empty(self, empty: bool):
        self.tabs.setVisible(not empty)
        self.empty.setVisible(empty)

    def _item(self, k: int):
        while len(self.items) <= k:
            made = []
            for target, symbol in ((self.nyquist, "o"), (self.bode, "o"), (self.phase_view, "t1")):
                item = pg.PlotDataItem(symbol=symbol)
                target.addItem(item)
                made.append(item)
            self.items.append(tuple(made))
        return self.items[k]

    def draw(self, data):
        self.draws += 1
        found = find_impedance(data)
        stream = found[0] if found else None
        if stream is None or not stream.rows:
            self._show_empty(stream is None)
            self._set_curves(data, None, [], None)
            return
        self._show_empty(False)
        _, keys = found
        i = data.row_at(stream, data.at())
        bounds = spectrum_bounds(*(stream[keys[k]] if keys[k] else None for k in ("step", "cycle")), stream.rows)
        # spectra begun at or before the cursor, the last one cut at it
        upto = [(a, min(b, i + 1), k) for k, (a, b) in enumerate(bounds) if i is not None and a <= i]
        self._set_curves(data, (stream, keys), upto[-LAST:], len(upto[-LAST:]) - 1 if upto else None)

    def _set_curves(self, data, found, spans, highlight):
        step_key = cycle_key = None
        if found:
            stream, keys = found
            z_re, z_im, f = (stream[keys[k]] for k in ("Z_re", "Z_im", "frequency"))
            step_key, cycle_key = keys["step"], keys["cycle"]
        shown = []
        if spans:  # a log |Z| axis only when |Z| spans a decade: a 10–15 Ω range has no ticks on one
            modulus = np.hypot(z_re[spans[0][0] : spans[-1][1]], z_im[spans[0][0] : spans[-1][1]])
            wide = bool(modulus.size and modulus.min() > 0 and modulus.max() > 10 * modulus.min())
            if wide != self.log_modulus:
                self.log_modulus = wide
                self.bode.getPlotItem().setLogMode(x=True, y=wide)
        for items in self.items[len(spans) :]:
            for item in items:
                item.setData([], [])
        for k, (a, b, ordinal) in enumerate(spans):
            step = int(stream[step_key][a]) if step_key and not missing(stream[step_key][a]) else None
            cycle = int(stream[cycle_key][a]) if cycle_key and not missing(stream[cycle_key][a]) else None
            label = " ".join(
                p
                for p in (
                    f"step {step}" if step is not None else f"spectrum {ordinal + 1}",
                    technique_of_step(data, step) if step is not None else "",
                )
                if p
            )
            if cycle is not None:
                label += f" · cycle {cycle}"
            shown.append((a, b, label))
            top = k == highlight
            colour = CYCLE_COLOURS[ordinal % len(CYCLE_COLOURS)]
            line = pg.mkPen(colour, width=2 if top else 1)
            dashed = pg.mkPen(colour, width=2 if top else 1, style=QtCore.Qt.PenStyle.DashLine)
            re, im, fr = z_re[a:b], z_im[a:b], f[a:b]
            ny, mod, ph = self._item(k)
            for item, x, y, p in (
                (ny, re, -im, line),
                (mod, fr, np.hypot(re, im), line),
                (ph, np.log10(fr), -np.degrees(np.arctan2(im, re)), dashed),
            ):
                item.setData(x, y)
                item.setPen(p)
                item.setSymbolPen(None)
                item.setSymbolBrush(colour)
                item.setSymbolSize(7 if top else 4)
                item.setZValue(10 if top else 0)
                item.setOpacity(1.0 if top else 0.6)
        self.highlighted = highlight
        self._label_decades(shown[highlight] if highlight is not None else None, found)
        if [s[2] for s in shown] != [s[2] for s in self.shown]:  # a legend is slow to rebuild
            self.legend.clear()
            self.bode_legend.clear()
            for (ny, mod, _), (_, _, label) in zip(self.items, shown):
                self.legend.addItem(ny, label)
                self.bode_legend.addItem(mod, label)
        self.shown = shown
        title = "Nyquist"
        if highlight is not None:
            mode = "cursor" if data.cursor is not None else "newest"
            title += f" — {mode}: {shown[highlight][2]}"
        self.nyquist.getPlotItem().setTitle(f"<span style='font-size:10pt; font-weight:600'>{title}</span>")

    def _label_decades(self, span, found):
        """Frequency labels at the decades of the highlighted spectrum (how one reads a Nyquist)."""
        points = []
        if span is not None:
            stream, keys = found
            a, b, _ = span
            f = stream[keys["frequency"]][a:b]
            x, y = stream[keys["Z_re"]][a:b], -stream[keys["Z_im"]][a:b]
            # close labels overlap (high frequencies crowd near R_ohm): keep those 12 % apart
            gap = 0.12 * max(np.ptp(x), np.ptp(y), 1e-12) if b > a else 0.0
            lg = np.log10(np.maximum(f, 1e-300))
            for j in np.flatnonzero(np.abs(lg - np.round(lg)) < 1e-6):
                if all(np.hypot(x[j] - px, y[j] - py) >= gap for px, py, _ in points):
                    points.append((x[j], y[j], f[j]))
        while len(self.labels) < len(points):
            text = pg.TextItem(color="#444", anchor=(-0.15, 0.5))  # right of its point
            text.setZValue(20)
            self.nyquist.addItem(text, ignoreBounds=True)
            self.labels.append(text)
        for k, text in enumerate(self.labels):
            if k < len(points):
                x, y, freq = points[k]
                text.setText(hz(freq))
                text.setPos(float(x), float(y))
                text.show()
            else:
                text.hide()


def hz(f: float) -> str:
    for scale, unit in ((1e6, "MHz"), (1e3, "kHz"), (1.0, "Hz"), (1e-3, "mHz")):
        if f >= scale:
            return fmt(f / scale, "g", unit)
    return fmt(f, "g", "Hz")  # NaN: "—"
