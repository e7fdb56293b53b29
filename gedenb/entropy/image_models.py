"""Image context models (schemes 1-5) and the image decoder.

All pixels share tables; the context of a pixel's top digit is the
quantised full code (3 levels: ``< e1``, ``< e2``, else, thresholds from
:func:`_image_thresholds`) of its left, upper, upper-left and upper-right
neighbours (81 contexts; fewer neighbours in schemes 2 and 3), as the
gradient contexts of JPEG-LS / CALIC; lower digits use three neighbours and
the top bit of the digit above (:func:`_image_layout`).  The zero-run
schemes (4, 5) code a run of zero digits as one symbol
(:func:`_run_events`) and may split every row into two rANS chains
(:func:`_balanced_split`, MODL version 2).

The image decoder (:func:`image_kernels`) serves single-channel images with
one digit per column: one parameter array ``ip`` (:func:`_image_params`,
:func:`_image_arena`) and kernels made per set of compile-time choices
(:func:`_make_image_kernels`, :func:`_make_image_two`).  Other image models
decode through the general row decoder of :mod:`gedenb.entropy.deviations`,
whose one-digit-per-column path is :func:`_fast_chain`.
"""

from __future__ import annotations

import threading

import numpy as np

from .._numba import borrowed, njit, pnjit, prange
from ..bits import _get_bits, _popcount
from ..encode import _store_value
from .coder import MAX_ALPHABET, RANS_L, STATE_BYTES, _renorm, _row_span
from .model import (
    _BASE_SCHEME, CP_DMASK, CP_KIND, CP_OFFSET, FP_BITS, FP_DSHIFT, FP_MULT, FP_REF, FP_ROWEND, FP_TABLE, FP_WSLOT,
    MT_BLOCK, MT_E1, MT_E2, MT_FULL, MT_IDBITS, MT_INT, MT_NROWS, MT_OFFBITS, MT_RUN, MT_SIGN, RUN_SCHEMES,
    SCHEME_IMAGE, SCHEME_IMAGE_FLAT, SCHEME_IMAGE_WN, _Z, EntropyModel, _count_chunks, _mults, _pdep, _sum_chunks,
)

__all__ = ["check_image_shape", "image_kernels"]


#: Precision of image-scheme models: their ~114 decode tables (4 B x 2**IMAGE_PREC entries each,
#: 0.47 MB instead of 1.9 MB at 12 bits) then stay in the L2 cache.  MNIST class 3, 1,024 random rows
#: (``scripts/entropy_read_speed.py --image-prec P``, alternating runs): 12 bits 410-417 MB/s, 10 bits
#: 469-500 MB/s for +1.1% bytes, 9 bits no faster than 10 for +5.7% bytes.
IMAGE_PREC = 10
IMAGE_M = 1 << IMAGE_PREC
#: Longest zero run one run symbol codes.
MAX_RUN = 255
#: Run-length tables, by the length of the flat stretch (capped).
RUN_CONTEXTS = 32


def check_image_shape(image_shape, d: int):
    """``(H, W, C)`` from ``(H, W)`` or ``(H, W, C)`` with ``H * W * C == d``, or None.

    Parameters
    ----------
    image_shape : tuple of int or None
    d : int
        Columns of the table.

    Returns
    -------
    tuple or None

    Raises
    ------
    TypeError, ValueError
        Not a tuple of ints, or not a shape of ``d`` values.
    """
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
        alphabet = np.append(alphabet, np.full(RUN_CONTEXTS + 1, MAX_RUN + 1, dtype=np.int64))
    return refs, shifts, nlev, slot_table, alphabet


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


@njit
def _fast_chain(s, s_end, x, p, lim, step, stream, codes, fp, cp, dtab, e1, e2, run_table, lv, msz, psh, mask):
    """Digits ``s..s_end-1`` of an image row with one digit per column (the ``fast`` path of
    :func:`gedenb.entropy.deviations._decode_row`), rANS state ``x``, reading bytes at ``p`` forwards
    (``step`` 1, bytes below ``lim``) or backwards (-1, bytes from ``lim`` on); ``(ok, x, p)``."""
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



