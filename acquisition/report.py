"""Overview figure of an operando run: voltage, moment and Raman waterfall on one time axis."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _find(stream, suffix: str):
    """The data key of ``stream`` named ``suffix`` or ending in ``-suffix`` (device prefix)."""
    for key in stream:
        if key == suffix or key.endswith("-" + suffix):
            return np.asarray(stream[key].read())
    return None


def write_overview(run, reports_dir: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = run.metadata["start"]
    echem = run[start.get("echem_stream", "echem")]
    t_e = np.asarray(echem["timestamp"].read())
    t0 = t_e[0] if t_e.size else 0.0
    hours = lambda t: (np.asarray(t) - t0) / 3600.0  # noqa: E731

    kinds = start.get("instruments", {})
    mag = next((n for n, i in kinds.items() if i["kind"] == "magnetometer" and n in run), None)
    raman = next((n for n, i in kinds.items() if i["kind"] == "raman" and n in run), None)
    rows = 1 + (mag is not None) + (raman is not None)
    fig, axes = plt.subplots(rows, 1, figsize=(9, 2.6 * rows + 0.6), sharex=True, squeeze=False)
    axes = axes[:, 0]

    ax = axes[0]
    ax.plot(hours(t_e), echem["Ewe"].read(), lw=0.8, color="tab:blue")
    ax.set_ylabel("Ewe / V")
    ax2 = ax.twinx()
    ax2.plot(hours(t_e), np.asarray(echem["I"].read()) * 1e3, lw=0.6, color="tab:gray", alpha=0.6)
    ax2.set_ylabel("I / mA", color="tab:gray")
    sample = start.get("sample", {})
    ax.set_title(f"scan {start.get('scan_id')} · {sample.get('name', '')} · {start['uid'][:8]}")

    i = 1
    if mag is not None:
        s = run[mag]
        t = _find(s, "exposure_start")
        ax = axes[i]
        ax.plot(hours(t), _find(s, "moment") * 1e3, ".-", ms=2, lw=0.6, color="tab:red")
        ax.set_ylabel("moment / memu")
        i += 1
    if raman is not None:
        s = run[raman]
        t = _find(s, "exposure_start")
        spectra = _find(s, "spectrum")
        shift = _raman_shift(run, raman, spectra.shape[1])
        ax = axes[i]
        ax.pcolormesh(hours(t), shift, spectra.T, shading="nearest", cmap="viridis")
        ax.set_ylabel("Raman shift / cm⁻¹")
    axes[-1].set_xlabel("experiment time / h")
    fig.tight_layout()
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"scan{start.get('scan_id', 0):05d}-{start['uid'][:8]}-overview.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _raman_shift(run, stream_name: str, n: int) -> np.ndarray:
    """The Raman-shift axis from the stream's configuration, else pixel numbers."""
    for device in (run[stream_name].metadata.get("configuration") or {}).values():
        for key, value in (device.get("data") or {}).items():
            if key.endswith("raman_shift") and len(value) == n:
                return np.asarray(value, dtype=float)
    return np.arange(n, dtype=float)
