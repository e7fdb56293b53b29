"""Wide entropy-coded tables (``coding="entropy"`` with thousands of columns).

The table scheme chooses every digit's context by the size it gives; the
greedy base search keeps the candidates' costs of the columns a step does
not change (``coding._ContextCosts``) and the costs come from one kernel
for all slots (``table_models._context_costs``).  These tests check that the costs
are exactly those of the dense definition (``_quantise``, ``_code_bits``,
``_table_bits``), that kept costs give the very sizes of fresh ones, that
wide tables round-trip bit for bit, and that the work grows linearly with
the number of columns (a count of costed slots, not a time).
"""

from __future__ import annotations

import numpy as np
import pytest

import gedenb
from gedenb.entropy import coder as _coder
from gedenb.entropy import deviations as _deviations
from gedenb.entropy import fitting as _fitting
from gedenb.entropy import model as _model
from gedenb.entropy import table_models as _table_models


# --------------------------------------------------------------------------
# oracles: the definitions, one slot and one candidate at a time
# --------------------------------------------------------------------------
def _sources(slot_col, slot_tix):
    """Per slot: the digit above, then the first digits of the two previous columns with digits."""
    first = {}
    for s, j in enumerate(slot_col.tolist()):
        first.setdefault(j, s)
    order = list(first)
    out = []
    for s, j in enumerate(slot_col.tolist()):
        src = [s - 1] if slot_tix[s] > 0 else []
        pos = order.index(j)
        src += [first[jj] for jj in order[max(0, pos - 2):pos][::-1]]
        out.append(src)
    return out


def _candidates(src, bits):
    """``(references, shifts)`` of every candidate context of a slot, in the order they are tried."""
    cands = [((), ())]
    for r in src:
        cands += [((r,), (bits[r] - lv,)) for lv in (1, 2, 3, 4) if lv <= bits[r]]
    if len(src) >= 2:
        r0, r1 = src[0], src[1]
        cands += [((r0, r1), (bits[r0] - l0, bits[r1] - l1)) for l0, l1 in ((2, 2), (3, 2), (4, 2), (2, 3))
                  if l0 <= bits[r0] and l1 <= bits[r1]]
    return cands


def _dense_cost(sym, s, refs, shifts, bits, prec=_model.PREC):
    """Coded bits of slot ``s`` under one context: dense counts, :func:`coder._quantise`, code and table bits."""
    ctx = np.zeros(sym.shape[0], dtype=np.int64)
    nctx = 1
    for r, sh in zip(refs, shifts):
        radix = (((1 << bits[r]) - 1) >> sh) + 1
        ctx = ctx * radix + (sym[:, r].astype(np.int64) >> sh)
        nctx *= radix
    A = 1 << bits[s]
    counts = np.zeros((nctx, A), dtype=np.int64)
    np.add.at(counts, (ctx, sym[:, s].astype(np.int64)), 1)
    freqs = _coder._quantise(counts, prec)
    return _coder._code_bits(counts, freqs, prec) + _coder._table_bits(freqs, np.full(nctx, A, dtype=np.int64)), nctx


def _skewed_symbols(rng, N, slot_bits):
    sym = np.zeros((N, slot_bits.shape[0]), dtype=np.uint8)
    for s, b in enumerate(slot_bits.tolist()):
        A = 1 << b
        p = rng.dirichlet(np.full(A, rng.choice([0.05, 0.5, 5.0])))
        sym[:, s] = rng.choice(A, size=N, p=p)
    return sym


def _wide_floats(n, d, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).round(3)


# --------------------------------------------------------------------------
# the kernels against the definitions
# --------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_context_costs_equal_the_dense_definition(seed):
    rng = np.random.default_rng(seed)
    N = int(rng.integers(1, 1500))
    dw = rng.choice([0, 1, 2, 3, 5, 8, 9, 13, 20], size=int(rng.integers(1, 8)))
    slot_col, slot_bits, _low, _last, slot_tix = _model._slots(dw)
    sym = _skewed_symbols(rng, N, slot_bits)
    src = _table_models._context_sources(slot_col, slot_tix)
    assert [list(row[row >= 0]) for row in src] == _sources(slot_col, slot_tix)
    costs = _table_models._context_costs(sym, np.arange(slot_col.shape[0], dtype=np.int64), src, slot_bits, _model.PREC)
    bits = slot_bits.tolist()
    for s, sources in enumerate(_sources(slot_col, slot_tix)):
        want = [_dense_cost(sym, s, rr, ss, bits)[0] for rr, ss in _candidates(sources, bits)]
        got = costs[s][np.isfinite(costs[s])]
        assert got.tolist() == want  # the same floats, bit for bit


