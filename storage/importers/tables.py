"""Store an imported table as a run: the same documents and layout as a live run."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from event_model import compose_run

from operando.devices.stream_writer import HDF5StreamWriter

from ..catalog import files_dir
from ..catalog_writer import FlushingTiledWriter
from ..journal import DocumentJournal
from ..metadata import JsonMetadataStore

BLOCK_ROWS = 100_000  # rows per StreamDatum: bounded memory for any file size


@dataclass
class ImportedTable:
    """Columns read from a file: ``columns[key] = (units, values)``, all the same length."""

    source: Path
    source_format: str
    stream: str
    start_time: float  # epoch seconds of the first row
    columns: dict[str, tuple[str, np.ndarray]]
    metadata: dict = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()))[1]) if self.columns else 0


@dataclass
class ImportedRun:
    uid: str
    scan_id: int
    stream: str
    rows: int


def safe_key(name: str) -> str:
    """A column header as a data key usable as an HDF5 dataset and Tiled node name."""
    key = re.sub(r"[^A-Za-z0-9_+-]+", "_", name).strip("_")  # no "." or "/" in keys
    return key or "column"


def store_table(table: ImportedTable, client, data_dir: Path, sample: dict | None = None):
    sample = dict(sample or {})
    sample.setdefault("name", table.source.stem)
    md = {
        "plan_name": f"import_{table.source_format}",
        "sample": sample,
        "imported_from": str(table.source.absolute()),
        "source_format": table.source_format,
        "imported_at": time.time(),
        "echem_stream": "echem",
        **table.metadata,
    }
    # scan_id keeps counting with the RunEngine's (same persisted metadata).
    re_md = JsonMetadataStore(Path(data_dir) / "run_engine.json")
    scan_id = int(re_md.get("scan_id", 0)) + 1
    re_md["scan_id"] = scan_id
    md["scan_id"] = scan_id
    bundle = compose_run(metadata=md, time=table.start_time)
    uid = bundle.start_doc["uid"]
    writer = HDF5StreamWriter(
        files_dir(data_dir) / f"import-{uid[:12]}.h5",
        {key: (units, values.dtype.str) for key, (units, values) in table.columns.items()},
    )
    journal = DocumentJournal(data_dir)
    catalog = FlushingTiledWriter(client)

    def emit(name, doc):
        journal(name, doc)
        catalog(name, doc)

    try:
        emit("start", bundle.start_doc)
        writer.open()
        desc = bundle.compose_descriptor(name=table.stream, data_keys=writer.describe(f"import:{table.source.name}"))
        emit("descriptor", desc.descriptor_doc)
        for lo in range(0, table.rows, BLOCK_ROWS):
            writer.append({k: v[lo : lo + BLOCK_ROWS] for k, (_, v) in table.columns.items()})
            for name, doc in writer.asset_docs():
                if name == "stream_resource":
                    doc = {**doc, "run_start": uid}
                else:  # what the RunEngine fills in for a live run
                    i = doc["indices"]
                    doc = {
                        **doc,
                        "descriptor": desc.descriptor_doc["uid"],
                        "seq_nums": {"start": i["start"] + 1, "stop": i["stop"] + 1},
                    }
                emit(name, doc)
        writer.close()
        stop = bundle.compose_stop(exit_status="success")
        emit("stop", {**stop, "num_events": {table.stream: table.rows}})
    finally:
        journal.close()
    return ImportedRun(uid, scan_id, table.stream, table.rows)
