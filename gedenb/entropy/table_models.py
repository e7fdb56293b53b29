"""Table context models (scheme 0): per-slot contexts chosen by the size they produce.

Every slot has its own tables; per slot the compressor picks, by the size
it would produce (coded symbols plus serialised tables), raw (uniform)
digits, one table, or a context from the digit above in the same column
and / or the top digit of one of the two previous columns, quantised to
2-16 levels (the candidates :data:`CTX_NREF`, costed by
:func:`_context_costs`, chosen by :func:`_choose_table_contexts`).
:class:`_ContextCosts` keeps the candidates' costs per column across the
steps of a greedy base selection.
"""

from __future__ import annotations

import numpy as np

from .._numba import njit, pnjit, prange
from ..bits import _popcount
from .coder import _GAMMA_BITS, MAX_ALPHABET
from .model import PREC, _Z, _row_symbols


def _table_slot_refs(nref, ref, shift, slot_bits, S, d):
    """Arrays ``refs, shifts, nlev`` of the table scheme from per-slot choices."""
    zero = S + d
    refs = np.full((S, _Z), zero, dtype=np.int64)
    shifts = np.zeros((S, _Z), dtype=np.int64)
    nlev = np.ones((S, _Z), dtype=np.int64)
    nref = np.asarray(nref, dtype=np.int64)
    slot_bits = np.asarray(slot_bits, dtype=np.int64)
    for k in range(2):
        use = np.flatnonzero(nref > k)
        r, sh = np.asarray(ref, dtype=np.int64)[use, k], np.asarray(shift, dtype=np.int64)[use, k]
        refs[use, k], shifts[use, k] = r, sh
        nlev[use, k] = (((np.int64(1) << slot_bits[r]) - 1) >> sh) + 1
    return refs, shifts, nlev


def _table_alphabet(uniform, nlev, slot_bits):
    """Each coded digit slot's first table and every table's alphabet size (one table per context level combination)."""
    S = slot_bits.shape[0]
    coded = ~np.asarray(uniform, dtype=bool)
    k = np.where(coded, np.prod(nlev, axis=1), 0).astype(np.int64) if S else np.zeros(0, dtype=np.int64)
    slot_table = np.where(coded, np.cumsum(k) - k, -1).astype(np.int64)
    alphabet = np.repeat(np.left_shift(np.int64(1), np.asarray(slot_bits, dtype=np.int64)), k).astype(np.int64)
    return slot_table, alphabet


#: Rows per block of :func:`_table_counts` (a block's digits stay in cache while every slot reads them).
COUNT_BLOCK_ROWS = 4096


@pnjit
def _table_counts(sym, slot_table, refs, shifts, nlev, n_tables):
    """Symbol counts per table of a table-scheme model, ``(n_tables, MAX_ALPHABET)``: what
    :func:`gedenb.entropy.model._row_contexts` counts with ``image=False``, one task per slot (each slot owns
    its tables) over blocks of :data:`COUNT_BLOCK_ROWS` rows, without per-task copies of the counts.

    References at or past ``S`` (the zero entry) read level 0.
    """
    N, S = sym.shape
    counts = np.zeros((n_tables, MAX_ALPHABET), dtype=np.int64)
    for b0 in range(0, N, COUNT_BLOCK_ROWS):
        b1 = min(N, b0 + COUNT_BLOCK_ROWS)
        for s in prange(S):
            t = slot_table[s]
            if t < 0:
                continue
            for i in range(b0, b1):
                ctx = np.int64(0)
                for k in range(refs.shape[1]):
                    r = refs[s, k]
                    v = np.int64(sym[i, r]) if r < S else np.int64(0)
                    ctx = ctx * nlev[s, k] + (v >> shifts[s, k])
                counts[t + ctx, sym[i, s]] += 1
    return counts


