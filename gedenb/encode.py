"""Lossless column codecs: numbers <-> fixed-width unsigned integers.

Every column of a table gets the narrowest codec that reproduces each of its
values bit for bit (Algorithm 1, line 1, "convert to binary format"):

``INT``
    integers (and bools) offset by the column minimum.
``DEC``
    decimal fixed point: the smallest ``k <= 9`` such that ``x * 10**k`` is an
    integer ``q`` for every value and ``q / 10**k`` gives back ``x`` exactly;
    ``q`` is offset by its minimum.
``BIN``
    binary fixed point: ``x * 2**k`` integral for every value (``k`` the
    fewest fractional bits), offset by the minimum.
``IEEE``
    the order-preserving map of the IEEE-754 bit pattern (sign flips the
    magnitude bits), offset by the minimum key.  Always exact: NaN payloads,
    infinities, -0.0 and subnormals survive.

A codec is accepted only after the whole column has been decoded again with
the same kernel the readers use and compared byte for byte.  Column codes
are the unsigned integers ``code = value_key - offset`` of ``width`` bits.

Mixed-dtype tables are NumPy structured arrays of shape ``(n,)`` (or a dict
of equal-length 1-D arrays): every field is one column and gets its own
codec, fitted on the fields of one dtype at a time exactly as the columns of
a homogeneous table (:func:`as_table` normalises the input).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np

from ._numba import PARALLEL_MIN_VALUES, call_serial, njit, pnjit, prange

__all__ = [
    "BIN",
    "Codecs",
    "DEC",
    "IEEE",
    "INT",
    "SUPPORTED_DTYPES",
    "KIND_NAMES",
    "as_float64",
    "as_table",
    "candidate_codecs",
    "codec_check",
    "codec_stats",
    "column_dtypes",
    "decode_codes",
    "encode_columns",
    "encode_values",
    "fit_codecs",
    "fit_codecs_chunked",
    "merge_codec_checks",
    "merge_codec_stats",
    "needs_check",
    "settle_codecs",
]

INT, DEC, BIN, IEEE = 0, 1, 2, 3
KIND_NAMES = ("int", "decimal", "binary", "ieee")
MAX_DECIMAL_DIGITS = 9

SUPPORTED_DTYPES = tuple(
    np.dtype(t)
    for t in (
        "bool", "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64",
    )
)

_EXACT_INT = float(2**53)


class Codecs(NamedTuple):
    """Per-column codecs of one table (all arrays of length ``d``).

    Attributes
    ----------
    kind : uint8
        ``INT``, ``DEC``, ``BIN`` or ``IEEE``.
    width : int64
        Bits per value, 0 (constant column) to 64.
    offset : uint64
        Minimum key subtracted before storing (two's complement bits for
        signed minima).
    scale : int64
        ``k`` of ``DEC`` (``10**k``) and ``BIN`` (``2**k``); 0 otherwise.
    """

    kind: np.ndarray
    width: np.ndarray
    offset: np.ndarray
    scale: np.ndarray

    @property
    def factor(self) -> np.ndarray:
        """float64 factor per column: ``10**k`` (DEC, divide) or ``2**-k`` (BIN, multiply)."""
        f = np.ones(len(self.kind), dtype=np.float64)
        dec = self.kind == DEC
        f[dec] = 10.0 ** self.scale[dec].astype(np.float64)
        b = self.kind == BIN
        f[b] = np.ldexp(1.0, -self.scale[b])
        return f

    def describe(self, j: int) -> str:
        """Column ``j``'s codec in a few characters, e.g. ``dec:12b(k=2)``.

        Parameters
        ----------
        j : int
            The column.
        """
        k = int(self.kind[j])
        s = f"{KIND_NAMES[k]}:{int(self.width[j])}b"
        if k in (DEC, BIN):
            s += f"(k={int(self.scale[j])})"
        return s


def _storage_uint(dtype: np.dtype) -> np.dtype:
    return np.dtype(f"u{dtype.itemsize}")


def _bit_length(v: np.ndarray) -> np.ndarray:
    """Exact bit length of uint64 values, vectorised."""
    v = np.asarray(v, dtype=np.uint64).copy()
    w = np.zeros(v.shape, dtype=np.int64)
    for s in (32, 16, 8, 4, 2, 1):
        big = (v >> np.uint64(s)) != 0
        w += big * s
        v = np.where(big, v >> np.uint64(s), v)
    return w + (v != 0)


def _ieee_keys(bits: np.ndarray, nbits: int) -> np.ndarray:
    """Order-preserving unsigned keys of IEEE bit patterns (uint64)."""
    b = bits.astype(np.uint64)
    sign = np.uint64(1) << np.uint64(nbits - 1)
    full = np.uint64((1 << nbits) - 1)
    return np.where(b & sign, (~b) & full, b | sign)


# --------------------------------------------------------------------------
# the value kernel shared by every reader
# --------------------------------------------------------------------------
@njit(inline="always")
def _store_value(out_bits, out_float, k, j, kind, code, offset, factor, sign, full):
    key = code + offset
    if kind == 0:  # INT
        out_bits[k, j] = key
    elif kind == 3:  # IEEE
        key &= full
        if key & sign:
            out_bits[k, j] = key ^ sign
        else:
            out_bits[k, j] = (~key) & full
    elif kind == 1:  # DEC
        out_float[k, j] = np.float64(np.int64(key)) / factor
    else:  # BIN
        out_float[k, j] = np.float64(np.int64(key)) * factor


@njit(inline="always")
def _decode_code_row(codes, i, kind, offset, factor, sign, full, out_bits, out_float):
    for j in range(codes.shape[1]):
        _store_value(out_bits, out_float, i, j, kind[j], np.uint64(codes[i, j]), offset[j], factor[j], sign, full)


@pnjit
def _decode_codes(codes, kind, offset, factor, sign, full, out_bits, out_float):
    for i in prange(codes.shape[0]):
        _decode_code_row(codes, i, kind, offset, factor, sign, full, out_bits, out_float)


@pnjit
def _decode_codes_serial(codes, kind, offset, factor, sign, full, out_bits, out_float):
    # _decode_codes on one thread (opening a parallel region costs more than a small batch), compiled with
    # parallel=True all the same: the parfor pipeline makes this loop several times faster (_numba.call_serial)
    for i in range(codes.shape[0]):
        _decode_code_row(codes, i, kind, offset, factor, sign, full, out_bits, out_float)


def output_views(out: np.ndarray):
    """The (bits, float) views a decoding kernel writes into.

    Integer and IEEE codecs write bit patterns into the unsigned view; the
    fixed-point codecs write floats into the float view.

    Parameters
    ----------
    out : ndarray
        The output array of decoded values (its dtype chooses the views).
    """
    dt = out.dtype
    bits = out.view(_storage_uint(dt))
    if dt.kind == "f" and dt.itemsize >= 4:
        flt = out
    else:
        flt = np.empty((0, 0), dtype=np.float64)
    nb = 8 * dt.itemsize
    sign = np.uint64(1) << np.uint64(nb - 1)
    full = np.uint64(0xFFFFFFFFFFFFFFFF) if nb == 64 else np.uint64((1 << nb) - 1)
    return bits, flt, sign, full


def decode_codes(codes: np.ndarray, codecs: Codecs, dtype, factor=None) -> np.ndarray:
    """Values from column codes (the inverse of :func:`encode_columns`).

    A structured ``dtype`` gives a structured ``(n,)`` array, one field per
    column of ``codes``.  ``factor`` is ``codecs.factor``, for callers that
    keep it (computing it costs a few microseconds per call).

    Parameters
    ----------
    codes : (n, d) unsigned int array
        Column codes.
    codecs : Codecs
        The table's codecs.
    dtype : numpy dtype
        The table's dtype (structured for a mixed-dtype table).
    factor : (d,) float64, optional
        ``codecs.factor``, when the caller keeps it.
    """
    dtype = np.dtype(dtype)
    if dtype.names is not None:
        out = np.empty(codes.shape[0], dtype=dtype)
        for dt, cols, names in _dtype_groups(dtype):
            vals = decode_codes(codes[:, cols], _sub_codecs(codecs, cols), dt)
            for t, name in enumerate(names):
                out[name] = vals[:, t]
        return out
    codes = np.ascontiguousarray(codes)
    out = np.empty(codes.shape, dtype=dtype)
    bits, flt, sign, full = output_views(out)
    args = (codes, codecs.kind, codecs.offset, codecs.factor if factor is None else factor, sign, full, bits, flt)
    if codes.size >= PARALLEL_MIN_VALUES:
        _decode_codes(*args)
    else:
        key = (bits.dtype.num, flt.dtype.num, flt.ndim, *((a.dtype.num, a.flags.writeable) for a in args[:4]))
        call_serial(_decode_codes_serial, key, *args)
    return out


# --------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------
def _decimal_ok(X: np.ndarray, cols: np.ndarray, k: int) -> np.ndarray:
    """Whether ``k`` decimal digits represent every value of each column in ``cols`` exactly."""
    x = X[:, cols].astype(np.float64)
    q = np.rint(x * 10.0**k)
    back = (q / 10.0**k).astype(X.dtype)
    u = _storage_uint(X.dtype)
    ok = (back.view(u) == X[:, cols].view(u)).all(axis=0)
    ok &= (np.abs(q) <= _EXACT_INT).all(axis=0)
    return ok


def _decimal_candidates(X: np.ndarray, finite: np.ndarray, sample: int = 2048):
    """Smallest k per column, width and offset; width 65 where none applies."""
    n, d = X.shape
    k_col = np.full(d, -1, dtype=np.int64)
    width = np.full(d, 65, dtype=np.int64)
    offset = np.zeros(d, dtype=np.uint64)
    todo = np.flatnonzero(finite)
    with np.errstate(all="ignore"):
        for part in (slice(0, min(n, sample)), slice(0, n)):
            start = np.zeros(d, dtype=np.int64) if part.stop != n else np.maximum(k_col, 0)
            active = todo.copy()
            k_found = np.full(d, -1, dtype=np.int64)
            for k in range(MAX_DECIMAL_DIGITS + 1):
                cols = active[start[active] <= k]
                if cols.size == 0:
                    if active.size == 0:
                        break
                    continue
                ok = _decimal_ok(X[part], cols, k)
                k_found[cols[ok]] = k
                active = np.setdiff1d(active, cols[ok], assume_unique=True)
            todo = np.flatnonzero(k_found >= 0)
            k_col = k_found
    for j in np.flatnonzero(k_col >= 0):
        q = np.rint(X[:, j].astype(np.float64) * 10.0 ** k_col[j]).astype(np.int64)
        qmin, qmax = q.min(), q.max()
        width[j] = _bit_length(np.array([np.uint64(int(qmax) - int(qmin))]))[0]
        offset[j] = np.uint64(int(qmin) & 0xFFFFFFFFFFFFFFFF)
    return np.maximum(k_col, 0), width, offset


def _ieee_candidates(X: np.ndarray):
    nb = 8 * X.dtype.itemsize
    keys = _ieee_keys(X.view(_storage_uint(X.dtype)), nb)
    mn, mx = keys.min(axis=0), keys.max(axis=0)
    return mn, _bit_length(mx - mn)


def fit_codecs(X: np.ndarray, widths: str = "narrow") -> Codecs:
    """Choose the narrowest exact codec for every column of ``X``.

    Parameters
    ----------
    X : (n, d) array of a supported dtype (see ``SUPPORTED_DTYPES``)
        or a mixed-dtype table (see :func:`as_table`): one codec per field,
        chosen from that field's values and dtype alone.
    widths : {"narrow", "native"}
        ``"narrow"`` (default) picks the narrowest exact codec per column.
        ``"native"`` keeps every value at its dtype's full width (integers
        offset by the dtype minimum, floats as order-preserving IEEE keys,
        bools as one bit): the paper's "raw 8-bit pixels" setting.

    Returns
    -------
    Codecs
        Verified: ``decode_codes(encode_columns(X, c), c, X.dtype)`` equals
        ``X`` byte for byte.
    """
    X = as_table(X)
    if X.dtype.names is not None:
        return _frozen(_fit_fields(X, widths))
    return _frozen(_fit_codecs(X, widths))


def _fit_fields(X: np.ndarray, widths: str) -> Codecs:
    """Codecs of a structured table: the fields of each dtype fitted as one homogeneous table."""
    d = len(X.dtype.names)
    out = Codecs(np.zeros(d, dtype=np.uint8), np.zeros(d, dtype=np.int64), np.zeros(d, dtype=np.uint64),
                 np.zeros(d, dtype=np.int64))
    for _, cols, names in _dtype_groups(X.dtype):
        for a, b in zip(out, _fit_codecs(_field_block(X, names), widths)):
            a[cols] = b
    return out


def _frozen(codecs: Codecs) -> Codecs:
    """Codecs with read-only arrays (one compiled kernel variant everywhere)."""
    for a in codecs:
        a.setflags(write=False)
    return codecs


def _fit_codecs(X: np.ndarray, widths: str) -> Codecs:
    if widths not in ("narrow", "native"):
        raise ValueError(f"widths must be 'narrow' or 'native', got {widths!r}")
    n, d = X.shape
    kind = np.zeros(d, dtype=np.uint8)
    scale = np.zeros(d, dtype=np.int64)
    if widths == "native":
        nb = 1 if X.dtype == np.bool_ else 8 * X.dtype.itemsize
        off = (1 << (nb - 1)) if X.dtype.kind == "i" else 0
        kind[:] = IEEE if X.dtype.kind == "f" else INT
        return _verified(X, Codecs(kind, np.full(d, nb, dtype=np.int64), np.full(d, off, dtype=np.uint64), scale))
    # the statistics gedenb.dask merges over row chunks, here of all rows at once (one definition)
    return _verified(X, _block_candidates(_block_stats(X, widths), X.dtype, widths))


def _verified(X: np.ndarray, codecs: Codecs) -> Codecs:
    """Decode every column again and fall back to IEEE where it differs."""
    bad = _verification_failures(X, codecs)
    u = _storage_uint(X.dtype)
    if bad.any():
        if X.dtype.kind != "f":  # integer codecs are exact by construction
            raise AssertionError("integer codec failed verification; please report this bug")
        off, wid = _ieee_candidates(X[:, bad])
        kind, width, offset, scale = (np.array(a) for a in codecs)
        kind[bad], width[bad], offset[bad], scale[bad] = IEEE, wid, off, 0
        codecs = Codecs(kind, width, offset, scale)
        back = decode_codes(encode_columns(X, codecs, check=False), codecs, X.dtype)
        if not (back.view(u) == X.view(u)).all():
            raise AssertionError("IEEE codec failed verification; please report this bug")
    return codecs


def _verification_failures(X: np.ndarray, codecs: Codecs) -> np.ndarray:
    """Columns of a homogeneous ``X`` that ``codecs`` do not give back byte for byte."""
    back = decode_codes(encode_columns(X, codecs, check=False), codecs, X.dtype)
    u = _storage_uint(X.dtype)
    return ~(back.view(u) == X.view(u)).all(axis=0)


# --------------------------------------------------------------------------
# fitting by parts: per-chunk statistics that merge into fit_codecs' result
# --------------------------------------------------------------------------
# fit_codecs(X) is a function of a few column statistics: minima and maxima
# (integers, IEEE keys, float values), the fractional bits a binary grid
# needs, and the smallest number of decimal digits valid for every row.  All
# but the last merge by min/max; the decimal digits merge as "smallest k valid
# for every chunk", which needs a confirming pass only when chunks disagree.
# The verifying decode is per row, so it merges by OR.  gedenb.dask maps
# codec_stats over row chunks, reduces with merge_codec_stats, and finishes
# with codec_check / merge_codec_checks / settle_codecs; on one chunk the
# result is fit_codecs's, and on any split of the rows it is the same
# (tests/test_dask.py checks both).
class BlockStats(NamedTuple):
    """Column statistics of the rows seen so far, for the columns of one dtype.

    ``lo``/``hi`` are the column minima and maxima (integers, as stored) or
    the IEEE key extremes (floats).  The float64 extremes ``xmin``/``xmax``,
    ``finite``, ``frac`` (fractional bits for a binary grid) and ``dec_k``
    (smallest valid decimal digits, -1 for none) exist for float32/float64;
    ``dec_exact`` says that ``dec_k`` is known to be the smallest k valid for
    every row merged so far (otherwise it is a lower bound to confirm).
    """

    rows: int
    lo: np.ndarray
    hi: np.ndarray
    finite: np.ndarray
    xmin: np.ndarray
    xmax: np.ndarray
    frac: np.ndarray
    dec_k: np.ndarray
    dec_exact: np.ndarray


def _blocks(X: np.ndarray) -> list:
    """``[(columns, (n, k) homogeneous block)]`` of a validated table, one per dtype."""
    if X.dtype.names is None:
        return [(np.arange(X.shape[1], dtype=np.int64), X)]
    return [(cols, _field_block(X, names)) for _, cols, names in _dtype_groups(X.dtype)]


def _block_dtypes(dtype: np.dtype, d: int) -> list:
    if dtype.names is None:
        return [(np.arange(d, dtype=np.int64), dtype)]
    return [(cols, dt) for dt, cols, _ in _dtype_groups(dtype)]


def _block_stats(X: np.ndarray, widths: str) -> BlockStats:
    n, d = X.shape
    empty = np.zeros(0, dtype=np.int64)
    if widths == "native":
        return BlockStats(n, *(empty,) * 8)
    if X.dtype.kind in "biu":
        Y = X.view(np.uint8) if X.dtype == np.bool_ else X
        return BlockStats(n, Y.min(axis=0), Y.max(axis=0), *(empty,) * 6)
    keys = _ieee_keys(X.view(_storage_uint(X.dtype)), 8 * X.dtype.itemsize)
    lo, hi = keys.min(axis=0), keys.max(axis=0)
    if X.dtype.itemsize < 4:
        return BlockStats(n, lo, hi, *(empty,) * 6)
    finite = np.isfinite(X).all(axis=0)
    xmin = np.zeros(d, dtype=np.float64)
    xmax = np.zeros(d, dtype=np.float64)
    frac = np.zeros(d, dtype=np.int64)
    cols = np.flatnonzero(finite)
    if cols.size:
        x = X[:, cols].astype(np.float64)
        xmin[cols], xmax[cols] = x.min(axis=0), x.max(axis=0)
        m, e = np.frexp(x)
        M = np.ldexp(m, 53).astype(np.int64)
        low = M & -M
        tz = np.where(M != 0, _bit_length(low.astype(np.uint64)) - 1, 53)
        frac[cols] = np.where(M != 0, 53 - e.astype(np.int64) - tz, 0).max(axis=0)
    k, w, _ = _decimal_candidates(X, finite)
    dec_k = np.where(w <= 64, k, -1)
    return BlockStats(n, lo, hi, finite, xmin, xmax, frac, dec_k, np.ones(d, dtype=bool))


def _merge_dec(ka, ea, kb, eb):
    """Merge "smallest valid decimal digits" of two row sets (-1: none valid)."""
    none = (ka < 0) | (kb < 0)
    k = np.where(none, -1, np.maximum(ka, kb))
    return k, none | (ea & eb & (ka == kb))


def _merge_block(a: BlockStats, b: BlockStats) -> BlockStats:
    if a.lo.size == 0:
        return a._replace(rows=a.rows + b.rows)
    lo, hi = np.minimum(a.lo, b.lo), np.maximum(a.hi, b.hi)
    if a.finite.size == 0:
        return BlockStats(a.rows + b.rows, lo, hi, *a[3:])
    k, exact = _merge_dec(a.dec_k, a.dec_exact, b.dec_k, b.dec_exact)
    return BlockStats(a.rows + b.rows, lo, hi, a.finite & b.finite, np.minimum(a.xmin, b.xmin),
                      np.maximum(a.xmax, b.xmax), np.maximum(a.frac, b.frac), k, exact)


def _block_candidates(s: BlockStats, dtype: np.dtype, widths: str) -> Codecs:
    """The codecs ``_fit_codecs`` proposes (before verification) from merged statistics."""
    d = s.lo.size
    kind = np.zeros(d, dtype=np.uint8)
    scale = np.zeros(d, dtype=np.int64)
    if dtype.kind in "biu":
        u = _storage_uint(np.dtype(np.uint8) if dtype == np.bool_ else dtype)
        return Codecs(kind, _bit_length((s.hi.view(u) - s.lo.view(u)).astype(np.uint64)),
                      s.lo.view(u).astype(np.uint64), scale)
    width = _bit_length(s.hi - s.lo)
    offset = s.lo.copy()
    kind[:] = IEEE
    if dtype.itemsize < 4:
        return Codecs(kind, width, offset, scale)
    # decimal: q = rint(x * 10**k) is monotone in x, so its extremes come from the value extremes
    dk, dw, do = np.maximum(s.dec_k, 0), np.full(d, 65, dtype=np.int64), np.zeros(d, dtype=np.uint64)
    bk, bw, bo = np.zeros(d, dtype=np.int64), np.full(d, 65, dtype=np.int64), np.zeros(d, dtype=np.uint64)
    with np.errstate(all="ignore"):
        for j in np.flatnonzero(s.finite):
            if s.dec_k[j] >= 0:
                qmin = int(np.rint(s.xmin[j] * 10.0 ** dk[j]).astype(np.int64))
                qmax = int(np.rint(s.xmax[j] * 10.0 ** dk[j]).astype(np.int64))
                dw[j] = (qmax - qmin).bit_length()
                do[j] = np.uint64(qmin & 0xFFFFFFFFFFFFFFFF)
            k = max(int(s.frac[j]), 0)
            big = np.ldexp(max(abs(s.xmin[j]), abs(s.xmax[j])), k)
            if big <= _EXACT_INT and k <= 1074:
                qmin = int(np.ldexp(s.xmin[j], k).astype(np.int64))
                qmax = int(np.ldexp(s.xmax[j], k).astype(np.int64))
                bw[j] = (qmax - qmin).bit_length()
                bo[j] = np.uint64(qmin & 0xFFFFFFFFFFFFFFFF)
                bk[j] = k
    cands = ((DEC, (dk, dw, do)), (BIN, (bk, bw, bo)))
    for code, (k, w, off) in cands:
        better = w < width
        kind[better] = code
        width[better] = w[better]
        offset[better] = off[better]
        scale[better] = k[better]
    return Codecs(kind, width, offset, scale)


def codec_stats(X, widths: str = "narrow") -> tuple:
    """Column statistics of one chunk of rows (see :func:`merge_codec_stats`).

    Parameters
    ----------
    X : table
        A chunk of rows, as accepted by :func:`fit_codecs`.
    widths : {"narrow", "native"}

    Returns
    -------
    tuple of BlockStats
        One entry per dtype of the table's columns (one for a homogeneous
        array), in the order of first appearance.
    """
    if widths not in ("narrow", "native"):
        raise ValueError(f"widths must be 'narrow' or 'native', got {widths!r}")
    return tuple(_block_stats(B, widths) for _, B in _blocks(as_table(X)))


def merge_codec_stats(a: tuple, b: tuple) -> tuple:
    """Statistics of the union of two row sets (associative and commutative).

    Parameters
    ----------
    a, b : tuple of BlockStats
        :func:`codec_stats` of two row sets of the same table.
    """
    return tuple(_merge_block(x, y) for x, y in zip(a, b))


def candidate_codecs(stats: tuple, dtype, d: int, widths: str = "narrow") -> Codecs:
    """The codecs :func:`fit_codecs` would propose for the merged rows, before its verifying decode.

    Parameters
    ----------
    stats : tuple of BlockStats
        Merged :func:`codec_stats` of every row.
    dtype : numpy dtype
        The table's dtype.
    d : int
        Columns.
    widths : {"narrow", "native"}
        As in :func:`fit_codecs`.
    """
    dtype = np.dtype(dtype)
    if widths == "native":
        proto = np.zeros(1, dtype=dtype) if dtype.names is not None else np.zeros((1, d), dtype=dtype)
        return fit_codecs(proto, "native")  # the same for any data of this dtype
    out = Codecs(np.zeros(d, dtype=np.uint8), np.zeros(d, dtype=np.int64), np.zeros(d, dtype=np.uint64),
                 np.zeros(d, dtype=np.int64))
    for (cols, dt), s in zip(_block_dtypes(dtype, d), stats):
        for a, b in zip(out, _block_candidates(s, dt, widths)):
            a[cols] = b
    return out


def codec_check(X, codecs: Codecs, stats: tuple) -> tuple:
    """The verifying decode of :func:`fit_codecs` on one chunk, under proposed codecs.

    Returns one ``(failed, dec_k)`` pair per dtype block: the columns whose
    values the codecs do not give back byte for byte, and for every float
    column whose decimal digits are not yet confirmed (``dec_exact`` false)
    the smallest valid ``k >= dec_k`` on this chunk (-1: none).

    Parameters
    ----------
    X : table
        One chunk of rows, as accepted by :func:`fit_codecs`.
    codecs : Codecs
        The proposed codecs (:func:`candidate_codecs`).
    stats : tuple of BlockStats
        The merged statistics they came from.
    """
    X = as_table(X)
    out = []
    for (cols, B), s in zip(_blocks(X), stats):
        sub = _sub_codecs(codecs, cols)
        failed = _verification_failures(B, sub) if ((sub.kind == DEC) | (sub.kind == BIN)).any() \
            else np.zeros(len(cols), dtype=bool)
        dec_k = np.full(len(cols), -1, dtype=np.int64)
        if s.finite.size:
            dec_k[:] = s.dec_k
            todo = np.flatnonzero(~s.dec_exact & (s.dec_k >= 0))
            dec_k[todo] = -1
            with np.errstate(all="ignore"):
                for k in range(MAX_DECIMAL_DIGITS + 1):
                    cols_k = todo[s.dec_k[todo] <= k]
                    if cols_k.size == 0:
                        if todo.size == 0:
                            break
                        continue
                    ok = _decimal_ok(B, cols_k, k)
                    dec_k[cols_k[ok]] = k
                    todo = np.setdiff1d(todo, cols_k[ok], assume_unique=True)
        out.append((failed, dec_k))
    return tuple(out)


def merge_codec_checks(a: tuple, b: tuple) -> tuple:
    """Merge :func:`codec_check` results of two row sets.

    Parameters
    ----------
    a, b : tuple
        :func:`codec_check` results of two row sets.
    """
    return tuple((fa | fb, np.where((ka < 0) | (kb < 0), -1, np.maximum(ka, kb)))
                 for (fa, ka), (fb, kb) in zip(a, b))


def needs_check(stats: tuple, codecs: Codecs) -> bool:
    """Whether a :func:`codec_check` pass is needed before :func:`settle_codecs`.

    Parameters
    ----------
    stats : tuple of BlockStats
        Merged :func:`codec_stats` of every row.
    codecs : Codecs
        The candidates proposed from them.
    """
    if ((codecs.kind == DEC) | (codecs.kind == BIN)).any():
        return True
    return any(s.finite.size and bool((~s.dec_exact & (s.dec_k >= 0)).any()) for s in stats)


def settle_codecs(stats: tuple, checks, dtype, d: int, widths: str = "narrow"):
    """Final codecs from merged statistics and merged checks.

    Returns ``(codecs, stats)``: ``codecs`` is None when a decimal digit
    count changed under the check (rare: chunks disagreed on it); then the
    check must run again under the candidates of the returned statistics.

    Parameters
    ----------
    stats : tuple of BlockStats
        Merged :func:`codec_stats` of every row.
    checks : tuple or None
        Merged :func:`codec_check` results under the candidates (None when no check was needed).
    dtype : numpy dtype
        The table's dtype.
    d : int
        Columns.
    widths : {"narrow", "native"}
        As in :func:`fit_codecs`.
    """
    dtype = np.dtype(dtype)
    codecs = candidate_codecs(stats, dtype, d, widths)
    if checks is None:
        return _frozen(codecs), stats
    new_stats, changed = [], False
    for s, (_, k) in zip(stats, checks):
        if s.finite.size:
            todo = ~s.dec_exact & (s.dec_k >= 0)
            moved = todo & (k != s.dec_k)
            changed |= bool(moved.any())
            # k is the smallest valid k >= dec_k on every chunk: where all chunks agree it is exact
            s = s._replace(dec_k=np.where(todo, k, s.dec_k), dec_exact=s.dec_exact | (todo & ~moved))
        new_stats.append(s)
    new_stats = tuple(new_stats)
    if changed:
        return None, new_stats
    kind, width, offset, scale = (np.array(a) for a in codecs)
    for (cols, dt), s, (failed, _) in zip(_block_dtypes(dtype, d), stats, checks):
        if not failed.any():
            continue
        if dt.kind != "f":
            raise AssertionError("integer codec failed verification; please report this bug")
        bad = cols[failed]
        kind[bad], scale[bad] = IEEE, 0
        offset[bad] = s.lo[failed]
        width[bad] = _bit_length(s.hi[failed] - s.lo[failed])
    return _frozen(Codecs(kind, width, offset, scale)), new_stats


def fit_codecs_chunked(chunks, widths: str = "narrow") -> Codecs:
    """:func:`fit_codecs` of the rows of ``chunks`` stacked, fitted chunk by chunk.

    The sequential form of what :func:`gedenb.dask.compress` runs as
    map-reduce passes: statistics per chunk, merged; then the verifying
    check per chunk under the proposed codecs, merged, repeated only while
    chunks disagree on a column's decimal digits.  The result equals
    ``fit_codecs`` of the stacked rows.

    Parameters
    ----------
    chunks : sequence of tables
        Row chunks of one table (same columns and dtype), each non-empty.
    widths : {"narrow", "native"}
    """
    chunks = [as_table(c) for c in chunks]
    if not chunks:
        raise ValueError("expected at least one chunk")
    dtype = chunks[0].dtype
    d = len(dtype.names) if dtype.names is not None else chunks[0].shape[1]
    if any(c.dtype != dtype or (c.ndim == 2 and c.shape[1] != d) for c in chunks):
        raise ValueError("all chunks must have the same columns and dtype")
    stats = codec_stats(chunks[0], widths)
    for c in chunks[1:]:
        stats = merge_codec_stats(stats, codec_stats(c, widths))
    codecs = candidate_codecs(stats, dtype, d, widths)
    while needs_check(stats, codecs):
        checks = codec_check(chunks[0], codecs, stats)
        for c in chunks[1:]:
            checks = merge_codec_checks(checks, codec_check(c, codecs, stats))
        final, stats = settle_codecs(stats, checks, dtype, d, widths)
        if final is not None:
            return final
        codecs = candidate_codecs(stats, dtype, d, widths)
    return _frozen(codecs)


# --------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------
def code_dtype(widths: np.ndarray) -> np.dtype:
    """Narrowest unsigned dtype holding codes of the widest column.

    Parameters
    ----------
    widths : (d,) int
        Bits per column code.
    """
    w = int(np.max(widths)) if len(widths) else 0
    for t in (np.uint8, np.uint16, np.uint32):
        if w <= 8 * np.dtype(t).itemsize:
            return np.dtype(t)
    return np.dtype(np.uint64)


def encode_columns(X: np.ndarray, codecs: Codecs, check: bool = True) -> np.ndarray:
    """Column codes of ``X`` under ``codecs`` (n, d), narrowest uint dtype.

    ``X`` may be a structured table (one column per field).

    Parameters
    ----------
    X : (n, d) array or structured (n,) array
        The table.
    codecs : Codecs
        Its codecs (:func:`fit_codecs`).
    check : bool
        Check and convert ``X`` first (:func:`as_table`); False for a table that already was.
    """
    if check:
        X = as_table(X)
    if X.dtype.names is not None:
        out = np.empty((X.shape[0], len(X.dtype.names)), dtype=code_dtype(codecs.width))
        for _, cols, names in _dtype_groups(X.dtype):
            out[:, cols] = encode_columns(_field_block(X, names), _sub_codecs(codecs, cols), check=False)
        return out
    n, d = X.shape
    cdt = code_dtype(codecs.width)
    out = np.empty((n, d), dtype=cdt)
    u = _storage_uint(X.dtype) if X.dtype != np.bool_ else np.dtype(np.uint8)
    ub = X.view(u)
    kinds = codecs.kind
    with np.errstate(all="ignore"):
        sel = np.flatnonzero(kinds == INT)
        if sel.size:
            if sel.size == d:
                out[...] = ub - codecs.offset.astype(u)[None, :]
            else:
                out[:, sel] = ub[:, sel] - codecs.offset[sel].astype(u)[None, :]
        sel = np.flatnonzero(kinds == IEEE)
        if sel.size:
            keys = _ieee_keys(ub[:, sel], 8 * u.itemsize)
            out[:, sel] = keys - codecs.offset[sel][None, :]
        for kd in (DEC, BIN):
            sel = np.flatnonzero(kinds == kd)
            if sel.size == 0:
                continue
            x = X[:, sel].astype(np.float64)
            if kd == DEC:
                q = np.rint(x * 10.0 ** codecs.scale[sel][None, :].astype(np.float64))
            else:
                q = np.ldexp(x, codecs.scale[sel][None, :])
            out[:, sel] = q.astype(np.int64).view(np.uint64) - codecs.offset[sel][None, :]
    return out


def encode_values(values: np.ndarray, codecs: Codecs, dtype) -> np.ndarray:
    """Round arbitrary float64 values onto each column's codec grid.

    Used for condensed samples: centroids are rounded to the nearest value
    the column's codec can represent (half to even) and clipped into the
    column's range, so that they can be stored as extra rows of the same
    width.  NaN centroids of fixed-point or integer columns become the
    column minimum.  ``dtype`` may be structured (one field per column).

    Parameters
    ----------
    values : (k, d) float64
        The values to round (condensed samples).
    codecs : Codecs
        The table's codecs.
    dtype : numpy dtype
        The table's dtype.
    """
    values = np.asarray(values, dtype=np.float64)
    m, d = values.shape
    dtypes = column_dtypes(dtype, d)
    out = np.zeros((m, d), dtype=code_dtype(codecs.width))
    hi = np.where(codecs.width >= 64, np.uint64(0xFFFFFFFFFFFFFFFF),
                  (np.uint64(1) << np.minimum(codecs.width, 63).astype(np.uint64)) - np.uint64(1))
    with np.errstate(all="ignore"):
        for j in range(d):
            v = values[:, j]
            k = int(codecs.kind[j])
            dtype = dtypes[j]
            if k == IEEE:
                u = _storage_uint(dtype)
                x = v.astype(dtype)
                key = _ieee_keys(x.view(u), 8 * dtype.itemsize)
                c = key - codecs.offset[j]
                below = key < codecs.offset[j]
            else:
                if k == INT:
                    q = np.rint(v)
                    base = float(_signed_offset(codecs.offset[j], dtype))
                elif k == DEC:
                    q = np.rint(v * 10.0 ** int(codecs.scale[j]))
                    base = float(_signed_offset(codecs.offset[j], np.dtype(np.int64)))
                else:
                    q = np.rint(np.ldexp(v, int(codecs.scale[j])))
                    base = float(_signed_offset(codecs.offset[j], np.dtype(np.int64)))
                rel = np.nan_to_num(q - base, nan=0.0, posinf=np.inf, neginf=-np.inf)
                below = rel < 0
                rel = np.clip(rel, 0.0, min(float(hi[j]), 18446744073709549568.0))
                c = rel.astype(np.uint64)
            c = np.where(below, np.uint64(0), c)
            out[:, j] = np.minimum(c, hi[j])
    return out


def _signed_offset(offset, dtype: np.dtype) -> int:
    """The column minimum held in ``offset`` as a Python int."""
    o = int(offset)
    if dtype.kind == "i":
        nb = 8 * dtype.itemsize
        o &= (1 << nb) - 1
        if o >= 1 << (nb - 1):
            o -= 1 << nb
    return o


def column_dtypes(dtype, d: int) -> tuple:
    """The dtype of each of the ``d`` columns: the fields of a structured dtype, else ``dtype`` ``d`` times.

    Parameters
    ----------
    dtype : numpy dtype
        A plain or structured dtype.
    d : int
        Columns.
    """
    dtype = np.dtype(dtype)
    if dtype.names is None:
        return (dtype,) * d
    return tuple(dtype.fields[name][0] for name in dtype.names)


def _dtype_groups(dtype: np.dtype) -> list:
    """``[(dtype, columns, names)]`` of a structured dtype: its fields grouped by dtype, in order of appearance."""
    groups: dict = {}
    for j, name in enumerate(dtype.names):
        dt = dtype.fields[name][0]
        groups.setdefault(dt, ([], []))
        groups[dt][0].append(j)
        groups[dt][1].append(name)
    return [(dt, np.asarray(cols, dtype=np.int64), names) for dt, (cols, names) in groups.items()]


def _field_block(X: np.ndarray, names) -> np.ndarray:
    """The fields ``names`` (all of one dtype) of a structured table as a C-contiguous (n, k) array."""
    out = np.empty((X.shape[0], len(names)), dtype=X.dtype.fields[names[0]][0])
    for t, name in enumerate(names):
        out[:, t] = X[name]
    return out


def _sub_codecs(codecs: Codecs, cols: np.ndarray) -> Codecs:
    return Codecs(*(np.ascontiguousarray(a[cols]) for a in codecs))


def as_float64(values: np.ndarray) -> np.ndarray:
    """Decoded rows as a (k, d) float64 array; the fields of a structured array become its columns.

    A signalling NaN widens quietly (it is exact data of a float column).

    Parameters
    ----------
    values : (k, d) array or structured (k,) array
        Decoded rows.
    """
    with np.errstate(invalid="ignore"):
        if values.dtype.names is None:
            return values.astype(np.float64)
        out = np.empty((values.shape[0], len(values.dtype.names)), dtype=np.float64)
        for j, name in enumerate(values.dtype.names):
            out[:, j] = values[name]
        return out


def as_table(X) -> np.ndarray:
    """Validate and normalise a table for compression.

    Parameters
    ----------
    X : ndarray or mapping
        A homogeneous (n, d) array of a supported dtype; or a mixed-dtype
        table: a structured array of shape ``(n,)`` whose fields are scalars
        of supported dtypes, or a dict ``{name: (n,) array}`` (fields in the
        dict's order).  A pandas DataFrame converts with
        ``df.to_records(index=False)`` (numeric and bool columns only).

    Returns
    -------
    ndarray
        The homogeneous array (C-contiguous, native byte order), or a
        C-contiguous structured array with the same field names in the same
        order, every field in native byte order and no padding between or
        after the fields (``numpy.lib.recfunctions.repack_fields``).  Field
        values are unchanged, byte for byte.

    Raises
    ------
    TypeError
        Not an array or mapping, a field name that is not a string, or an
        unsupported dtype (the message names the field).
    ValueError
        Wrong shape, no rows or no fields, nested or subarray fields, field
        titles, or dict entries that are not 1-D or differ in length.
    """
    if isinstance(X, Mapping):
        return _from_mapping(X)
    if isinstance(X, np.ndarray) and X.dtype.names is not None:
        return _check_structured(X)
    return _check_table(X)


def _from_mapping(X: Mapping) -> np.ndarray:
    if len(X) == 0:
        raise ValueError("expected at least one column, got an empty mapping")
    cols = []
    for name, v in X.items():
        if not isinstance(name, str):
            raise TypeError(f"column names must be strings, got {name!r}")
        if not name:
            raise ValueError("column names must not be empty")
        a = np.asarray(v)
        if a.ndim != 1:
            raise ValueError(f"column {name!r} must be 1-D, got shape {a.shape}")
        if a.dtype.names is not None or a.dtype.subdtype is not None:
            raise ValueError(f"column {name!r} must hold scalars, got dtype {a.dtype}")
        cols.append((name, a))
    n = {len(a) for _, a in cols}
    if len(n) != 1:
        raise ValueError(f"columns must have equal lengths, got {sorted(n)}")
    try:
        dtype = np.dtype([(name, a.dtype) for name, a in cols])
    except (TypeError, ValueError) as e:
        raise TypeError(f"cannot build a table from these columns: {e}") from None
    out = np.empty(len(cols[0][1]), dtype=dtype)
    for name, a in cols:
        out[name] = a
    return _check_structured(out)


def _check_structured(X: np.ndarray) -> np.ndarray:
    if type(X) is not np.ndarray:  # a recarray (pandas' to_records) becomes a plain array
        X = X.view(np.ndarray)
    dt = X.dtype
    if X.ndim != 1:
        raise ValueError(f"a structured table must be 1-D (one record per row), got shape {X.shape}")
    if not dt.names:
        raise ValueError("expected at least one field, got a structured dtype without fields")
    if len(dt.fields) != len(dt.names):
        raise ValueError("fields with titles are not supported; rename the fields and drop the titles")
    fields = []
    for name in dt.names:
        f = dt.fields[name][0]
        if f.names is not None:
            raise ValueError(f"field {name!r} is itself structured ({f}); flatten nested fields "
                             "(numpy.lib.recfunctions.flatten_descr)")
        if f.subdtype is not None:
            raise ValueError(f"field {name!r} is a subarray ({f.subdtype[0]} x {f.subdtype[1]}); "
                             "split it into scalar fields")
        if f.byteorder == ">" and f.newbyteorder("=") in SUPPORTED_DTYPES:
            f = f.newbyteorder("=")
        if f not in SUPPORTED_DTYPES:
            names = ", ".join(str(t) for t in SUPPORTED_DTYPES)
            raise TypeError(f"field {name!r} has dtype {f}, which is not supported (supported: {names}); "
                            "convert it, e.g. to int64 or float64")
        fields.append((name, f))
    if X.shape[0] == 0:
        raise ValueError(f"expected at least one row, got shape {X.shape}")
    packed = np.dtype(fields)
    if dt == packed and X.flags.c_contiguous:
        return X
    out = np.empty(X.shape[0], dtype=packed)
    for name in dt.names:
        out[name] = X[name]
    return out


def _check_table(X) -> np.ndarray:
    if not isinstance(X, np.ndarray):
        raise TypeError(f"expected a NumPy array, got {type(X).__name__}; use np.asarray(X)")
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D table (rows x columns), got {X.ndim}-D with shape {X.shape}")
    if X.dtype.byteorder == ">" and X.dtype.newbyteorder("=") in SUPPORTED_DTYPES:
        X = X.astype(X.dtype.newbyteorder("="))
    if X.dtype not in SUPPORTED_DTYPES:
        names = ", ".join(str(t) for t in SUPPORTED_DTYPES)
        raise TypeError(
            f"dtype {X.dtype} is not supported (supported: {names}); "
            "convert with X.astype(np.float64) or a suitable integer type"
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"expected at least one row and one column, got shape {X.shape}")
    return np.ascontiguousarray(X)
