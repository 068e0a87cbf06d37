"""TiledWriter that can write out what it has cached, and registers streamed rows as ranges.

Two changes to bluesky-tiled-plugins' TiledWriter (2.0.12, pinned exactly: both reach into what
that release keeps private).

**Flushing.** TiledWriter caches events and StreamDatums per run until 10,000 rows or the stop
document. ``batch_size=1`` writes every row at once but manages ~29 event rows/s, too slow.
Instead the background writer thread calls ``flush_buffers()`` about once a second: one write per
stream per second, whatever the row rate. ``stop()`` of the same class does the same.

**Rows as ranges.** For every StreamDatum the plugin's consolidator
(``ConsolidatorBase.consume_stream_datum``) records which row each ``seq_num`` landed in as one
Python dict entry per row — 8 columns × 2,000,000 rows were 16 million entries, ~2.5 µs per
sample and ~1.6 GB held until the run ends; its only reader, ``has_skips``, needs the number of
distinct seq_nums. Here the same map is a ``SeqNumRanges``: one entry per run of consecutive
rows, the same answers to every lookup. The catalog receives exactly what the stock writer sends
(same data sources, shapes, chunks, patches), so a stock ``tiled.client`` reads the runs as
before. The fix proposed upstream is in ``docs/upstream/``; ``stock_consolidation=True`` keeps
the released behaviour (the benchmark's baseline).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Mapping

from bluesky_tiled_plugins import TiledWriter
from bluesky_tiled_plugins.writing._json_writer import JSONDictWriter, JSONLinesWriter
from bluesky_tiled_plugins.writing.consolidators import ConsolidatorBase, Patch
from bluesky_tiled_plugins.writing.tiled_writer import _ConditionalBackup, _RunWriter


class SeqNumRanges(Mapping):
    """``seq_num → row index`` kept as runs of consecutive seq_nums on consecutive rows.

    A drop-in for the ``dict`` the plugin's consolidator keeps (``_seqnums_to_indices_map``): the
    same keys, values, length and iteration order. Ranges arriving in increasing seq_num order
    (what a RunEngine emits) cost one list entry each, merged when contiguous. A range that goes
    back (a seq_num announced twice, or out of order) turns it into a plain dict from then on, so
    the later announcement wins exactly as ``dict.update`` would have it.
    """

    __slots__ = ("_starts", "_runs", "_len", "_dict")

    def __init__(self, items: Mapping | Iterable = ()):
        self._starts: list[int] = []  # first seq_num of each run, increasing
        self._runs: list[list[int]] = []  # [seq_start, seq_stop, first row]
        self._len = 0
        self._dict: dict[int, int] | None = None
        self.update(items)

    def add_range(self, seq_start: int, seq_stop: int, index_start: int) -> None:
        """Map ``seq_start + k`` to ``index_start + k`` for ``seq_start <= seq_start + k < seq_stop``."""
        if seq_stop <= seq_start:
            return
        if self._dict is None:
            if not self._runs:
                self._starts.append(seq_start)
                self._runs.append([seq_start, seq_stop, index_start])
                self._len += seq_stop - seq_start
                return
            last = self._runs[-1]
            if seq_start >= last[1]:
                if seq_start == last[1] and index_start == last[2] + (last[1] - last[0]):
                    last[1] = seq_stop  # continues the last run
                else:
                    self._starts.append(seq_start)
                    self._runs.append([seq_start, seq_stop, index_start])
                self._len += seq_stop - seq_start
                return
            self._dict = dict(self.items())  # goes back: exact dict semantics from here on
            self._starts, self._runs = [], []
        self._dict.update(zip(range(seq_start, seq_stop), range(index_start, index_start + seq_stop - seq_start)))

    def update(self, items: Mapping | Iterable = ()) -> None:
        """As ``dict.update``, one pair at a time (consecutive pairs still merge into one run)."""
        pairs = items.items() if isinstance(items, Mapping) else items
        for seq_num, index in pairs:
            self.add_range(seq_num, seq_num + 1, index)

    def __getitem__(self, seq_num: int) -> int:
        if self._dict is not None:
            return self._dict[seq_num]
        i = bisect.bisect_right(self._starts, seq_num) - 1
        if i >= 0:
            start, stop, index = self._runs[i]
            if seq_num < stop:
                return index + (seq_num - start)
        raise KeyError(seq_num)

    def __iter__(self) -> Iterator[int]:
        if self._dict is not None:
            return iter(self._dict)
        return (s for start, stop, _ in self._runs for s in range(start, stop))

    def __len__(self) -> int:
        return len(self._dict) if self._dict is not None else self._len

    def __repr__(self) -> str:
        if self._dict is not None:
            return f"SeqNumRanges({self._dict!r})"
        runs = ", ".join(f"{a}..{b - 1}→{i}" for a, b, i in self._runs)
        return f"SeqNumRanges([{runs}])"


def consume_stream_datum_as_ranges(consolidator: ConsolidatorBase, doc: dict) -> Patch:
    """``ConsolidatorBase.consume_stream_datum`` (2.0.12), with the seq_num map kept as ranges.

    Same row count, same map contents (``zip`` of the two ranges: the shorter one bounds it),
    same returned patch; O(1) per StreamDatum instead of O(rows).
    """
    seq_map = consolidator._seqnums_to_indices_map
    if not isinstance(seq_map, SeqNumRanges):
        seq_map = consolidator._seqnums_to_indices_map = SeqNumRanges(seq_map)
    old_shape = consolidator.shape  # adding rows updates shape
    indices, seq_nums = doc["indices"], doc["seq_nums"]
    consolidator._num_rows += indices["stop"] - indices["start"]
    n = min(seq_nums["stop"] - seq_nums["start"], indices["stop"] - indices["start"])
    seq_map.add_range(seq_nums["start"], seq_nums["start"] + max(n, 0), indices["start"])
    return Patch(
        offset=(old_shape[0], *[0 for _ in consolidator.shape[1:]]),
        shape=(consolidator.shape[0] - old_shape[0], *consolidator.shape[1:]),
    )


class RangeRunWriter(_RunWriter):
    """The plugin's per-run writer; a consolidator that does no more per StreamDatum than the
    base class (single-file HDF5 — the potentiostat's — CSV) registers rows as ranges.
    Consolidators with work of their own per datum (multipart TIFF/HDF5: one asset per file) are
    called as released; their seq_num map is a SeqNumRanges all the same."""

    def _update_consolidator(self, doc):
        sres_node, consolidator = self.get_sres_node(doc["stream_resource"], doc["descriptor"])
        if type(consolidator).consume_stream_datum is ConsolidatorBase.consume_stream_datum:
            patch = consume_stream_datum_as_ranges(consolidator, doc)
        else:
            patch = consolidator.consume_stream_datum(doc)
        return sres_node, consolidator, patch


class FlushingTiledWriter(TiledWriter):
    """TiledWriter with ``flush_buffers()`` and ``close_run()``, registering rows as ranges.

    ``stock_consolidation=True``: the plugin's per-run writer exactly as released (a dict entry
    per row per column) — the path as it was before 2026-12, kept for the benchmark's baseline.
    """

    def __init__(self, client, *, stock_consolidation: bool = False, **kwargs):
        super().__init__(client, **kwargs)
        self._run_writer_class = _RunWriter if stock_consolidation else RangeRunWriter
        self._run_writers: dict[str, _RunWriter] = {}

    def _factory(self, name, doc):
        # TiledWriter._factory of 2.0.12, with the per-run writer's class chosen here.
        run_writer = self._run_writer_class(
            self.client,
            batch_size=self._batch_size,
            max_array_size=self._max_array_size,
            validate=self._validate,
            ignore_errors=self.ignore_errors,
        )
        cb = run_writer
        if self._normalizer:
            cb = self._normalizer(patches=self.patches, spec_to_mimetype=self.spec_to_mimetype)
            cb.subscribe(run_writer)
        backups = []
        if self.backup_directory:
            backups.append(JSONLinesWriter(self.backup_directory))
        if self.backup_dictionary is not None:
            backups.append(JSONDictWriter(self.backup_dictionary))
        if backups:
            cb = _ConditionalBackup(cb, backups)
        self._run_writers[doc["uid"]] = run_writer
        return [cb], []

    def __call__(self, name, doc):
        super().__call__(name, doc)
        if name == "stop":
            self._run_writers.pop(doc.get("run_start"), None)

    def flush_buffers(self) -> int:
        """Write every cached event row and StreamDatum now; returns the number of writes."""
        writes = 0
        for writer in list(self._run_writers.values()):
            for desc_name, cache in writer._internal_data_cache.items():
                if cache:
                    writer._write_internal_data(cache, desc_node=writer._desc_nodes[desc_name])
                    cache.clear()
                    writes += 1
            while writer._external_data_cache:
                _, doc = writer._external_data_cache.popitem()
                writer._write_external_data(doc)
                writes += 1
        return writes

    def close_run(self, run_uid: str, stop_doc: dict) -> None:
        """End a run with a stop document the schema may not allow (recovery's "incomplete").

        TiledWriter validates every document against event-model's schema, whose exit_status is
        success|abort|fail; recovery records "incomplete", so its stop goes straight into the
        run's metadata, where TiledWriter's own stop() puts it.
        """
        writer = self._run_writers[run_uid]
        self.flush_buffers()
        writer.root_node.update_metadata(metadata={"stop": stop_doc}, drop_revision=True)
        writer._close_stream_tree()
        self._run_writers.pop(run_uid, None)
