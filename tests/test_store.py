"""gedenb.store: save / open / Reader API, file size against Eq. 1, and the documented byte layout."""

from __future__ import annotations

import os
import pickle
import stat
import struct
import zlib

import numpy as np
import pytest

import gedenb
from gedenb import FormatError
from gedenb import store as _store


def same(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def mixed_table(n=300, seed=0):
    """float64 with decimal, binary, IEEE (NaN, inf, -0.0, subnormal) and constant columns."""
    rng = np.random.default_rng(seed)
    special = np.array([np.nan, -np.inf, np.inf, -0.0, 5e-324, 1.0], dtype=np.float64)
    return np.stack([
        rng.integers(-999, 999, n) / 100.0,
        rng.integers(-64, 64, n) / 16.0,
        rng.choice(special, n),
        np.full(n, 7.5),
        rng.choice([0.0, 1.0, 2.0, 40.0], n, p=[.85, .05, .05, .05]),
    ], axis=1)


@pytest.fixture(scope="module")
def table():
    X = mixed_table()
    return X, gedenb.compress(X, beta=3, tau=8)


@pytest.fixture(scope="module")
def gfile(table, tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "t.gede"
    gedenb.save(table[1], path)
    return path


@pytest.fixture(scope="module")
def california():
    import gedenb.datasets

    return gedenb.datasets.california_housing().data


# --------------------------------------------------------------------------
# save / open / Reader
# --------------------------------------------------------------------------
def test_save_returns_the_file_size_and_the_documented_bytes(table, tmp_path):
    X, c = table
    path = tmp_path / "a.gede"
    size = gedenb.save(c, path)
    assert size == path.stat().st_size == len(_store.to_bytes(c))
    assert path.read_bytes() == _store.to_bytes(c)
    assert gedenb.save(c, str(path)) == size  # str paths, overwriting
    assert [p.name for p in tmp_path.iterdir()] == ["a.gede"]


def test_reader_attributes(table, gfile):
    X, c = table
    with gedenb.open(gfile) as r:
        assert r.shape == X.shape == (r.n, r.d) and len(r) == len(X)
        assert r.dtype == X.dtype and r.m == c.m > 0 and r.n_bases == c.n_bases
        assert r.nbytes == os.path.getsize(gfile) and r.version == (1, 1) and not r.closed
        for a, b in zip(r.codecs, c.codecs):
            assert np.array_equal(a, b)
        assert np.array_equal(r.beta_positions, c.beta_positions)
        rc = r.compressed
        assert isinstance(rc, gedenb.Compressed) and rc.store_condensed and rc.tau == 8
        assert np.array_equal(rc.base_mask, c.base_mask) and np.array_equal(rc.weights, c.weights)
        assert gedenb.eq1_bits(rc) == gedenb.eq1_bits(c)
        assert same(gedenb.decompress(rc), X)
        for a in (rc.records, rc.bases, rc.weights, rc.base_mask, rc.beta_positions, *rc.codecs):
            assert not a.flags.writeable  # the reader's container is as immutable as compress's


def test_read_rows_and_getitem(table, gfile):
    X, _ = table
    n = len(X)
    with gedenb.open(gfile) as r:
        assert same(r.read_rows(slice(None)), X)
        for s in (slice(5, 17), slice(None, None, -3), slice(-10, None), slice(7, 7), slice(n, n + 5),
                  slice(-10 * n, 10 * n, 7)):
            assert same(r.read_rows(s), X[s]) and same(r[s], X[s])
        idx = [5, -1, 5, 0, -n, n - 1, 3, 3]
        assert same(r.read_rows(idx), X[idx])
        for dt in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64):
            a = np.array([3, 1, 2, 1], dtype=dt)
            assert same(r.read_rows(a), X[a.astype(np.int64)])
        assert same(r.read_rows(np.array([2, 9])[::-1]), X[[9, 2]])  # non-contiguous index array
        assert same(r[7], X[7]) and same(r[-1], X[-1]) and same(r[np.int32(4)], X[4])
        assert same(r[np.uint64(n - 1)], X[n - 1])
        assert same(r.read_rows(4), X[[4]])  # a scalar gives one row, 2-D
        for empty in ([], np.array([], dtype=np.int64), np.zeros(0), range(0)):
            out = r.read_rows(empty)
            assert out.shape == (0, X.shape[1]) and out.dtype == X.dtype
        assert same(r.read_rows(range(3, 9)), X[3:9])
        assert same(np.stack(list(r)), X)  # iteration by __getitem__ ends with IndexError


@pytest.mark.parametrize("bad,exc", [
    (True, TypeError), (np.bool_(False), TypeError), ([True, False], TypeError), (np.ones(300, bool), TypeError),
    (1.0, TypeError), ([0.0, 1.0], TypeError), (np.array([1, 2], dtype=np.float32), TypeError), ("3", TypeError),
    ([1, None], TypeError), (300, IndexError), (-301, IndexError), ([0, 300], IndexError), ([-301], IndexError),
    (2**70, IndexError), ([2**64 - 1], IndexError), (np.array([2**63], dtype=np.uint64), IndexError),
    ([[1, 2]], ValueError), (np.zeros((2, 2), dtype=np.int64), ValueError),
])
def test_bad_indices(table, gfile, bad, exc):
    with gedenb.open(gfile) as r:
        with pytest.raises(exc):
            r.read_rows(bad)
        with pytest.raises(exc):
            r[bad]


def test_getitem_refuses_numpy_style_tuples(gfile):
    with gedenb.open(gfile) as r, pytest.raises(TypeError, match="rows only"):
        r[1, 2]


def test_condensed_in_both_modes(tmp_path):
    X = mixed_table(400, seed=1)
    for store_condensed in (True, False):
        c = gedenb.compress(X, beta=4, store_condensed=store_condensed)
        gedenb.save(c, tmp_path / "c.gede")
        with gedenb.open(tmp_path / "c.gede") as r:
            s, w = r.condensed()
            assert r.m == (c.m if store_condensed else 0)
        s0, w0 = gedenb.condensed(c)
        assert s.dtype == np.float64 and w.dtype == np.int64
        assert same(s, s0) and np.array_equal(w, w0) and int(w.sum()) == len(X)
    c = gedenb.compress(X)
    gedenb.save(c, tmp_path / "plain.gede")
    with gedenb.open(tmp_path / "plain.gede") as r, pytest.raises(ValueError, match="beta=None"):
        r.condensed()


def test_close_and_context_manager(table, gfile):
    X, _ = table
    r = gedenb.open(gfile)
    kept = r.read_rows([1, 2])
    view = r.compressed.records  # a view of the map outlives close()
    r.close()
    assert r.closed and "(closed)" in repr(r)
    r.close()  # twice is fine
    assert same(kept, X[[1, 2]]) and view.size > 0 and int(view[0]) >= 0
    for op in (lambda: r.read_rows([0]), lambda: r[0], lambda: r.shape, lambda: len(r), r.condensed):
        with pytest.raises(ValueError, match="closed"):
            op()
    with gedenb.open(gfile) as r2:
        assert same(r2[3], X[3])
    assert r2.closed


def test_repr(table, gfile):
    X, c = table
    with gedenb.open(gfile) as r:
        text = repr(r)
    assert text.startswith("<gedenb.Reader ") and str(gfile) in text
    for part in (f"shape={X.shape}", "dtype=float64", f"n_b={c.n_bases}", f"m={c.m}", "format 1.1"):
        assert part in text


def test_pickled_reader_reopens_the_file(table, gfile):
    X, _ = table
    with gedenb.open(gfile) as r:
        r2 = pickle.loads(pickle.dumps(r))
    with r2:
        assert same(r2.read_rows(slice(None)), X)


def test_open_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        gedenb.open(tmp_path / "missing.gede")
    with pytest.raises(IsADirectoryError):
        gedenb.open(tmp_path)
    for content in (b"", b"x", b"hello world\n" * 20, bytes(96), bytes(4096), np.arange(100).tobytes()):
        p = tmp_path / "not.gede"
        p.write_bytes(content)
        with pytest.raises(FormatError, match="^header:") as e:
            gedenb.open(p)
        assert str(p) in str(e.value)
    np.save(tmp_path / "a.npy", np.zeros((10, 10)))
    with pytest.raises(FormatError, match="not a .gede file"):
        gedenb.open(tmp_path / "a.npy")
    assert issubclass(FormatError, ValueError)


def test_open_refuses_special_files(tmp_path):
    fifo = tmp_path / "fifo.gede"
    os.mkfifo(fifo)  # opening a FIFO for reading would block forever
    with pytest.raises(FormatError, match="not a regular file"):
        gedenb.open(fifo)


def test_save_errors(table, tmp_path):
    X, c = table
    with pytest.raises(FileNotFoundError):
        gedenb.save(c, tmp_path / "no" / "such" / "folder.gede")
    (tmp_path / "dir.gede").mkdir()
    with pytest.raises(OSError):
        gedenb.save(c, tmp_path / "dir.gede")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dir.gede"]  # no temporary file left
    with pytest.raises(TypeError, match="Compressed"):
        gedenb.save(X, tmp_path / "x.gede")


def test_save_refuses_an_inconsistent_container(table, tmp_path):
    import dataclasses

    X, c = table
    bad = dataclasses.replace(c, records=c.records[:-1])
    with pytest.raises(ValueError, match="records"):
        gedenb.save(bad, tmp_path / "bad.gede")
    bad = dataclasses.replace(c, weights=c.weights[::-1] * 2)
    with pytest.raises(ValueError, match="weights"):
        gedenb.save(bad, tmp_path / "bad.gede")
    assert list(tmp_path.iterdir()) == []


def test_file_permissions_follow_umask_or_the_replaced_file(table, tmp_path):
    X, c = table
    old = os.umask(0o027)
    try:
        gedenb.save(c, tmp_path / "new.gede")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.gede").stat().st_mode) == 0o640
    (tmp_path / "old.gede").write_bytes(b"x")
    os.chmod(tmp_path / "old.gede", 0o604)
    gedenb.save(c, tmp_path / "old.gede")
    assert stat.S_IMODE((tmp_path / "old.gede").stat().st_mode) == 0o604


def test_open_readers_keep_the_version_they_opened(table, tmp_path):
    X, c = table
    path = tmp_path / "t.gede"
    gedenb.save(c, path)
    with gedenb.open(path) as r:
        Y = X[:50].copy()
        gedenb.save(gedenb.compress(Y), path)  # replaced by a rename, never in place
        assert same(r.read_rows(slice(None)), X)
        with gedenb.open(path) as r2:
            assert same(r2.read_rows(slice(None)), Y)


def test_verify_false_reads_a_valid_file_identically(table, gfile):
    X, c = table
    with gedenb.open(gfile, verify=False) as r:
        assert same(r.read_rows(slice(None)), X)
        s, w = r.condensed()
    s0, w0 = gedenb.condensed(c)
    assert same(s, s0) and np.array_equal(w, w0)


# --------------------------------------------------------------------------
# Eq. 1 against bytes on disk
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [dict(), dict(beta=8), dict(beta=8, store_condensed=False)],
                         ids=["beta=None", "beta=8", "beta=8-lean"])