@njit(inline="always")
def _decode_fast_row(stream, start, end, p, x, codes, fp, cp, dtab, e1, e2, run_table, lv, msz, psh, mask, s_split):
    """The digits of an image row with one digit per column (the ``fast`` path of
    :func:`gedenb.entropy.deviations._decode_row`), its state ``x`` read up to ``p``; False if corrupt.

    ``s_split >= 0`` (split rows): slots ``s_split..S-1`` are a second rANS chain, read backwards from the
    row's end, decoded first (their first image row sees the base levels of the row above, as the encoder
    had them).
    """
    S = fp.shape[0]
    lo = np.uint64(RANS_L)
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
        ok, xb, a_end = _fast_chain(s_split, S, xb, end - STATE_BYTES, p, -1, stream, codes, fp, cp, dtab, e1, e2,
                                    run_table, lv, msz, psh, mask)
        if not ok or xb != lo:
            return False
        s_stop = s_split
    ok, x, p = _fast_chain(0, s_stop, x, p, a_end, 1, stream, codes, fp, cp, dtab, e1, e2, run_table, lv, msz, psh,
                           mask)
    return ok and x == lo and p == a_end

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
_NO_IP = np.zeros(0, dtype=np.int64)
_NO_LEV = np.zeros((0, 0), dtype=np.uint8)
_NO_NZ = np.zeros((0, 0), dtype=np.uint64)


