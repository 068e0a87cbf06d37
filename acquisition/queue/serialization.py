"""Documents ⇄ bytes for 0MQ: msgpack, with numpy arrays as raw buffers. Never pickle.

bluesky's zmq Publisher/RemoteDispatcher pickle by default, and unpickling bytes from a socket
runs whatever code they name. msgpack-numpy is no better: it unpickles object arrays. Here an
array travels as (dtype string, shape, bytes) and only plain numeric/string dtypes are accepted
on either side, so decoding can build data, never code.
"""

from __future__ import annotations

import re

import msgpack
import numpy as np

_NDARRAY = 42  # msgpack extension type code for a numpy array
_PLAIN_KINDS = set("biufcSU")  # bool, ints, floats, complex, bytes, str — no objects, no voids
_PLAIN_DTYPE = re.compile(r"[<>|=][biufcSU][0-9]{1,6}")  # what numpy's dtype.str gives for those


def serialize(doc) -> bytes:
    return msgpack.packb(doc, default=_default, use_bin_type=True)


def deserialize(data: bytes):
    """A document from bytes; ValueError for bytes that are not one (msgpack's own errors for a
    truncated frame or an unhashable map key, and a malformed array, included)."""
    try:
        return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except (msgpack.UnpackException, TypeError) as exc:
        raise ValueError(f"not a document: {exc}") from None


def _default(obj):
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _PLAIN_KINDS:
            raise TypeError(f"cannot send a numpy array of dtype {obj.dtype} (only plain numbers/strings)")
        header = msgpack.packb([obj.dtype.str, list(obj.shape)])
        return msgpack.ExtType(_NDARRAY, header + np.ascontiguousarray(obj).tobytes())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__} in a document")


def _ext_hook(code: int, data: bytes):
    if code != _NDARRAY:
        raise ValueError(f"unknown msgpack extension type {code}")
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(data)
    dtype_str, shape = unpacker.unpack()
    # A dtype *string* names a layout; only the plain ones serialize() writes are read (numpy's
    # own parser of dtype strings takes comma lists and shapes, and fails in ways of its own)
    if not isinstance(dtype_str, str) or not _PLAIN_DTYPE.fullmatch(dtype_str):
        raise ValueError(f"refusing numpy dtype {dtype_str!r} from the wire")
    dtype = np.dtype(dtype_str)
    if dtype.kind not in _PLAIN_KINDS:
        raise ValueError(f"refusing numpy dtype {dtype_str!r} from the wire")
    offset = unpacker.tell()
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape).copy()
