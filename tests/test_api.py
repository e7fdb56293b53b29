"""Public API contracts: names, validation, results as immutable containers."""

import subprocess
import sys

import numpy as np
import pytest

import gedenb


def test_all_is_sorted_and_pinned():
    assert gedenb.__all__ == sorted(gedenb.__all__)
    assert set(gedenb.__all__) == {
        "Codecs", "Compressed", "FormatError", "LearningSet", "Reader", "SizeBreakdown", "compress", "condensed",
        "decompress", "eq1_bits", "fit_codecs", "learning_set", "open", "save", "size_breakdown",
    }
    for name in gedenb.__all__:
        assert hasattr(gedenb, name)


def test_import_has_no_heavy_side_effects():
    code = (
        "import sys, gedenb; heavy = [m for m in ('torch', 'matplotlib', 'dask', 'pandas') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize(
    "bad, exc, words",
    [
        ([[1, "2"], [3, 4]], TypeError, "numbers only"),
        ({1, 2}, TypeError, "NumPy array"),
        (np.zeros((2, 2), dtype=object), TypeError, "not supported"),
        (np.zeros((2, 2), dtype=np.complex128), TypeError, "astype"),
        (np.array([["a", "b"]]), TypeError, "not supported"),
        (np.zeros((2, 2, 2)), ValueError, "2-D"),
        (np.zeros(5), ValueError, "2-D"),
        (np.zeros((0, 3)), ValueError, "at least one row"),
        (np.zeros((3, 0)), ValueError, "at least one row"),
    ],
)
def test_bad_tables_are_rejected_clearly(bad, exc, words):
    with pytest.raises(exc, match=words):
        gedenb.compress(bad)


@pytest.mark.parametrize("tau", [0, -1])
def test_tau_must_be_positive(tau):
    with pytest.raises(ValueError, match="tau"):
        gedenb.compress(np.arange(10).reshape(5, 2), tau=tau)


@pytest.mark.parametrize("tau", [1.5, "3", True, None])
def test_tau_must_be_an_integer(tau):
    with pytest.raises(TypeError, match="tau"):
        gedenb.compress(np.arange(10).reshape(5, 2), tau=tau)


def test_beta_beyond_available_bits():
    X = np.array([[0, 5], [1, 5], [0, 5]], dtype=np.int8)  # one non-constant bit in all
    with pytest.raises(ValueError, match="beta=2"):
        gedenb.compress(X, beta=2)
    with pytest.raises(ValueError, match="beta"):
        gedenb.compress(X, beta=0)
    c = gedenb.compress(X, beta=1)
    assert c.m == 2 and c.weights.tolist() == [2, 1]


def test_widths_option_is_validated():
    with pytest.raises(ValueError, match="narrow"):
        gedenb.compress(np.arange(4).reshape(2, 2), widths="wide")


def test_result_is_immutable_and_self_consistent():
    rng = np.random.default_rng(3)
    X = rng.integers(-50, 50, size=(500, 6)).astype(np.int16)
    c = gedenb.compress(X, beta=5)
    with pytest.raises(Exception):
        c.n_bases = 3
    for a in (c.bases, c.records, c.weights, c.base_mask, c.codecs.width):
        assert not a.flags.writeable
    assert c.shape == X.shape and c.dtype == X.dtype
    assert c.row_bits == c.base_bits + c.deviation_bits == int(c.widths.sum())
    assert c.weights.sum() == len(X)
    s = gedenb.size_breakdown(c)
    assert s.total == gedenb.eq1_bits(c)
    assert s.bases == c.n_bases * c.base_bits
    assert s.base_ids + s.deviations == (c.n + c.m) * (c.id_bits + c.deviation_bits)
    assert c.greedy_sizes[0] >= c.greedy_sizes.min() == gedenb.eq1_bits(c)
    assert "Compressed(shape=(500, 6)" in repr(c)


def test_storage_constrained_mode_gives_the_same_condensed_samples():
    rng = np.random.default_rng(4)
    X = np.round(rng.normal(size=(800, 4)), 2)
    stored = gedenb.compress(X, beta=6)
    lean = gedenb.compress(X, beta=6, store_condensed=False)
    a, wa = gedenb.condensed(stored)
    b, wb = gedenb.condensed(lean)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(wa, wb)
    assert lean.m == 0 and gedenb.eq1_bits(lean) < gedenb.eq1_bits(stored)
    assert np.array_equal(gedenb.decompress(lean), X)


