"""The container layer under gedenb's three readers: pieces, checksums, maps, row numbers.

Everything here is shared by the table file (:mod:`gedenb.store`), the
image container (:mod:`gedenb.images`) and the sharded store
(:mod:`gedenb.sharded`); it imports none of them, they build on it
(``docs/FORMAT.md`` describes the bytes):

- a **sealed header** ends with the CRC-32 (``zlib.crc32``) of the bytes
  before it, as a little-endian ``u32`` (:func:`seal`, :func:`check_sealed`);
- every **piece** after the header is zero-padded to a multiple of 8 bytes,
  so that bit streams map as ``uint64`` words without a copy
  (:func:`pad8`, :func:`check_padding`, :func:`read_piece`);
- a **section** of a ``.gede`` file is a piece framed as
  ``tag (4 bytes) | crc32 (u32) | nbytes (u64) | payload | zero padding``
  (:data:`SECTION`, :func:`read_section`);
- a **bit stream** (bases, records, weights) has its unused bits after the
  last value zero (:func:`stream_problem`);
- readers opened from a path map the file read-only and pickle as
  ``(path, verify)`` (:class:`PathReader`, :func:`map_file`,
  :func:`release`), a table's readers index rows alike (:class:`RowReader`), check row numbers with one function
  (:func:`row_indices`) and scan records for base IDs out of range
  (:func:`max_base_id`).

A check that fails raises :class:`~gedenb.errors.FormatError` whose message
starts with the name of the piece (``header:``, ``CODC:``, ``META:``, ...).
"""

from __future__ import annotations

import mmap
import operator
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from . import bits as _bits
from ._numba import njit
from .errors import FormatError

__all__ = ["SECTION", "PathReader", "RowReader", "check_padding", "check_sealed", "checked_bytes", "crc", "frozen", "map_file",
           "max_base_id", "pad8", "read_piece", "read_section", "release", "row_indices", "seal", "stream_problem"]

#: Frame of a section: tag (4 bytes), CRC-32 of the payload (u32), payload length (u64).
SECTION = struct.Struct("<4sIQ")


# --------------------------------------------------------------------------
# checksums and padding
# --------------------------------------------------------------------------
def pad8(nbytes: int) -> int:
    """Zero bytes that pad a piece of ``nbytes`` bytes (or ending at byte ``nbytes``) to a multiple of 8.

    Parameters
    ----------
    nbytes : int
        Length of the piece, or the file offset where it ends.
    """
    return -nbytes % 8


def crc(buf, start: int, nbytes: int) -> int:
    """CRC-32 of ``buf[start:start + nbytes]`` without copying it.

    Parameters
    ----------
    buf : bytes-like
        The file (bytes, mmap or a memoryview of one).
    start, nbytes : int
        Where the bytes begin and how many.
    """
    with memoryview(buf) as view:
        return zlib.crc32(view[start:start + nbytes])


def seal(raw: bytes) -> bytes:
    """``raw`` with its last 4 bytes replaced by the CRC-32 of the bytes before them (a sealed header).

    Parameters
    ----------
    raw : bytes
        A packed header whose last field is its checksum (any value).
    """
    return raw[:-4] + struct.pack("<I", zlib.crc32(raw[:-4]))


def check_sealed(head: bytes) -> None:
    """Check a sealed header's CRC-32 (its last 4 bytes, over the bytes before them).

    Parameters
    ----------
    head : bytes
        The whole header.
    """
    if zlib.crc32(head[:-4]) != struct.unpack("<I", head[-4:])[0]:
        raise FormatError("header: checksum mismatch (the file is corrupt)")


def check_padding(buf, end: int, name: str) -> None:
    """Check the zero bytes that pad a piece ending at byte ``end`` to a multiple of 8.

    Parameters
    ----------
    buf : bytes-like
        The file.
    end : int
        Offset of the first byte after the piece's payload.
    name : str
        The piece, for the message.
    """
    if any(buf[end:end + pad8(end)]):
        raise FormatError(f"{name}: padding bytes must be zero")


def checked_bytes(buf, start: int, nbytes: int, expected_crc: int, name: str) -> bytes:
    """A copy of ``buf[start:start + nbytes]``, checked against its CRC-32.

    Parameters
    ----------
    buf : bytes-like
        The file.
    start, nbytes : int
        Where the payload begins and its length (checked to lie inside the file by the caller).
    expected_crc : int
        Its CRC-32 as the file states it.
    name : str
        The piece, for the message.
    """
    raw = bytes(buf[start:start + nbytes])
    if zlib.crc32(raw) != expected_crc:
        raise FormatError(f"{name}: checksum mismatch (the file is corrupt)")
    return raw


