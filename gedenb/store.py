"""The ``.gede`` file: atomic writer and memory-mapped random-access reader.

Layout (all integers little-endian; see ``docs/FORMAT.md``)::

    fixed header   96 bytes, ends with the CRC-32 of its first 92 bytes
    section CODC   one 16-byte entry per column (kind, width, scale, offset)
    section BMSK   base-position mask, l_t bits, MSB first, zero padded
    section BETA   beta (clustering) positions, u32 each
    section BASE   n_b bases of l_b bits: a uint64 bit stream
    section RECS   n + m records of id_bits + l_d bits: a uint64 bit stream
    section WGHT   m weights, stored as w - 1 in ceil(log2 n) bits each

Each section is ``tag (4 bytes) | crc32 (u32) | nbytes (u64) | payload``,
zero-padded to a multiple of 8 bytes so the bit streams can be mapped as
``uint64`` without copying.  Row ``r`` is found by arithmetic
(``r * (id_bits + l_d)`` bits into RECS) and decoded without reading any
other row.

Everything a reader does with a header field is checked first: a malformed
file raises :class:`~gedenb.errors.FormatError` naming the section, never a
crash, a hang, a huge allocation or wrong rows.
"""

from __future__ import annotations

import mmap
import os
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np

from . import bits as _bits
from .encode import BIN, DEC, IEEE, INT, SUPPORTED_DTYPES, Codecs
from .entrogede import (
    MAX_ROW_BITS,
    MAX_ROWS,
    Compressed,
    _check_compressed,
    recompute_condensed,
)
from .errors import FormatError
from .layout import ceil_log2, decode_rows, make_layout
from .sizes import CODEC_ENTRY_BYTES, FIXED_HEADER_BYTES

__all__ = ["FORMAT_VERSION", "MAGIC", "Reader", "open", "save"]

MAGIC = b"\x89GEDE\r\n\x1a"
#: (major, minor) written by this version; readers accept any minor of a
#: supported major.
FORMAT_VERSION = (1, 0)
SUPPORTED_MAJOR = (1,)

_HEADER = struct.Struct("<8sHHIQQIIQII8sIIQQII")
assert _HEADER.size == FIXED_HEADER_BYTES
_SECTION = struct.Struct("<4sIQ")
_CODEC = np.dtype([("kind", "<u1"), ("width", "<u1"), ("scale", "<i2"), ("reserved", "<u4"), ("offset", "<u8")])
assert _CODEC.itemsize == CODEC_ENTRY_BYTES
_TAGS = (b"CODC", b"BMSK", b"BETA", b"BASE", b"RECS", b"WGHT")
_FLAG_CONDENSED = 1
_FLAG_CLUSTERED = 2
_DTYPE_NAMES = {np.dtype(t).str.encode(): np.dtype(t) for t in SUPPORTED_DTYPES}


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------
def _sections(c: Compressed) -> list[tuple[bytes, bytes]]:
    codec = np.zeros(c.d, dtype=_CODEC)
    codec["kind"] = c.codecs.kind
    codec["width"] = c.codecs.width
    codec["scale"] = c.codecs.scale
    codec["offset"] = c.codecs.offset
    mask = np.packbits(c.base_mask.astype(np.uint8)).tobytes()
    beta = np.asarray(c.beta_positions, dtype="<u4").tobytes()
    if c.m:
        wbits = ceil_log2(c.n)
        weights = _bits.pack_fixed(np.asarray(c.weights, dtype=np.uint64) - np.uint64(1), wbits)
    else:
        weights = np.zeros(0, dtype=np.uint64)
    le = lambda a: np.ascontiguousarray(a, dtype="<u8").tobytes()  # noqa: E731
    payloads = (codec.tobytes(), mask, beta, le(c.bases), le(c.records), le(weights))
    return list(zip(_TAGS, payloads))


def _header(c: Compressed, total: int) -> bytes:
    flags = (_FLAG_CONDENSED if c.store_condensed else 0) | (_FLAG_CLUSTERED if c.beta else 0)
    fields = (
        MAGIC, FORMAT_VERSION[0], FORMAT_VERSION[1], flags,
        c.n, c.m, c.d, c.row_bits, c.n_bases, c.beta, c.tau,
        c.dtype.str.encode().ljust(8, b"\0"), len(_TAGS), 0, total, 0, 0, 0,
    )
    raw = _HEADER.pack(*fields)
    return raw[:-4] + struct.pack("<I", zlib.crc32(raw[:-4]))


