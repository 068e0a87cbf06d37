"""Long stored runs written in seconds: what a day or a week of operando cycling leaves in a catalog.

A real 24 h run at 10 Hz is 864,000 echem rows, a magnetometer reading every 5 s (17,280) and a
Raman spectrum every 30 s (2,880); a week is seven times that. Simulating it sample by sample
takes about 6 s per day for the potentiostat alone, and the RunEngine adds hours. Instead:

1. the simulated lab (``sim_devices``: the cell, the magnetometer's and the Raman spectrometer's
   physics) runs the protocol's first two cycles once at the run's sample rate, recording the
   noise-free moment every ``moment_every_s`` and the Raman count rate every ``raman_every_s``;
2. the run is composed from that template: the initial rest and cycle 1 as simulated, every later
   cycle from cycle 2 with its current steps shortened by a capacity fade per cycle (E resampled
   along the step, so every cycle still ends at its cut-off) plus fresh measurement noise; E, I,
   charge (the integral of I), cycle, step, technique, exactly as the potentiostat stores them;
3. the documents a real run emits are composed with event_model and fed to the project's catalog
   writer (``FlushingTiledWriter``, as ``storage/importers/tables.py`` stores an imported table):
   the echem columns appended to an HDF5 file by ``HDF5StreamWriter`` (the potentiostat's own
   writer) and announced by StreamResource/StreamDatum documents; magnetometer, Raman, timebase
   as event pages; an empty ``interruptions`` stream. The detector tables are flushed after
   their first event, so the Raman spectra are stored in one-spectrum zarr chunks, as a run at
   real speed stores them (its writer flushes about once a second).

Stream names, data keys, configuration (``raman-raman_shift``), start metadata (``run_metadata``
of the ``sim`` profile) and stop document are those of ``operando run`` on the ``sim`` profile.
Not written: the document journal (crash recovery only; a week of spectra as JSON lines).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from event_model import compose_run

from operando.acquisition.config import load_profile
from operando.acquisition.prepare import run_metadata
from operando.devices.potentiostat import STREAM_COLUMNS
from operando.devices.stream_writer import HDF5StreamWriter
from operando.devices.techniques import TECHNIQUE_CODES
from operando.plans.protocol import Protocol, compile_protocol
from operando.sim_devices.lab import build_sim_lab
from operando.sim_devices.raman import SimRamanPhysics
from operando.storage.catalog import files_dir
from operando.storage.catalog_writer import FlushingTiledWriter
from operando.storage.metadata import JsonMetadataStore

DAY_S = 86_400.0
FADE_PER_CYCLE = 0.998  # capacity kept from one cycle to the next (cycles 3, 4, ...)
E_NOISE_V = 2e-4  # measurement noise added to every composed E sample
EVENT_PAGE = 2_000  # detector events per event page
BLOCK_S = 3_600.0  # experiment time per block of documents (echem rows and detector events)
MAGNET_AVERAGING_S = 1.0
RAMAN_EXPOSURE_S, RAMAN_ACCUMULATIONS = 10.0, 2


def cycling_protocol(cycles: int) -> Protocol:
    """The protocol the long runs follow: ``galvanostatic_cycling`` with ``cycles`` repetitions."""
    return Protocol.model_validate(
        {
            "name": f"long_cycling_{cycles}",
            "description": "10 min rest, then 1C charge / 5 min rest / 1C discharge / 5 min rest",
            "steps": [
                {"kind": "rest", "duration_min": 10},
                {
                    "kind": "loop",
                    "repeat": cycles,
                    "steps": [
                        {"kind": "cc", "c_rate": 1, "e_max_V": 3.0, "max_duration_h": 1.5},
                        {"kind": "rest", "duration_min": 5},
                        {"kind": "cc", "c_rate": -1, "e_min_V": 0.01, "max_duration_h": 1.5},
                        {"kind": "rest", "duration_min": 5},
                    ],
                },
            ],
        }
    )


@dataclass
class Template:
    """The first two cycles, simulated at the run's sample rate."""

    rate_hz: float
    echem: dict[str, np.ndarray]  # timestamp (from 0), Ewe, I, charge, cycle, step
    moment_t: np.ndarray  # template time of each noise-free moment
    moment: np.ndarray
    raman_t: np.ndarray
    raman_rate: np.ndarray  # counts/s per pixel, one row per raman_t
    raman_shift: np.ndarray
    moment_sigma: float

    def steps(self, cycle: int) -> list[tuple[int, int, bool]]:
        """(first row, stop row, is a current step) of each step of ``cycle``, in order."""
        c, s, i = self.echem["cycle"], self.echem["step"], self.echem["I"]
        rows = np.flatnonzero(c == cycle)
        out = []
        for step in np.unique(s[rows]):
            r = rows[s[rows] == step]
            out.append((int(r[0]), int(r[-1]) + 1, bool(np.any(i[r] != 0))))
        return out


