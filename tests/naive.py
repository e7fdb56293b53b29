"""Slow, obviously correct oracles for the gedenb kernels (no Numba).

Everything here is written from the definitions (DESIGN.md section 1 and
the module docstrings of :mod:`gedenb.bits` / :mod:`gedenb.layout`) with
Python integers, strings of ``'0'``/``'1'``, dicts and plain loops.  The
fast kernels must agree with these exactly.
"""

from __future__ import annotations

import numpy as np

# --------------------------------------------------------------------------
# bits of rows
# --------------------------------------------------------------------------


def code_bits(value, width):
    """``value`` as a string of ``width`` bits, MSB first ('' for width 0)."""
    v = int(value)
    if width == 0:
        assert v == 0, f"code {v} does not fit in 0 bits"
        return ""
    s = format(v, f"0{width}b")
    assert len(s) == width and v >= 0, f"code {v} does not fit in {width} bits"
    return s


def row_string(codes_row, widths):
    return "".join(code_bits(v, int(w)) for v, w in zip(codes_row, widths))


def bits_matrix(codes, widths):
    """(n, l_t) uint8 0/1 matrix: each row's codes concatenated, MSB first."""
    codes = np.asarray(codes)
    widths = [int(w) for w in widths]
    l_t = sum(widths)
    out = np.zeros((codes.shape[0], l_t), dtype=np.uint8)
    for i in range(codes.shape[0]):
        s = row_string(codes[i].tolist(), widths)
        out[i] = np.frombuffer(s.encode("ascii"), dtype=np.uint8) - ord("0")
    return out


