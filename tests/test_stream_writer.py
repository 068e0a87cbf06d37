"""The HDF5 fast path: rows on disk, documents that describe exactly those rows."""

import h5py
import numpy as np
import pytest
from event_model import DocumentNames, schema_validators

from operando.devices.stream_writer import HDF5StreamWriter
from operando.devices.techniques import ECHEM_COLUMNS


def _block(start, n):
    return {
        "timestamp": np.arange(start, start + n, dtype=float),
        "Ewe": np.linspace(3.0, 3.1, n),
        "I": np.full(n, 1e-3),
        "charge": np.arange(n) * 1e-3,
        "cycle": np.ones(n, dtype=np.int64),
        "step": np.full(n, 2, dtype=np.int64),
    }


def test_appends_are_on_disk_and_announced_once(tmp_path):
    w = HDF5StreamWriter(tmp_path / "echem.h5", ECHEM_COLUMNS)
    w.open()
    w.append(_block(0, 1000))
    docs = list(w.asset_docs())
    kinds = [k for k, _ in docs]
    assert kinds.count("stream_resource") == len(ECHEM_COLUMNS)
    assert kinds.count("stream_datum") == len(ECHEM_COLUMNS)
    for kind, doc in docs:
        if kind == "stream_resource":
            schema_validators[DocumentNames.stream_resource].validate(doc)
            assert doc["mimetype"] == "application/x-hdf5"
    datums = [d for k, d in docs if k == "stream_datum"]
    assert all(d["indices"] == {"start": 0, "stop": 1000} for d in datums)

    w.append(_block(1000, 500))
    docs2 = list(w.asset_docs())
    assert [k for k, _ in docs2] == ["stream_datum"] * len(ECHEM_COLUMNS)  # no new resources
    assert docs2[0][1]["indices"] == {"start": 1000, "stop": 1500}
    assert list(w.asset_docs()) == []  # nothing new, nothing announced

    # Readable while still open (SWMR), before close.
    with h5py.File(tmp_path / "echem.h5", "r", swmr=True, libver="latest") as f:
        assert f["/entry/timestamp"].shape == (1500,)
        assert f["/entry/timestamp"][1499] == 1499.0
        assert f["/entry/Ewe"].attrs["units"] == "V"
    w.close()


def test_ragged_block_is_refused(tmp_path):
    w = HDF5StreamWriter(tmp_path / "x.h5", ECHEM_COLUMNS)
    w.open()
    bad = _block(0, 10)
    bad["Ewe"] = bad["Ewe"][:5]
    with pytest.raises(ValueError, match="ragged"):
        w.append(bad)
    assert w.rows == 0
    w.close()


def test_describe_marks_columns_external_with_units(tmp_path):
    desc = HDF5StreamWriter(tmp_path / "x.h5", ECHEM_COLUMNS).describe("pstat")
    assert desc["Ewe"]["units"] == "V" and desc["Ewe"]["external"] == "STREAM:"
    assert desc["cycle"]["dtype"] == "integer" and desc["Ewe"]["shape"] == []
