"""The ``.gede`` file of one table: its writer and its memory-mapped random-access reader.

Built on :mod:`gedenb.container` (section frames, checksums, padding, the
mapped reader's base, row numbers); :func:`gedenb.open` and
:func:`gedenb.save` (:mod:`gedenb.files`) choose this module for a table.

Layout (all integers little-endian; ``docs/FORMAT.md`` is the reference)::

    fixed header   96 bytes, ends with the CRC-32 of its first 92 bytes
    section CODC   one 16-byte entry per column (kind, width, scale, offset)
    section FLDS   only for a mixed-dtype table (format 2.0): field dtypes and names
    section BMSK   base-position mask, l_t bits, MSB first, zero padded
    section BETA   beta (clustering) positions, u32 each
    section BASE   n_b bases of l_b bits: a uint64 bit stream
    section RECS   n + m records of id_bits + l_d bits: a uint64 bit stream
    section WGHT   m weights, stored as w - 1 in ceil(log2 n) bits each
    (format 3.x: MODL, RIDX, ROWS; 3.1 adds PRED, the code transform of gedenb.entropy.predict)

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

import collections
import dataclasses
import errno
import os
import stat
import struct
import zlib
from pathlib import Path

import numpy as np

from . import bits as _bits
from . import exact_stats as _exact
from . import frames as _frames
from ._optional import MissingDependency
from .compressed import MAX_ROW_BITS, MAX_ROWS, Compressed, _check_compressed
from .container import (
    INT64,
    SECTION,
    RowReader,
    check_sealed,
    checked_bytes,
    crc,
    frozen,
    map_file,
    max_base_id,
    pad8,
    read_section,
    release,
    row_indices,
    seal,
    stream_problem,
)
from .decode import _decode_rows, cluster_stats_of, recompute_condensed_blocks, rows_as
from .encode import BIN, DEC, IEEE, INT, SUPPORTED_DTYPES, Codecs, as_float64, encode_columns
from .entropy import deviations as _deviations
from .entropy import predict as _predict
from .entropy import serial as _serial
from .errors import FormatError
from .layout import ceil_log2, make_layout
from .sizes import CODEC_ENTRY_BYTES, FIELD_ENTRY_BYTES, FIXED_HEADER_BYTES

__all__ = ["FIELDS_FORMAT_VERSION", "FORMAT_VERSION", "MAGIC", "Reader", "parse_table", "table_writer", "to_bytes"]

MAGIC = b"\x89GEDE\r\n\x1a"
#: (major, minor) written by this version for a homogeneous table; readers
#: accept any minor of a supported major.
FORMAT_VERSION = (1, 0)
#: (major, minor) written for a mixed-dtype (structured) table: the FLDS
#: section and the header dtype ``|V`` are unknown to 1.x readers, which
#: therefore refuse such a file by its major version (docs/FORMAT.md).
FIELDS_FORMAT_VERSION = (2, 0)
#: (major, minor) written for a table with entropy-coded deviations
#: (``coding="entropy"``): flag ENTROPY and sections MODL, RIDX, ROWS, which
#: 1.x and 2.x readers would misread, so they refuse the file by its major.
ENTROPY_FORMAT_VERSION = (3, 0)
#: (major, minor) written for an entropy-coded table with a code transform
#: (flag PREDICT, section PRED after ROWS; :mod:`gedenb.entropy.predict`); 3.0
#: readers refuse it by the unknown flag.
PREDICT_FORMAT_VERSION = (3, 1)
#: (major, minor) per major for a file with section FRAM (a table given as a DataFrame; flag FRAME, which
#: older readers refuse) or LERN (exact cluster statistics; an extension section older readers skip).
EXTRAS_VERSION = {1: (1, 1), 2: (2, 1), 3: (3, 2)}
SUPPORTED_MAJOR = (1, 2, 3)
#: The newest minor this reader knows, per major.
_KNOWN_MINOR = {major: minor for major, minor in EXTRAS_VERSION.values()}

_HEADER = struct.Struct("<8sHHIQQIIQII8sIIQQII")
assert _HEADER.size == FIXED_HEADER_BYTES
#: Names of the header fields, in order (``docs/FORMAT.md`` gives offsets).
HEADER_FIELDS = (
    "magic", "major", "minor", "flags", "n", "m", "d", "l_t", "n_b", "beta", "tau",
    "dtype", "n_sections", "reserved0", "total_bytes", "reserved1", "reserved2", "crc32",
)
_CODEC = np.dtype([("kind", "<u1"), ("width", "<u1"), ("scale", "<i2"), ("reserved", "<u4"), ("offset", "<u8")])
assert _CODEC.itemsize == CODEC_ENTRY_BYTES
_TAGS = (b"CODC", b"BMSK", b"BETA", b"BASE", b"RECS", b"WGHT")
_FIELDS_TAG = b"FLDS"
#: Header dtype of a mixed-dtype table (the field dtypes are in FLDS).
_STRUCT_DTYPE = b"|V"
_FLAG_CONDENSED = 1
_FLAG_CLUSTERED = 2
_FLAG_ENTROPY = 4
_FLAG_PREDICT = 8
_FLAG_FRAME = 16
#: Section of a DataFrame's schema (flag FRAME) and of the exact cluster statistics, after everything else.
_FRAME_TAG = b"FRAM"
_LEARN_TAG = b"LERN"
#: Section of the code transform (format 3.1, flag PREDICT), after ROWS.
_PREDICT_TAG = b"PRED"
#: Sections of entropy-coded deviations (format 3.x), after WGHT.
_CODED_TAGS = (b"MODL", b"RIDX", b"ROWS")
_DTYPE_NAMES = {np.dtype(t).newbyteorder("<").str.encode(): np.dtype(t) for t in SUPPORTED_DTYPES}


# --------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------
def _sections(c: Compressed) -> list:
    """``(tag, payload)`` of every section; payloads are bytes or uint64 arrays."""
    codec = np.zeros(c.d, dtype=_CODEC)
    codec["kind"] = c.codecs.kind
    codec["width"] = c.codecs.width
    codec["scale"] = c.codecs.scale
    codec["offset"] = c.codecs.offset
    mask = np.packbits(np.asarray(c.base_mask, dtype=np.uint8)).tobytes()
    beta = np.asarray(c.beta_positions, dtype="<u4").tobytes()
    if c.m:
        wbits = ceil_log2(c.n)
        weights = _bits.pack_fixed(np.asarray(c.weights, dtype=np.uint64) - np.uint64(1), wbits)
    else:
        weights = np.zeros(0, dtype=np.uint64)
    le = lambda a: np.ascontiguousarray(a, dtype="<u8")  # noqa: E731 - no copy when already so
    payloads = (codec.tobytes(), mask, beta, le(c.bases), le(c.records), le(weights))
    out = list(zip(_section_tags(c.dtype.names is not None), _with_fields(c.dtype, payloads)))
    if c.coded is not None:  # format 3.x: the entropy-coded deviations
        k = c.coded
        out += [(b"MODL", _serial.model_to_bytes(k.model, k.off_bits)),
                (b"RIDX", np.concatenate([le(k.block_off), le(k.row_off)])), (b"ROWS", k.stream)]
        if c.predict is not None:
            out.append((_PREDICT_TAG, _predict.to_bytes(c.predict)))
    if c.frame_bytes:
        out.append((_FRAME_TAG, c.frame_bytes))
    if c.learning_bytes:
        out.append((_LEARN_TAG, c.learning_bytes))
    return out


def _section_tags(structured: bool) -> tuple:
    """Section tags in file order: FLDS follows CODC in a mixed-dtype table."""
    return _TAGS[:1] + (_FIELDS_TAG,) + _TAGS[1:] if structured else _TAGS


def _with_fields(dtype: np.dtype, payloads: tuple) -> tuple:
    if dtype.names is None:
        return payloads
    return payloads[:1] + (_fields_payload(dtype),) + payloads[1:]


def _fields_payload(dtype: np.dtype) -> bytes:
    """FLDS: d dtype strings (8 bytes, NUL-padded), d name lengths (u32), the UTF-8 names."""
    names = [f.encode("utf-8") for f in dtype.names]
    dts = b"".join(dtype.fields[f][0].newbyteorder("<").str.encode().ljust(8, b"\0") for f in dtype.names)
    return dts + np.asarray([len(b) for b in names], dtype="<u4").tobytes() + b"".join(names)


def _check_writable(c: Compressed) -> None:
    """Refuse to write a container the reader would reject (hand-made or damaged)."""
    _check_compressed(c)
    kind, width, scale = (np.asarray(a, dtype=np.int64) for a in (c.codecs.kind, c.codecs.width, c.codecs.scale))
    l_t, l_b, n, m, n_b = c.row_bits, c.base_bits, c.n, c.m, c.n_bases
    problems = []
    if not (1 <= n and n + m <= MAX_ROWS and 1 <= c.d < 1 << 32 and l_t <= MAX_ROW_BITS):
        problems.append(f"shape {c.shape} with m={m}, l_t={l_t} is outside the format's limits")
    if (kind < 0).any() or (kind > IEEE).any() or (width < 0).any() or (width > 64).any() or (scale < -2**15).any() \
            or (scale >= 2**15).any():
        problems.append("codec kind, width or scale out of range")
    if np.asarray(c.base_mask).shape != (l_t,):
        problems.append("base mask does not have l_t entries")
    if not 1 <= n_b <= n + m:
        problems.append(f"n_b={n_b} not in [1, n + m]")
    rec_bits = ceil_log2(n_b) + (l_t - l_b if c.coded is None else 0)
    if np.asarray(c.bases).size != (n_b * l_b + 63) // 64:
        problems.append("bases stream has the wrong length")
    if np.asarray(c.records).size != ((n + m) * rec_bits + 63) // 64:
        problems.append("records stream has the wrong length")
    if m and (np.asarray(c.weights).min() < 1 or int(np.asarray(c.weights).sum()) != n):
        problems.append("weights must be >= 1 and sum to n")
    beta = np.asarray(c.beta_positions, dtype=np.int64)
    if beta.size and (beta.min() < 0 or beta.max() >= l_t or np.unique(beta).size != beta.size):
        problems.append("beta positions must be distinct row positions")
    names = np.dtype(c.dtype).names
    if names is not None:
        fdt = [np.dtype(c.dtype).fields[f][0] for f in names]
        if len(names) != c.d or any(not f for f in names):
            problems.append(f"{len(names)} fields for d={c.d} columns, or an empty field name")
        if any(f.newbyteorder("=") not in SUPPORTED_DTYPES for f in fdt):
            problems.append("a field of unsupported dtype")
    elif np.dtype(c.dtype).newbyteorder("=") not in SUPPORTED_DTYPES:
        problems.append(f"unsupported dtype {c.dtype}")
    if c.frame_bytes and names is None:
        problems.append("a frame schema on a table without fields")
    if c.learning_bytes and not c.beta:
        problems.append("cluster statistics without clustering")
    if problems:
        raise ValueError("cannot write this Compressed: " + "; ".join(problems))


def _header(c: Compressed, total: int) -> bytes:
    # without clustering there is nothing to recompute: the file says "condensed" (as compress does)
    flags = (_FLAG_CONDENSED if c.store_condensed or not c.beta else 0) | (_FLAG_CLUSTERED if c.beta else 0)
    structured = np.dtype(c.dtype).names is not None
    major, minor = FIELDS_FORMAT_VERSION if structured else FORMAT_VERSION
    if c.coded is not None:
        major, minor = ENTROPY_FORMAT_VERSION
        flags |= _FLAG_ENTROPY
        if getattr(c, "predict", None) is not None:
            major, minor = PREDICT_FORMAT_VERSION
            flags |= _FLAG_PREDICT
    if c.frame_bytes or c.learning_bytes:
        major, minor = EXTRAS_VERSION[major]
        flags |= _FLAG_FRAME if c.frame_bytes else 0
    dtype = _STRUCT_DTYPE if structured else np.dtype(c.dtype).newbyteorder("<").str.encode()
    nsec = len(_section_tags(structured)) + (len(_CODED_TAGS) if c.coded is not None else 0) \
        + (1 if flags & _FLAG_PREDICT else 0) + bool(c.frame_bytes) + bool(c.learning_bytes)
    fields = (
        MAGIC, major, minor, flags,
        c.n, c.m, c.d, c.row_bits, c.n_bases, c.beta, c.tau,
        dtype.ljust(8, b"\0"), nsec, 0, total, 0, 0, 0,
    )
    return seal(_HEADER.pack(*fields))


def _write(c: Compressed, write) -> int:
    """Stream the file of ``c`` through ``write(bytes-like)``; return its size."""
    _check_writable(c)
    parts = []
    total = FIXED_HEADER_BYTES
    unverified = getattr(c, "unverified", None) or {}
    for tag, payload in _sections(c):
        view = memoryview(payload).cast("B")
        pad = pad8(len(view))
        scrc = zlib.crc32(view)
        if tag in unverified and scrc != unverified[tag]:  # opened with verify=False: check before rewriting
            raise FormatError(f"{tag.decode()}: checksum mismatch: the table was opened with verify=False and "
                              "this section is damaged; not writing it into a new file")
        parts.append((SECTION.pack(tag, scrc, len(view)), view, b"\0" * pad))
        total += SECTION.size + len(view) + pad
    write(_header(c, total))
    for frame, view, pad in parts:
        write(frame)
        write(view)
        if pad:
            write(pad)
    return total


def to_bytes(c: Compressed) -> bytes:
    """The ``.gede`` file of ``c`` as bytes (deterministic).

    Parameters
    ----------
    c : Compressed
        The table, as :func:`gedenb.compress` returns it (or a reader's ``compressed``).

    Raises
    ------
    ValueError
        ``c`` is not a table the reader would accept (hand-made or damaged).
    """
    out = bytearray()
    _write(c, out.extend)
    return bytes(out)


def table_writer(c: Compressed):
    """Check that ``c`` can be written, and return ``write_to(write) -> size`` that streams its file.

    The check runs now, before :func:`gedenb.save` creates any file; ``write_to`` passes the file's bytes
    to ``write`` (bytes-like pieces, in order) and returns their total, as :func:`to_bytes` would give them.

    Parameters
    ----------
    c : Compressed
        The table.

    Raises
    ------
    ValueError
        ``c`` is not a table the reader would accept (hand-made or damaged).
    """
    _check_writable(c)
    return lambda write: _write(c, write)


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------
def _parse_fields(raw: bytes, d: int) -> np.dtype:
    """The structured dtype described by a FLDS payload (see :func:`_fields_payload`)."""
    fixed = FIELD_ENTRY_BYTES * d
    if len(raw) < fixed:
        raise FormatError(f"FLDS: {len(raw)} bytes, expected at least {fixed} for d={d} fields")
    lengths = np.frombuffer(raw, dtype="<u4", count=d, offset=8 * d).astype(np.int64)
    if int(lengths.sum()) != len(raw) - fixed:
        raise FormatError(f"FLDS: field names of {int(lengths.sum())} bytes in total, "
                          f"the section holds {len(raw) - fixed}")
    ends = fixed + np.cumsum(lengths)
    names, dtypes = [], []
    for j in range(d):
        try:
            name = raw[int(ends[j] - lengths[j]):int(ends[j])].decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"FLDS: the name of field {j} is not valid UTF-8") from None
        if not name:
            raise FormatError(f"FLDS: field {j} has an empty name")
        code = raw[8 * j:8 * j + 8]
        dt = _DTYPE_NAMES.get(code.rstrip(b"\0"))
        if dt is None:
            raise FormatError(f"FLDS: field {name!r} has unsupported dtype {code!r}")
        names.append(name)
        dtypes.append(dt)
    if len(set(names)) != d:
        dup = next(f for f in names if names.count(f) > 1)
        raise FormatError(f"FLDS: field name {dup!r} repeated")
    try:
        dtype = np.dtype(list(zip(names, dtypes)))
    except (TypeError, ValueError) as e:
        raise FormatError(f"FLDS: the fields do not form a NumPy dtype: {e}") from None
    if dtype.names != tuple(names):
        raise FormatError("FLDS: NumPy does not accept these field names as given")
    return dtype


def _check_codecs(kind, width, offset, dtype: np.dtype, where: str) -> None:
    """CODC entries of the columns of one dtype against that dtype (``where`` names them in messages)."""
    nbits = 1 if dtype == np.bool_ else 8 * dtype.itemsize
    if dtype.kind in "biu" and (kind != INT).any():
        raise FormatError(f"CODC: non-integer codec in {where}")
    if dtype.kind == "f" and (kind == INT).any():
        raise FormatError(f"CODC: integer codec in {where}")
    if dtype.itemsize < 4 and ((kind == DEC) | (kind == BIN)).any():
        raise FormatError(f"CODC: fixed-point codec in {where} (only float32/float64 use them)")
    whole = (kind == INT) | (kind == IEEE)
    if (whole & (width > nbits)).any():
        raise FormatError(f"CODC: a column is wider than the {nbits} bits of {dtype}")
    if nbits < 64 and (whole & (offset >> np.uint64(nbits) != 0)).any():
        raise FormatError(f"CODC: a column offset does not fit the {nbits} bits of {dtype}")
    if dtype == np.bool_ and (offset + (np.uint64(1) << width.astype(np.uint64)) - np.uint64(1) > 1).any():
        raise FormatError("CODC: a bool column could decode to a value other than 0 or 1")


#: The header's fields, by the names of :data:`HEADER_FIELDS`.
_Fields = collections.namedtuple("_Fields", HEADER_FIELDS)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What the header says the file holds (checked against itself and the file's length)."""

    dtype: np.dtype | None  # None for a mixed-dtype table: its fields are in FLDS
    structured: bool
    entropy: bool
    predicted: bool
    framed: bool
    #: A later minor than this reader knows: reserved fields may be used, extension sections may follow.
    newer: bool
    #: 1 where section LERN may follow the required sections.
    optional: int
    #: The required sections, in file order.
    tags: tuple


def parse_table(buf, verify: bool) -> tuple:
    """Validate the ``.gede`` file in ``buf`` and map it as a Compressed.

    Every header field is checked against the others and against the file
    length before anything is allocated from it or handed to a kernel; the
    steps follow the file: header, sections' framing, the small sections,
    the streams, then the table.

    Parameters
    ----------
    buf : bytes-like
        The whole file (bytes, an mmap, or a memoryview of a part of an image container).
    verify : bool
        Also check the CRC-32 of the streams and every record's base ID (as :func:`gedenb.open`).

    Returns
    -------
    (Compressed, (major, minor))
        The table, its arrays views of ``buf``, and the file's format version.

    Raises
    ------
    FormatError
        The file breaks a rule of ``docs/FORMAT.md``; the message names the section.
    """
    h = _read_header(buf)
    plan = _plan(h, len(buf))
    _check_counts(h)
    sections = _frame_sections(buf, h, plan, verify)
    codecs, dtype = _read_codecs(buf, sections, h, plan)
    mask, beta_pos, l_b, id_bits, rec_bits = _read_positions(buf, sections, h, plan)
    bases, records, weights = _read_streams(buf, sections, h, l_b, id_bits, rec_bits, verify)
    layout = make_layout(codecs.width, mask, h.n_b)
    coded = _read_coded(buf, sections, h, codecs, mask, bases, layout, dtype, verify) if plan.entropy else None
    pred = _predict.from_bytes(_payload(buf, sections, _PREDICT_TAG), codecs, dtype, int(h.d), int(h.n),
                               int(h.n + h.m)) if plan.predicted else None
    unverified = None if verify else {tag: sections[tag][2] for tag in (b"BASE", b"RECS", b"WGHT", b"RIDX", b"ROWS")
                                      if tag in sections}
    compressed = Compressed(
        shape=(int(h.n), int(h.d)), dtype=dtype, codecs=codecs, base_mask=mask, n_bases=int(h.n_b),
        bases=bases, records=records, weights=weights, beta_positions=beta_pos,
        store_condensed=bool(h.flags & _FLAG_CONDENSED), entropy=np.zeros(0),
        greedy_sizes=np.zeros(0, dtype=np.int64), tau=int(h.tau), layout=layout, coded=coded, predict=pred,
        unverified=unverified,
    )
    frozen(mask, weights, beta_pos, compressed.entropy, compressed.greedy_sizes)
    if plan.framed or _LEARN_TAG in sections:
        compressed = _with_extras(compressed, _payload(buf, sections, _FRAME_TAG) if plan.framed else b"",
                                  _payload(buf, sections, _LEARN_TAG) if _LEARN_TAG in sections else b"")
    return compressed, (int(h.major), int(h.minor))


def _read_header(buf) -> _Fields:
    """The fixed header, checked: long enough, the magic, a supported major version, its CRC, the file's length."""
    size = len(buf)
    if size < FIXED_HEADER_BYTES:
        raise FormatError(f"header: file has {size} bytes, a .gede file has at least {FIXED_HEADER_BYTES}")
    head = bytes(buf[:FIXED_HEADER_BYTES])
    h = _Fields._make(_HEADER.unpack(head))
    if h.magic != MAGIC:
        raise FormatError("header: not a .gede file (bad magic bytes)")
    if h.major not in SUPPORTED_MAJOR:
        raise FormatError(
            f"header: file format version {h.major}.{h.minor} is not supported; "
            f"this gedenb reads major version(s) {', '.join(map(str, SUPPORTED_MAJOR))} "
            f"(any minor), and writes {FORMAT_VERSION[0]}.{FORMAT_VERSION[1]} "
            f"({FIELDS_FORMAT_VERSION[0]}.{FIELDS_FORMAT_VERSION[1]} for mixed-dtype tables, "
            f"{ENTROPY_FORMAT_VERSION[0]}.{ENTROPY_FORMAT_VERSION[1]} for entropy-coded deviations)"
        )
    check_sealed(head)
    if h.total_bytes != size:
        raise FormatError(f"header: file should have {h.total_bytes} bytes but has {size} (truncated or extended)")
    return h


def _plan(h: _Fields, size: int) -> _Plan:
    """The dtype, flags, sections and reserved fields of the header, checked against its version."""
    major, minor, flags = h.major, h.minor, h.flags
    newer = minor > _KNOWN_MINOR[major]  # a later minor may add sections and use reserved fields
    structured = h.dtype.rstrip(b"\0") == _STRUCT_DTYPE
    dtype = _DTYPE_NAMES.get(h.dtype.rstrip(b"\0"))
    if structured and major < 2:
        raise FormatError(f"header: dtype {_STRUCT_DTYPE.decode()} (a mixed-dtype table) needs format 2.x, "
                          f"the file says {major}.{minor}")
    if dtype is None and not structured:
        raise FormatError(f"header: unsupported dtype {h.dtype!r}")
    tags = _section_tags(structured)
    entropy = bool(flags & _FLAG_ENTROPY)
    if entropy != (major == ENTROPY_FORMAT_VERSION[0]):
        raise FormatError(f"header: the ENTROPY flag is set exactly in format {ENTROPY_FORMAT_VERSION[0]}.x files")
    if entropy:
        tags = tags + _CODED_TAGS
    predicted = bool(flags & _FLAG_PREDICT)
    if predicted and (not entropy or minor < PREDICT_FORMAT_VERSION[1]):
        raise FormatError(f"header: the PREDICT flag needs format {PREDICT_FORMAT_VERSION[0]}."
                          f"{PREDICT_FORMAT_VERSION[1]} or later with entropy-coded deviations")
    if predicted:
        tags = tags + (_PREDICT_TAG,)
    extras = minor >= EXTRAS_VERSION[major][1]  # sections FRAM and LERN may follow
    framed = bool(flags & _FLAG_FRAME)
    if framed and (not extras or not structured):
        raise FormatError(f"header: the FRAME flag needs a mixed-dtype table and format "
                          f"{EXTRAS_VERSION[major][0]}.{EXTRAS_VERSION[major][1]} or later")
    if framed:
        tags = tags + (_FRAME_TAG,)
    if flags & ~(_FLAG_CONDENSED | _FLAG_CLUSTERED | _FLAG_ENTROPY | _FLAG_PREDICT | _FLAG_FRAME):
        raise FormatError(f"header: unknown flags {flags:#x}")
    optional = 1 if extras and h.beta else 0  # LERN
    nsec = h.n_sections
    if nsec < len(tags) or (nsec > len(tags) + optional and not newer) \
            or nsec > (size - FIXED_HEADER_BYTES) // SECTION.size:
        raise FormatError(f"header: {nsec} sections (expected {len(tags)})")
    if not newer and (h.reserved0 or h.reserved1 or h.reserved2):
        raise FormatError("header: reserved fields must be zero")
    return _Plan(dtype, structured, entropy, predicted, framed, newer, optional, tags)


def _check_counts(h: _Fields) -> None:
    """The header's sizes (rows, columns, bits, bases, clustering) against the format's limits and each other."""
    n, m, d, l_t, n_b, beta = h.n, h.m, h.d, h.l_t, h.n_b, h.beta
    if not 1 <= n <= MAX_ROWS or m > n or n + m > MAX_ROWS:
        raise FormatError(f"header: n={n}, m={m} outside 1 <= n, 0 <= m <= n, n + m <= {MAX_ROWS}")
    if not 1 <= d or not l_t <= min(MAX_ROW_BITS, 64 * d):
        raise FormatError(f"header: d={d}, l_t={l_t} outside 1 <= d, l_t <= min({MAX_ROW_BITS}, 64 d)")
    if h.tau < 1:
        raise FormatError(f"header: tau={h.tau} must be >= 1")
    if not 1 <= n_b <= n + m:
        raise FormatError(f"header: n_b={n_b} must lie in [1, n + m]")
    condensed_flag = bool(h.flags & _FLAG_CONDENSED)
    if bool(beta) != bool(h.flags & _FLAG_CLUSTERED) or beta > l_t:
        raise FormatError(f"header: beta={beta} does not match the clustering flag or exceeds l_t={l_t}")
    if beta == 0 and (m or not condensed_flag):
        raise FormatError("header: condensed rows or the storage-constrained flag without clustering")
    if beta and condensed_flag and not 1 <= m <= (n if beta >= 64 else min(n, 1 << beta)):
        raise FormatError(f"header: m={m} condensed rows, expected 1..min(n, 2**beta)")
    if beta and not condensed_flag and m:
        raise FormatError("header: condensed rows present but not flagged")


def _frame_sections(buf, h: _Fields, plan: _Plan, verify: bool) -> dict:
    """``tag -> (start, nbytes, crc)`` of every section: fixed order, lengths within the file, zero padding,
    nothing after the last; extension sections (a newer minor) are checked and skipped."""
    size = len(buf)
    sections = {}
    pos = FIXED_HEADER_BYTES
    tags = plan.tags + (None,) * (h.n_sections - len(plan.tags))
    for tag in tags:
        got, scrc, start, nbytes = read_section(buf, pos, tag, tag.decode() if tag else "extension section")
        if tag is None and got == _LEARN_TAG and plan.optional and _LEARN_TAG not in sections \
                and len(sections) == len(plan.tags):
            sections[got] = (start, nbytes, scrc)  # the optional LERN, right after the required sections
        elif tag is None:
            if got in _TAGS or got in (_FIELDS_TAG, _PREDICT_TAG, _FRAME_TAG, _LEARN_TAG) or got in _CODED_TAGS:
                raise FormatError(f"{got.decode()}: section repeated or misplaced")
            if not plan.newer:
                raise FormatError(f"{got!r}: unknown section in a format {h.major}.{h.minor} file")
            if verify and crc(buf, start, nbytes) != scrc:
                raise FormatError(f"{got!r}: checksum mismatch (the file is corrupt)")
        else:
            sections[tag] = (start, nbytes, scrc)
        pos = start + nbytes + pad8(nbytes)
    if pos != size:
        raise FormatError(f"{tags[-1].decode() if tags[-1] else 'extension section'}: "
                          f"{size - pos} unexpected bytes after the last section")
    return sections


def _expect(sections: dict, tag: bytes, nbytes: int) -> None:
    """A section's length against the one its header fields give."""
    if sections[tag][1] != nbytes:
        raise FormatError(f"{tag.decode()}: {sections[tag][1]} bytes, expected {nbytes}")


def _payload(buf, sections: dict, tag: bytes) -> bytes:
    """A (small) section's payload, copied and checked against its CRC-32 whatever ``verify`` says."""
    start, nbytes, scrc = sections[tag]
    return checked_bytes(buf, start, nbytes, scrc, tag.decode())


def _read_codecs(buf, sections: dict, h: _Fields, plan: _Plan) -> tuple:
    """``(codecs, dtype)`` from CODC (and FLDS for a mixed-dtype table), every codec checked against its column's
    dtype and the header's ``l_t``."""
    d, l_t = h.d, h.l_t
    _expect(sections, b"CODC", d * CODEC_ENTRY_BYTES)
    codec = np.frombuffer(_payload(buf, sections, b"CODC"), dtype=_CODEC)
    kind = codec["kind"].astype(np.uint8)
    width = codec["width"].astype(np.int64)
    scale = codec["scale"].astype(np.int64)
    offset = codec["offset"].astype(np.uint64)
    if (kind > IEEE).any():
        raise FormatError(f"CODC: unknown codec kind {int(kind.max())}")
    if (width > 64).any():
        raise FormatError(f"CODC: column width {int(width.max())} > 64 bits")
    if int(width.sum()) != l_t:
        raise FormatError(f"CODC: column widths sum to {int(width.sum())}, the header says l_t={l_t}")
    if (codec["reserved"] != 0).any() or ((kind != DEC) & (kind != BIN) & (scale != 0)).any():
        raise FormatError("CODC: reserved fields must be zero")
    dtype = plan.dtype
    if plan.structured:  # FLDS: the fields' names and dtypes; CODC is checked against each field's dtype
        dtype = _parse_fields(_payload(buf, sections, _FIELDS_TAG), d)
        groups = [(dt, np.flatnonzero([dtype.fields[f][0] == dt for f in dtype.names]),
                   f"the {dt} field(s) " + ", ".join(repr(f) for f in dtype.names if dtype.fields[f][0] == dt))
                  for dt in dict.fromkeys(dtype.fields[f][0] for f in dtype.names)]
    else:
        groups = [(dtype, slice(None), f"a {dtype} table")]
    for dt, cols, where in groups:
        _check_codecs(kind[cols], width[cols], offset[cols], dt, where)
    if ((kind == DEC) & ((scale < 0) | (scale > 9))).any() or ((kind == BIN) & ((scale < 0) | (scale > 1074))).any():
        raise FormatError("CODC: fixed-point scale out of range (decimal 0..9, binary 0..1074)")
    return Codecs(*frozen(kind, width, offset, scale)), dtype


def _read_positions(buf, sections: dict, h: _Fields, plan: _Plan) -> tuple:
    """``(mask, beta positions, l_b, id_bits, rec_bits)`` from BMSK (the base positions) and BETA (the
    clustering positions): base bits, bits of a base ID and of a record."""
    l_t, n_b = h.l_t, h.n_b
    _expect(sections, b"BMSK", (l_t + 7) // 8)
    mask = np.unpackbits(np.frombuffer(_payload(buf, sections, b"BMSK"), dtype=np.uint8))
    if mask[l_t:].any():
        raise FormatError("BMSK: padding bits must be zero")
    mask = mask[:l_t].astype(bool)
    l_b = int(mask.sum())
    if l_b < 64 and n_b > 1 << l_b:
        raise FormatError(f"BMSK: {l_b} base bits cannot give n_b={n_b} distinct bases")
    id_bits = ceil_log2(n_b)
    rec_bits = id_bits + (0 if plan.entropy else l_t - l_b)  # entropy-coded: RECS holds only the base IDs
    _expect(sections, b"BETA", 4 * h.beta)
    beta_pos = np.frombuffer(_payload(buf, sections, b"BETA"), dtype="<u4").astype(np.int64)
    if beta_pos.size and (beta_pos.max() >= l_t or np.unique(beta_pos).size != beta_pos.size):
        raise FormatError(f"BETA: positions out of range [0, {l_t}) or repeated")
    if h.beta and rec_bits == 0 and l_b == l_t:
        raise FormatError("BETA: clustering positions in a table whose rows are all equal")
    return mask, beta_pos, l_b, id_bits, rec_bits


def _read_streams(buf, sections: dict, h: _Fields, l_b: int, id_bits: int, rec_bits: int, verify: bool) -> tuple:
    """``(bases, records, weights)``: BASE, RECS and WGHT mapped after their sizes are checked, then their
    checksums (``verify``), padding bits, the weights and (``verify``) every record's base ID."""
    n, m, n_b = h.n, h.m, h.n_b
    _expect(sections, b"BASE", 8 * ((n_b * l_b + 63) // 64))
    _expect(sections, b"RECS", 8 * (((n + m) * rec_bits + 63) // 64))
    wbits = ceil_log2(n)
    _expect(sections, b"WGHT", 8 * ((m * wbits + 63) // 64))
    bases = _words(buf, sections, b"BASE", n_b * l_b, verify)
    records = _words(buf, sections, b"RECS", (n + m) * rec_bits, verify)
    wwords = _words(buf, sections, b"WGHT", m * wbits, verify)
    weights = np.zeros(0, dtype=np.int64)
    if m:
        weights = _bits.unpack_fixed(np.ascontiguousarray(wwords, dtype=np.uint64), wbits, m).astype(np.int64) + 1
        # every weight is in [1, 2**wbits]; the float sum rules out int64 overflow
        if float(weights.sum(dtype=np.float64)) > 2.0 * n or int(weights.sum()) != n:
            raise FormatError(f"WGHT: weights sum to {int(weights.sum(dtype=np.float64))}, expected n={n}")
    if verify and id_bits:
        bad = max_base_id(records, rec_bits, id_bits, n + m)
        if bad >= n_b:
            raise FormatError(f"RECS: a record names base ID {bad} >= n_b={n_b}")
    return bases, records, weights


def _words(buf, sections: dict, tag: bytes, used_bits: int, verify: bool) -> np.ndarray:
    """A bit-stream section as uint64 words (a view of ``buf``), its checksum and padding bits checked."""
    start, nbytes, scrc = sections[tag]
    a = np.frombuffer(buf, dtype="<u8", count=nbytes // 8, offset=start)
    problem = stream_problem(a, scrc, used_bits, tag.decode(), verify)
    if problem:
        raise FormatError(problem)
    return a


def _read_coded(buf, sections: dict, h: _Fields, codecs: Codecs, mask: np.ndarray, bases: np.ndarray, layout,
                dtype: np.dtype, verify: bool):
    """The entropy-coded deviations (format 3.x): MODL, and RIDX and ROWS as views of ``buf``."""
    ridx_start, ridx_bytes, ridx_crc = sections[b"RIDX"]
    rows_start, rows_bytes, rows_crc = sections[b"ROWS"]
    if verify and (crc(buf, ridx_start, ridx_bytes) != ridx_crc or crc(buf, rows_start, rows_bytes) != rows_crc):
        raise FormatError("RIDX/ROWS: checksum mismatch (the file is corrupt)")
    if ridx_bytes % 8:
        raise FormatError(f"RIDX: {ridx_bytes} bytes, not whole 64-bit words")
    return _deviations.coded_from_file(
        _payload(buf, sections, b"MODL"), np.frombuffer(buf, dtype="<u8", count=ridx_bytes // 8, offset=ridx_start),
        np.frombuffer(buf, dtype=np.uint8, count=rows_bytes, offset=rows_start), codecs, mask, int(h.d),
        int(h.n + h.m), bases, layout, int(h.n_b), dtype, verify)


def _with_extras(c: Compressed, frame_raw: bytes, learn_raw: bytes) -> Compressed:
    """``c`` with its FRAM and LERN sections parsed and checked against the table."""
    frame = None
    if frame_raw:
        try:
            frame = _frames.FrameSchema.from_bytes(frame_raw, c.dtype)
        except MissingDependency:  # NumPy reads need no pyarrow: keep the bytes (checked in outline) for later
            _frames._split(frame_raw)
            frame = frame_raw
    learning = None
    if learn_raw:
        meta, _ = _exact.stats_head(learn_raw)
        if meta["targets"] and max(meta["targets"]) >= c.d:
            raise FormatError("LERN: a target column out of range")
        if meta["stored"] != bool(c.m):
            raise FormatError("LERN: statistics stored exactly when the condensed rows are")
        grid = None
        if c.m:
            rows = _decode_rows(c, np.arange(c.n, c.n + c.m, dtype=np.int64))
            grid = encode_columns(rows, c.codecs, check=False)
        learning = _exact.stats_from_bytes(learn_raw, c.codecs, c.dtype, np.asarray(c.weights), grid, c.d)
        if learning is None:
            d = c.d
            learning = _exact.CondensedStats(np.zeros((0, d)), np.zeros((0, d), np.int64),
                                             np.zeros((0, d), np.int64), meta["targets"], meta["task"])
    return dataclasses.replace(c, frame=frame, frame_bytes=frame_raw, learning=learning, learning_bytes=learn_raw)


class Reader(RowReader):
    """Random access to a ``.gede`` file through a read-only memory map.

    Create with :func:`gedenb.open`.  Only the header and the small sections
    are parsed at open; rows are decoded on demand by :meth:`read_rows`,
    touching only their own records and bases.  Safe to share between
    threads; after ``fork`` each process keeps its own mapping; pickling
    (``spawn`` workers) reopens the file by path.

    The file must not be modified in place while it is open (truncating a
    mapped file makes reads fault); :func:`gedenb.save` never does that, it
    replaces the file by a rename and open readers keep the old version.

    Attributes
    ----------
    shape, dtype, n, d, m, n_bases, codecs, beta_positions
        As in :class:`gedenb.Compressed`.
    compressed : Compressed
        A view of the file as a result container (arrays map the file), so
        ``gedenb.decompress``, ``gedenb.eq1_bits`` and friends accept it.
    nbytes : int
        Size of the file on disk.
    version : (int, int)
        Format version of the file.
    """

    _name = "Reader"

    def __init__(self, path, verify: bool = True):
        self.path = Path(os.fspath(path))
        self._verify = bool(verify)
        st = os.stat(self.path)  # FileNotFoundError, PermissionError
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory, not a .gede file", str(self.path))
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device could block or never end
            raise FormatError(f"header: {self.path} is not a regular file")
        self._mm = map_file(self.path, FIXED_HEADER_BYTES, f"a .gede file has at least {FIXED_HEADER_BYTES}")
        error = None
        try:
            self.compressed, self.version = parse_table(self._mm, self._verify)
        except FormatError as e:
            error = FormatError(f"{e} [{self.path}]")
        except BaseException:
            release(self._mm)
            raise
        if error is not None:  # raised outside the handler: no traceback keeps views of the map alive
            release(self._mm)
            raise error
        self.nbytes = len(self._mm)
        self._factor = self.compressed.codecs.factor  # writable, as decompress passes it: one compiled kernel
        c = self.compressed
        # plain (untransformed) image stores read 1-D int64 indices through the image decoder directly
        self._lean = None
        if c.coded is not None and c.coded.ip.size > 0 and c.dtype.names is None \
                and getattr(c, "predict", None) is None:
            self._lean = _deviations.image_row_reader(c.coded, c.records, c.dtype, c.n)

    # --- public surface -------------------------------------------------------
    def _c(self) -> Compressed:
        try:
            return self.__dict__["compressed"]
        except KeyError:
            raise ValueError(f"I/O operation on a closed gedenb.Reader ({self.path})") from None

    @property
    def closed(self) -> bool:
        return "compressed" not in self.__dict__

    @property
    def shape(self) -> tuple:
        return self._c().shape

    @property
    def dtype(self) -> np.dtype:
        return self._c().dtype

    @property
    def n(self) -> int:
        return self._c().n

    @property
    def d(self) -> int:
        return self._c().d

    @property
    def m(self) -> int:
        return self._c().m

    @property
    def n_bases(self) -> int:
        return self._c().n_bases

    @property
    def codecs(self) -> Codecs:
        return self._c().codecs

    @property
    def beta_positions(self) -> np.ndarray:
        return self._c().beta_positions

    def read_rows(self, indices, as_frame=None):
        """Decode only the given rows.

        Parameters
        ----------
        indices : int, slice or 1-D integer array-like
            Row numbers in ``[-n, n)`` (negative counts from the end), in any
            order, repeats allowed.
        as_frame : None, True or {"pandas", "polars", "arrow"}
            As :func:`gedenb.decompress`: None gives NumPy; True the kind of
            frame the table was given as (a pandas RangeIndex keeps the rows'
            labels); or name one.

        Returns
        -------
        (k, d) ndarray of the table's dtype, rows in the order asked for;
        for a mixed-dtype table a (k,) structured array (one record per row);
        or a frame (``as_frame``).

        Raises
        ------
        TypeError
            Non-integer indices (bools, floats).
        IndexError
            An index out of range.
        ValueError
            Indices that are not 1-D, or the reader is closed.
        FormatError
            A requested record is corrupt (only possible when the file was
            opened with ``verify=False``).
        """
        if as_frame is not None:
            rows = row_indices(indices, self._c().n)
            return rows_as(self._c(), self.read_rows(rows), rows, as_frame)
        lean = self._lean  # None once closed
        if lean is not None and type(indices) is np.ndarray and indices.dtype is INT64 and indices.ndim == 1 \
                and (flags := indices.flags).c_contiguous and flags.aligned:
            # the image decoder checks every index in its kernel; the full validation below only runs to
            # raise the error it gives for a bad index (IndexError), else the row is corrupt
            try:
                return lean(indices)
            except FormatError as e:
                row_indices(indices, self.n)
                raise FormatError(f"RECS: {e} [{self.path}]") from None
        return self._read_block(row_indices(indices, self._c().n))

    def condensed(self, exact: bool = True):
        """Condensed samples and weights, as :func:`gedenb.condensed`.

        The exact means from section LERN when the file has it (and
        ``exact``); else the stored samples, decoded from rows
        ``n .. n + m - 1``; in the storage-constrained mode they are
        recomputed from all rows.

        Parameters
        ----------
        exact : bool, default True
            Use the exact cluster statistics of section LERN where the file
            has them; False ignores them (the samples as described above).

        Returns
        -------
        samples : (m, d) float64
        weights : (m,) int64

        Raises
        ------
        ValueError
            The table was compressed without clustering, or the reader is closed.
        """
        c = self._c()
        if c.beta == 0:
            raise ValueError("this file was compressed without clustering (beta=None): no condensed samples")
        read = self._read_block  # storage-constrained: rows decoded block by block (bounded memory)
        if exact and c.learning is not None:
            stats, weights = cluster_stats_of(c, read)
            return stats.means, np.array(weights)
        # a sample may be a signalling NaN (exact data of a float column): widening it is not an error
        with np.errstate(invalid="ignore"):
            if c.store_condensed:
                vals = self._read_block(np.arange(c.n, c.n + c.m, dtype=np.int64))
                return as_float64(vals), np.array(c.weights)
            return recompute_condensed_blocks(c, read)

    def _read_block(self, rows: np.ndarray) -> np.ndarray:
        """Rows ``rows`` (checked int64), a corrupt record reported as a FormatError of RECS naming the file."""
        try:
            return _decode_rows(self._c(), rows, self._factor)
        except FormatError as e:
            raise FormatError(f"RECS: {e} [{self.path}]") from None

    def close(self) -> None:
        """Drop this reader's references to the map; it closes once no array views remain."""
        self._lean = None  # it holds views of the map; first, as read_rows takes it to mean "open"
        self.__dict__.pop("compressed", None)
        release(self._mm)  # arrays handed out still view the map: it closes with them

    def __repr__(self) -> str:
        if self.closed:
            return f"<gedenb.Reader {self.path} (closed)>"
        return (f"<gedenb.Reader {self.path}: shape={self.shape}, dtype={self.dtype}, n_b={self.n_bases}, "
                f"m={self.m}, format {self.version[0]}.{self.version[1]}>")
