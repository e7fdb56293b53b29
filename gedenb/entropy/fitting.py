"""Fitting a coding model, its estimated size, and the greedy base selection under that size.

:func:`fit` builds the model of either scheme (for images the smallest of
the image schemes and raw digits) and :func:`estimate_bits` the size it
gives, which the greedy base selection (:func:`greedy_base_selection`, the
entropy generalisation of Eq. 1) minimises.
"""

from __future__ import annotations

import numpy as np

from ..greedy import greedy_search
from ..layout import ceil_log2
from . import image_models as _im
from .coder import BLOCK_ROWS, MAX_ALPHABET, STATE_BYTES, _code_bits, _events_histogram, _histogram, _quantise
from .image_models import RUN_CONTEXTS, _balanced_split, _image_layout, _image_thresholds, _run_events
from .model import (
    IMAGE_SCHEMES, MAX_BASE_CODES, MAX_TABLES, PREC, RUN_SCHEMES, SCHEME_TABLE, EntropyModel, carried_slots,
    _column_masks, _fast_slots, _pack_slots, _row_contexts, _row_symbols, _slots, _split_slot,
)
from .serial import model_to_bytes
from .table_models import _ContextCosts, _choose_table_contexts, _table_alphabet, _table_counts, _table_slot_refs

__all__ = ["coded_size_bits", "estimate_bits", "fit", "greedy_base_selection"]


#: Average bytes a row's rANS stream costs beyond its symbols' information
#: (the 4-byte flushed state minus the 23 bits it starts with, plus rounding).
ROW_OVERHEAD_BYTES = 3.5


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
        sym = _row_symbols(codes, slot_col, slot_low, slot_bits, dmask, dshift)
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
    prec = _im.IMAGE_PREC if image else PREC
    count = counts_only and T > 0  # the kernels count symbols per table without per-row arrays
    if scheme in RUN_SCHEMES:  # the events of every row: run lengths and the digits outside runs
        sp = _pack_slots(slot_col, slot_bits, slot_last, slot_table, refs, shifts, nlev, slot_low,
                         np.zeros(S, dtype=bool), shape, True)
        base = codes & ~dmask[None, :]
        ev_t, ev_s, ev_n, ev_b, counts = _run_events(codes, base, sym, _fast_slots(sp, dshift),
                                                        T - RUN_CONTEXTS - 1, np.uint64(e1), np.uint64(e2),
                                                        T if count else 0, _split_slot(slot_col, shape, split))
        tidx = None if count else (ev_t, ev_s, ev_n, ev_b)
        if not count:
            counts = _events_histogram(ev_t, ev_s, ev_n, T, MAX_ALPHABET)
        freqs = _quantise(counts, prec)
        model = EntropyModel(scheme, shape, int(e1), int(e2), slot_col, slot_bits, slot_low, slot_last, slot_table,
                             refs, shifts, nlev, alphabet, freqs, dmask, dshift, prec, split)
        return model, sym, None if counts_only else tidx, counts
    if S and count and not image:
        tidx, counts = None, _table_counts(sym, slot_table, refs, shifts, nlev, T)
    elif S and count:
        tidx, counts = None, _row_contexts(codes, sym, slot_table, refs, shifts, nlev, image, np.uint64(e1),
                                              np.uint64(e2), T)[1]
    else:
        tidx = _row_contexts(codes, sym, slot_table, refs, shifts, nlev, image, np.uint64(e1), np.uint64(e2),
                                0)[0] if S else np.zeros((codes.shape[0], 0), dtype=np.int32)
        counts = _histogram(tidx, sym, T, MAX_ALPHABET)
    freqs = _quantise(counts, prec)
    model = EntropyModel(scheme, shape, int(e1), int(e2), slot_col, slot_bits, slot_low, slot_last, slot_table,
                         refs, shifts, nlev, alphabet, freqs, dmask, dshift, prec)
    return model, sym, None if counts_only else tidx, counts


