"""The entropy-coded deviations of a table: encoding rows, the decodable container, decoding rows.

:func:`compress_deviations` fits, encodes and packages all rows;
:func:`coded_from_file` validates sections MODL, RIDX and ROWS of a file;
both give an :class:`EntropyCoded` (:func:`build` derives its lookup
tables and the kernels' packed parameters).  :func:`decode_rows` reads any
rows back, through the image decoder where it applies
(:mod:`gedenb.entropy.image_models`) and the general row decoder
(:func:`_decode_row`) elsewhere.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import bits as _bits
from .._numba import PARALLEL_MIN_VALUES, call_serial, njit, pnjit, prange
from ..bits import _get_bits
from ..encode import output_views, _storage_uint, _store_value
from ..errors import FormatError
from ..layout import ceil_log2, _put_bits
from .coder import (
    BLOCK_ROWS, RANS_L, STATE_BYTES, _compact, _decode_tables, _encode_events, _encode_rows, index_bytes, row_index,
    _row_span, _starts,
)
from .fitting import _fit
from .image_models import (
    _NO_IP, _NO_LEV, _NO_NZ, RUN_CONTEXTS, _decode_fast_row, _image_arena, _image_params, image_kernels,
)
from .model import (
    CP_DMASK, CP_DSHIFT, CP_KIND, CP_OFFSET, FP_WIDTH, IMAGE_SCHEMES, MAX_BASE_CODES, MT_BLOCK, MT_E1, MT_E2, MT_FAST,
    MT_FULL, MT_IDBITS, MT_IMAGE, MT_INT, MT_LIMIT, MT_NBASES, MT_NROWS, MT_OFFBITS, MT_PREC, MT_RUN, MT_SIGN,
    MT_SIZE, MT_SPLIT, RUN_SCHEMES, SCHEME_IMAGE, SCHEME_IMAGE_FLAT, SCHEME_IMAGE_RUNS, SCHEME_IMAGE_WN,
    SCHEME_IMAGE_WN_RUNS, SP_CARRY, SP_LOW, SP_NREF, EntropyModel, carried_slots, _fast_slots, _frozen_model,
    _pack_slots, _pdep, split_slot,
)
from .serial import model_from_bytes, model_to_bytes

__all__ = ["EntropyCoded", "build", "coded_from_file", "coding_summary", "compress_deviations", "decode_rows", "encode",
           "image_row_reader"]


class EntropyCoded(NamedTuple):
    """The entropy-coded deviations of a table (part of a :class:`gedenb.Compressed`).

    Attributes
    ----------
    model : EntropyModel
    stream : (bytes,) uint8
        The rows' rANS streams, back to back.
    block_off : (ceil(N / 64) + 1,) uint64
        Byte offset of every block of 64 rows; the last entry is the stream length.
    row_off : uint64 bit stream
        Offset of every row inside its block, ``off_bits`` bits each.
    off_bits : int
    dtab : uint32
        Decoding lookup tables (derived from the model).
    base_codes : (n_b, d) uint64
        Column codes of every base (derived from the bases).
    pre_cols : int64
        Columns without deviation bits (their levels come from the base).
    sp, cp, meta : int64; fp : int32
        The model, codecs and scalars packed for the decoding kernels
        (``fp``: the compact slot parameters of the image fast path)
        (:mod:`gedenb.entropy.model`); ``cp_codes`` and ``meta_codes`` decode to
        column codes instead of values (mixed-dtype tables).
    factor : float64
        The codecs' fixed-point factors.
    ip : int64
        The image decoder's one parameter array (:func:`gedenb.entropy.image_models._make_image_two`;
        empty when it does not apply: see :func:`gedenb.entropy.image_models._image_params`): its own
        parameters, ``meta``, ``cp``, ``factor``, ``meta_codes``, ``cp_codes``,
        the row index, base codes, ``base_nz``, ``base_lev`` and ``dtab`` (the
        last three are then views of it).
    base_lev : (n_b, NBUF) uint8
        Levels of every base's codes on the padded image grid (image decoder only; a zero row on top,
        a zero column left and right, split rows' virtual row, whole words: see
        :func:`gedenb.entropy.image_models._image_params`).
    base_nz : (n_b, mask rows) uint64
        Per base and image row (and split rows' virtual row), the columns whose base code's level is not 0
        (one bit each).
    ridx : uint64
        ``block_off`` then ``row_off`` in one array (section RIDX); the two are views of it.
    """

    model: EntropyModel
    stream: np.ndarray
    block_off: np.ndarray
    row_off: np.ndarray
    off_bits: int
    dtab: np.ndarray
    base_codes: np.ndarray
    pre_cols: np.ndarray
    sp: np.ndarray
    cp: np.ndarray
    meta: np.ndarray
    cp_codes: np.ndarray
    meta_codes: np.ndarray
    factor: np.ndarray
    fp: np.ndarray
    ip: np.ndarray
    base_lev: np.ndarray
    base_nz: np.ndarray
    ridx: np.ndarray

    @property
    def nbytes(self) -> int:
        """Bytes of model, row index and row streams as stored."""
        return len(model_to_bytes(self.model, self.off_bits)) + index_bytes(self) + int(self.stream.shape[0])


def encode(model: EntropyModel, sym: np.ndarray, tidx: np.ndarray):
    """rANS-encode every row.

    Parameters
    ----------
    model : EntropyModel
    sym : (N, S) uint8
        The digits of every row.
    tidx : (N, S) int32, or the events of zero-run schemes
        What :func:`gedenb.entropy.fitting.fit` returned with ``sym``: the table of every digit (-1: uniform),
        or for the zero-run schemes the rows' events (:func:`gedenb.entropy.image_models._run_events`).

    Returns
    -------
    stream : uint8
        The rows' streams, back to back.
    block_off, row_off : uint64
        The row index (:func:`gedenb.entropy.coder.row_index`).
    off_bits : int
    """
    N, S = sym.shape
    starts = _starts(model.freqs)
    cap = STATE_BYTES + 4 + (3 * S + 1) // 2 + 8
    if model.scheme in RUN_SCHEMES:  # tidx holds the rows' events (image_models._run_events)
        buf, lengths = _encode_events(*tidx, bool(model.split), model.freqs, starts, 2 * cap, model.prec)
        offsets = np.zeros(N + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        stream = np.zeros(int(offsets[-1]), dtype=np.uint8)
        _compact(buf, lengths, offsets, stream)
        return (stream,) + row_index(offsets)
    carry = carried_slots(model).astype(np.uint8)
    buf, lengths = _encode_rows(sym, tidx, model.slot_bits, carry, model.freqs, starts, cap, model.prec)
    offsets = np.zeros(N + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    stream = np.zeros(int(offsets[-1]), dtype=np.uint8)
    _compact(buf, lengths, offsets, stream)
    return (stream,) + row_index(offsets)


def build(model: EntropyModel, stream, ridx, off_bits: int, bases, layout, n_bases: int, codecs, dtype, id_bits: int,
          n_rows: int) -> EntropyCoded:
    """The decodable container: derives lookup tables, base codes and the kernels' packed parameters.

    Parameters
    ----------
    model : EntropyModel
    stream : uint8
        Section ROWS.
    ridx : uint64
        Section RIDX: the ``ceil(n_rows / BLOCK_ROWS) + 1`` block offsets, then the packed row offsets.
    off_bits : int
        Bits per row offset.
    bases : uint64
        The packed bases (section BASE).
    layout : gedenb.layout.Layout
        The table's record layout (where the base bits lie in a code).
    n_bases : int
    codecs : Codecs
    dtype : numpy.dtype
        The decoded values' dtype (structured: decoded to codes, the kernels' output is uint64).
    id_bits : int
        Bits per base ID.
    n_rows : int
        Rows, condensed samples included.

    Returns
    -------
    EntropyCoded
        Read-only arrays.
    """
    nblocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    block_off, row_off = ridx[:nblocks + 1], ridx[nblocks + 1:]
    starts = np.zeros(model.freqs.shape, dtype=np.int32)
    dtab = _decode_tables(model.freqs, starts, model.prec) if model.n_tables else np.zeros(1, dtype=np.uint32)
    widths = np.asarray(codecs.width, dtype=np.int64)
    d = widths.shape[0]
    col_start = np.concatenate(([0], np.cumsum(widths)[:-1])).astype(np.int64)
    bases = bases if bases.size else _EMPTY
    base_codes = _base_codes(bases, layout.base_runs, layout.base_bits, int(n_bases), col_start, widths)
    has = np.zeros(d, dtype=bool)
    has[model.slot_col] = True
    pre_cols = np.flatnonzero(~has).astype(np.int64)
    S = model.n_slots
    image = model.scheme in IMAGE_SCHEMES
    runs = model.scheme in RUN_SCHEMES
    fast = bool(image and S and (model.slot_last == 1).all())
    sp = _pack_slots(model.slot_col, model.slot_bits, model.slot_last, model.slot_table, model.refs, model.shifts,
                     model.nlev, model.slot_lowshift, carried_slots(model), model.image_shape, fast)

    def pack(kind, offset, out_dtype):
        cp = np.zeros((d, 4), dtype=np.int64)
        cp[:, CP_DMASK] = model.col_dmask.view(np.int64)
        cp[:, CP_DSHIFT] = model.col_dshift
        cp[:, CP_KIND] = kind
        cp[:, CP_OFFSET] = np.asarray(offset, dtype=np.uint64).view(np.int64)
        nb = 8 * np.dtype(out_dtype).itemsize
        meta = np.zeros(MT_SIZE, dtype=np.int64)
        meta[[MT_NROWS, MT_OFFBITS, MT_IDBITS, MT_NBASES, MT_IMAGE, MT_FAST, MT_BLOCK]] = (
            n_rows, off_bits, id_bits, n_bases, image, fast, BLOCK_ROWS)
        meta[MT_E1], meta[MT_E2] = model.e1, model.e2
        meta[MT_PREC] = model.prec
        meta[MT_LIMIT] = n_rows
        meta[MT_RUN] = model.n_tables - RUN_CONTEXTS - 1 if runs else -1
        meta[MT_SPLIT] = split_slot(model)
        # every column an integer codec: 1 (code + offset), 2 (the code itself: all offsets 0)
        if (np.asarray(kind) == 0).all():
            meta[MT_INT] = 2 if (np.asarray(offset, dtype=np.uint64) == 0).all() else 1
        meta[MT_SIGN:MT_FULL + 1] = np.array([1 << (nb - 1), (1 << nb) - 1], dtype=np.uint64).view(np.int64)
        return cp, meta

    cp, meta = pack(codecs.kind, codecs.offset, dtype if np.dtype(dtype).names is None else np.uint64)
    cp_codes, meta_codes = pack(0, 0, np.uint64)
    factor = np.ascontiguousarray(codecs.factor, dtype=np.float64)
    fp = _fast_slots(sp, model.col_dshift) if fast else np.zeros((0, FP_WIDTH), dtype=np.int32)
    ip, base_lev, base_nz = _image_params(model, base_codes, codecs.offset) if fast else (_NO_IP, _NO_LEV, _NO_NZ)
    if ip.size:
        ip, base_lev, base_nz, dtab = _image_arena(ip, base_lev, base_nz, dtab, base_codes, ridx, nblocks,
                                                   split_slot(model), (meta, cp, factor), (meta_codes, cp_codes))
    coded = EntropyCoded(model, stream, block_off, row_off, int(off_bits), dtab, base_codes, pre_cols, sp, cp, meta,
                         cp_codes, meta_codes, factor, fp, ip, base_lev, base_nz, ridx)
    for a in coded[1:]:
        if isinstance(a, np.ndarray) and a.flags.writeable:
            a.setflags(write=False)
    return coded


@njit
def _decode_row(stream, start, end, codes, lev, sp, cp, dtab, image, fast, e1, e2, run_table, fp, lv, prec, s_split):
    """Decode one row's digits into ``codes`` (base parts already there); False if corrupt.

    ``s_split >= 0`` (split rows, one digit per column only): slots ``s_split..S-1`` are a second rANS
    chain, read backwards from the row's end, decoded first (their first image row sees the base levels
    of the row above, as the encoder had them).
    """
    if start < 0 or end > stream.shape[0] or end - start < STATE_BYTES:
        return False
    S = sp.shape[0]
    p = start
    x = np.uint64(0)
    for b in range(STATE_BYTES):
        x = (x << np.uint64(8)) | np.uint64(stream[p])
        p += 1
    if x < np.uint64(RANS_L) or x >= np.uint64(RANS_L << 8):
        return False
    msz = np.int64(1) << prec
    psh = np.uint64(prec)
    mask = np.uint64(msz - 1)
    lo = np.uint64(RANS_L)
    if fast:  # images, one digit per column
        return _decode_fast_row(stream, start, end, p, x, codes, fp, cp, dtab, e1, e2, run_table, lv, msz, psh, mask,
                                s_split)
    ncarry = 0
    for s in range(S):
        b = sp[s, 1]
        if sp[s, SP_CARRY]:
            ncarry += b
            continue
        slot = x & mask
        t = sp[s, 3]
        if t < 0:
            sh = np.uint64(prec - b)
            a = slot >> sh
            f = np.uint64(1) << sh
            bias = slot & (f - np.uint64(1))
        else:
            ctx = 0
            for k in range(sp[s, SP_NREF]):  # the references after the last used one add nothing
                ctx = ctx * sp[s, 12 + k] + (lev[sp[s, 4 + k]] >> sp[s, 8 + k])
            e = np.uint64(dtab[(t + ctx) * msz + np.int64(slot)])
            a = e & np.uint64(255)
            bias = (e >> np.uint64(8)) & mask
            f = (e >> np.uint64(20)) + np.uint64(1)
        x = f * (x >> psh) + bias
        while x < lo:
            if p >= end:
                return False
            x = (x << np.uint64(8)) | np.uint64(stream[p])
            p += 1
        a &= np.uint64((1 << b) - 1)  # a damaged shared table cannot push a level out of range
        lev[s] = np.int64(a)
        j = sp[s, 0]
        c = codes[j] | _pdep(a << np.uint64(sp[s, SP_LOW]), np.uint64(cp[j, 0]), cp[j, 1])
        codes[j] = c
        if image and sp[s, 2]:
            lev[S + j] = (1 if c >= e1 else 0) + (1 if c >= e2 else 0)
    if p != end or x < lo or x - lo >= (np.uint64(1) << np.uint64(ncarry)):
        return False
    _carried_digits(x - lo, codes, sp, cp)
    return True


@njit(inline="always")
def _carried_digits(r, codes, sp, cp):
    """Add the carried digits (:func:`gedenb.entropy.model.carried_slots`) to ``codes``: the bits ``r`` that the
    row's final state holds above ``L``, in slot order."""
    for s in range(sp.shape[0] - 1, -1, -1):
        if sp[s, SP_CARRY]:
            b = np.uint64(sp[s, 1])
            a = r & ((np.uint64(1) << b) - np.uint64(1))
            r >>= b
            j = sp[s, 0]
            codes[j] |= _pdep(a << np.uint64(sp[s, SP_LOW]), np.uint64(cp[j, 0]), cp[j, 1])


