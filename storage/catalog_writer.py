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
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from bluesky_tiled_plugins import TiledWriter
from bluesky_tiled_plugins.writing._json_writer import JSONDictWriter, JSONLinesWriter
from bluesky_tiled_plugins.writing.consolidators import ConsolidatorBase, Patch
from bluesky_tiled_plugins.writing.tiled_writer import _ConditionalBackup, _RunWriter
from event_model import Filler, RunRouter

ROWS_EVERY_ENV = "OPERANDO_CATALOG_ROWS_EVERY_S"
ROWS_EVERY_S = 30.0  # streamed rows registered with the catalog at most this often (and at the stop)


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


def rows_every_s_from_env(default: float = ROWS_EVERY_S) -> float:
    """``$OPERANDO_CATALOG_ROWS_EVERY_S`` (seconds, >= 0), else ``default``."""
    raw = os.environ.get(ROWS_EVERY_ENV)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"${ROWS_EVERY_ENV} must be a number of seconds (got {raw!r})") from None
    if not value >= 0:
        raise ValueError(f"${ROWS_EVERY_ENV} must be >= 0 (got {raw!r})")
    return value


class StreamingFiller(Filler):
    """The RunRouter's per-run Filler, passing documents through without caching or copying.

    event_model's Filler keeps every StreamDatum (and Datum) of a run until the stop, to fill
    events later, and unpacks and repacks every event page; TiledWriter registers external data
    itself and never needs a filled event, so the caches only grew — by every datum a run
    announced (16 per second here: about 1.4 GB a simulated day) — and the copies only cost time.
    """

    def datum(self, doc):
        return doc

    def event_page(self, doc):
        return doc

    def event(self, doc):
        return doc

    def stream_datum(self, doc):
        return doc


class FlushingTiledWriter(TiledWriter):
    """TiledWriter with ``flush_buffers()`` and ``close_run()``, registering rows as ranges.

    ``rows_every_s``: rows of arrays — streamed (StreamDatum) rows, and events of streams with
    arrays (spectra, maps) — are registered with Tiled at most this often per run (default
    ``$OPERANDO_CATALOG_ROWS_EVERY_S`` or ``ROWS_EVERY_S``; 0: at every flush), and always at
    the stop; streams of scalars are written at every flush. ``on_stored(run_uid)`` is called
    once a run's stop document is in the catalog. ``stock_consolidation=True``: the plugin's
    per-run writer exactly as released (a dict entry per row per column) — the path as it was
    before 2026-12, kept for the benchmark's baseline.
    """

    def __init__(
        self,
        client,
        *,
        stock_consolidation: bool = False,
        rows_every_s: float | None = None,
        on_stored: Callable[[str], object] | None = None,
        clock: Callable[[], float] = time.monotonic,
        **kwargs,
    ):
        super().__init__(client, **kwargs)
        self._run_router = RunRouter([self._factory], filler_class=StreamingFiller)
        self._run_writer_class = _RunWriter if stock_consolidation else RangeRunWriter
        self._run_writers: dict[str, _RunWriter] = {}
        self.rows_every_s = rows_every_s_from_env() if rows_every_s is None else float(rows_every_s)
        self._on_stored = on_stored
        self._clock = clock
        self._rows_registered: dict[str, float] = {}  # run uid -> clock() of its last registration

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
            run_uid = doc.get("run_start")
            self._run_writers.pop(run_uid, None)
            self._rows_registered.pop(run_uid, None)
            if self._on_stored is not None:
                try:
                    self._on_stored(run_uid)
                except Exception:  # the run is stored; what follows must not fail it
                    logging.getLogger(__name__).exception("after storing run %s", run_uid)

    def flush_buffers(self, *, force: bool = False) -> int:
        """Write what is cached now: every stream of scalars (a table: appending adds nothing to
        the catalog's records); array rows — StreamDatums and streams with arrays (spectra,
        maps) — of each run whose array rows were last registered ``rows_every_s`` ago or more
        (all of them with ``force``). Returns the number of writes."""
        writes = 0
        now = self._clock()
        for run_uid, writer in list(self._run_writers.items()):
            last = self._rows_registered.get(run_uid)
            due = force or last is None or now - last >= self.rows_every_s
            registered = False
            for desc_name, cache in writer._internal_data_cache.items():
                if not cache:
                    continue
                arrays = writer._int_array_keys.get(desc_name) or writer._int_ragged_array_keys.get(desc_name)
                if arrays and not due:
                    continue  # held: each write would add a structure record with every chunk
                writer._write_internal_data(cache, desc_node=writer._desc_nodes[desc_name])
                cache.clear()
                writes += 1
                registered = registered or bool(arrays)
            if due and writer._external_data_cache:
                while writer._external_data_cache:
                    _, doc = writer._external_data_cache.popitem()
                    writer._write_external_data(doc)
                    writes += 1
                registered = True
            if registered:
                self._rows_registered[run_uid] = now
        return writes

    def cached(self) -> bool:
        """Whether anything is cached, to be written by a later ``flush_buffers()``."""
        return any(
            writer._external_data_cache or any(writer._internal_data_cache.values())
            for writer in self._run_writers.values()
        )

    def close_run(self, run_uid: str, stop_doc: dict) -> None:
        """End a run with a stop document the schema may not allow (recovery's "incomplete").

        TiledWriter validates every document against event-model's schema, whose exit_status is
        success|abort|fail; recovery records "incomplete", so its stop goes straight into the
        run's metadata, where TiledWriter's own stop() puts it.
        """
        writer = self._run_writers[run_uid]
        self.flush_buffers(force=True)
        writer.root_node.update_metadata(metadata={"stop": stop_doc}, drop_revision=True)
        writer._close_stream_tree()
        self._run_writers.pop(run_uid, None)
        self._rows_registered.pop(run_uid, None)
