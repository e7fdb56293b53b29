"""gedenb.dask: EntroGeDe over row chunks into a sharded store.

The contract (issue 9): with ``sample_rows >= n`` the sharded store decodes
to exactly the input, and its codecs, entropies, base positions, condensed
samples, weights and Eq. 1 size equal single-machine ``gedenb.compress`` on
the same rows.  Fast tests run on Dask's threaded or synchronous scheduler;
the acceptance test runs on a ``LocalCluster`` of two worker processes with
two million rows of the synthetic mixed-dtype table.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gedenb
from gedenb import sharded
from gedenb.datasets import synthetic_mixed
from gedenb.encode import (
    codec_stats,
    fit_codecs,
    fit_codecs_chunked,
    merge_codec_stats,
)
from gedenb.errors import FormatError

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
gdask = pytest.importorskip("gedenb.dask")


def _store_file(path, role, index=0):
    """The file of a store that its manifest names for ``role`` ("bases", "condensed", "weights", "shard")."""
    doc = json.loads((Path(path) / sharded.MANIFEST).read_text())
    entry = doc["shards"][index] if role == "shard" else doc["files"][role]
    return Path(path) / entry["file"]


def _same_files(a, b):
    """Two stores hold the same files, byte for byte (names differ: each carries its store's generation)."""
    doc_a, doc_b = (json.loads((Path(p) / sharded.MANIFEST).read_text()) for p in (a, b))
    assert len(doc_a["shards"]) == len(doc_b["shards"])
    for role in ("bases", "condensed", "weights"):
        assert _store_file(a, role).read_bytes() == _store_file(b, role).read_bytes(), role
    for i in range(len(doc_a["shards"])):
        assert _store_file(a, "shard", i).read_bytes() == _store_file(b, "shard", i).read_bytes(), i


def _single(*args, **kwargs):
    """Single-machine compress as gedenb.dask writes it: the paper's file, without section LERN (sharded
    stores keep no exact cluster statistics yet)."""
    return gedenb.compress(*args, exact_condensed=False, **kwargs)


@pytest.fixture
def threads():
    with dask.config.set(scheduler="threads"):
        yield


@pytest.fixture
def sync():
    with dask.config.set(scheduler="synchronous"):
        yield


def table(rng, n: int, dtype=np.float64) -> np.ndarray:
    """Columns with structure: categories, prices with 2 decimals, quarters, noise; -0.0 and NaN in floats."""
    X = np.empty((n, 6))
    X[:, 0] = rng.integers(0, 5, n)
    X[:, 1] = np.round(rng.gamma(2, 20, n), 2)
    X[:, 2] = rng.normal(size=n)
    X[:, 3] = rng.integers(0, 1000, n) * 0.25
    X[:, 4] = np.round(rng.uniform(0, 100, n), 1)
    X[:, 5] = X[:, 0] * 2 + rng.integers(0, 3, n)
    dtype = np.dtype(dtype)
    if dtype.kind in "biu":
        return np.abs(X).astype(dtype) if dtype.kind != "b" else (X > 20)
    X = X.astype(dtype)
    X[n // 3, 4] = -0.0  # a decimal column whose verifying decode fails on one chunk only
    X[n // 2, 2] = np.nan
    return X


def chunked(X: np.ndarray, sizes) -> "da.Array":
    return da.from_array(X, chunks=(tuple(sizes),) + X.shape[1:])


def check_same(X, summary, c, folder) -> None:
    """The sharded result equals the single-machine one in everything the issue names."""
    for a, b in zip(summary.codecs, c.codecs):
        assert np.array_equal(a, b)
    assert summary.entropy.tobytes() == c.entropy.tobytes()
    assert np.array_equal(summary.beta_positions, c.beta_positions)
    assert np.array_equal(summary.base_mask, c.base_mask)
    assert summary.n_bases == c.n_bases and summary.m == c.m
    assert np.array_equal(summary.greedy_sizes, c.greedy_sizes)
    assert gedenb.size_breakdown(summary) == gedenb.size_breakdown(c)
    assert gedenb.eq1_bits(summary) == gedenb.eq1_bits(c)
    with gedenb.open(folder) as r:
        assert isinstance(r, sharded.ShardedReader)
        back = r.read_rows(slice(None))
        ref = gedenb.decompress(c)
        assert back.dtype == ref.dtype and back.shape == ref.shape
        assert back.tobytes() == ref.tobytes() == gedenb.encode.as_table(X).tobytes()
        assert gedenb.eq1_bits(r.summary) == gedenb.eq1_bits(c)
        if c.beta:
            s, w = r.condensed()
            s0, w0 = gedenb.condensed(c)
            assert s.tobytes() == s0.tobytes()
            assert w.dtype == w0.dtype and np.array_equal(w, w0)


# --------------------------------------------------------------------------
# codecs fitted by parts
# --------------------------------------------------------------------------
FLOATS = (np.float64, np.float32)


@st.composite
def split_tables(draw):
    dtype = np.dtype(draw(st.sampled_from(FLOATS + (np.float16, np.int16, np.uint64, np.bool_))))
    n = draw(st.integers(1, 60))
    d = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        cols = []
        for _ in range(d):
            digits = draw(st.integers(0, 11))
            scale = draw(st.sampled_from([1.0, 1e-3, 1e6, 2.0**-30]))
            v = np.round(rng.normal(size=n) * 100, digits) * scale
            if draw(st.booleans()):  # some chunks may need fewer digits than others
                v[: n // 2] = np.round(v[: n // 2], max(digits - 1, 0))
            special = draw(st.lists(st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 2.0**60]),
                                    max_size=2))
            for s in special:
                v[rng.integers(n)] = s
            cols.append(v)
        with np.errstate(over="ignore"):  # float16/float32 overflow to inf: more special values
            X = np.stack(cols, axis=1).astype(dtype)
    elif dtype == np.bool_:
        X = rng.integers(0, 2, (n, d)).astype(bool)
    else:
        info = np.iinfo(dtype)
        X = rng.integers(info.min, info.max, (n, d), dtype=dtype, endpoint=True)
        if draw(st.booleans()):
            X[:] = X % 7
    k = draw(st.integers(1, n))
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(k - 1, n - 1), replace=False)) if n > 1 else []
    return X, np.split(X, cuts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(split_tables())
def test_codecs_fitted_by_parts_equal_fit_codecs(case):
    X, parts = case
    ref = fit_codecs(X)
    got = fit_codecs_chunked(parts)
    for a, b in zip(ref, got):
        assert np.array_equal(a, b), (ref, got)


def test_chunks_that_disagree_on_decimal_digits_are_confirmed():
    x = np.round(np.linspace(0, 50, 400), 1)
    x[:200] = np.round(x[:200])  # the first chunk needs 0 digits, the second 1
    X = np.stack([x, x * 3], axis=1)
    parts = [X[:200], X[200:]]
    merged = merge_codec_stats(codec_stats(parts[0]), codec_stats(parts[1]))
    assert not merged[0].dec_exact.all()  # a lower bound only: the check pass must confirm it
    ref = fit_codecs(X)
    got = fit_codecs_chunked(parts)
    assert ref.describe(0) == "decimal:9b(k=1)"
    for a, b in zip(ref, got):
        assert np.array_equal(a, b)


def test_fit_codecs_chunked_rejects_mismatched_chunks():
    with pytest.raises(ValueError, match="same columns"):
        fit_codecs_chunked([np.zeros((2, 2)), np.zeros((2, 3))])
    with pytest.raises(ValueError, match="at least one"):
        fit_codecs_chunked([])


# --------------------------------------------------------------------------
# equality with single-machine compress (threaded scheduler, small tables)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int32, np.uint64, np.bool_])
@pytest.mark.parametrize("beta", [None, 3])
def test_equals_single_machine(threads, tmp_path, rng, dtype, beta):
    X = table(rng, 3000, dtype)
    sizes = [1000, 1, 999, 700, 300]
    s = gdask.compress(chunked(X, sizes), tmp_path / "s", beta=beta, sample_rows=len(X))
    c = _single(X, beta=beta)
    assert s.shard_rows.tolist() == sizes
    check_same(X, s, c, tmp_path / "s")


def test_mixed_dtype_table_equals_single_machine(threads, tmp_path):
    T = synthetic_mixed(30_000, seed=3)
    s = gdask.compress(da.from_array(T, chunks=7000), tmp_path / "s", beta=8, sample_rows=len(T))
    c = _single(T, beta=8)
    check_same(T, s, c, tmp_path / "s")
    with gedenb.open(tmp_path / "s") as r:
        assert r.fields == T.dtype.names
        assert r[5].tobytes() == T[5].tobytes()


def test_options_pass_through(threads, tmp_path, rng):
    X = table(rng, 2000)
    kw = dict(beta=4, tau=3, widths="native", cluster_columns=[0, 1, 3])
    s = gdask.compress(chunked(X, [500] * 4), tmp_path / "s", sample_rows=len(X), **kw)
    check_same(X, s, _single(X, **kw), tmp_path / "s")

    def rule(H, widths, beta):
        return np.argsort(H, kind="stable")[-beta:]

    s = gdask.compress(chunked(X, [1500, 500]), tmp_path / "r", beta=3, cluster_rule=rule, sample_rows=len(X))
    check_same(X, s, _single(X, beta=3, cluster_rule=rule), tmp_path / "r")


def test_keys_wider_than_one_word(threads, tmp_path, rng):
    """Clustering keys of 70 bits and a base of more than 64 bits (native widths keep constant bits)."""
    X = rng.uniform(1, 2, size=(600, 8))  # sign and exponent bits constant: 96 base bits at least
    s = gdask.compress(chunked(X, [200, 250, 150]), tmp_path / "s", beta=70, widths="native", sample_rows=600)
    c = _single(X, beta=70, widths="native")
    assert c.base_bits > 64
    check_same(X, s, c, tmp_path / "s")


def test_constant_table(threads, tmp_path):
    X = np.full((50, 3), 7, dtype=np.int16)
    s = gdask.compress(chunked(X, [20, 30]), tmp_path / "s", sample_rows=50)
    c = _single(X)
    assert s.row_bits == 0
    check_same(X, s, c, tmp_path / "s")


# --------------------------------------------------------------------------
# sampled greedy search, inputs, progress
# --------------------------------------------------------------------------
def test_sampled_base_search_is_still_lossless(threads, tmp_path, rng):
    X = table(rng, 6000)
    s = gdask.compress(chunked(X, [2000] * 3), tmp_path / "s", beta=5, sample_rows=900, seed=7)
    c = _single(X, beta=5)
    assert s.sample_rows == 900
    with gedenb.open(tmp_path / "s") as r:
        assert r.read_rows(slice(None)).tobytes() == X.tobytes()
        samples, weights = r.condensed()  # clusters and centroids do not depend on the sample
        assert samples.tobytes() == gedenb.condensed(c)[0].tobytes()
        assert np.array_equal(weights, c.weights)
    # the base table holds exactly the distinct bases of all rows under the chosen mask
    codes = gedenb.encode.encode_columns(X, s.codecs)
    words = gedenb.bits.pack_codes(codes, s.codecs.width)
    keys = gdask._keys(words, gedenb.layout._runs(np.flatnonzero(s.base_mask)), s.base_bits)
    ckeys = gdask._keys(gedenb.bits.pack_codes(
        gedenb.encode.encode_values(gedenb.condensed(c)[0], s.codecs, X.dtype), s.codecs.width),
        gedenb.layout._runs(np.flatnonzero(s.base_mask)), s.base_bits)
    assert s.n_bases == len(np.unique(np.concatenate([keys, ckeys]), axis=0))
    again = gdask.compress(chunked(X, [2000] * 3), tmp_path / "t", beta=5, sample_rows=900, seed=7)
    assert np.array_equal(again.base_mask, s.base_mask)  # the sample depends only on the seed


def test_default_sample_is_all_rows_of_a_small_table(threads, tmp_path, rng):
    X = table(rng, 500)
    s = gdask.compress(chunked(X, [250, 250]), tmp_path / "s", beta=3)
    assert s.sample_rows == 500 <= gdask.DEFAULT_SAMPLE_ROWS
    check_same(X, s, _single(X, beta=3), tmp_path / "s")


def test_npy_files_and_dask_array_give_the_same_store(threads, tmp_path, rng):
    X = table(rng, 3000)
    paths = []
    for i, part in enumerate(np.array_split(X, 3)):
        paths.append(tmp_path / f"part{i}.npy")
        np.save(paths[-1], np.asfortranarray(part) if i == 1 else part)
    np.save(tmp_path / "empty.npy", X[:0])
    a = gdask.compress(paths[:1] + [tmp_path / "empty.npy"] + paths[1:], tmp_path / "a", beta=4)
    gdask.compress(chunked(X, [1000] * 3), tmp_path / "b", beta=4)
    _same_files(tmp_path / "a", tmp_path / "b")
    check_same(X, a, _single(X, beta=4), tmp_path / "a")


def test_column_chunks_are_joined(threads, tmp_path, rng):
    X = table(rng, 1000)
    s = gdask.compress(da.from_array(X, chunks=(400, 2)), tmp_path / "s", beta=2, sample_rows=1000)
    assert s.shard_rows.tolist() == [400, 400, 200]
    check_same(X, s, _single(X, beta=2), tmp_path / "s")


def test_progress_uses_dask_diagnostics(threads, tmp_path, rng, capsys):
    X = table(rng, 400)
    gdask.compress(chunked(X, [200, 200]), tmp_path / "s", beta=2, progress=True)
    assert "Completed" in capsys.readouterr().out


@pytest.mark.parametrize(
    "data, exc, words",
    [
        (object(), TypeError, "dask array, a list of .npy paths or a table"),
        ([1, 2], TypeError, "paths"),
        ([], ValueError, "at least one"),
        ("3d", ValueError, "2-D"),
        ("complex", TypeError, "not supported"),
        ("unknown", ValueError, "unknown chunk sizes"),
        ("struct2d", ValueError, "1-D"),
    ],
)
def test_bad_inputs_are_rejected(sync, tmp_path, data, exc, words):
    if isinstance(data, str):
        x = da.arange(10, chunks=5)
        data = {
            "3d": lambda: da.zeros((4, 2, 2), chunks=2),
            "complex": lambda: da.zeros((4, 2), chunks=2, dtype=np.complex128),
            "unknown": lambda: da.stack([x, x], axis=1)[x > 3],
            "struct2d": lambda: da.from_array(np.zeros((2, 2), dtype=[("a", "i4")])),
        }[data]()
    with pytest.raises(exc, match=words):
        gdask.compress(data, tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_bad_files_and_parameters(sync, tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 2)))
    np.save(tmp_path / "b.npy", np.zeros((3, 3)))
    np.save(tmp_path / "c.npy", np.zeros((3, 2), dtype=np.float32))
    np.savez(tmp_path / "z.npz", a=np.zeros((3, 2)))
    for other in ("b.npy", "c.npy"):
        with pytest.raises(ValueError, match="first file"):
            gdask.compress([tmp_path / "a.npy", tmp_path / other], tmp_path / "s")
    with pytest.raises(ValueError, match="archive"):
        gdask.compress([tmp_path / "z.npz"], tmp_path / "s")
    x = da.zeros((10, 2), chunks=5)
    for kw, exc in [({"tau": 0}, ValueError), ({"beta": 0}, ValueError), ({"beta": 1.5}, TypeError),
                    ({"sample_rows": 0}, ValueError), ({"widths": "wide"}, ValueError),
                    ({"beta": 99}, ValueError)]:
        with pytest.raises(exc):
            gdask.compress(x + da.arange(10, chunks=5)[:, None], tmp_path / "s", **kw)
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "b.npy", "c.npy", "z.npz"]


