"""Static rANS kernels for entropy-coded deviations (``coding="entropy"``).

Range asymmetric numeral systems (rANS, J. Duda 2013) with a 32-bit state,
byte-wise renormalisation and ``P`` bits of frequency precision (per
model: ``PREC = 12`` for tables, ``IMAGE_PREC = 10`` for images, whose many
context tables must stay in cache), as in F. Giesen's ``rans_byte.h``:

* state ``x`` in ``[L, 256 L)`` with ``L = 2**23``;
* encoding symbol ``(start, freq)``: while ``x >= ((L >> P) << 8) * freq``
  emit the low byte of ``x`` and shift it out; then
  ``x = (x // freq) << P + x % freq + start``;
* decoding: ``slot = x & (2**P - 1)`` names the symbol whose
  ``[start, start + freq)`` holds it; ``x = freq * (x >> P) + slot - start``
  (the lookup table holds ``slot - start``);
  while ``x < L`` read the next byte: ``x = (x << 8) | byte``.

Every row is one independent rANS stream: the encoder runs over the row's
symbols backwards and writes bytes backwards, so the decoder reads the
final state (4 bytes, most significant first) and then the bytes forwards.  Decoding
a row ends in the state ``L`` exactly, having read exactly the row's bytes;
anything else is a corrupt row.  Image rows with zero runs are split in two
such chains (MODL version 2): the second one's bytes are written forwards
and end the row, so it is read backwards from the row's end, and the two
chains must meet (:func:`_encode_events`, :func:`_decode_image_two`).

The symbols of a row are the digits (at most 8 bits, most significant
first) of every column's deviation value; each digit is coded with the
frequency table chosen by its slot and a context computed from levels of
symbols decoded before it in the same row (see :mod:`gedenb.coding`).

All kernels here are private and typed; :mod:`gedenb.coding` validates and
calls them.
"""

from __future__ import annotations

import threading

import numpy as np

from ._numba import borrowed, njit, pnjit, prange
from .bits import _get_bits, _popcount
from .encode import _store_value
from .layout import _put_bits

#: Bits of frequency precision of table-scheme models; their frequency tables sum to ``M = 2**PREC``.
PREC = 12
M = 1 << PREC
#: Precision of image-scheme models: their ~114 decode tables (4 B x 2**IMAGE_PREC entries each,
#: 0.47 MB instead of 1.9 MB at 12 bits) then stay in the L2 cache.  MNIST class 3, 1,024 random rows
#: (``scripts/entropy_read_speed.py --image-prec P``, alternating runs): 12 bits 410-417 MB/s, 10 bits
#: 469-500 MB/s for +1.1% bytes, 9 bits no faster than 10 for +5.7% bytes.
IMAGE_PREC = 10
IMAGE_M = 1 << IMAGE_PREC
#: Precisions a reader accepts (every digit has <= 8 bits; renormalisation reads <= 2 bytes).
MIN_PREC, MAX_PREC = 8, 12
#: Lower bound of the normalised rANS state.
RANS_L = 1 << 23
#: Bytes of a flushed state.
STATE_BYTES = 4
#: Largest alphabet of one symbol (digits of at most 8 bits).
MAX_ALPHABET = 256
#: Number of context references per slot.
K_REFS = 4
#: Most bits of uniform digits carried by a row's initial rANS state.
CARRY_BITS = 30


# --------------------------------------------------------------------------
# bit helpers
# --------------------------------------------------------------------------
@njit(inline="always")
def _pext(v, mask, contiguous_shift):
    """Bits of ``v`` at the set bits of ``mask``, packed to the low end (order kept)."""
    if contiguous_shift >= 0:
        return (v & mask) >> np.uint64(contiguous_shift)
    out = np.uint64(0)
    k = np.uint64(0)
    mm = mask
    while mm:
        low = mm & (~mm + np.uint64(1))
        if v & low:
            out |= np.uint64(1) << k
        k += np.uint64(1)
        mm ^= low
    return out


@njit(inline="always")
def _pdep(v, mask, contiguous_shift):
    """Inverse of :func:`_pext`: the low bits of ``v`` spread onto ``mask``."""
    if contiguous_shift >= 0:
        return (v << np.uint64(contiguous_shift)) & mask
    out = np.uint64(0)
    mm = mask
    while mm:
        low = mm & (~mm + np.uint64(1))
        if v & np.uint64(1):
            out |= low
        v >>= np.uint64(1)
        mm ^= low
    return out


# --------------------------------------------------------------------------
# symbols and contexts of rows (encoder side)
# --------------------------------------------------------------------------
@pnjit
def _row_symbols(codes, slot_col, slot_lowshift, slot_bits, col_dmask, col_dshift):
    """Digits of every row: ``sym[i, s]`` is digit ``s`` of row ``i``."""
    N = codes.shape[0]
    S = slot_col.shape[0]
    sym = np.empty((N, S), dtype=np.uint8)
    for i in prange(N):
        for s in range(S):
            j = slot_col[s]
            dev = _pext(codes[i, j], col_dmask[j], col_dshift[j])
            sym[i, s] = np.uint8((dev >> np.uint64(slot_lowshift[s])) & np.uint64((1 << slot_bits[s]) - 1))
    return sym


