"""Property tests: compress -> decompress and compress -> save -> open -> read_rows are bit-exact.

Every supported dtype, shapes from one row / one column up to 300 x 12,
special values built from integer bit patterns (NaN payloads of both signs,
signalling NaNs, +-0.0, +-inf, subnormals, integer extremes), beta None or
valid, tau 1..12, both storage modes and both width modes.  Values are
compared as bytes, so NaN payloads and the sign of zero count.
"""

from __future__ import annotations

import itertools
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gedenb
from gedenb import store as _store
from gedenb.encode import SUPPORTED_DTYPES, encode_columns, fit_codecs

DTYPES = tuple(SUPPORTED_DTYPES)
FLOAT_LAYOUT = {2: (5, 10), 4: (8, 23), 8: (11, 52)}  # exponent and mantissa bits


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def special_values(dtype: np.dtype) -> np.ndarray:
    """Edge values of ``dtype``; float ones built from their bit patterns."""
    if dtype == np.bool_:
        return np.array([False, True])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        vals = [info.min, info.min + 1, info.max, info.max - 1, 0, 1, 2, info.max // 2 + 1]
        if dtype.kind == "i":
            vals += [-1, -2]
        return np.array(vals, dtype=dtype)
    nb = 8 * dtype.itemsize
    e, mbits = FLOAT_LAYOUT[dtype.itemsize]
    sign = 1 << (nb - 1)
    exp = ((1 << e) - 1) << mbits
    top = 1 << (mbits - 1)
    pats = [
        0, sign,  # +0.0, -0.0
        exp, exp | sign,  # +inf, -inf
        exp | top, exp | top | sign,  # quiet NaN, both signs
        exp | top | 0x5, exp | top | 0x2A | sign,  # quiet NaN with payloads
        exp | 1, exp | 3 | sign,  # signalling NaN payloads
        exp | ((1 << mbits) - 1), exp | ((1 << mbits) - 1) | sign,  # all-ones payload
        1, 1 | sign, (1 << mbits) - 1, ((1 << mbits) - 1) | sign,  # smallest / largest subnormal
        1 << mbits, (1 << mbits) | sign,  # smallest normal
        exp - 1, (exp - 1) | sign,  # largest finite
        ((1 << (e - 1)) - 1) << mbits,  # 1.0
    ]
    return np.array(pats, dtype=np.uint64).astype(f"u{dtype.itemsize}").view(dtype)


def column(recipe: str, dtype: np.dtype, n: int, rng, picks) -> np.ndarray:
    """One column of ``n`` values following ``recipe``."""
    u = np.dtype(f"u{dtype.itemsize}") if dtype != np.bool_ else np.dtype(np.uint8)
    special = special_values(dtype)
    pool = special[[p % len(special) for p in picks]]
    if recipe == "constant":
        return np.full(n, pool[0], dtype=dtype)
    if recipe == "special":  # only edge values
        return rng.choice(pool, n)
    if recipe == "bits":  # every bit pattern: NaN payloads, subnormals, extremes
        if dtype == np.bool_:
            return rng.integers(0, 2, n).astype(bool)
        return rng.integers(0, 2**(8 * dtype.itemsize), n, dtype=np.uint64).astype(u).view(dtype)
    if recipe == "skewed":  # one value mostly: low-entropy bits, so real bases
        out = np.full(n, pool[0], dtype=dtype)
        hit = rng.random(n) < 0.08
        out[hit] = rng.choice(pool, int(hit.sum()))
        return out
    # "small": small integers, decimals or binary fractions (fixed-point codecs), with a few specials
    if dtype == np.bool_:
        return rng.random(n) < 0.3
    if dtype.kind in "iu":
        lo = 0 if dtype.kind == "u" else -50
        return rng.integers(lo, 50, n).astype(dtype)
    k = int(rng.integers(0, 4))
    if rng.random() < 0.5:
        vals = (rng.integers(-2000, 2000, n) / 10.0**k).astype(dtype)
    else:
        vals = (rng.integers(-2000, 2000, n) / 2.0**k).astype(dtype)
    if rng.random() < 0.3:
        vals[rng.random(n) < 0.05] = pool[0]
    return vals


RECIPES = ("constant", "special", "bits", "skewed", "small")


@st.composite
def tables(draw, dtypes=DTYPES, max_rows=300, max_cols=12):
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    n = draw(st.one_of(st.just(1), st.integers(1, 24), st.integers(1, max_rows)))
    d = draw(st.one_of(st.just(1), st.integers(1, max_cols)))
    recipes = draw(st.lists(st.sampled_from(RECIPES), min_size=d, max_size=d))
    picks = draw(st.lists(st.integers(0, 63), min_size=1, max_size=6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = np.empty((n, d), dtype=dtype)
    for j, recipe in enumerate(recipes):
        X[:, j] = column(recipe, dtype, n, rng, picks if j % 2 == 0 else picks[::-1])
    return X


def available_beta(X: np.ndarray, widths: str) -> int:
    """Number of non-constant bit positions of the encoded rows (the largest valid beta)."""
    codecs = fit_codecs(X, widths)
    codes = encode_columns(X, codecs).astype(np.uint64)
    changed = np.bitwise_or.reduce(codes ^ codes[:1], axis=0)
    return int(sum(bin(int(v)).count("1") for v in changed))


def options(draw, X):
    widths = draw(st.sampled_from(["narrow", "native"]))
    available = available_beta(X, widths)
    raw = draw(st.one_of(st.none(), st.integers(1, 8), st.integers(1, 80)))
    if raw is not None and raw > available:  # genuinely invalid: the documented error, then a valid one
        with pytest.raises(ValueError, match="beta"):
            gedenb.compress(X, beta=raw, widths=widths)
        raw = available if available else None
    return dict(beta=raw, tau=draw(st.integers(1, 12)), store_condensed=draw(st.booleans()), widths=widths)


_counter = itertools.count()



@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory(prefix="gedenb-hyp-") as tmp:
        yield Path(tmp)


def check_round_trip(X, kw, data, folder, order):
    src = np.asfortranarray(X) if order == "F" else X
    c = gedenb.compress(src, **kw)
    assert c.shape == X.shape and c.dtype == X.dtype
    if kw["beta"] and kw["store_condensed"]:
        assert c.m == len(c.weights) >= 1 and int(c.weights.sum()) == len(X)
    else:
        assert c.m == 0
    assert same(gedenb.decompress(c), X)

    path = folder / f"t{next(_counter)}.gede"
    size = gedenb.save(c, path)
    assert size == path.stat().st_size
    n = len(X)
    with gedenb.open(path, verify=data.draw(st.booleans(), label="verify")) as r:
        assert r.shape == X.shape and r.dtype == X.dtype and len(r) == n
        assert same(r.read_rows(slice(None)), X)
        for _ in range(data.draw(st.integers(1, 3), label="reads")):
            idx = data.draw(st.lists(st.integers(-n, n - 1), min_size=0, max_size=40), label="rows")
            got = r.read_rows(idx)
            assert same(got, X[np.asarray(idx, dtype=np.int64)].reshape(len(idx), X.shape[1]))
        i = data.draw(st.integers(-n, n - 1), label="row")
        assert same(r[i], X[i])
        if kw["beta"]:
            s0, w0 = gedenb.condensed(c)
            s1, w1 = r.condensed()
            assert same(s1, s0) and same(w1, np.asarray(w0))
            assert int(w1.sum()) == n
        else:
            with pytest.raises(ValueError, match="beta=None"):
                r.condensed()
    path.unlink()


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=tables(), data=st.data())
def test_round_trip_memory_and_file(X, data, folder):
    kw = options(data.draw, X)
    check_round_trip(X, kw, data, folder, data.draw(st.sampled_from("CF"), label="order"))


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=tables(), data=st.data())
def test_round_trip_memory_and_file_slow(X, data, folder):
    kw = options(data.draw, X)
    check_round_trip(X, kw, data, folder, data.draw(st.sampled_from("CF"), label="order"))


@st.composite
def special_tables(draw):
    """Tables made only of edge values, small shapes: every special value in every codec path."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    pool = special_values(dtype)
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 4))
    idx = draw(st.lists(st.integers(0, len(pool) - 1), min_size=n * d, max_size=n * d))
    return pool[np.array(idx)].reshape(n, d)


@settings(max_examples=120, deadline=None)
@given(X=special_tables(), data=st.data())
def test_round_trip_of_edge_values(X, data, folder):
    kw = options(data.draw, X)
    check_round_trip(X, kw, data, folder, "C")


@pytest.mark.slow
@settings(max_examples=1500, deadline=None)
@given(X=special_tables(), data=st.data())
def test_round_trip_of_edge_values_slow(X, data, folder):
    kw = options(data.draw, X)
    check_round_trip(X, kw, data, folder, "C")


@settings(max_examples=40, deadline=None)
@given(X=tables(max_rows=120, max_cols=6), data=st.data())
def test_same_input_gives_the_same_bytes(X, data):
    kw = options(data.draw, X)
    a = _store.to_bytes(gedenb.compress(X, **kw))
    b = _store.to_bytes(gedenb.compress(X.copy(order="F"), **kw))
    assert a == b


def test_special_values_are_what_they_claim():
    """The pools really contain NaN payloads of both signs, signed zeros, infinities and subnormals."""
    for dt in ("float16", "float32", "float64"):
        v = special_values(np.dtype(dt))
        u = v.view(f"u{v.itemsize}").astype(np.uint64)
        sign = np.uint64(1) << np.uint64(8 * v.itemsize - 1)
        nan = np.isnan(v)
        assert nan.sum() >= 6 and (u[nan] & sign).any() and not (u[nan] & sign).all()
        assert len(set(u[nan].tolist())) == nan.sum()  # distinct payloads
        assert np.isposinf(v).any() and np.isneginf(v).any()
        zero = v == 0
        assert (u[zero] & sign).any() and not (u[zero] & sign).all()
        tiny = np.finfo(v.dtype).smallest_normal
        assert ((np.abs(v) < tiny) & (v != 0)).sum() >= 4  # subnormals
    for dt in ("int8", "uint64", "int64"):
        v = special_values(np.dtype(dt))
        assert np.iinfo(v.dtype).min in v and np.iinfo(v.dtype).max in v


SNAN_TABLE = np.array([818696187, 4286665830, 3706342021, 670229964, 2424134608],
                      dtype=np.uint32).view(np.float32).reshape(-1, 1)  # 0xFF815466 is a signalling NaN


@pytest.mark.parametrize("store_condensed", [True, False])
def test_condensed_of_signalling_nan(store_condensed):
    c = gedenb.compress(SNAN_TABLE, beta=1, store_condensed=store_condensed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s, w = gedenb.condensed(c, exact=False)  # the stored row: the mean with the NaN in it
        e, _ = gedenb.condensed(c)  # the exact mean skips the NaN
    assert w.tolist() == [2, 3] and np.isnan(s[1, 0])
    with np.errstate(invalid="ignore"):
        others = SNAN_TABLE[[1, 2, 3, 4], 0].astype(np.float64)
    assert e[1, 0] == others[~np.isnan(others) & (others < 0)].mean()


@pytest.mark.parametrize("store_condensed", [True, False])
def test_reader_condensed_of_signalling_nan(store_condensed, folder):
    c = gedenb.compress(SNAN_TABLE, beta=1, store_condensed=store_condensed)
    path = folder / f"snan{store_condensed}.gede"
    gedenb.save(c, path)
    with gedenb.open(path) as r, warnings.catch_warnings():
        warnings.simplefilter("error")
        s, w = r.condensed(exact=False)
        e, _ = r.condensed()
    s0, w0 = gedenb.condensed(c, exact=False)
    assert w.tolist() == [2, 3] and s.dtype == np.float64 and np.isnan(s[1, 0])
    assert same(s, s0) and np.array_equal(w, w0) and same(e, gedenb.condensed(c)[0]) and not np.isnan(e).any()