#: Candidate contexts of a table-scheme digit slot, in the order the compressor tries them
#: (:func:`_choose_table_contexts`): none; each of the slot's up to :data:`CTX_SOURCES` sources
#: (the digit above in the same column, then the first digits of the two previous columns with deviation bits)
#: quantised to its top 1, 2, 3 or 4 bits; the first two sources together at (2, 2), (3, 2), (4, 2) and (2, 3)
#: bits.  ``CTX_NREF[k]`` references, reference ``q`` to source ``CTX_SRC[k, q]`` at its top ``CTX_LV[k, q]`` bits.
CTX_SOURCES = 3
CTX_NREF = np.array([0] + [1] * 12 + [2] * 4, dtype=np.int64)
CTX_SRC = np.array([[0, 0]] + [[q, 0] for q in range(3) for _ in range(4)] + [[0, 1]] * 4, dtype=np.int64)
CTX_LV = np.array([[0, 0]] + [[lv, 0] for _ in range(3) for lv in (1, 2, 3, 4)] + [[2, 2], [3, 2], [4, 2], [2, 3]],
                  dtype=np.int64)
CTX_CANDIDATES = CTX_NREF.shape[0]


@njit(inline="always")
def _candidate(k, s, src, slot_bits):
    """``(nref, r0, shift0, r1, shift1, radix1, n_contexts)`` of candidate ``k`` of slot ``s``; ``nref = -1``
    where the slot lacks a source or a source has fewer bits than the candidate takes."""
    nref = CTX_NREF[k]
    r0, sh0, r1, sh1 = np.int64(0), np.int64(0), np.int64(0), np.int64(0)
    nl1, nctx = np.int64(1), np.int64(1)
    if nref >= 1:
        r0, lv = src[s, CTX_SRC[k, 0]], CTX_LV[k, 0]
        if r0 < 0 or lv > slot_bits[r0]:
            return np.int64(-1), r0, sh0, r1, sh1, nl1, nctx
        sh0, nctx = slot_bits[r0] - lv, np.int64(1) << lv
    if nref >= 2:
        r1, lv = src[s, CTX_SRC[k, 1]], CTX_LV[k, 1]
        if r1 < 0 or lv > slot_bits[r1]:
            return np.int64(-1), r0, sh0, r1, sh1, nl1, nctx
        sh1, nl1 = slot_bits[r1] - lv, np.int64(1) << lv
        nctx *= nl1
    return nref, r0, sh0, r1, sh1, nl1, nctx


#: Most contexts of one candidate (two sources at 4 + 2 bits).
CTX_MAX = 64


@njit(inline="always")
def _lowest(x):
    """``(position of the lowest set bit of x, x without it)`` (``x != 0``)."""
    low = x & (~x + np.uint64(1))
    return np.int64(_popcount(low - np.uint64(1))), x ^ low