def simulate_template(profile, rate_hz: float, moment_every_s: float, raman_every_s: float, pixels: int, seed: int):
    lab = build_sim_lab(
        material=profile.sim_material or "fe_li2o",
        active_mass_g=profile.sample.active_mass_g,
        sample_interval_s=1.0 / rate_hz,
        seed=seed,
    )
    raman = SimRamanPhysics(lab.cell, seed=seed + 1, n_pixels=pixels)
    pot = lab.potentiostat
    pot.load(compile_protocol(cycling_protocol(2), profile.sample, profile.limits))
    pot.start()
    t0 = pot.start_time
    moment_t, moment, raman_t, raman_rate = [], [], [], []
    every = math.gcd(int(round(moment_every_s * 1000)), int(round(raman_every_s * 1000))) / 1000.0
    t = 0.0
    while not pot.done:
        pot.advance_to(t0 + t)
        if abs(t / moment_every_s - round(t / moment_every_s)) < 1e-9:
            moment_t.append(t)
            moment.append(lab.magnetometer.clean_moment_emu(1.0, 300.0))
        if abs(t / raman_every_s - round(t / raman_every_s)) < 1e-9:
            raman_t.append(t)
            raman_rate.append(raman.clean_rate())
        t += every
    echem = pot.drain()
    echem["timestamp"] = echem["timestamp"] - t0
    return Template(
        rate_hz,
        echem,
        np.asarray(moment_t),
        np.asarray(moment),
        np.asarray(raman_t),
        np.asarray(raman_rate),
        raman.raman_shift_cm1,
        lab.magnetometer.noise_sigma_emu(MAGNET_AVERAGING_S),
    )


@dataclass
class Composed:
    echem: dict[str, np.ndarray]  # STREAM_COLUMNS, timestamp from 0
    template_time: np.ndarray  # per echem row: the template instant its values come from
    cycles: int  # the last cycle number


def compose_echem(tpl: Template, rows: int, rng) -> Composed:
    """``rows`` echem samples: rest and cycle 1 as simulated, then cycle 2 repeated with fade."""
    e_t, dt = tpl.echem, 1.0 / tpl.rate_hz
    pieces = []  # (template row positions, cycle, step, is a current step)
    step_no = total = 0
    plan, k = [(0, tpl.steps(0), 1.0), (1, tpl.steps(1), 1.0)], 2
    while total < rows:
        for c, steps, stretch in plan:
            for a, b, current in steps:
                step_no += 1
                n_in = b - a
                n_out = max(2, int(round(n_in * stretch))) if current else n_in
                pieces.append((a + np.arange(n_out) * ((n_in - 1) / max(n_out - 1, 1)), c, step_no, current))
                total += n_out
        plan, k = [(k, tpl.steps(2), FADE_PER_CYCLE ** (k - 2))], k + 1

    def column(value, dtype):
        return np.concatenate([np.full(len(p), value(c, s, cc), dtype) for p, c, s, cc in pieces])[:rows]

    pos = np.concatenate([p for p, *_ in pieces])[:rows]
    cycle = column(lambda c, s, cc: c, np.int64)
    current = e_t["I"][np.rint(pos).astype(np.int64)]
    echem = {
        "timestamp": np.arange(rows) * dt,
        "Ewe": np.interp(pos, np.arange(len(e_t["Ewe"]), dtype=float), e_t["Ewe"]) + rng.normal(0, E_NOISE_V, rows),
        "I": current,
        "charge": np.cumsum(current) * (dt / 3.6),  # mA*h, net since the start: A*s / 3.6
        "cycle": cycle,
        "step": column(lambda c, s, cc: s, np.int64),
        "technique": column(lambda c, s, cc: TECHNIQUE_CODES["cc" if cc else "ocv"], np.int64),
    }
    return Composed(echem, pos * dt, int(cycle[-1]))


