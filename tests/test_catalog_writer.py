"""The catalog writer registers streamed rows as ranges, and stores exactly what the stock one does."""

import random

import numpy as np
import pytest
from bluesky_tiled_plugins.writing.consolidators import consolidator_factory
from event_model import compose_run

from operando.devices.stream_writer import HDF5StreamWriter
from operando.devices.techniques import ECHEM_COLUMNS
from operando.storage.catalog import files_dir, open_catalog
from operando.storage.catalog_writer import FlushingTiledWriter, SeqNumRanges, consume_stream_datum_as_ranges


def _ranges_and_dict(ops):
    ranges, plain = SeqNumRanges(), {}
    for seq_start, seq_stop, index in ops:
        ranges.add_range(seq_start, seq_stop, index)
        plain.update(zip(range(seq_start, seq_stop), range(index, index + seq_stop - seq_start)))
    return ranges, plain


def _same(ranges, plain):
    assert len(ranges) == len(plain)
    assert list(ranges.items()) == list(plain.items())  # same order too
    assert ranges == plain
    for k in list(plain)[:: max(1, len(plain) // 50)]:
        assert ranges[k] == plain[k] and k in ranges
    for k in (-1, max(plain, default=0) + 1):
        assert k not in ranges
        with pytest.raises(KeyError):
            ranges[k]


@pytest.mark.parametrize(
    "ops",
    [
        [],
        [(1, 1001, 0), (1001, 2001, 1000), (2001, 2501, 2000)],  # a RunEngine's StreamDatums
        [(1, 11, 0), (20, 30, 10), (30, 35, 20)],  # a gap in seq_nums
        [(1, 11, 0), (11, 21, 15)],  # contiguous seq_nums, rows not (not merged)
        [(1, 11, 0), (5, 15, 10)],  # overlap: later wins, as dict.update
        [(10, 20, 0), (0, 10, 10)],  # out of order
        [(5, 5, 0), (7, 3, 0), (1, 4, 0)],  # empty ranges
    ],
)
def test_seq_num_ranges_is_the_dict_it_replaces(ops):
    ranges, plain = _ranges_and_dict(ops)
    _same(ranges, plain)


def test_seq_num_ranges_random_against_dict():
    rng = random.Random(12)
    for _ in range(200):
        ops, seq, index = [], 1, 0
        for _ in range(rng.randint(1, 12)):
            n = rng.randint(0, 40)
            if rng.random() < 0.15:
                seq = rng.randint(0, seq + 5)  # back, or a small jump
            ops.append((seq, seq + n, index))
            seq += n + (rng.random() < 0.2)
            index += n
        ranges, plain = _ranges_and_dict(ops)
        _same(ranges, plain)
    # dict.update with explicit pairs (what the stock consolidator calls) keeps the same contents
    r = SeqNumRanges({3: 0, 4: 1, 5: 2, 9: 7})
    assert list(r.items()) == [(3, 0), (4, 1), (5, 2), (9, 7)] and len(r._runs) == 2


def _echem_docs(path, blocks):
    """start, descriptor, StreamResource/StreamDatum for each block of rows, stop."""
    w = HDF5StreamWriter(path, ECHEM_COLUMNS)
    w.open()
    run = compose_run(metadata={"plan_name": "test_catalog_writer"})
    desc = run.compose_descriptor(name="echem", data_keys=w.describe("test"))
    docs = [("start", run.start_doc), ("descriptor", desc.descriptor_doc)]
    seq = 1
    for first, n in blocks:
        t = np.arange(first, first + n, dtype=float)
        w.append({k: t.astype(dtype) for k, (_u, dtype) in ECHEM_COLUMNS.items()})
        for name, doc in w.asset_docs():
            if name == "stream_resource":
                docs.append((name, dict(doc, run_start=run.start_doc["uid"])))
            else:
                rows = doc["indices"]["stop"] - doc["indices"]["start"]
                doc = dict(doc, descriptor=desc.descriptor_doc["uid"], seq_nums={"start": seq, "stop": seq + rows})
                docs.append((name, doc))
        seq += n
    w.close()
    docs.append(("stop", run.compose_stop()))
    return run.start_doc["uid"], desc.descriptor_doc, docs


def test_consume_as_ranges_gives_the_stock_patches_and_data_source(tmp_path):
    _uid, descriptor, docs = _echem_docs(tmp_path / "echem.h5", [(0, 1000), (1000, 30), (1030, 20000)])
    sres = next(d for n, d in docs if n == "stream_resource" and d["data_key"] == "Ewe")
    datums = [d for n, d in docs if n == "stream_datum" and d["stream_resource"] == sres["uid"]]
    descriptor = {
        **descriptor,
        "data_keys": {k: {**v, "dtype_numpy": "<f8"} for k, v in descriptor["data_keys"].items()},
    }
    stock, ranged = consolidator_factory(dict(sres), descriptor), consolidator_factory(dict(sres), descriptor)
    for doc in datums:
        assert consume_stream_datum_as_ranges(ranged, doc) == stock.consume_stream_datum(doc)
        assert ranged.get_data_source() == stock.get_data_source()
        assert ranged.has_skips == stock.has_skips
    assert isinstance(ranged._seqnums_to_indices_map, SeqNumRanges)
    assert dict(ranged._seqnums_to_indices_map) == stock._seqnums_to_indices_map
    assert len(ranged._seqnums_to_indices_map._runs) == 1  # 21,030 rows, one entry


def test_a_run_written_with_ranges_reads_back_as_the_stock_one(tmp_path):
    blocks = [(0, 1000), (1000, 30), (1030, 20000), (21030, 7)]
    with open_catalog(tmp_path / "data") as catalog:
        stored = {}
        for stock in (True, False):
            uid, _desc, docs = _echem_docs(files_dir(catalog.data_dir) / f"echem-{stock}.h5", blocks)
            writer = FlushingTiledWriter(catalog.client, stock_consolidation=stock)
            for i, (name, doc) in enumerate(docs):
                writer(name, doc)
                if i == len(docs) // 2:
                    writer.flush_buffers()  # as the background writer does every second
            stored[stock] = uid
        runs = {stock: catalog.client[uid] for stock, uid in stored.items()}
        for key in ECHEM_COLUMNS:
            a, b = (runs[s]["echem"][key] for s in (True, False))
            assert a.structure() == b.structure()
            np.testing.assert_array_equal(a.read(), b.read())
            assert b.read().shape == (21037,)
        np.testing.assert_array_equal(runs[False]["echem"]["Ewe"].read()[:3], [0.0, 1.0, 2.0])
        assert runs[False].metadata["stop"]["exit_status"] == "success"


def test_the_writer_keeps_no_streamed_datum_while_a_run_goes_on(tmp_path):
    # event_model's stock Filler (inside TiledWriter's RunRouter) kept every StreamDatum until
    # the stop: 16 a second, ~1.4 GB a simulated day in the soak. The writer's keeps none.
    blocks = [(i * 50, 50) for i in range(40)]
    with open_catalog(tmp_path / "data") as catalog:
        uid, _desc, docs = _echem_docs(files_dir(catalog.data_dir) / "echem.h5", blocks)
        writer = FlushingTiledWriter(catalog.client, rows_every_s=0)
        for name, doc in docs[:-1]:  # everything but the stop: the run is still going
            writer(name, doc)
            writer.flush_buffers()
        fillers = writer._run_router._fillers
        assert uid in fillers
        assert len(fillers[uid]._stream_datum_cache) == 0
        writer(*docs[-1])
        np.testing.assert_array_equal(catalog.client[uid]["echem"]["Ewe"].read(), np.arange(2000.0))