def test_file_size_matches_eq1_on_california_housing(california, kw, tmp_path):
    X = california
    c = gedenb.compress(X, **kw)
    size = gedenb.save(c, tmp_path / "ch.gede")
    eq1 = gedenb.eq1_bits(c) / 8
    # Eq. 1's S_params is the header, codecs, mask and beta positions; the file adds six 16-byte
    # section frames and rounds each bit stream up to whole 64-bit words
    assert eq1 <= size <= 1.01 * eq1 + 6 * 16 + 3 * 8 + 16
    assert size < 0.5 * X.nbytes
    with gedenb.open(tmp_path / "ch.gede") as r:
        idx = np.random.default_rng(0).integers(0, len(X), 500)
        assert same(r.read_rows(idx), X[idx])


# --------------------------------------------------------------------------
# the byte layout of docs/FORMAT.md, decoded by hand
# --------------------------------------------------------------------------
_FIELDS = "8s H H I Q Q I I Q I I 8s I I Q Q I I".split()


def by_the_book(data: bytes):
    """Decode a whole file following docs/FORMAT.md only: (rows incl. condensed, weights, header)."""
    offsets, pos = [], 0
    for f in _FIELDS:
        offsets.append(pos)
        pos += struct.calcsize("<" + f)
    assert pos == 96
    assert offsets == [0, 8, 10, 12, 16, 24, 32, 36, 40, 48, 52, 56, 64, 68, 72, 80, 88, 92]  # as documented
    vals = [struct.unpack_from("<" + f, data, o)[0] for f, o in zip(_FIELDS, offsets)]
    (magic, major, minor, flags, n, m, d, l_t, n_b, beta, tau, dt, nsec, _, total, _, _, crc) = vals
    assert magic == b"\x89GEDE\r\n\x1a" and total == len(data) and crc == zlib.crc32(data[:92])
    dtype = np.dtype(dt.rstrip(b"\0").decode())
    sec, pos = {}, 96
    for _ in range(nsec):
        tag, scrc, nb = struct.unpack_from("<4sIQ", data, pos)
        payload = data[pos + 16:pos + 16 + nb]
        assert zlib.crc32(payload) == scrc
        sec[tag.decode()] = payload
        pos += 16 + nb + (-nb % 8)
        assert pos % 8 == 0
    assert pos == len(data)
    codecs = [struct.unpack_from("<BBhIQ", sec["CODC"], 16 * j) for j in range(d)]
    mask = [(sec["BMSK"][p >> 3] >> (7 - (p & 7))) & 1 for p in range(l_t)]
    beta_pos = [struct.unpack_from("<I", sec["BETA"], 4 * i)[0] for i in range(beta)]
    assert bool(flags & 2) == bool(beta) == bool(beta_pos)

    def stream(name):
        words = [int.from_bytes(sec[name][i:i + 8], "little") for i in range(0, len(sec[name]), 8)]
        return lambda q, k: sum(((words[(q + i) >> 6] >> (63 - ((q + i) & 63))) & 1) << (k - 1 - i)
                                for i in range(k))

    base_bits, rec_bits, w_bits = stream("BASE"), stream("RECS"), stream("WGHT")
    l_b = sum(mask)
    id_bits = (n_b - 1).bit_length()
    rec = id_bits + l_t - l_b
    base_pos = [p for p in range(l_t) if mask[p]]
    dev_pos = [p for p in range(l_t) if not mask[p]]
    nb_bits = 8 * dtype.itemsize if dtype != np.bool_ else 8
    rows = np.zeros((n + m, d), dtype=dtype)
    for r in range(n + m):
        start = r * rec
        bid = rec_bits(start, id_bits) if id_bits else 0
        assert bid < n_b
        bitsof = [0] * l_t
        for i, p in enumerate(base_pos):
            bitsof[p] = base_bits(bid * l_b + i, 1)
        for i, p in enumerate(dev_pos):
            bitsof[p] = rec_bits(start + id_bits + i, 1)
        col = 0
        for j, (kind, width, scale, _, offset) in enumerate(codecs):
            code = 0
            for p in range(col, col + width):
                code = (code << 1) | bitsof[p]
            col += width
            key = (code + offset) % 2**64
            if kind == 0:  # INT
                rows[r, j:j + 1].view(f"u{dtype.itemsize}")[0] = key % 2**nb_bits
            elif kind == 3:  # IEEE: order-preserving key back to the bit pattern
                key %= 2**nb_bits
                sign = 1 << (nb_bits - 1)
                pattern = key ^ sign if key & sign else ~key % 2**nb_bits
                rows[r, j:j + 1].view(f"u{dtype.itemsize}")[0] = pattern
            else:
                q = key - 2**64 if key >= 2**63 else key
                v = float(q) / 10.0**scale if kind == 1 else float(q) * 2.0**-scale
                rows[r, j] = v
    weights = [w_bits(i * (n - 1).bit_length(), (n - 1).bit_length()) + 1 if n > 1 else 1 for i in range(m)]
    return rows, np.array(weights, dtype=np.int64), dict(major=major, minor=minor, tau=tau, beta_pos=beta_pos)


