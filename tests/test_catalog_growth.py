"""The catalog's growth per flush: array rows registered every ``rows_every_s``, and at the stop.

Every registration of new rows of an array (StreamDatum rows, a stream of spectra) makes Tiled
write a new ``structures`` record holding the array's whole chunk list, never removed. The
catalog writer registers them at most every ``rows_every_s`` (streams of scalars still every
flush; everything at the stop). Driven here with composed documents at real cadence (a collect
every 0.5 s, a flush every second) on a simulated clock: nothing waits in real time.
"""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest
from event_model import compose_run

from operando.devices.stream_writer import HDF5StreamWriter
from operando.storage.background import BackgroundConsumer
from operando.storage.catalog import files_dir, open_catalog
from operando.storage.catalog_writer import ROWS_EVERY_ENV, FlushingTiledWriter, rows_every_s_from_env

COLUMNS = {"timestamp": ("s", "<f8"), "cycle": ("", "<i8")}  # one record per dtype per registration


def _documents(data, seconds, spectra_every_s=5.0):
    """(simulated s, name, doc): a collect every 0.5 s, a moment every 1 s, a spectrum every 5 s."""
    run = compose_run(metadata={"plan_name": "catalog_growth"})
    uid = run.start_doc["uid"]
    yield 0.0, "start", run.start_doc
    w = HDF5StreamWriter(files_dir(data) / f"echem-{uid[:8]}.h5", COLUMNS)
    w.open()
    echem = run.compose_descriptor(name="echem", data_keys=w.describe("test"))
    mag = run.compose_descriptor(name="magnetometer", data_keys={"m": {"source": "t", "dtype": "number", "shape": []}})
    raman = run.compose_descriptor(name="raman", data_keys={"sp": {"source": "t", "dtype": "array", "shape": [64]}})
    for d in (echem, mag, raman):
        yield 0.0, "descriptor", d.descriptor_doc
    for k in range(1, int(seconds / 0.5) + 1):
        s = k * 0.5
        w.append({"timestamp": np.arange(5 * k - 5, 5 * k) / 10.0, "cycle": np.zeros(5, dtype="<i8")})
        for name, doc in w.asset_docs():
            if name == "stream_resource":
                doc = dict(doc, run_start=uid)
            else:
                i = doc["indices"]
                doc = dict(
                    doc,
                    descriptor=echem.descriptor_doc["uid"],
                    seq_nums={"start": i["start"] + 1, "stop": i["stop"] + 1},
                )
            yield s, name, doc
        if s % 1 == 0:
            yield s, "event", mag.compose_event(data={"m": s}, timestamps={"m": s})
        if s % spectra_every_s == 0:
            yield s, "event", raman.compose_event(data={"sp": np.full(64, s)}, timestamps={"sp": s})
    w.close()
    yield seconds, "stop", run.compose_stop()


def _structures(data):
    db = sqlite3.connect(data / "catalog.db")
    try:
        return db.execute("SELECT count(*) FROM structures").fetchone()[0]
    finally:
        db.close()


def _write(catalog, data, seconds, rows_every_s, observe=None):
    """Feed a run at real cadence, flushing every simulated second; ``observe(s, uid)`` after
    each flush. Returns (uid, structure records the run added before its stop)."""
    now = [0.0]
    writer = FlushingTiledWriter(catalog.client, rows_every_s=rows_every_s, clock=lambda: now[0])
    before, uid, last = _structures(data), None, 0.0
    for s, name, doc in _documents(data, seconds):
        if s - last >= 1.0 and name != "stop":  # the writer's second is up: what came before it
            writer.flush_buffers()
            last = now[0] = s
            if observe is not None:
                observe(s, uid)
        now[0] = s
        if name == "start":
            uid = doc["uid"]
        if name == "stop":
            added = _structures(data) - before
        writer(name, doc)
    return uid, added


@pytest.fixture(autouse=True)
def _sqlite(monkeypatch):
    monkeypatch.delenv("OPERANDO_CATALOG_URI", raising=False)
    monkeypatch.delenv(ROWS_EVERY_ENV, raising=False)


def test_array_rows_are_registered_every_n_seconds_and_all_at_the_stop(tmp_path):
    data = tmp_path / "data"
    seen = []

    def observe(s, uid):
        run = catalog.client[uid]
        echem = run["echem"]["timestamp"].shape[0] if "echem" in run else 0
        moments = spectra = 0
        try:
            moments = len(run["magnetometer"]["m"].read())
            spectra = run["raman"]["sp"].shape[0]
        except KeyError:  # not written yet
            pass
        seen.append((s, echem, moments, spectra))

    with open_catalog(data) as catalog:
        uid, added_every_10 = _write(catalog, data, 40, rows_every_s=10, observe=observe)
        _, added_every_flush = _write(catalog, data, 40, rows_every_s=0)
        run = catalog.client[uid]
        assert run["echem"]["timestamp"].shape[0] == 400 and run["echem"]["cycle"].shape[0] == 400
        assert np.array_equal(run["echem"]["timestamp"].read(), np.arange(400) / 10.0)
        assert len(run["magnetometer"]["m"].read()) == 40
        assert run["raman"]["sp"].shape[0] == 8
    # Scalars: every flush. Arrays: at most every 10 s — the catalog up to 10 s behind, then level.
    for s, echem, moments, spectra in seen:  # s: every document before s was handed over
        assert moments == int(s) - 1, (s, moments)
        assert 10 * (s - 10.5) <= echem <= 10 * s, (s, echem)
        assert spectra >= int((s - 10.5) // 5), (s, spectra)
    registrations = sorted({echem for _, echem, _, _ in seen})
    assert len(registrations) <= 40 / 10 + 1
    # What the catalog's database gains: a structure record per dtype per registration.
    assert added_every_flush >= 2 * 39
    assert added_every_10 <= 2 * (40 / 10 + 1) + 40 / 10 + 2, (added_every_10, added_every_flush)


def test_rows_held_back_are_written_while_no_document_comes(tmp_path):
    """A pause: no document for a while. The background writer keeps flushing what the cadence
    held back, so the catalog catches up within rows_every_s, not at the next document."""
    data = tmp_path / "data"
    docs = list(_documents(data, 5))
    uid = docs[0][2]["uid"]
    # The writer's catalog, and a reader's (as another process: one client is used by one thread).
    with open_catalog(data) as catalog, open_catalog(data) as reader:
        consumer = BackgroundConsumer(FlushingTiledWriter(catalog.client, rows_every_s=0.5), flush_interval_s=0.1)
        for _, name, doc in docs[:-1]:  # all but the stop
            consumer(name, doc)
        consumer.wait()
        rows, deadline = 0, time.monotonic() + 60
        while rows < 50 and time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                rows = reader.client[uid]["echem"]["timestamp"].shape[0]
            except KeyError:
                pass
        assert rows == 50
        consumer(*docs[-1][1:])
        consumer.flush()
        consumer.close()


def test_the_cadence_is_a_setting(monkeypatch):
    assert rows_every_s_from_env(30.0) == 30.0
    monkeypatch.setenv(ROWS_EVERY_ENV, "0")
    assert rows_every_s_from_env(30.0) == 0.0
    monkeypatch.setenv(ROWS_EVERY_ENV, "120")
    assert FlushingTiledWriter.__init__.__defaults__ is None or rows_every_s_from_env() == 120.0
    for bad in ("soon", "-1"):
        monkeypatch.setenv(ROWS_EVERY_ENV, bad)
        with pytest.raises(ValueError, match=ROWS_EVERY_ENV):
            rows_every_s_from_env()
