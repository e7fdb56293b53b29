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
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._numba import njit, pnjit, prange

__all__ = [
    "BIN",
    "Codecs",
    "DEC",
    "IEEE",
    "INT",
    "SUPPORTED_DTYPES",
    "KIND_NAMES",
    "decode_codes",
    "encode_columns",
    "encode_values",
    "fit_codecs",
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


@pnjit
def _decode_codes(codes, kind, offset, factor, sign, full, out_bits, out_float):
    n, d = codes.shape
    for i in prange(n):
        for j in range(d):
            _store_value(out_bits, out_float, i, j, kind[j], np.uint64(codes[i, j]),
                         offset[j], factor[j], sign, full)


def output_views(out: np.ndarray):
    """The (bits, float) views a decoding kernel writes into.

    Integer and IEEE codecs write bit patterns into the unsigned view; the
    fixed-point codecs write floats into the float view.
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


def decode_codes(codes: np.ndarray, codecs: Codecs, dtype) -> np.ndarray:
    """Values from column codes (the inverse of :func:`encode_columns`)."""
    dtype = np.dtype(dtype)
    codes = np.ascontiguousarray(codes)
    out = np.empty(codes.shape, dtype=dtype)
    bits, flt, sign, full = output_views(out)
    _decode_codes(codes, codecs.kind, codecs.offset, codecs.factor, sign, full, bits, flt)
    return out


# --------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------
def _int_candidates(X: np.ndarray):
    if X.dtype == np.bool_:
        X = X.view(np.uint8)
    u = _storage_uint(X.dtype)
    mn, mx = X.min(axis=0), X.max(axis=0)
    span = mx.view(u) - mn.view(u)  # wraps modulo 2**B: the exact unsigned span
    return mn.view(u).astype(np.uint64), _bit_length(span.astype(np.uint64))


def _decimal_candidates(X: np.ndarray, finite: np.ndarray, sample: int = 2048):
    """Smallest k per column, width and offset; width 65 where none applies."""
    n, d = X.shape
    ubits = X.view(_storage_uint(X.dtype))
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
                x = X[part][:, cols].astype(np.float64)
                q = np.rint(x * 10.0**k)
                back = (q / 10.0**k).astype(X.dtype)
                ok = (back.view(ubits.dtype) == ubits[part][:, cols]).all(axis=0)
                ok &= (np.abs(q) <= _EXACT_INT).all(axis=0)
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


def _binary_candidates(X: np.ndarray, finite: np.ndarray):
    n, d = X.shape
    width = np.full(d, 65, dtype=np.int64)
    offset = np.zeros(d, dtype=np.uint64)
    k_col = np.zeros(d, dtype=np.int64)
    cols = np.flatnonzero(finite)
    if cols.size == 0:
        return k_col, width, offset
    x = X[:, cols].astype(np.float64)
    m, e = np.frexp(x)
    M = np.ldexp(m, 53).astype(np.int64)
    low = M & -M  # lowest set bit (0 for zeros)
    tz = np.where(M != 0, _bit_length(low.astype(np.uint64)) - 1, 53)
    frac = np.where(M != 0, 53 - e.astype(np.int64) - tz, 0)
    k = np.maximum(frac.max(axis=0), 0)
    with np.errstate(all="ignore"):
        q = np.ldexp(x, k[None, :])
        fits = (np.abs(q) <= _EXACT_INT).all(axis=0) & (k <= 1074)
    for t, j in enumerate(cols):
        if not fits[t]:
            continue
        qi = q[:, t].astype(np.int64)
        qmin, qmax = int(qi.min()), int(qi.max())
        width[j] = int(qmax - qmin).bit_length()
        offset[j] = np.uint64(qmin & 0xFFFFFFFFFFFFFFFF)
        k_col[j] = k[t]
    return k_col, width, offset


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
    return _frozen(_fit_codecs(_check_table(X), widths))


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
    if X.dtype.kind in "biu":
        offset, width = _int_candidates(X)
        return _verified(X, Codecs(kind, width, offset, scale))
    offset, width = _ieee_candidates(X)
    kind[:] = IEEE
    if X.dtype.itemsize >= 4:
        finite = np.isfinite(X).all(axis=0)
        for code, (k, w, off) in ((DEC, _decimal_candidates(X, finite)), (BIN, _binary_candidates(X, finite))):
            better = w < width
            kind[better] = code
            width[better] = w[better]
            offset[better] = off[better]
            scale[better] = k[better]
    return _verified(X, Codecs(kind, width, offset, scale))


def _verified(X: np.ndarray, codecs: Codecs) -> Codecs:
    """Decode every column again and fall back to IEEE where it differs."""
    codes = encode_columns(X, codecs, check=False)
    back = decode_codes(codes, codecs, X.dtype)
    u = _storage_uint(X.dtype)
    bad = ~(back.view(u) == X.view(u)).all(axis=0)
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


# --------------------------------------------------------------------------
# encoding
# --------------------------------------------------------------------------
def code_dtype(widths: np.ndarray) -> np.dtype:
    """Narrowest unsigned dtype holding codes of the widest column."""
    w = int(np.max(widths)) if len(widths) else 0
    for t in (np.uint8, np.uint16, np.uint32):
        if w <= 8 * np.dtype(t).itemsize:
            return np.dtype(t)
    return np.dtype(np.uint64)


def encode_columns(X: np.ndarray, codecs: Codecs, check: bool = True) -> np.ndarray:
    """Column codes of ``X`` under ``codecs`` (n, d), narrowest uint dtype."""
    if check:
        X = _check_table(X)
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
    column minimum.
    """
    dtype = np.dtype(dtype)
    values = np.asarray(values, dtype=np.float64)
    m, d = values.shape
    out = np.zeros((m, d), dtype=code_dtype(codecs.width))
    hi = np.where(codecs.width >= 64, np.uint64(0xFFFFFFFFFFFFFFFF),
                  (np.uint64(1) << np.minimum(codecs.width, 63).astype(np.uint64)) - np.uint64(1))
    with np.errstate(all="ignore"):
        for j in range(d):
            v = values[:, j]
            k = int(codecs.kind[j])
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