def to_bytes(c: Compressed) -> bytes:
    """The ``.gede`` file of ``c`` as bytes (deterministic)."""
    _check_compressed(c)
    body = bytearray()
    for tag, payload in _sections(c):
        body += _SECTION.pack(tag, zlib.crc32(payload), len(payload)) + payload
        body += b"\0" * (-len(payload) % 8)
    total = FIXED_HEADER_BYTES + len(body)
    return _header(c, total) + bytes(body)


def save(c: Compressed, path) -> int:
    """Write ``c`` to ``path`` atomically; return the bytes written.

    The file is written to a temporary file in the same folder, flushed and
    fsync'ed, then renamed over ``path``: an interrupted save leaves any
    previous file at ``path`` intact and no partial file behind.  The same
    result always gives the same bytes.
    """
    data = to_bytes(c)
    path = Path(os.fspath(path))
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"folder {folder} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable where the platform allows it
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return len(data)
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
    return len(data)


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------
class Reader:
    """Random access to a ``.gede`` file through a read-only memory map.

    Create with :func:`gedenb.open`.  Only the header and the small sections
    are parsed at open; rows are decoded on demand by :meth:`read_rows`,
    touching only their own records and bases.  Safe to share between
    threads; after ``fork`` each process keeps its own mapping.

    Attributes
    ----------
    shape, dtype, n, d, m, n_bases, codecs, beta_positions
        As in :class:`gedenb.Compressed`.
    compressed : Compressed
        A view of the file as a result container (arrays map the file), so
        ``gedenb.decompress``, ``gedenb.eq1_bits`` and friends accept it.
    nbytes : int
        Size of the file on disk.
    """

    def __init__(self, path, verify: bool = True):
        self.path = Path(os.fspath(path))
        with self.path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < FIXED_HEADER_BYTES:
                raise FormatError(f"header: file has {size} bytes, a .gede file has at least {FIXED_HEADER_BYTES}")
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._parse(size, verify)
        except BaseException:
            self._mm.close()
            raise

    # --- parsing --------------------------------------------------------------
    def _parse(self, size: int, verify: bool) -> None:
        mm = self._mm
        head = bytes(mm[:FIXED_HEADER_BYTES])
        (magic, major, minor, flags, n, m, d, l_t, n_b, beta, tau, dt, nsec, _r0, total, _r1, _r2,
         crc) = _HEADER.unpack(head)
        if magic != MAGIC:
            raise FormatError("header: not a .gede file (bad magic bytes)")
        if major not in SUPPORTED_MAJOR:
            raise FormatError(
                f"header: file format version {major}.{minor} is not supported; "
                f"this gedenb reads major version(s) {', '.join(map(str, SUPPORTED_MAJOR))}"
            )
        if zlib.crc32(head[:-4]) != crc:
            raise FormatError("header: checksum mismatch (the file is corrupt)")
        if total != size:
            raise FormatError(f"header: file should have {total} bytes but has {size} (truncated or extended)")
        dtype = _DTYPE_NAMES.get(dt.rstrip(b"\0"))
        if dtype is None:
            raise FormatError(f"header: unsupported dtype {dt!r}")
        if nsec != len(_TAGS) or flags & ~(_FLAG_CONDENSED | _FLAG_CLUSTERED):
            raise FormatError("header: unknown section count or flags")
        if not (1 <= n and n + m <= MAX_ROWS and 1 <= d and l_t <= MAX_ROW_BITS and tau >= 1):
            raise FormatError(f"header: shape n={n}, m={m}, d={d}, l_t={l_t} outside the supported limits")
        if not 1 <= n_b <= n + m:
            raise FormatError(f"header: n_b={n_b} must lie in [1, n + m]")
        if m and not flags & _FLAG_CONDENSED:
            raise FormatError("header: condensed rows present but not flagged")
        if bool(beta) != bool(flags & _FLAG_CLUSTERED) or beta > l_t:
            raise FormatError("header: beta does not match the clustering flag")

        sections = {}
        pos = FIXED_HEADER_BYTES
        for tag in _TAGS:
            if pos + _SECTION.size > size:
                raise FormatError(f"{tag.decode()}: section header beyond the end of the file")
            got, scrc, nbytes = _SECTION.unpack(bytes(mm[pos:pos + _SECTION.size]))
            if got != tag:
                raise FormatError(f"{tag.decode()}: expected this section at byte {pos}, found {got!r}")
            start = pos + _SECTION.size
            if nbytes > size - start:
                raise FormatError(f"{tag.decode()}: section of {nbytes} bytes runs past the end of the file")
            sections[tag] = (start, nbytes, scrc)
            pos = start + nbytes + (-nbytes % 8)
        if pos != size:
            raise FormatError(f"WGHT: {size - pos} unexpected bytes after the last section")

        def expect(tag, nbytes):
            if sections[tag][1] != nbytes:
                raise FormatError(f"{tag.decode()}: {sections[tag][1]} bytes, expected {nbytes}")

        expect(b"CODC", d * CODEC_ENTRY_BYTES)
        expect(b"BMSK", (l_t + 7) // 8)
        expect(b"BETA", 4 * beta)
        small = {t: bytes(mm[s:s + nb]) for t, (s, nb, _) in sections.items() if t in (b"CODC", b"BMSK", b"BETA")}
        for t, payload in small.items():
            if zlib.crc32(payload) != sections[t][2]:
                raise FormatError(f"{t.decode()}: checksum mismatch (the file is corrupt)")

        codec = np.frombuffer(small[b"CODC"], dtype=_CODEC)
        kind = codec["kind"].astype(np.uint8)
        width = codec["width"].astype(np.int64)
        scale = codec["scale"].astype(np.int64)
        if (kind > IEEE).any() or (width > 64).any() or int(width.sum()) != l_t:
            raise FormatError("CODC: invalid codec kind or width, or widths do not sum to l_t")
        if dtype.kind in "biu" and (kind != INT).any():
            raise FormatError("CODC: non-integer codec on an integer table")
        if dtype.kind == "f" and (kind == INT).any():
            raise FormatError("CODC: integer codec on a float table")
        if ((kind == DEC) & ((scale < 0) | (scale > 9))).any() or ((kind == BIN) & ((scale < 0) | (scale > 1074))).any():
            raise FormatError("CODC: fixed-point scale out of range")
        if ((kind != DEC) & (kind != BIN) & (scale != 0)).any() or (codec["reserved"] != 0).any():
            raise FormatError("CODC: reserved fields must be zero")
        codecs = Codecs(kind, width, codec["offset"].astype(np.uint64), scale)

        mask = np.unpackbits(np.frombuffer(small[b"BMSK"], dtype=np.uint8))
        if mask[l_t:].any():
            raise FormatError("BMSK: padding bits must be zero")
        mask = mask[:l_t].astype(bool)
        l_b = int(mask.sum())
        beta_pos = np.frombuffer(small[b"BETA"], dtype="<u4").astype(np.int64)
        if beta_pos.size and (beta_pos.max() >= l_t or np.unique(beta_pos).size != beta_pos.size):
            raise FormatError("BETA: positions out of range or repeated")

        id_bits = ceil_log2(n_b)
        rec_bits = id_bits + l_t - l_b
        expect(b"BASE", 8 * ((n_b * l_b + 63) // 64))
        expect(b"RECS", 8 * (((n + m) * rec_bits + 63) // 64))
        wbits = ceil_log2(n)
        expect(b"WGHT", 8 * ((m * wbits + 63) // 64))

        def words(tag):
            start, nbytes, scrc = sections[tag]
            a = np.frombuffer(mm, dtype="<u8", count=nbytes // 8, offset=start)
            if verify and zlib.crc32(mm[start:start + nbytes]) != scrc:
                raise FormatError(f"{tag.decode()}: checksum mismatch (the file is corrupt)")
            return a

        bases, records, wwords = words(b"BASE"), words(b"RECS"), words(b"WGHT")
        weights = np.zeros(0, dtype=np.int64)
        if m:
            weights = _bits.unpack_fixed(np.ascontiguousarray(wwords, dtype=np.uint64), wbits, m).astype(np.int64) + 1
            if int(weights.sum()) != n:
                raise FormatError(f"WGHT: weights sum to {int(weights.sum())}, expected n={n}")
        if verify and id_bits:
            bad = _max_base_id(records, rec_bits, id_bits, n + m)
            if bad >= n_b:
                raise FormatError(f"RECS: a record names base ID {bad} >= n_b={n_b}")

        layout = make_layout(width, mask, n_b)
        self.compressed = Compressed(
            shape=(int(n), int(d)), dtype=dtype, codecs=codecs, base_mask=mask, n_bases=int(n_b),
            bases=bases, records=records, weights=weights, beta_positions=beta_pos,
            store_condensed=bool(flags & _FLAG_CONDENSED), entropy=np.zeros(0),
            greedy_sizes=np.zeros(0, dtype=np.int64), tau=int(tau), layout=layout,
        )
        self.version = (major, minor)
        self.nbytes = size
        self._factor = codecs.factor

    # --- public surface -------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.compressed.shape

    @property
    def dtype(self) -> np.dtype:
        return self.compressed.dtype

    @property
    def n(self) -> int:
        return self.compressed.n

    @property
    def d(self) -> int:
        return self.compressed.d

    @property
    def m(self) -> int:
        return self.compressed.m

    @property
    def n_bases(self) -> int:
        return self.compressed.n_bases

    @property
    def codecs(self) -> Codecs:
        return self.compressed.codecs

    @property
    def beta_positions(self) -> np.ndarray:
        return self.compressed.beta_positions

    def __len__(self) -> int:
        return self.n

    def read_rows(self, indices) -> np.ndarray:
        """Decode only the given rows.

        Parameters
        ----------
        indices : int, slice or 1-D integer array-like
            Row numbers in ``[-n, n)`` (negative counts from the end), in any
            order, repeats allowed.

        Returns
        -------
        (k, d) ndarray of the table's dtype, rows in the order asked for.

        Raises
        ------
        TypeError
            Non-integer indices (bools, floats).
        IndexError
            An index out of range.
        """
        rows = _row_indices(indices, self.n)
        c = self.compressed
        return decode_rows(c.records, c.bases, c.layout, c.codecs, rows, c.dtype, c.n_bases, self._factor)

    def __getitem__(self, indices) -> np.ndarray:
        if isinstance(indices, (int, np.integer)):
            return self.read_rows(np.array([indices]))[0]
        return self.read_rows(indices)

    def condensed(self):
        """Condensed samples and weights, as :func:`gedenb.condensed`."""
        c = self.compressed
        if c.beta == 0:
            raise ValueError("this file was compressed without clustering (beta=None): no condensed samples")
        if c.store_condensed:
            rows = np.arange(c.n, c.n + c.m, dtype=np.int64)
            vals = decode_rows(c.records, c.bases, c.layout, c.codecs, rows, c.dtype, c.n_bases, self._factor)
            return vals.astype(np.float64), c.weights.copy()
        return recompute_condensed(self.read_rows(slice(None)), c.codecs, c.beta_positions)

    def close(self) -> None:
        """Drop this reader's references to the map; it closes once no array views remain."""
        self.__dict__.pop("compressed", None)
        try:
            self._mm.close()
        except BufferError:  # arrays handed out still view the map; it closes with them
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self) -> str:
        if "compressed" not in self.__dict__:
            return f"<gedenb.Reader {self.path} (closed)>"
        return f"<gedenb.Reader {self.path}: shape={self.shape}, dtype={self.dtype}, n_b={self.n_bases}, m={self.m}>"


def _row_indices(indices, n: int) -> np.ndarray:
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


from ._numba import njit  # noqa: E402


@njit
def _max_base_id_kernel(records, rec_bits, id_bits, nrows):
    best = 0
    for r in range(nrows):
        v = _bits._get_bits(records, r * rec_bits, id_bits)
        if v > best:
            best = v
    return best


def _max_base_id(records, rec_bits, id_bits, nrows) -> int:
    return int(_max_base_id_kernel(records, rec_bits, id_bits, nrows))


def open(path, verify: bool = True) -> Reader:  # noqa: A001 - mirrors the builtin on purpose
    """Open a ``.gede`` file for random access.

    Parameters
    ----------
    path : str or os.PathLike
    verify : bool, default True
        Check every section's CRC-32 and every record's base ID at open
        (one sequential pass over the file).  ``False`` checks only the
        header and small sections; corrupt rows are still never returned
        silently as long as their base ID is out of range, but flipped
        deviation bits would go unnoticed.

    Raises
    ------
    FormatError
        The file is not a valid ``.gede`` file; the message names the section.
    FileNotFoundError
        No such file.
    """
    return Reader(path, verify=verify)
