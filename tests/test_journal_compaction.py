"""Journal compaction: consecutive StreamDatums merged per stream resource, gzip'd, read back
exactly as emitted (replay) or merged (recovery); a run's journal is one ``<uid>.jsonl.gz``
once its stop is in the catalog."""

from __future__ import annotations

import math
import os
import shutil
import textwrap
import time

import orjson
import pytest

from operando.acquisition.config import PROFILES_DIR, load_profile, load_protocol
from operando.acquisition.experiment import run_experiment
from operando.storage.catalog import open_catalog
from operando.storage.journal import (
    DocumentJournal,
    closed_journal_path,
    compact_lines,
    compacted_journal_path,
    encode,
    find_journal,
    journal_dir,
    open_journal_path,
    read_journal,
    read_journal_file,
)
from operando.storage.recovery import recover_data_dir
from operando.storage.replay import replay_run, run_documents
from operando.storage.runs import find_run

SHORT = textwrap.dedent(
    """
    name: compaction
    steps:
      - {kind: rest, duration_min: 2}
      - {kind: cc, c_rate: -2, e_min_V: 0.01, max_duration_h: 1}
    """
)
RESOURCES = [f"res-{c}" for c in "abcdefgh"]


def _datum(resource, n, start, rows, seq_offset=1, **extra):
    return {
        "stream_resource": resource,
        "uid": f"{resource}/{n}",
        "seq_nums": {"start": start + seq_offset, "stop": start + rows + seq_offset},
        "indices": {"start": start, "stop": start + rows},
        "descriptor": "desc",
        **extra,
    }


def _collects(first, count, rows=5, resources=RESOURCES):
    """StreamDatums of ``count`` collects from collect ``first`` on: round by round."""
    return [("stream_datum", _datum(r, k, k * rows, rows)) for k in range(first, first + count) for r in resources]


def _event(i):
    return ("event", {"uid": f"e{i}", "time": 1.0 + i, "data": {"x": [1.5, 2.25]}, "descriptor": "d2", "seq_num": i})


def _roundtrip(docs):
    lines = [encode(n, d) for n, d in docs]
    compacted = list(compact_lines(lines))
    return lines, compacted


def _decode(path_lines, tmp_path, merged=False):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"".join(path_lines))
    return list(read_journal_file(path, merged=merged))


def test_collects_between_two_documents_merge_into_one_datum_per_resource(tmp_path):
    docs = [_event(0), *_collects(0, 10), _event(1), *_collects(10, 3), _event(2)]
    lines, compacted = _roundtrip(docs)
    assert len(compacted) == 3 + 8 + 8 and sum(map(len, compacted)) < sum(map(len, lines)) / 5
    assert _decode(compacted, tmp_path) == docs  # exactly as emitted
    merged = _decode(compacted, tmp_path, merged=True)
    assert [n for n, _ in merged if n != "stream_datum"] == ["event"] * 3
    first = [d for n, d in merged if n == "stream_datum"][:8]
    for resource, d in zip(RESOURCES, first):  # as TiledWriter's own concatenation names it
        assert d == _datum(resource, 9, 0, 50) | {"uid": f"{resource}/9"}


@pytest.mark.parametrize(
    "case",
    ["gap in seq_nums", "rows not contiguous", "another key", "foreign uid", "out of round"],
)
def test_what_would_not_come_back_exactly_is_kept_as_emitted(tmp_path, case):
    docs = _collects(0, 4)
    k = 8 * 2 + 3  # collect 2, resource d
    d = dict(docs[k][1])
    if case == "gap in seq_nums":
        d["seq_nums"] = {"start": d["seq_nums"]["start"] + 1, "stop": d["seq_nums"]["stop"] + 1}
    elif case == "rows not contiguous":
        d["indices"] = {"start": d["indices"]["start"] + 1, "stop": d["indices"]["stop"] + 1}
    elif case == "another key":
        d["extra"] = 1
    elif case == "foreign uid":
        d["uid"] = "something-else"
    else:
        docs[k], docs[k + 1] = docs[k + 1], docs[k]
    if case != "out of round":
        docs[k] = ("stream_datum", d)
    lines, compacted = _roundtrip([_event(0), *docs, _event(1)])
    assert compacted == lines
    assert _decode(compacted, tmp_path) == [_event(0), *docs, _event(1)]