@pytest.mark.parametrize("make", [
    lambda: (mixed_table(120, seed=3), dict(beta=3, tau=12)),
    lambda: (np.random.default_rng(4).integers(-300, 300, (90, 4)).astype(np.int16), dict(beta=2)),
    lambda: (np.random.default_rng(5).integers(0, 2, (70, 5)).astype(bool), dict(beta=2, widths="native")),
    lambda: (np.random.default_rng(6).normal(size=(50, 3)).astype(np.float32), dict(beta=1, store_condensed=False)),
    lambda: (np.random.default_rng(7).integers(0, 2**64 - 1, (40, 2), dtype=np.uint64), dict(tau=1)),
], ids=["float64", "int16", "bool-native", "float32-lean", "uint64"])
def test_documented_layout_decodes_by_hand(make):
    X, kw = make()
    c = gedenb.compress(X, exact_condensed=False, **kw)  # the paper's file (section LERN: test_learning.py)
    rows, weights, h = by_the_book(_store.to_bytes(c))
    assert (h["major"], h["minor"]) == _store.FORMAT_VERSION and h["tau"] == c.tau
    assert h["beta_pos"] == c.beta_positions.tolist()
    assert same(rows[:len(X)], X)
    if c.m:
        s, w = gedenb.condensed(c)
        assert same(rows[len(X):].astype(np.float64), s) and np.array_equal(weights, w)
