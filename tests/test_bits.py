"""gedenb.bits kernels against the slow oracles of tests/naive.py."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gedenb import bits
import naive

# total bits 1, 3, 63, 64, 65, 130, ... with 0- and 64-bit columns
WIDTHS = [
    [1],
    [3],
    [63],
    [64],
    [64, 1],
    [64, 64, 2],
    [0, 64, 0, 1],
    [5, 0, 7, 64, 13],
    [32, 32],
    [1, 1, 1],
    [0],
    [17, 50, 64, 64, 3],
]
NROWS = [1, 2, 63, 64, 65, 129]


def _setup(rng, n, widths, mode):
    codes = naive.random_codes(rng, n, widths, mode)
    bitmat = naive.bits_matrix(codes, widths)
    return codes, bitmat


def _ulp_equal(got, want):
    """Entropy equality: exact zeros, otherwise within 4 ulp (np.log2 may be SIMD)."""
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape and got.dtype == np.float64
    np.testing.assert_array_equal(got == 0, want == 0)
    np.testing.assert_array_max_ulp(got, want, maxulp=4)


# --------------------------------------------------------------------------
# pack / transpose
# --------------------------------------------------------------------------
@pytest.mark.parametrize("widths", WIDTHS, ids=str)
@pytest.mark.parametrize("mode", ["random", "zeros", "ones", "top"])
def test_pack_codes_matches_oracle(rng, widths, mode):
    for n in (1, 2, 64, 65):
        codes, bitmat = _setup(rng, n, widths, mode)
        got = bits.pack_codes(codes, np.asarray(widths))
        want = naive.pack_bits(bitmat)
        assert got.dtype == np.uint64
        assert got.shape == (n, bits.words_per_row(sum(widths)))
        np.testing.assert_array_equal(got, want)


def test_pack_codes_top_bit_of_64_bit_codes():
    codes = np.array([[1 << 63, 1, (1 << 64) - 1], [(1 << 63) | 5, 0, 1 << 63]], dtype=np.uint64)
    widths = np.array([64, 1, 64])
    got = bits.pack_codes(codes, widths)
    # row 0: 1 followed by 63 zeros | 1 | 64 ones -> 129 bits in 3 words
    assert got[0, 0] == np.uint64(1 << 63)
    assert got[0, 1] == np.uint64((1 << 63) | ((1 << 63) - 1))
    assert got[0, 2] == np.uint64(1 << 63)
    np.testing.assert_array_equal(got, naive.pack_bits(naive.bits_matrix(codes, widths)))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64])
def test_pack_codes_every_unsigned_dtype(rng, dtype):
    nb = 8 * np.dtype(dtype).itemsize
    widths = [nb, 1, nb - 1, 0, 3]
    codes = naive.random_codes(rng, 70, widths).astype(dtype)
    got = bits.pack_codes(codes, np.asarray(widths))
    np.testing.assert_array_equal(got, naive.pack_bits(naive.bits_matrix(codes, widths)))


def test_pack_codes_zero_rows_and_zero_width():
    got = bits.pack_codes(np.zeros((0, 2), np.uint64), np.array([3, 4]))
    assert got.shape == (0, 1)
    got = bits.pack_codes(np.zeros((5, 2), np.uint64), np.array([0, 0]))
    assert got.shape == (5, 0)


def test_pack_codes_validation():
    with pytest.raises(TypeError):
        bits.pack_codes(np.zeros((2, 2), np.int64), np.array([1, 1]))
    with pytest.raises(TypeError):
        bits.pack_codes(np.zeros(2, np.uint64), np.array([1, 1]))
    with pytest.raises(ValueError):
        bits.pack_codes(np.zeros((2, 2), np.uint64), np.array([1, 65]))
    with pytest.raises(ValueError):
        bits.pack_codes(np.zeros((2, 2), np.uint64), np.array([1, -1]))
    with pytest.raises(ValueError):
        bits.pack_codes(np.zeros((2, 2), np.uint64), np.array([1, 1, 1]))


def test_words_per_row():
    assert [bits.words_per_row(b) for b in (0, 1, 63, 64, 65, 128, 129)] == [0, 1, 1, 1, 2, 2, 3]


@pytest.mark.parametrize("widths", [[1], [3], [63], [64, 1], [64, 64, 2], [0, 64, 0, 1], [17, 50, 64, 64, 3]], ids=str)
@pytest.mark.parametrize("mode", ["random", "zeros", "ones", "top"])
def test_transpose_bits_matches_oracle(rng, widths, mode):
    l_t = sum(widths)
    for n in NROWS:
        codes, bitmat = _setup(rng, n, widths, mode)
        words = naive.pack_bits(bitmat)
        T = bits.transpose_bits(words, l_t)
        assert T.shape == (l_t, (n + 63) // 64)
        assert T.flags.c_contiguous and T.dtype == np.uint64
        np.testing.assert_array_equal(T, naive.transposed(bitmat))


def test_transpose_bits_fewer_positions_than_words_hold(rng):
    bitmat = rng.integers(0, 2, size=(100, 130)).astype(np.uint8)
    words = naive.pack_bits(bitmat)
    for nbits in (0, 1, 64, 100, 129, 130, 192):
        T = bits.transpose_bits(words, nbits)
        full = np.zeros((100, 192), np.uint8)
        full[:, :130] = bitmat
        np.testing.assert_array_equal(T, naive.transposed(full[:, :nbits]))
    with pytest.raises(ValueError):
        bits.transpose_bits(words, 193)
    with pytest.raises(TypeError):
        bits.transpose_bits(words.astype(np.int64), 10)


def test_transpose_bits_zero_rows():
    T = bits.transpose_bits(np.zeros((0, 2), np.uint64), 100)
    assert T.shape == (100, 0)


# --------------------------------------------------------------------------
# counts and entropy
# --------------------------------------------------------------------------
@pytest.mark.parametrize("widths", [[1], [63], [64, 64, 2], [0, 64, 0, 1]], ids=str)
@pytest.mark.parametrize("mode", ["random", "zeros", "ones", "few"])
def test_position_counts_and_entropy(rng, widths, mode):
    for n in NROWS:
        codes, bitmat = _setup(rng, n, widths, mode)
        T = naive.transposed(bitmat)
        counts = bits.position_counts(T)
        want = naive.position_counts(bitmat)
        assert counts.dtype == np.int64
        np.testing.assert_array_equal(counts, want)
        np.testing.assert_array_equal(bits.position_counts(T, 0, n), want)
        H = bits.entropy(counts, n)
        _ulp_equal(H, naive.entropy(want, n))
        if mode in ("zeros", "ones") or n == 1:
            assert (H == 0).all()


@pytest.mark.parametrize("n", [1, 63, 64, 65, 129, 200])
def test_position_counts_sub_ranges(rng, n):
    bitmat = rng.integers(0, 2, size=(n, 70)).astype(np.uint8)
    bitmat[:, 0] = 1
    T = naive.transposed(bitmat)
    cap = 64 * T.shape[1]
    edges = sorted({0, 1, 62, 63, 64, 65, 127, 128, 129, n - 1, n, cap} & set(range(0, cap + 1)))
    for lo in edges:
        for hi in edges:
            if lo > hi:
                continue
            got = bits.position_counts(T, lo, hi)
            np.testing.assert_array_equal(got, naive.position_counts(bitmat[lo:hi]), err_msg=f"[{lo},{hi})")
    for _ in range(30):
        lo, hi = sorted(rng.integers(0, n + 1, size=2).tolist())
        np.testing.assert_array_equal(bits.position_counts(T, lo, hi), naive.position_counts(bitmat[lo:hi]))
    with pytest.raises(ValueError):
        bits.position_counts(T, 0, cap + 1)
    with pytest.raises(ValueError):
        bits.position_counts(T, 5, 4)
    with pytest.raises(ValueError):
        bits.position_counts(T, -1, 4)


def test_entropy_values_and_validation():
    H = bits.entropy(np.array([0, 1, 2, 3, 4]), 4)
    want = [0.0, 0.8112781244591328, 1.0, 0.8112781244591328, 0.0]
    np.testing.assert_array_max_ulp(H, np.array(want), maxulp=4)
    assert H[2] == 1.0 and H[0] == 0.0 and H[4] == 0.0
    for n in (1, 2, 3, 7, 64, 1000, 12345):
        counts = np.arange(n + 1)
        _ulp_equal(bits.entropy(counts, n), naive.entropy(counts, n))
    with pytest.raises(ValueError):
        bits.entropy(np.array([0, 5]), 4)
    with pytest.raises(ValueError):
        bits.entropy(np.array([-1]), 4)
    with pytest.raises(ValueError):
        bits.entropy(np.array([0]), 0)


# --------------------------------------------------------------------------
# grouping
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 129, 300])
@pytest.mark.parametrize("mode", ["random", "few", "zeros", "ones", "structured"])
def test_group_by_positions(rng, n, mode):
    widths = [7, 64, 3]
    codes, bitmat = _setup(rng, n, widths, mode)
    T = naive.transposed(bitmat)
    l_t = sum(widths)
    for k in (0, 1, 2, 5, 20, l_t):
        positions = rng.permutation(l_t)[:k]
        labels, g = bits.group_by_positions(T, positions, n)
        want_labels, want_g = naive.groups(bitmat, positions)
        assert labels.dtype == np.int64 and labels.shape == (n,)
        assert g == want_g
        np.testing.assert_array_equal(labels, want_labels)
    # duplicated positions do not change the partition
    positions = np.array([3, 3, 70, 3, 70])
    labels, g = bits.group_by_positions(T, positions, n)
    want_labels, want_g = naive.groups(bitmat, [3, 70])
    assert g == want_g
    np.testing.assert_array_equal(labels, want_labels)


def test_group_by_positions_all_rows_distinct(rng):
    n = 129
    bitmat = np.zeros((n, 12), np.uint8)
    for i in range(n):  # row i holds i in binary: n_b == n
        bitmat[i, 4:] = [int(c) for c in format(i, "08b")]
    T = naive.transposed(bitmat)
    labels, g = bits.group_by_positions(T, np.arange(12), n)
    assert g == n
    np.testing.assert_array_equal(labels, np.arange(n))
    labels, g = bits.group_by_positions(T, np.arange(12)[::-1], n - 1)
    assert g == n - 1


def test_group_by_positions_validation():
    T = np.zeros((10, 2), np.uint64)
    with pytest.raises(ValueError):
        bits.group_by_positions(T, [10], 5)
    with pytest.raises(ValueError):
        bits.group_by_positions(T, [-1], 5)
    with pytest.raises(ValueError):
        bits.group_by_positions(T, [1], 129)
    with pytest.raises(TypeError):
        bits.group_by_positions(T.astype(np.int64), [1], 5)
    labels, g = bits.group_by_positions(T, [], 0)
    assert labels.shape == (0,) and g == 0


@pytest.mark.parametrize("n", [1, 63, 64, 65, 129, 250])
def test_refine_groups(rng, n):
    widths = [5, 64, 9]
    codes, bitmat = _setup(rng, n, widths, "structured")
    T = naive.transposed(bitmat)
    l_t = sum(widths)
    order = rng.permutation(l_t)
    labels = np.zeros(n, dtype=np.int64)
    g = 1
    for k in range(l_t):
        p = int(order[k])
        g_new = bits.refine_groups(T[p], labels, g)
        want_labels, want_g = naive.groups(bitmat, order[: k + 1])
        assert g_new == want_g
        np.testing.assert_array_equal(labels, want_labels)
        assert g <= g_new <= min(2 * g, n)
        g = g_new


def test_refine_groups_renumbers_arbitrary_labels(rng):
    n = 150
    bitmat = rng.integers(0, 2, size=(n, 6)).astype(np.uint8)
    T = naive.transposed(bitmat)
    base, g = naive.groups(bitmat, [0, 1, 2])
    perm = rng.permutation(g + 3)  # ids not in first-occurrence order, gaps allowed
    labels = perm[base].astype(np.int64)
    g_new = bits.refine_groups(T[4], labels, g + 3)
    want, want_g = naive.groups(bitmat, [0, 1, 2, 4])
    assert g_new == want_g
    np.testing.assert_array_equal(labels, want)


def test_refine_groups_validation():
    line = np.zeros(2, np.uint64)
    with pytest.raises(TypeError):
        bits.refine_groups(line, np.zeros(5, np.int32), 1)
    ro = np.zeros(5, np.int64)
    ro.setflags(write=False)
    with pytest.raises(TypeError):
        bits.refine_groups(line, ro, 1)
    with pytest.raises(ValueError):
        bits.refine_groups(line, np.zeros(129, np.int64), 1)
    with pytest.raises(ValueError):
        bits.refine_groups(line, np.array([0, 1, 2], np.int64), 2)
    with pytest.raises(TypeError):
        bits.refine_groups(line.astype(np.int64), np.zeros(5, np.int64), 1)


# --------------------------------------------------------------------------
# randomized: the whole chain pack -> transpose -> counts -> groups
# --------------------------------------------------------------------------
def _chain(widths, n, seed, mode):
    rng = np.random.default_rng(seed)
    codes, bitmat = _setup(rng, n, widths, mode)
    l_t = sum(widths)
    words = bits.pack_codes(codes, np.asarray(widths))
    np.testing.assert_array_equal(words, naive.pack_bits(bitmat))
    T = bits.transpose_bits(words, l_t)
    np.testing.assert_array_equal(T, naive.transposed(bitmat))
    counts = bits.position_counts(T, 0, n)
    np.testing.assert_array_equal(counts, naive.position_counts(bitmat))
    _ulp_equal(bits.entropy(counts, n), naive.entropy(counts, n))
    lo, hi = sorted(rng.integers(0, n + 1, size=2).tolist())
    np.testing.assert_array_equal(bits.position_counts(T, lo, hi), naive.position_counts(bitmat[lo:hi]))
    positions = rng.permutation(l_t)[: rng.integers(0, l_t + 1)]
    labels, g = bits.group_by_positions(T, positions, n)
    want_labels, want_g = naive.groups(bitmat, positions)
    assert g == want_g
    np.testing.assert_array_equal(labels, want_labels)


_widths = st.lists(st.integers(0, 64), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(widths=_widths, n=st.integers(1, 200), seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(naive.MODES))
def test_chain_hypothesis(widths, n, seed, mode):
    _chain(widths, n, seed, mode)


@pytest.mark.slow
@settings(max_examples=600, deadline=None)
@given(widths=_widths, n=st.integers(1, 400), seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(naive.MODES))
def test_chain_hypothesis_slow(widths, n, seed, mode):
    _chain(widths, n, seed, mode)


# --------------------------------------------------------------------------
# fixed-width integer streams
# --------------------------------------------------------------------------
@pytest.mark.parametrize("nbits", [0, 1, 3, 7, 63, 64])
@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 130])
def test_pack_fixed_matches_oracle(rng, nbits, n):
    hi = (1 << nbits) - 1
    values = rng.integers(0, hi, size=n, endpoint=True, dtype=np.uint64) if nbits else np.zeros(n, np.uint64)
    if n and nbits:
        values[0] = np.uint64(hi)  # top bit set
    got = bits.pack_fixed(values, nbits)
    np.testing.assert_array_equal(got, naive.stream([naive.code_bits(v, nbits) for v in values.tolist()]))
    np.testing.assert_array_equal(bits.unpack_fixed(got if got.size else np.zeros(1, np.uint64), nbits, n), values)


def test_pack_fixed_validation():
    with pytest.raises(ValueError):
        bits.pack_fixed(np.array([8], np.uint64), 3)
    with pytest.raises(ValueError):
        bits.pack_fixed(np.array([1], np.uint64), 65)
    with pytest.raises(ValueError):
        bits.unpack_fixed(np.zeros(1, np.uint64), 7, 10)
