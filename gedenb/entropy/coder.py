"""Static rANS: frequency tables, symbol streams and the row index that finds them.

Range asymmetric numeral systems (rANS, J. Duda 2013) with a 32-bit state,
byte-wise renormalisation and ``P`` bits of frequency precision
(:data:`MIN_PREC` to :data:`MAX_PREC`, chosen per model), as in F. Giesen's
``rans_byte.h``:

* state ``x`` in ``[L, 256 L)`` with ``L = 2**23``;
* encoding symbol ``(start, freq)``: while ``x >= ((L >> P) << 8) * freq``
  emit the low byte of ``x`` and shift it out; then
  ``x = (x // freq) << P + x % freq + start``;
* decoding: ``slot = x & (2**P - 1)`` names the symbol whose
  ``[start, start + freq)`` holds it; ``x = freq * (x >> P) + slot - start``
  (the lookup table of :func:`_decode_tables` holds ``slot - start``);
  while ``x < L`` read the next byte: ``x = (x << 8) | byte``.

Every row is one independent rANS stream: the encoder runs over the row's
symbols backwards and writes bytes backwards, so the decoder reads the
final state (4 bytes, most significant first) and then the bytes forwards.
Decoding a row ends in the state ``L`` exactly, having read exactly the
row's bytes; anything else is a corrupt row.  A row may be two such chains
(:func:`_encode_events` with ``split``): the second one's bytes are written
forwards and end the row, so it is read backwards from the row's end, and
the two chains must meet.

This module knows symbols, tables and byte streams only: which table codes
which symbol (the context models) is decided by the callers
(:mod:`gedenb.entropy.table_models`, :mod:`gedenb.entropy.image_models`).
Rows' streams lie back to back; the row index (:func:`row_index`: one
64-bit offset per block of :data:`BLOCK_ROWS` rows plus a fixed-width
offset per row inside its block) finds any row in O(1).
"""

from __future__ import annotations

import numpy as np

from .. import bits as _bits
from .._numba import njit, pnjit, prange
from ..bits import _get_bits
from ..layout import ceil_log2

__all__ = ["BLOCK_ROWS", "index_bytes", "row_index"]


#: Precisions a reader accepts (every digit has <= 8 bits; renormalisation reads <= 2 bytes).
MIN_PREC, MAX_PREC = 8, 12
#: Lower bound of the normalised rANS state.
RANS_L = 1 << 23
#: Bytes of a flushed state.
STATE_BYTES = 4
#: Largest alphabet of one symbol (digits of at most 8 bits).
MAX_ALPHABET = 256
#: Most bits of uniform digits carried by a row's initial rANS state.
CARRY_BITS = 30
#: Rows per block of the row index.
BLOCK_ROWS = 64


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


#: ``_GAMMA_BITS[v]``: bits of ``gamma(v)`` (:func:`_gamma_bits`) for ``1 <= v <= 2**MAX_PREC`` (frequencies,
#: zero runs + 1 up to the largest alphabet).
_GAMMA_BITS = np.array([0] + [2 * (v.bit_length() - 1) + 1 for v in range(1, (1 << MAX_PREC) + 1)], dtype=np.int64)


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


def _starts(freqs: np.ndarray) -> np.ndarray:
    starts = np.zeros_like(freqs)
    np.cumsum(freqs[:, :-1], axis=1, out=starts[:, 1:])
    return starts


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


@njit
def _events_histogram(ev_t, ev_s, ev_n, n_tables, alphabet):
    counts = np.zeros((n_tables, alphabet), dtype=np.int64)
    for i in range(ev_n.shape[0]):
        for k in range(ev_n[i]):
            counts[ev_t[i, k], ev_s[i, k]] += 1
    return counts


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
def _encode_events(ev_t, ev_s, ev_n, ev_b, split, freqs, starts, cap, prec):
    """rANS-encode every row's events (all modelled) into ``buf[i, :]`` (right-aligned); returns lengths.

    With ``split`` (rows of two chains, :func:`gedenb.entropy.image_models._run_events`), the first
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


@pnjit
def _compact(buf, lengths, offsets, out):
    cap = buf.shape[1]
    for i in prange(buf.shape[0]):
        o = offsets[i]
        ln = lengths[i]
        for q in range(ln):
            out[o + q] = buf[i, cap - ln + q]


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


def row_index(offsets: np.ndarray):
    """``(block_off, row_off, off_bits)`` of rows starting at ``offsets[:-1]``.

    Parameters
    ----------
    offsets : (N + 1,) int64
        Byte offset of every row in the row stream, then the stream's length.

    Returns
    -------
    block_off : (ceil(N / BLOCK_ROWS) + 1,) uint64
        Offset of every block of :data:`BLOCK_ROWS` rows, then the stream's length.
    row_off : uint64
        Every row's offset inside its block, ``off_bits`` bits each, packed.
    off_bits : int
    """
    N = offsets.shape[0] - 1
    nblocks = (N + BLOCK_ROWS - 1) // BLOCK_ROWS
    block_off = np.empty(nblocks + 1, dtype=np.uint64)
    block_off[:nblocks] = offsets[0:N:BLOCK_ROWS]
    block_off[nblocks] = offsets[N]
    rel = offsets[:N] - np.repeat(offsets[0:N:BLOCK_ROWS], BLOCK_ROWS)[:N]
    off_bits = ceil_log2(int(rel.max()) + 1) if N else 0
    row_off = _bits.pack_fixed(rel.astype(np.uint64), off_bits) if off_bits else np.zeros(0, dtype=np.uint64)
    return block_off, row_off, int(off_bits)


def index_bytes(coded) -> int:
    """Bytes of the row index (section RIDX) of ``coded``.

    Parameters
    ----------
    coded : EntropyCoded
        Anything with the index arrays ``block_off`` and ``row_off``.

    Returns
    -------
    int
    """
    return 8 * int(coded.block_off.shape[0]) + 8 * int(coded.row_off.shape[0])
