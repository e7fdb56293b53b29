"""The coding model shared by both context schemes: digits, slots, contexts and kernel parameters.

Every row's deviation values -- per column, the column's deviation bits
read as one small integer -- are cut into digits of at most 8 bits (most
significant first).  Every digit ("symbol") has a *slot* (its column and
digit) and is coded with a frequency table chosen by the slot and a
*context*: a mixed-radix number of the levels of symbols decoded before it
in the same row (:func:`_row_contexts`), so each row still decodes on its
own.  :class:`EntropyModel` is what section MODL stores plus what derives
from it; the image schemes (:mod:`gedenb.entropy.image_models`) and the
table scheme (:mod:`gedenb.entropy.table_models`) fill its references.

Also here: the packed per-slot (``SP_*``, ``FP_*``), per-column (``CP_*``)
and scalar (``MT_*``) parameters the decoding kernels read, and the digits
a row's initial rANS state carries (:func:`carried_slots`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._numba import njit, pnjit, prange
from .coder import CARRY_BITS, MAX_ALPHABET

__all__ = ["carried_slots", "CODINGS", "EntropyModel", "MAX_BASE_CODES", "MAX_TABLES", "split_slot"]


#: Bits of frequency precision of table-scheme models; their frequency tables sum to ``M = 2**PREC``.
PREC = 12
M = 1 << PREC
#: The values of ``compress(..., coding=...)``.
CODINGS = ("raw", "entropy")
#: Context schemes: per-slot tables (0); images with the left, upper, upper-left and upper-right
#: neighbours (1), with the left and upper neighbours only (2), without neighbours (3).
#: Schemes 4 and 5 are 1 and 2 plus zero runs (one digit per column only; see image_models._run_events).
SCHEME_TABLE, SCHEME_IMAGE, SCHEME_IMAGE_WN, SCHEME_IMAGE_FLAT, SCHEME_IMAGE_RUNS, SCHEME_IMAGE_WN_RUNS = range(6)
IMAGE_SCHEMES = (SCHEME_IMAGE, SCHEME_IMAGE_WN, SCHEME_IMAGE_FLAT, SCHEME_IMAGE_RUNS, SCHEME_IMAGE_WN_RUNS)
RUN_SCHEMES = (SCHEME_IMAGE_RUNS, SCHEME_IMAGE_WN_RUNS)
_BASE_SCHEME = {SCHEME_IMAGE_RUNS: SCHEME_IMAGE, SCHEME_IMAGE_WN_RUNS: SCHEME_IMAGE_WN}
#: Most frequency tables one model may have (each costs 16 KiB to decode with).
MAX_TABLES = 4096
#: Most entries ``n_b * d`` of the base-code table a decoder builds.
MAX_BASE_CODES = 1 << 24
#: Number of context references per slot.
K_REFS = 4
_Z = K_REFS  # references per slot


class EntropyModel(NamedTuple):
    """A fitted coding model: what section MODL stores plus what derives from it.

    Attributes
    ----------
    scheme : int
        ``0`` table, ``1`` image.
    image_shape : (H, W, C)
        Image scheme only (zeros otherwise).
    e1, e2 : int
        Level thresholds of the image scheme.
    slot_col, slot_bits, slot_lowshift, slot_last : (S,) int64
        Column, bits and position (shift inside the deviation value) of every
        digit, and whether it is its column's last digit.
    slot_table : (S,) int64
        First frequency table of the slot, ``-1`` for uniform (raw) digits.
    refs, shifts, nlev : (S, 4) int64
        Context references into a row's level buffer, right shifts and
        radices; unused references point at the zero entry with radix 1.
    alphabet : (T,) int64
        Alphabet size of every table.
    freqs : (T, 256) int32
        Quantised frequencies (each non-empty table sums to ``2**prec``).
    col_dmask : (d,) uint64
        Deviation bits inside every column's code.
    col_dshift : (d,) int64
        Their shift when contiguous, else -1.
    prec : int
        Bits of frequency precision (every table sums to ``2**prec``):
        :data:`gedenb.entropy.image_models.IMAGE_PREC` for the image schemes, whose decode
        tables must stay in cache, :data:`PREC` for tables.
    split : int
        First image row of a row's second rANS chain (zero-run schemes with
        ``H >= 2``, MODL version 2: the row that best balances the two
        chains' events, :func:`gedenb.entropy.image_models._balanced_split`), 0 for rows of one chain.
        A single row decodes faster in two chains (the decoder interleaves
        them); the lower chain's first image row takes the base's levels as
        its upper neighbours.
    """

    scheme: int
    image_shape: tuple
    e1: int
    e2: int
    slot_col: np.ndarray
    slot_bits: np.ndarray
    slot_lowshift: np.ndarray
    slot_last: np.ndarray
    slot_table: np.ndarray
    refs: np.ndarray
    shifts: np.ndarray
    nlev: np.ndarray
    alphabet: np.ndarray
    freqs: np.ndarray
    col_dmask: np.ndarray
    col_dshift: np.ndarray
    prec: int = PREC
    split: int = 0

    @property
    def n_slots(self) -> int:
        return int(self.slot_col.shape[0])

    @property
    def n_tables(self) -> int:
        return int(self.alphabet.shape[0])


def _frozen_model(model: EntropyModel) -> EntropyModel:
    for a in model:
        if isinstance(a, np.ndarray) and a.flags.writeable:
            a.setflags(write=False)
    return model


def _column_masks(widths: np.ndarray, base_mask: np.ndarray):
    """Per column: deviation-bit mask inside its code, contiguous shift (or -1), bit count."""
    widths = np.asarray(widths, dtype=np.int64)
    d = widths.shape[0]
    dmask = np.zeros(d, dtype=np.uint64)
    dw = np.zeros(d, dtype=np.int64)
    some = np.flatnonzero(widths > 0)
    if some.size:
        col = np.repeat(np.arange(d), widths)  # the column of every row position
        start = np.cumsum(widths) - widths
        up = (widths[col] - 1 - (np.arange(col.shape[0]) - start[col])).astype(np.uint64)  # its bit in the code
        dev = ~np.asarray(base_mask, dtype=bool)[:col.shape[0]]
        bit = np.where(dev, np.left_shift(np.uint64(1), up), np.uint64(0))
        dmask[some] = np.add.reduceat(bit, start[some])  # distinct bits: their sum is their union
        dw[some] = np.add.reduceat(dev.astype(np.int64), start[some])
    low_bit = dmask & (~dmask + np.uint64(1))
    low = (np.frexp(low_bit.astype(np.float64))[1] - 1).astype(np.int64)  # powers of two convert exactly
    run = dmask >> np.maximum(low, 0).astype(np.uint64)
    dshift = np.where((dw > 0) & ((run & (run + np.uint64(1))) == 0), low, -1).astype(np.int64)
    return dmask, dshift, dw


def _slots(dw: np.ndarray):
    """Digits of every column with deviation bits: (col, bits, lowshift, last, digit index)."""
    dw = np.asarray(dw, dtype=np.int64)
    nd = (dw + 7) // 8
    cols = np.repeat(np.arange(dw.shape[0], dtype=np.int64), nd)
    first = np.cumsum(nd) - nd
    tix = np.arange(cols.shape[0], dtype=np.int64) - first[cols]
    nd_s = nd[cols]
    bits = np.where(tix == 0, dw[cols] - 8 * (nd_s - 1), 8).astype(np.int64)
    low = (8 * (nd_s - 1 - tix)).astype(np.int64)
    last = (tix == nd_s - 1).astype(np.int64)
    return cols, bits, low, last, tix


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


def _mults(nlev: np.ndarray) -> np.ndarray:
    """Radix products: the context is ``sum_k level_k * mults[:, k]``."""
    mult = np.ones(nlev.shape, dtype=np.int64)
    for k in range(nlev.shape[1] - 2, -1, -1):
        mult[:, k] = mult[:, k + 1] * nlev[:, k + 1]
    return mult


def _pack_slots(slot_col, slot_bits, slot_last, slot_table, refs, shifts, nlev, slot_low, carry, shape, fast):
    """The per-slot parameters of the decoding kernels (``SP_*`` columns)."""
    S = slot_col.shape[0]
    sp = np.zeros((S, SP_WIDTH), dtype=np.int64)
    sp[:, SP_COL], sp[:, SP_BITS], sp[:, SP_LAST] = slot_col, slot_bits, slot_last
    sp[:, SP_TABLE] = slot_table
    sp[:, SP_REF:SP_REF + _Z], sp[:, SP_SHIFT:SP_SHIFT + _Z] = refs, shifts
    sp[:, SP_NLEV:SP_NLEV + _Z] = nlev
    sp[:, SP_LOW] = slot_low
    sp[:, SP_CARRY] = carry
    sp[:, SP_MULT:SP_MULT + _Z] = _mults(nlev)
    used = nlev > 1  # unused references (radix 1, level 0) leave the context as it is: stop after the last used
    sp[:, SP_NREF] = np.where(used.any(axis=1), _Z - np.argmax(used[:, ::-1], axis=1), 0)
    if shape[0]:
        sp[:, SP_ROWEND] = _row_ends(shape, slot_col)
    if fast:  # sp[:, SP_SHIFT] is unused by the image fast path: flag "left neighbour = previous digit"
        sp[1:, SP_SHIFT] = refs[1:, 0] == S + slot_col[:-1]
    return sp


def _fast_slots(sp: np.ndarray, col_dshift: np.ndarray) -> np.ndarray:
    """The image fast path's compact slot parameters (``FP_*``, int32, 64 bytes per slot)."""
    S = sp.shape[0]
    fp = np.zeros((S, FP_WIDTH), dtype=np.int32)
    if S == 0:
        return fp
    if sp.max() >= 2**31:
        raise ValueError("image too large for the fast decoding path")
    fp[:, FP_COL], fp[:, FP_TABLE] = sp[:, SP_COL], sp[:, SP_TABLE]
    fp[:, FP_REF:FP_REF + _Z] = sp[:, SP_REF:SP_REF + _Z]
    fp[:, FP_MULT:FP_MULT + _Z] = sp[:, SP_MULT:SP_MULT + _Z]
    fp[:, FP_WPREV] = sp[:, SP_SHIFT]  # set by _pack_slots(fast=True)
    fp[:, FP_ROWEND], fp[:, FP_BITS] = sp[:, SP_ROWEND], sp[:, SP_BITS]
    fp[:, FP_DSHIFT] = col_dshift[sp[:, SP_COL]]
    d = col_dshift.shape[0]
    slot_of = np.full(d + 1, -1, dtype=np.int64)  # column -> its (only) slot; the zero entry has none
    slot_of[sp[:, SP_COL]] = np.arange(S)
    wcol = np.minimum(sp[:, SP_REF] - S, d)
    fp[:, FP_WSLOT] = np.where(sp[:, SP_REF] >= S, slot_of[np.clip(wcol, 0, d)], -1)
    return fp