def estimate_bits(model: EntropyModel, counts: np.ndarray, n_rows: int) -> float:
    """Estimated bits of section MODL + RIDX + ROWS for ``n_rows`` rows with symbol ``counts``.

    Symbols cost their ideal rANS length under the quantised frequencies,
    uniform digits their bits; each row adds :data:`ROW_OVERHEAD_BYTES`
    (flushed state, byte rounding) per rANS chain (two for split rows); the
    index is estimated from the mean row length; the model is counted exactly.

    Parameters
    ----------
    model : EntropyModel
    counts : (T, 256) int64
        Symbol counts per table (what :func:`fit` returns with the model).
    n_rows : int

    Returns
    -------
    float
    """
    chains = 2 if model.split else 1
    code = float(_code_bits(counts, model.freqs, model.prec))
    carry = carried_slots(model)
    uni = (model.slot_table < 0) & ~carry
    code += float(n_rows) * float(model.slot_bits[uni].sum())
    # carried bits fill the initial state, whose 23 bits of L were wasted before
    carried = int(model.slot_bits[carry].sum())
    row_bytes = (code + n_rows * max(0, carried - 23)) / 8 + ROW_OVERHEAD_BYTES * chains * n_rows
    row_bytes = max(row_bytes, float(STATE_BYTES) * chains * n_rows)  # no row is shorter than its flushed states
    mean = row_bytes / max(n_rows, 1)
    off_bits = ceil_log2(int(mean * (BLOCK_ROWS - 1) * 1.25) + 1)
    nblocks = (n_rows + BLOCK_ROWS - 1) // BLOCK_ROWS
    index = 8 * (nblocks + 1) + 8 * ((n_rows * off_bits + 63) // 64)
    model_bytes = len(model_to_bytes(model, off_bits))
    return 8.0 * (row_bytes + index + model_bytes)


def coded_size_bits(codes, widths, mask, n_b: int, n: int, m: int, s_params: int, image_shape=None, costs=None):
    """Estimated bits of the whole entropy-coded table under ``mask``:
    ``n_b l_b + (n + m) ceil(log2 n_b) + m ceil(log2 n) + S_params + estimate_bits``.

    Parameters
    ----------
    codes : (n + m, d) uint64
        Column codes of every row.
    widths : (d,) int
    mask : (l_t,) bool
        The base mask.
    n_b : int
        Bases under ``mask``.
    n, m : int
        Original rows and condensed samples.
    s_params : int
        Bits of the codecs and other parameters.
    image_shape : (H, W, C), optional
        Use the image schemes.
    costs : _ContextCosts, optional
        A :class:`_ContextCosts` of ``codes``: keeps the table scheme's
        context costs between calls for the same codes (the same size, less work).

    Returns
    -------
    int or float
    """
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
    size of every candidate.  Stops before a base table of more
    than :data:`MAX_BASE_CODES` column codes.  A step moves one bit into the
    base, which changes the digits of one column: the table scheme's context
    costs of the other columns are kept (:class:`_ContextCosts`), so a step
    costs O(N d) kernel work and O(N) context costing.

    Parameters
    ----------
    T : (l_t, ceil((n + m) / 64)) uint64
        Transposed bits of the ``n + m`` rows being compressed.
    counts : (l_t,) int
        Set-bit counts over those rows; constant positions start the base.
    entropy : (l_t,) float64
        Order key: remaining positions are tried by increasing entropy
        (ties: lower position first).
    codes : (n + m, d) uint64
        Column codes of those rows.
    widths : (d,) int
    n, m, tau, s_params
        As in Eq. 1; ``tau`` is the plateau threshold.
    image_shape : (H, W, C), optional
        Cost candidates under the image schemes.

    Returns
    -------
    tuple
        ``(base_mask, n_bases, labels, sizes, costs)``: those of the raw greedy and the context costs
        (:class:`_ContextCosts`, None for images), for :func:`gedenb.entropy.deviations.compress_deviations`
        of the same codes.
    """
    d = codes.shape[1]
    costs = _ContextCosts() if image_shape is None else None  # the columns' context costs, kept per step

    def coded(mask, n_bases, base_bits):
        return coded_size_bits(codes, widths, mask, n_bases, n, m, s_params, image_shape, costs)

    mask, n_b, labels, sizes = greedy_search(T, counts, entropy, n + m, tau, coded,
                                             MAX_BASE_CODES // d if d else None)
    return mask, n_b, labels, sizes, costs