@njit
def _decode_one(r, k, stream, block_off, row_off, ids, base_codes, pre_cols, sp, cp, dtab, meta, factor,
                out_bits, out_float, codes, lev, fp, lv):
    d = codes.shape[0]
    S = sp.shape[0]
    n_rows = meta[MT_NROWS]
    if r < 0 or r >= n_rows:
        return False
    id_bits = meta[MT_IDBITS]
    bid = np.int64(0)
    if id_bits > 0:
        bid = np.int64(_get_bits(ids, r * id_bits, id_bits))
    if bid >= meta[MT_NBASES]:
        return False
    for j in range(d):
        codes[j] = base_codes[bid, j]
    image = meta[MT_IMAGE] != 0
    e1 = np.uint64(meta[MT_E1])
    e2 = np.uint64(meta[MT_E2])
    fast = meta[MT_FAST] != 0
    if image:
        for q in range(pre_cols.shape[0]):
            j = pre_cols[q]
            c = codes[j]
            if fast:
                lv[S + j] = (1 if c >= e1 else 0) + (1 if c >= e2 else 0)
            else:
                lev[S + j] = (1 if c >= e1 else 0) + (1 if c >= e2 else 0)
    start, end = _row_span(r, block_off, row_off, meta[MT_OFFBITS], meta[MT_BLOCK], n_rows, stream.shape[0])
    if not _decode_row(stream, start, end, codes, lev, sp, cp, dtab, image, fast, e1, e2, meta[MT_RUN], fp, lv,
                       meta[MT_PREC], meta[MT_SPLIT]):
        return False
    sign = np.uint64(meta[MT_SIGN])
    full = np.uint64(meta[MT_FULL])
    for j in range(d):
        kd = cp[j, 2]
        if kd == 0:
            out_bits[k, j] = codes[j] + np.uint64(cp[j, 3])
        else:
            _store_value(out_bits, out_float, k, j, kd, codes[j], np.uint64(cp[j, 3]), factor[j], sign, full)
    return True