# --------------------------------------------------------------------------
# the store: target rules, atomic writes, reader, corruption
# --------------------------------------------------------------------------
def test_target_rules(sync, tmp_path, rng):
    X = table(rng, 300)
    x = chunked(X, [100] * 3)
    (tmp_path / "file").write_bytes(b"x")
    with pytest.raises(FileExistsError):
        gdask.compress(x, tmp_path / "file")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a sharded"):
        gdask.compress(x, tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"
    (tmp_path / "empty").mkdir()
    gdask.compress(x, tmp_path / "empty")  # an empty folder is taken over
    with pytest.raises(FileExistsError, match="overwrite"):
        gdask.compress(x, tmp_path / "empty")
    gdask.compress(chunked(X[:200], [50] * 4), tmp_path / "empty", overwrite=True)
    with gedenb.open(tmp_path / "empty") as r:
        assert r.read_rows(slice(None)).tobytes() == X[:200].tobytes() and r.n_shards == 4
    with pytest.raises(FileNotFoundError):
        gdask.compress(x, tmp_path / "no" / "such")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "file", "other"]


def test_failed_write_leaves_nothing(sync, tmp_path, rng, monkeypatch):
    X = table(rng, 300)
    real = sharded.write_words
    calls = []

    def flaky(folder, name, words):
        calls.append(name)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(folder, name, words)

    monkeypatch.setattr(sharded, "write_words", flaky)
    with pytest.raises(OSError, match="disk full"):
        gdask.compress(chunked(X, [100] * 3), tmp_path / "s", beta=2)
    assert list(tmp_path.iterdir()) == []  # no store, no temporary folder


