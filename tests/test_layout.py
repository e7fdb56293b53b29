"""gedenb.layout: bases table, fixed-width records and random-access decoding."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gedenb import layout as L
from gedenb.bits import pack_codes
from gedenb.encode import encode_columns, fit_codecs
from gedenb.errors import FormatError
import naive


def int_table(rng, n, dtype=np.int16):
    """Columns of width 0 (constant), 1, 3, full width, and a few-valued one."""
    info = np.iinfo(dtype)
    cols = [
        np.full(n, 7, dtype=dtype),
        rng.integers(0, 2, n).astype(dtype),
        rng.integers(-4, 4, n).astype(dtype),
        np.resize(np.array([info.min, info.max, 0, -1 if info.min < 0 else 1], dtype=dtype), n),
        rng.choice(np.array([10, 20, 30], dtype=dtype), n),
        rng.integers(0, 1000, n).astype(dtype),
    ]
    return np.stack(cols, axis=1)[rng.permutation(n)]


def uint64_table(rng, n):
    cols = [
        rng.integers(0, 2**64 - 1, size=n, endpoint=True, dtype=np.uint64),
        np.resize(np.array([0, 2**64 - 1, 2**63], dtype=np.uint64), n),
        np.full(n, 2**64 - 1, dtype=np.uint64),
        rng.integers(0, 2**40, size=n, dtype=np.uint64) | np.uint64(1 << 63),
    ]
    return np.stack(cols, axis=1)


def float_table(rng, n, dtype=np.float64):
    """IEEE (specials), DEC, BIN and constant columns."""
    dtype = np.dtype(dtype)
    nb = 8 * dtype.itemsize
    u = np.dtype(f"u{dtype.itemsize}")
    special = np.array([np.nan, -np.inf, np.inf, -0.0, 0.0, 1e-300 if nb == 64 else 1e-40, -2.5], dtype=dtype)
    cols = [
        rng.choice(special, n),
        (rng.integers(-5000, 5000, n) / 100.0).astype(dtype) + np.zeros((), dtype),
        (rng.integers(-5000, 5000, n) / 64.0).astype(dtype),
        np.full(n, 3.25, dtype=dtype),
        rng.integers(0, (1 << nb) - 1, size=n, endpoint=True, dtype=np.uint64).astype(u).view(dtype),
    ]
    return np.stack(cols, axis=1)


def random_mask(rng, l_t, kind):
    if kind == "none":
        return np.zeros(l_t, dtype=bool)
    if kind == "all":
        return np.ones(l_t, dtype=bool)
    if kind == "runs":  # long runs (> 64) of base and deviation bits
        mask = np.zeros(l_t, dtype=bool)
        p = 0
        flag = bool(rng.integers(0, 2))
        while p < l_t:
            ln = int(rng.integers(1, 150))
            mask[p:p + ln] = flag
            flag = not flag
            p += ln
        return mask
    return rng.random(l_t) < float(kind)


def build(X, mask_kind, rng):
    codecs = fit_codecs(X)
    widths = codecs.width
    codes = encode_columns(X, codecs)
    words = pack_codes(codes, widths)
    bitmat = naive.bits_matrix(codes, widths)
    l_t = int(widths.sum())
    mask = random_mask(rng, l_t, mask_kind)
    labels, n_b = naive.groups(bitmat, np.flatnonzero(mask))
    lay = L.make_layout(widths, mask, n_b)
    first = np.array([int(np.flatnonzero(labels == g)[0]) for g in range(n_b)], dtype=np.int64)
    bases = L.gather_records(words, first, first, 0, lay.base_runs)
    n = X.shape[0]
    records = L.gather_records(words, np.arange(n, dtype=np.int64), labels, lay.id_bits, lay.dev_runs)
    for arr in (bases, records, *codecs):  # read-only, as gedenb.compress leaves them (shares compiled kernels)
        arr.setflags(write=False)
    return dict(codecs=codecs, codes=codes, words=words, bitmat=bitmat, mask=mask, labels=labels, n_b=n_b,
                layout=lay, bases=bases, records=records)


def decode(b, rows, dtype):
    rows = np.asarray(rows, dtype=np.int64)
    return L.decode_rows(b["records"], b["bases"], b["layout"], b["codecs"], rows, dtype, n_bases=b["n_b"])


def same_bytes(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    u = np.uint8 if a.dtype == np.bool_ else np.dtype(f"u{a.dtype.itemsize}")
    np.testing.assert_array_equal(np.ascontiguousarray(a).view(u), np.ascontiguousarray(b).view(u))


def check_layout_structure(lay, widths, mask, n_b):
    l_t = int(np.sum(widths))
    np.testing.assert_array_equal(lay.base_positions, np.flatnonzero(mask))
    np.testing.assert_array_equal(lay.dev_positions, np.flatnonzero(~mask))
    assert lay.id_bits == naive.ceil_log2(n_b)
    assert lay.base_bits == mask.sum()
    assert lay.record_bits == lay.id_bits + l_t - mask.sum()
    for runs, pos in ((lay.base_runs, lay.base_positions), (lay.dev_runs, lay.dev_positions)):
        assert runs.ndim == 2 and runs.shape[1] == 2
        covered = [p for start, ln in runs.tolist() for p in range(start, start + ln)]
        assert covered == pos.tolist()
        assert all(1 <= ln <= 64 for _, ln in runs.tolist())
        for (s0, l0), (s1, _) in zip(runs.tolist(), runs.tolist()[1:]):
            assert s0 + l0 < s1 or l0 == 64, "runs must be maximal (split only at 64 bits)"
    plan = L.piece_plan(widths, mask, lay.id_bits)
    assert plan.ptr.shape == (len(widths) + 1,) and plan.ptr[0] == 0


def decode_with_pieces(plan, widths, base_str, rec_str):
    """Column codes of one row from its base and record bit strings, via the piece plan."""
    out = []
    for j in range(len(widths)):
        code = 0
        total = 0
        for t in range(plan.ptr[j], plan.ptr[j + 1]):
            s = base_str if plan.stream[t] == 0 else rec_str
            src, ln, sh = int(plan.src[t]), int(plan.length[t]), int(plan.shift[t])
            code |= int(s[src:src + ln], 2) << sh
            total += ln
        assert total == widths[j]
        out.append(code)
    return out


TABLES = {
    "int16": lambda rng, n: int_table(rng, n, np.int16),
    "uint64": uint64_table,
    "float64": float_table,
    "float32": lambda rng, n: float_table(rng, n, np.float32),
}


@pytest.fixture(params=["serial", "parallel"])
def decode_path(request, monkeypatch):
    """Run decode_rows through its serial and its parallel kernel."""
    monkeypatch.setattr(L, "PARALLEL_MIN_VALUES", 10**12 if request.param == "serial" else 1)
    return request.param


def check_streams_and_decode(rng, table, mask_kind, sizes=(1, 64, 65, 129)):
    for n in sizes:
        X = TABLES[table](rng, n)
        b = build(X, mask_kind, rng)
        lay, codecs = b["layout"], b["codecs"]
        check_layout_structure(lay, codecs.width, b["mask"], b["n_b"])
        want_bases, want_records = naive.record_strings(b["bitmat"], b["mask"], b["labels"], b["n_b"])
        np.testing.assert_array_equal(b["bases"], want_bases)
        np.testing.assert_array_equal(b["records"], want_records)
        assert b["records"].size == (n * lay.record_bits + 63) // 64
        assert b["bases"].size == (b["n_b"] * lay.base_bits + 63) // 64
        same_bytes(decode(b, np.arange(n), X.dtype), X)
        for _ in range(3):
            rows = rng.integers(0, n, size=int(rng.integers(1, 2 * n + 2)))
            same_bytes(decode(b, rows, X.dtype), X[rows])
        rows = np.array([n - 1, 0, n - 1, n // 2, 0])
        same_bytes(decode(b, rows, X.dtype), X[rows])
        empty = decode(b, np.zeros(0, np.int64), X.dtype)
        assert empty.shape == (0, X.shape[1]) and empty.dtype == X.dtype


MASKS = ["none", "all", "0.5", "runs"]


@pytest.mark.parametrize("table", list(TABLES))
@pytest.mark.parametrize("mask_kind", MASKS)
def test_streams_and_decode(rng, table, mask_kind, monkeypatch):
    monkeypatch.setattr(L, "PARALLEL_MIN_VALUES", 10**12)  # serial kernel
    check_streams_and_decode(rng, table, mask_kind)


@pytest.mark.parametrize("mask_kind", ["0.1", "0.5", "0.9", "runs"])
def test_streams_and_decode_parallel_kernel(rng, mask_kind, monkeypatch):
    # (masks with empty streams only add compile-time variants of the same kernel)
    monkeypatch.setattr(L, "PARALLEL_MIN_VALUES", 1)  # parallel kernel, 64-row blocks
    check_streams_and_decode(rng, "float64", mask_kind, sizes=(2, 63, 64, 65, 129, 200))


@pytest.mark.parametrize("mask_kind", ["none", "all", "0.3", "runs"])
def test_piece_plan_reassembles_codes(rng, mask_kind):
    X = int_table(rng, 70)
    b = build(X, mask_kind, rng)
    lay, widths = b["layout"], b["codecs"].width
    bpos, dpos = lay.base_positions, lay.dev_positions
    mask = np.zeros(int(np.sum(widths)), dtype=bool)
    mask[bpos] = True
    plan = L.piece_plan(widths, mask, lay.id_bits)
    for i in range(X.shape[0]):
        row = b["bitmat"][i]
        base_str = "".join(str(int(v)) for v in row[bpos])
        rec_str = naive.code_bits(b["labels"][i], lay.id_bits) + "".join(str(int(v)) for v in row[dpos])
        assert decode_with_pieces(plan, widths, base_str, rec_str) == [int(v) for v in b["codes"][i]]


def test_gather_records_arbitrary_rows_and_ids(rng):
    X = uint64_table(rng, 100)
    b = build(X, "0.5", rng)
    lay = b["layout"]
    rows = rng.integers(0, 100, size=150).astype(np.int64)
    ids = rng.integers(0, 1 << 5, size=150).astype(np.int64)
    got = L.gather_records(b["words"], rows, ids, 5, lay.dev_runs)
    dpos = lay.dev_positions
    want = naive.stream(
        [naive.code_bits(ids[k], 5) + "".join(str(int(v)) for v in b["bitmat"][rows[k], dpos]) for k in range(150)]
    )
    np.testing.assert_array_equal(got, want)
    assert L.gather_records(b["words"], rows[:0], ids[:0], 5, lay.dev_runs).size == 0
    assert L.gather_records(b["words"], rows, ids, 0, np.zeros((0, 2), np.int64)).size == 0


def test_all_rows_distinct_and_one_base(rng):
    n = 129
    X = np.arange(n, dtype=np.int16)[:, None] * 3 - 50
    for kind in ("all", "none"):
        b = build(X, kind, rng)
        assert b["n_b"] == (n if kind == "all" else 1)
        same_bytes(decode(b, np.arange(n), X.dtype), X)
    X = np.full((n, 2), 5, dtype=np.int16)  # l_t = 0: no bits at all
    b = build(X, "all", rng)
    assert b["records"].size == 0 and b["bases"].size == 0
    same_bytes(decode(b, np.arange(n), X.dtype), X)


@pytest.mark.parametrize("n_b", [3, 5, 6])
def test_invalid_base_id_raises(rng, n_b, decode_path):
    X = (np.arange(90) % n_b).astype(np.uint64)[:, None] * 8 + rng.integers(0, 8, (90, 1)).astype(np.uint64)
    X[0, 0] = 0
    codecs = fit_codecs(X)
    codes = encode_columns(X, codecs)
    words = pack_codes(codes, codecs.width)
    bitmat = naive.bits_matrix(codes, codecs.width)
    l_t = bitmat.shape[1]
    mask = np.zeros(l_t, bool)
    mask[:-3] = True  # the high bits: n_b distinct bases, low 3 bits deviate
    labels, nb = naive.groups(bitmat, np.flatnonzero(mask))
    assert nb == n_b
    lay = L.make_layout(codecs.width, mask, nb)
    first = np.array([int(np.flatnonzero(labels == g)[0]) for g in range(nb)])
    bases = L.gather_records(words, first, first, 0, lay.base_runs)
    ids = labels.copy()
    ids[17] = nb  # fits in id_bits because n_b is not a power of two
    records = L.gather_records(words, np.arange(90), ids, lay.id_bits, lay.dev_runs)
    for arr in (bases, records, *codecs):
        arr.setflags(write=False)
    b = dict(records=records, bases=bases, layout=lay, codecs=codecs, n_b=nb)
    same_bytes(decode(b, np.arange(17), X.dtype), X[:17])
    with pytest.raises(FormatError):
        decode(b, np.arange(90), X.dtype)
    with pytest.raises(FormatError):
        decode(b, np.array([17]), X.dtype)


def test_ceil_log2():
    for x in list(range(1, 300)) + [2**40 - 1, 2**40, 2**40 + 1]:
        assert L.ceil_log2(x) == naive.ceil_log2(x)


def test_make_layout_validation():
    with pytest.raises(ValueError):
        L.make_layout(np.array([3, 4]), np.zeros(6, bool), 1)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 150), seed=st.integers(0, 2**32 - 1), p=st.sampled_from(["0.05", "0.5", "0.95", "runs"]),
       table=st.sampled_from(["int16", "uint64", "float64"]))
def test_round_trip_hypothesis(n, seed, p, table):
    rng = np.random.default_rng(seed)
    X = TABLES[table](rng, n)
    b = build(X, p, rng)
    want_bases, want_records = naive.record_strings(b["bitmat"], b["mask"], b["labels"], b["n_b"])
    np.testing.assert_array_equal(b["bases"], want_bases)
    np.testing.assert_array_equal(b["records"], want_records)
    rows = rng.integers(0, n, size=n + 5).astype(np.int64)
    same_bytes(decode(b, rows, X.dtype), X[rows])