@pnjit
def _decode_rows_serial(rows, stream, block_off, row_off, ids, base_codes, pre_cols, sp, cp, dtab, meta, factor,
                        out_bits, out_float, fp, codes, lev, lv):
    # compiled with parallel=True for the same reason as layout._decode_rows_serial; no prange here
    for k in range(rows.shape[0]):
        if not _decode_one(rows[k], k, stream, block_off, row_off, ids, base_codes, pre_cols, sp, cp, dtab, meta,
                           factor, out_bits, out_float, codes, lev, fp, lv):
            return k
    return -1


#: Rows per task of the general parallel decoder.
GENERAL_BLOCK_ROWS = 32


@pnjit
def _decode_rows_parallel(rows, stream, block_off, row_off, ids, base_codes, pre_cols, sp, cp, dtab, meta, factor,
                          out_bits, out_float, fp):
    n = rows.shape[0]
    d = base_codes.shape[1]
    S = sp.shape[0]
    nblocks = (n + GENERAL_BLOCK_ROWS - 1) // GENERAL_BLOCK_ROWS
    bad = np.full(nblocks, -1, dtype=np.int64)
    for blk in prange(nblocks):
        codes = np.zeros(d, dtype=np.uint64)
        lev = np.zeros(S + d + 1, dtype=np.int64)
        lv = np.zeros(S + d + 1, dtype=np.int32)
        for k in range(blk * GENERAL_BLOCK_ROWS, min(n, (blk + 1) * GENERAL_BLOCK_ROWS)):
            if not _decode_one(rows[k], k, stream, block_off, row_off, ids, base_codes, pre_cols, sp, cp, dtab, meta,
                               factor, out_bits, out_float, codes, lev, fp, lv):
                bad[blk] = k
                break
    for blk in range(nblocks):
        if bad[blk] >= 0:
            return bad[blk]
    return -1