def test_a_collect_cut_by_a_rotation_still_merges(tmp_path):
    # segments that begin inside a collect (a rotation between two of its StreamDatums)
    for head, tail in ((3, 5), (6, 2), (0, 1)):
        docs = _collects(0, 6)[head : len(_collects(0, 6)) - tail]
        lines, compacted = _roundtrip(docs)
        assert len(compacted) <= 8 + 7, (head, tail)  # whole rounds merged, what is left as it was
        assert _decode(compacted, tmp_path) == docs


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    base = tmp_path_factory.mktemp("compaction")
    (base / "short.yaml").write_text(SHORT)
    data = base / "data"
    docs = []
    # ~1.7 s of wall time (the cell discharges from 2.9 V in ~27 min) with a frame of each
    # detector at the start only: the run's own echem announcements every 0.5 s follow one
    # another with no event between, so there are StreamDatums to merge however the frames
    # fall (a loaded machine only makes more announcements).
    sim = (PROFILES_DIR / "sim.yaml").read_text()
    assert sim.count("period_s: 60}") == 1 and sim.count("period_s: 300}") == 1
    (base / "sparse.yaml").write_text(
        sim.replace("period_s: 60}", "period_s: 36000}").replace("period_s: 300}", "period_s: 36000}")
    )
    result = run_experiment(
        load_profile(base / "sparse.yaml"),
        load_protocol(base / "short.yaml"),
        data,
        speed=1000,
        callbacks=[lambda name, doc: docs.append((name, doc))],
        report=False,
    )
    return data, result.uid, docs


def _json(docs):
    return [orjson.loads(orjson.dumps([n, d], option=orjson.OPT_SERIALIZE_NUMPY)) for n, d in docs]


def test_a_stored_run_leaves_one_compacted_journal_that_replays_exactly(finished):
    data, uid, original = finished
    assert sorted(p.name for p in journal_dir(data).iterdir()) == [f"{uid}.jsonl.gz"]
    assert find_journal(data, uid) == compacted_journal_path(data, uid)
    # Replay: the documents as emitted, in order, StreamDatums included.
    with open_catalog(data) as catalog:
        run = find_run(catalog.client, uid)
        got = []
        assert replay_run(run, [lambda n, d: got.append((n, d))], data_dir=data, speed=math.inf) == len(original)
        assert _json(got) == _json(original)
        assert list(run_documents(run, data)) == got
    # The path a caller found before the compaction still reads the run.
    assert list(read_journal(closed_journal_path(data, uid))) == got
    # Merged: the same non-datum documents, the same rows per column, fewer StreamDatums.
    merged = list(read_journal(compacted_journal_path(data, uid), merged=True))
    assert [d for d in merged if d[0] != "stream_datum"] == [d for d in got if d[0] != "stream_datum"]
    rows = {}
    for which, docs in (("original", got), ("merged", merged)):
        for n, d in docs:
            if n == "stream_datum":
                rows.setdefault(which, {}).setdefault(d["stream_resource"], []).append(
                    (d["indices"]["start"], d["indices"]["stop"])
                )
    for resource, spans in rows["original"].items():
        assert rows["merged"][resource][0][0] == spans[0][0] and rows["merged"][resource][-1][1] == spans[-1][1]
    assert sum(map(len, rows["merged"].values())) < sum(map(len, rows["original"].values()))


