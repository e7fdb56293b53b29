"""Algorithm 1 (gedenb.entrogede, gedenb.sizes) against the slow oracles."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gedenb import bits, compress, condensed, decompress, eq1_bits, size_breakdown
from gedenb.encode import BIN, DEC, INT, encode_columns
from gedenb.clusters import cluster_positions
from gedenb.greedy import greedy_base_selection
from gedenb.sizes import eq1, params_bits
import naive


def same_bytes(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    u = np.uint8 if a.dtype == np.bool_ else np.dtype(f"u{a.dtype.itemsize}")
    np.testing.assert_array_equal(np.ascontiguousarray(a).view(u), np.ascontiguousarray(b).view(u))


# --------------------------------------------------------------------------
# Eq. 1
# --------------------------------------------------------------------------
def test_eq1_small_cases():
    for n_b in range(1, 70):
        for n, m in ((1, 0), (5, 0), (64, 3), (1000, 17), (65, 65)):
            for l_b, l_d in ((0, 0), (3, 9), (64, 1), (130, 0)):
                for s in (0, 1, 12345):
                    assert eq1(n_b, l_b, l_d, n, m, s) == naive.eq1(n_b, l_b, l_d, n, m, s)
    # hand-checked: 5 bases of 3 bits, 10+2 rows with 3-bit ids and 4 deviation bits, 2 weights of 4 bits
    assert eq1(5, 3, 4, 10, 2, 7) == 5 * 3 + 12 * (3 + 4) + 2 * 4 + 7


@settings(max_examples=100, deadline=None)
@given(n_b=st.integers(1, 2**40), l_b=st.integers(0, 2**20), l_d=st.integers(0, 2**20),
       n=st.integers(1, 2**30), m=st.integers(0, 2**20), s=st.integers(0, 2**20))
def test_eq1_hypothesis(n_b, l_b, l_d, n, m, s):
    assert eq1(n_b, l_b, l_d, n, m, s) == naive.eq1(n_b, l_b, l_d, n, m, s)


def test_eq1_powers_of_two():
    for k in range(0, 40):
        for n_b in (2**k - 1, 2**k, 2**k + 1):
            if n_b >= 1:
                assert eq1(n_b, 0, 0, 1, 0) == naive.ceil_log2(n_b)


# --------------------------------------------------------------------------
# clustering positions
# --------------------------------------------------------------------------
def random_entropy(rng, widths, zero_share=0.3):
    l_t = int(sum(widths))
    levels = np.array([0.25, 0.5, 0.5, 0.9, 1.0])  # ties on purpose
    H = levels[rng.integers(0, len(levels), l_t)]
    H[rng.random(l_t) < zero_share] = 0.0
    return H


@pytest.mark.parametrize("widths", [[1], [3, 5], [0, 64, 0, 1], [64, 64, 2], [7, 7, 7, 7], [2, 0, 9, 33, 1]], ids=str)
def test_cluster_positions_matches_oracle(rng, widths):
    for trial in range(20):
        H = random_entropy(rng, widths, zero_share=[0.0, 0.3, 0.8][trial % 3])
        available = int((H > 0).sum())
        for beta in sorted({1, 2, len(widths), len(widths) + 1, available, available // 2} - {0}):
            if beta > available:
                continue
            got = cluster_positions(H, np.asarray(widths), beta)
            assert got.dtype == np.int64
            assert got.tolist() == naive.cluster_positions(H, widths, beta)
        for bad in (0, available + 1):
            with pytest.raises(ValueError):
                cluster_positions(H, np.asarray(widths), bad)
            with pytest.raises(ValueError):
                naive.cluster_positions(H, widths, bad)


def test_cluster_positions_hand_example():
    # two columns of 3 bits; column 0's MSB constant
    H = np.array([0.0, 0.5, 0.9, 0.7, 0.7, 1.0])
    assert cluster_positions(H, np.array([3, 3]), 1).tolist() == [3]  # level 0: {1: .5, 3: .7}
    assert cluster_positions(H, np.array([3, 3]), 2).tolist() == [3, 1]
    assert cluster_positions(H, np.array([3, 3]), 3).tolist() == [3, 1, 2]  # level 1: {2: .9, 4: .7}
    assert cluster_positions(H, np.array([3, 3]), 4).tolist() == [3, 1, 2, 4]
    assert cluster_positions(H, np.array([3, 3]), 5).tolist() == [3, 1, 2, 4, 5]


@settings(max_examples=100, deadline=None)
@given(widths=st.lists(st.integers(0, 64), min_size=1, max_size=6), seed=st.integers(0, 2**32 - 1),
       data=st.data())
def test_cluster_positions_hypothesis(widths, seed, data):
    rng = np.random.default_rng(seed)
    H = random_entropy(rng, widths, zero_share=float(rng.random()))
    available = int((H > 0).sum())
    if available == 0:
        with pytest.raises(ValueError):
            cluster_positions(H, np.asarray(widths), 1)
        return
    beta = data.draw(st.integers(1, available))
    assert cluster_positions(H, np.asarray(widths), beta).tolist() == naive.cluster_positions(H, widths, beta)


# --------------------------------------------------------------------------
# greedy base selection
# --------------------------------------------------------------------------
def run_greedy(codes, widths, n, m, tau, s_params):
    """Kernel and oracle on the same n + m rows; returns nothing, asserts equality."""
    widths = np.asarray(widths)
    N = n + m
    bitmat = naive.bits_matrix(codes, widths)
    T = bits.transpose_bits(bits.pack_codes(codes, widths), int(widths.sum()))
    counts = bits.position_counts(T, 0, N)
    H = bits.entropy(bits.position_counts(T, 0, n), n)  # order key: entropy of the n original rows
    mask, n_b, labels, sizes = greedy_base_selection(T, counts, H, n, m, tau, s_params)
    w_mask, w_nb, w_labels, w_sizes = naive.greedy(bitmat, naive.position_counts(bitmat), H, n, m, tau, s_params)
    assert mask.dtype == bool and mask.shape == (int(widths.sum()),)
    np.testing.assert_array_equal(mask, w_mask)
    assert n_b == w_nb
    assert labels.shape == (N,)
    np.testing.assert_array_equal(labels, w_labels)
    assert sizes.tolist() == w_sizes
    assert min(w_sizes) == naive.eq1(n_b, int(mask.sum()), int((~mask).sum()), n, m, s_params)
    return mask, n_b, sizes


@pytest.mark.parametrize("mode", naive.MODES)
@pytest.mark.parametrize("widths", [[1], [3, 5], [0, 64, 0, 1], [8, 8, 8]], ids=str)
def test_greedy_matches_oracle(rng, mode, widths):
    for N in (1, 2, 64, 65, 129):
        codes = naive.random_codes(rng, N, widths, mode)
        m = int(rng.integers(0, min(N, 5)))
        tau = int(rng.integers(1, 6))
        s_params = int(rng.integers(0, 500))
        run_greedy(codes, widths, N - m, m, tau, s_params)


def test_greedy_constant_rows_take_every_position(rng):
    codes = naive.random_codes(rng, 100, [5, 64, 3], "few")[:1].repeat(100, axis=0)
    mask, n_b, sizes = run_greedy(codes, [5, 64, 3], 100, 0, 3, 0)
    assert mask.all() and n_b == 1 and len(sizes) == 1


def test_greedy_all_rows_distinct(rng):
    # n_b reaches n + m: the search must stop there
    N = 129
    codes = np.arange(N, dtype=np.uint64)[:, None] | (naive.random_codes(rng, N, [8], "random") << np.uint64(8))
    codes = np.concatenate([codes, np.zeros((N, 1), np.uint64)], axis=1)
    mask, n_b, sizes = run_greedy(codes, [16, 4], N - 2, 2, 50, 0)
    assert n_b <= N


def test_greedy_keeps_first_of_equal_sizes():
    # Algorithm 1 line 17 is a strict "S < S*": a later step of equal size must not replace the best.
    # Sizes: constants only 4*3 = 12; +bit 0: 2*1 + 4*(1+2) = 14; +bit 1: 2*2 + 4*(1+1) = 12 (tie);
    # +bit 2: 3*3 + 4*(2+0) = 17 -> plateau of 3 reached.
    codes = np.array([[1, 0, 0], [1, 0, 0], [1, 0, 1], [0, 1, 0]], dtype=np.uint64)
    mask, n_b, sizes = run_greedy(codes, [1, 1, 1], 4, 0, 3, 0)
    assert sizes.tolist() == [12, 14, 12, 17]
    assert not mask.any() and n_b == 1


@pytest.mark.parametrize("tau", [1, 2, 5, 100])
def test_greedy_tau(rng, tau):
    codes = naive.random_codes(rng, 200, [6, 6, 6, 6], "structured")
    run_greedy(codes, [6, 6, 6, 6], 190, 10, tau, 100)


def test_greedy_mixed_constant_positions(rng):
    # constant over the n original rows but not over the m condensed ones
    codes = naive.random_codes(rng, 80, [4, 4], "structured")
    codes[:75, 0] = 0b1010
    run_greedy(codes, [4, 4], 75, 5, 4, 0)


@settings(max_examples=60, deadline=None)
@given(widths=st.lists(st.integers(0, 20), min_size=1, max_size=4), N=st.integers(1, 150),
       seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(naive.MODES), tau=st.integers(1, 8),
       s_params=st.integers(0, 1000), mshare=st.floats(0, 0.3))
def test_greedy_hypothesis(widths, N, seed, mode, tau, s_params, mshare):
    rng = np.random.default_rng(seed)
    codes = naive.random_codes(rng, N, widths, mode)
    m = int(N * mshare)
    run_greedy(codes, widths, N - m, m, tau, s_params)


# --------------------------------------------------------------------------
# compress: the whole pipeline against the oracles
# --------------------------------------------------------------------------
def int_table(rng, n, dtype=np.int16):
    """Few-valued, small-range, sparse-wide, full-range and constant columns."""
    info = np.iinfo(dtype)
    cols = [
        rng.choice(np.array([10, 20, 30, 70], dtype=dtype), n),
        rng.integers(-50, 50, n).astype(dtype),
        (rng.integers(0, 4, n) * 25 + rng.integers(0, 3, n)).astype(dtype),
        rng.choice(np.array([info.min, info.max, 0, 1], dtype=dtype), n),
        np.full(n, -3 if info.min < 0 else 3, dtype=dtype),
    ]
    return np.stack(cols, axis=1)


def expected_condensed(X, codecs, bitmat, beta_pos):
    """Oracle grouping on the beta positions, centroids rounded onto the codec grid."""
    labels, m = naive.groups(bitmat, beta_pos)
    means, weights = naive.centroids(X, labels, m)
    out = np.empty_like(means)
    for j in range(X.shape[1]):
        col = X[:, j].astype(np.float64)
        if codecs.kind[j] == INT:  # np.rint(mean) clipped to the column range
            out[:, j] = np.clip(np.rint(means[:, j]), col.min(), col.max())
        elif codecs.kind[j] == DEC:  # q = rint(mean * 10**k) clipped to the column's q range
            f = 10.0 ** int(codecs.scale[j])
            q = np.clip(np.rint(means[:, j] * f), np.rint(col * f).min(), np.rint(col * f).max())
            out[:, j] = (q / f).astype(X.dtype).astype(np.float64)
        elif codecs.kind[j] == BIN:  # q = rint(mean * 2**k) clipped likewise
            k = int(codecs.scale[j])
            q = np.clip(np.rint(np.ldexp(means[:, j], k)), np.ldexp(col, k).min(), np.ldexp(col, k).max())
            out[:, j] = np.ldexp(q, -k).astype(X.dtype).astype(np.float64)
        else:
            raise AssertionError("oracle covers INT, DEC and BIN columns only")
    return out, weights, labels


def check_compress(X, beta, tau, store_condensed=True):
    n, d = X.shape
    c = compress(X, beta=beta, tau=tau, store_condensed=store_condensed)
    same_bytes(decompress(c), X)
    codecs, widths = c.codecs, c.codecs.width
    l_t = int(widths.sum())
    codes = encode_columns(X, codecs)
    bitmat = naive.bits_matrix(codes, widths)
    counts = naive.position_counts(bitmat)
    np.testing.assert_array_max_ulp(c.entropy, naive.entropy(counts, n), maxulp=4)
    np.testing.assert_array_equal(c.entropy == 0, (counts == 0) | (counts == n))
    H = c.entropy  # the same order keys for kernel and oracle from here on
    full = bitmat
    m = 0
    if beta is not None:
        beta_pos = naive.cluster_positions(H, widths, beta)
        assert c.beta_positions.tolist() == beta_pos
        samples, weights, labels = expected_condensed(X, codecs, bitmat, beta_pos)
        got_samples, got_weights = condensed(c, exact=False)  # the stored rows: on the codec grid
        assert got_samples.dtype == np.float64
        np.testing.assert_array_equal(got_weights, weights)
        np.testing.assert_array_equal(got_samples, samples)
        assert got_weights.sum() == n
        exact, counts, nans = naive.exact_centroids(X, labels, len(weights))
        got_exact, got_weights = condensed(c)  # the exact means (section LERN, or recomputed)
        np.testing.assert_array_equal(got_weights, counts)
        np.testing.assert_allclose(got_exact, exact, rtol=1e-13, atol=0)
        if store_condensed:
            m = len(weights)
            ccodes = encode_columns(samples.astype(X.dtype), codecs)
            full = np.concatenate([bitmat, naive.bits_matrix(ccodes, widths)])
    else:
        assert c.beta == 0
        with pytest.raises(ValueError):
            condensed(c)
    assert c.m == m
    s_params = params_bits(d, l_t, 0 if beta is None else beta) + 8 * len(c.learning_bytes)  # LERN: parameters too
    assert bool(c.learning_bytes) == (beta is not None)
    mask, n_b, labels, sizes = naive.greedy(full, naive.position_counts(full), H, n, m, tau, s_params)
    np.testing.assert_array_equal(c.base_mask, mask)
    assert c.n_bases == n_b
    assert c.greedy_sizes.tolist() == sizes
    total = naive.eq1(c.n_bases, c.base_bits, c.deviation_bits, n, c.m, s_params)
    assert eq1_bits(c) == total == min(sizes)
    sb = size_breakdown(c)
    assert sb.bases == n_b * int(mask.sum())
    assert sb.base_ids == (n + m) * naive.ceil_log2(n_b)
    assert sb.deviations == (n + m) * int((~mask).sum())
    assert sb.weights == (m * naive.ceil_log2(n) if m else 0)
    want_bases, want_records = naive.record_strings(full, mask, labels, n_b)
    np.testing.assert_array_equal(c.bases, want_bases)
    np.testing.assert_array_equal(c.records, want_records)
    return c


@pytest.mark.parametrize("n", [1, 64, 65, 300])
@pytest.mark.parametrize("beta", [None, 1, 3, 7])
def test_compress_int_table(rng, n, beta):
    X = int_table(rng, n)
    available = int((compress(X).entropy > 0).sum())
    if beta is not None and beta > available:
        with pytest.raises(ValueError):
            compress(X, beta=beta)
        return
    tau = {1: 1, 64: 10, 65: 3, 300: 2}[n]
    check_compress(X, beta, tau)
    if beta == 3:  # storage-constrained mode recomputes exactly what the stored mode stores
        c2 = check_compress(X, beta, tau, store_condensed=False)
        c1 = compress(X, beta=beta, tau=tau)
        for a, b in zip(condensed(c1), condensed(c2)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.bool_, np.uint16])
def test_compress_other_int_dtypes(rng, dtype):
    n = 150
    if dtype == np.bool_:
        X = rng.random((n, 5)) < np.array([0.1, 0.5, 0.9, 0.0, 1.0])
    else:
        X = int_table(rng, n, dtype)
    for beta in (1, 2):
        check_compress(X, beta, 4)


def test_compress_decimal_table(rng):
    n = 200
    X = np.stack([
        rng.integers(-300, 300, n) / 100.0,
        rng.choice(np.array([1.5, 2.25, 7.125]), n),
        np.round(rng.uniform(0, 50, n), 1),
    ], axis=1) + 0.0
    c = compress(X, beta=2)
    assert c.codecs.kind.tolist() == [DEC, BIN, DEC]
    for beta in (1, 2, 4):
        check_compress(X, beta, 5)


def test_compress_all_rows_distinct():
    n = 129
    X = np.stack([np.arange(n), np.arange(n)[::-1] % 7], axis=1).astype(np.int16)
    c = check_compress(X, 2, 10)
    assert decompress(c).shape == (n, 2)


def test_compress_constant_table():
    X = np.full((65, 3), 9, dtype=np.int16)
    c = check_compress(X, None, 3)
    assert c.row_bits == 0 and c.n_bases == 1 and c.records.size == 0
    with pytest.raises(ValueError):
        compress(X, beta=1)  # no non-constant position to cluster on


def test_compress_one_row():
    X = np.array([[1, -5, 300]], dtype=np.int16)
    c = check_compress(X, None, 2)
    assert c.n_bases == 1


@pytest.mark.parametrize("dtype", ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                                   "uint64", "float16", "float32", "float64"])
def test_compress_round_trip_every_dtype(rng, dtype):
    X = naive.special_table(np.dtype(dtype), rng, n=130)
    c = compress(X, tau=3)
    same_bytes(decompress(c), X)
    assert eq1_bits(c) == c.greedy_sizes.min()
    # clustering on the dtypes with their own centroid path (bool, float16 via float32)
    beta = 1 if dtype in ("bool", "float16", "float32", "float64", "int16") else None
    c = compress(X, beta=beta, tau=3, widths="native")
    same_bytes(decompress(c), X)
    assert eq1_bits(c) == c.greedy_sizes.min()
    if beta is not None:
        s, w = condensed(c)
        assert s.shape == (len(w), X.shape[1]) and w.sum() == X.shape[0]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 160), seed=st.integers(0, 2**32 - 1), beta=st.integers(1, 8), tau=st.integers(1, 6),
       store=st.booleans())
def test_compress_hypothesis(n, seed, beta, tau, store):
    rng = np.random.default_rng(seed)
    X = int_table(rng, n)
    available = int((compress(X).entropy > 0).sum())
    if beta > available:
        with pytest.raises(ValueError):
            compress(X, beta=beta)
        return
    check_compress(X, beta, tau, store_condensed=store)