@pnjit
def _base_codes(bases, base_runs, base_bits, n_bases, col_start, widths):
    """Column codes of every base (deviation bits zero): ``(n_b, d)`` uint64."""
    d = widths.shape[0]
    out = np.zeros((n_bases, d), dtype=np.uint64)
    nw = (widths.sum() + 63) // 64 + 1
    for b in prange(n_bases):
        buf = np.zeros(nw, dtype=np.uint64)
        src = b * base_bits
        for t in range(base_runs.shape[0]):
            ln = base_runs[t, 1]
            _put_bits(buf, base_runs[t, 0], ln, _get_bits(bases, src, ln))
            src += ln
        for j in range(d):
            w = widths[j]
            if w > 0:
                out[b, j] = _get_bits(buf, col_start[j], w)
    return out


def compress_deviations(codes: np.ndarray, codecs, base_mask, image_shape, bases, layout, n_bases: int, dtype,
                        costs=None):
    """Fit, encode and package the deviations of all rows (``coding="entropy"``).

    Parameters
    ----------
    codes : (N, d) uint64
        Column codes of every row (original rows, then condensed samples).
    codecs : Codecs
    base_mask : (l_t,) bool
    image_shape : (H, W, C) or None
        The image scheme's shape (:func:`gedenb.entropy.image_models.check_image_shape`), None for a table.
    bases : uint64
        The packed bases.
    layout : gedenb.layout.Layout
    n_bases : int
    dtype : numpy.dtype
    costs : _ContextCosts, optional
        The context costs that :func:`gedenb.entropy.fitting.greedy_base_selection` returned for these very
        codes (the table scheme then costs only the columns whose digits differ from its last step).

    Returns
    -------
    EntropyCoded
    """
    costs = costs if image_shape is None else None
    model, sym, tidx, _counts = _fit(codes, codecs.width, base_mask, image_shape, costs=costs)
    stream, block_off, row_off, off_bits = encode(model, sym, tidx)
    return build(_frozen_model(model), stream, np.concatenate([block_off, row_off]), off_bits, bases, layout, n_bases,
                 codecs, dtype, ceil_log2(n_bases), codes.shape[0])


