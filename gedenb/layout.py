"""The GeDe record layout: bases table and fixed-width per-row records.

Given the base positions chosen by Algorithm 1, every row is split into

* its *base*: the row's bits at the base positions (``l_b`` bits, ascending
  position order), deduplicated into a table of ``n_b`` bases;
* its *record*: the base ID (``ceil(log2 n_b)`` bits) followed by the
  *deviation*, the row's bits at the other positions (``l_d`` bits).

Records have a fixed width, so row ``r`` starts at bit ``r * (id_bits + l_d)``
and decodes without touching any other row.  Decoding scatters the row's
contiguous runs of base and deviation bits back into a row buffer, reads each
column's code from it and maps it back through its codec
(:mod:`gedenb.encode`), straight into the typed output.  :func:`piece_plan`
describes the same assembly per column, for research code and tests.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._numba import PARALLEL_MIN_VALUES, call_serial, njit, pnjit, prange
from .bits import _emit, _flush, _get_bits
from .encode import Codecs, _store_value, output_views
from .errors import FormatError

__all__ = ["Layout", "PiecePlan", "ceil_log2", "decode_rows", "gather_records", "make_layout", "piece_plan"]


class Layout(NamedTuple):
    """Where every bit of a row goes (derived from widths and the base mask).

    Attributes
    ----------
    base_positions, dev_positions : int64
        Ascending bit positions of the base and of the deviation.
    id_bits : int
        Bits of a base ID, ``ceil(log2 n_b)``.
    base_runs, dev_runs : (k, 2) int64
        ``(first position, length <= 64)`` of the contiguous runs of base and
        deviation positions, used to gather bits from packed rows and to
        scatter them back when decoding.
    """

    base_positions: np.ndarray
    dev_positions: np.ndarray
    id_bits: int
    base_runs: np.ndarray
    dev_runs: np.ndarray

    @property
    def base_bits(self) -> int:
        return len(self.base_positions)

    @property
    def record_bits(self) -> int:
        return self.id_bits + len(self.dev_positions)


def ceil_log2(x: int) -> int:
    """``ceil(log2 x)`` for ``x >= 1`` (0 for 1).

    Parameters
    ----------
    x : int
        At least 1.
    """
    return int(x - 1).bit_length() if x > 1 else 0


def _runs(positions: np.ndarray) -> np.ndarray:
    if positions.size == 0:
        return np.zeros((0, 2), dtype=np.int64)
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    starts = np.concatenate(([0], breaks))
    ends = np.concatenate((breaks, [positions.size]))
    out = []
    for s, e in zip(starts, ends):
        p0, length = int(positions[s]), int(e - s)
        while length > 0:
            take = min(64, length)
            out.append((p0, take))
            p0 += take
            length -= take
    return np.asarray(out, dtype=np.int64).reshape(-1, 2)


def make_layout(widths: np.ndarray, base_mask: np.ndarray, n_bases: int) -> Layout:
    """Derive the record layout from column widths and the base positions.

    Parameters
    ----------
    widths : (d,) int
        Bits of each column's codes.
    base_mask : (l_t,) bool
        The row bit positions that belong to the base.
    n_bases : int
        Distinct bases (gives the base ID's width).
    """
    widths = np.asarray(widths, dtype=np.int64)
    base_mask = np.asarray(base_mask, dtype=bool)
    l_t = int(widths.sum())
    if base_mask.shape != (l_t,):
        raise ValueError(f"base mask has {base_mask.size} positions, rows have {l_t} bits")
    id_bits = ceil_log2(int(n_bases))
    bpos = np.flatnonzero(base_mask).astype(np.int64)
    dpos = np.flatnonzero(~base_mask).astype(np.int64)
    return Layout(bpos, dpos, id_bits, _runs(bpos), _runs(dpos))


class PiecePlan(NamedTuple):
    """How each column's code is assembled from the base and record streams.

    Column ``j``'s pieces are ``ptr[j]:ptr[j + 1]``; piece ``t`` takes
    ``length[t]`` bits at offset ``src[t]`` of the row's base (``stream 0``)
    or record (``stream 1``) and shifts them left by ``shift[t]``.
    """

    ptr: np.ndarray
    stream: np.ndarray
    src: np.ndarray
    length: np.ndarray
    shift: np.ndarray


def piece_plan(widths: np.ndarray, base_mask: np.ndarray, id_bits: int) -> PiecePlan:
    """The per-column piece plan of a layout (see :class:`PiecePlan`).

    Parameters
    ----------
    widths : (d,) int
        Bits of each column's codes.
    base_mask : (l_t,) bool
        The row bit positions that belong to the base.
    id_bits : int
        Bits of a base ID.
    """
    widths = np.asarray(widths, dtype=np.int64)
    base_mask = np.asarray(base_mask, dtype=bool)
    bidx = np.cumsum(base_mask) - 1
    didx = np.cumsum(~base_mask) - 1 + id_bits
    ptr = [0]
    stream, src, length, shift = [], [], [], []
    start = 0
    for w in widths.tolist():
        end = start + w
        p = start
        while p < end:
            isb = bool(base_mask[p])
            q = p + 1
            while q < end and bool(base_mask[q]) == isb:
                q += 1
            stream.append(0 if isb else 1)
            src.append(int(bidx[p]) if isb else int(didx[p]))
            length.append(q - p)
            shift.append(end - q)
            p = q
        ptr.append(len(stream))
        start = end
    a = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
    return PiecePlan(a(ptr), a(stream), a(src), a(length), a(shift))


# --------------------------------------------------------------------------
# gathering bases and records from packed rows
# --------------------------------------------------------------------------
@pnjit
def _gather_records(words, rows, ids, id_bits, runs, rec_bits):
    """Records ``[id | bits at runs]`` of ``rows``, 64 records per parallel block."""
    n = rows.shape[0]
    nwords = (n * rec_bits + 63) // 64
    out = np.zeros(nwords + 1, dtype=np.uint64)
    nblocks = (n + 63) // 64
    for blk in prange(nblocks):
        acc = np.uint64(0)
        nacc = 0
        wpos = blk * rec_bits  # 64 records of rec_bits bits = rec_bits words
        for k in range(blk * 64, min(n, blk * 64 + 64)):
            row = words[rows[k]]
            if id_bits > 0:
                acc, nacc, wpos = _emit(out, acc, nacc, wpos, np.uint64(ids[k]), id_bits)
            for r in range(runs.shape[0]):
                ln = runs[r, 1]
                acc, nacc, wpos = _emit(out, acc, nacc, wpos, _get_bits(row, runs[r, 0], ln), ln)
        _flush(out, acc, nacc, wpos)
    return out[:nwords]


def gather_records(words: np.ndarray, rows: np.ndarray, ids: np.ndarray, id_bits: int, runs: np.ndarray) -> np.ndarray:
    """Bit stream of fixed-width records, one per entry of ``rows``.

    Record ``k`` is ``ids[k]`` in ``id_bits`` bits followed by the bits of
    row ``rows[k]`` of ``words`` at the positions described by ``runs``.

    Parameters
    ----------
    words : (n, W) uint64
        Packed rows.
    rows : (k,) int64
        The rows to gather.
    ids : (k,) uint64
        Each record's base ID.
    id_bits : int
        Bits of a base ID.
    runs : (r, 2) int64
        ``(first position, length)`` runs of the row bits to keep (``Layout.dev_runs``).
    """
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    rec_bits = int(id_bits) + int(runs[:, 1].sum())
    if rec_bits == 0 or rows.size == 0:
        return np.zeros(0, dtype=np.uint64)
    return _gather_records(words, rows, ids, int(id_bits), np.ascontiguousarray(runs), rec_bits)


# --------------------------------------------------------------------------
# decoding rows straight to values
# --------------------------------------------------------------------------
@njit(inline="always")
def _put_bits(buf, pos, n, v):
    """OR the ``n`` (1..64) low bits of ``v`` into ``buf`` at bit ``pos``."""
    t = v << np.uint64(64 - n)
    w = pos >> 6
    s = pos & 63
    buf[w] |= t >> np.uint64(s)
    if s + n > 64:
        buf[w + 1] |= t << np.uint64(64 - s)


@njit(inline="always")
def _assemble(records, bases, rec_bits, id_bits, base_bits, n_bases, r, base_runs, dev_runs, buf):
    """Row ``r``'s codes, packed as in the layout, into ``buf`` (its base's bits and its record's deviation
    bits); False if its base ID is invalid (base 0 is used then)."""
    rec = r * rec_bits
    bid = np.int64(0)
    if id_bits > 0:
        bid = np.int64(_get_bits(records, rec, id_bits))
    ok = bid < n_bases
    if not ok:
        bid = 0
    for w in range(buf.shape[0]):
        buf[w] = 0
    src = bid * base_bits
    for t in range(base_runs.shape[0]):
        ln = base_runs[t, 1]
        _put_bits(buf, base_runs[t, 0], ln, _get_bits(bases, src, ln))
        src += ln
    src = rec + id_bits
    for t in range(dev_runs.shape[0]):
        ln = dev_runs[t, 1]
        _put_bits(buf, dev_runs[t, 0], ln, _get_bits(records, src, ln))
        src += ln
    return ok


@njit(inline="always")
def _decode_one(records, bases, rec_bits, id_bits, base_bits, n_bases, r, k, base_runs, dev_runs,
                widths, kind, offset, factor, sign, full, out_bits, out_float, buf):
    """Decode record ``r`` into output row ``k``; False if its base ID is invalid."""
    ok = _assemble(records, bases, rec_bits, id_bits, base_bits, n_bases, r, base_runs, dev_runs, buf)
    pos = 0
    for j in range(widths.shape[0]):
        w = widths[j]
        code = np.uint64(0)
        if w > 0:
            code = _get_bits(buf, pos, w)
            pos += w
        if kind[j] == 0:
            out_bits[k, j] = code + offset[j]
        else:
            _store_value(out_bits, out_float, k, j, kind[j], code, offset[j], factor[j], sign, full)
    return ok


@pnjit
def _decode_rows_parallel(records, bases, rec_bits, id_bits, base_bits, n_bases, rows, base_runs, dev_runs,
                          widths, kind, offset, factor, sign, full, out_bits, out_float):
    nw = (widths.sum() + 63) // 64 + 1
    nblocks = (rows.shape[0] + 63) // 64
    bad = np.zeros(nblocks, dtype=np.int64)
    for blk in prange(nblocks):
        buf = np.zeros(nw, dtype=np.uint64)
        for k in range(blk * 64, min(rows.shape[0], blk * 64 + 64)):
            if not _decode_one(records, bases, rec_bits, id_bits, base_bits, n_bases, rows[k], k, base_runs,
                               dev_runs, widths, kind, offset, factor, sign, full, out_bits, out_float, buf):
                bad[blk] += 1
    return bad.sum()


@pnjit
def _decode_rows_serial(records, bases, rec_bits, id_bits, base_bits, n_bases, rows, base_runs, dev_runs,
                        widths, kind, offset, factor, sign, full, out_bits, out_float, buf):
    # Serial, but compiled with parallel=True: Numba's parfor pipeline makes
    # this loop about ten times faster than a plain njit.  It holds no array
    # expression (the scratch ``buf`` comes from the caller), so no OpenMP
    # region is ever opened for small reads.
    bad = 0
    for k in range(rows.shape[0]):
        if not _decode_one(records, bases, rec_bits, id_bits, base_bits, n_bases, rows[k], k, base_runs,
                           dev_runs, widths, kind, offset, factor, sign, full, out_bits, out_float, buf):
            bad += 1
    return bad


# read-only like every stream of a Compressed, so no extra kernel compiles for it
_EMPTY_STREAM = np.zeros(1, dtype=np.uint64)
_EMPTY_STREAM.setflags(write=False)



def decode_rows(records: np.ndarray, bases: np.ndarray, layout: Layout, codecs: Codecs,
                rows: np.ndarray, dtype, n_bases: int, factor: np.ndarray | None = None) -> np.ndarray:
    """Decode the given rows (indices into the records) into an array of ``dtype``.

    ``rows`` must already be validated (int64, in range) and the streams
    must be long enough for them (the reader checks section sizes): this is
    the kernel-facing layer.  Rows come back in the order of ``rows``.

    Parameters
    ----------
    records : uint64 array
        The records stream (section ROWS).
    bases : uint64 array
        The bases' bit stream (section BASE).
    layout : Layout
        The store's layout.
    codecs : Codecs
        The table's codecs.
    rows : (k,) int64
        Record indices, validated.
    dtype : numpy dtype
        The table's dtype.
    n_bases : int
        Distinct bases (an ID at or above it is corrupt).
    factor : (d,) float64, optional
        ``codecs.factor``, when the caller keeps it.

    Raises
    ------
    FormatError
        If a record names a base ID ``>= n_bases`` (corrupt data).
    """
    dtype = np.dtype(dtype)
    if dtype.names is not None:  # a mixed-dtype table: one structured record per row
        return _decode_rows_fields(records, bases, layout, codecs, rows, dtype, n_bases, factor)
    d = len(codecs.kind)
    out = np.empty((rows.shape[0], d), dtype=dtype)
    if rows.shape[0] == 0:
        return out
    bits, flt, sign, full = output_views(out)
    if factor is None:
        factor = codecs.factor
    # empty streams still need one readable word for the typed kernel
    records = records if records.size else _EMPTY_STREAM
    bases = bases if bases.size else _EMPTY_STREAM
    args = (records, bases, layout.record_bits, layout.id_bits, layout.base_bits, int(n_bases), rows,
            layout.base_runs, layout.dev_runs, codecs.width, codecs.kind, codecs.offset, factor, sign, full,
            bits, flt)
    if rows.shape[0] * d >= PARALLEL_MIN_VALUES:
        bad = _decode_rows_parallel(*args)
    else:
        buf = np.zeros((int(codecs.width.sum()) + 63) // 64 + 1, dtype=np.uint64)
        key = (bits.dtype.num, flt.dtype.num, flt.ndim, records.flags.writeable, bases.flags.writeable,
               factor.flags.writeable, rows.flags.writeable, codecs.width.flags.writeable)
        bad = call_serial(_decode_rows_serial, key, *args, buf)
    if bad:
        raise FormatError(f"records: {bad} of the requested rows name a base ID >= n_bases={n_bases}")
    return out



# --------------------------------------------------------------------------
# decoding rows of a mixed-dtype (structured) table
# --------------------------------------------------------------------------
@njit(inline="always")
def _decode_one_fields(records, bases, rec_bits, id_bits, base_bits, n_bases, r, k, base_runs, dev_runs,
                       widths, kind, offset, factor, sign, full, foff, fsize, out, buf, f64, u64, f32, u32):
    """Decode record ``r`` into the bytes of output record ``k``; False if its base ID is invalid.

    As :func:`_decode_one`, but every column has its own value width
    (``sign``/``full`` per column) and its value is written little-endian
    into ``fsize[j]`` bytes at byte ``foff[j]`` of row ``k`` of ``out``.
    """
    ok = _assemble(records, bases, rec_bits, id_bits, base_bits, n_bases, r, base_runs, dev_runs, buf)
    pos = 0
    for j in range(widths.shape[0]):
        w = widths[j]
        code = np.uint64(0)
        if w > 0:
            code = _get_bits(buf, pos, w)
            pos += w
        key = code + offset[j]
        kd = kind[j]
        if kd == 0:  # INT
            v = key
        elif kd == 3:  # IEEE
            key &= full[j]
            if key & sign[j]:
                v = key ^ sign[j]
            else:
                v = (~key) & full[j]
        else:  # DEC / BIN: the float64 value, rounded once to the field's float type
            if kd == 1:
                x = np.float64(np.int64(key)) / factor[j]
            else:
                x = np.float64(np.int64(key)) * factor[j]
            if fsize[j] == 4:
                f32[0] = x
                v = np.uint64(u32[0])
            else:
                f64[0] = x
                v = u64[0]
        o = foff[j]
        for b in range(fsize[j]):
            out[k, o + b] = np.uint8(v & np.uint64(0xFF))
            v >>= np.uint64(8)
    return ok


@pnjit
def _decode_fields_parallel(records, bases, rec_bits, id_bits, base_bits, n_bases, rows, base_runs, dev_runs,
                            widths, kind, offset, factor, sign, full, foff, fsize, out):
    nw = (widths.sum() + 63) // 64 + 1
    nblocks = (rows.shape[0] + 63) // 64
    bad = np.zeros(nblocks, dtype=np.int64)
    for blk in prange(nblocks):
        buf = np.zeros(nw, dtype=np.uint64)
        f64 = np.zeros(1, dtype=np.float64)
        f32 = np.zeros(1, dtype=np.float32)
        u64 = f64.view(np.uint64)
        u32 = f32.view(np.uint32)
        for k in range(blk * 64, min(rows.shape[0], blk * 64 + 64)):
            if not _decode_one_fields(records, bases, rec_bits, id_bits, base_bits, n_bases, rows[k], k,
                                      base_runs, dev_runs, widths, kind, offset, factor, sign, full, foff, fsize,
                                      out, buf, f64, u64, f32, u32):
                bad[blk] += 1
    return bad.sum()


@pnjit
def _decode_fields_serial(records, bases, rec_bits, id_bits, base_bits, n_bases, rows, base_runs, dev_runs,
                          widths, kind, offset, factor, sign, full, foff, fsize, out, buf, f64, f32):
    # serial but compiled with parallel=True, for the reason given in _decode_rows_serial
    u64 = f64.view(np.uint64)
    u32 = f32.view(np.uint32)
    bad = 0
    for k in range(rows.shape[0]):
        if not _decode_one_fields(records, bases, rec_bits, id_bits, base_bits, n_bases, rows[k], k, base_runs,
                                  dev_runs, widths, kind, offset, factor, sign, full, foff, fsize, out, buf,
                                  f64, u64, f32, u32):
            bad += 1
    return bad


def field_plan(dtype: np.dtype):
    """``(offset, size, sign, full)`` per field of a packed structured dtype (bytes; value-bit masks).

    Parameters
    ----------
    dtype : numpy dtype
        A packed structured dtype.
    """
    names = dtype.names
    foff = np.array([dtype.fields[f][1] for f in names], dtype=np.int64)
    fsize = np.array([dtype.fields[f][0].itemsize for f in names], dtype=np.int64)
    nb = 8 * fsize
    sign = np.array([1 << (b - 1) for b in nb.tolist()], dtype=np.uint64)
    full = np.array([(1 << b) - 1 for b in nb.tolist()], dtype=np.uint64)
    return foff, fsize, sign, full


def _decode_rows_fields(records, bases, layout, codecs, rows, dtype, n_bases, factor):
    """:func:`decode_rows` for a structured dtype: a (k,) structured array, written byte by byte."""
    # the kernel writes little-endian values: give the fields that byte order (native on every tested host)
    dtype = np.dtype([(f, dtype.fields[f][0].newbyteorder("<")) for f in dtype.names])
    out = np.empty(rows.shape[0], dtype=dtype)
    if rows.shape[0] == 0:
        return out
    raw = out.view(np.uint8).reshape(rows.shape[0], dtype.itemsize)
    foff, fsize, sign, full = field_plan(dtype)
    if factor is None:
        factor = codecs.factor
    records = records if records.size else _EMPTY_STREAM
    bases = bases if bases.size else _EMPTY_STREAM
    args = (records, bases, layout.record_bits, layout.id_bits, layout.base_bits, int(n_bases), rows,
            layout.base_runs, layout.dev_runs, codecs.width, codecs.kind, codecs.offset, factor, sign, full,
            foff, fsize, raw)
    if rows.shape[0] * len(foff) >= PARALLEL_MIN_VALUES:
        bad = _decode_fields_parallel(*args)
    else:
        scratch = (np.zeros((int(codecs.width.sum()) + 63) // 64 + 1, dtype=np.uint64),
                   np.zeros(1, dtype=np.float64), np.zeros(1, dtype=np.float32))
        key = (records.flags.writeable, bases.flags.writeable, factor.flags.writeable, rows.flags.writeable,
               codecs.width.flags.writeable)
        bad = call_serial(_decode_fields_serial, key, *args, *scratch)
    if bad:
        raise FormatError(f"records: {bad} of the requested rows name a base ID >= n_bases={n_bases}")
    return out
