"""Entropy-coded deviations with per-row random access (``coding="entropy"``).

The GeDe split is kept: every row is a base ID plus a deviation, the bases
are stored as in the paper, and condensed samples are rows like any other.
What changes is how the deviation is stored.  Instead of its ``l_d`` raw
bits, each row's deviation values -- per column, the column's deviation
bits read as one small integer, cut into digits of at most 8 bits (most
significant first) -- are coded with static rANS (:mod:`gedenb.rans`).

Every digit ("symbol") has a *slot* (its column and digit) and is coded with
a frequency table chosen by the slot and a *context* computed from symbols
already decoded in the same row, so each row still decodes on its own:

``scheme "image"`` (:func:`gedenb.images.compress_images`, or
    ``compress(..., image_shape=(H, W, C))``)
    all pixels share tables; the context of a pixel's top digit is the
    quantised full code (3 levels: ``< e1``, ``< e2``, else) of its left,
    upper, upper-left and upper-right neighbours (81 contexts), as the
    gradient contexts of JPEG-LS / CALIC; lower digits use three neighbours
    and the top bit of the digit above.
``scheme "table"`` (plain tables)
    every slot has its own tables; per slot the compressor picks, by the
    size it would produce, raw (uniform) digits, one table, or a context
    from the digit above in the same column and / or the top digit of one
    of the two previous columns, quantised to 2-16 levels.

Rows are byte-aligned rANS streams; a row index (one 64-bit offset per
block of 64 rows plus a fixed-width offset per row inside its block) finds
any row in O(1).  The model (frequency tables, quantised to ``2**prec``) is
stored in the file and counted in every size.

:func:`fit` builds the model and :func:`estimate_bits` the size it gives,
which the greedy base selection (:func:`greedy_base_selection`, the entropy
generalisation of Eq. 1) minimises; :func:`encode` writes the rows,
:func:`decode_rows` reads them back.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import bits as _bits
from . import rans as _r
from ._numba import PARALLEL_MIN_VALUES, call_serial
from .encode import _storage_uint, output_views
from .errors import FormatError
from .layout import ceil_log2

__all__ = [
    "BLOCK_ROWS",
    "CODINGS",
    "EntropyCoded",
    "EntropyModel",
    "MAX_BASE_CODES",
    "MAX_TABLES",
    "decode_rows",
    "encode",
    "estimate_bits",
    "fit",
    "greedy_base_selection",
    "model_from_bytes",
    "model_to_bytes",
]

CODINGS = ("raw", "entropy")
#: Context schemes: per-slot tables (0); images with the left, upper, upper-left and upper-right
#: neighbours (1), with the left and upper neighbours only (2), without neighbours (3).
#: Schemes 4 and 5 are 1 and 2 plus zero runs (one digit per column only; see rans._run_events).
SCHEME_TABLE, SCHEME_IMAGE, SCHEME_IMAGE_WN, SCHEME_IMAGE_FLAT, SCHEME_IMAGE_RUNS, SCHEME_IMAGE_WN_RUNS = range(6)
IMAGE_SCHEMES = (SCHEME_IMAGE, SCHEME_IMAGE_WN, SCHEME_IMAGE_FLAT, SCHEME_IMAGE_RUNS, SCHEME_IMAGE_WN_RUNS)
RUN_SCHEMES = (SCHEME_IMAGE_RUNS, SCHEME_IMAGE_WN_RUNS)
_BASE_SCHEME = {SCHEME_IMAGE_RUNS: SCHEME_IMAGE, SCHEME_IMAGE_WN_RUNS: SCHEME_IMAGE_WN}
#: Rows per block of the row index.
BLOCK_ROWS = 64
#: Most frequency tables one model may have (each costs 16 KiB to decode with).
MAX_TABLES = 4096
#: Most entries ``n_b * d`` of the base-code table a decoder builds.
MAX_BASE_CODES = 1 << 24
#: Bytes of the fixed part of a serialised model (section MODL).
MODEL_HEADER_BYTES = 64
#: Bytes per slot record of the table scheme.
SLOT_RECORD_BYTES = 12
#: Versions of the MODL payload: 1, rows of one rANS chain; 2, image rows of the zero-run schemes split
#: in two chains at an image row stored after the header (see :func:`split_slot`).  gedenb writes 2 where a
#: split applies and 1 elsewhere, and reads both.
MODEL_VERSION = 1
SPLIT_MODEL_VERSION = 2
#: Bytes after the header of a version-2 model: ``u32 split, u32 0``.
SPLIT_RECORD_BYTES = 8
#: Average bytes a row's rANS stream costs beyond its symbols' information
#: (the 4-byte flushed state minus the 23 bits it starts with, plus rounding).
ROW_OVERHEAD_BYTES = 3.5
_Z = _r.K_REFS  # references per slot


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
        :data:`gedenb.rans.IMAGE_PREC` for the image schemes, whose decode
        tables must stay in cache, :data:`gedenb.rans.PREC` for tables.
    split : int
        First image row of a row's second rANS chain (zero-run schemes with
        ``H >= 2``, MODL version 2: the row that best balances the two
        chains' events, :func:`_balanced_split`), 0 for rows of one chain.
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
    prec: int = _r.PREC
    split: int = 0

    @property
    def n_slots(self) -> int:
        return int(self.slot_col.shape[0])

    @property
    def n_tables(self) -> int:
        return int(self.alphabet.shape[0])


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
        (:mod:`gedenb.rans`); ``cp_codes`` and ``meta_codes`` decode to
        column codes instead of values (mixed-dtype tables).
    factor : float64
        The codecs' fixed-point factors.
    ip : int64
        The image decoder's one parameter array (:func:`gedenb.rans._decode_image_two`;
        empty when it does not apply: see :func:`_image_params`): its own
        parameters, ``meta``, ``cp``, ``factor``, ``meta_codes``, ``cp_codes``,
        the row index, base codes, ``base_nz``, ``base_lev`` and ``dtab`` (the
        last three are then views of it).
    base_lev : (n_b, NBUF) uint8
        Levels of every base's codes on the padded image grid (image decoder only; a zero row on top,
        a zero column left and right, split rows' virtual row, whole words: see :func:`_image_params`).
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


# --------------------------------------------------------------------------
# slots: the digits of a row under a base mask
# --------------------------------------------------------------------------
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


def _image_refs(shape, slot_col, slot_bits, slot_low, slot_tix, d):
    """References, shifts, radices and table groups of the image scheme."""
    H, W, C = shape
    S = slot_col.shape[0]
    zero = S + d
    refs = np.full((S, _Z), zero, dtype=np.int64)
    shifts = np.zeros((S, _Z), dtype=np.int64)
    nlev = np.ones((S, _Z), dtype=np.int64)
    group = np.zeros(S, dtype=np.int64)
    cols = slot_col
    c = cols % C
    x = (cols // C) % W
    y = cols // (C * W)

    def at(yy, xx):
        ok = (yy >= 0) & (xx >= 0) & (xx < W)
        return np.where(ok, S + (yy * W + xx) * C + c, zero)

    Wn, Nn, NWn, NEn = at(y, x - 1), at(y - 1, x), at(y - 1, x - 1), at(y - 1, x + 1)
    top = slot_tix == 0
    refs[:, 0], refs[:, 1], refs[:, 2] = Wn, Nn, NWn
    nlev[:, :3] = 3
    refs[top, 3] = NEn[top]
    nlev[top, 3] = 3
    # lower digits: the top bit of the digit above instead of the upper-right neighbour
    lower = np.flatnonzero(~top)
    refs[lower, 3] = lower - 1
    shifts[lower, 3] = slot_bits[lower - 1] - 1
    nlev[lower, 3] = 2
    # tables shared per (digit position from the bottom, top or not)
    key = (slot_low // 8) * 2 + (~top).astype(np.int64)
    ukeys, group = np.unique(key, return_inverse=True)
    return refs, shifts, nlev, group.astype(np.int64), len(ukeys)


def _image_layout(shape, scheme, slot_col, slot_bits, slot_low, slot_tix, d):
    """``refs, shifts, nlev, slot_table, alphabet`` of an image scheme (derived, never stored).

    Run schemes add one last table, of run lengths (alphabet 256).
    """
    runs = scheme in RUN_SCHEMES
    scheme = _BASE_SCHEME.get(scheme, scheme)
    refs, shifts, nlev, group, ngroups = _image_refs(shape, slot_col, slot_bits, slot_low, slot_tix, d)
    S = slot_col.shape[0]
    top = slot_tix == 0
    drop = {SCHEME_IMAGE: [], SCHEME_IMAGE_WN: [2], SCHEME_IMAGE_FLAT: [0, 1, 2]}[scheme]
    for k in drop:
        refs[:, k], shifts[:, k], nlev[:, k] = S + d, 0, 1
    if scheme != SCHEME_IMAGE:  # the upper-right neighbour of top digits
        refs[top, 3], shifts[top, 3], nlev[top, 3] = S + d, 0, 1
    per_group = np.ones(ngroups, dtype=np.int64)
    alpha_g = np.ones(ngroups, dtype=np.int64)
    for s in range(S):  # every slot of a group has the same radices
        per_group[group[s]] = int(np.prod(nlev[s]))
        alpha_g[group[s]] = max(alpha_g[group[s]], 1 << int(slot_bits[s]))
    first = np.concatenate(([0], np.cumsum(per_group)[:-1])).astype(np.int64)
    slot_table = first[group] if S else np.zeros(0, dtype=np.int64)
    alphabet = np.repeat(alpha_g, per_group).astype(np.int64)
    if runs:  # run lengths by flat-stretch length, then the digit that ends a run
        alphabet = np.append(alphabet, np.full(_r.RUN_CONTEXTS + 1, _r.MAX_RUN + 1, dtype=np.int64))
    return refs, shifts, nlev, slot_table, alphabet


def _mults(nlev: np.ndarray) -> np.ndarray:
    """Radix products: the context is ``sum_k level_k * mults[:, k]``."""
    mult = np.ones(nlev.shape, dtype=np.int64)
    for k in range(nlev.shape[1] - 2, -1, -1):
        mult[:, k] = mult[:, k + 1] * nlev[:, k + 1]
    return mult


def _pack_slots(slot_col, slot_bits, slot_last, slot_table, refs, shifts, nlev, slot_low, carry, shape, fast):
    """The per-slot parameters of the decoding kernels (``rans.SP_*`` columns)."""
    S = slot_col.shape[0]
    sp = np.zeros((S, _r.SP_WIDTH), dtype=np.int64)
    sp[:, _r.SP_COL], sp[:, _r.SP_BITS], sp[:, _r.SP_LAST] = slot_col, slot_bits, slot_last
    sp[:, _r.SP_TABLE] = slot_table
    sp[:, _r.SP_REF:_r.SP_REF + _Z], sp[:, _r.SP_SHIFT:_r.SP_SHIFT + _Z] = refs, shifts
    sp[:, _r.SP_NLEV:_r.SP_NLEV + _Z] = nlev
    sp[:, _r.SP_LOW] = slot_low
    sp[:, _r.SP_CARRY] = carry
    sp[:, _r.SP_MULT:_r.SP_MULT + _Z] = _mults(nlev)
    used = nlev > 1  # unused references (radix 1, level 0) leave the context as it is: stop after the last used
    sp[:, _r.SP_NREF] = np.where(used.any(axis=1), _Z - np.argmax(used[:, ::-1], axis=1), 0)
    if shape[0]:
        sp[:, _r.SP_ROWEND] = _row_ends(shape, slot_col)
    if fast:  # sp[:, SP_SHIFT] is unused by the image fast path: flag "left neighbour = previous digit"
        sp[1:, _r.SP_SHIFT] = refs[1:, 0] == S + slot_col[:-1]
    return sp


def _fast_slots(sp: np.ndarray, col_dshift: np.ndarray) -> np.ndarray:
    """The image fast path's compact slot parameters (``rans.FP_*``, int32, 64 bytes per slot)."""
    S = sp.shape[0]
    fp = np.zeros((S, _r.FP_WIDTH), dtype=np.int32)
    if S == 0:
        return fp
    if sp.max() >= 2**31:
        raise ValueError("image too large for the fast decoding path")
    fp[:, _r.FP_COL], fp[:, _r.FP_TABLE] = sp[:, _r.SP_COL], sp[:, _r.SP_TABLE]
    fp[:, _r.FP_REF:_r.FP_REF + _Z] = sp[:, _r.SP_REF:_r.SP_REF + _Z]
    fp[:, _r.FP_MULT:_r.FP_MULT + _Z] = sp[:, _r.SP_MULT:_r.SP_MULT + _Z]
    fp[:, _r.FP_WPREV] = sp[:, _r.SP_SHIFT]  # set by _pack_slots(fast=True)
    fp[:, _r.FP_ROWEND], fp[:, _r.FP_BITS] = sp[:, _r.SP_ROWEND], sp[:, _r.SP_BITS]
    fp[:, _r.FP_DSHIFT] = col_dshift[sp[:, _r.SP_COL]]
    d = col_dshift.shape[0]
    slot_of = np.full(d + 1, -1, dtype=np.int64)  # column -> its (only) slot; the zero entry has none
    slot_of[sp[:, _r.SP_COL]] = np.arange(S)
    wcol = np.minimum(sp[:, _r.SP_REF] - S, d)
    fp[:, _r.FP_WSLOT] = np.where(sp[:, _r.SP_REF] >= S, slot_of[np.clip(wcol, 0, d)], -1)
    return fp