@dataclass
class LongRun:
    uid: str
    hours: float
    rows: dict[str, int] = field(default_factory=dict)  # stream -> rows
    cycles: int = 0
    seconds: float = 0.0  # to write it


def _frame_keys(soc, step, t, ewe, current, charge, reason, cycle) -> dict[str, np.ndarray]:
    return {
        "frame-soc": soc,
        "frame-step": step,
        "frame-time": t,
        "frame-Ewe": ewe,
        "frame-I": current,
        "frame-charge": charge,
        "frame-trigger_reason": reason,
        "frame-instrument_time": t,
        "frame-cycle": cycle,
    }


FRAME_KEYS = {
    "frame-soc": ("number", "<f8", None),
    "frame-step": ("integer", "<i8", None),
    "frame-time": ("number", "<f8", "s"),
    "frame-Ewe": ("number", "<f8", "V"),
    "frame-I": ("number", "<f8", "A"),
    "frame-charge": ("number", "<f8", "mA*h"),
    "frame-trigger_reason": ("string", "|S40", None),
    "frame-instrument_time": ("number", "<f8", "s"),
    "frame-cycle": ("integer", "<i8", None),
}


def _soft_keys(device: str, keys: dict[str, tuple]) -> dict[str, dict]:
    out = {}
    for key, (dtype, dtype_numpy, units, *shape) in keys.items():
        desc = {"dtype": dtype, "shape": list(shape[0]) if shape else [], "dtype_numpy": dtype_numpy}
        desc["source"] = f"soft://{key}"
        if units:
            desc["units"] = units
        desc["object_name"] = key.split("-", 1)[0] if key.startswith("frame-") else device
        out[key] = desc
    return out


def _configuration(device: str, values: dict[str, tuple], t: float) -> dict:
    data, keys = {}, {}
    for key, (value, dtype, dtype_numpy, units, *shape) in values.items():
        data[key] = value
        keys[key] = {"dtype": dtype, "shape": list(shape[0]) if shape else [], "dtype_numpy": dtype_numpy}
        keys[key]["source"] = f"soft://{key}"
        if units:
            keys[key]["units"] = units
    return {device: {"data": data, "timestamps": dict.fromkeys(data, t), "data_keys": keys}}