@pytest.fixture
def store(tmp_path):
    rng = np.random.default_rng(5)
    X = table(rng, 2000)
    with dask.config.set(scheduler="threads"):
        s = gdask.compress(chunked(X, [700, 600, 700]), tmp_path / "s", beta=4)
    return X, s, tmp_path / "s"


def test_reader_reads_rows_by_global_index(store, rng):
    X, s, path = store
    with gedenb.open(path) as r:
        assert len(r) == 2000 and r.shape == X.shape and r.dtype == X.dtype and r.n_shards == 3
        assert r.shard_starts.tolist() == [0, 700, 1300, 2000]
        idx = rng.integers(-2000, 2000, 500)
        assert r.read_rows(idx).tobytes() == X[idx].tobytes()
        assert r.read_rows([699, 700, 1299, 1300, 0, 1999]).tobytes() == X[[699, 700, 1299, 1300, 0, 1999]].tobytes()
        assert r[1500].tobytes() == X[1500].tobytes() and r[-1].tobytes() == X[-1].tobytes()
        assert r[650:1400].tobytes() == X[650:1400].tobytes()
        assert r.read_rows([]).shape == (0, X.shape[1])
        for bad, exc in [([2000], IndexError), ([-2001], IndexError), ([1.0], TypeError), ([[1]], ValueError),
                         (True, TypeError)]:
            with pytest.raises(exc):
                r.read_rows(bad)
        with pytest.raises(TypeError):
            r[1, 2]
        back = pickle.loads(pickle.dumps(r))
        assert back.read_rows(idx).tobytes() == X[idx].tobytes()
        assert "ShardedReader" in repr(r) and r.nbytes > 0
    assert r.closed and "closed" in repr(r)
    with pytest.raises(ValueError, match="closed"):
        r.read_rows([0])