def _row_ends(shape, slot_col) -> np.ndarray:
    """For every slot, the index of the first slot of the next image row."""
    H, W, C = shape
    y = slot_col // (W * C)
    return np.searchsorted(y, y, side="right").astype(np.int64)


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


# --------------------------------------------------------------------------
# fitting
# --------------------------------------------------------------------------
def _image_thresholds(codes: np.ndarray, cols: np.ndarray) -> tuple[int, int]:
    """``e1`` = most common code + 1, ``e2`` = median of the larger codes."""
    if cols.size == 0:
        return 1, 2
    sample = codes[:: max(1, codes.shape[0] // 256)][:, np.unique(cols)].ravel()  # ~256 rows
    vals, cnt = np.unique(sample, return_counts=True)
    mode = int(vals[np.argmax(cnt)])
    e1 = mode + 1
    above = sample[sample >= np.uint64(e1)]
    e2 = int(np.median(above)) if above.size else e1 + 1
    return e1, max(e1 + 1, e2)


#: Work counters of the compressor, for tests of how its work grows: ``"context_slots"``, digit slots whose
#: candidate contexts were costed (:func:`_choose_table_contexts`; a greedy search reuses the costs of columns
#: whose digits did not change, :class:`_ContextCosts`).  Only ever incremented.
_WORK = {"context_slots": 0}


def _context_sources(slot_col: np.ndarray, slot_tix: np.ndarray) -> np.ndarray:
    """``(S, rans.CTX_SOURCES)``: every slot's context sources -- the digit above in its column (if any), then
    the first digits of the previous two columns with digits -- as slot indices, -1 after the last."""
    S = slot_col.shape[0]
    src = np.full((S, _r.CTX_SOURCES), -1, dtype=np.int64)
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
    (:func:`greedy_base_selection`).  Every call must be for the same codes,
    unchanged.
    """

    def __init__(self):
        self.key = None  # per column: its deviation mask and its two sources' columns and masks
        self.costs = None  # (d, digits, rans.CTX_CANDIDATES)
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
                sym[:, slots] = _r._row_symbols(codes, slot_col[slots], slot_low[slots], slot_bits[slots], dmask,
                                                dshift)
        else:
            sym = _r._row_symbols(codes, slot_col, slot_low, slot_bits, dmask, dshift)
        self.digits = (slot_col, sym, dmask)
        return sym

    def __call__(self, sym, slot_col, slot_tix, slot_bits, src, dmask) -> np.ndarray:
        """``(S, rans.CTX_CANDIDATES)`` costs of the slots of ``sym`` (the digits of the codes under the
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
            self.costs = np.empty((d, digits, _r.CTX_CANDIDATES), dtype=np.float64)
            self.key = None
        stale = np.ones(d, dtype=bool) if self.key is None else (key != self.key).any(axis=1)
        slots = np.flatnonzero(stale[slot_col])
        if slots.size:
            self.costs[slot_col[slots], slot_tix[slots]] = _r._context_costs(sym, slots, src, slot_bits, _r.PREC)
            _WORK["context_slots"] += int(slots.size)
        self.key = key
        return self.costs[slot_col, slot_tix]


def _choose_table_contexts(sym: np.ndarray, slot_col, slot_bits, slot_tix, max_tables: int, dmask=None,
                           costs=None):
    """Per slot, the context with the smallest coded size (symbols + tables).

    Every slot, in slot order, takes the cheapest of raw (uniform) digits and
    its candidate contexts (:data:`gedenb.rans.CTX_NREF`) that fit the
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
        cost = _r._context_costs(sym, np.arange(S, dtype=np.int64), src, slot_bits, _r.PREC)
        _WORK["context_slots"] += S
    else:
        cost = costs(sym, slot_col, slot_tix, slot_bits, src, dmask)
    choice = _r._pick_contexts(cost, src, slot_bits, N, max_tables)
    uniform = choice < 0
    k = np.maximum(choice, 0)
    nref = np.where(uniform, 0, _r.CTX_NREF[k])
    ref = np.zeros((S, 2), dtype=np.int64)
    shift = np.zeros((S, 2), dtype=np.int64)
    for q in range(2):
        use = np.flatnonzero(nref > q)
        r = src[use, _r.CTX_SRC[k[use], q]]
        ref[use, q], shift[use, q] = r, slot_bits[r] - _r.CTX_LV[k[use], q]
    return uniform, nref, ref, shift


def fit(codes: np.ndarray, widths, base_mask, image_shape=None, counts_only: bool = False):
    """Fit the coding model of the deviations of ``codes`` under ``base_mask``.

    Parameters
    ----------
    codes : (N, d) uint64
        Column codes of every row (original rows, then condensed samples).
    widths : (d,) int
    base_mask : (l_t,) bool
    image_shape : (H, W, C), optional
        Use the image scheme (``H * W * C == d``).
    counts_only : bool
        Only the model and counts are wanted (a size estimate): ``tidx`` is
        None and no per-row arrays are built.

    Returns
    -------
    model : EntropyModel
    sym : (N, S) uint8
        The digits of every row.
    tidx : (N, S) int32
        The frequency table of every digit (-1: uniform).
    counts : (T, 256) int64
        Symbol counts per table (what the frequencies were quantised from).
    """
    return _fit(codes, widths, base_mask, image_shape, counts_only)


def _fit(codes: np.ndarray, widths, base_mask, image_shape=None, counts_only: bool = False, costs=None):
    """:func:`fit`, with a :class:`_ContextCosts` of ``codes`` to reuse (table scheme only), or None."""
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    d = codes.shape[1]
    dmask, dshift, dw = _column_masks(widths, np.asarray(base_mask, dtype=bool))
    slot_col, slot_bits, slot_low, slot_last, slot_tix = _slots(dw)
    S = slot_col.shape[0]
    if not S:
        sym = np.zeros((codes.shape[0], 0), dtype=np.uint8)
    elif costs is not None and image_shape is None:
        sym = costs.symbols(codes, slot_col, slot_low, slot_bits, dmask, dshift)
    else:
        sym = _r._row_symbols(codes, slot_col, slot_low, slot_bits, dmask, dshift)
    N = codes.shape[0]
    if image_shape is not None:  # the image scheme with most, fewer or no neighbours, or raw digits
        shape = tuple(int(v) for v in image_shape)
        e1, e2 = _image_thresholds(codes, slot_col)
        best = None
        single = bool(S) and bool((slot_last == 1).all())
        split = _balanced_split(codes, shape, e1, slot_col) if single else 0  # the zero-run schemes' split row
        for scheme in IMAGE_SCHEMES:
            if scheme in RUN_SCHEMES and not single:
                continue
            refs, shifts, nlev, slot_table, alphabet = _image_layout(shape, scheme, slot_col, slot_bits, slot_low,
                                                                     slot_tix, d)
            cand = _finish(codes, sym, scheme, shape, e1, e2, slot_col, slot_bits, slot_low, slot_last, slot_table,
                           refs, shifts, nlev, alphabet, dmask, dshift, counts_only, split)
            bits = estimate_bits(cand[0], cand[3], N)
            if best is None or bits < best[0]:
                best = (bits, cand)
        uniform = np.ones(S, dtype=bool)
        zero = np.zeros((S, 2), dtype=np.int64)
        cand = _table_model(codes, sym, uniform, np.zeros(S, dtype=np.int64), zero, zero, slot_col, slot_bits,
                            slot_low, slot_last, dmask, dshift, d, counts_only)
        if estimate_bits(cand[0], cand[3], N) < best[0]:
            return cand
        return best[1]
    uniform, nref, ref, shift = _choose_table_contexts(sym, slot_col, slot_bits, slot_tix, MAX_TABLES, dmask, costs)
    return _table_model(codes, sym, uniform, nref, ref, shift, slot_col, slot_bits, slot_low, slot_last, dmask,
                        dshift, d, counts_only)


def _table_alphabet(uniform, nlev, slot_bits):
    """Each coded digit slot's first table and every table's alphabet size (one table per context level combination)."""
    S = slot_bits.shape[0]
    coded = ~np.asarray(uniform, dtype=bool)
    k = np.where(coded, np.prod(nlev, axis=1), 0).astype(np.int64) if S else np.zeros(0, dtype=np.int64)
    slot_table = np.where(coded, np.cumsum(k) - k, -1).astype(np.int64)
    alphabet = np.repeat(np.left_shift(np.int64(1), np.asarray(slot_bits, dtype=np.int64)), k).astype(np.int64)
    return slot_table, alphabet


def _table_model(codes, sym, uniform, nref, ref, shift, slot_col, slot_bits, slot_low, slot_last, dmask, dshift, d,
                 counts_only=False):
    S = slot_col.shape[0]
    refs, shifts, nlev = _table_slot_refs(nref, ref, shift, slot_bits, S, d)
    slot_table, alphabet = _table_alphabet(uniform, nlev, slot_bits)
    return _finish(codes, sym, SCHEME_TABLE, (0, 0, 0), 0, 0, slot_col, slot_bits, slot_low, slot_last, slot_table,
                   refs, shifts, nlev, alphabet, dmask, dshift, counts_only)


def _finish(codes, sym, scheme, shape, e1, e2, slot_col, slot_bits, slot_low, slot_last, slot_table, refs, shifts,
            nlev, alphabet, dmask, dshift, counts_only=False, split=0):
    S = slot_col.shape[0]
    T = alphabet.shape[0]
    image = scheme in IMAGE_SCHEMES
    prec = _r.IMAGE_PREC if image else _r.PREC
    count = counts_only and T > 0  # the kernels count symbols per table without per-row arrays
    if scheme in RUN_SCHEMES:  # the events of every row: run lengths and the digits outside runs
        sp = _pack_slots(slot_col, slot_bits, slot_last, slot_table, refs, shifts, nlev, slot_low,
                         np.zeros(S, dtype=bool), shape, True)
        base = codes & ~dmask[None, :]
        ev_t, ev_s, ev_n, ev_b, counts = _r._run_events(codes, base, sym, _fast_slots(sp, dshift),
                                                        T - _r.RUN_CONTEXTS - 1, np.uint64(e1), np.uint64(e2),
                                                        T if count else 0, _split_slot(slot_col, shape, split))
        tidx = None if count else (ev_t, ev_s, ev_n, ev_b)
        if not count:
            counts = _r._events_histogram(ev_t, ev_s, ev_n, T, _r.MAX_ALPHABET)
        freqs = _r._quantise(counts, prec)
        model = EntropyModel(scheme, shape, int(e1), int(e2), slot_col, slot_bits, slot_low, slot_last, slot_table,
                             refs, shifts, nlev, alphabet, freqs, dmask, dshift, prec, split)
        return model, sym, None if counts_only else tidx, counts
    if S and count and not image:
        tidx, counts = None, _r._table_counts(sym, slot_table, refs, shifts, nlev, T)
    elif S and count:
        tidx, counts = None, _r._row_contexts(codes, sym, slot_table, refs, shifts, nlev, image, np.uint64(e1),
                                              np.uint64(e2), T)[1]
    else:
        tidx = _r._row_contexts(codes, sym, slot_table, refs, shifts, nlev, image, np.uint64(e1), np.uint64(e2),
                                0)[0] if S else np.zeros((codes.shape[0], 0), dtype=np.int32)
        counts = _r._histogram(tidx, sym, T, _r.MAX_ALPHABET)
    freqs = _r._quantise(counts, prec)
    model = EntropyModel(scheme, shape, int(e1), int(e2), slot_col, slot_bits, slot_low, slot_last, slot_table,
                         refs, shifts, nlev, alphabet, freqs, dmask, dshift, prec)
    return model, sym, None if counts_only else tidx, counts


#: Rows :func:`_balanced_split` looks at (evenly spaced).
SPLIT_SAMPLE_ROWS = 512


def _balanced_split(codes: np.ndarray, shape, e1: int, slot_col: np.ndarray) -> int:
    """The image row where a zero-run image row's second rANS chain starts: about as many events above
    as from it on (0 if ``H < 2``).

    A digit is one event where its context is not 0 (a neighbour's level is
    not 0), and zero runs are few beside them, so the estimate counts, per
    image row, the slots with a left, upper, upper-left or upper-right
    neighbour at level > 0, over up to :data:`SPLIT_SAMPLE_ROWS` rows.
    """
    H, W, C = shape
    if H < 2:
        return 0
    N = codes.shape[0]
    pick = np.linspace(0, N - 1, min(N, SPLIT_SAMPLE_ROWS)).astype(np.int64) if N else np.zeros(0, np.int64)
    nz = (codes[pick] >= np.uint64(e1)).reshape(-1, H, W, C)
    busy = np.zeros_like(nz)
    busy[:, :, 1:] |= nz[:, :, :-1]
    busy[:, 1:, :] |= nz[:, :-1, :]
    busy[:, 1:, 1:] |= nz[:, :-1, :-1]
    busy[:, 1:, :-1] |= nz[:, :-1, 1:]
    has = np.zeros(H * W * C, dtype=bool)
    has[slot_col] = True
    per_row = (busy.reshape(-1, H * W * C) & has).reshape(-1, H, W * C).sum(axis=(0, 2)) + has.reshape(H, -1).sum(1)
    cum = np.cumsum(per_row)
    above = cum[:-1]  # events of rows 0..y-1 for a split at y = 1..H-1
    return int(np.argmin(np.abs(2 * above - cum[-1]))) + 1


def _split_slot(slot_col: np.ndarray, shape, split: int) -> int:
    """First slot of the second chain of rows split at image row ``split`` (-1: no split)."""
    if not split:
        return -1
    H, W, C = shape
    return int(np.count_nonzero(slot_col < split * W * C))


def split_slot(model: EntropyModel) -> int:
    """First slot of the second rANS chain of every row (MODL version 2), or -1 (rows of one chain)."""
    return _split_slot(model.slot_col, model.image_shape, model.split)


def estimate_bits(model: EntropyModel, counts: np.ndarray, n_rows: int) -> float:
    """Estimated bits of section MODL + RIDX + ROWS for ``n_rows`` rows with symbol ``counts``.

    Symbols cost their ideal rANS length under the quantised frequencies,
    uniform digits their bits; each row adds :data:`ROW_OVERHEAD_BYTES`
    (flushed state, byte rounding) per rANS chain (two for split rows); the
    index is estimated from the mean row length; the model is counted exactly.
    """
    chains = 2 if model.split else 1
    code = float(_r._code_bits(counts, model.freqs, model.prec))
    carry = carried_slots(model)
    uni = (model.slot_table < 0) & ~carry
    code += float(n_rows) * float(model.slot_bits[uni].sum())
    # carried bits fill the initial state, whose 23 bits of L were wasted before
    carried = int(model.slot_bits[carry].sum())
    row_bytes = (code + n_rows * max(0, carried - 23)) / 8 + ROW_OVERHEAD_BYTES * chains * n_rows
    row_bytes = max(row_bytes, float(_r.STATE_BYTES) * chains * n_rows)  # no row is shorter than its flushed states
    mean = row_bytes / max(n_rows, 1)
    off_bits = ceil_log2(int(mean * (BLOCK_ROWS - 1) * 1.25) + 1)
    nblocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    index = 8 * (nblocks + 1) + 8 * ((n_rows * off_bits + 63) // 64)
    model_bytes = len(model_to_bytes(model, off_bits))
    return 8.0 * (row_bytes + index + model_bytes)


# --------------------------------------------------------------------------
# the model's bytes (section MODL)
# --------------------------------------------------------------------------
def carried_slots(model: EntropyModel) -> np.ndarray:
    """Digits carried by the initial rANS state instead of being coded (bool per slot).

    Uniform digits that no context refers to, taken from the last slot
    backwards while their bits total at most :data:`gedenb.rans.CARRY_BITS`.
    The rule depends only on the model, so writer and reader agree.
    """
    S = model.n_slots
    carry = np.zeros(S, dtype=bool)
    used = np.zeros(S + 1, dtype=bool)
    r = model.refs[model.nlev > 1]
    used[r[r < S]] = True
    free = np.flatnonzero((np.asarray(model.slot_table) < 0) & ~used[:S])
    bits = np.asarray(model.slot_bits, dtype=np.int64)[free]
    total, end = 0, free.shape[0]
    while end and total < _r.CARRY_BITS:  # the last free slot before ``end`` that still fits, taken
        fit = np.flatnonzero(bits[:end] <= _r.CARRY_BITS - total)
        if not fit.size:
            break
        end = int(fit[-1])
        carry[free[end]] = True
        total += int(bits[end])
    return carry


def _table_stream(model: EntropyModel):
    nbits = int(_r._table_bits(model.freqs, model.alphabet))
    return nbits, _r._write_tables(model.freqs, model.alphabet, nbits)


def model_to_bytes(model: EntropyModel, off_bits: int) -> bytes:
    """Section MODL of ``docs/FORMAT.md``."""
    nbits, words = _table_stream(model)
    H, W, C = model.image_shape
    head = np.zeros(1, dtype=[("version", "<u4"), ("scheme", "<u4"), ("prec", "<u4"), ("block_rows", "<u4"),
                              ("off_bits", "<u4"), ("n_slots", "<u4"), ("n_tables", "<u4"), ("H", "<u4"),
                              ("W", "<u4"), ("C", "<u4"), ("e1", "<u8"), ("e2", "<u8"), ("table_bits", "<u8")])
    version = SPLIT_MODEL_VERSION if model.split else MODEL_VERSION
    head[0] = (version, model.scheme, model.prec, BLOCK_ROWS, off_bits, model.n_slots, model.n_tables, H, W, C,
               model.e1, model.e2, nbits)
    assert head.nbytes == MODEL_HEADER_BYTES
    parts = [head.tobytes()]
    if model.split:
        parts.append(np.array([model.split, 0], dtype="<u4").tobytes())
    if model.scheme == SCHEME_TABLE:
        rec = np.zeros(model.n_slots, dtype=[("uniform", "u1"), ("nref", "u1"), ("shift0", "u1"), ("shift1", "u1"),
                                             ("ref0", "<u4"), ("ref1", "<u4")])
        used = model.nlev > 1
        rec["uniform"] = model.slot_table < 0
        rec["nref"] = used.sum(axis=1)
        rec["shift0"], rec["shift1"] = model.shifts[:, 0], model.shifts[:, 1]
        rec["ref0"] = np.where(used[:, 0], model.refs[:, 0], 0)
        rec["ref1"] = np.where(used[:, 1], model.refs[:, 1], 0)
        parts.append(rec.tobytes())
        parts.append(b"\0" * (-len(parts[-1]) % 8))
    parts.append(np.ascontiguousarray(words, dtype="<u8").tobytes())
    return b"".join(parts)


def model_from_bytes(payload, widths, base_mask, d: int) -> tuple[EntropyModel, int]:
    """Parse and validate section MODL; returns ``(model, off_bits)``.

    Raises
    ------
    FormatError
        Anything inconsistent with the codecs and base mask, or malformed.
    """
    buf = bytes(payload)
    if len(buf) < MODEL_HEADER_BYTES:
        raise FormatError(f"MODL: {len(buf)} bytes, at least {MODEL_HEADER_BYTES} expected")
    h = np.frombuffer(buf[:MODEL_HEADER_BYTES], dtype="<u4", count=10)
    e1, e2, nbits = (int(v) for v in np.frombuffer(buf[40:64], dtype="<u8"))
    version, scheme, prec, block_rows, off_bits, S_file, T_file, H, W, C = (int(v) for v in h)
    if version not in (MODEL_VERSION, SPLIT_MODEL_VERSION):
        raise FormatError(f"MODL: model version {version} is not supported (this gedenb reads {MODEL_VERSION} and "
                          f"{SPLIT_MODEL_VERSION})")
    if not _r.MIN_PREC <= prec <= _r.MAX_PREC or block_rows != BLOCK_ROWS or off_bits > 63 \
            or scheme not in (SCHEME_TABLE,) + IMAGE_SCHEMES:
        raise FormatError("MODL: precision, block size, offset width or scheme not supported")
    if version == SPLIT_MODEL_VERSION and scheme not in RUN_SCHEMES:
        raise FormatError("MODL: split rows (model version 2) need a zero-run scheme (4 or 5)")
    dmask, dshift, dw = _column_masks(widths, base_mask)
    slot_col, slot_bits, slot_low, slot_last, slot_tix = _slots(dw)
    S = slot_col.shape[0]
    if S_file != S:
        raise FormatError(f"MODL: {S_file} digit slots, the codecs and base mask give {S}")
    pos = MODEL_HEADER_BYTES
    split = 0
    if scheme in IMAGE_SCHEMES:
        if H * W * C != d or min(H, W, C) < 1 or not 0 < e1 < e2:
            raise FormatError("MODL: image shape or level thresholds inconsistent with the table")
        if scheme in RUN_SCHEMES and not (S and (slot_last == 1).all()):
            raise FormatError("MODL: zero runs need one digit per column")
        if version == SPLIT_MODEL_VERSION:
            if len(buf) < pos + SPLIT_RECORD_BYTES:
                raise FormatError("MODL: the split record runs past the section")
            split, pad = (int(v) for v in np.frombuffer(buf, dtype="<u4", count=2, offset=pos))
            if not 0 < split < H or pad:
                raise FormatError(f"MODL: split row {split} is not in [1, {H - 1}] or its padding is not zero")
            pos += SPLIT_RECORD_BYTES
        refs, shifts, nlev, slot_table, alphabet = _image_layout((H, W, C), scheme, slot_col, slot_bits, slot_low,
                                                                 slot_tix, d)
    else:
        if H or W or C or e1 or e2:
            raise FormatError("MODL: image fields set in a table model")
        need = S * SLOT_RECORD_BYTES
        need += -need % 8
        if len(buf) < pos + need:
            raise FormatError("MODL: slot records run past the section")
        rec = np.frombuffer(buf[pos:pos + S * SLOT_RECORD_BYTES],
                            dtype=[("uniform", "u1"), ("nref", "u1"), ("shift0", "u1"), ("shift1", "u1"),
                                   ("ref0", "<u4"), ("ref1", "<u4")])
        if any(buf[pos + S * SLOT_RECORD_BYTES:pos + need]):
            raise FormatError("MODL: padding bytes must be zero")
        pos += need
        uniform = rec["uniform"].astype(np.int64)
        nref = rec["nref"].astype(np.int64)
        ref = np.stack([rec["ref0"], rec["ref1"]], axis=1).astype(np.int64)
        shift = np.stack([rec["shift0"], rec["shift1"]], axis=1).astype(np.int64)
        idx = np.arange(S)
        if (uniform > 1).any() or (nref > 2).any() or (uniform.astype(bool) & (nref > 0)).any():
            raise FormatError("MODL: malformed slot record")
        for k in range(2):
            use = nref > k
            if (use & (ref[:, k] >= idx)).any():
                raise FormatError("MODL: a context refers to a digit not decoded before it")
            if (use & (shift[:, k] >= slot_bits[np.minimum(ref[:, k], max(S - 1, 0))])).any():
                raise FormatError("MODL: a context shift leaves no level")
            if ((~use) & ((ref[:, k] != 0) | (shift[:, k] != 0))).any():
                raise FormatError("MODL: unused context fields must be zero")
        refs, shifts, nlev = _table_slot_refs(nref, ref, shift, slot_bits, S, d)
        slot_table, alphabet = _table_alphabet(uniform, nlev, slot_bits)
    T = alphabet.shape[0]
    if T_file != T or T > MAX_TABLES:
        raise FormatError(f"MODL: {T_file} frequency tables, the slots give {T} (at most {MAX_TABLES})")
    nwords = (nbits + 63) // 64
    if len(buf) != pos + 8 * nwords:
        raise FormatError("MODL: table stream length does not match the section")
    words = np.frombuffer(buf, dtype="<u8", count=nwords, offset=pos).astype(np.uint64)
    if nbits % 64 and int(words[-1]) & ((1 << (64 - nbits % 64)) - 1):
        raise FormatError("MODL: padding bits of the table stream must be zero")
    freqs, used = _r._read_tables(words if nwords else np.zeros(1, np.uint64), nbits, alphabet, prec)
    if used != nbits:
        raise FormatError("MODL: malformed frequency tables")
    model = EntropyModel(int(scheme), (H, W, C) if scheme in IMAGE_SCHEMES else (0, 0, 0), e1, e2, slot_col,
                         slot_bits, slot_low, slot_last, slot_table, refs, shifts, nlev, alphabet, freqs, dmask,
                         dshift, prec, split)
    return _frozen_model(model), off_bits


def _frozen_model(model: EntropyModel) -> EntropyModel:
    for a in model:
        if isinstance(a, np.ndarray) and a.flags.writeable:
            a.setflags(write=False)
    return model


# --------------------------------------------------------------------------
# encoding and the row index
# --------------------------------------------------------------------------
def encode(model: EntropyModel, sym: np.ndarray, tidx: np.ndarray):
    """rANS-encode every row; returns ``(stream uint8, block_off uint64, row_off uint64, off_bits)``."""
    N, S = sym.shape
    starts = _starts(model.freqs)
    cap = _r.STATE_BYTES + 4 + (3 * S + 1) // 2 + 8
    if model.scheme in RUN_SCHEMES:  # tidx holds the rows' events (rans._run_events)
        buf, lengths = _r._encode_events(*tidx, bool(model.split), model.freqs, starts, 2 * cap, model.prec)
        offsets = np.zeros(N + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        stream = np.zeros(int(offsets[-1]), dtype=np.uint8)
        _r._compact(buf, lengths, offsets, stream)
        return (stream,) + row_index(offsets)
    carry = carried_slots(model).astype(np.uint8)
    buf, lengths = _r._encode_rows(sym, tidx, model.slot_bits, carry, model.freqs, starts, cap, model.prec)
    offsets = np.zeros(N + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    stream = np.zeros(int(offsets[-1]), dtype=np.uint8)
    _r._compact(buf, lengths, offsets, stream)
    return (stream,) + row_index(offsets)


def row_index(offsets: np.ndarray):
    """``(block_off, row_off, off_bits)`` of rows starting at ``offsets[:-1]``."""
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
    return 8 * int(coded.block_off.shape[0]) + 8 * int(coded.row_off.shape[0])


def _starts(freqs: np.ndarray) -> np.ndarray:
    starts = np.zeros_like(freqs)
    np.cumsum(freqs[:, :-1], axis=1, out=starts[:, 1:])
    return starts


def build(model: EntropyModel, stream, ridx, off_bits: int, bases, layout, n_bases: int, codecs, dtype, id_bits: int,
          n_rows: int) -> EntropyCoded:
    """The decodable container: derives lookup tables, base codes and the kernels' packed parameters.

    ``ridx`` is section RIDX: the ``ceil(n_rows / BLOCK_ROWS) + 1`` block
    offsets, then the packed row offsets.
    """
    nblocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    block_off, row_off = ridx[:nblocks + 1], ridx[nblocks + 1:]
    starts = np.zeros(model.freqs.shape, dtype=np.int32)
    dtab = _r._decode_tables(model.freqs, starts, model.prec) if model.n_tables else np.zeros(1, dtype=np.uint32)
    widths = np.asarray(codecs.width, dtype=np.int64)
    d = widths.shape[0]
    col_start = np.concatenate(([0], np.cumsum(widths)[:-1])).astype(np.int64)
    bases = bases if bases.size else _EMPTY
    base_codes = _r._base_codes(bases, layout.base_runs, layout.base_bits, int(n_bases), col_start, widths)
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
        cp[:, _r.CP_DMASK] = model.col_dmask.view(np.int64)
        cp[:, _r.CP_DSHIFT] = model.col_dshift
        cp[:, _r.CP_KIND] = kind
        cp[:, _r.CP_OFFSET] = np.asarray(offset, dtype=np.uint64).view(np.int64)
        nb = 8 * np.dtype(out_dtype).itemsize
        meta = np.zeros(_r.MT_SIZE, dtype=np.int64)
        meta[[_r.MT_NROWS, _r.MT_OFFBITS, _r.MT_IDBITS, _r.MT_NBASES, _r.MT_IMAGE, _r.MT_FAST, _r.MT_BLOCK]] = (
            n_rows, off_bits, id_bits, n_bases, image, fast, BLOCK_ROWS)
        meta[_r.MT_E1], meta[_r.MT_E2] = model.e1, model.e2
        meta[_r.MT_PREC] = model.prec
        meta[_r.MT_LIMIT] = n_rows
        meta[_r.MT_RUN] = model.n_tables - _r.RUN_CONTEXTS - 1 if runs else -1
        meta[_r.MT_SPLIT] = split_slot(model)
        # every column an integer codec: 1 (code + offset), 2 (the code itself: all offsets 0)
        if (np.asarray(kind) == 0).all():
            meta[_r.MT_INT] = 2 if (np.asarray(offset, dtype=np.uint64) == 0).all() else 1
        meta[_r.MT_SIGN:_r.MT_FULL + 1] = np.array([1 << (nb - 1), (1 << nb) - 1], dtype=np.uint64).view(np.int64)
        return cp, meta

    cp, meta = pack(codecs.kind, codecs.offset, dtype if np.dtype(dtype).names is None else np.uint64)
    cp_codes, meta_codes = pack(0, 0, np.uint64)
    factor = np.ascontiguousarray(codecs.factor, dtype=np.float64)
    fp = _fast_slots(sp, model.col_dshift) if fast else np.zeros((0, _r.FP_WIDTH), dtype=np.int32)
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


_NO_IP = np.zeros(0, dtype=np.int64)
_NO_LEV = np.zeros((0, 0), dtype=np.uint8)
_NO_NZ = np.zeros((0, 0), dtype=np.uint64)


def _image_params(model: EntropyModel, base_codes: np.ndarray, offset):
    """``(ip, base_lev, base_nz)`` of the image decoder (:func:`gedenb.rans._decode_image_two`), or empty arrays.

    It applies to models of :data:`gedenb.rans.IMAGE_PREC` bits (a compile-time
    constant of the decoder) of single-channel images at most
    :data:`gedenb.rans.IMAGE_MAX_W` pixels wide with one digit per column whose slots all share one table
    group (the first table, 0) and one set of context radices, with contexts from the left, upper,
    upper-left and upper-right neighbours (any subset): the neighbours' levels
    are then read at fixed offsets of a padded level image instead of through
    per-slot references (see the notes above that function).
    """
    none = (_NO_IP, _NO_LEV, _NO_NZ)
    H, W, C = model.image_shape
    S = model.n_slots
    d = base_codes.shape[1]
    if C != 1 or W > _r.IMAGE_MAX_W or H > _r.IMAGE_MAX_H or S == 0 or (model.slot_table != 0).any() \
            or (model.shifts != 0).any() or model.prec != _r.IMAGE_PREC:
        return none
    col = model.slot_col
    y, x = col // W, col % W
    zero = S + d
    geo = [np.where(x > 0, S + col - 1, zero), np.where(y > 0, S + col - W, zero),
           np.where((y > 0) & (x > 0), S + col - W - 1, zero), np.where((y > 0) & (x < W - 1), S + col - W + 1, zero)]
    mult = _mults(model.nlev)
    m = np.zeros(4, dtype=np.int64)
    for k in range(4):
        used = model.nlev[:, k] > 1
        if used.any() != used.all() or (used.any() and ((model.refs[:, k] != geo[k]).any()
                                                         or (mult[:, k] != mult[0, k]).any())):
            return none
        m[k] = mult[0, k] if used.any() else 0
    # Mask rows: image row y is mask row my(y); split rows add a virtual row (mask row ``split``) holding the
    # base's row ``split - 1``, which the second chain's first row sees above it, so that both chains share
    # one level image and one set of masks.  The padded level image has a zero row on top: mask row r is
    # level row r + 1.
    sp = model.split
    rows = np.arange(H) + (np.arange(H) >= sp if sp else 0)  # my(y)
    src = np.concatenate([np.arange(sp), [sp - 1], np.arange(sp, H)]) if sp else np.arange(H)  # image row of each
    HM = src.size  # mask rows
    PW = W + 2
    nbuf = -(-(HM + 1) * PW // 8) * 8  # whole words: a row starts with a copy of words
    inner = ((np.arange(HM)[:, None] + 1) * PW + np.arange(W)[None, :] + 1)  # level positions of mask rows
    my = rows[y]
    smask = np.zeros(HM, dtype=np.int64)
    np.bitwise_or.at(smask, my, np.left_shift(1, x))
    head = np.zeros(_r.IP_HEAD, dtype=np.int64)
    head[[_r.IP_PW, _r.IP_MW, _r.IP_MN, _r.IP_MNW, _r.IP_MNE, _r.IP_S, _r.IP_D, _r.IP_NBUF, _r.IP_TABLE, _r.IP_H,
          _r.IP_W]] = (PW, *m, S, d, nbuf, model.slot_table[0], HM, W)
    slots = ((my + 1) * PW + x + 1) | (col << _r.SW_COL) | ((model.col_dshift[col] + 1) << _r.SW_SHIFT) \
        | (model.slot_bits << _r.SW_BITS) | (my << _r.SW_Y) | (x << _r.SW_X)
    head[_r.IP_SLOTS] = _r.IP_HEAD
    head[_r.IP_EDGE] = 1 << W
    head[_r.IP_SMASK] = _r.IP_HEAD + slots.size
    head[_r.IP_OFF] = _r.IP_HEAD + slots.size + HM
    off = np.broadcast_to(np.asarray(offset, dtype=np.uint64), (d,)).view(np.int64)
    ip = np.concatenate([head, slots.ravel(), smask, off])
    nz = (base_codes >= np.uint64(model.e1)).reshape(-1, H, W)[:, src]
    lev = nz.astype(np.uint8) + (base_codes >= np.uint64(model.e2)).reshape(-1, H, W)[:, src]
    base_lev = np.zeros((base_codes.shape[0], nbuf), dtype=np.uint8)
    base_lev[:, inner.ravel()] = lev.reshape(base_codes.shape[0], -1)
    weights = np.left_shift(np.uint64(1), np.arange(W, dtype=np.uint64))
    base_nz = (nz.astype(np.uint64) * weights).sum(axis=2, dtype=np.uint64)
    return ip, base_lev, np.ascontiguousarray(base_nz, dtype=np.uint64)


def _image_arena(ip, base_lev, base_nz, dtab, base_codes, ridx, n_blocks: int, s_split: int, values, codes):
    """The image decoder's one array: ``ip`` of :func:`_image_params` followed by the output parameters for
    values (``meta``, ``cp``, ``factor``) and codes (``meta``, ``cp``), the row index, base codes, base level
    masks, base level images and decode tables, all located in its header (read-only).  Returns it and its
    views of ``base_lev``, ``base_nz`` and ``dtab``, which replace those arrays."""
    meta, cp, factor = values
    meta_c, cp_c = codes

    def words(a):  # any array's bytes as int64 words (zero-padded)
        b = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        w = np.zeros((b.size + 7) // 8, dtype=np.int64)
        w.view(np.uint8)[:b.size] = b
        return w

    parts = {"ip": ip, _r.IP_META: meta, _r.IP_CP: cp.ravel(), _r.IP_FACTOR: words(np.asarray(factor, np.float64)),
             _r.IP_META_C: meta_c, _r.IP_CP_C: cp_c.ravel(), _r.IP_RIDX: words(np.asarray(ridx, np.uint64)),
             _r.IP_BCODES: words(base_codes), _r.IP_BNZ: words(base_nz), _r.IP_BLEV: words(base_lev),
             _r.IP_DTAB: words(dtab)}
    out = np.concatenate(list(parts.values()))
    pos = 0
    for key, part in parts.items():
        if key != "ip":
            out[key] = pos
        pos += part.size
    out[_r.IP_NBLOCKS] = n_blocks
    out[_r.IP_NRIDX] = ridx.shape[0]
    out[_r.IP_NDTAB] = dtab.shape[0]
    out[_r.IP_SPLIT] = s_split
    out[_r.IP_NB] = base_codes.shape[0]
    out.setflags(write=False)
    o = out[_r.IP_BLEV]
    lev = out[o:].view(np.uint8)[:base_lev.size].reshape(base_lev.shape)
    o = out[_r.IP_BNZ]
    nz = out[o:o + base_nz.size].view(np.uint64).reshape(base_nz.shape)
    o = out[_r.IP_DTAB]
    tab = out[o:].view(np.uint32)[:dtab.shape[0]]
    return out, lev, nz, tab


def coding_summary(coded: EntropyCoded) -> str:
    """One line for ``python -m gedenb info``."""
    m = coded.model
    names = {SCHEME_IMAGE: "4 neighbours", SCHEME_IMAGE_WN: "2 neighbours", SCHEME_IMAGE_FLAT: "no neighbours",
             SCHEME_IMAGE_RUNS: "4 neighbours, zero runs", SCHEME_IMAGE_WN_RUNS: "2 neighbours, zero runs"}
    scheme = (f"image {m.image_shape[0]}x{m.image_shape[1]}x{m.image_shape[2]}, {names[m.scheme]}"
              if m.scheme in IMAGE_SCHEMES else "table")
    uni = int((m.slot_table < 0).sum())
    return (f"entropy (rANS, {scheme} contexts): {m.n_slots} digits per row ({uni} raw), {m.n_tables} tables; "
            f"model {len(model_to_bytes(m, coded.off_bits)):,} B, row index {index_bytes(coded):,} B, "
            f"rows {coded.stream.shape[0]:,} B")


def check_image_shape(image_shape, d: int):
    """``(H, W, C)`` from ``(H, W)`` or ``(H, W, C)`` with ``H * W * C == d``, or None."""
    if image_shape is None:
        return None
    try:
        shape = tuple(int(v) for v in image_shape)
    except TypeError:
        raise TypeError(f"image_shape must be a tuple of ints, got {type(image_shape).__name__}") from None
    if len(shape) == 2:
        shape = shape + (1,)
    if len(shape) != 3 or min(shape) < 1 or shape[0] * shape[1] * shape[2] != d or max(shape) >= 1 << 32:
        raise ValueError(f"image_shape {tuple(image_shape)} must be (H, W) or (H, W, C) with H * W * C = d = {d}")
    return shape


def compress_deviations(codes: np.ndarray, codecs, base_mask, image_shape, bases, layout, n_bases: int, dtype,
                        costs=None):
    """Fit, encode and package the deviations of all rows (``coding="entropy"``).

    ``costs``: the context costs that :func:`greedy_base_selection` returned for these very codes (the table
    scheme then costs only the columns whose digits differ from its last step)."""
    costs = costs if image_shape is None else None
    model, sym, tidx, _counts = _fit(codes, codecs.width, base_mask, image_shape, costs=costs)
    stream, block_off, row_off, off_bits = encode(model, sym, tidx)
    return build(_frozen_model(model), stream, np.concatenate([block_off, row_off]), off_bits, bases, layout, n_bases,
                 codecs, dtype, ceil_log2(n_bases), codes.shape[0])


def coded_from_file(model_payload, ridx: np.ndarray, stream: np.ndarray, codecs, base_mask, d: int, n_rows: int,
                    bases, layout, n_bases: int, dtype, verify: bool) -> EntropyCoded:
    """Validate sections MODL, RIDX and ROWS of a file and build the decodable container.

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
        if (rel[::BLOCK_ROWS] != 0).any() or (ends - starts < _r.STATE_BYTES).any():
            raise FormatError("RIDX: a row's span is empty, shorter than a rANS state or out of order")
    elif verify and n_rows > nblocks:
        raise FormatError("RIDX: rows share a block but have no offsets")
    return build(model, stream, ridx, off_bits, bases, layout, n_bases, codecs, dtype, ceil_log2(n_bases), n_rows)


# --------------------------------------------------------------------------
# decoding
# --------------------------------------------------------------------------
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
            rows.shape[0] >= 2 * _r.GENERAL_BLOCK_ROWS and rows.shape[0] * coded.sp.shape[0] >= PARALLEL_MIN_DIGITS):
        bad = _r._decode_rows_parallel(*args)
    else:
        nlev = coded.sp.shape[0] + cp.shape[0] + 1
        scratch = (np.empty(cp.shape[0], dtype=np.uint64), np.zeros(nlev, np.int64), np.zeros(nlev, np.int32))
        key = (bits.dtype.num, flt.dtype.num, flt.ndim, rows.flags.writeable, factor.flags.writeable)
        bad = call_serial(_r._decode_rows_serial, key, *args, *scratch)
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
    args = (rows, coded.stream, ids if ids.size else _EMPTY, coded.ip, int(coded.meta[_r.MT_NROWS]), codes_only,
            bits, flt)
    _block, serial, parallel = _r.image_kernels(coded.ip, codes_only or coded.meta[_r.MT_INT] != 0)
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
    """
    if not coded.ip.size:
        raise ValueError("the image decoder does not apply to this store")
    n_rows = int(coded.meta[_r.MT_NROWS])
    limit = n_rows if n_public is None else int(n_public)
    if not 0 <= limit <= n_rows:
        raise ValueError(f"n_public={n_public} is not in [0, {n_rows}]")
    d = coded.cp.shape[0]
    dt = np.dtype(dtype)
    view = None if dt.kind == "u" else _storage_uint(dt)
    flt_is_out = dt.kind == "f" and dt.itemsize >= 4
    stream, ids, ip = coded.stream, ids if ids.size else _EMPTY, coded.ip
    _block, serial, parallel = _r.image_kernels(ip, coded.meta[_r.MT_INT] != 0)
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


# --------------------------------------------------------------------------
# the greedy base selection under the coded size (Eq. 1 generalised)
# --------------------------------------------------------------------------
def coded_size_bits(codes, widths, mask, n_b: int, n: int, m: int, s_params: int, image_shape=None, costs=None):
    """Estimated bits of the whole entropy-coded table under ``mask``:
    ``n_b l_b + (n + m) ceil(log2 n_b) + m ceil(log2 n) + S_params + estimate_bits``.

    ``costs``, a :class:`_ContextCosts` of ``codes``, keeps the table scheme's
    context costs between calls for the same codes (the same size, less work)."""
    model, _sym, _tidx, counts = _fit(codes, widths, mask, image_shape, counts_only=True, costs=costs)
    l_b = int(np.count_nonzero(mask))
    N = n + m
    return (n_b * l_b + N * ceil_log2(n_b) + m * ceil_log2(n) + s_params
            + estimate_bits(model, counts, N))


def greedy_base_selection(T, counts, entropy, codes, widths, n: int, m: int, tau: int, s_params: int,
                          image_shape=None):
    """Algorithm 1's greedy search, minimising the entropy-coded size instead of Eq. 1.

    The search of :func:`gedenb.greedy.greedy_search` (the one of
    :func:`gedenb.greedy.greedy_base_selection`: same order, increasing
    entropy, and plateau rule, ``tau``) with :func:`coded_size_bits` as the
    size of every candidate.  Stops before a base table of more than
    :data:`MAX_BASE_CODES` column codes.  A step moves one bit into the
    base, which changes the digits of one column: the table scheme's context
    costs of the other columns are kept (:class:`_ContextCosts`), so a step
    costs O(N d) kernel work and O(N) context costing.

    Parameters
    ----------
    T : (l_t, ceil((n + m) / 64)) uint64
        Transposed bits of the ``n + m`` rows.
    counts : (l_t,) int
        Their set-bit counts; constant positions start the base.
    entropy : (l_t,) float64
        Order key of the other positions (increasing).
    codes : (n + m, d) uint64
        The rows' column codes.
    widths : (d,) int
        Column widths.
    n, m : int
        Original and condensed rows.
    tau : int
        The plateau threshold.
    s_params : int
        ``S_params`` of the coded size.
    image_shape : tuple, optional
        The rows are images of this shape (the image scheme's size).

    Returns
    -------
    ``(base_mask, n_bases, labels, sizes, costs)``: those of the raw greedy and the context costs
    (:class:`_ContextCosts`, None for images), for :func:`compress_deviations` of the same codes.
    """
    from .greedy import greedy_search

    d = codes.shape[1]
    costs = _ContextCosts() if image_shape is None else None  # the columns' context costs, kept per step

    def coded(mask, n_bases, base_bits):
        return coded_size_bits(codes, widths, mask, n_bases, n, m, s_params, image_shape, costs)

    mask, n_b, labels, sizes = greedy_search(T, counts, entropy, n + m, tau, coded,
                                             MAX_BASE_CODES // d if d else None)
    return mask, n_b, labels, sizes, costs