def coded_from_file(model_payload, ridx: np.ndarray, stream: np.ndarray, codecs, base_mask, d: int, n_rows: int,
                    bases, layout, n_bases: int, dtype, verify: bool) -> EntropyCoded:
    """Validate sections MODL, RIDX and ROWS of a file and build the decodable container.

    Parameters
    ----------
    model_payload : bytes-like
        Section MODL.
    ridx : uint64
        Section RIDX.
    stream : uint8
        Section ROWS.
    codecs : Codecs
    base_mask : (l_t,) bool
    d : int
        Columns.
    n_rows : int
        Rows, condensed samples included.
    bases : uint64
        The packed bases.
    layout : gedenb.layout.Layout
    n_bases : int
    dtype : numpy.dtype
    verify : bool
        Check every row's span now.

    Returns
    -------
    EntropyCoded

    Raises
    ------
    FormatError
        Naming the section.  With ``verify`` every row's span is checked;
        without it a bad span is caught when the row is read.
    """
    if n_bases * d > MAX_BASE_CODES:
        raise FormatError(f"BASE: n_b * d = {n_bases * d} base codes exceed the decoder's {MAX_BASE_CODES}")
    model, off_bits = model_from_bytes(model_payload, codecs.width, base_mask, d)
    nblocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    nrow_words = (n_rows * off_bits + 63) // 64
    if ridx.shape[0] != nblocks + 1 + nrow_words:
        raise FormatError(f"RIDX: {8 * ridx.shape[0]} bytes, expected {8 * (nblocks + 1 + nrow_words)}")
    block_off = ridx[:nblocks + 1]
    row_off = ridx[nblocks + 1:]
    bo = block_off.astype(np.uint64)
    if int(bo[0]) != 0 or int(bo[-1]) != stream.shape[0] or (np.diff(bo.astype(np.float64)) < 0).any():
        raise FormatError("RIDX: block offsets must start at 0, never decrease and end at the ROWS length")
    used = n_rows * off_bits
    if used % 64 and int(row_off[-1]) & ((1 << (64 - used % 64)) - 1):
        raise FormatError("RIDX: padding bits of the last word must be zero")
    if verify and off_bits:
        rel = _bits.unpack_fixed(np.ascontiguousarray(row_off, dtype=np.uint64), off_bits, n_rows).astype(np.int64)
        starts = bo.astype(np.int64)[np.arange(n_rows) // BLOCK_ROWS] + rel
        ends = np.append(starts[1:], stream.shape[0])
        ends[BLOCK_ROWS - 1::BLOCK_ROWS] = bo.astype(np.int64)[1:nblocks + 1][:ends[BLOCK_ROWS - 1::BLOCK_ROWS].size]
        if (rel[::BLOCK_ROWS] != 0).any() or (ends - starts < STATE_BYTES).any():
            raise FormatError("RIDX: a row's span is empty, shorter than a rANS state or out of order")
    elif verify and n_rows > nblocks:
        raise FormatError("RIDX: rows share a block but have no offsets")
    return build(model, stream, ridx, off_bits, bases, layout, n_bases, codecs, dtype, ceil_log2(n_bases), n_rows)


def coding_summary(coded: EntropyCoded) -> str:
    """One line for ``python -m gedenb info``.

    Parameters
    ----------
    coded : EntropyCoded

    Returns
    -------
    str
    """
    m = coded.model
    names = {SCHEME_IMAGE: "4 neighbours", SCHEME_IMAGE_WN: "2 neighbours", SCHEME_IMAGE_FLAT: "no neighbours",
             SCHEME_IMAGE_RUNS: "4 neighbours, zero runs", SCHEME_IMAGE_WN_RUNS: "2 neighbours, zero runs"}
    scheme = (f"image {m.image_shape[0]}x{m.image_shape[1]}x{m.image_shape[2]}, {names[m.scheme]}"
              if m.scheme in IMAGE_SCHEMES else "table")
    uni = int((m.slot_table < 0).sum())
    return (f"entropy (rANS, {scheme} contexts): {m.n_slots} digits per row ({uni} raw), {m.n_tables} tables; "
            f"model {len(model_to_bytes(m, coded.off_bits)):,} B, row index {index_bytes(coded):,} B, "
            f"rows {coded.stream.shape[0]:,} B")


_EMPTY = np.zeros(1, dtype=np.uint64)
_EMPTY.setflags(write=False)
_NO_FLOAT = np.empty((0, 0), dtype=np.float64)
#: Batches below ``PARALLEL_MIN_VALUES`` values are decoded on one thread unless they have this many coded
#: digits and rows for two tasks: a digit of the general decoder costs about as much as ten values of the
#: raw-bit layout, so small table batches already gain from two threads (asv ``GedeReadRows``,
#: ``california-entropy``; docs/BENCHMARKS.md).
PARALLEL_MIN_DIGITS = 1 << 10


def decode_rows(coded: EntropyCoded, ids: np.ndarray, rows: np.ndarray, dtype, codes_only: bool = False,
                factor=None) -> np.ndarray:
    """Decode ``rows`` (int64 indices in ``[0, n + m)``) into an ``(k, d)`` array of ``dtype``.

    A structured ``dtype`` (mixed-dtype table) is decoded to column codes and
    mapped through the codecs with :func:`gedenb.encode.decode_codes` by the
    caller (``codes_only=True`` returns the uint64 codes).

    Parameters
    ----------
    coded : EntropyCoded
    ids : uint64
        The packed base IDs (section IDS; may be empty with one base).
    rows : (k,) int64
    dtype : numpy.dtype
    codes_only : bool, default False
        Return the column codes (uint64) instead of values.
    factor : (d,) float64, optional
        The codecs' fixed-point factors to decode with (default ``coded.factor``; not used by the image
        decoder, whose factors are in ``coded.ip``).

    Returns
    -------
    (k, d) ndarray

    Raises
    ------
    FormatError
        A requested row is out of range or its stream is corrupt (only
        possible for files opened with ``verify=False`` or damaged data).
    """
    if coded.ip.size:
        return _decode_image_rows(coded, ids, rows, dtype, codes_only)  # its codec factors are in coded.ip
    if codes_only:
        out = np.empty((rows.shape[0], coded.cp.shape[0]), dtype=np.uint64)
        bits, flt = out, _NO_FLOAT
        cp, meta = coded.cp_codes, coded.meta_codes
    else:
        out = np.empty((rows.shape[0], coded.cp.shape[0]), dtype=dtype)
        bits, flt, _sign, _full = output_views(out)
        cp, meta = coded.cp, coded.meta
    if rows.shape[0] == 0:
        return out
    ids = ids if ids.size else _EMPTY
    if factor is None:
        factor = coded.factor
    args = (rows, coded.stream, coded.block_off, coded.row_off if coded.row_off.size else _EMPTY, ids,
            coded.base_codes, coded.pre_cols, coded.sp, cp, coded.dtab, meta, factor, bits, flt, coded.fp)
    if rows.shape[0] * cp.shape[0] >= PARALLEL_MIN_VALUES or (
            rows.shape[0] >= 2 * GENERAL_BLOCK_ROWS and rows.shape[0] * coded.sp.shape[0] >= PARALLEL_MIN_DIGITS):
        bad = _decode_rows_parallel(*args)
    else:
        nlev = coded.sp.shape[0] + cp.shape[0] + 1
        scratch = (np.empty(cp.shape[0], dtype=np.uint64), np.zeros(nlev, np.int64), np.zeros(nlev, np.int32))
        key = (bits.dtype.num, flt.dtype.num, flt.ndim, rows.flags.writeable, factor.flags.writeable)
        bad = call_serial(_decode_rows_serial, key, *args, *scratch)
    if bad >= 0:
        raise FormatError(f"ROWS: row {int(rows[bad])} is out of range or corrupt (rANS stream, row index or base ID)")
    return out


def _decode_image_rows(coded: EntropyCoded, ids: np.ndarray, rows: np.ndarray, dtype, codes_only: bool) -> np.ndarray:
    """:func:`decode_rows` for stores with the image decoder (``coded.ip`` not empty).

    The kernel checks every index itself (``-n <= r < n``, negative ones
    counting from the end), so ``rows`` may be any 1-D int64 array: a bad
    index is reported like a corrupt row, and :meth:`gedenb.store.Reader.read_rows`
    then names it with the error its full validation gives.
    """
    d = coded.cp.shape[0]
    if codes_only:
        out = np.empty((rows.shape[0], d), dtype=np.uint64)
        bits, flt = out, _NO_FLOAT
    else:
        out = np.empty((rows.shape[0], d), dtype=dtype)
        dt = out.dtype
        bits = out if dt.kind == "u" else out.view(_storage_uint(dt))
        flt = out if dt.kind == "f" and dt.itemsize >= 4 else _NO_FLOAT
    args = (rows, coded.stream, ids if ids.size else _EMPTY, coded.ip, int(coded.meta[MT_NROWS]), codes_only,
            bits, flt)
    _block, serial, parallel = image_kernels(coded.ip, codes_only or coded.meta[MT_INT] != 0)
    bad = (parallel if rows.shape[0] * d >= PARALLEL_MIN_VALUES else serial)(*args)
    if bad >= 0:
        raise FormatError(f"ROWS: row {int(rows[bad])} is out of range or corrupt (rANS stream, row index or base ID)")
    return out


def _entry_point(kernel, args):
    """The compiled entry point of Numba kernel ``kernel`` for the types of ``args`` (compiled already), or
    ``kernel`` itself where Numba does not expose it.

    Calling the entry point skips the dispatcher's matching of argument types
    against its compiled versions: ~0.4 us of a one-row image read
    (``scripts/entropy_read_profile.py``).  Only for callers whose arguments
    keep those types (dtype, dimensions, layout).
    """
    try:
        import numba

        return kernel.overloads[tuple(numba.typeof(a) for a in args)].entry_point
    except (AttributeError, KeyError, TypeError, ValueError):
        return kernel


def image_row_reader(coded: EntropyCoded, ids: np.ndarray, dtype, n_public=None):
    """A function ``rows -> (k, d) array`` for stores with the image decoder, its arguments prepared once.

    What :func:`decode_rows` does for such a store (values, not codes), for
    callers that read many small batches: :meth:`gedenb.store.Reader.read_rows`
    uses it for indices it has checked to be a 1-D, C-contiguous, aligned
    int64 array (the function relies on that: after its first call it calls
    the compiled kernel directly, :func:`_entry_point`); the kernel checks
    every index itself (``-n_public <= r < n_public``, by default all rows
    including condensed samples; a bad one raises :class:`FormatError` as a
    corrupt row would).  The function holds views of the store's arrays:
    drop it to release them.

    Parameters
    ----------
    coded : EntropyCoded
        With the image decoder (``coded.ip`` not empty).
    ids : uint64
        The packed base IDs.
    dtype : numpy.dtype
        The values' dtype (not structured).
    n_public : int, optional
        Rows the indices may address (default all, condensed samples included).

    Returns
    -------
    callable

    Raises
    ------
    ValueError
        The image decoder does not apply, or ``n_public`` is out of range.
    """
    if not coded.ip.size:
        raise ValueError("the image decoder does not apply to this store")
    n_rows = int(coded.meta[MT_NROWS])
    limit = n_rows if n_public is None else int(n_public)
    if not 0 <= limit <= n_rows:
        raise ValueError(f"n_public={n_public} is not in [0, {n_rows}]")
    d = coded.cp.shape[0]
    dt = np.dtype(dtype)
    view = None if dt.kind == "u" else _storage_uint(dt)
    flt_is_out = dt.kind == "f" and dt.itemsize >= 4
    stream, ids, ip = coded.stream, ids if ids.size else _EMPTY, coded.ip
    _block, serial, parallel = image_kernels(ip, coded.meta[MT_INT] != 0)
    few = -(-PARALLEL_MIN_VALUES // d)  # fewer rows than this: one thread
    no_float = _NO_FLOAT
    empty = np.empty
    plain = view is None and not flt_is_out  # unsigned integers: the common case, fewest steps

    fast = [None]  # the serial kernel's entry point, once it is compiled

    def read(rows: np.ndarray) -> np.ndarray:
        n = len(rows)
        out = empty((n, d), dtype=dt)
        if plain and n < few:
            f = fast[0]
            if f is None:
                bad = serial(rows, stream, ids, ip, limit, False, out, no_float)
                fast[0] = _entry_point(serial, (rows, stream, ids, ip, limit, False, out, no_float))
            else:
                bad = f(rows, stream, ids, ip, limit, False, out, no_float)
        elif plain:
            bad = parallel(rows, stream, ids, ip, limit, False, out, no_float)
        else:
            bad = (serial if n < few else parallel)(rows, stream, ids, ip, limit, False,
                                                    out if view is None else out.view(view),
                                                    out if flt_is_out else no_float)
        if bad >= 0:
            raise FormatError(f"ROWS: row {int(rows[bad])} is out of range or corrupt (rANS stream, row index or "
                              "base ID)")
        return out

    return read