def _abandoned_run(data, docs, segment_every=None):
    """A journal as a killed process leaves it: written through DocumentJournal (rotated every
    ``segment_every`` documents, segments compacted), then its files closed without a stop."""
    now = [0.0]
    journal = DocumentJournal(data, segment_s=1.0 if segment_every else math.inf, clock=lambda: now[0])
    for i, (name, doc) in enumerate(docs):
        if segment_every:
            now[0] = (i // segment_every) * 1.0
        journal(name, doc)
    if journal._compactor is not None:
        journal._compactor.drain()
    uid = docs[0][1]["uid"]
    journal._runs[uid].file.close()  # as the kernel does for a killed process: the lock is gone
    journal._stop.set()
    return uid


def test_recovery_reads_compacted_segments_and_the_open_journal(finished, tmp_path):
    source, uid, original = finished
    # Cut the stored run before its last collect: the HDF5 file holds more than announced.
    stop_at = max(i for i, (n, _) in enumerate(original) if n == "event")
    data = tmp_path / "data"
    (data / "files").mkdir(parents=True)
    shutil.copy(next((source / "files").glob("potentiostat-*.h5")), data / "files" / "echem.h5")
    docs = [
        (n, dict(d, uri=(data / "files" / "echem.h5").absolute().as_uri()) if n == "stream_resource" else d)
        for n, d in original[:stop_at]
    ]
    _abandoned_run(data, docs, segment_every=10)
    assert list(journal_dir(data).glob("*.seg.gz")) and open_journal_path(data, uid).exists()
    assert _json(read_journal(open_journal_path(data, uid))) == _json(docs)
    with open_catalog(data) as catalog:
        (run,) = recover_data_dir(data, client=catalog.client)
        stored = catalog.client[uid]
        stored_rows = stored["echem"]["Ewe"].shape[0]
        stored_events = {k: len(stored[k]["time"].read()) for k in ("magnetometer", "raman") if k in stored}
    closed = list(read_journal(closed_journal_path(data, uid)))
    assert _json(closed[: len(docs)]) == _json(docs) and closed[-1][0] == "stop"
    final_rows = {n: d for n, d in original if n == "stop"}["stop"]["num_events"]
    assert stored_rows == final_rows["echem"]  # every row the file holds
    for stream, n in stored_events.items():
        assert n == sum(1 for name, d in docs if name == "event" and _stream(docs, d) == stream)


def _stream(docs, event):
    return next(d["name"] for n, d in docs if n == "descriptor" and d["uid"] == event["descriptor"])


def test_recovery_after_a_torn_last_line_appends_on_a_line_of_its_own(finished, tmp_path):
    _, uid, original = finished
    data = tmp_path / "data"
    journal_dir(data).mkdir(parents=True)
    docs = original[: next(i for i, (n, _) in enumerate(original) if n == "stream_resource")]
    open_journal_path(data, uid).write_bytes(
        b"".join(encode(n, d) for n, d in docs) + encode(*original[len(docs)])[:-9]
    )
    with open_catalog(data) as catalog:
        (run,) = recover_data_dir(data, client=catalog.client)
        assert catalog.client[uid].metadata["stop"]["exit_status"] == "fail"
    closed = list(read_journal(closed_journal_path(data, uid)))
    assert _json(closed[:-1]) == _json(docs) and closed[-1][0] == "stop"


def test_the_next_command_compacts_closed_journals_whose_stop_is_in_the_catalog(finished, tmp_path):
    source, uid, original = finished
    data = tmp_path / "data"
    journal_dir(data).mkdir(parents=True)
    stored = closed_journal_path(data, uid)
    stored.write_bytes(b"".join(encode(n, d) for n, d in original))
    orphan = closed_journal_path(data, "not-in-the-catalog")
    orphan.write_bytes(encode("start", {"uid": "not-in-the-catalog", "time": 1.0}))
    old = time.time() - 3600
    for p in (stored, orphan):
        os.utime(p, (old, old))
    with open_catalog(data) as catalog:
        from operando.storage.catalog_writer import FlushingTiledWriter

        writer = FlushingTiledWriter(catalog.client)
        for n, d in original:
            writer(n, d)
        assert recover_data_dir(data, client=catalog.client) == []
    assert sorted(p.name for p in journal_dir(data).iterdir()) == [f"{uid}.jsonl.gz", orphan.name]
    assert _json(read_journal(compacted_journal_path(data, uid))) == _json(original)