def test_reader_maps_few_shards_at_a_time(sync, tmp_path, rng, monkeypatch):
    X = table(rng, 500)
    gdask.compress(chunked(X, [50] * 10), tmp_path / "s", beta=3)
    monkeypatch.setattr(sharded, "MAX_OPEN_SHARDS", 3)
    with gedenb.open(tmp_path / "s") as r:
        for _ in range(5):
            idx = rng.integers(0, 500, 40)
            assert r.read_rows(idx).tobytes() == X[idx].tobytes()
            assert len(r._open_shards) <= 3


def test_reader_without_clustering(sync, tmp_path, rng):
    X = table(rng, 100)
    gdask.compress(chunked(X, [50, 50]), tmp_path / "s")
    with gedenb.open(tmp_path / "s") as r, pytest.raises(ValueError, match="without clustering"):
        r.condensed()


def _rewrite_manifest(path, edit):
    doc = json.loads((path / sharded.MANIFEST).read_text())
    doc.pop("crc32")
    edit(doc)
    doc["crc32"] = __import__("zlib").crc32(sharded._canonical(doc))
    (path / sharded.MANIFEST).write_text(json.dumps(doc))


@pytest.mark.parametrize("damage, words", [
    ("flip_shard", "checksum"),
    ("truncate_shard", "truncated"),
    ("remove_shard", "missing"),
    ("flip_manifest", "checksum"),
    ("manifest_not_json", "JSON"),
    ("rows", "shard rows"),
    ("width", "width"),
    ("file_name", "file entry"),
    ("major", "version"),
    ("weights", "weights"),
])
def test_damaged_stores_are_refused(store, damage, words):
    _, _, path = store
    shard = _store_file(path, "shard", 1)
    if damage == "flip_shard":
        raw = bytearray(shard.read_bytes())
        raw[len(raw) // 2] ^= 0x10
        shard.write_bytes(bytes(raw))
    elif damage == "truncate_shard":
        shard.write_bytes(shard.read_bytes()[:-8])
    elif damage == "remove_shard":
        shard.unlink()
    elif damage == "flip_manifest":
        text = (path / sharded.MANIFEST).read_text()
        (path / sharded.MANIFEST).write_text(text.replace('"tau": 10', '"tau": 11'))
    elif damage == "manifest_not_json":
        (path / sharded.MANIFEST).write_bytes(b"\xff{")
    elif damage == "rows":
        _rewrite_manifest(path, lambda d: d["shards"][0].update(rows=d["shards"][0]["rows"] + 1))
    elif damage == "width":
        _rewrite_manifest(path, lambda d: d["codecs"]["width"].__setitem__(0, 65))
    elif damage == "file_name":
        _rewrite_manifest(path, lambda d: d["shards"][0].update(file="../escape.u64"))
    elif damage == "major":
        _rewrite_manifest(path, lambda d: d.update(version=[2, 0]))
    elif damage == "weights":
        raw = np.fromfile(_store_file(path, "weights"), dtype="<i8")
        raw[0] += 1
        raw.tofile(_store_file(path, "weights"))
        _rewrite_manifest(path, lambda d: d["files"]["weights"].update(crc32=__import__("zlib").crc32(raw.tobytes())))
    with pytest.raises(FormatError, match=words):
        gedenb.open(path)


def test_unverified_open_still_catches_bad_base_ids(store):
    X, s, path = store
    with gedenb.open(path, verify=False) as r:
        assert r.read_rows(slice(None)).tobytes() == X.tobytes()
    assert s.id_bits > 0
    shard = _store_file(path, "shard", 0)
    raw = np.fromfile(shard, dtype="<u8")  # set the first record's base ID bits (MSB first) to all ones
    raw[0] |= np.uint64(((1 << s.id_bits) - 1) << (64 - s.id_bits))
    raw.tofile(shard)
    with pytest.raises(FormatError):
        gedenb.open(path)
    if (1 << s.id_bits) - 1 >= s.n_bases:
        with gedenb.open(path, verify=False) as r, pytest.raises(FormatError, match="base ID"):
            r.read_rows([0])


def test_open_dispatch_leaves_other_folders_alone(tmp_path):
    with pytest.raises(IsADirectoryError):
        gedenb.open(tmp_path)


def test_epoch_subset_sampler_over_a_sharded_store(store):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader, Dataset

    from gedenb.torch import EpochSubsetSampler

    X, _, path = store

    class Rows(Dataset):
        def __init__(self, reader):
            self.reader = reader

        def __len__(self):
            return len(self.reader)

        def __getitem__(self, i):
            return torch.from_numpy(self.reader.read_rows([i])[0].copy())

    reader = gedenb.open(path)
    sampler = EpochSubsetSampler(len(reader), 0.1, seed=3)
    loader = DataLoader(Rows(reader), batch_size=64, sampler=sampler, num_workers=2)
    for epoch in (0, 1):
        sampler.set_epoch(epoch)
        got = torch.cat(list(loader)).numpy()
        assert got.tobytes() == X[sampler.subset(epoch)].tobytes()
    reader.close()


# --------------------------------------------------------------------------
# acceptance: a LocalCluster with two worker processes
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
            Client(lc) as client:
        yield client


def test_local_cluster_mixed_table_equals_single_machine(cluster, tmp_path):
    """Two million rows of the synthetic mixed-dtype table, in four .npy files and as a dask array."""
    n = 2_000_000
    T = synthetic_mixed(n, seed=11)
    paths = []
    for i, part in enumerate(np.array_split(T, 4)):
        paths.append(str(tmp_path / f"part{i}.npy"))
        np.save(paths[-1], part)
    del part
    c = _single(T, beta=10)
    s = gdask.compress(paths, tmp_path / "s", beta=10, sample_rows=n)
    assert s.shard_rows.tolist() == [n // 4] * 4
    check_same(T, s, c, tmp_path / "s")


def test_local_cluster_dask_array_input(cluster, tmp_path, capsys):
    """A dask array whose blocks are loaded on the workers gives the same store as the .npy files."""
    T = synthetic_mixed(200_000, seed=13)
    paths = []
    for i, part in enumerate(np.array_split(T, 3)):
        paths.append(str(tmp_path / f"part{i}.npy"))
        np.save(paths[-1], part)
    x = da.concatenate([da.from_delayed(dask.delayed(np.load)(p), shape=(len(a),), dtype=T.dtype)
                        for p, a in zip(paths, np.array_split(T, 3))])
    gdask.compress(x, tmp_path / "a", beta=6)
    gdask.compress(paths, tmp_path / "b", beta=6, progress=True)
    assert "Completed" in capsys.readouterr().out  # distributed's own progress bar
    _same_files(tmp_path / "a", tmp_path / "b")
    check_same(T, gedenb.open(tmp_path / "a").summary, _single(T, beta=6), tmp_path / "a")


@pytest.mark.slow
def test_local_cluster_large_sampled(cluster, tmp_path):
    """Eight million rows, greedy search on a 1M-row sample: lossless, condensed equal to single machine."""
    n = 8_000_000
    T = synthetic_mixed(n, seed=12)
    paths = []
    for i, part in enumerate(np.array_split(T, 16)):
        paths.append(str(tmp_path / f"part{i}.npy"))
        np.save(paths[-1], part)
    s = gdask.compress(paths, tmp_path / "s", beta=10, sample_rows=1_000_000)
    c = _single(T, beta=10)
    with gedenb.open(tmp_path / "s") as r:
        assert r.read_rows(slice(None)).tobytes() == T.tobytes()
        samples, weights = r.condensed()
        assert samples.tobytes() == gedenb.condensed(c)[0].tobytes() and np.array_equal(weights, c.weights)
    assert s.n_bases >= 1 and gedenb.eq1_bits(s) > 0


def test_a_dataframe_goes_in_and_comes_back(threads, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(5)
    n = 3000
    age = pd.array(rng.integers(18, 90, n), dtype="Int64")
    age[::7] = pd.NA
    df = pd.DataFrame({"age": age, "city": pd.Categorical(rng.choice(["a", "b", "c"], n)),
                       "note": pd.array(rng.choice(["x", "", "long note"], n), dtype="string"),
                       "spend": rng.normal(size=n).round(2)})
    s = gdask.compress(df, tmp_path / "f", beta=4, chunk_rows=700, sample_rows=n)
    assert s.shard_rows.tolist() == [700] * 4 + [200]
    with gedenb.open(tmp_path / "f") as r:
        assert r.version == sharded.FRAME_SHARDED_VERSION
        pd.testing.assert_frame_equal(r.read_rows(slice(None), as_frame=True), df, check_exact=True)
        pd.testing.assert_frame_equal(r.read_rows([2999, 5], as_frame=True), df.iloc[[2999, 5]], check_exact=True)
        assert gedenb.eq1_bits(r.summary) == gedenb.eq1_bits(s) == min(s.greedy_sizes)
    single = gedenb.compress(df, beta=4, exact_condensed=False)
    assert gedenb.eq1_bits(s) == gedenb.eq1_bits(single)
    X = np.arange(40, dtype=np.int64).reshape(20, 2)  # a NumPy table in memory, too
    gdask.compress(X, tmp_path / "x", chunk_rows=6)
    with gedenb.open(tmp_path / "x") as r:
        assert r.n_shards == 4 and r.read_rows(slice(None)).tobytes() == X.tobytes()
    with pytest.raises(ValueError, match="chunk_rows"):
        gdask.compress(chunked(X, [10, 10]), tmp_path / "y", chunk_rows=5)
