"""Packed bit-array kernels.

Conventions used everywhere in gedenb:

* A *row* of ``l_t`` bits is stored in ``W = ceil(l_t / 64)`` ``uint64`` words,
  most significant bit first: bit position ``p`` lives in word ``p >> 6`` at
  bit ``63 - (p & 63)``.  Unused trailing bits are zero.
* A *bit stream* (the bases table, the per-row records) is the same thing
  over a long run of bits: record ``r`` of a fixed width ``b`` starts at bit
  ``r * b``.
* The *transposed* (bit-sliced) form ``T`` of ``N`` rows has one line per bit
  position, ``T[p]`` being ``ceil(N / 64)`` words whose bits are the rows'
  values at ``p`` (row ``i`` in word ``i >> 6`` at bit ``63 - (i & 63)``).
  Reading one position over all rows is then a contiguous scan: this is what
  makes the greedy base selection (Algorithm 1, lines 13-27) cheap.

Public functions validate their inputs and call the underscore-private
``@njit`` kernels, which see only typed arrays and scalars.  The kernels stay
importable for research code.
"""

from __future__ import annotations

import numpy as np

from ._numba import njit, pnjit, prange

__all__ = [
    "entropy",
    "group_by_positions",
    "pack_fixed",
    "pack_codes",
    "pack_varying",
    "position_counts",
    "refine_groups",
    "transpose_bits",
    "unpack_fixed",
    "unpack_varying",
    "words_per_row",
]

_ONE = np.uint64(1)
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)


def words_per_row(nbits: int) -> int:
    """Number of ``uint64`` words holding ``nbits`` bits.

    Parameters
    ----------
    nbits : int
        Bits per row.
    """
    return (int(nbits) + 63) // 64


# --------------------------------------------------------------------------
# scalar helpers (inlined by Numba)
# --------------------------------------------------------------------------
@njit(inline="always")
def _low_mask(n):
    """``n`` low bits set, ``0 <= n <= 64``."""
    if n >= 64:
        return _ALL
    return (_ONE << np.uint64(n)) - _ONE


@njit(inline="always")
def _get_bits(words, pos, n):
    """Read ``1 <= n <= 64`` bits starting at bit ``pos`` (MSB first)."""
    w = pos >> 6
    s = pos & 63
    hi = words[w] << np.uint64(s)
    if s + n > 64:
        hi |= words[w + 1] >> np.uint64(64 - s)
    return hi >> np.uint64(64 - n)


@njit(inline="always")
def _emit(out, acc, nacc, wpos, value, n):
    """Append the ``n`` low bits of ``value`` to a word-aligned bit writer.

    The writer's state is ``(acc, nacc, wpos)``: ``nacc`` pending bits held
    right-aligned in ``acc``, next word to write ``out[wpos]``.  Returns the
    new state.  ``value`` must have no bits above ``n``; ``0 <= n <= 64``.
    """
    if n == 0:
        return acc, nacc, wpos
    room = 64 - nacc
    if n < room:
        acc = (acc << np.uint64(n)) | value
        nacc += n
    elif n == room:
        if nacc == 0:
            out[wpos] = value
        else:
            out[wpos] = (acc << np.uint64(n)) | value
        wpos += 1
        acc = np.uint64(0)
        nacc = 0
    else:
        spill = n - room
        if nacc == 0:  # cannot happen: n <= 64 == room
            out[wpos] = value
        else:
            out[wpos] = (acc << np.uint64(room)) | (value >> np.uint64(spill))
        wpos += 1
        acc = value & _low_mask(spill)
        nacc = spill
    return acc, nacc, wpos


@njit(inline="always")
def _flush(out, acc, nacc, wpos):
    if nacc > 0:
        out[wpos] = acc << np.uint64(64 - nacc)
        wpos += 1
    return wpos


@njit(inline="always")
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


# --------------------------------------------------------------------------
# packing and transposition
# --------------------------------------------------------------------------
@pnjit
def _pack_codes(codes, widths, nwords):
    """Concatenate each row's column codes (MSB first) into ``nwords`` words."""
    n, d = codes.shape
    out = np.zeros((n, nwords), dtype=np.uint64)
    for i in prange(n):
        row = out[i]
        acc = np.uint64(0)
        nacc = 0
        wpos = 0
        for j in range(d):
            w = widths[j]
            if w > 0:
                acc, nacc, wpos = _emit(row, acc, nacc, wpos, np.uint64(codes[i, j]), w)
        _flush(row, acc, nacc, wpos)
    return out