def _image_params(model: EntropyModel, base_codes: np.ndarray, offset):
    """``(ip, base_lev, base_nz)`` of the image decoder (:func:`_make_image_two`), or empty arrays.

    It applies to models of :data:`IMAGE_PREC` bits (a compile-time
    constant of the decoder) of single-channel images at most
    :data:`IMAGE_MAX_W` pixels wide with one digit per column whose slots all share one table
    group (the first table, 0) and one set of context radices, with contexts from the left, upper,
    upper-left and upper-right neighbours (any subset): the neighbours' levels
    are then read at fixed offsets of a padded level image instead of through
    per-slot references (see the notes above that function).
    """
    none = (_NO_IP, _NO_LEV, _NO_NZ)
    H, W, C = model.image_shape
    S = model.n_slots
    d = base_codes.shape[1]
    if C != 1 or W > IMAGE_MAX_W or H > IMAGE_MAX_H or S == 0 or (model.slot_table != 0).any() \
            or (model.shifts != 0).any() or model.prec != IMAGE_PREC:
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
    head = np.zeros(IP_HEAD, dtype=np.int64)
    head[[IP_PW, IP_MW, IP_MN, IP_MNW, IP_MNE, IP_S, IP_D, IP_NBUF, IP_TABLE, IP_H,
          IP_W]] = (PW, *m, S, d, nbuf, model.slot_table[0], HM, W)
    slots = ((my + 1) * PW + x + 1) | (col << SW_COL) | ((model.col_dshift[col] + 1) << SW_SHIFT) \
        | (model.slot_bits << SW_BITS) | (my << SW_Y) | (x << SW_X)
    head[IP_SLOTS] = IP_HEAD
    head[IP_EDGE] = 1 << W
    head[IP_SMASK] = IP_HEAD + slots.size
    head[IP_OFF] = IP_HEAD + slots.size + HM
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

    parts = {"ip": ip, IP_META: meta, IP_CP: cp.ravel(), IP_FACTOR: words(np.asarray(factor, np.float64)),
             IP_META_C: meta_c, IP_CP_C: cp_c.ravel(), IP_RIDX: words(np.asarray(ridx, np.uint64)),
             IP_BCODES: words(base_codes), IP_BNZ: words(base_nz), IP_BLEV: words(base_lev),
             IP_DTAB: words(dtab)}
    out = np.concatenate(list(parts.values()))
    pos = 0
    for key, part in parts.items():
        if key != "ip":
            out[key] = pos
        pos += part.size
    out[IP_NBLOCKS] = n_blocks
    out[IP_NRIDX] = ridx.shape[0]
    out[IP_NDTAB] = dtab.shape[0]
    out[IP_SPLIT] = s_split
    out[IP_NB] = base_codes.shape[0]
    out.setflags(write=False)
    o = out[IP_BLEV]
    lev = out[o:].view(np.uint8)[:base_lev.size].reshape(base_lev.shape)
    o = out[IP_BNZ]
    nz = out[o:o + base_nz.size].view(np.uint64).reshape(base_nz.shape)
    o = out[IP_DTAB]
    tab = out[o:].view(np.uint32)[:dtab.shape[0]]
    return out, lev, nz, tab


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
# of row ``split - 1``, which the lower part's first row sees above it (:func:`_image_params` lays the
# rows out; the slot words name them), so the loop keeps fewer pointers in registers and a row starts with one copy.
# Rows of one chain are decoded two rows at a time.  The event step is written twice (chain A, chain B), inline: as one
# helper for both it is three times slower (measured: the ``Not split:`` note of the kernel).  A corrupt chain never
# stops the loop early (bytes outside the stream read as zeros, an overlong run is cut to its stretch): it is caught by
# the final check, so the first bad row of a pair is the one reported.


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
        """Two rANS chains at a time (see :func:`_image_params` for the stores this decoder applies
        to; ``mo``, ``co``: offsets in ``ip`` of the output's ``meta`` and ``cp``).

        Split rows (``ip[IP_SPLIT] >= 0``): row ``rA`` into ``out[kA]``, its two chains (``rB``, ``kB`` unused).
        Otherwise row ``rA`` into ``out[kA]`` and, if ``kB >= 0``, row ``rB`` into ``out[kB]``.  Returns -1, or
        0 (1) if row A (B) is out of range or corrupt, A first.  Decodes the same events as
        :func:`gedenb.entropy.deviations._decode_row`.

        Not split: the event step written once, as an inline helper for both chains (the chain's direction a
        compile-time argument; with the state update and renormalisation, and the flat stretch, as helpers of
        their own), made this kernel 3.2 times slower.  MNIST class 3, median of 3 runs alternating with the
        unsplit kernel (and the code before the move to gedenb.entropy, in the same numbers as the unsplit
        kernel) on the shared 2-core machine: ``scripts/entropy_read_profile.py``, image kernels on one thread,
        1,024 rows in one call 2.36 us per row unsplit, 7.56 us split; one row per call 2.52 us, 7.76 us;
        ``scripts/entropy_read_speed.py`` one row 3.63 us, 9.48 us; 1,024 rows (parallel) best 1.20 ms,
        3.82 ms.
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
    """``(block, serial, parallel)`` kernels for the image store of parameters ``ip``, made the first time a
    store needs them.

    Split rows decoded into the output, the fastest case for a single row, have
    their context multipliers compiled in (the zero-run schemes have two sets:
    4 or 2 neighbours); others read them from ``ip`` (fewer kernels to compile).

    Parameters
    ----------
    ip : int64
        The image decoder's parameter array (:func:`_image_arena`).
    direct : bool
        The store's output values are its codes, plus offsets.

    Returns
    -------
    tuple
        The kernels of :func:`_make_image_kernels`.
    """
    split = bool(ip[IP_SPLIT] >= 0)
    direct = bool(direct) and split
    key = (split, direct, tuple(int(v) for v in ip[IP_MW:IP_MNE + 1]) if direct else None)
    kernels = _IMAGE_KERNELS.get(key)
    if kernels is None:
        with _IMAGE_KERNELS_LOCK:
            kernels = _IMAGE_KERNELS.get(key) or _make_image_kernels(*key)
            _IMAGE_KERNELS[key] = kernels
    return kernels