def pack_strings(strings, nwords=None):
    """Pack bit strings (one per row) into (rows, W) uint64, MSB first, zero padded."""
    if nwords is None:
        nwords = max([(len(s) + 63) // 64 for s in strings], default=0)
    out = np.zeros((len(strings), nwords), dtype=np.uint64)
    for i, s in enumerate(strings):
        s = s.ljust(64 * nwords, "0")
        for w in range(nwords):
            out[i, w] = np.uint64(int(s[64 * w:64 * w + 64], 2))
    return out


def pack_bits(bitmat, nwords=None):
    """Rows of a 0/1 matrix packed into uint64 words (module convention of gedenb.bits)."""
    bitmat = np.asarray(bitmat, dtype=np.uint8)
    strings = ["".join(map(str, row)) for row in bitmat.tolist()]
    if nwords is None:
        nwords = (bitmat.shape[1] + 63) // 64
    return pack_strings(strings, nwords)


def transposed(bitmat):
    """The bit-sliced form T: T[p] = bit p of every row, packed like a row."""
    bitmat = np.asarray(bitmat, dtype=np.uint8)
    n = bitmat.shape[0]
    return pack_bits(bitmat.T, (n + 63) // 64)


def stream(strings):
    """Concatenate bit strings into one zero-padded uint64 stream."""
    s = "".join(strings)
    if not s:
        return np.zeros(0, dtype=np.uint64)
    return pack_strings([s])[0]


# --------------------------------------------------------------------------
# counts and entropy (Eq. 6)
# --------------------------------------------------------------------------


def position_counts(bitmat):
    bitmat = np.asarray(bitmat)
    counts = np.zeros(bitmat.shape[1], dtype=np.int64)
    for row in bitmat:
        counts += row
    return counts


def entropy(counts, n):
    """Eq. 6: H = -p log2 p - (1-p) log2 (1-p), 0 for p in {0, 1}."""
    out = np.zeros(len(counts), dtype=np.float64)
    for i, c in enumerate(counts):
        c = int(c)
        if c == 0 or c == n:
            continue
        p = np.float64(c) / np.float64(n)
        q = np.float64(1.0) - p
        out[i] = -p * np.log2(p) - q * np.log2(q)
    return out


# --------------------------------------------------------------------------
# clustering phase
# --------------------------------------------------------------------------


def cluster_positions(entropy, widths, beta):
    entropy = [float(h) for h in entropy]
    per_col = []
    start = 0
    for w in widths:
        w = int(w)
        per_col.append([p for p in range(start, start + w) if entropy[p] > 0])
        start += w
    available = sum(len(c) for c in per_col)
    if beta < 1 or beta > available:
        raise ValueError("beta out of range")
    chosen = []
    level = 0
    while len(chosen) < beta:
        lv = [c[level] for c in per_col if len(c) > level]
        lv.sort(key=lambda p: (-entropy[p], p))
        for p in lv:
            if len(chosen) < beta:
                chosen.append(p)
        level += 1
    return chosen


def groups(bitmat, positions):
    """Labels numbered by first occurrence in row order, and their count."""
    sub = np.asarray(bitmat)[:, np.asarray(positions, dtype=np.int64)].tolist()
    seen = {}
    labels = []
    for row in sub:
        key = tuple(row)
        if key not in seen:
            seen[key] = len(seen)
        labels.append(seen[key])
    return np.asarray(labels, dtype=np.int64), len(seen)


def centroids(X, labels, m):
    """Group means (float64, summed in row order) and group sizes."""
    d = X.shape[1]
    sums = [[0.0] * d for _ in range(m)]
    counts = [0] * m
    for i in range(X.shape[0]):
        g = int(labels[i])
        counts[g] += 1
        for j in range(d):
            sums[g][j] = float(np.float64(sums[g][j]) + np.float64(X[i, j]))
    means = np.array([[s / c for s in row] for row, c in zip(sums, counts)], dtype=np.float64)
    return means.reshape(m, d), np.asarray(counts, dtype=np.int64)


def exact_centroids(X, labels, m):
    """Group means of every column skipping NaN, from exact rational sums rounded once to float64 (an
    infinity makes the mean infinite, both signs NaN), and the NaN counts per group and column."""
    from fractions import Fraction

    d = X.shape[1]
    sums = [[Fraction(0)] * d for _ in range(m)]
    inf = [[set() for _ in range(d)] for _ in range(m)]
    nans = np.zeros((m, d), dtype=np.int64)
    counts = np.zeros(m, dtype=np.int64)
    for i in range(X.shape[0]):
        g = int(labels[i])
        counts[g] += 1
        for j in range(d):
            v = X[i, j]
            v = int(v) if isinstance(v, (np.integer, np.bool_)) else float(v)
            if v != v:
                nans[g, j] += 1
            elif isinstance(v, float) and abs(v) == float("inf"):
                inf[g][j].add(v > 0)
            else:
                sums[g][j] += Fraction(v)
    means = np.empty((m, d), dtype=np.float64)
    for g in range(m):
        for j in range(d):
            present = counts[g] - nans[g, j]
            if inf[g][j]:
                means[g, j] = np.nan if len(inf[g][j]) == 2 else (np.inf if True in inf[g][j] else -np.inf)
            else:
                means[g, j] = float(sums[g][j] / present) if present else np.nan
    return means, counts, nans


# --------------------------------------------------------------------------
# compression phase
# --------------------------------------------------------------------------


def ceil_log2(x):
    x = int(x)
    assert x >= 1
    b = 0
    while 2**b < x:
        b += 1
    return b


def eq1(n_b, l_b, l_d, n, m, s_params=0):
    weights = m * ceil_log2(n) if m else 0
    return n_b * l_b + (n + m) * (ceil_log2(n_b) + l_d) + weights + s_params


def greedy(bitmat, counts, entropy, n, m, tau, s_params=0):
    """Algorithm 1, lines 10-27, recomputing n_b from scratch every step."""
    bitmat = np.asarray(bitmat)
    N = n + m
    l_t = bitmat.shape[1]
    const = [p for p in range(l_t) if counts[p] == 0 or counts[p] == N]
    rest = [p for p in range(l_t) if not (counts[p] == 0 or counts[p] == N)]
    rest.sort(key=lambda p: (float(entropy[p]), p))
    base = list(const)
    l_b = len(const)
    l_d = l_t - l_b
    best = eq1(1, l_b, l_d, n, m, s_params)
    best_base = list(base)
    best_nb = 1
    sizes = [best]
    c = 0
    for p in rest:
        base.append(p)
        n_b = len({tuple(row) for row in bitmat[:N][:, base].tolist()})
        l_b += 1
        l_d -= 1
        s = eq1(n_b, l_b, l_d, n, m, s_params)
        sizes.append(s)
        if s < best:
            best, best_base, best_nb, c = s, list(base), n_b, 0
        else:
            c += 1
            if c >= tau or n_b == N:
                break
    mask = np.zeros(l_t, dtype=bool)
    mask[best_base] = True
    labels, nb = groups(bitmat, sorted(best_base))
    assert nb == best_nb
    return mask, best_nb, labels, sizes


# --------------------------------------------------------------------------
# GeDe records
# --------------------------------------------------------------------------


def record_strings(bitmat, base_mask, labels, n_b):
    """Expected (bases stream, records stream) of rows split by ``base_mask``.

    Base ``g`` is the base bits (ascending positions) of the first row with
    label ``g``; record ``i`` is ``labels[i]`` in ceil(log2 n_b) bits then the
    row's deviation bits (ascending positions).
    """
    bitmat = np.asarray(bitmat)
    bpos = np.flatnonzero(base_mask)
    dpos = np.flatnonzero(~np.asarray(base_mask, dtype=bool))
    id_bits = ceil_log2(n_b)
    bases = [None] * n_b
    recs = []
    for i in range(bitmat.shape[0]):
        g = int(labels[i])
        b = "".join(map(str, bitmat[i, bpos].tolist()))
        if bases[g] is None:
            bases[g] = b
        assert bases[g] == b, "rows with one label must share their base bits"
        recs.append(code_bits(g, id_bits) + "".join(map(str, bitmat[i, dpos].tolist())))
    return stream(bases), stream(recs)


# --------------------------------------------------------------------------
# test data (not an oracle): random codes of given widths
# --------------------------------------------------------------------------
MODES = ("random", "zeros", "ones", "top", "few", "structured")


def random_codes(rng, n, widths, mode="random"):
    """(n, d) uint64 codes, column j fitting in ``widths[j]`` bits.

    ``zeros``/``ones``: every bit 0 / 1; ``top``: MSB of every code set;
    ``few``: a handful of distinct rows; ``structured``: a few distinct high
    parts plus random low bits (gives the greedy search a real curve).
    """
    widths = [int(w) for w in widths]
    codes = np.zeros((n, len(widths)), dtype=np.uint64)
    pick = rng.integers(0, 3, size=n)
    for j, w in enumerate(widths):
        if w == 0:
            continue
        full = (1 << w) - 1
        rand = rng.integers(0, full, size=n, endpoint=True, dtype=np.uint64)
        if mode == "zeros":
            col = np.zeros(n, dtype=np.uint64)
        elif mode == "ones":
            col = np.full(n, full, dtype=np.uint64)
        elif mode == "top":
            col = rand | np.uint64(1 << (w - 1))
        elif mode == "few":
            vals = rng.integers(0, full, size=3, endpoint=True, dtype=np.uint64)
            col = vals[pick]
        elif mode == "structured":
            low = min(w, int(rng.integers(0, 4)))
            vals = rng.integers(0, full, size=3, endpoint=True, dtype=np.uint64)
            col = (vals[rng.integers(0, 3, size=n)] & np.uint64(full ^ ((1 << low) - 1))) | (
                rand & np.uint64((1 << low) - 1)
            )
        else:
            col = rand
        codes[:, j] = col
    return codes


FLOAT_LAYOUT = {2: (5, 10), 4: (8, 23), 8: (11, 52)}  # itemsize -> (exponent, mantissa) bits


def _uint(dtype):
    return np.dtype(np.uint8) if dtype == np.bool_ else np.dtype(f"u{dtype.itemsize}")


def _from_bits(patterns, dtype):
    return np.asarray([int(p) for p in patterns], dtype=np.uint64).astype(_uint(dtype)).view(dtype)


def float_specials(dtype, rng):
    """NaNs with payloads (both signs, quiet and signalling), +-inf, +-0, subnormals, extremes."""
    e, m = FLOAT_LAYOUT[dtype.itemsize]
    nb = 1 + e + m
    sign = 1 << (nb - 1)
    exp_all = ((1 << e) - 1) << m
    pats = []
    for s in (0, sign):
        pats += [s | exp_all]  # +-inf
        pats += [s | exp_all | (1 << (m - 1))]  # quiet NaN
        pats += [s | exp_all | 1, s | exp_all | ((1 << m) - 1)]  # payloads, signalling NaN
        pats += [s | exp_all | int(rng.integers(1, 1 << m))]
        pats += [s, s | 1, s | ((1 << m) - 1), s | int(rng.integers(1, 1 << m))]  # zeros, subnormals
        pats += [s | (exp_all - (1 << m)) | ((1 << m) - 1)]  # +-max
        pats += [s | (1 << m)]  # +-smallest normal
    return _from_bits(pats, dtype)


def int_extremes(dtype):
    info = np.iinfo(dtype)
    return np.array([info.min, info.max, info.min + 1, info.max - 1, 0, 1], dtype=dtype)


def special_table(dtype, rng, n=90):
    """A table mixing random bit patterns, specials, constants and small ranges."""
    dtype = np.dtype(dtype)
    cols = []
    u = _uint(dtype)
    if dtype == np.bool_:
        cols.append(rng.integers(0, 2, n).astype(bool))
        cols.append(np.ones(n, bool))
        cols.append(np.zeros(n, bool))
        return np.stack(cols, axis=1)
    nb = 8 * dtype.itemsize
    rand_bits = rng.integers(0, (1 << nb) - 1, size=n, endpoint=True, dtype=np.uint64).astype(u).view(dtype)
    cols.append(rand_bits)
    if dtype.kind == "f":
        sp = float_specials(dtype, rng)
        cols.append(np.resize(sp, n))
        cols.append(np.full(n, sp[3]))  # constant NaN with payload
        cols.append(np.full(n, -0.0, dtype=dtype))
        mix = np.resize(sp, n).copy()
        mix[::3] = rng.normal(size=len(mix[::3])).astype(dtype)
        cols.append(mix)
        cols.append((rng.integers(-50, 50, n) / 4).astype(dtype))
    else:
        cols.append(np.resize(int_extremes(dtype), n))
        cols.append(np.full(n, np.iinfo(dtype).min, dtype=dtype))
        cols.append(np.full(n, np.iinfo(dtype).max, dtype=dtype))
        cols.append(rng.integers(0, 10, n).astype(dtype))
    X = np.stack(cols, axis=1)
    return X[rng.permutation(n)]