@njit
def _sparse_table_cost(counts, seen, freq, t, tot, alphabet, prec, bits, log2):
    """``(bits, table bits)`` of table ``t`` (``tot > 0`` symbols): ``bits`` plus the coded bits of its
    symbols, and its serialised bits -- what :func:`~gedenb.entropy.coder._code_bits` adds to its sum and
    :func:`~gedenb.entropy.coder._table_bits` counts for this row of :func:`~gedenb.entropy.coder._quantise` (the same
    float additions in the same order).

    ``counts`` and ``freq`` are dense ``(contexts, alphabet)`` rows flattened, ``seen`` marks the non-zero
    counts (one bit each, ``ceil(alphabet / 64)`` words per table); only those are visited, and the table's
    counts and marks are left zero.  ``log2[f]`` memoises ``log2(f)`` (NaN: not yet computed), each value
    computed once by the same scalar call as in :func:`gedenb.entropy.coder._code_bits`.
    """
    W = (alphabet + 63) >> 6
    row = t * alphabet
    msz = np.int64(1) << prec
    total = np.int64(0)
    best = np.int64(-1)
    cbest = np.int64(0)
    for w in range(W):  # the frequencies of :func:`gedenb.entropy.coder._quantise`
        x = seen[t * W + w]
        while x:
            b, x = _lowest(x)
            a = 64 * w + b
            c = counts[row + a]
            f = (c * msz + tot // 2) // tot
            if f < 1:
                f = 1
            freq[row + a] = f
            total += f
            if c > cbest:  # the first most frequent symbol
                best, cbest = a, c
    diff = msz - total
    if diff > 0:
        freq[row + best] += diff
    while diff < 0:  # take from the largest frequencies (the first of equal ones), never below 1
        big = np.int64(-1)
        for w in range(W):
            x = seen[t * W + w]
            while x:
                b, x = _lowest(x)
                a = 64 * w + b
                if big < 0 or freq[row + a] > freq[row + big]:
                    big = a
        take = min(-diff, np.int64(freq[row + big]) - 1)
        freq[row + big] -= take
        diff += take
    tbits = np.int64(1)  # the non-empty flag, then (gamma(zero run + 1), gamma(freq)) pairs
    prev = np.int64(-1)
    for w in range(W):
        x = seen[t * W + w]
        seen[t * W + w] = 0
        while x:
            b, x = _lowest(x)
            a = 64 * w + b
            f = freq[row + a]
            lg = log2[f]
            if lg != lg:
                lg = np.log2(f)
                log2[f] = lg
            bits += counts[row + a] * (prec - lg)
            tbits += _GAMMA_BITS[a - prev] + _GAMMA_BITS[f]
            counts[row + a] = 0
            prev = a
    if prev < alphabet - 1:
        tbits += _GAMMA_BITS[alphabet - prev]
    return bits, tbits


@pnjit
def _context_costs(sym, slots, src, slot_bits, prec):
    """Coded bits (symbols, then tables: :mod:`~gedenb.entropy.coder`'s ``_code_bits`` + ``_table_bits`` of
    ``_quantise``) of every row's digit in each slot of ``slots`` under each candidate context (:data:`CTX_NREF`),
    ``(len(slots), CTX_CANDIDATES)``; ``inf`` for candidates the slot lacks.

    ``src[s]`` are slot ``s``'s sources (slot indices, -1 after the last); the context of two references is
    ``(sym[:, r0] >> shift0) * radix1 + (sym[:, r1] >> shift1)``.  Slots are independent; each visits only the
    non-zero counts of its candidates' tables (:func:`_sparse_table_cost`).
    """
    N = sym.shape[0]
    n = slots.shape[0]
    out = np.full((n, CTX_CANDIDATES), np.inf)
    nch = max(1, min(n, 64))
    for ch in prange(nch):
        counts = np.zeros(CTX_MAX * MAX_ALPHABET, dtype=np.int64)
        freq = np.zeros(CTX_MAX * MAX_ALPHABET, dtype=np.int32)
        seen = np.zeros(CTX_MAX * MAX_ALPHABET // 64, dtype=np.uint64)
        tots = np.zeros(CTX_MAX, dtype=np.int64)
        log2 = np.full((1 << prec) + 1, np.nan)
        for u in range(ch * n // nch, (ch + 1) * n // nch):
            s = slots[u]
            alphabet = np.int64(1) << slot_bits[s]
            W = (alphabet + 63) >> 6
            for k in range(CTX_CANDIDATES):
                nref, r0, sh0, r1, sh1, nl1, nctx = _candidate(k, s, src, slot_bits)
                if nref < 0:
                    continue
                for i in range(N):
                    c = np.int64(0)
                    if nref >= 1:
                        c = np.int64(sym[i, r0]) >> sh0
                    if nref >= 2:
                        c = c * nl1 + (np.int64(sym[i, r1]) >> sh1)
                    a = np.int64(sym[i, s])
                    if counts[c * alphabet + a] == 0:
                        seen[c * W + (a >> 6)] |= np.uint64(1) << np.uint64(a & 63)
                    counts[c * alphabet + a] += 1
                    tots[c] += 1
                bits = 0.0
                tbits = np.int64(0)
                for t in range(nctx):
                    if tots[t] == 0:
                        tbits += 1  # the empty flag
                        continue
                    bits, tb = _sparse_table_cost(counts, seen, freq, t, tots[t], alphabet, prec, bits, log2)
                    tots[t] = 0
                    tbits += tb
                out[u, k] = bits + tbits
    return out


@njit
def _pick_contexts(costs, src, slot_bits, n_rows, budget):
    """Per slot, in slot order, the candidate (:data:`CTX_NREF`) of smallest ``costs`` below the slot's
    ``n_rows * bits`` raw bits among those needing at most the tables left of ``budget`` (the first of equal
    ones), or -1 (raw digits); each pick takes its tables from the budget."""
    S = costs.shape[0]
    choice = np.full(S, -1, dtype=np.int64)
    for s in range(S):
        best = np.float64(n_rows * slot_bits[s])
        take = 0
        for k in range(CTX_CANDIDATES):
            c = costs[s, k]
            if c < best:
                nref, _r0, _s0, _r1, _s1, _nl1, nctx = _candidate(k, s, src, slot_bits)
                if nref >= 0 and nctx <= budget:
                    best, take, choice[s] = c, nctx, k
        budget -= take
    return choice


#: Work counters of the compressor, for tests of how its work grows: ``"context_slots"``, digit slots whose
#: candidate contexts were costed (:func:`_choose_table_contexts`; a greedy search reuses the costs of columns
#: whose digits did not change, :class:`_ContextCosts`).  Only ever incremented.
_WORK = {"context_slots": 0}


def _context_sources(slot_col: np.ndarray, slot_tix: np.ndarray) -> np.ndarray:
    """``(S, CTX_SOURCES)``: every slot's context sources -- the digit above in its column (if any), then
    the first digits of the previous two columns with digits -- as slot indices, -1 after the last."""
    S = slot_col.shape[0]
    src = np.full((S, CTX_SOURCES), -1, dtype=np.int64)
    if not S:
        return src
    first = slot_tix == 0
    firsts = np.flatnonzero(first)
    rank = np.cumsum(first) - 1  # position of the slot's column among the columns with digits
    prev = [np.where(rank >= q, firsts[np.maximum(rank - q, 0)], -1) for q in (1, 2)]
    lower = ~first
    src[first, 0], src[first, 1] = prev[0][first], prev[1][first]
    src[lower, 0] = np.flatnonzero(lower) - 1
    src[lower, 1], src[lower, 2] = prev[0][lower], prev[1][lower]
    return src


class _ContextCosts:
    """Candidate context costs of the table scheme's slots for one table's codes under changing base masks.

    The costs of a column's digits depend only on the codes and on the
    deviation bits of the column and of the two previous columns with
    deviation bits (its context sources), so they are kept per column and
    recomputed only where one of those changed: a step of the greedy search,
    which moves one bit into the base, recomputes at most three columns
    (:func:`gedenb.entropy.fitting.greedy_base_selection`).  Every call must be for the same codes,
    unchanged.
    """

    def __init__(self):
        self.key = None  # per column: its deviation mask and its two sources' columns and masks
        self.costs = None  # (d, digits, CTX_CANDIDATES)
        self.digits = None  # (slot_col, sym, dmask) of the last call of symbols()

    def symbols(self, codes, slot_col, slot_low, slot_bits, dmask, dshift) -> np.ndarray:
        """The digits of ``codes`` under the deviation masks ``dmask``, ``(N, S)`` uint8:
        those of the last call, updated in place in the columns whose mask changed, where every column has
        as many digits as then (a bit moved into the base without changing its column's digit count).  The
        array is this object's: valid until its next call."""
        last = self.digits
        if last is not None and np.array_equal(last[0], slot_col):  # the other columns' digits are the same
            sym = last[1]
            slots = np.flatnonzero(np.isin(slot_col, np.flatnonzero(last[2] != dmask)))
            if slots.size:
                sym[:, slots] = _row_symbols(codes, slot_col[slots], slot_low[slots], slot_bits[slots], dmask,
                                                dshift)
        else:
            sym = _row_symbols(codes, slot_col, slot_low, slot_bits, dmask, dshift)
        self.digits = (slot_col, sym, dmask)
        return sym

    def __call__(self, sym, slot_col, slot_tix, slot_bits, src, dmask) -> np.ndarray:
        """``(S, CTX_CANDIDATES)`` costs of the slots of ``sym`` (the digits of the codes under the
        deviation masks ``dmask``)."""
        d = dmask.shape[0]
        S = slot_col.shape[0]
        key = np.zeros((d, 5), dtype=np.uint64)
        key[:, 0] = dmask
        first = np.flatnonzero(slot_tix == 0)  # a column's first digit has the other columns as its sources
        cols = slot_col[first]
        for q in range(2):
            r = src[first, q]
            j = np.where(r >= 0, slot_col[np.maximum(r, 0)], -1)
            key[cols, 1 + 2 * q] = j.view(np.uint64)
            key[cols, 2 + 2 * q] = np.where(j >= 0, dmask[np.maximum(j, 0)], 0)
        digits = int(slot_tix.max()) + 1 if S else 1
        if self.costs is None or self.costs.shape[1] < digits or self.costs.shape[0] != d:
            self.costs = np.empty((d, digits, CTX_CANDIDATES), dtype=np.float64)
            self.key = None
        stale = np.ones(d, dtype=bool) if self.key is None else (key != self.key).any(axis=1)
        slots = np.flatnonzero(stale[slot_col])
        if slots.size:
            self.costs[slot_col[slots], slot_tix[slots]] = _context_costs(sym, slots, src, slot_bits, PREC)
            _WORK["context_slots"] += int(slots.size)
        self.key = key
        return self.costs[slot_col, slot_tix]


def _choose_table_contexts(sym: np.ndarray, slot_col, slot_bits, slot_tix, max_tables: int, dmask=None,
                           costs=None):
    """Per slot, the context with the smallest coded size (symbols + tables).

    Every slot, in slot order, takes the cheapest of raw (uniform) digits and
    its candidate contexts (:data:`CTX_NREF`) that fit the
    tables left of ``max_tables``.  ``costs`` (a :class:`_ContextCosts` of the
    codes of ``sym``, with the columns' deviation masks ``dmask``) reuses
    the candidates' costs of earlier calls where a column's digits did not
    change.

    Returns
    -------
    uniform : (S,) bool
    nref : (S,) int64
    ref, shift : (S, 2) int64
        References (slot indices) and shifts of the chosen contexts (0 where unused).
    """
    N, S = sym.shape
    slot_bits = np.asarray(slot_bits, dtype=np.int64)
    src = _context_sources(slot_col, slot_tix)
    if costs is None:
        cost = _context_costs(sym, np.arange(S, dtype=np.int64), src, slot_bits, PREC)
        _WORK["context_slots"] += S
    else:
        cost = costs(sym, slot_col, slot_tix, slot_bits, src, dmask)
    choice = _pick_contexts(cost, src, slot_bits, N, max_tables)
    uniform = choice < 0
    k = np.maximum(choice, 0)
    nref = np.where(uniform, 0, CTX_NREF[k])
    ref = np.zeros((S, 2), dtype=np.int64)
    shift = np.zeros((S, 2), dtype=np.int64)
    for q in range(2):
        use = np.flatnonzero(nref > q)
        r = src[use, CTX_SRC[k[use], q]]
        ref[use, q], shift[use, q] = r, slot_bits[r] - CTX_LV[k[use], q]
    return uniform, nref, ref, shift