def test_condensed_needs_clustering():
    c = gedenb.compress(np.arange(20).reshape(10, 2))
    with pytest.raises(ValueError, match="beta=None"):
        gedenb.condensed(c)
    with pytest.raises(TypeError, match="Compressed"):
        gedenb.decompress(np.zeros(3))


def test_condensed_samples_are_exact_means_and_the_stored_rows_on_the_codec_grid():
    X = np.array([[1, 10], [1, 11], [2, 10], [2, 13], [2, 14]], dtype=np.int32)
    for c in (gedenb.compress(X, beta=1), gedenb.compress(X, beta=1, exact_condensed=False)):
        s, w = gedenb.condensed(c, exact=False)
        # the clustering bit is column 0's MSB (1 -> 0, 2 -> 1 after the offset)
        assert w.tolist() == [2, 3]
        assert s.tolist() == [[1.0, 10.0], [2.0, 12.0]]  # 10.5 -> 10 (half to even), 12.33 -> 12
    assert gedenb.condensed(c)[0].tolist() == [[1.0, 10.0], [2.0, 12.0]]  # no exact statistics kept
    c = gedenb.compress(X, beta=1)
    assert gedenb.condensed(c)[0].tolist() == [[1.0, 10.5], [2.0, 37 / 3]]


def test_a_list_of_rows_is_a_table():
    c = gedenb.compress([[1, 2.5], [3, 4.0]])
    assert gedenb.decompress(c).tolist() == [[1.0, 2.5], [3.0, 4.0]]


def test_one_row_one_column_and_all_constant():
    for X in (np.array([[7]]), np.array([[1.5, -2.0, np.nan]]), np.full((40, 3), 9, dtype=np.uint64)):
        c = gedenb.compress(X)
        back = gedenb.decompress(c)
        assert back.dtype == X.dtype and back.shape == X.shape
        assert back.tobytes() == X.tobytes()
    c = gedenb.compress(np.full((40, 3), 9, dtype=np.uint64))
    assert c.row_bits == 0 and c.n_bases == 1 and gedenb.size_breakdown(c).deviations == 0


def test_all_rows_distinct_reaches_nb_equal_n():
    X = np.arange(256, dtype=np.uint8).reshape(-1, 1)
    c = gedenb.compress(X, tau=50)
    assert np.array_equal(gedenb.decompress(c), X)
    assert c.greedy_sizes.size >= 2


def test_views_and_fortran_order_inputs():
    rng = np.random.default_rng(5)
    base = rng.normal(size=(60, 10)).astype(np.float32)
    for X in (base[::2, 1:7], np.asfortranarray(base), base.T, base[:, ::3]):
        c = gedenb.compress(X)
        assert gedenb.decompress(c).tobytes() == np.ascontiguousarray(X).tobytes()


def test_big_endian_input_round_trips_in_value():
    X = np.arange(12, dtype=">i4").reshape(4, 3)
    back = gedenb.decompress(gedenb.compress(X))
    assert np.array_equal(back, X) and back.dtype == np.dtype("int32")


def test_cluster_rule_is_honoured_and_checked():
    rng = np.random.default_rng(7)
    X = rng.integers(0, 64, size=(400, 3)).astype(np.int32)

    def lowest(entropy, widths, beta):
        live = np.flatnonzero(entropy > 0)
        return live[np.argsort(entropy[live], kind="stable")][:beta]

    c = gedenb.compress(X, beta=4, cluster_rule=lowest)
    assert np.array_equal(c.beta_positions, lowest(c.entropy, c.widths, 4))
    assert np.array_equal(gedenb.decompress(c), X) and c.weights.sum() == 400
    with pytest.raises(ValueError, match="integer bit positions"):
        gedenb.compress(X, beta=4, cluster_rule=lambda h, w, b: np.arange(b + 1))
    with pytest.raises(ValueError, match="out of range or repeated"):
        gedenb.compress(X, beta=2, cluster_rule=lambda h, w, b: np.array([0, 0]))
    with pytest.raises(TypeError, match="callable"):
        gedenb.compress(X, beta=2, cluster_rule="lowest")