def test_context_costs_when_quantising_takes_from_the_largest():
    """255 singletons among 5,000 symbols each round up to frequency 1: the table sums past 2**12 and the
    largest frequency gives back the excess (the ``diff < 0`` branch of :func:`coder._quantise`)."""
    N = 5000
    sym = np.zeros((N, 2), dtype=np.uint8)
    sym[:255, 1] = np.arange(1, 256)
    sym[:, 0] = np.random.default_rng(0).integers(0, 4, N)
    slot_col, slot_bits, _low, _last, slot_tix = _model._slots(np.array([2, 8]))
    counts = np.bincount(sym[:, 1], minlength=256)[None, :]
    assert _coder._quantise(counts, _model.PREC).sum() == 1 << _model.PREC
    assert sum(max(1, (int(c) * (1 << _model.PREC) + N // 2) // N) for c in counts[0] if c) > 1 << _model.PREC
    src = _table_models._context_sources(slot_col, slot_tix)
    costs = _table_models._context_costs(sym, np.arange(2, dtype=np.int64), src, slot_bits, _model.PREC)
    bits = slot_bits.tolist()
    want = [_dense_cost(sym, 1, rr, ss, bits)[0] for rr, ss in _candidates(_sources(slot_col, slot_tix)[1], bits)]
    assert costs[1][np.isfinite(costs[1])].tolist() == want


@pytest.mark.parametrize("budget", [1, 7, 40, _model.MAX_TABLES])
def test_context_choice_follows_the_definition(budget):
    """Per slot, in order: the cheapest candidate below the raw bits that fits the tables left (first of equal)."""
    rng = np.random.default_rng(budget)
    N = 300
    slot_col, slot_bits, _low, _last, slot_tix = _model._slots(np.array([4, 13, 6, 0, 9, 16, 3]))
    sym = _skewed_symbols(rng, N, slot_bits)
    uniform, nref, ref, shift = _table_models._choose_table_contexts(sym, slot_col, slot_bits, slot_tix, budget)
    bits = slot_bits.tolist()
    left = budget
    for s, sources in enumerate(_sources(slot_col, slot_tix)):
        best, pick = float(N * bits[s]), None
        for rr, ss in _candidates(sources, bits):
            cost, nctx = _dense_cost(sym, s, rr, ss, bits)
            if nctx <= left and cost < best:
                best, pick = cost, (rr, ss, nctx)
        assert bool(uniform[s]) == (pick is None)
        if pick is not None:
            rr, ss, nctx = pick
            left -= nctx
            assert nref[s] == len(rr)
            assert ref[s, :len(rr)].tolist() == list(rr) and shift[s, :len(rr)].tolist() == list(ss)
        assert (ref[s, nref[s]:] == 0).all() and (shift[s, nref[s]:] == 0).all()


def test_column_masks_and_slots_follow_the_definition():
    rng = np.random.default_rng(3)
    for _ in range(300):
        widths = rng.choice([0, 1, 2, 7, 8, 9, 13, 63, 64], size=int(rng.integers(0, 7)))
        mask = rng.random(int(widths.sum())) < rng.choice([0.0, 0.2, 0.7, 1.0])
        dmask, dshift, dw = _model._column_masks(widths, mask)
        start = 0
        for j, w in enumerate(widths.tolist()):
            m = sum(1 << (w - 1 - p) for p in range(w) if not mask[start + p])
            start += w
            cnt = bin(m).count("1")
            assert int(dmask[j]) == m and dw[j] == cnt
            low = (m & -m).bit_length() - 1
            assert dshift[j] == (low if m and m >> low == (1 << cnt) - 1 else -1)
        col, bits, lowshift, last, tix = _model._slots(dw)
        want = [(j, w - 8 * (nd - 1) if t == 0 else 8, 8 * (nd - 1 - t), int(t == nd - 1), t)
                for j, w in enumerate(dw.tolist()) if w for nd in [(w + 7) // 8] for t in range(nd)]
        assert list(zip(col.tolist(), bits.tolist(), lowshift.tolist(), last.tolist(), tix.tolist())) == want


def test_table_counts_equal_row_contexts():
    X = _wide_floats(300, 40, seed=1)
    c = gedenb.compress(X, coding="entropy")
    codes = gedenb.encode.encode_columns(X, c.codecs, check=False).astype(np.uint64)
    model, sym, _tidx, _counts = _fitting.fit(codes, c.widths, np.zeros(int(c.widths.sum()), dtype=bool))
    args = (sym, model.slot_table, model.refs, model.shifts, model.nlev)
    assert model.n_tables > 0
    np.testing.assert_array_equal(_table_models._table_counts(*args, model.n_tables),
                                  _model._row_contexts(codes, *args, False, np.uint64(0), np.uint64(0),
                                                   model.n_tables)[1])


def test_kept_costs_give_the_sizes_of_fresh_ones():
    """Every greedy step's size with the costs kept from the step before equals a fresh fit's, to the bit."""
    X = _wide_floats(60, 120, seed=2)
    c = gedenb.compress(X, coding="entropy")
    codes = np.ascontiguousarray(gedenb.encode.encode_columns(X, c.codecs, check=False), dtype=np.uint64)
    rng = np.random.default_rng(0)
    order = rng.permutation(int(c.widths.sum()))
    mask = np.zeros(order.shape[0], dtype=bool)
    costs = _table_models._ContextCosts()
    for k in order[:150].tolist():
        mask[k] = True
        kept = _fitting.coded_size_bits(codes, c.widths, mask, 1, 60, 0, 0, costs=costs)
        assert kept == _fitting.coded_size_bits(codes, c.widths, mask, 1, 60, 0, 0)


def test_the_greedy_costs_handed_to_the_final_fit_give_the_same_file(monkeypatch):
    """compress passes the context costs of the greedy search to compress_deviations; without them (a fresh
    costing of every slot) the file is the same, byte for byte."""
    from gedenb.store import to_bytes

    X = _wide_floats(60, 120, seed=3)
    with_costs = to_bytes(gedenb.compress(X, coding="entropy"))
    real = _deviations.compress_deviations
    monkeypatch.setattr(_deviations, "compress_deviations", lambda *a: real(*a[:8]))  # drop the costs
    assert to_bytes(gedenb.compress(X, coding="entropy")) == with_costs


# --------------------------------------------------------------------------
# wide tables: round trips and linear work
# --------------------------------------------------------------------------
def _round_trip(X, tmp_path):
    c = gedenb.compress(X, coding="entropy")
    assert c.coding == "entropy"
    assert gedenb.decompress(c).tobytes() == X.tobytes()
    path = tmp_path / "wide.gede"
    gedenb.save(c, path)
    rows = np.random.default_rng(0).choice(X.shape[0], size=min(17, X.shape[0]), replace=False).astype(np.int64)
    with gedenb.open(path) as r:
        assert r.read_rows(rows).tobytes() == X[rows].tobytes()
        assert r.read_rows(np.arange(X.shape[0], dtype=np.int64)).tobytes() == X.tobytes()
    return c


def test_wide_float_table_round_trips(tmp_path):
    X = _wide_floats(40, 2500)
    c = _round_trip(X, tmp_path)
    assert c.coded.model.n_tables > 0  # contexts were chosen, not only raw digits


def test_wide_small_int_table_round_trips(tmp_path):
    X = np.random.default_rng(1).integers(0, 16, size=(200, 10000))
    X[:, ::7] = X[:, 1::7][:, :X[:, ::7].shape[1]] // 4  # some columns that their neighbours predict
    _round_trip(X, tmp_path)


def test_compress_work_is_linear_in_columns():
    """Digit slots costed per entropy-coded compress: about one pass over the slots, not one per greedy step."""
    work = {}
    for d in (500, 1000):
        X = _wide_floats(40, d)
        before = _table_models._WORK["context_slots"]
        c = gedenb.compress(X, coding="entropy")
        work[d] = _table_models._WORK["context_slots"] - before
        steps = len(c.greedy_sizes)
        slots = int(((c.widths + 7) // 8).sum())  # at most as many digits per row under any mask
        assert steps >= 20  # the greedy ran many steps: costing every slot at each would be ~steps * slots
        assert work[d] <= slots + 3 * 8 * (steps + 1)  # one pass, then a few columns per step
    assert work[1000] / work[500] <= 2.2


def test_ratio_screen_decides_as_the_full_share():
    """The ratio screen stops once a column cannot reach the share: it decides as the share over all rows."""
    from gedenb import datasets
    from gedenb.entropy import predict as _predict

    X = datasets.california_housing().data[:400]
    rng = np.random.default_rng(0)
    near = rng.integers(0, 50, size=(400, 2)) / 7.0
    near[::20, 1] = rng.random(20)  # ratios on 95% of the rows, and on 83%: on either side of the share
    near[::6, 0] = rng.random(67)
    X = np.concatenate([X, rng.normal(size=(400, 3)), near], axis=1)
    codecs = gedenb.encode.fit_codecs(X, "narrow")
    codes = np.ascontiguousarray(gedenb.encode.encode_columns(X, codecs, check=False), dtype=np.uint64)
    groups = [[j] for j in range(X.shape[1])] + [[2, 3, 5], [2, 3, 4], [X.shape[1] - 2, X.shape[1] - 1]]
    for rows in (codes, codes[:37], codes[:1]):
        rows = np.ascontiguousarray(rows)
        for cols in groups:
            p = _predict._empty(0, 0, rat_cols=np.asarray(cols, np.int64), rat_start=np.array([0, len(cols)]),
                                rat_hbits=np.array([_predict.RATIO_BITS]))
            hs = _predict._ratio_forward(rows.copy(), np.asarray(codecs.offset, np.uint64),
                                         np.asarray(codecs.width, np.int64), p.rat_cols, p.rat_start, p.rat_hbits)
            full = float(np.mean(hs[:, 0] > 0))
            got = _predict._ratio_share(rows, codecs, cols)
            assert (got >= _predict.RATIO_MIN_SHARE) == (full >= _predict.RATIO_MIN_SHARE)
            assert got == full or got < _predict.RATIO_MIN_SHARE