def pack_codes(codes: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """Pack per-column unsigned codes into rows of bits.

    Parameters
    ----------
    codes : (n, d) unsigned integer array
        Column ``j`` of every row must fit in ``widths[j]`` bits.
    widths : (d,) integer array
        Bit width of each column, ``0 <= widths[j] <= 64``.

    Returns
    -------
    words : (n, ceil(sum(widths) / 64)) uint64
        Each row's codes concatenated, most significant bit first.
    """
    codes = np.ascontiguousarray(codes)
    if codes.ndim != 2 or codes.dtype.kind != "u":
        raise TypeError("codes must be a 2-D unsigned integer array")
    widths = np.ascontiguousarray(widths, dtype=np.int64)
    if widths.shape != (codes.shape[1],) or (widths < 0).any() or (widths > 64).any():
        raise ValueError("widths must hold one value in [0, 64] per column")
    return _pack_codes(codes, widths, words_per_row(widths.sum()))


@njit
def _transpose_block(a):
    """Transpose a 64x64 bit matrix held in 64 words, in place (MSB first)."""
    j = 32
    m = np.uint64(0x00000000FFFFFFFF)
    while j != 0:
        k = 0
        uj = np.uint64(j)
        while k < 64:
            t = (a[k] ^ (a[k + j] >> uj)) & m
            a[k] ^= t
            a[k + j] ^= t << uj
            k = (k + j + 1) & ~j
        j >>= 1
        m ^= m << np.uint64(j)


@pnjit
def _transpose_bits(words, nbits):
    n, nw = words.shape
    nrw = (n + 63) // 64
    out = np.zeros((nw * 64, nrw), dtype=np.uint64)
    for rb in prange(nrw):
        block = np.empty(64, dtype=np.uint64)
        r0 = rb * 64
        rn = min(64, n - r0)
        for w in range(nw):
            for k in range(rn):
                block[k] = words[r0 + k, w]
            for k in range(rn, 64):
                block[k] = 0
            _transpose_block(block)
            for c in range(64):
                out[w * 64 + c, rb] = block[c]
    return out[:nbits]


def transpose_bits(words: np.ndarray, nbits: int) -> np.ndarray:
    """Bit-sliced transpose of packed rows.

    Parameters
    ----------
    words : (n, W) uint64
        Packed rows (see module conventions).
    nbits : int
        Number of meaningful bit positions per row, ``<= 64 * W``.

    Returns
    -------
    T : (nbits, ceil(n / 64)) uint64
        ``T[p]`` holds bit ``p`` of every row, row ``i`` at word ``i >> 6``,
        bit ``63 - (i & 63)``; padding rows are zero.
    """
    words = _as_words(words, "words")
    if not 0 <= nbits <= 64 * words.shape[1]:
        raise ValueError(f"nbits={nbits} does not fit in {words.shape[1]} words per row")
    return np.ascontiguousarray(_transpose_bits(words, int(nbits)))


# --------------------------------------------------------------------------
# counts and entropy (Eq. 6)
# --------------------------------------------------------------------------
@pnjit
def _position_counts(T, lo, hi):
    npos = T.shape[0]
    counts = np.zeros(npos, dtype=np.int64)
    if hi <= lo:
        return counts
    w0 = lo >> 6
    w1 = (hi - 1) >> 6
    m0 = _ALL >> np.uint64(lo & 63)
    m1 = _ALL << np.uint64(63 - ((hi - 1) & 63))
    for p in prange(npos):
        line = T[p]
        if w0 == w1:
            c = _popcount(line[w0] & m0 & m1)
        else:
            c = _popcount(line[w0] & m0) + _popcount(line[w1] & m1)
            for w in range(w0 + 1, w1):
                c += _popcount(line[w])
        counts[p] = c
    return counts


def position_counts(T: np.ndarray, lo: int = 0, hi: int | None = None) -> np.ndarray:
    """Number of rows in ``[lo, hi)`` with each bit position set.

    ``T`` is the transposed form from :func:`transpose_bits`.

    Parameters
    ----------
    T : (l_t, words) uint64
        The bit positions' rows, transposed (:func:`transpose_bits`).
    lo, hi : int
        The row range ``[lo, hi)`` (default: every row the words hold).
    """
    T = _as_words(T, "T")
    nrows_cap = 64 * T.shape[1]
    hi = nrows_cap if hi is None else int(hi)
    if not 0 <= lo <= hi <= nrows_cap:
        raise ValueError(f"row range [{lo}, {hi}) outside [0, {nrows_cap})")
    return _position_counts(T, int(lo), hi)


def entropy(counts: np.ndarray, n: int) -> np.ndarray:
    """Binary entropy of every bit position (Eq. 6).

    ``H_i = -p log2 p - (1 - p) log2 (1 - p)`` with ``p = counts[i] / n``;
    constant positions (``p`` in {0, 1}) have ``H = 0`` exactly.

    Parameters
    ----------
    counts : (l_t,) int
        Rows with each position set (:func:`position_counts`).
    n : int
        Rows counted.
    """
    counts = np.asarray(counts, dtype=np.int64)
    if n <= 0:
        raise ValueError("entropy needs n >= 1 rows")
    if (counts < 0).any() or (counts > n).any():
        raise ValueError("counts must lie in [0, n]")
    p = counts / float(n)
    q = 1.0 - p
    h = np.zeros(p.shape, dtype=np.float64)
    live = (counts > 0) & (counts < n)
    h[live] = -p[live] * np.log2(p[live]) - q[live] * np.log2(q[live])
    return h


# --------------------------------------------------------------------------
# grouping rows by their values on a set of positions
# --------------------------------------------------------------------------
@njit
def _refine(line, labels, n_groups, table):
    """Split every group by one more bit position, O(n).

    ``labels`` (length n) are group ids in ``[0, n_groups)``; after the call
    they are ids in ``[0, new_groups)`` numbered by first occurrence in row
    order.  ``table`` is scratch of length ``>= 2 * n_groups`` filled with -1
    and left filled with -1.  Returns ``new_groups``.
    """
    n = labels.shape[0]
    new = 0
    for i in range(n):
        b = (line[i >> 6] >> np.uint64(63 - (i & 63))) & _ONE
        key = 2 * labels[i] + np.int64(b)
        g = table[key]
        if g < 0:
            g = new
            table[key] = new
            new += 1
        labels[i] = g
    for k in range(2 * n_groups):
        table[k] = -1
    return new


@njit
def _group_by_positions(T, positions, n):
    labels = np.zeros(n, dtype=np.int64)
    table = np.full(2 * n + 2, -1, dtype=np.int64)
    groups = 1 if n > 0 else 0
    for k in range(positions.shape[0]):
        groups = _refine(T[positions[k]], labels, groups, table)
    return labels, groups


def refine_groups(line: np.ndarray, labels: np.ndarray, n_groups: int) -> int:
    """Split groups in place by one more bit position (see :func:`_refine`).

    Parameters
    ----------
    line : (ceil(n/64),) uint64
        One line ``T[p]`` of the transposed bits.
    labels : (n,) int64, modified in place
        Group ids in ``[0, n_groups)``.
    n_groups : int

    Returns
    -------
    int
        The new number of groups; ``labels`` are renumbered by first
        occurrence.
    """
    if labels.dtype != np.int64 or not labels.flags.c_contiguous or not labels.flags.writeable:
        raise TypeError("labels must be a writeable C-contiguous int64 array")
    line = _as_words(line, "line", ndim=1)
    if line.shape[0] * 64 < labels.shape[0]:
        raise ValueError("line is shorter than the number of rows")
    if labels.size and (labels.min() < 0 or labels.max() >= n_groups):
        raise ValueError("labels must lie in [0, n_groups)")
    table = np.full(2 * max(int(n_groups), 1) + 2, -1, dtype=np.int64)
    return int(_refine(line, labels, int(n_groups), table))


def group_by_positions(T: np.ndarray, positions, n: int):
    """Group ``n`` rows by their values on ``positions``.

    Returns ``(labels, n_groups)``: int64 ids numbered by first occurrence
    in row order, so the result does not depend on the order of
    ``positions``' bits' values, only on the partition they induce.

    Parameters
    ----------
    T : (l_t, words) uint64
        The transposed bits (:func:`transpose_bits`).
    positions : sequence of int
        The bit positions that define the groups.
    n : int
        Rows.
    """
    T = _as_words(T, "T")
    positions = np.ascontiguousarray(positions, dtype=np.int64)
    if positions.ndim != 1 or (positions.size and (positions.min() < 0 or positions.max() >= T.shape[0])):
        raise ValueError("positions must be a 1-D array of valid bit positions")
    if not 0 <= n <= 64 * T.shape[1]:
        raise ValueError("n exceeds the rows held in T")
    labels, groups = _group_by_positions(T, positions, int(n))
    return labels, int(groups)


def _as_words(a, name, ndim=2):
    a = np.asarray(a)
    if a.dtype != np.uint64:
        raise TypeError(f"{name} must be uint64 words, got {a.dtype}; use .astype(np.uint64)")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got {a.ndim}-D")
    return np.ascontiguousarray(a)


# --------------------------------------------------------------------------
# fixed-width integer streams (weights)
# --------------------------------------------------------------------------
@njit
def _pack_fixed(values, nbits):
    n = values.shape[0]
    out = np.zeros((n * nbits + 63) // 64 + 1, dtype=np.uint64)
    acc = np.uint64(0)
    nacc = 0
    wpos = 0
    for i in range(n):
        acc, nacc, wpos = _emit(out, acc, nacc, wpos, np.uint64(values[i]), nbits)
    _flush(out, acc, nacc, wpos)
    return out[: (n * nbits + 63) // 64]


@njit
def _unpack_fixed(words, nbits, n):
    out = np.zeros(n, dtype=np.uint64)
    if nbits == 0:
        return out
    for i in range(n):
        out[i] = _get_bits(words, i * nbits, nbits)
    return out


@njit
def _pack_varying(values, nbits):
    total = 0
    for i in range(nbits.shape[0]):
        total += nbits[i]
    out = np.zeros((total + 63) // 64 + 1, dtype=np.uint64)
    acc = np.uint64(0)
    nacc = 0
    wpos = 0
    for i in range(values.shape[0]):
        acc, nacc, wpos = _emit(out, acc, nacc, wpos, np.uint64(values[i]), nbits[i])
    _flush(out, acc, nacc, wpos)
    return out[: (total + 63) // 64]


@njit
def _unpack_varying(words, nbits):
    out = np.zeros(nbits.shape[0], dtype=np.uint64)
    pos = 0
    for i in range(nbits.shape[0]):
        if nbits[i]:
            out[i] = _get_bits(words, pos, nbits[i])
            pos += nbits[i]
    return out


@njit
def _row_keys(words, positions):
    """Each row's bits at ``positions`` (rows of packed words, MSB first) as ``ceil(k / 64)`` uint64 words."""
    n = words.shape[0]
    k = positions.shape[0]
    out = np.zeros((n, (k + 63) // 64), dtype=np.uint64)
    for i in range(n):
        for j in range(k):
            p = positions[j]
            bit = (words[i, p >> 6] >> np.uint64(63 - (p & 63))) & np.uint64(1)
            out[i, j >> 6] |= bit << np.uint64(63 - (j & 63))
    return out


def pack_varying(values: np.ndarray, nbits: np.ndarray) -> np.ndarray:
    """Pack unsigned ``values[i]`` in ``nbits[i]`` (0..64) bits each, MSB first, into one bit stream.

    Parameters
    ----------
    values : (k,) uint64
        The values, each below ``2**nbits[i]``.
    nbits : (k,) int
        Bits of each value.
    """
    values = np.ascontiguousarray(values, dtype=np.uint64)
    nbits = np.ascontiguousarray(nbits, dtype=np.int64)
    if values.shape != nbits.shape or values.ndim != 1:
        raise ValueError("values and nbits must be 1-D and of one length")
    if nbits.size and (nbits.min() < 0 or nbits.max() > 64):
        raise ValueError("nbits must be in [0, 64]")
    small = nbits < 64
    if (values[small] >> nbits[small].astype(np.uint64)).any():
        raise ValueError("a value does not fit in its bits")
    if values.size == 0 or int(nbits.sum()) == 0:
        return np.zeros(0, dtype=np.uint64)
    return _pack_varying(values, nbits)


def unpack_varying(words: np.ndarray, nbits: np.ndarray) -> np.ndarray:
    """Inverse of :func:`pack_varying`.

    Parameters
    ----------
    words : uint64 array
        The packed stream.
    nbits : (k,) int
        Bits of each value, as packed.
    """
    words = _as_words(words, "words", ndim=1)
    nbits = np.ascontiguousarray(nbits, dtype=np.int64)
    if nbits.size and (nbits.min() < 0 or nbits.max() > 64):
        raise ValueError("nbits must be in [0, 64]")
    if words.shape[0] * 64 < int(nbits.sum()):
        raise ValueError("stream is shorter than the values")
    if int(nbits.sum()) == 0:
        return np.zeros(nbits.size, dtype=np.uint64)
    return _unpack_varying(words, nbits)


def pack_fixed(values: np.ndarray, nbits: int) -> np.ndarray:
    """Pack unsigned values of ``nbits`` (0..64) bits each into a bit stream.

    Parameters
    ----------
    values : (k,) uint64
        The values, each below ``2**nbits``.
    nbits : int
        Bits per value.
    """
    values = np.ascontiguousarray(values, dtype=np.uint64)
    if not 0 <= nbits <= 64:
        raise ValueError("nbits must be in [0, 64]")
    if nbits < 64 and values.size and int(values.max()) >> nbits:
        raise ValueError(f"a value does not fit in {nbits} bits")
    if nbits == 0 or values.size == 0:
        return np.zeros(0, dtype=np.uint64)
    return _pack_fixed(values, int(nbits))


def unpack_fixed(words: np.ndarray, nbits: int, n: int) -> np.ndarray:
    """Inverse of :func:`pack_fixed`: ``n`` values of ``nbits`` bits.

    Parameters
    ----------
    words : uint64 array
        The packed stream.
    nbits : int
        Bits per value.
    n : int
        Values to unpack.
    """
    words = _as_words(words, "words", ndim=1)
    if words.shape[0] * 64 < n * nbits:
        raise ValueError("stream is shorter than n values")
    return _unpack_fixed(words, int(nbits), int(n))
