"""Per-row invertible code transforms for ``coding="entropy"`` tables.

Some tables hold structure that no per-row context model can see, while a
byte-oriented compressor of the whole array (zstd) finds it through matches
against earlier rows.  This module rewrites the column codes of a table, row
by row and losslessly, into codes that the GeDe split and the entropy coder
(:mod:`gedenb.entropy`) store in fewer bits -- without giving up decoding
any row on its own:

*lag groups*
    columns ``c_0 .. c_{w-1}`` with ``X[i, c_k] == X[i - 1, c_{k+1}]`` on
    most rows (a sliding window over one series, as in IJCNN1).  The series
    ``S`` (length ``n + w - 1``: row 0's window, then the newest column of
    every later row) is stored once as a fixed-width side array, so row
    ``i``'s window is ``S[i .. i + w - 1]`` and no other row is decoded.
    Each column's code is replaced by its XOR with that prediction: 0 where
    the window holds, the exact difference bits where it breaks.
*column residuals*
    a column ``j`` predicted by an earlier column ``r < j`` of the same row
    (same codec kind and scale), ``p = key_r - offset_j`` modulo ``2**w_j``.
    Kind 0 (difference): the code becomes the zigzag of ``code_j - p``
    modulo ``2**w_j`` (credit default: one month's bill from the previous
    month's).  Kind 1 (match): ``p`` moves to the front -- ``p -> 0``,
    codes below ``p`` up by one, codes above it unchanged (credit default:
    a payment that settles the previous bill exactly).  Both are bijections
    on ``w_j``-bit codes.
*ratio groups*
    float64 columns whose values are, row by row, ratios ``p_j / h`` of
    small non-negative integers with one denominator ``h`` per row
    (California Housing: rooms, bedrooms and people per household, all over
    the number of households).  The first column of the group stores
    ``h << (w - hbits) | p``, the others their numerator ``p_j``; decoding
    computes ``float64(p_j) / float64(h)``, which the compressor checked to
    give back every value bit for bit.  Rows without such ``h``
    (``h < 2**hbits``) store zeros and their original codes in an exception
    list, found by binary search.

All keep every code inside its column's width, so the codecs, base mask and
record layout are those of the untransformed table.  Lag prediction covers
the ``n`` original rows; residuals and ratios every row (condensed samples
included).  :func:`fit` proposes a transform (or None), :func:`forward` applies it,
:func:`inverse` undoes it on any subset of rows.  The compressor keeps a
transform only when the estimated size with it (side arrays included) is
smaller (:func:`gedenb.entrogede.compress`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .. import bits as _bits
from .._numba import njit
from ..errors import FormatError
from ..layout import ceil_log2
from . import fitting as _fitting
from .coder import _code_bits
from .serial import model_to_bytes

__all__ = ["PREDICT_VERSION", "Prediction", "fit", "forward", "from_bytes", "inverse", "to_bytes"]
#: Version of the PRED payload.
PREDICT_VERSION = 1
#: Lag pairs must hold on at least this share of rows.
LAG_MIN_SHARE = 0.5
#: Tables wider than this are not searched for lag groups (the search is O(d**2) per sampled row).
LAG_MAX_COLUMNS = 256
#: Rows sampled to screen lag pairs before counting them on all rows.
LAG_SAMPLE_ROWS = 512
#: Earlier columns tried as the reference of a column residual.
RESIDUAL_CANDIDATES = 6
#: Narrower columns are left to the coder's contexts (which see the previous columns' digits).
RESIDUAL_MIN_WIDTH = 8
#: Tables wider than this are not searched for column residuals (each try models the whole table).
RESIDUAL_MAX_COLUMNS = 64
#: Rows sampled to screen column residuals (each column on its own).
RESIDUAL_SCREEN_ROWS = 4096
#: Rows sampled to choose column residuals on the whole table's model.
RESIDUAL_SAMPLE_ROWS = 65536
#: Candidates per column (the cheapest on their own) tried on the whole table's model.
RESIDUAL_FULL_TRIES = 2
#: A residual must save at least this share of the column's estimated bits.
RESIDUAL_MIN_GAIN = 0.03
#: Bits of a ratio group's denominator (it is searched in ``1 .. 2**RATIO_BITS - 1``).
RATIO_BITS = 14
#: Columns narrower than this are not tried as ratios.
RATIO_MIN_WIDTH = 24
#: Share of sampled rows that must be ratios for a ratio group to be tried.
RATIO_MIN_SHARE = 0.9
_HEAD = np.dtype([("version", "<u4"), ("groups", "<u4"), ("residuals", "<u4"), ("ratios", "<u4"),
                  ("n_rows", "<u8"), ("n_total", "<u8")])
_GROUP = np.dtype([("w", "<u4"), ("bits", "<u4"), ("u0", "<u8")])
_RATIO = np.dtype([("k", "<u4"), ("hbits", "<u4"), ("n_exc", "<u8")])


class Prediction(NamedTuple):
    """A fitted transform (what section PRED stores).

    Attributes
    ----------
    lag_cols : (L,) int64
        Columns of every lag group, oldest first (``X[i, c_k] == X[i-1, c_{k+1}]``).
    lag_start : (G + 1,) int64
        Group ``g`` is ``lag_cols[lag_start[g]:lag_start[g + 1]]``.
    lag_u0 : (G,) uint64
        Key of side value 0 of every group.
    lag_bits : (G,) int64
        Bits per side value.
    lag_word0 : (G + 1,) int64
        Group ``g``'s side stream is ``side[lag_word0[g]:lag_word0[g + 1]]``.
    side : (W,) uint64
        The side arrays, ``n + w - 1`` values per group, each group word aligned.
    res_col, res_ref, res_kind : (R,) int64
        Residual columns (increasing), their reference columns (``ref < col``)
        and kinds (0 difference, 1 match).
    rat_cols : (K,) int64
        Columns of every ratio group; the first of a group holds ``h``.
    rat_start : (Q + 1,) int64
        Group ``g`` is ``rat_cols[rat_start[g]:rat_start[g + 1]]``.
    rat_hbits : (Q,) int64
        Bits of every group's denominator.
    exc_start : (Q + 1,) int64
        Group ``g``'s exceptions are ``exc_rows[exc_start[g]:exc_start[g + 1]]`` (increasing).
    exc_rows : (E,) int64
    exc_codes : uint64
        Original codes of the exceptions, group by group, ``k`` per row.
    n_rows : int
        Rows the lag groups cover (the table's ``n``).
    n_total : int
        Rows of the table including condensed samples (``n + m``).
    """

    lag_cols: np.ndarray
    lag_start: np.ndarray
    lag_u0: np.ndarray
    lag_bits: np.ndarray
    lag_word0: np.ndarray
    side: np.ndarray
    res_col: np.ndarray
    res_ref: np.ndarray
    res_kind: np.ndarray
    rat_cols: np.ndarray
    rat_start: np.ndarray
    rat_hbits: np.ndarray
    exc_start: np.ndarray
    exc_rows: np.ndarray
    exc_codes: np.ndarray
    n_rows: int
    n_total: int

    @property
    def n_groups(self) -> int:
        return int(self.lag_bits.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of section PRED."""
        return len(to_bytes(self))

    def describe(self) -> str:
        groups = ", ".join(f"{self.lag_cols[a:b].tolist()} ({int(s)} b side values)" for a, b, s in
                           zip(self.lag_start[:-1], self.lag_start[1:], self.lag_bits))
        res = ", ".join(f"{c}{'-=' if k == 0 else '=='}{r}" for c, r, k in
                        zip(self.res_col.tolist(), self.res_ref.tolist(), self.res_kind.tolist()))
        rat = ", ".join(f"{self.rat_cols[a:b].tolist()} ({int(e1 - e0)} exceptions)" for a, b, e0, e1 in
                        zip(self.rat_start[:-1], self.rat_start[1:], self.exc_start[:-1], self.exc_start[1:]))
        return f"lag groups [{groups}]; column residuals [{res}]; ratio groups [{rat}]"


@njit
def _mask(w):
    if w >= 64:
        return np.uint64(0xFFFFFFFFFFFFFFFF)
    return (np.uint64(1) << np.uint64(w)) - np.uint64(1)


@njit
def _zigzag(v, w):
    m = _mask(w)
    if w == 0:
        return np.uint64(0)
    top = (v >> np.uint64(w - 1)) & np.uint64(1)
    return ((v << np.uint64(1)) ^ (np.uint64(0) - top)) & m


@njit
def _unzigzag(z, w):
    m = _mask(w)
    return ((z >> np.uint64(1)) ^ (np.uint64(0) - (z & np.uint64(1)))) & m


@njit(inline="always")
def _xor_lags(codes, k, r, offset, width, lag_cols, lag_start, lag_u0, lag_bits, lag_word0, side):
    """XOR the lag columns of ``codes[k]`` (row ``r``) with their prediction from the side arrays: the
    transform and its inverse alike."""
    for g in range(lag_bits.shape[0]):
        a = lag_start[g]
        base = lag_word0[g] * 64
        for t in range(lag_start[g + 1] - a):
            j = lag_cols[a + t]
            s = _bits._get_bits(side, base + (r + t) * lag_bits[g], lag_bits[g])
            codes[k, j] ^= (s + lag_u0[g] - offset[j]) & _mask(width[j])


@njit
def _apply(codes, rows, offset, width, lag_cols, lag_start, lag_u0, lag_bits, lag_word0, side, res_col, res_ref,
           res_kind, n_lag, inverse):
    """Transform (``inverse=False``) or restore ``codes[k]`` of row ``rows[k]`` in place."""
    R = res_col.shape[0]
    orig = np.empty(codes.shape[1], dtype=np.uint64)
    for k in range(codes.shape[0]):
        r = rows[k]
        if not inverse:
            for j in range(codes.shape[1]):
                orig[j] = codes[k, j]
        if inverse and r < n_lag:  # lag columns first: the residuals may refer to them
            _xor_lags(codes, k, r, offset, width, lag_cols, lag_start, lag_u0, lag_bits, lag_word0, side)
        if inverse:
            for q in range(R):  # increasing columns: every reference is restored before it is used
                j = res_col[q]
                i = res_ref[q]
                m = _mask(width[j])
                pred = (codes[k, i] + offset[i] - offset[j]) & m
                v = codes[k, j]
                if res_kind[q] == 0:
                    codes[k, j] = (_unzigzag(v, width[j]) + pred) & m
                elif v == 0:
                    codes[k, j] = pred
                elif v <= pred:
                    codes[k, j] = v - np.uint64(1)
        else:
            for q in range(R):
                j = res_col[q]
                i = res_ref[q]
                m = _mask(width[j])
                pred = (orig[i] + offset[i] - offset[j]) & m
                v = orig[j]
                if res_kind[q] == 0:
                    codes[k, j] = _zigzag((v - pred) & m, width[j])
                elif v == pred:
                    codes[k, j] = 0
                elif v < pred:
                    codes[k, j] = v + np.uint64(1)
            if r < n_lag:
                _xor_lags(codes, k, r, offset, width, lag_cols, lag_start, lag_u0, lag_bits, lag_word0, side)


_SIGN = np.uint64(1 << 63)


@njit(inline="always")
def _ratio_value(key):
    """Whether the value of float64 key ``key`` (IEEE codec) may be a ratio: not negative (or -0.0), inf or NaN."""
    return (key & _SIGN) != 0 and ((key ^ _SIGN) >> np.uint64(52)) < np.uint64(0x7FF)


@njit
def _ratio_search(codes, k, cols, a, b, offset, lim, hmax, num, ub, fb):
    """The smallest ``h <= hmax`` with ``value_j == float64(p_j) / h`` for every column (numerators in
    ``num``), or 0.  Only non-negative finite float64 values qualify."""
    kk = b - a
    vals = np.empty(kk, dtype=np.float64)
    for t in range(kk):
        j = cols[a + t]
        key = codes[k, j] + offset[j]
        if not _ratio_value(key):
            return 0
        ub[0] = key ^ _SIGN
        vals[t] = fb[0]
    for h in range(1, hmax + 1):
        fh = np.float64(h)
        ok = True
        for t in range(kk):
            q = np.rint(vals[t] * fh)
            if q >= lim[t] or q / fh != vals[t]:
                ok = False
                break
            num[t] = np.uint64(q)
        if ok:
            return h
    return 0


@njit
def _ratio_limits(width, rat_cols, a, b, hbits):
    """``(numerator bits of the first column, exclusive numerator limits)`` of the ratio group ``rat_cols[a:b]``."""
    pb = width[rat_cols[a]] - hbits
    lim = np.empty(b - a, dtype=np.float64)
    for t in range(b - a):
        lim[t] = 2.0 ** min(53, pb if t == 0 else width[rat_cols[a + t]])
    return pb, lim


@njit
def _ratio_count(codes, offset, width, cols, hbits, max_fail):
    """Rows of ``codes`` whose columns ``cols`` are ratios with one denominator below ``2**hbits``
    (:func:`_ratio_search`), or -1 as soon as more than ``max_fail`` rows are not; ``codes`` is not changed."""
    _pb, lim = _ratio_limits(width, cols, 0, cols.shape[0], hbits)
    num = np.zeros(cols.shape[0], dtype=np.uint64)
    ub = np.zeros(1, dtype=np.uint64)
    fb = ub.view(np.float64)
    rows = codes.shape[0]
    fail = 0
    may = np.ones(rows, dtype=np.bool_)
    for k in range(rows):  # first the rows that fail at once (the order of the rows does not matter)
        for t in range(cols.shape[0]):
            if not _ratio_value(codes[k, cols[t]] + offset[cols[t]]):
                may[k] = False
                fail += 1
                break
    for k in range(rows):
        if fail > max_fail:
            return -1
        if may[k] and not _ratio_search(codes, k, cols, 0, cols.shape[0], offset, lim, (1 << hbits) - 1, num, ub,
                                        fb):
            fail += 1
    return -1 if fail > max_fail else rows - fail


@njit
def _ratio_forward(codes, offset, width, rat_cols, rat_start, rat_hbits):
    """Transform every row in place; returns the denominator per row and group (0: exception)."""
    Q = rat_hbits.shape[0]
    hs = np.zeros((codes.shape[0], Q), dtype=np.int64)
    ub = np.zeros(1, dtype=np.uint64)
    fb = ub.view(np.float64)
    for g in range(Q):
        a, b = rat_start[g], rat_start[g + 1]
        pb, lim = _ratio_limits(width, rat_cols, a, b, rat_hbits[g])
        num = np.zeros(b - a, dtype=np.uint64)
        hmax = (1 << rat_hbits[g]) - 1
        for k in range(codes.shape[0]):
            h = _ratio_search(codes, k, rat_cols, a, b, offset, lim, hmax, num, ub, fb)
            hs[k, g] = h
            for t in range(b - a):
                codes[k, rat_cols[a + t]] = num[t] if h else np.uint64(0)
            if h:
                codes[k, rat_cols[a]] |= np.uint64(h) << np.uint64(pb)
    return hs


@njit
def _ratio_inverse(codes, rows, offset, width, rat_cols, rat_start, rat_hbits, exc_start, exc_rows, exc_codes):
    """Restore the ratio columns of ``codes[k]`` (row ``rows[k]``) in place; returns -1 or a bad ``k``."""
    Q = rat_hbits.shape[0]
    ub = np.zeros(1, dtype=np.uint64)
    fb = ub.view(np.float64)
    cstart = 0
    for g in range(Q):
        a, b = rat_start[g], rat_start[g + 1]
        kk = b - a
        pb = width[rat_cols[a]] - rat_hbits[g]
        low = (np.uint64(1) << np.uint64(pb)) - np.uint64(1)
        e0, e1 = exc_start[g], exc_start[g + 1]
        for k in range(codes.shape[0]):
            head = codes[k, rat_cols[a]]
            h = head >> np.uint64(pb)
            if h == 0:
                lo, hi = e0, e1  # the exception of this row: binary search
                r = rows[k]
                while lo < hi:
                    mid = (lo + hi) // 2
                    if exc_rows[mid] < r:
                        lo = mid + 1
                    else:
                        hi = mid
                if lo == e1 or exc_rows[lo] != r:
                    return k
                for t in range(kk):
                    codes[k, rat_cols[a + t]] = exc_codes[cstart + (lo - e0) * kk + t]
                continue
            fh = np.float64(h)
            for t in range(kk):
                j = rat_cols[a + t]
                p = (head & low) if t == 0 else codes[k, j]
                fb[0] = np.float64(p) / fh
                codes[k, j] = (ub[0] | _SIGN) - offset[j]
        cstart += (e1 - e0) * kk
    return -1


def _run(codes, rows, codecs, p: Prediction, inverse: bool):
    side = p.side if p.side.size else np.zeros(1, dtype=np.uint64)
    offset = np.asarray(codecs.offset, dtype=np.uint64)
    width = np.asarray(codecs.width, dtype=np.int64)
    if inverse and p.rat_hbits.size:  # ratio columns first: the residuals may refer to them
        bad = _ratio_inverse(codes, rows, offset, width, p.rat_cols, p.rat_start, p.rat_hbits, p.exc_start,
                             p.exc_rows if p.exc_rows.size else np.zeros(1, np.int64),
                             p.exc_codes if p.exc_codes.size else np.zeros(1, np.uint64))
        if bad >= 0:
            raise FormatError(f"PRED: row {int(rows[bad])} has no ratio denominator and no exception entry")
    _apply(codes, rows, offset, width, p.lag_cols, p.lag_start, p.lag_u0, p.lag_bits, p.lag_word0, side, p.res_col,
           p.res_ref, p.res_kind, int(p.n_rows), inverse)
    if not inverse and p.rat_hbits.size:
        _ratio_forward(codes, offset, width, p.rat_cols, p.rat_start, p.rat_hbits)
    return codes


def forward(codes: np.ndarray, codecs, p: Prediction) -> np.ndarray:
    """The transformed codes of all rows ``0 .. N-1`` (a new array).

    Parameters
    ----------
    codes : (N, d) uint64
        Column codes of every row.
    codecs : Codecs
    p : Prediction

    Returns
    -------
    (N, d) uint64
    """
    out = np.array(codes, dtype=np.uint64, order="C", copy=True)
    return _run(out, np.arange(out.shape[0], dtype=np.int64), codecs, p, False)


def inverse(codes: np.ndarray, rows: np.ndarray, codecs, p: Prediction) -> np.ndarray:
    """Restore, in place, the codes of rows ``rows`` (``codes[k]`` is row ``rows[k]``); returns ``codes``.

    Parameters
    ----------
    codes : (k, d) uint64
        Transformed codes, C-contiguous and writeable.
    rows : (k,) int
        The rows they are.
    codecs : Codecs
    p : Prediction

    Returns
    -------
    (k, d) uint64
        ``codes``.

    Raises
    ------
    FormatError
        A row of a ratio group without a denominator has no exception entry (a corrupt file).
    """
    return _run(codes, np.ascontiguousarray(rows, dtype=np.int64), codecs, p, True)


def _column_dtypes(dtype, d: int) -> list:
    if dtype.names is not None:
        return [dtype.fields[f][0] for f in dtype.names]
    return [dtype] * d


def _compatible(codecs, dtype, d: int) -> np.ndarray:
    """Group label per column: columns with equal labels share a key space (kind, scale, dtype)."""
    dts = [t.str for t in _column_dtypes(dtype, d)]
    keys = [(int(k), int(s), t) for k, s, t in zip(codecs.kind, codecs.scale, dts)]
    lookup = {k: i for i, k in enumerate(dict.fromkeys(keys))}
    return np.asarray([lookup[k] for k in keys], dtype=np.int64)


def _lag_chains(keys: np.ndarray, label: np.ndarray, width: np.ndarray) -> list:
    """Chains ``c_0 .. c_{w-1}`` of columns with ``key[i, c_k] == key[i-1, c_{k+1}]`` on most rows."""
    n, d = keys.shape
    if n < 3 or d < 2 or d > LAG_MAX_COLUMNS:
        return []
    step = max(1, (n - 1) // LAG_SAMPLE_ROWS)
    rows = np.arange(1, n, step)[:LAG_SAMPLE_ROWS]
    hits = np.zeros((d, d), dtype=np.int64)
    for i in rows.tolist():
        hits += keys[i][:, None] == keys[i - 1][None, :]
    ok = (hits >= LAG_MIN_SHARE * rows.size) & (label[:, None] == label[None, :]) & (width[:, None] > 0)
    np.fill_diagonal(ok, False)
    share = {}
    for a, b in zip(*np.nonzero(ok)):
        share[(int(a), int(b))] = float(np.mean(keys[1:, a] == keys[:-1, b]))
    succ, pred = {}, {}
    for (a, b), s in sorted(share.items(), key=lambda kv: -kv[1]):
        if s >= LAG_MIN_SHARE and a not in succ and b not in pred:
            succ[a], pred[b] = b, a
    chains, seen = [], set()
    for a in sorted(succ):
        if a in pred or a in seen:
            continue
        chain = [a]
        while chain[-1] in succ and succ[chain[-1]] not in seen and succ[chain[-1]] not in chain:
            chain.append(succ[chain[-1]])
        seen.update(chain)
        chains.append(chain)
    return chains


def _side_array(keys: np.ndarray, chain: list, offsets: np.ndarray):
    """``(values, u0, bits)``: the series of a lag group as offsets from ``u0``."""
    first = keys[0, chain[:-1]]
    S = np.concatenate([first, keys[:, chain[-1]]])
    best = None
    for u0 in np.unique(offsets[chain]).tolist():
        v = S - np.uint64(u0)
        top = int(v.max())
        if best is None or top < best[0]:
            best = (top, np.uint64(u0), v)
    top, u0, v = best
    return v, u0, max(1, ceil_log2(top + 1))


def _column_bits(col: np.ndarray, w: int) -> float:
    """Estimated coded bits of one column on its own (its digits, contexts within the column, its tables)."""
    model, _sym, _tidx, counts = _fitting.fit(col.reshape(-1, 1), np.array([w]), np.zeros(w, dtype=bool),
                                             counts_only=True)
    uniform = int(model.slot_bits[model.slot_table < 0].sum())
    return (float(_code_bits(counts, model.freqs, model.prec)) + col.shape[0] * uniform
            + 8 * len(model_to_bytes(model, 0)))


def _empty(n: int, N: int, **parts) -> Prediction:
    """A Prediction without any group, or with the given fields."""
    z = lambda dt=np.int64: np.zeros(0, dtype=dt)  # noqa: E731
    one = lambda: np.zeros(1, dtype=np.int64)  # noqa: E731
    f = dict(lag_cols=z(), lag_start=one(), lag_u0=z(np.uint64), lag_bits=z(), lag_word0=one(), side=z(np.uint64),
             res_col=z(), res_ref=z(), res_kind=z(), rat_cols=z(), rat_start=one(), rat_hbits=z(), exc_start=one(),
             exc_rows=z(), exc_codes=z(np.uint64), n_rows=int(n), n_total=int(N))
    f.update(parts)
    return Prediction(**f)


def _table_bits(codes: np.ndarray, width: np.ndarray, scale: float = 1.0) -> float:
    """Estimated coded bits of a whole table under the table scheme (every bit a deviation bit),
    for ``scale`` times as many rows like these (the model counted once)."""
    model, _sym, _tidx, counts = _fitting.fit(codes, width, np.zeros(int(width.sum()), dtype=bool), counts_only=True)
    model_bits = 8.0 * len(model_to_bytes(model, 0))
    return (_fitting.estimate_bits(model, counts, codes.shape[0]) - model_bits) * scale + model_bits


def _residuals(codes: np.ndarray, start: np.ndarray, codecs, label: np.ndarray, skip: set) -> tuple:
    """Column residuals that make the table's estimated coded size smaller.

    Columns are visited left to right; for each, the candidates (earlier
    compatible column, kind) that cut the column's own estimated bits by
    :data:`RESIDUAL_MIN_GAIN` (on :data:`RESIDUAL_SCREEN_ROWS` sampled rows)
    are tried, cheapest first, on the whole table's model (on up to
    :data:`RESIDUAL_SAMPLE_ROWS` rows), which also sees the contexts between
    columns and the digits the rANS state carries; the best is kept if it
    cuts the table's estimate by that share of the column's bits too.
    ``start`` is ``codes`` under the transforms chosen before (lag and ratio
    groups).
    """
    n, d = codes.shape
    width = np.asarray(codecs.width, dtype=np.int64)
    if d > RESIDUAL_MAX_COLUMNS:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    step = max(1, n // RESIDUAL_SAMPLE_ROWS)
    sample = np.ascontiguousarray(codes[::step])
    table = np.ascontiguousarray(start[::step])
    scale = n / table.shape[0]
    screen = np.ascontiguousarray(codes[::max(1, n // RESIDUAL_SCREEN_ROWS)])
    total = None
    cols, refs, kinds = [], [], []
    for j in range(1, d):
        w = int(width[j])
        if j in skip or w < RESIDUAL_MIN_WIDTH:
            continue
        cands = [r for r in range(j - 1, -1, -1) if label[r] == label[j] and width[r] > 0][:RESIDUAL_CANDIDATES]
        if not cands:
            continue
        own_screen = _column_bits(screen[:, j], w)
        tried = []
        for r in cands:
            for kind in (0, 1):
                p = _empty(0, 0, res_col=np.array([j], np.int64), res_ref=np.array([r], np.int64),
                           res_kind=np.array([kind], np.int64))
                bits = _column_bits(forward(screen, codecs, p)[:, j], w)
                if bits < (1 - RESIDUAL_MIN_GAIN) * own_screen:
                    tried.append((bits, r, kind, p))
        if not tried:
            continue
        tried.sort(key=lambda t: t[0])
        if total is None:
            total = _table_bits(table, width, scale)
        own = _column_bits(sample[:, j], w) * scale
        best = (total - RESIDUAL_MIN_GAIN * own, None)
        for _bits_j, r, kind, p in tried[:RESIDUAL_FULL_TRIES]:
            col = forward(sample, codecs, p)[:, j]
            cand = table.copy()
            cand[:, j] = col
            bits = _table_bits(cand, width, scale)
            if bits < best[0]:
                best = (bits, (r, kind, col))
        if best[1] is not None:
            r, kind, col = best[1]
            table[:, j] = col
            total = best[0]
            cols.append(j)
            refs.append(r)
            kinds.append(kind)
    a = lambda v: np.asarray(v, dtype=np.int64)  # noqa: E731
    return a(cols), a(refs), a(kinds)


def _ratio_share(codes: np.ndarray, codecs, cols: list) -> float:
    """Share of the rows of ``codes`` whose columns ``cols`` are ratios with one denominator, or 0.0 as
    soon as too many rows are not for the share to reach :data:`RATIO_MIN_SHARE` (the rows left are not
    searched: a wide table's columns are screened one by one)."""
    rows = codes.shape[0]
    if not rows:
        return 0.0
    max_fail = rows - int(np.ceil(rows * RATIO_MIN_SHARE))  # the most rows that may fail, exactly as the float
    while max_fail < rows and (rows - max_fail - 1) / rows >= RATIO_MIN_SHARE:  # comparison with the share
        max_fail += 1
    while max_fail >= 0 and (rows - max_fail) / rows < RATIO_MIN_SHARE:
        max_fail -= 1
    ok = _ratio_count(np.ascontiguousarray(codes, dtype=np.uint64), np.asarray(codecs.offset, np.uint64),
                      np.asarray(codecs.width, np.int64), np.asarray(cols, np.int64), RATIO_BITS, max_fail)
    return ok / rows if ok >= 0 else 0.0


def _ratio_groups(codes: np.ndarray, codecs, dtype, skip: set) -> list:
    """Groups of float64 columns that are ratios with a common denominator on most (sampled) rows."""
    n, d = codes.shape
    f64 = [t == np.dtype(np.float64) for t in _column_dtypes(dtype, d)]
    from ..encode import IEEE

    cand = [j for j in range(d) if f64[j] and int(codecs.kind[j]) == IEEE and int(codecs.width[j]) >= RATIO_MIN_WIDTH
            and j not in skip]
    if not cand:
        return []
    sample = np.ascontiguousarray(codes[:: max(1, n // 256)][:256], dtype=np.uint64)  # copied once
    cand = [j for j in cand if _ratio_share(sample, codecs, [j]) >= RATIO_MIN_SHARE]
    if len(cand) > 1 and _ratio_share(sample, codecs, cand) >= RATIO_MIN_SHARE:
        cand.sort(key=lambda j: -int(codecs.width[j]))  # the widest column holds the denominator
        return [cand]
    return [[j] for j in cand]


def fit(codes: np.ndarray, codecs, dtype, n: int | None = None, residuals: bool = True) -> Prediction | None:
    """Propose a transform for the ``(N, d)`` column codes of a table, or None.

    Parameters
    ----------
    codes : (N, d) uint64
        Codes of the ``n`` original rows, then of any condensed samples.
    codecs : Codecs
    dtype : numpy.dtype
        The table's dtype (structured for a mixed-dtype table).
    n : int, optional
        Original rows (default ``N``): lag groups and residuals are fitted on them.
    residuals : bool, default True
        Look for column residuals.

    Lag groups hold on at least :data:`LAG_MIN_SHARE` of the rows; a column
    residual must cut the column's estimated coded bits (on its own) by
    :data:`RESIDUAL_MIN_GAIN`; ratio groups must cover
    :data:`RATIO_MIN_SHARE` of a sample of rows.  Whether the proposal pays
    for the whole table is decided by the caller.

    Returns
    -------
    Prediction or None

    Examples
    --------
    :func:`gedenb.compress` calls it with ``coding="entropy"``:

    >>> import numpy as np, gedenb
    >>> s = np.random.default_rng(0).integers(0, 1000, 503)
    >>> X = np.stack([s[k:k + 500] for k in range(4)], axis=1)  # a sliding window
    >>> c = gedenb.compress(X, coding="entropy")
    >>> c.predict.lag_cols.tolist()
    [0, 1, 2, 3]
    >>> gedenb.decompress(c).tobytes() == X.tobytes()
    True
    """
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    N, d = codes.shape
    n = N if n is None else int(n)
    dtype = np.dtype(dtype)
    label = _compatible(codecs, dtype, d)
    width = np.asarray(codecs.width, dtype=np.int64)
    off = np.asarray(codecs.offset, dtype=np.uint64)
    keys = codes[:n] + off[None, :]
    chains = _lag_chains(keys, label, width)
    lag_cols, starts, u0s, nbits, words = [], [0], [], [], []
    word0 = [0]
    for chain in chains:
        v, u0, b = _side_array(keys, chain, off)
        lag_cols += chain
        starts.append(len(lag_cols))
        u0s.append(u0)
        nbits.append(b)
        w = _bits.pack_fixed(v, b)
        words.append(w)
        word0.append(word0[-1] + w.shape[0])
    ratios = _ratio_groups(codes[:n], codecs, dtype, set(lag_cols))
    rat_cols = [j for g in ratios for j in g]
    a = lambda v, dt=np.int64: np.asarray(v, dtype=dt)  # noqa: E731
    p = _empty(n, N, lag_cols=a(lag_cols), lag_start=a(starts), lag_u0=a(u0s, np.uint64), lag_bits=a(nbits),
               lag_word0=a(word0), side=np.concatenate(words) if words else np.zeros(0, np.uint64))
    if ratios:
        rat_start = a([0] + np.cumsum([len(g) for g in ratios]).tolist())
        hbits = a([RATIO_BITS] * len(ratios))
        hs = _ratio_forward(codes.copy(), off, width, a(rat_cols), rat_start, hbits)
        exc_start, exc_rows, exc_codes = [0], [], []
        for g, cols in enumerate(ratios):
            rows = np.flatnonzero(hs[:, g] == 0)
            exc_rows.append(rows)
            exc_codes.append(codes[rows][:, cols].ravel())
            exc_start.append(exc_start[-1] + rows.size)
        p = p._replace(rat_cols=a(rat_cols), rat_start=rat_start, rat_hbits=hbits, exc_start=a(exc_start),
                       exc_rows=np.concatenate(exc_rows).astype(np.int64),
                       exc_codes=np.concatenate(exc_codes).astype(np.uint64))
    if residuals:
        res_col, res_ref, res_kind = _residuals(codes[:n], forward(codes[:n], codecs, p._replace(n_total=n)),
                                                codecs, label, set(lag_cols) | set(rat_cols))
        p = p._replace(res_col=res_col, res_ref=res_ref, res_kind=res_kind)
    if not chains and not p.res_col.size and not ratios:
        return None
    return frozen(p)


def frozen(p: Prediction) -> Prediction:
    """``p`` with its arrays made read-only.

    Parameters
    ----------
    p : Prediction

    Returns
    -------
    Prediction
    """
    for a in p[:-2]:
        if a.flags.writeable:
            a.setflags(write=False)
    return p


def to_bytes(p: Prediction) -> bytes:
    """Section PRED of ``docs/FORMAT.md``.

    Parameters
    ----------
    p : Prediction

    Returns
    -------
    bytes
    """
    head = np.zeros(1, dtype=_HEAD)
    head[0] = (PREDICT_VERSION, p.n_groups, p.res_col.shape[0], p.rat_hbits.shape[0], p.n_rows, p.n_total)
    grp = np.zeros(p.n_groups, dtype=_GROUP)
    grp["w"] = np.diff(p.lag_start)
    grp["bits"] = p.lag_bits
    grp["u0"] = p.lag_u0
    rat = np.zeros(p.rat_hbits.shape[0], dtype=_RATIO)
    rat["k"] = np.diff(p.rat_start)
    rat["hbits"] = p.rat_hbits
    rat["n_exc"] = np.diff(p.exc_start)
    res = np.stack([p.res_col, p.res_ref, p.res_kind], axis=1).ravel()
    cols = np.concatenate([p.lag_cols, res, p.rat_cols]).astype("<u4").tobytes()
    le = lambda v: np.ascontiguousarray(v, dtype="<u8").tobytes()  # noqa: E731
    return b"".join([head.tobytes(), grp.tobytes(), rat.tobytes(), cols, b"\0" * (-len(cols) % 8), le(p.side),
                     le(p.exc_rows), le(p.exc_codes)])


def from_bytes(payload, codecs, dtype, d: int, n: int, n_total: int) -> Prediction:
    """Parse and validate section PRED of a table with ``d`` columns, ``n`` rows and ``n_total`` rows in all.

    Parameters
    ----------
    payload : bytes-like
        The section's bytes.
    codecs : Codecs
        The table's codecs.
    dtype : numpy.dtype
        The table's dtype (structured for a mixed-dtype table).
    d : int
    n : int
        Original rows.
    n_total : int
        Rows including condensed samples.

    Returns
    -------
    Prediction

    Raises
    ------
    FormatError
        Malformed or inconsistent with the table (naming section PRED).
    """
    buf = bytes(payload)
    if len(buf) < _HEAD.itemsize:
        raise FormatError(f"PRED: {len(buf)} bytes, at least {_HEAD.itemsize} expected")
    version, G, R, Q, n_rows, N = (int(v) for v in np.frombuffer(buf, dtype=_HEAD, count=1)[0])
    if version != PREDICT_VERSION:
        raise FormatError(f"PRED: version {version} is not supported (this gedenb reads {PREDICT_VERSION})")
    if n_rows != n or N != n_total or G > d or R > d or Q > d:
        raise FormatError(f"PRED: row counts ({n_rows}, {N}; the table has {n}, {n_total}) or group counts invalid")
    pos = _HEAD.itemsize
    if len(buf) < pos + G * _GROUP.itemsize + Q * _RATIO.itemsize:
        raise FormatError("PRED: group records run past the section")
    grp = np.frombuffer(buf, dtype=_GROUP, count=G, offset=pos)
    pos += G * _GROUP.itemsize
    rat = np.frombuffer(buf, dtype=_RATIO, count=Q, offset=pos)
    pos += Q * _RATIO.itemsize
    w = grp["w"].astype(np.int64)
    bits = grp["bits"].astype(np.int64)
    if (w < 2).any() or (bits < 1).any() or (bits > 64).any() or int(w.sum()) > d:
        raise FormatError("PRED: a lag group needs 2..d columns and side values of 1..64 bits")
    k = rat["k"].astype(np.int64)
    hbits = rat["hbits"].astype(np.int64)
    if (k < 1).any() or int(k.sum()) > d or (hbits < 1).any() or (hbits > 32).any() or \
            (rat["n_exc"] > np.uint64(N)).any():
        raise FormatError("PRED: a ratio group needs 1..d columns, a 1..32-bit denominator and at most n + m "
                          "exceptions")
    L, K = int(w.sum()), int(k.sum())
    ncols = L + 3 * R + K
    need = 4 * ncols
    if len(buf) < pos + need + (-need % 8):
        raise FormatError("PRED: column lists run past the section")
    cols = np.frombuffer(buf, dtype="<u4", count=ncols, offset=pos).astype(np.int64)
    if any(buf[pos + need:pos + need + (-need % 8)]):
        raise FormatError("PRED: padding bytes must be zero")
    pos += need + (-need % 8)
    lag_cols = cols[:L]
    res_col, res_ref, res_kind = cols[L:L + 3 * R:3], cols[L + 1:L + 3 * R:3], cols[L + 2:L + 3 * R:3]
    rat_cols = cols[L + 3 * R:]
    targets = np.concatenate([lag_cols, res_col, rat_cols])
    if (cols[:L].size and cols[:L].max() >= d) or (res_col.size and max(res_col.max(), res_ref.max()) >= d) \
            or (rat_cols.size and rat_cols.max() >= d) or np.unique(targets).size != targets.size:
        raise FormatError("PRED: a column out of range or transformed twice")
    if R and ((res_ref >= res_col).any() or (np.diff(res_col) <= 0).any() or (res_kind > 1).any()):
        raise FormatError("PRED: residual columns must increase, refer to an earlier column and be of kind 0 or 1")
    rat_start = np.concatenate([[0], np.cumsum(k)]).astype(np.int64)
    if K:
        from ..encode import IEEE

        dts = _column_dtypes(np.dtype(dtype), d)
        width = np.asarray(codecs.width, dtype=np.int64)
        if any(dts[j] != np.dtype(np.float64) or int(codecs.kind[j]) != IEEE for j in rat_cols.tolist()) or \
                (width[rat_cols[rat_start[:-1]]] <= hbits).any():
            raise FormatError("PRED: a ratio column is not an IEEE-coded float64 column wider than its denominator")
    nwords = [((n + int(a) - 1) * int(b) + 63) // 64 for a, b in zip(w, bits)]
    word0 = np.concatenate([[0], np.cumsum(nwords)]).astype(np.int64)
    n_exc = rat["n_exc"].astype(np.int64)
    E = int(n_exc.sum())
    EC = int((n_exc * k).sum())
    if len(buf) != pos + 8 * (int(word0[-1]) + E + EC):
        raise FormatError(f"PRED: {len(buf) - pos} bytes of side arrays and exceptions, expected "
                          f"{8 * (int(word0[-1]) + E + EC)}")
    words = np.frombuffer(buf, dtype="<u8", offset=pos).astype(np.uint64)
    side = words[:word0[-1]]
    for g in range(G):
        used = (n + int(w[g]) - 1) * int(bits[g])
        if used % 64 and int(side[word0[g + 1] - 1]) & ((1 << (64 - used % 64)) - 1):
            raise FormatError("PRED: padding bits of a side array must be zero")
    exc_rows = words[word0[-1]:word0[-1] + E].astype(np.int64)
    exc_codes = words[word0[-1] + E:]
    exc_start = np.concatenate([[0], np.cumsum(n_exc)]).astype(np.int64)
    for g in range(Q):
        e = exc_rows[exc_start[g]:exc_start[g + 1]]
        if e.size and (e.min() < 0 or e.max() >= N or (np.diff(e) <= 0).any()):
            raise FormatError("PRED: exception rows must increase and lie in [0, n + m)")
    start = np.concatenate([[0], np.cumsum(w)]).astype(np.int64)
    return frozen(Prediction(lag_cols, start, grp["u0"].astype(np.uint64), bits, word0, side, res_col, res_ref,
                             res_kind, rat_cols, rat_start, hbits, exc_start, exc_rows, exc_codes, n, N))
