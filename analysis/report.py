"""Overview figure of an operando run: voltage, moment and Raman waterfall on one time axis."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .stored_columns import find_column as _find
from .stored_columns import raman_shift_axis


def instrument_stream(run, kind: str) -> str | None:
    """The first stored stream of an instrument of ``kind`` (magnetometer, raman, ...), or None."""
    kinds = run.metadata["start"].get("instruments", {})
    return next((n for n, i in kinds.items() if i.get("kind") == kind and n in run), None)


def draw_echem_time(ax, hours: np.ndarray, ewe_V, current_A) -> None:
    """Ewe (left axis) and the current in mA (right axis, grey) against experiment time in hours."""
    ax.plot(hours, ewe_V, lw=0.8, color="tab:blue")
    ax.set_ylabel("Ewe / V")
    ax2 = ax.twinx()
    ax2.plot(hours, np.asarray(current_A) * 1e3, lw=0.6, color="tab:gray", alpha=0.6)
    ax2.set_ylabel("I / mA", color="tab:gray")


def draw_moment_time(ax, hours: np.ndarray, stream) -> None:
    ax.plot(hours, _find(stream, "moment") * 1e3, ".-", ms=2, lw=0.6, color="tab:red")
    ax.set_ylabel("moment / memu")


def draw_raman_waterfall(ax, hours: np.ndarray, shift: np.ndarray, spectra: np.ndarray) -> None:
    """The spectra as an image: time across, Raman shift up, counts as colour."""
    ax.pcolormesh(hours, shift, np.asarray(spectra).T, shading="nearest", cmap="viridis")
    ax.set_ylabel("Raman shift / cm⁻¹")


def overview_figure(run):
    """Voltage and current, moment and the Raman waterfall on one time axis (a Figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = run.metadata["start"]
    echem = run[start.get("echem_stream", "echem")]
    t_e = np.asarray(echem["timestamp"].read())
    t0 = t_e[0] if t_e.size else 0.0
    hours = lambda t: (np.asarray(t) - t0) / 3600.0

    mag = instrument_stream(run, "magnetometer")
    raman = instrument_stream(run, "raman")
    rows = 1 + (mag is not None) + (raman is not None)
    fig, axes = plt.subplots(rows, 1, figsize=(9, 2.6 * rows + 0.6), sharex=True, squeeze=False)
    axes = axes[:, 0]

    draw_echem_time(axes[0], hours(t_e), echem["Ewe"].read(), echem["I"].read())
    sample = start.get("sample", {})
    axes[0].set_title(f"scan {start.get('scan_id')} · {sample.get('name', '')} · {start['uid'][:8]}")

    i = 1
    if mag is not None:
        s = run[mag]
        draw_moment_time(axes[i], hours(_find(s, "exposure_start")), s)
        i += 1
    if raman is not None:
        s = run[raman]
        spectra = _find(s, "spectrum")
        shift = _raman_shift(run, raman, spectra.shape[1])
        draw_raman_waterfall(axes[i], hours(_find(s, "exposure_start")), shift, spectra)
    axes[-1].set_xlabel("experiment time / h")
    fig.tight_layout()
    return fig


def write_overview(run, reports_dir: Path) -> Path:
    import matplotlib.pyplot as plt

    start = run.metadata["start"]
    fig = overview_figure(run)
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"scan{start.get('scan_id', 0):05d}-{start['uid'][:8]}-overview.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _raman_shift(run, stream_name: str, n: int) -> np.ndarray:
    """The Raman-shift axis from the stream's configuration, else pixel numbers."""
    axis = raman_shift_axis(run, stream_name, n)
    return np.arange(n, dtype=float) if axis is None else axis


def band_centre(shift: np.ndarray, spectra: np.ndarray, lo: float, hi: float, iterations: int = 4) -> np.ndarray:
    """Centre of a band between ``lo`` and ``hi`` (cm⁻¹): a baseline-corrected centroid, taken
    again in a window centred on the previous estimate so the tails no longer pull it."""
    spectra = np.atleast_2d(spectra)
    half = 0.5 * (hi - lo)
    centres = np.full(spectra.shape[0], 0.5 * (lo + hi))
    for _ in range(iterations):
        for row, c in enumerate(centres):
            sel = (shift >= c - half) & (shift <= c + half)
            x, y = shift[sel], spectra[row, sel]
            base = y[0] + (y[-1] - y[0]) * (x - x[0]) / (x[-1] - x[0])
            w = np.clip(y - base, 0.0, None)
            centres[row] = (w * x).sum() / max(w.sum(), 1e-12)
    return centres


def band_area(shift: np.ndarray, spectra: np.ndarray, lo: float, hi: float) -> np.ndarray:
    sel = (shift >= lo) & (shift <= hi)
    x = shift[sel]
    y = np.atleast_2d(spectra)[:, sel]
    base = y[:, :1] + (y[:, -1:] - y[:, :1]) * (x - x[0]) / (x[-1] - x[0])
    return np.clip(y - base, 0.0, None).sum(axis=1) * (x[1] - x[0])


def write_operando_figure(run, reports_dir: Path, cycle: int = 1) -> Path | None:
    """``operando_figure`` saved under ``reports_dir``; None when the run has no magnetometer or
    Raman stream."""
    import matplotlib.pyplot as plt

    fig = operando_figure(run, cycle)
    if fig is None:
        return None
    start = run.metadata["start"]
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"scan{start.get('scan_id', 0):05d}-{start['uid'][:8]}-operando.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def operando_figure(run, cycle: int = 1):
    """Moment and Raman band position / intensity ratio against the cell potential over one
    cycle, charge and discharge in two colours: the review's operando figures, from the frames'
    own echem state (``frame-Ewe``, ``frame-I``). A Figure, or None without those streams."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = run.metadata["start"]
    mag = instrument_stream(run, "magnetometer")
    raman = instrument_stream(run, "raman")
    if mag is None and raman is None:
        return None
    panels = [p for p in ("mag", "band", "ratio") if (p == "mag" and mag) or (p != "mag" and raman)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.6), squeeze=False)
    axes = dict(zip(panels, axes[0]))

    def branches(stream):
        s = run[stream]
        e, i, c = (np.asarray(s[k].read()) for k in ("frame-Ewe", "frame-I", "frame-cycle"))
        keep = c == cycle
        return s, e, i, keep

    if mag:
        s, e, i, keep = branches(mag)
        m = np.asarray(_find(s, "moment")) * 1e3
        for sign, colour, label in ((1, "tab:red", "charge"), (-1, "tab:blue", "discharge")):
            sel = keep & (np.sign(i) == sign)
            axes["mag"].plot(e[sel], m[sel], ".", ms=4, color=colour, label=label)
        axes["mag"].set_xlabel("Ewe / V")
        axes["mag"].set_ylabel("moment / memu")
        axes["mag"].legend(frameon=False)
    if raman:
        s, e, i, keep = branches(raman)
        spectra = np.asarray(_find(s, "spectrum"))
        shift = _raman_shift(run, raman, spectra.shape[1])
        centre = band_centre(shift, spectra, 470.0, 540.0)
        ratio = band_area(shift, spectra, 985.0, 1035.0) / np.maximum(band_area(shift, spectra, 855.0, 905.0), 1e-12)
        for sign, colour in ((1, "tab:red"), (-1, "tab:blue")):
            sel = keep & (np.sign(i) == sign)
            axes["band"].plot(e[sel], centre[sel], "o", ms=4, color=colour)
            axes["ratio"].plot(e[sel], ratio[sel], "s", ms=4, color=colour)
        axes["band"].set_xlabel("Ewe / V")
        axes["band"].set_ylabel("lattice band centre / cm⁻¹")
        axes["ratio"].set_xlabel("Ewe / V")
        axes["ratio"].set_ylabel("I(1010) / I(880)  (M–O–C / M–O–M)")
    fig.suptitle(f"scan {start.get('scan_id')} · cycle {cycle} · frames at their own echem state")
    fig.tight_layout()
    return fig