@njit
def _count_chunks(N, n_tables, count):
    """Row chunks of the symbol-counting kernels: with ``count``, at most 8 and 64 MB of partial counts."""
    if not count:
        return max(1, min(N, 64))
    return max(1, min(N, 8, (1 << 23) // max(1, n_tables * MAX_ALPHABET)))


@njit
def _sum_chunks(part, n_tables):
    counts = np.zeros((n_tables, MAX_ALPHABET), dtype=np.int64)
    for ch in range(part.shape[0]):
        counts += part[ch]
    return counts


@pnjit
def _row_contexts(codes, sym, slot_table, refs, shifts, nlev, image, e1, e2, n_tables):
    """Absolute frequency-table index of every symbol, ``tidx[i, s]``, or with ``n_tables > 0`` only the
    symbol counts per table (what a size estimate needs, without an ``(N, S)`` array); ``(tidx, counts)``
    with the other one empty.

    Level buffer of a row (length ``S + d + 1``): entries ``0..S-1`` are the
    row's digits, ``S..S+d-1`` the quantised full column codes (images),
    ``S + d`` is always 0.  The context of slot ``s`` is the mixed-radix
    number of ``lev[refs[s, k]] >> shifts[s, k]`` with radices ``nlev[s, k]``.
    """
    N, S = sym.shape
    d = codes.shape[1]
    count = n_tables > 0
    tidx = np.empty((0 if count else N, S), dtype=np.int32)
    nch = _count_chunks(N, n_tables, count)
    part = np.zeros((nch if count else 0, max(n_tables, 0), MAX_ALPHABET), dtype=np.int64)
    for ch in prange(nch):
        lev = np.zeros(S + d + 1, dtype=np.int64)
        for i in range(ch * N // nch, (ch + 1) * N // nch):
            for s in range(S):
                lev[s] = sym[i, s]
            if image:
                for j in range(d):
                    c = codes[i, j]
                    lev[S + j] = (1 if c >= e1 else 0) + (1 if c >= e2 else 0)
            for s in range(S):
                t = slot_table[s]
                if t < 0:
                    if not count:
                        tidx[i, s] = -1
                    continue
                ctx = 0
                for k in range(refs.shape[1]):
                    ctx = ctx * nlev[s, k] + (lev[refs[s, k]] >> shifts[s, k])
                if count:
                    part[ch, t + ctx, sym[i, s]] += 1
                else:
                    tidx[i, s] = t + ctx
    return tidx, _sum_chunks(part, max(n_tables, 0))


#: Rows per block of :func:`_table_counts` (a block's digits stay in cache while every slot reads them).
COUNT_BLOCK_ROWS = 4096


@pnjit
def _table_counts(sym, slot_table, refs, shifts, nlev, n_tables):
    """Symbol counts per table of a table-scheme model, ``(n_tables, MAX_ALPHABET)``: what
    :func:`_row_contexts` counts with ``image=False``, one task per slot (each slot owns its tables) over
    blocks of :data:`COUNT_BLOCK_ROWS` rows, without per-task copies of the counts.

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


@njit
def _histogram(tidx, sym, n_tables, alphabet):
    counts = np.zeros((n_tables, alphabet), dtype=np.int64)
    N, S = sym.shape
    for i in range(N):
        for s in range(S):
            t = tidx[i, s]
            if t >= 0:
                counts[t, sym[i, s]] += 1
    return counts


#: Candidate contexts of a table-scheme digit slot, in the order the compressor tries them
#: (:func:`gedenb.coding._choose_table_contexts`): none; each of the slot's up to :data:`CTX_SOURCES` sources
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


#: ``_GAMMA_BITS[v]``: bits of ``gamma(v)`` (:func:`_gamma_bits`) for ``1 <= v <= 2**MAX_PREC`` (frequencies,
#: zero runs + 1 up to the largest alphabet).
_GAMMA_BITS = np.array([0] + [2 * (v.bit_length() - 1) + 1 for v in range(1, (1 << MAX_PREC) + 1)], dtype=np.int64)


@njit
def _sparse_table_cost(counts, seen, freq, t, tot, alphabet, prec, bits, log2):
    """``(bits, table bits)`` of table ``t`` (``tot > 0`` symbols): ``bits`` plus the coded bits of its
    symbols, and its serialised bits -- what :func:`_code_bits` adds to its sum and :func:`_table_bits`
    counts for this row of :func:`_quantise` (the same float additions in the same order).

    ``counts`` and ``freq`` are dense ``(contexts, alphabet)`` rows flattened, ``seen`` marks the non-zero
    counts (one bit each, ``ceil(alphabet / 64)`` words per table); only those are visited, and the table's
    counts and marks are left zero.  ``log2[f]`` memoises ``log2(f)`` (NaN: not yet computed), each value
    computed once by the same scalar call as in :func:`_code_bits`.
    """
    W = (alphabet + 63) >> 6
    row = t * alphabet
    msz = np.int64(1) << prec
    total = np.int64(0)
    best = np.int64(-1)
    cbest = np.int64(0)
    for w in range(W):  # the frequencies of :func:`_quantise`
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
    """Coded bits (symbols, then tables: :func:`_code_bits` + :func:`_table_bits` of :func:`_quantise`) of
    every row's digit in each slot of ``slots`` under each candidate context (:data:`CTX_NREF`),
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


@pnjit
def _run_events(codes, base, sym, fp, run_table, e1, e2, n_tables, s_split):
    """Symbols of image rows with zero runs (one digit per column), in decoding order.

    Where a digit's context is 0, the run symbol ``n`` (table ``run_table +
    min(L, RUN_CONTEXTS - 1)``, ``L`` the flat stretch from here, see
    :func:`_flat_stretch`) says that the next ``n`` digits are 0; if ``n < L``
    the digit after them is non-zero and is coded with table ``run_table +
    RUN_CONTEXTS``.  ``base`` holds every row's base codes (deviation bits
    clear).  Returns per row the events' tables and symbols and their count,
    and the symbol counts per table; with ``n_tables > 0`` only the counts
    (the event arrays are empty).

    With ``s_split >= 0`` every row is coded as two chains (split rows, MODL
    version 2): slots ``s_split..S-1`` (the lower image rows) come first, as
    the decoder has them when it decodes that chain first: the first of
    those image rows sees the base levels of the row above it.  Their event
    count is ``ev_b``; the events of slots ``0..s_split-1`` follow.
    """
    N, S = sym.shape
    d = codes.shape[1]
    count = n_tables > 0
    ne = 0 if count else N
    ev_t = np.empty((ne, 2 * S + 1), dtype=np.int32)
    ev_s = np.empty((ne, 2 * S + 1), dtype=np.uint8)
    ev_n = np.zeros(ne, dtype=np.int64)
    ev_b = np.zeros(ne, dtype=np.int64)
    nch = _count_chunks(N, n_tables, count)
    part = np.zeros((nch if count else 0, max(n_tables, 0), MAX_ALPHABET), dtype=np.int64)
    for ch in prange(nch):
        lev = np.zeros(S + d + 1, dtype=np.int32)
        cur = np.empty(d, dtype=np.uint64)
        for i in range(ch * N // nch, (ch + 1) * N // nch):
            for j in range(d):  # codes as the decoder has them: base codes, then decoded digits
                c = base[i, j]
                cur[j] = c
                lev[S + j] = (1 if c >= e1 else 0) + (1 if c >= e2 else 0)
            k = 0
            for half in range(2):
                if half == 0:  # the second chain of split rows first, from the base levels above it
                    s = s_split if s_split >= 0 else S
                    s_end = S
                else:
                    if not count:
                        ev_b[i] = k
                    s = 0
                    s_end = s_split if s_split >= 0 else S
                while s < s_end:
                    ctx = 0
                    for q in range(4):
                        ctx += fp[s, FP_MULT + q] * lev[fp[s, FP_REF + q]]
                    if ctx == 0:
                        L = _flat_stretch(s, lev, fp, cur, e1)
                        n = 0
                        while n < L and sym[i, s + n] == 0:
                            n += 1
                        t = run_table + min(L, RUN_CONTEXTS - 1)
                        if count:
                            part[ch, t, n] += 1
                        else:
                            ev_t[i, k] = t
                            ev_s[i, k] = n
                        k += 1
                        for q in range(s, s + n):
                            j = fp[q, 0]
                            c = cur[j]
                            lev[S + j] = (1 if c >= e1 else 0) + (1 if c >= e2 else 0)
                        s += n
                        if n == L:
                            continue
                        t = run_table + RUN_CONTEXTS
                    else:
                        t = fp[s, FP_TABLE] + ctx
                    if count:
                        part[ch, t, sym[i, s]] += 1
                    else:
                        ev_t[i, k] = t
                        ev_s[i, k] = sym[i, s]
                    k += 1
                    j = fp[s, 0]
                    c = codes[i, j]
                    cur[j] = c
                    lev[S + j] = (1 if c >= e1 else 0) + (1 if c >= e2 else 0)
                    s += 1
            if not count:
                ev_n[i] = k
    return ev_t, ev_s, ev_n, ev_b, _sum_chunks(part, max(n_tables, 0))


@njit
def _events_histogram(ev_t, ev_s, ev_n, n_tables, alphabet):
    counts = np.zeros((n_tables, alphabet), dtype=np.int64)
    for i in range(ev_n.shape[0]):
        for k in range(ev_n[i]):
            counts[ev_t[i, k], ev_s[i, k]] += 1
    return counts


@pnjit
def _encode_events(ev_t, ev_s, ev_n, ev_b, split, freqs, starts, cap, prec):
    """rANS-encode every row's events (all modelled) into ``buf[i, :]`` (right-aligned); returns lengths.

    With ``split`` (rows of two chains, :func:`_run_events`), the first
    ``ev_b[i]`` events are the second chain: its bytes end the row in the
    order the encoder emits them, its state last (least significant byte
    first), so that the decoder reads that chain backwards from the row's
    end; the first chain is coded as without a split, in front of it.
    """
    N = ev_n.shape[0]
    buf = np.zeros((N, cap), dtype=np.uint8)
    lengths = np.zeros(N, dtype=np.int64)
    for i in prange(N):
        p = cap
        nb = ev_b[i] if split else 0
        if split:
            tmp = np.empty(cap, dtype=np.uint8)
            q = 0
            x = np.uint64(RANS_L)
            for k in range(nb - 1, -1, -1):
                x, q = _encode_event(x, ev_t[i, k], ev_s[i, k], freqs, starts, prec, tmp, q, 1)
            for b in range(STATE_BYTES):
                tmp[q] = np.uint8((x >> np.uint64(8 * b)) & np.uint64(255))
                q += 1
            p = cap - q
            buf[i, p:] = tmp[:q]
        x = np.uint64(RANS_L)
        for k in range(ev_n[i] - 1, nb - 1, -1):
            x, p = _encode_event(x, ev_t[i, k], ev_s[i, k], freqs, starts, prec, buf[i], p, -1)
        for b in range(STATE_BYTES):
            p -= 1
            buf[i, p] = np.uint8((x >> np.uint64(8 * b)) & np.uint64(255))
        lengths[i] = cap - p
    return buf, lengths


@njit(inline="always")
def _encode_event(x, t, a, freqs, starts, prec, out, p, step):
    """Encode symbol ``a`` of table ``t`` into state ``x``; renormalisation bytes go to ``out`` at ``p``
    moving by ``step`` (-1: written backwards, as a forward reader wants them); ``(x, p)``."""
    f = np.uint64(freqs[t, a])
    st = np.uint64(starts[t, a])
    x_max = np.uint64(((RANS_L >> prec) << 8)) * f
    while x >= x_max:
        if step < 0:
            p -= 1
            out[p] = np.uint8(x & np.uint64(255))
        else:
            out[p] = np.uint8(x & np.uint64(255))
            p += 1
        x >>= np.uint64(8)
    return ((x // f) << np.uint64(prec)) + (x % f) + st, p


# --------------------------------------------------------------------------
# frequency tables
# --------------------------------------------------------------------------
@njit
def _quantise(counts, prec):
    """Frequencies summing to ``2**prec`` per non-empty table; every seen symbol gets >= 1."""
    msz = np.int64(1) << prec
    T, A = counts.shape
    freqs = np.zeros((T, A), dtype=np.int32)
    for t in range(T):
        tot = 0
        for a in range(A):
            tot += counts[t, a]
        if tot == 0:
            continue
        s = 0
        best = 0
        for a in range(A):
            c = counts[t, a]
            if c > 0:
                f = (c * msz + tot // 2) // tot
                if f < 1:
                    f = 1
                freqs[t, a] = f
                s += f
                if c > counts[t, best] or counts[t, best] == 0:
                    best = a
        diff = msz - s
        if diff > 0:
            freqs[t, best] += diff
        while diff < 0:  # take from the largest frequencies, never below 1
            big = 0
            for a in range(A):
                if freqs[t, a] > freqs[t, big]:
                    big = a
            take = min(-diff, freqs[t, big] - 1)
            freqs[t, big] -= take
            diff += take
    return freqs


@njit
def _code_bits(counts, freqs, prec):
    """Bits of the symbols counted in ``counts`` coded with ``freqs`` (ideal rANS)."""
    bits = 0.0
    for t in range(counts.shape[0]):
        for a in range(counts.shape[1]):
            c = counts[t, a]
            if c > 0:
                bits += c * (prec - np.log2(freqs[t, a]))
    return bits


@njit(inline="always")
def _gamma_bits(v):
    n = 0
    while (np.uint64(1) << np.uint64(n + 1)) <= v:
        n += 1
    return 2 * n + 1


@njit
def _table_bits(freqs, alphabet):
    """Serialised bits of frequency tables (see :func:`_write_tables`)."""
    total = 0
    for t in range(freqs.shape[0]):
        total += 1
        nz = False
        for a in range(alphabet[t]):
            if freqs[t, a]:
                nz = True
                break
        if not nz:
            continue
        pos = 0
        A = alphabet[t]
        while pos < A:
            run = 0
            while pos + run < A and freqs[t, pos + run] == 0:
                run += 1
            total += _gamma_bits(np.uint64(run + 1))
            pos += run
            if pos < A:
                total += _gamma_bits(np.uint64(freqs[t, pos]))
                pos += 1
    return total


@njit(inline="always")
def _put(out, bitpos, v, n):
    """Write the ``n`` low bits of ``v`` at stream bit ``bitpos`` (MSB first)."""
    for k in range(n - 1, -1, -1):
        if (v >> np.uint64(k)) & np.uint64(1):
            w = bitpos >> 6
            out[w] |= np.uint64(1) << np.uint64(63 - (bitpos & 63))
        bitpos += 1
    return bitpos


@njit(inline="always")
def _put_gamma(out, bitpos, v):
    n = 0
    while (np.uint64(1) << np.uint64(n + 1)) <= v:
        n += 1
    bitpos += n
    return _put(out, bitpos, v, n + 1)


@njit
def _write_tables(freqs, alphabet, nbits):
    """Tables as a bit stream: per table a flag bit (1: non-empty), then
    ``gamma(zero run + 1), gamma(freq)`` pairs until the alphabet is covered."""
    out = np.zeros((nbits + 63) // 64 + 1, dtype=np.uint64)
    pos = 0
    for t in range(freqs.shape[0]):
        A = alphabet[t]
        nz = False
        for a in range(A):
            if freqs[t, a]:
                nz = True
                break
        pos = _put(out, pos, np.uint64(1 if nz else 0), 1)
        if not nz:
            continue
        p = 0
        while p < A:
            run = 0
            while p + run < A and freqs[t, p + run] == 0:
                run += 1
            pos = _put_gamma(out, pos, np.uint64(run + 1))
            p += run
            if p < A:
                pos = _put_gamma(out, pos, np.uint64(freqs[t, p]))
                p += 1
    return out[:(nbits + 63) // 64]


@njit(inline="always")
def _read_gamma(words, pos, limit):
    """``(value, new position)``; value 0 on a malformed code."""
    n = 0
    while pos < limit and _get_bits(words, pos, 1) == 0:
        n += 1
        pos += 1
        if n > 40:
            return np.uint64(0), pos
    if pos + n + 1 > limit:
        return np.uint64(0), limit + 1
    v = _get_bits(words, pos, n + 1)
    return v, pos + n + 1


@njit
def _read_tables(words, nbits, alphabet, prec):
    """Parse :func:`_write_tables`; returns ``(freqs, bits used)`` or bits used -1 when malformed."""
    T = alphabet.shape[0]
    freqs = np.zeros((T, MAX_ALPHABET), dtype=np.int32)
    pos = 0
    for t in range(T):
        if pos >= nbits:
            return freqs, -1
        flag = _get_bits(words, pos, 1)
        pos += 1
        if flag == 0:
            continue
        A = alphabet[t]
        p = 0
        total = 0
        while p < A:
            run, pos = _read_gamma(words, pos, nbits)
            if run == 0 or pos > nbits or run - 1 > A - p:
                return freqs, -1
            p += np.int64(run) - 1
            if p < A:
                f, pos = _read_gamma(words, pos, nbits)
                if f == 0 or pos > nbits or f > (np.int64(1) << prec):
                    return freqs, -1
                freqs[t, p] = np.int32(f)
                total += np.int64(f)
                p += 1
        if total != (np.int64(1) << prec):
            return freqs, -1
    return freqs, pos


@njit
def _decode_tables(freqs, starts, prec):
    """One ``2**prec``-entry lookup table per frequency table: entry ``q`` of a symbol with frequencies
    ``[start, start + freq)`` is ``sym | (q - start) << 8 | (freq - 1) << 20``, so that decoding is
    ``x = freq * (x >> prec) + (q - start)`` with no subtraction on the state's chain."""
    T = freqs.shape[0]
    msz = np.int64(1) << prec
    dtab = np.zeros(T * msz, dtype=np.uint32)
    for t in range(T):
        st = 0
        for a in range(freqs.shape[1]):
            f = freqs[t, a]
            if f:
                starts[t, a] = st
                e = np.uint32(a) | (np.uint32(f - 1) << np.uint32(20))
                for q in range(st, st + f):
                    dtab[t * msz + q] = e | (np.uint32(q - st) << np.uint32(8))
                st += f
    return dtab


# --------------------------------------------------------------------------
# encoding rows
# --------------------------------------------------------------------------
@pnjit
def _encode_rows(sym, tidx, slot_bits, carry, freqs, starts, cap, prec):
    """rANS-encode every row independently into ``buf[i, :]`` (right-aligned); returns lengths.

    The digits of the ``carry`` slots are not coded: they make up the
    initial state ``L + r`` (``r`` their bits in slot order), which the
    decoder ends in.
    """
    N, S = sym.shape
    buf = np.zeros((N, cap), dtype=np.uint8)
    lengths = np.zeros(N, dtype=np.int64)
    for i in prange(N):
        r = np.uint64(0)
        for s in range(S):
            if carry[s]:
                r = (r << np.uint64(slot_bits[s])) | np.uint64(sym[i, s])
        x = np.uint64(RANS_L) + r
        p = cap
        for s in range(S - 1, -1, -1):
            if carry[s]:
                continue
            a = np.int64(sym[i, s])
            t = tidx[i, s]
            if t < 0:
                sh = prec - slot_bits[s]
                f = np.uint64(1) << np.uint64(sh)
                st = np.uint64(a) << np.uint64(sh)
            else:
                f = np.uint64(freqs[t, a])
                st = np.uint64(starts[t, a])
            x_max = np.uint64(((RANS_L >> prec) << 8)) * f
            while x >= x_max:
                p -= 1
                buf[i, p] = np.uint8(x & np.uint64(255))
                x >>= np.uint64(8)
            x = ((x // f) << np.uint64(prec)) + (x % f) + st
        for b in range(STATE_BYTES):  # most significant byte first in the stream
            p -= 1
            buf[i, p] = np.uint8((x >> np.uint64(8 * b)) & np.uint64(255))
        lengths[i] = cap - p
    return buf, lengths


@pnjit
def _compact(buf, lengths, offsets, out):
    cap = buf.shape[1]
    for i in prange(buf.shape[0]):
        o = offsets[i]
        ln = lengths[i]
        for q in range(ln):
            out[o + q] = buf[i, cap - ln + q]


# --------------------------------------------------------------------------
# decoding rows
# --------------------------------------------------------------------------
#: Columns of the packed per-slot parameters ``sp``.
SP_COL, SP_BITS, SP_LAST, SP_TABLE, SP_REF, SP_SHIFT, SP_NLEV, SP_LOW, SP_CARRY, SP_MULT, SP_ROWEND, SP_NREF = (
    0, 1, 2, 3, 4, 8, 12, 16, 17, 18, 22, 23)
SP_WIDTH = 24
#: Columns of the packed per-column parameters ``cp`` (uint64 bit patterns in int64).
CP_DMASK, CP_DSHIFT, CP_KIND, CP_OFFSET = 0, 1, 2, 3
#: Entries of ``meta`` (``MT_INT``, read by the image decoder only: 0 any codecs, 1 integer codecs only
#: (value = code + offset), 2 integer codecs with zero offsets or codes asked for (value = code)).
(MT_NROWS, MT_OFFBITS, MT_IDBITS, MT_NBASES, MT_IMAGE, MT_E1, MT_E2, MT_SIGN, MT_FULL, MT_FAST,
 MT_BLOCK, MT_RUN, MT_INT, MT_PREC, MT_LIMIT, MT_SPLIT) = range(16)
MT_SIZE = 16
#: Columns of the compact per-slot parameters ``fp`` (int32) of the image fast path.
FP_COL, FP_TABLE, FP_REF, FP_MULT, FP_WPREV, FP_ROWEND, FP_BITS, FP_DSHIFT, FP_WSLOT = 0, 1, 2, 6, 10, 11, 12, 13, 14
FP_WIDTH = 16
#: Longest zero run one run symbol codes.
MAX_RUN = 255
#: Run-length tables, by the length of the flat stretch (capped).
RUN_CONTEXTS = 32


@njit(inline="always")
def _flat_stretch(s, lev, fp, codes, e1):
    """Slots from ``s`` on whose context is 0 if the digits before them are 0.

    The upper neighbours' levels come from the previous image row (decoded);
    a digit's left neighbour inside the stretch is a digit of the run, whose
    code is its base code (already in ``codes``).
    """
    end = min(np.int64(fp[s, FP_ROWEND]), s + MAX_RUN)
    q = s + 1
    while q < end:
        if fp[q, 7] * lev[fp[q, 3]] + fp[q, 8] * lev[fp[q, 4]] + fp[q, 9] * lev[fp[q, 5]] != 0:
            break
        if fp[q, 6] != 0:
            ws = fp[q, FP_WSLOT]
            if ws >= s:  # the left neighbour is in the stretch: a digit of the run, so its base code
                if codes[fp[ws, 0]] >= e1:
                    break
            elif lev[fp[q, 2]] != 0:
                break
        q += 1
    return q - s


@njit(inline="always")
def _row_span(r, block_off, row_off, off_bits, block_rows, n_rows, total):
    """Byte span ``[start, end)`` of row ``r`` in the row stream."""
    b = r // block_rows
    start = np.int64(block_off[b])
    if off_bits > 0:
        start += np.int64(_get_bits(row_off, r * off_bits, off_bits))
    if r + 1 >= n_rows:
        end = total
    elif (r + 1) % block_rows == 0:
        end = np.int64(block_off[b + 1])
    else:
        end = np.int64(block_off[b])
        if off_bits > 0:
            end += np.int64(_get_bits(row_off, (r + 1) * off_bits, off_bits))
    return start, end


@njit(inline="always")
def _renorm(x, stream, p, n):
    """Read the (at most two) bytes a state below ``L`` needs; ``(x, p)``, or p = -1 past the stream."""
    if p + 2 <= n:
        k = np.int64(x < np.uint64(RANS_L)) + np.int64(x < np.uint64(RANS_L >> 8))
        w = (np.uint64(stream[p]) << np.uint64(8)) | np.uint64(stream[p + 1])
        return (x << np.uint64(8 * k)) | (w >> np.uint64(16 - 8 * k)), p + k
    while x < np.uint64(RANS_L):
        if p >= n:
            return x, -1
        x = (x << np.uint64(8)) | np.uint64(stream[p])
        p += 1
    return x, p


@njit
def _fast_chain(s, s_end, x, p, lim, step, stream, codes, fp, cp, dtab, e1, e2, run_table, lv, msz, psh, mask):
    """Digits ``s..s_end-1`` of an image row with one digit per column (the ``fast`` path of
    :func:`_decode_row`), rANS state ``x``, reading bytes at ``p`` forwards (``step`` 1, bytes below ``lim``)
    or backwards (-1, bytes from ``lim`` on); ``(ok, x, p)``."""
    S = fp.shape[0]
    lo = np.uint64(RANS_L)
    n = stream.shape[0]
    while s < s_end:
        slot = x & mask
        rest = fp[s, 7] * lv[fp[s, 3]] + fp[s, 8] * lv[fp[s, 4]] + fp[s, 9] * lv[fp[s, 5]]
        ctx = fp[s, 6] * lv[fp[s, 2]] + rest
        t = np.int64(fp[s, FP_TABLE] + ctx)
        for part in range(2):  # a run of zero digits and the digit that ends it, or one digit
            if part == 0 and not (run_table >= 0 and ctx == 0):
                continue
            if part == 0:  # a run of zero digits (see _run_events)
                L = _flat_stretch(s, lv, fp, codes, e1)
                e = np.uint64(dtab[(run_table + min(L, RUN_CONTEXTS - 1)) * msz + np.int64(slot)])
            else:
                e = np.uint64(dtab[t * msz + np.int64(slot)])
            x = ((e >> np.uint64(20)) + np.uint64(1)) * (x >> psh) + ((e >> np.uint64(8)) & mask)
            if step > 0:
                x, p = _renorm(x, stream, p, n)
                if p < 0 or p > lim:
                    return False, x, p
            else:
                while x < lo:
                    if p <= lim:
                        return False, x, p
                    p -= 1
                    x = (x << np.uint64(8)) | np.uint64(stream[p])
            a = e & np.uint64(255)
            if part == 0:
                if np.int64(a) > L:
                    return False, x, p
                for q in range(s, s + np.int64(a)):
                    j = fp[q, 0]
                    c = codes[j]
                    lv[S + j] = np.int32((1 if c >= e1 else 0) + (1 if c >= e2 else 0))
                s += np.int64(a)
                if np.int64(a) == L:
                    break
                t = run_table + RUN_CONTEXTS  # the digit that ends the run: not 0
                slot = x & mask
                continue
            j = fp[s, 0]
            a &= np.uint64((1 << fp[s, FP_BITS]) - 1)
            sh = fp[s, FP_DSHIFT]
            if sh >= 0:
                c = codes[j] | (a << np.uint64(sh))
            else:
                c = codes[j] | _pdep(a, np.uint64(cp[j, 0]), -1)
            codes[j] = c
            lv[S + j] = np.int32((1 if c >= e1 else 0) + (1 if c >= e2 else 0))
            s += 1
    return True, x, p


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
        a_end = end
        s_stop = S
        if s_split >= 0:
            if end - start < 2 * STATE_BYTES:
                return False
            xb = np.uint64(0)
            for b in range(STATE_BYTES):
                xb = (xb << np.uint64(8)) | np.uint64(stream[end - 1 - b])
            if xb < lo or xb >= np.uint64(RANS_L << 8):
                return False
            for j in range(codes.shape[0]):  # every column at its base level (the rows above the chain)
                c = codes[j]
                lv[S + j] = np.int32((1 if c >= e1 else 0) + (1 if c >= e2 else 0))
            ok, xb, a_end = _fast_chain(s_split, S, xb, end - STATE_BYTES, p, -1, stream, codes, fp, cp, dtab, e1,
                                        e2, run_table, lv, msz, psh, mask)
            if not ok or xb != lo:
                return False
            s_stop = s_split
        ok, x, p = _fast_chain(0, s_stop, x, p, a_end, 1, stream, codes, fp, cp, dtab, e1, e2, run_table, lv, msz,
                               psh, mask)
        return ok and x == lo and p == a_end
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
    r = x - lo
    for s in range(S - 1, -1, -1):  # the carried digits, from the initial state
        if sp[s, SP_CARRY]:
            b = np.uint64(sp[s, 1])
            a = r & ((np.uint64(1) << b) - np.uint64(1))
            r >>= b
            j = sp[s, 0]
            codes[j] |= _pdep(a << np.uint64(sp[s, SP_LOW]), np.uint64(cp[j, 0]), cp[j, 1])
    return True


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


# --------------------------------------------------------------------------
# decoding image rows: one digit per column, one channel
# --------------------------------------------------------------------------
#: Entries of the header of ``ip``, the image decoder's one parameter array (int64; it holds everything but the stream,
#: the base IDs and the output, so that a call passes few arrays: Numba's dispatch costs ~35-50 ns per array argument):
#: padded row width ``PW = W + 2``, context multipliers of the left, upper, upper-left and upper-right neighbours
#: (compile-time constants of the kernels, :func:`image_kernels`), slots, columns, length of the padded level image,
#: first table of every slot, offsets of the slot words and of the per-image-row masks of columns with a slot, image
#: height and width, offset of the columns' codec offsets (uint64 bits), of the kernel scalars ``meta`` (``MT_*``), of
#: the packed codecs ``cp`` (``d x 4``) and of the codecs' factors (float64 bits), the number of row blocks of the row
#: index, offsets of ``meta`` and ``cp`` for code output, offset and length of the row index (section RIDX), offsets of
#: the base codes (``n_b x d`` uint64), of the bases' non-zero level masks (``n_b x H`` uint64), of their padded level
#: images (``n_b x NBUF`` uint8) and of the decode tables (uint32), the first slot of the second chain of split rows
#: (-1: rows are one chain), ``n_b`` and ``1 << W`` (a zero run's stretch ends at the row's end).  The slot words start
#: at ``IP_HEAD`` (``ip[IP_SLOTS]``) and the first table is 0: the decoding loop keeps as few values in registers as it
#: can.
(IP_PW, IP_MW, IP_MN, IP_MNW, IP_MNE, IP_S, IP_D, IP_NBUF, IP_TABLE, IP_SLOTS, IP_SMASK, IP_H, IP_W, IP_OFF,
 IP_META, IP_CP, IP_FACTOR, IP_NBLOCKS, IP_META_C, IP_CP_C, IP_RIDX, IP_NRIDX, IP_BCODES, IP_BNZ, IP_BLEV,
 IP_DTAB, IP_NDTAB, IP_SPLIT, IP_NB, IP_EDGE) = range(30)
IP_HEAD = 40
#: A slot is one int64 word of ``ip`` (one load per event): padded position (bits 0-15), column (16-31),
#: shift of the digit in the code plus one (32-39; 0: spread over a non-contiguous mask), digit bits (40-47),
#: image row (48-55) and column (56-63).
SW_COL, SW_SHIFT, SW_BITS, SW_Y, SW_X = 16, 32, 40, 48, 56
#: Widest image row of the image decoder (its flat stretches are found with one 64-bit mask per image row)
#: and most image rows (8-bit fields of a slot word).
IMAGE_MAX_W = 62
IMAGE_MAX_H = 255
# indices known to be >= 0 go in unsigned: no wraparound code for negative indices in the hot loop
U = np.uint64


# The image decoder keeps every row's levels in a padded level image (``buf``: a zero border left, right and on top), so
# a slot's neighbours are at fixed offsets ``-1, -PW, -PW - 1, -PW + 1`` of its position; a run's digits are 0, so their
# levels are their base codes' levels, which ``buf`` starts with.  The flat stretch of :func:`_flat_stretch` comes from
# bit masks instead of a scan: per image row ``y``, ``nzr[y]`` has bit ``x`` set where the level is not 0 (decoded or
# base), ``base_nz[bid, y]`` where the base code's level is not 0 and ``ip[IP_SMASK + y]`` where column ``(y, x)`` has a
# slot.  A slot right of the run's start at ``x`` breaks the stretch if an upper neighbour's level (previous row,
# decoded) or its left neighbour's base level is not 0; the stretch is the number of slots from ``x`` up to the first
# such slot or the end of the row.
#
# Two rANS chains are decoded at a time, both states in registers, one event of each in turn
# (:func:`_decode_image_two`): a chain's events are serial (rANS state, table lookup, level, next context), and two
# chains overlap in the processor (four gain nothing more: too few registers).  A split row (MODL version 2) is two
# chains by itself: its upper image rows read forwards from the row's start, its lower ones (from image row ``split``,
# slot ``ip[IP_SPLIT]``) backwards from its end; the chains meet where the row's bytes are used up.  They share the
# column codes, the level image and the masks: these have a virtual row between the two parts holding the base's levels
# of row ``split - 1``, which the lower part's first row sees above it (:func:`gedenb.coding._image_params` lays the
# rows out; the slot words name them), so the loop keeps fewer pointers in registers and a row starts with one copy.
# Rows of one chain are decoded two rows at a time.  The event step is written twice (chain A, chain B), inline: it was
# measured slower as a helper when Numba still counted references to the helper's arrays (session 4), and has not been
# measured as one since the kernels borrow their arrays.  A corrupt chain never stops the loop early (bytes outside the
# stream read as zeros, an overlong run is cut to its stretch): it is caught by the final check, so the first bad row of
# a pair is the one reported.


@njit(inline="always")
def _image_views(ip):
    """The row index, base codes, base level masks, base level images (as words) and decode tables inside
    ``ip``."""
    nb, d, h, nbuf = ip[IP_NB], ip[IP_D], ip[IP_H], ip[IP_NBUF]
    ridx = ip[ip[IP_RIDX]:ip[IP_RIDX] + ip[IP_NRIDX]].view(np.uint64)
    bc = ip[ip[IP_BCODES]:ip[IP_BCODES] + nb * d].view(np.uint64)
    bnz = ip[ip[IP_BNZ]:ip[IP_BNZ] + nb * h].view(np.uint64)
    blev = ip[ip[IP_BLEV]:ip[IP_BLEV] + nb * nbuf // 8].view(np.uint64)  # NBUF is a multiple of 8
    dtab = ip[ip[IP_DTAB]:ip[IP_DTAB] + (ip[IP_NDTAB] + 1) // 2].view(np.uint32)
    return ridx, bc, bnz, blev, dtab


@njit(inline="always")
def _image_begin(r, limit, stream, ids, ip, ridx, bc, bnz, blev, codes, buf, nzr):
    """Start row ``r``: base codes and levels into the scratch arrays; ``(bid, start, end, x)``, ``bid = -1``
    if bad (``x`` the state read from the row's start).  Negative ``r`` counts from the end
    (``-limit <= r < 0``: all rows, or the ``n`` original rows of a Reader)."""
    mo = ip[IP_META]
    n_rows = ip[mo + MT_NROWS]
    if r < 0:
        r += limit
    if r < 0 or r >= limit or r >= n_rows:
        return -1, 0, 0, np.uint64(0)
    id_bits = ip[mo + MT_IDBITS]
    bid = np.int64(0)
    if id_bits > 0:
        bid = np.int64(_get_bits(ids, r * id_bits, id_bits))
    if bid >= ip[IP_NB]:
        return -1, 0, 0, np.uint64(0)
    d, h, nbuf = ip[IP_D], ip[IP_H], ip[IP_NBUF]
    for j in range(U(d)):
        codes[j] = bc[U(bid * d) + j]
    bw = buf.view(np.uint64)
    nw = nbuf // 8
    for q in range(U(nw)):
        bw[q] = blev[U(bid * nw) + q]
    for q in range(U(h)):
        nzr[q] = bnz[U(bid * h) + q]
    nb = ip[IP_NBLOCKS]
    start, end = _row_span(r, ridx[:nb + 1], ridx[nb + 1:], ip[mo + MT_OFFBITS], ip[mo + MT_BLOCK], n_rows,
                           stream.shape[0])
    if start < 0 or end > stream.shape[0] or end - start < STATE_BYTES:
        return -1, 0, 0, np.uint64(0)
    x = np.uint64(0)
    for b in range(STATE_BYTES):
        x = (x << np.uint64(8)) | np.uint64(stream[start + b])
    if x < np.uint64(RANS_L) or x >= np.uint64(RANS_L << 8):
        return -1, 0, 0, np.uint64(0)
    return bid, start, end, x


def _make_image_two(SPLIT, MULTS):
    """:func:`_decode_image_two` for split rows (``SPLIT``) or rows of one chain, with context multipliers
    ``MULTS`` (left, upper, upper-left, upper-right, as ``ip[IP_MW:IP_MNE + 1]``; ``None``: read from ``ip``).
    Compile-time constants are faster: a run-time direction of chain B cost ~10%, run-time multipliers ~5%
    (they take registers the loop needs)."""
    GENERIC = MULTS is None
    CONST = (0, 0, 0, 0) if GENERIC else tuple(int(m) for m in MULTS)

    @njit(variant=(SPLIT, None if GENERIC else CONST))
    def _decode_image_two(rA, kA, rB, kB, limit, mo, co, stream, ids, ip, ridx, bc, bnz, blev, dtab, out_bits,
                          out_float, codesA, bufA, nzrA, codesB, bufB, nzrB):
        """Two rANS chains at a time (see :func:`gedenb.coding._image_params` for the stores this decoder applies
        to; ``mo``, ``co``: offsets in ``ip`` of the output's ``meta`` and ``cp``).

        Split rows (``ip[IP_SPLIT] >= 0``): row ``rA`` into ``out[kA]``, its two chains (``rB``, ``kB`` unused).
        Otherwise row ``rA`` into ``out[kA]`` and, if ``kB >= 0``, row ``rB`` into ``out[kB]``.  Returns -1, or
        0 (1) if row A (B) is out of range or corrupt, A first.  Decodes the same events as :func:`_decode_row`.
        """
        bidA, startA, endA, xA = _image_begin(rA, limit, stream, ids, ip, ridx, bc, bnz, blev, codesA, bufA, nzrA)
        if bidA < 0:
            return 0
        S = ip[IP_S]
        ss = ip[IP_SPLIT]
        n = stream.shape[0]
        zero = np.uint64(0)
        pA = startA + STATE_BYTES
        sA, eA = 0, S  # chain A: slots sA..eA-1, bytes read forwards from pA
        sB, eB = S, S  # chain B: slots sB..eB-1, bytes read at pB (backwards for split rows)
        bidB, pB, endB, xB = bidA, 0, 0, np.uint64(RANS_L)
        badB = False
        if SPLIT:  # one row: its lower image rows are chain B, read backwards from the row's end
            if endA - startA < 2 * STATE_BYTES:
                return 0
            eA, sB = ss, ss
            codesB, bufB, nzrB = codesA, bufA, nzrA  # one level image (B's rows below a virtual base row)
            xB = zero
            for b in range(STATE_BYTES):
                xB = (xB << np.uint64(8)) | np.uint64(stream[endA - 1 - b])
            if xB < np.uint64(RANS_L) or xB >= np.uint64(RANS_L << 8):
                return 0
            pB = endA - STATE_BYTES
        elif kB >= 0:
            bidB, startB, endB, xB = _image_begin(rB, limit, stream, ids, ip, ridx, bc, bnz, blev, codesB, bufB, nzrB)
            if bidB < 0:
                badB = True
            else:
                sB = 0
                pB = startB + STATE_BYTES
        msz = IMAGE_M  # a constant: this decoder only serves models of IMAGE_PREC bits
        psh = np.uint64(IMAGE_PREC)
        mask = np.uint64(msz - 1)
        lo = np.uint64(RANS_L)
        lo2 = np.uint64(RANS_L >> 8)
        meta = ip[IP_META]
        e1 = np.uint64(ip[meta + MT_E1])
        e2 = np.uint64(ip[meta + MT_E2])
        run_table = ip[meta + MT_RUN]
        runs = run_table >= 0
        h = ip[IP_H]
        boA, boB = bidA * h, bidB * h  # the rows' base level masks
        pw = ip[IP_PW]
        if GENERIC:
            mw, mn, mnw, mne = ip[IP_MW], ip[IP_MN], ip[IP_MNW], ip[IP_MNE]
        else:
            mw, mn, mnw, mne = CONST
        # the neighbours a zero run's flat stretch looks at: those the contexts use (all bits set) or none
        fw, fn, fnw, fne = zero - U(mw != 0), zero - U(mn != 0), zero - U(mnw != 0), zero - U(mne != 0)
        smo = ip[IP_SMASK]
        one = np.uint64(1)
        two = np.uint64(2)
        lvA, lpA, lvB, lpB = np.int64(0), np.int64(-2), np.int64(0), np.int64(-2)
        badA = False
        hasB = sB < eB
        while sA < eA or (hasB and sB < eB):
            if sA < eA:  # one event of chain A
                sw = ip[U(IP_HEAD + sA)]
                pi = sw & 0xFFFF
                lw = lvA if pi - 1 == lpA else np.int64(bufA[U(pi - 1)])  # the digit just decoded: in a register
                ctx = mw * lw + mn * bufA[U(pi - pw)] + mnw * bufA[U(pi - pw - 1)] + mne * bufA[U(pi - pw + 1)]
                t = ctx
                slot = xA & mask
                digit = True
                if runs and ctx == 0:  # a run of zero digits (see _run_events); their levels are in buf
                    y = (sw >> SW_Y) & 0xFF  # the flat stretch (_flat_stretch) from bit masks of non-zero levels
                    xx = np.uint64((sw >> SW_X) & 0xFF)
                    nzp = nzrA[U(y - 1)] if y > 0 else zero
                    sm = np.uint64(ip[U(smo + y)])
                    edge = U(ip[IP_EDGE])
                    above = ((((nzp & fn) | ((nzp << one) & fnw) | ((nzp >> one) & fne)
                               | ((bnz[U(boA + y)] << one) & fw)) & sm) | edge) & ~((two << xx) - one)
                    fb = _popcount((above & (~above + one)) - one)
                    L = np.int64(_popcount(sm & ((one << fb) - (one << xx))))
                    e = np.uint64(dtab[U((run_table + min(L, RUN_CONTEXTS - 1)) * msz) + slot])
                    xA = ((e >> np.uint64(20)) + one) * (xA >> psh) + ((e >> np.uint64(8)) & mask)
                    if pA + 2 <= n:  # the (at most two) bytes a state below L needs, without branching
                        kk = np.int64(xA < lo) + np.int64(xA < lo2)
                        w = (np.uint64(stream[U(pA)]) << np.uint64(8)) | np.uint64(stream[U(pA + 1)])
                        xA = (xA << np.uint64(8 * kk)) | (w >> np.uint64(16 - 8 * kk))
                        pA += kk
                    else:  # past the stream's end only in a corrupt row: zeros, caught by the final check
                        while xA < lo:
                            xA = (xA << np.uint64(8)) | (np.uint64(stream[pA]) if pA < n else zero)
                            pA += 1
                    rl = np.int64(e & np.uint64(255))
                    if rl > L:
                        badA = True
                        rl = L
                    sA += rl
                    if rl == L:
                        digit = False
                    else:
                        t = run_table + RUN_CONTEXTS  # the digit that ends the run: not 0
                        sw = ip[U(IP_HEAD + sA)]
                        pi = sw & 0xFFFF
                        slot = xA & mask
                if digit:
                    e = np.uint64(dtab[U(t * msz) + slot])
                    xA = ((e >> np.uint64(20)) + one) * (xA >> psh) + ((e >> np.uint64(8)) & mask)
                    if pA + 2 <= n:
                        kk = np.int64(xA < lo) + np.int64(xA < lo2)
                        w = (np.uint64(stream[U(pA)]) << np.uint64(8)) | np.uint64(stream[U(pA + 1)])
                        xA = (xA << np.uint64(8 * kk)) | (w >> np.uint64(16 - 8 * kk))
                        pA += kk
                    else:
                        while xA < lo:
                            xA = (xA << np.uint64(8)) | (np.uint64(stream[pA]) if pA < n else zero)
                            pA += 1
                    a = e & ((one << np.uint64((sw >> SW_BITS) & 0xFF)) - one)
                    j = (sw >> SW_COL) & 0xFFFF
                    sh = ((sw >> SW_SHIFT) & 0xFF) - 1
                    if sh >= 0:
                        c = codesA[U(j)] | (a << np.uint64(sh))
                    else:
                        c = codesA[U(j)] | _pdep(a, np.uint64(ip[U(co + 4 * j + CP_DMASK)]), -1)
                    codesA[U(j)] = c
                    lvA = np.int64((1 if c >= e1 else 0) + (1 if c >= e2 else 0))
                    lpA = pi
                    bufA[U(pi)] = np.uint8(lvA)
                    nzrA[U((sw >> SW_Y) & 0xFF)] |= np.uint64(1 if c >= e1 else 0) << np.uint64((sw >> SW_X) & 0xFF)
                    sA += 1
            if hasB and sB < eB:  # one event of chain B (testing `hasB` lets the compiler make an A-only loop)
                sw = ip[U(IP_HEAD + sB)]
                pi = sw & 0xFFFF
                lw = lvB if pi - 1 == lpB else np.int64(bufB[U(pi - 1)])  # the digit just decoded: in a register
                ctx = mw * lw + mn * bufB[U(pi - pw)] + mnw * bufB[U(pi - pw - 1)] + mne * bufB[U(pi - pw + 1)]
                t = ctx
                slot = xB & mask
                digit = True
                if runs and ctx == 0:  # a run of zero digits (see _run_events); their levels are in buf
                    y = (sw >> SW_Y) & 0xFF  # the flat stretch (_flat_stretch) from bit masks of non-zero levels
                    xx = np.uint64((sw >> SW_X) & 0xFF)
                    nzp = nzrB[U(y - 1)] if y > 0 else zero
                    sm = np.uint64(ip[U(smo + y)])
                    edge = U(ip[IP_EDGE])
                    above = ((((nzp & fn) | ((nzp << one) & fnw) | ((nzp >> one) & fne)
                               | ((bnz[U(boB + y)] << one) & fw)) & sm) | edge) & ~((two << xx) - one)
                    fb = _popcount((above & (~above + one)) - one)
                    L = np.int64(_popcount(sm & ((one << fb) - (one << xx))))
                    e = np.uint64(dtab[U((run_table + min(L, RUN_CONTEXTS - 1)) * msz) + slot])
                    xB = ((e >> np.uint64(20)) + one) * (xB >> psh) + ((e >> np.uint64(8)) & mask)
                    if (pB >= 2) if SPLIT else (pB + 2 <= n):  # the (at most two) bytes a state below L needs
                        kk = np.int64(xB < lo) + np.int64(xB < lo2)
                        if SPLIT:  # backwards
                            w = (np.uint64(stream[U(pB - 1)]) << np.uint64(8)) | np.uint64(stream[U(pB - 2)])
                            pB -= kk
                        else:
                            w = (np.uint64(stream[U(pB)]) << np.uint64(8)) | np.uint64(stream[U(pB + 1)])
                            pB += kk
                        xB = (xB << np.uint64(8 * kk)) | (w >> np.uint64(16 - 8 * kk))
                    else:  # outside the stream only in a corrupt row: zeros, caught by the final check
                        while xB < lo:
                            q = pB - 1 if SPLIT else pB
                            xB = (xB << np.uint64(8)) | (np.uint64(stream[q]) if 0 <= q < n else zero)
                            pB += -1 if SPLIT else 1
                    rl = np.int64(e & np.uint64(255))
                    if rl > L:
                        badB = True
                        rl = L
                    sB += rl
                    if rl == L:
                        digit = False
                    else:
                        t = run_table + RUN_CONTEXTS  # the digit that ends the run: not 0
                        sw = ip[U(IP_HEAD + sB)]
                        pi = sw & 0xFFFF
                        slot = xB & mask
                if digit:
                    e = np.uint64(dtab[U(t * msz) + slot])
                    xB = ((e >> np.uint64(20)) + one) * (xB >> psh) + ((e >> np.uint64(8)) & mask)
                    if (pB >= 2) if SPLIT else (pB + 2 <= n):
                        kk = np.int64(xB < lo) + np.int64(xB < lo2)
                        if SPLIT:  # backwards
                            w = (np.uint64(stream[U(pB - 1)]) << np.uint64(8)) | np.uint64(stream[U(pB - 2)])
                            pB -= kk
                        else:
                            w = (np.uint64(stream[U(pB)]) << np.uint64(8)) | np.uint64(stream[U(pB + 1)])
                            pB += kk
                        xB = (xB << np.uint64(8 * kk)) | (w >> np.uint64(16 - 8 * kk))
                    else:
                        while xB < lo:
                            q = pB - 1 if SPLIT else pB
                            xB = (xB << np.uint64(8)) | (np.uint64(stream[q]) if 0 <= q < n else zero)
                            pB += -1 if SPLIT else 1
                    a = e & ((one << np.uint64((sw >> SW_BITS) & 0xFF)) - one)
                    j = (sw >> SW_COL) & 0xFFFF
                    sh = ((sw >> SW_SHIFT) & 0xFF) - 1
                    if sh >= 0:
                        c = codesB[U(j)] | (a << np.uint64(sh))
                    else:
                        c = codesB[U(j)] | _pdep(a, np.uint64(ip[U(co + 4 * j + CP_DMASK)]), -1)
                    codesB[U(j)] = c
                    lvB = np.int64((1 if c >= e1 else 0) + (1 if c >= e2 else 0))
                    lpB = pi
                    bufB[U(pi)] = np.uint8(lvB)
                    nzrB[U((sw >> SW_Y) & 0xFF)] |= np.uint64(1 if c >= e1 else 0) << np.uint64((sw >> SW_X) & 0xFF)
                    sB += 1
        if SPLIT:  # the chains meet where the row's bytes are used up
            if badA or badB or xA != lo or xB != lo or pA != pB:
                return 0
            _image_output(kA, codesA, ip, mo, co, out_bits, out_float)
            return -1
        if badA or xA != lo or pA != endA:
            return 0
        if kB >= 0 and (badB or xB != lo or pB != endB):
            return 1
        _image_output(kA, codesA, ip, mo, co, out_bits, out_float)
        if kB >= 0:
            _image_output(kB, codesB, ip, mo, co, out_bits, out_float)
        return -1

    return _decode_image_two


@njit
def _image_output(k, codes, ip, mo, co, out_bits, out_float):
    """Row ``k`` of the output from its column codes ``codes`` (``mo``, ``co``: the output's ``meta``, ``cp``)."""
    d = ip[IP_D]
    if ip[mo + MT_INT] != 0:  # integer codecs only: code + offset (contiguous in ip), no branch per column
        oo = ip[IP_OFF] if ip[mo + MT_INT] == 1 else -1
        if oo < 0 and codes.ctypes.data == out_bits[k].ctypes.data:  # decoded in place: done
            return
        if oo >= 0:
            for j in range(U(d)):
                out_bits[k, j] = codes[j] + np.uint64(ip[U(oo) + j])
        else:
            for j in range(U(d)):
                out_bits[k, j] = codes[j]
        return
    sign = np.uint64(ip[mo + MT_SIGN])
    full = np.uint64(ip[mo + MT_FULL])
    fo = ip[IP_FACTOR]
    factor = ip[fo:fo + d].view(np.float64)
    for j in range(d):
        kd = ip[co + 4 * j + CP_KIND]
        off = np.uint64(ip[co + 4 * j + CP_OFFSET])
        if kd == 0:
            out_bits[k, j] = codes[j] + off
        else:
            _store_value(out_bits, out_float, k, j, kd, codes[j], off, factor[j], sign, full)


#: Rows per task of the parallel image decoder.
IMAGE_BLOCK_ROWS = 16


def _make_image_kernels(SPLIT, DIRECT, MULTS):
    """``(block, serial, parallel)`` image kernels for split rows (``SPLIT``) or pairs of one-chain rows,
    decoding split rows straight into the output (``DIRECT``: values are codes, plus offsets) or through a
    code scratch, with context multipliers ``MULTS``.  Each combination is its own set of kernels, chosen
    in Python (:func:`image_kernels`), so that a store compiles only the one it needs (each takes ~10 s to
    compile)."""
    two = _make_image_two(SPLIT, MULTS)
    variant = (SPLIT, DIRECT, MULTS)  # names these kernels in the on-disk cache (their cells hold kernels)

    @njit(inline="always", variant=variant)
    def _row_words(ip):
        """Words of a row's scratch: codes (``d``, none when decoding into the output), level masks (``h``),
        padded level image; returns ``d, h, w``."""
        d = 0 if SPLIT and DIRECT else ip[IP_D]
        h = ip[IP_H]
        return d, h, d + h + ip[IP_NBUF] // 8

    @njit(inline="always", variant=variant)
    def _scratch(ip, k):
        """Scratch of a block of ``k`` rows: one row's, or a pair's (rows of one chain, two at a time)."""
        w = _row_words(ip)[2]
        return np.empty(w if (k == 1 or SPLIT) else 2 * w, dtype=np.uint64)

    @njit(variant=variant)
    def _decode_image_block(rows, k0, k1, stream_, ids_, ip_, limit, codes_only, out_bits_, out_float_, scratch_):
        """Rows ``rows[k0:k1]`` into ``out`` (codes with ``codes_only``): split rows one at a time, others two
        at a time; the position of the first bad (out of range, corrupt) row, or -1.  ``scratch_``: at least
        ``_scratch(ip, k1 - k0)``'s words (the second row of a pair uses the last ones)."""
        # every array below is borrowed (no reference counts: ~0.4 us of a one-row read); the caller's arrays
        # outlive them
        stream, ids, ip = borrowed(stream_), borrowed(ids_), borrowed(ip_)
        out_bits, out_float, scratch = borrowed(out_bits_), borrowed(out_float_), borrowed(scratch_)
        ridx, bc, bnz, blev, dtab = _image_views(ip)
        mo = ip[IP_META_C] if codes_only else ip[IP_META]
        co = ip[IP_CP_C] if codes_only else ip[IP_CP]
        d, h, w = _row_words(ip)
        cA, zA, bA = scratch[:d], scratch[d:d + h], scratch[d + h:w].view(np.uint8)
        o = scratch.shape[0] - w
        cB, zB, bB = scratch[o:o + d], scratch[o + d:o + d + h], scratch[o + d + h:].view(np.uint8)
        k = k0
        while k < k1:
            if SPLIT and DIRECT:
                bad = two(rows[k], k, rows[k], k, limit, mo, co, stream, ids, ip, ridx, bc, bnz, blev, dtab,
                          out_bits, out_float, out_bits[k], bA, zA, out_bits[k], bB, zB)
            elif SPLIT:
                bad = two(rows[k], k, rows[k], k, limit, mo, co, stream, ids, ip, ridx, bc, bnz, blev, dtab,
                          out_bits, out_float, cA, bA, zA, cB, bB, zB)
            else:
                kB = k + 1 if k + 1 < k1 else -1
                bad = two(rows[k], k, rows[kB] if kB >= 0 else 0, kB, limit, mo, co, stream, ids, ip, ridx, bc,
                          bnz, blev, dtab, out_bits, out_float, cA, bA, zA, cB, bB, zB)
            if bad >= 0:
                return k + bad
            k += 1 if SPLIT else 2
        return -1

    @njit(variant=variant)
    def _decode_image_rows_serial(rows, stream, ids, ip, limit, codes_only, out_bits, out_float):
        """Rows ``rows`` of an image store into ``out`` on one thread; rows ``-limit <= r < limit``; the
        position of the first bad row, or -1."""
        scratch = _scratch(ip, rows.shape[0])
        return _decode_image_block(rows, 0, rows.shape[0], stream, ids, ip, limit, codes_only, out_bits, out_float,
                                   scratch)

    @pnjit(variant=variant)
    def _decode_image_rows_parallel(rows, stream, ids, ip, limit, codes_only, out_bits, out_float):
        n = rows.shape[0]
        nblocks = (n + IMAGE_BLOCK_ROWS - 1) // IMAGE_BLOCK_ROWS
        bad = np.full(nblocks, -1, dtype=np.int64)
        for blk in prange(nblocks):
            k0, k1 = blk * IMAGE_BLOCK_ROWS, min(n, blk * IMAGE_BLOCK_ROWS + IMAGE_BLOCK_ROWS)
            scratch = _scratch(ip, k1 - k0)
            bad[blk] = _decode_image_block(rows, k0, k1, stream, ids, ip, limit, codes_only, out_bits, out_float,
                                           scratch)
        for blk in range(nblocks):
            if bad[blk] >= 0:
                return bad[blk]
        return -1

    return _decode_image_block, _decode_image_rows_serial, _decode_image_rows_parallel


_IMAGE_KERNELS: dict = {}
_IMAGE_KERNELS_LOCK = threading.Lock()


def image_kernels(ip, direct):
    """``(block, serial, parallel)`` kernels for the image store of parameters ``ip`` (``direct``: its output
    values are codes, plus offsets), made the first time a store needs them.  Split rows decoded into the
    output, the fastest case for a single row, have their context multipliers compiled in (the zero-run
    schemes have two sets: 4 or 2 neighbours); others read them from ``ip`` (fewer kernels to compile)."""
    split = bool(ip[IP_SPLIT] >= 0)
    direct = bool(direct) and split
    key = (split, direct, tuple(int(v) for v in ip[IP_MW:IP_MNE + 1]) if direct else None)
    kernels = _IMAGE_KERNELS.get(key)
    if kernels is None:
        with _IMAGE_KERNELS_LOCK:
            kernels = _IMAGE_KERNELS.get(key) or _make_image_kernels(*key)
            _IMAGE_KERNELS[key] = kernels
    return kernels