def make_long_run(
    client,
    data_dir: Path,
    hours: float = 24.0,
    rate_hz: float = 10.0,
    moment_every_s: float = 5.0,
    raman_every_s: float = 30.0,
    spectrum_points: int = 1024,
    seed: int = 0,
    start_time: float | None = None,
) -> LongRun:
    """Write a ``hours``-long cycling run of the ``sim`` profile into the catalog ``client``.

    ``data_dir`` is the catalog's data directory (the HDF5 file goes to its ``files/``).
    """
    wall = time.perf_counter()
    rng = np.random.default_rng(seed + 17)
    profile = load_profile("sim")
    capacity = profile.sample.capacity_mAh
    tpl = simulate_template(profile, rate_hz, moment_every_s, raman_every_s, spectrum_points, seed)
    n = int(round(hours * 3600 * rate_hz))
    comp = compose_echem(tpl, n, rng)
    duration = n / rate_hz
    t_start = (time.time() - duration - 60) if start_time is None else start_time
    echem = comp.echem
    echem["timestamp"] = echem["timestamp"] + t_start
    echem["instrument_time"] = echem["timestamp"].copy()
    echem = {k: echem[k] for k in STREAM_COLUMNS}

    md = run_metadata(profile, cycling_protocol(comp.cycles))
    md["protocol_file"] = ""
    md["instruments"]["potentiostat"]["settings"]["sample_interval_s"] = 1.0 / rate_hz
    md["instruments"]["magnetometer"]["settings"]["period_s"] = moment_every_s
    md["instruments"]["raman"]["settings"]["period_s"] = raman_every_s
    re_md = JsonMetadataStore(Path(data_dir) / "run_engine.json")  # scan ids go on counting
    scan_id = int(re_md.get("scan_id", 0)) + 1
    re_md["scan_id"] = scan_id
    md.update(
        scan_id=scan_id,
        plan_type="generator",
        plan_name="operando_cycling",
        detectors=["magnetometer", "raman"],
        schedules={
            "magnetometer": [{"hold": "none", "every_s": moment_every_s}],
            "raman": [{"hold": "none", "every_s": raman_every_s}],
        },
        echem_stream="echem",
        total_steps=int(echem["step"][-1]),
        total_cycles=comp.cycles,
        clock_speed=1.0,
        capacity_mAh=capacity,
        composed_by="operando.benchmarks.long_run",  # not acquired: say so
        composition={
            "hours": hours,
            "rate_hz": rate_hz,
            "moment_every_s": moment_every_s,
            "raman_every_s": raman_every_s,
            "spectrum_points": spectrum_points,
            "seed": seed,
        },
    )
    bundle = compose_run(metadata=md, time=t_start)
    uid = bundle.start_doc["uid"]
    catalog = FlushingTiledWriter(client)
    catalog("start", bundle.start_doc)

    # -- descriptors, as the RunEngine writes them for the sim profile -------------------------
    catalog(
        "descriptor",
        bundle.compose_descriptor(
            name="interruptions", data_keys={"interruption": {"dtype": "string", "shape": [], "source": "RunEngine"}}
        ).descriptor_doc,
    )
    writer = HDF5StreamWriter(
        files_dir(Path(data_dir)) / f"potentiostat-{uid.replace('-', '')[:12]}.h5",
        STREAM_COLUMNS,
        choices={"technique": list(TECHNIQUE_CODES)},
    )
    cell = (
        f"simulated potentiostat ({profile.sim_material}, {profile.sample.active_mass_g * 1e3:g} mg, "
        f"{capacity:.4g} mAh, {profile.limits.e_min_V:g}-{profile.limits.e_max_V:g} V)"
    )
    echem_keys = {k: {**v, "object_name": "potentiostat"} for k, v in writer.describe(f"potentiostat:{cell}").items()}
    lim = profile.limits
    echem_desc = bundle.compose_descriptor(
        name="echem",
        data_keys=echem_keys,
        configuration=_configuration(
            "potentiostat",
            {
                "potentiostat-i_max": (lim.i_max_A, "number", "<f8", "A"),
                "potentiostat-e_min": (lim.e_min_V, "number", "<f8", "V"),
                "potentiostat-backend_description": (cell, "string", "|S40", None),
                "potentiostat-e_max": (lim.e_max_V, "number", "<f8", "V"),
            },
            t_start,
        ),
        hints={"potentiostat": {"fields": ["potentiostat-ewe", "potentiostat-current"]}},
        object_keys={"potentiostat": list(echem_keys)},
    ).descriptor_doc
    catalog("descriptor", echem_desc)

    magnet_keys = _soft_keys(
        "magnetometer",
        {
            "magnetometer-moment": ("number", "<f8", "emu"),
            "magnetometer-temperature": ("number", "<f8", "K"),
            "magnetometer-exposure_end": ("number", "<f8", "s"),
            "magnetometer-exposure_start": ("number", "<f8", "s"),
            "magnetometer-field": ("number", "<f8", "T"),
            "magnetometer-trigger_instrument_time": ("number", "<f8", "s"),
            **FRAME_KEYS,
        },
    )
    magnet = bundle.compose_descriptor(
        name="magnetometer",
        data_keys=magnet_keys,
        configuration={
            **_configuration(
                "magnetometer",
                {
                    "magnetometer-averaging_time": (MAGNET_AVERAGING_S, "number", "<f8", "s"),
                    "magnetometer-backend_description": ("simulated SQUID-VSM", "string", "|S40", None),
                },
                t_start,
            ),
            "frame": {"data": {}, "timestamps": {}, "data_keys": {}},
        },
        hints={"magnetometer": {"fields": ["magnetometer-moment"]}, "frame": {}},
        object_keys={
            "magnetometer": [k for k in magnet_keys if k.startswith("magnetometer-")],
            "frame": list(FRAME_KEYS),
        },
    )
    catalog("descriptor", magnet.descriptor_doc)
    raman_keys = _soft_keys(
        "raman",
        {
            "raman-spectrum": ("array", "<f8", "counts", [spectrum_points]),
            "raman-exposure_end": ("number", "<f8", "s"),
            "raman-exposure_start": ("number", "<f8", "s"),
            "raman-trigger_instrument_time": ("number", "<f8", "s"),
            **FRAME_KEYS,
        },
    )
    raman = bundle.compose_descriptor(
        name="raman",
        data_keys=raman_keys,
        configuration={
            **_configuration(
                "raman",
                {
                    "raman-exposure_time": (RAMAN_EXPOSURE_S, "number", "<f8", "s"),
                    "raman-backend_description": ("simulated Raman spectrometer (532 nm)", "string", "|S40", None),
                    "raman-accumulations": (RAMAN_ACCUMULATIONS, "integer", "<i8", None),
                    "raman-laser_wavelength": (532.0, "number", "<f8", "nm"),
                    "raman-raman_shift": (tpl.raman_shift.tolist(), "array", "<f8", "1/cm", [spectrum_points]),
                },
                t_start,
            ),
            "frame": {"data": {}, "timestamps": {}, "data_keys": {}},
        },
        hints={"raman": {"fields": ["raman-spectrum"]}, "frame": {}},
        object_keys={"raman": [k for k in raman_keys if k.startswith("raman-")], "frame": list(FRAME_KEYS)},
    )
    catalog("descriptor", raman.descriptor_doc)

    # -- detector frames: the template's physics at the frame's echem state, fresh noise -------
    def frames(every_s: float, exposure_s: float):
        starts = t_start + np.arange(int(duration // every_s)) * every_s
        mid = starts + exposure_s / 2
        row = np.clip(np.rint((mid - t_start) * rate_hz).astype(np.int64), 0, n - 1)
        stamp = _frame_keys(
            echem["charge"][row] / capacity,
            echem["step"][row],
            mid,
            echem["Ewe"][row],
            echem["I"][row],
            echem["charge"][row],
            np.full(len(row), f"every_s={every_s:g}", dtype=object),
            echem["cycle"][row],
        )
        return starts, starts + exposure_s, comp.template_time[row], stamp

    m_start, m_end, m_tpl, m_stamp = frames(moment_every_s, MAGNET_AVERAGING_S)
    moments = np.interp(m_tpl, tpl.moment_t, tpl.moment) + rng.normal(0, tpl.moment_sigma, len(m_tpl))
    magnet_rows = {
        "magnetometer-moment": moments,
        "magnetometer-temperature": np.full(len(m_tpl), 300.0),
        "magnetometer-exposure_end": m_end,
        "magnetometer-exposure_start": m_start,
        "magnetometer-field": np.full(len(m_tpl), 1.0),
        "magnetometer-trigger_instrument_time": np.full(len(m_tpl), np.nan),
        **m_stamp,
    }
    total_s = RAMAN_EXPOSURE_S * RAMAN_ACCUMULATIONS
    r_start, r_end, r_tpl, r_stamp = frames(raman_every_s, total_s)
    r_index = np.clip(np.searchsorted(tpl.raman_t, r_tpl), 0, len(tpl.raman_t) - 1)
    raman_rows = {
        "raman-spectrum": r_index,  # spectra are drawn page by page (memory: a week is 160 MB)
        "raman-exposure_end": r_end,
        "raman-exposure_start": r_start,
        "raman-trigger_instrument_time": np.full(len(r_tpl), np.nan),
        **r_stamp,
    }

    def spectra(index: np.ndarray) -> np.ndarray:
        expected = (tpl.raman_rate[index] + SimRamanPhysics.DARK_COUNTS_S) * total_s
        counts = rng.poisson(expected).astype(np.float64)
        counts += rng.normal(0.0, SimRamanPhysics.READ_NOISE_COUNTS * math.sqrt(RAMAN_ACCUMULATIONS), counts.shape)
        for r in np.flatnonzero(rng.random(len(index)) < SimRamanPhysics.COSMIC_RATE_S * total_s):
            pixel = int(rng.integers(0, spectrum_points - 3))
            counts[r, pixel : pixel + int(rng.integers(1, 4))] += rng.uniform(200.0, 3000.0)
        return counts

    def emit_events(desc, rows: dict, ends: np.ndarray, a: int, b: int, seq0: int, spectrum: bool):
        data = {k: v[a:b] for k, v in rows.items()}
        if spectrum:
            data["raman-spectrum"] = spectra(data["raman-spectrum"])
        now = ends[a:b] + 0.05  # the event: just after its exposure ended (clock speed 1)
        page = desc.compose_event_page(
            data={k: list(v) for k, v in data.items()},
            timestamps={k: list(now) for k in data},
            seq_num=list(range(seq0 + a + 1, seq0 + b + 1)),
            time=list(now),
            validate=False,
        )
        catalog("event_page", page)

    # -- everything in time order, an hour at a time ------------------------------------------
    writer.open()
    m_done = r_done = e_done = 0
    first = True
    block = 0
    while e_done < n or m_done < len(m_end) or r_done < len(r_end):
        block += 1
        until = t_start + block * BLOCK_S
        e_to = min(n, int(round(block * BLOCK_S * rate_hz)))
        if e_to > e_done:
            writer.append({k: v[e_done:e_to] for k, v in echem.items()})
            e_done = e_to
            for name, doc in writer.asset_docs():
                if name == "stream_resource":
                    doc = {**doc, "run_start": uid}
                else:  # what the RunEngine fills in
                    i = doc["indices"]
                    doc = {
                        **doc,
                        "descriptor": echem_desc["uid"],
                        "seq_nums": {"start": i["start"] + 1, "stop": i["stop"] + 1},
                    }
                catalog(name, doc)
        for desc, rows, ends, done, spectrum in (
            (magnet, magnet_rows, m_end, m_done, False),
            (raman, raman_rows, r_end, r_done, True),
        ):
            to = int(np.searchsorted(ends, until, side="right"))
            if first and to > done:  # one event alone first: the table and zarr chunks of a real run
                emit_events(desc, rows, ends, done, done + 1, 0, spectrum)
                catalog.flush_buffers()
                done += 1
            for a in range(done, to, EVENT_PAGE):
                emit_events(desc, rows, ends, a, min(a + EVENT_PAGE, to), 0, spectrum)
            if spectrum:
                r_done = max(to, done)
            else:
                m_done = max(to, done)
        first = False
    writer.close()
    tb = bundle.compose_descriptor(
        name="timebase",
        data_keys=_soft_keys(
            "timebase",
            {
                "timebase-drift_ppm": ("number", "<f8", None),
                "timebase-source": ("string", "|S40", None),
                "timebase-instrument_time0": ("number", "<f8", "s"),
                "timebase-pairs": ("integer", "<i8", None),
                "timebase-offset_s": ("number", "<f8", "s"),
            },
        ),
        configuration={"timebase": {"data": {}, "timestamps": {}, "data_keys": {}}},
        hints={"timebase": {}},
        object_keys={
            "timebase": [
                "timebase-drift_ppm",
                "timebase-source",
                "timebase-instrument_time0",
                "timebase-pairs",
                "timebase-offset_s",
            ]
        },
    )
    catalog("descriptor", tb.descriptor_doc)
    t_end = t_start + duration
    values = {
        "timebase-drift_ppm": 0.0,
        "timebase-source": "host",
        "timebase-instrument_time0": np.nan,
        "timebase-pairs": 0,
        "timebase-offset_s": 0.0,
    }
    catalog("event", tb.compose_event(data=values, timestamps=dict.fromkeys(values, t_end), seq_num=1, time=t_end))
    counts = {"interruptions": 0, "echem": n, "magnetometer": len(m_end), "raman": len(r_end), "timebase": 1}
    stop = bundle.compose_stop(exit_status="success", time=t_end + 1)
    catalog("stop", {**stop, "num_events": counts})
    return LongRun(uid, duration / 3600, counts, comp.cycles, time.perf_counter() - wall)