def read_piece(buf, pos: int, nbytes: int, expected_crc: int, name: str) -> bytes:
    """The unframed piece of ``nbytes`` bytes at ``pos``: inside the file with its padding, its CRC-32, zero
    padding.

    Parameters
    ----------
    buf : bytes-like
        The file.
    pos : int
        Offset of the piece.
    nbytes : int
        Its length (without padding).
    expected_crc : int
        Its CRC-32 as the file states it.
    name : str
        The piece, for the messages.
    """
    if nbytes + pad8(nbytes) > len(buf) - pos:
        raise FormatError(f"{name}: runs past the end of the file")
    raw = checked_bytes(buf, pos, nbytes, expected_crc, name)
    check_padding(buf, pos + nbytes, name)
    return raw


def read_section(buf, pos: int, tag: bytes | None, name: str) -> tuple:
    """The frame of the section at ``pos``, checked: inside the file, the expected tag, zero padding.

    Parameters
    ----------
    buf : bytes-like
        The file.
    pos : int
        Offset of the section's frame.
    tag : bytes or None
        The tag the file must have here (None: any, an extension section).
    name : str
        The section, for the messages.

    Returns
    -------
    (tag, crc, start, nbytes)
        The tag found, the payload's stated CRC-32, offset and length; the next section starts at
        ``start + nbytes + pad8(nbytes)``.
    """
    size = len(buf)
    if pos + SECTION.size > size:
        raise FormatError(f"{name}: section header beyond the end of the file")
    got, scrc, nbytes = SECTION.unpack(bytes(buf[pos:pos + SECTION.size]))
    if tag is not None and got != tag:
        raise FormatError(f"{name}: expected this section at byte {pos}, found {got!r}")
    start = pos + SECTION.size
    if nbytes + pad8(nbytes) > size - start:
        raise FormatError(f"{name}: section of {nbytes} bytes runs past the end of the file")
    check_padding(buf, start + nbytes, name)
    return got, scrc, start, nbytes


def stream_problem(words: np.ndarray, expected_crc: int, nbits: int, name: str, verify: bool) -> str | None:
    """What is wrong with a mapped bit stream (its checksum when verifying, its padding bits), or None.

    Parameters
    ----------
    words : uint64 ndarray
        The stream's words, a view of the file.
    expected_crc : int
        CRC-32 of its bytes as the file (or manifest) states it.
    nbits : int
        Bits of the stream in use; the rest of the last word must be zero.
    name : str
        The stream, for the message.
    verify : bool
        Whether to compute the checksum (one pass over the stream).
    """
    if verify and zlib.crc32(words) != expected_crc:
        return f"{name}: checksum mismatch (the file is corrupt)"
    if nbits % 64 and int(words[-1]) & ((1 << (64 - nbits % 64)) - 1):
        return f"{name}: padding bits of the last word must be zero"
    return None


def frozen(*arrays) -> tuple:
    """The arrays, made read-only (views of a read-only map already are).

    Parameters
    ----------
    *arrays : ndarray
        Arrays a reader hands out.
    """
    for a in arrays:
        if a.flags.writeable:
            a.setflags(write=False)
    return arrays


# --------------------------------------------------------------------------
# readers opened from a path
# --------------------------------------------------------------------------
def map_file(path: Path, min_size: int, too_short: str) -> mmap.mmap:
    """A read-only map of the whole file at ``path``, refused below ``min_size`` bytes.

    Parameters
    ----------
    path : Path
        The file.
    min_size : int
        Bytes the smallest valid file has (> 0).
    too_short : str
        End of the message for a shorter file (``header: file has N bytes, <too_short> [path]``).
    """
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < min_size:
            raise FormatError(f"header: file has {size} bytes, {too_short} [{path}]")
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def release(mm) -> None:
    """Close a map unless arrays handed out still view it (it then closes with the last of them).

    Parameters
    ----------
    mm : mmap.mmap
        The map.
    """
    try:
        mm.close()
    except BufferError:
        pass


