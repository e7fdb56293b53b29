"""The read paths of every store kind, on tiny data, for the CI pass under ``NUMBA_DISABLE_JIT=1``.

Coverage tools and debuggers see a kernel's Python source only when Numba
does not compile it.  ``.ci/run`` runs this module a second time with
``NUMBA_DISABLE_JIT=1 python -m pytest -m nojit tests/test_nojit.py``: each
store kind is written and read back (``gedenb.open(...).read_rows``,
``decompress``, ``condensed``, ``ImageReader.read_images``,
``ShardedReader.read_rows``) with every kernel running as plain Python, and
the bytes read are compared with those written.  In the main suite the same
tests run compiled.  The data are kept tiny: pure-Python kernels are slow.
"""

from __future__ import annotations

import numpy as np
import pytest

import gedenb

pytestmark = pytest.mark.nojit


@pytest.fixture(autouse=True, params=["serial", "parallel"])
def batches(request, monkeypatch):
    """Every test twice: batches decoded by the serial kernels, then by the parallel ones (``prange``)."""
    from gedenb import encode, layout
    from gedenb.entropy import deviations

    if request.param == "parallel":
        for module in (deviations, encode, layout):
            monkeypatch.setattr(module, "PARALLEL_MIN_VALUES", 1)
    return request.param


def test_kernels_are_plain_python_when_jit_is_off():
    """Under ``NUMBA_DISABLE_JIT=1`` the kernels must really run as Python (else this pass tests nothing)."""
    import numba

    from gedenb import encode, layout

    from gedenb._numba import warmup_rows

    kernels = (encode._decode_codes_serial, layout._decode_rows_serial)
    compiled = [isinstance(k, numba.core.dispatcher.Dispatcher) for k in kernels]
    assert compiled == [not numba.config.DISABLE_JIT] * 2
    assert (warmup_rows(10, 3) == []) == bool(numba.config.DISABLE_JIT)  # nothing to compile: no warm-up reads


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _table(rng, n=120):
    """Floats with few decimals, small integers and a special value or two."""
    X = np.empty((n, 4))
    X[:, 0] = np.round(rng.normal(size=n), 2)
    X[:, 1] = rng.integers(0, 6, n)
    X[:, 2] = rng.integers(0, 3, n)
    X[:, 3] = np.round(rng.uniform(0, 50, n), 1)
    X[3, 0], X[5, 3] = np.nan, -0.0
    return X


def _lag_table(rng, n=150, w=4):
    """A sliding window over one series (columns 1..w): the lag groups of section PRED."""
    s = np.round(np.cumsum(rng.normal(size=n + w)), 3)
    X = np.empty((n, w + 2))
    X[:, 0] = rng.integers(0, 20, n)
    for k in range(w):
        X[:, 1 + k] = s[k:k + n]
    X[:, -1] = rng.integers(0, 3, n)
    return X


def _check_reads(X, c, tmp_path, name="t.gede"):
    """``decompress``, ``condensed`` and ``read_rows`` (all rows, a batch, one row) of store ``c``."""
    assert _same(gedenb.decompress(c), X)
    path = tmp_path / name
    gedenb.save(c, path)
    rows = np.array([len(X) - 1, 0, 7, 7, 2], dtype=np.int64)
    with gedenb.open(path) as r:
        r.warmup()
        assert _same(r.read_rows(slice(None)), X)
        assert _same(r.read_rows(rows), X[rows])
        assert r[1].tobytes() == X[1].tobytes()
        if c.m:
            samples, weights = gedenb.condensed(c, exact=False)
            got, w = r.condensed(exact=False)
            assert _same(got, samples) and _same(w, weights)
    return path


@pytest.mark.parametrize("coding", ["raw", "entropy"])
def test_table_store(rng, tmp_path, coding):
    X = _table(rng)
    c = gedenb.compress(X, beta=4, coding=coding)
    assert c.m > 0
    _check_reads(X, c, tmp_path)


def test_entropy_store_with_predictive_transforms(rng, tmp_path):
    X = _lag_table(rng)
    c = gedenb.compress(X, coding="entropy")
    assert c.predict is not None and c.predict.n_groups >= 1  # the file has a PRED section
    _check_reads(X, c, tmp_path)


def test_dataframe_store(rng, tmp_path):
    pd = pytest.importorskip("pandas")
    n = 80
    df = pd.DataFrame({
        "x": np.round(rng.normal(size=n), 2),
        "k": rng.integers(0, 5, size=n),
        "city": pd.Series(rng.choice(["Aarhus", "Odense", None], size=n), dtype="string"),
        "grade": pd.Categorical(rng.choice(["a", "b"], size=n)),
    })
    c = gedenb.compress(df, beta=4)
    path = tmp_path / "frame.gede"
    gedenb.save(c, path)
    with gedenb.open(path) as r:
        pd.testing.assert_frame_equal(r.read_rows(slice(None), as_frame=True), df)
        pd.testing.assert_frame_equal(r.read_rows(np.array([3, 1]), as_frame=True), df.iloc[[3, 1]])
    pd.testing.assert_frame_equal(gedenb.decompress(c, as_frame=True), df)


def _tiny_images(rng, n=12):
    """Small 8 x 8 grey images of two classes: smooth ramps plus noise (uint8)."""
    base = np.add.outer(np.arange(8), np.arange(8)) * 8
    x = (base[None] + rng.integers(0, 12, (n, 8, 8))).astype(np.uint8)
    y = np.arange(n) % 2
    return x, y


@pytest.mark.parametrize("coding", ["raw", "entropy"])
@pytest.mark.parametrize("transform", ["identity", "dct", "dct_lossless"])
def test_image_store(rng, tmp_path, transform, coding):
    from gedenb.images import ImageReader, compress_images, decompress_images

    x, y = _tiny_images(rng)
    store = compress_images(x, y, transform=transform, coding=coding)
    path = tmp_path / "images.gede"
    gedenb.save(store, path)
    expect, labels = decompress_images(store)  # dct is lossy: the store's own images
    if transform != "dct":
        assert expect.tobytes() == x.tobytes() and _same(labels, y)
    idx = np.array([5, 0, 11, 5], dtype=np.int64)
    with ImageReader(path) as r:
        r.warmup()
        images, got = r.read_images(idx)
        assert _same(images, expect[idx]) and _same(got, labels[idx])
        assert _same(r.read_images(np.arange(len(x)))[0], expect)
    with gedenb.open(path) as r:
        assert _same(r.read_images(idx)[0], expect[idx])


def test_sharded_store(rng, tmp_path):
    gdask = pytest.importorskip("gedenb.dask")
    from gedenb.sharded import ShardedReader

    X = rng.integers(0, 50, size=(90, 3))
    folder = tmp_path / "sharded"
    gdask.compress(X, folder, beta=4, chunk_rows=40)
    with ShardedReader(folder) as r:
        assert _same(r.read_rows(slice(None)), X)
        rows = np.array([89, 0, 41, 39, 40], dtype=np.int64)
        assert _same(r.read_rows(rows), X[rows])
