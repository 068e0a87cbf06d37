"""Bring files from other acquisition software into the catalog as runs (`operando import`).

Each importer reads a file into columns; ``tables.store_table`` writes them the way live runs are
written (HDF5 fast path + StreamResource/StreamDatum, document journal, catalog), so imported
experiments are listed, searched, exported and replayed like new ones. Every row is kept.
"""

from __future__ import annotations

from pathlib import Path

from .tables import ImportedRun, store_table


class ImportFormatError(ValueError):
    """The file is not in a format we can import (the message names the file and why)."""


def import_file(path: Path, client, data_dir: Path, sample: dict | None = None) -> ImportedRun:
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".mpr", ".mpt"):
        from .eclab import read_eclab

        table = read_eclab(path)
    elif suffix == ".dat":
        from .multivu import read_multivu

        table = read_multivu(path)
    else:
        raise ImportFormatError(
            f"{path}: unknown file type {suffix!r} (expected BioLogic EC-Lab .mpr/.mpt or Quantum Design MultiVu .dat)"
        )
    return store_table(table, client, data_dir, sample=sample)


__all__ = ["ImportFormatError", "ImportedRun", "import_file"]