class PathReader:
    """What every reader opened from a path shares: a context manager that closes it, and pickling as
    ``(path, verify)`` so that a copy (e.g. in a DataLoader worker) reopens the same store."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __reduce__(self):
        return (type(self), (str(self.path), self._verify))


class RowReader(PathReader):
    """What the readers of a table share (:class:`gedenb.Reader`, :class:`gedenb.sharded.ShardedReader`):
    ``len``, indexing by row, and :meth:`warmup`, all through ``read_rows`` and ``n``."""

    #: The reader's name in messages.
    _name = "RowReader"

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, indices) -> np.ndarray:
        """``r[i]`` is row ``i`` (1-D, or one ``numpy.void`` record of a mixed-dtype table); ``r[idx]`` and
        ``r[a:b]`` are as ``read_rows``."""
        if isinstance(indices, tuple):
            raise TypeError(f"a {self._name} indexes rows only: use r[rows] and select columns from the result")
        if isinstance(indices, (int, np.integer)) and not isinstance(indices, (bool, np.bool_)):
            i, n = operator.index(indices), self.n
            if not -n <= i < n:
                raise IndexError(f"row index {i} is out of range for {n} rows")
            return self.read_rows(np.array([i % n], dtype=np.int64))[0]
        return self.read_rows(indices)

    def warmup(self) -> None:
        """Compile (or load from the on-disk cache) every kernel that reading rows of this store uses: one
        row, small and large batches.  Processes forked afterwards (DataLoader workers) inherit them and
        compile nothing; :class:`gedenb.torch.ImageDataset` calls it in the parent."""
        from ._numba import warmup_rows

        for rows in warmup_rows(self.n, self.d):
            self.read_rows(rows)


INT64 = np.dtype(np.int64)


def row_indices(indices, n: int) -> np.ndarray:
    """Row numbers as a reader takes them, checked: contiguous int64 in ``[0, n)``.

    Parameters
    ----------
    indices : int, slice or 1-D integer array-like
        Row numbers in ``[-n, n)`` (negative ones count from the end).
    n : int
        Rows of the store.

    Raises
    ------
    TypeError
        Non-integer indices (bools, floats).
    IndexError
        An index out of range (unsigned ones never wrap around).
    ValueError
        Indices that are not 1-D.
    """
    if isinstance(indices, slice):
        return np.arange(*indices.indices(n), dtype=np.int64)
    if isinstance(indices, (bool, np.bool_)):
        raise TypeError("row indices must be integers, not bool")
    a = np.asarray(indices)
    if a.ndim == 0:
        a = a.reshape(1)
    if a.ndim != 1:
        raise ValueError(f"row indices must be 1-D, got shape {a.shape}")
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    if a.dtype == object:  # Python ints beyond the int64 range
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in a):
            raise TypeError("row indices must be integers; use .astype(np.int64)")
        for v in a:
            if not -n <= int(v) < n:
                raise IndexError(f"row index {int(v)} is out of range for {n} rows")
        a = np.array([int(v) for v in a], dtype=np.int64)
    if a.dtype.kind not in "iu":
        raise TypeError(f"row indices must be integers, got dtype {a.dtype}; use .astype(np.int64)")
    if a.dtype.kind == "u" and a.dtype.itemsize == 8 and int(a.max()) >= n:
        raise IndexError(f"row index {int(a.max())} is out of range for {n} rows")
    a = a.astype(np.int64)
    lo, hi = int(a.min()), int(a.max())
    if lo < -n or hi >= n:
        bad = lo if lo < -n else hi
        raise IndexError(f"row index {bad} is out of range for {n} rows")
    if lo < 0:
        a = np.where(a < 0, a + n, a)
    return np.ascontiguousarray(a)


@njit
def _max_base_id_kernel(records, rec_bits, id_bits, nrows):
    best = 0
    for r in range(nrows):
        v = _bits._get_bits(records, r * rec_bits, id_bits)
        if v > best:
            best = v
    return best


def max_base_id(records: np.ndarray, rec_bits: int, id_bits: int, nrows: int) -> int:
    """The largest base ID the first ``nrows`` records name (one sequential pass).

    Parameters
    ----------
    records : uint64 ndarray
        The records' bit stream.
    rec_bits : int
        Bits of one record.
    id_bits : int
        Bits of the base ID at the start of every record (> 0).
    nrows : int
        Records to scan.
    """
    return int(_max_base_id_kernel(records, rec_bits, id_bits, nrows))
