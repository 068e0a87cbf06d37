"""Make an HDF5 file left open by a killed writer readable by plain (non-SWMR) readers again.

A file written in SWMR mode carries "open for write" flags in its superblock; if the writer dies,
every later non-SWMR open fails with "file is already open for write (may use <h5clear file> to
clear file consistency flags)". The data are intact (the writer flushed at every collect), and
SWMR readers such as Tiled read them, but a scientist's ``h5py.File(path)`` does not. HDF5's own
fix is the ``h5clear`` tool (Debian's hdf5-tools), which h5py does not expose; this does what
``h5clear -s --increment=0`` does: zero the flags byte of a version 2/3 superblock, raise its
end-of-file address to the file's real size (a SWMR writer does not keep it current, so reads of
late chunks fail with "addr overflow") and rewrite its checksum (Jenkins' lookup3, as HDF5
computes it; the old checksum is verified first, so a misread superblock is never rewritten).
"""

from __future__ import annotations

import logging
import os
import struct
from pathlib import Path

log = logging.getLogger(__name__)
SIGNATURE = b"\x89HDF\r\n\x1a\n"
_M = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' hashlittle as HDF5's H5_checksum_lookup3 (little-endian byte order)."""
    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & _M
    k = 0
    while length > 12:
        a = (a + int.from_bytes(data[k : k + 4], "little")) & _M
        b = (b + int.from_bytes(data[k + 4 : k + 8], "little")) & _M
        c = (c + int.from_bytes(data[k + 8 : k + 12], "little")) & _M
        a = (a - c) & _M
        a ^= _rot(c, 4)
        c = (c + b) & _M
        b = (b - a) & _M
        b ^= _rot(a, 6)
        a = (a + c) & _M
        c = (c - b) & _M
        c ^= _rot(b, 8)
        b = (b + a) & _M
        a = (a - c) & _M
        a ^= _rot(c, 16)
        c = (c + b) & _M
        b = (b - a) & _M
        b ^= _rot(a, 19)
        a = (a + c) & _M
        c = (c - b) & _M
        c ^= _rot(b, 4)
        b = (b + a) & _M
        length -= 12
        k += 12
    if length == 0:
        return c
    tail = data[k:] + bytes(12 - length)  # the C switch adds only the bytes present
    a = (a + int.from_bytes(tail[0:4], "little")) & _M
    b = (b + int.from_bytes(tail[4:8], "little")) & _M
    c = (c + int.from_bytes(tail[8:12], "little")) & _M
    c ^= b
    c = (c - _rot(b, 14)) & _M
    a ^= c
    a = (a - _rot(c, 11)) & _M
    b ^= a
    b = (b - _rot(a, 25)) & _M
    c ^= b
    c = (c - _rot(b, 16)) & _M
    a ^= c
    a = (a - _rot(c, 4)) & _M
    b ^= a
    b = (b - _rot(a, 14)) & _M
    c ^= b
    c = (c - _rot(b, 24)) & _M
    return c


def clear_swmr_flags(path: Path) -> bool:
    """Clear the superblock's open-for-write flags; True if the file needed it.

    Does nothing (returns False) for a missing file, another superblock version, flags already
    clear, or a checksum that does not match (then the file is left exactly as it was).
    """
    path = Path(path)
    if not path.exists():
        return False
    with open(path, "r+b") as f:
        head = f.read(12)
        if len(head) < 12 or head[:8] != SIGNATURE or head[8] not in (2, 3):
            return False
        size_of_offsets = head[9]
        body_len = 12 + 4 * size_of_offsets
        f.seek(0)
        block = bytearray(f.read(body_len + 4))
        (stored,) = struct.unpack("<I", block[body_len:])
        if lookup3(bytes(block[:body_len])) != stored:
            log.warning("%s: superblock checksum mismatch; flags left as they are", path)
            return False
        eof_at = 12 + 2 * size_of_offsets
        eof = int.from_bytes(block[eof_at : eof_at + size_of_offsets], "little")
        size = f.seek(0, os.SEEK_END)
        if block[11] == 0 and eof >= size:
            return False
        block[11] = 0
        block[eof_at : eof_at + size_of_offsets] = max(eof, size).to_bytes(size_of_offsets, "little")
        block[body_len:] = struct.pack("<I", lookup3(bytes(block[:body_len])))
        f.seek(0)
        f.write(block)
        f.flush()
        os.fsync(f.fileno())
    return True