def _row_ends(shape, slot_col) -> np.ndarray:
    """For every slot, the index of the first slot of the next image row."""
    H, W, C = shape
    y = slot_col // (W * C)
    return np.searchsorted(y, y, side="right").astype(np.int64)


def carried_slots(model: EntropyModel) -> np.ndarray:
    """Digits carried by the initial rANS state instead of being coded (bool per slot).

    Uniform digits that no context refers to, taken from the last slot
    backwards while their bits total at most :data:`gedenb.entropy.coder.CARRY_BITS`.
    The rule depends only on the model, so writer and reader agree.

    Parameters
    ----------
    model : EntropyModel

    Returns
    -------
    (S,) bool
    """
    S = model.n_slots
    carry = np.zeros(S, dtype=bool)
    used = np.zeros(S + 1, dtype=bool)
    r = model.refs[model.nlev > 1]
    used[r[r < S]] = True
    free = np.flatnonzero((np.asarray(model.slot_table) < 0) & ~used[:S])
    bits = np.asarray(model.slot_bits, dtype=np.int64)[free]
    total, end = 0, free.shape[0]
    while end and total < CARRY_BITS:  # the last free slot before ``end`` that still fits, taken
        fit = np.flatnonzero(bits[:end] <= CARRY_BITS - total)
        if not fit.size:
            break
        end = int(fit[-1])
        carry[free[end]] = True
        total += int(bits[end])
    return carry


def _split_slot(slot_col: np.ndarray, shape, split: int) -> int:
    """First slot of the second chain of rows split at image row ``split`` (-1: no split)."""
    if not split:
        return -1
    H, W, C = shape
    return int(np.count_nonzero(slot_col < split * W * C))


def split_slot(model: EntropyModel) -> int:
    """First slot of the second rANS chain of every row (MODL version 2), or -1 (rows of one chain).

    Parameters
    ----------
    model : EntropyModel

    Returns
    -------
    int
    """
    return _split_slot(model.slot_col, model.image_shape, model.split)
