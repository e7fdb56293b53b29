"""Code transforms of ``coding="entropy"`` tables (gedenb.entropy.predict): lag groups, column residuals, ratio
groups."""

import os
import struct
import zlib

import numpy as np
import pytest

import gedenb
from gedenb import store as _store
from gedenb.decode import recompute_condensed
from gedenb.encode import encode_columns, fit_codecs
from gedenb.entropy import predict as _predict
from gedenb.errors import FormatError

SECTION = struct.Struct("<4sIQ")


def _same(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _round_trips(X, c, tmp_path, name="t.gede"):
    """Bit-exact in memory, through save/open, and row by row (random access) from the file."""
    assert _same(gedenb.decompress(c), X)
    path = tmp_path / name
    gedenb.save(c, path)
    with gedenb.open(path) as r:
        # (3, 2): with the exact cluster statistics of a clustered table (section LERN)
        assert r.version == (_store.EXTRAS_VERSION[3] if c.beta else _store.PREDICT_FORMAT_VERSION)
        assert _same(r.read_rows(slice(None)), X)
        rng = np.random.default_rng(0)
        for i in [0, 1, 2, len(X) - 1] + rng.integers(0, len(X), 20).tolist():
            assert r[i].tobytes() == X[i].tobytes()
        rows = rng.integers(0, len(X), 50)
        assert _same(r.read_rows(rows), X[rows])
    return path


def _lag_table(rng, n=3000, w=6, kind="float"):
    """A sliding window over one series (columns 1..w), a noisy column before it and one after."""
    if kind == "float":
        s = np.round(np.cumsum(rng.normal(size=n + w)), 3)
    else:
        s = rng.integers(-1000, 1000, n + w).astype(np.int64)
    X = np.empty((n, w + 2), dtype=np.float64 if kind == "float" else np.int64)
    X[:, 0] = rng.integers(0, 50, n)
    for k in range(w):
        X[:, 1 + k] = s[k:k + n]
    X[:, -1] = rng.integers(0, 3, n)
    return X


def _ratio_table(rng, n=3000):
    """Columns p_j / h with one integer h per row (as rooms, bedrooms and people per household)."""
    h = rng.integers(1, 3000, n).astype(np.float64)
    p = rng.integers(0, 40000, (n, 3)).astype(np.float64)
    X = np.empty((n, 5))
    X[:, 0] = np.round(rng.uniform(0, 10, n), 2)
    X[:, 1:4] = p / h[:, None]
    X[:, 4] = p[:, 2]
    return X


# --------------------------------------------------------------------------
# kernels
# --------------------------------------------------------------------------
@pytest.mark.parametrize("w", [1, 2, 7, 8, 31, 63, 64])
def test_zigzag_is_a_bijection_on_w_bits(w, rng):
    top = (1 << w) - 1
    edges = np.array([0, 1, top, top - 1, top >> 1, (top >> 1) + 1], dtype=np.uint64)
    v = np.unique(np.concatenate([edges, rng.integers(0, 2**63, 200, dtype=np.uint64) & np.uint64(top)]))
    z = np.array([_predict._zigzag(np.uint64(x), w) for x in v], dtype=np.uint64)
    assert int(z.max()) <= top and np.unique(z).size == v.size
    assert all(_predict._unzigzag(np.uint64(a), w) == b for a, b in zip(z, v))


def test_forward_and_inverse_undo_each_other_on_arbitrary_codes(rng):
    """Every transform is a bijection on the column's codes: any codes (not only the fitted data) come back."""
    n, d = 400, 8
    width = np.array([64, 20, 20, 9, 64, 40, 40, 40])
    codecs = fit_codecs(np.zeros((2, d)))._replace(width=width, offset=rng.integers(0, 2**63, d, dtype=np.uint64),
                                                  kind=np.array([0, 0, 0, 0, 0, 3, 3, 3], np.uint8))
    codes = np.stack([rng.integers(0, 2**63, n, dtype=np.uint64) & np.uint64((1 << int(w)) - 1 if w < 64 else 2**64 - 1)
                      for w in width], axis=1)
    codes[::3, 0] = np.uint64(2**64 - 1)
    side = rng.integers(0, 2**20, n + 2, dtype=np.uint64)
    p = _predict._empty(n, n, lag_cols=np.array([1, 2, 3]), lag_start=np.array([0, 3]),
                        lag_u0=np.array([2**40], np.uint64), lag_bits=np.array([20]), lag_word0=np.array([0, 0]),
                        side=gedenb.bits.pack_fixed(side, 20), res_col=np.array([4, 5]), res_ref=np.array([0, 1]),
                        res_kind=np.array([0, 1]))
    p = p._replace(lag_word0=np.array([0, p.side.size]))
    t = _predict.forward(codes, codecs, p)
    assert not np.array_equal(t, codes)
    assert _same(_predict.inverse(t.copy(), np.arange(n), codecs, p), codes)
    rows = rng.permutation(n)[:37]
    assert _same(_predict.inverse(t[rows].copy(), rows, codecs, p), codes[rows])


# --------------------------------------------------------------------------
# lag groups
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["float", "int"])
def test_lag_group_found_and_round_trips(rng, tmp_path, kind, monkeypatch):
    X = _lag_table(rng, kind=kind)
    c = gedenb.compress(X, coding="entropy")
    p = c.predict
    assert p is not None and p.lag_cols.tolist() == [1, 2, 3, 4, 5, 6]
    _round_trips(X, c, tmp_path)
    # the window is stored once: far smaller than coding every column of every row
    monkeypatch.setattr(_predict, "fit", lambda *a, **k: None)
    plain = gedenb.compress(X, coding="entropy")
    assert plain.predict is None
    assert len(_store.to_bytes(c)) < 0.7 * len(_store.to_bytes(plain))


def test_cli_info_describes_the_transform(rng, tmp_path, capsys):
    from gedenb.__main__ import main

    gedenb.save(gedenb.compress(_lag_table(rng), coding="entropy"), tmp_path / "t.gede")
    assert main(["info", str(tmp_path / "t.gede")]) == 0
    text = capsys.readouterr().out
    assert "format 3.1" in text and "transform      lag groups [[1, 2, 3, 4, 5, 6]" in text


def test_lag_rows_that_break_the_window_and_special_values(rng, tmp_path):
    X = _lag_table(rng, n=2000)
    X[[0, 5, 999, 1999], 3] = [np.nan, -0.0, np.inf, -np.inf]  # breaks the window on these rows
    X[17, 1:7] = 0.0
    X[18, 2] = np.frombuffer(np.uint64(0x7FF0000000000123).tobytes(), np.float64)[0]  # a NaN payload
    X[100:110, 4] = -X[100:110, 4]
    c = gedenb.compress(X, coding="entropy")
    # columns whose codecs differ (IEEE where specials are, decimal elsewhere) are never chained
    assert c.predict is not None and c.predict.n_groups >= 1
    assert {2, 3} <= set(c.predict.lag_cols.tolist())
    _round_trips(X, c, tmp_path)


def test_lag_group_with_integer_extremes(rng, tmp_path):
    X = _lag_table(rng, n=1500, w=4, kind="int")
    X[[3, 700], 2] = [np.iinfo(np.int64).min, np.iinfo(np.int64).max]
    c = gedenb.compress(X, coding="entropy")
    assert c.predict is not None and c.widths[1:5].max() == 64
    _round_trips(X, c, tmp_path)


def test_mixed_dtype_table_with_a_lag_group(rng, tmp_path):
    n = 2000
    s = rng.integers(0, 2**30, n + 3).astype(np.int32)
    T = np.empty(n, dtype=[("a", "f8"), ("l0", "i4"), ("l1", "i4"), ("l2", "i4"), ("flag", "?"), ("x", "f4")])
    T["a"] = np.round(rng.normal(size=n), 2)
    T["l0"], T["l1"], T["l2"] = s[:n], s[1:n + 1], s[2:n + 2]
    T["flag"] = rng.integers(0, 2, n).astype(bool)
    T["x"] = rng.normal(size=n).astype(np.float32)
    c = gedenb.compress(T, coding="entropy")
    assert c.predict is not None and c.predict.lag_cols.tolist() == [1, 2, 3]
    _round_trips(T, c, tmp_path)


# --------------------------------------------------------------------------
# column residuals and ratio groups
# --------------------------------------------------------------------------
def test_column_residuals_of_a_difference_and_a_match(rng, tmp_path):
    n = 4000
    bill = rng.integers(0, 200000, n)
    X = np.stack([rng.integers(0, 9, n), bill, bill + rng.integers(-300, 300, n),
                  np.where(rng.random(n) < 0.4, bill, rng.integers(0, 50000, n))], axis=1).astype(np.int64)
    c = gedenb.compress(X, coding="entropy")
    p = c.predict
    assert p is not None and 2 in p.res_col.tolist()
    assert p.res_kind[p.res_col.tolist().index(2)] == 0
    _round_trips(X, c, tmp_path)


def test_ratio_group_with_exceptions(rng, tmp_path, monkeypatch):
    X = _ratio_table(rng)
    X[[0, 10, 2999], 1] = [np.nan, -0.0, np.sqrt(2.0)]  # no small denominator: exceptions
    X[20, 2] = -X[20, 2] - 1
    X[30, 3] = np.inf
    c = gedenb.compress(X, coding="entropy")
    p = c.predict
    assert p is not None and sorted(p.rat_cols.tolist()) == [1, 2, 3]
    assert {0, 10, 20, 30, 2999} <= set(p.exc_rows.tolist())
    _round_trips(X, c, tmp_path)
    # the ratio columns cost far less than their 50-odd bits
    monkeypatch.setattr(_predict, "fit", lambda *a, **k: None)
    assert len(_store.to_bytes(c)) < 0.6 * len(_store.to_bytes(gedenb.compress(X, coding="entropy")))


def test_condensed_samples_are_those_of_the_original_values(rng, tmp_path):
    X = np.concatenate([_ratio_table(rng, 1500), _lag_table(rng, 1500, w=3)], axis=1)
    c = gedenb.compress(X, beta=5, coding="entropy")
    assert c.predict is not None and c.m > 0
    expect, weights = recompute_condensed(X, c.codecs, c.beta_positions)
    got, w = gedenb.condensed(c, exact=False)
    assert _same(got, expect) and _same(w, weights)
    exact = gedenb.condensed(c)[0]
    path = _round_trips(X, c, tmp_path)
    with gedenb.open(path) as r:
        got, w = r.condensed(exact=False)
        assert _same(got, expect) and _same(r.condensed()[0], exact)


def test_not_chosen_when_it_does_not_pay(rng):
    X = rng.integers(0, 2**20, (3000, 6)).astype(np.int64)
    c = gedenb.compress(X, coding="entropy")
    assert c.predict is None
    data = _store.to_bytes(c)
    assert struct.unpack_from("<HH", data, 8) == _store.ENTROPY_FORMAT_VERSION  # the 3.0 file, no PRED
    assert not struct.unpack_from("<I", data, 12)[0] & _store._FLAG_PREDICT
    assert _predict.fit(encode_columns(X, c.codecs, check=False), c.codecs, X.dtype) is None
    # images and raw coding never use a transform
    assert gedenb.compress(_lag_table(rng)).predict is None


def test_size_model_counts_the_transform(rng):
    X = _lag_table(rng)
    c = gedenb.compress(X, coding="entropy")
    written = len(_store.to_bytes(c))
    frames = 16 * 10 + 8 * 10
    assert abs(written - c.greedy_sizes.min() / 8) <= 0.01 * written + frames
    assert 0 <= written - gedenb.eq1_bits(c) / 8 <= frames
    assert gedenb.size_breakdown(c).deviations == 8 * (c.coded.nbytes + c.predict.nbytes)


# --------------------------------------------------------------------------
# section PRED: damage and forgery
# --------------------------------------------------------------------------
def _pred_frame(data: bytes):
    pos = _store.FIXED_HEADER_BYTES if hasattr(_store, "FIXED_HEADER_BYTES") else 96
    while pos < len(data):
        tag, crc, nbytes = SECTION.unpack_from(data, pos)
        if tag == b"PRED":
            return pos, nbytes
        pos += SECTION.size + nbytes + (-nbytes % 8)
    raise AssertionError("no PRED section")


def _with_pred(data: bytes, payload: bytes) -> bytes:
    """The file with PRED's payload replaced (checksums and total size fixed up)."""
    pos, _ = _pred_frame(data)
    body = SECTION.pack(b"PRED", zlib.crc32(payload), len(payload)) + payload + b"\0" * (-len(payload) % 8)
    out = bytearray(data[:pos] + body)
    struct.pack_into("<Q", out, 72, len(out))
    struct.pack_into("<I", out, 92, zlib.crc32(bytes(out[:92])))
    return bytes(out)


@pytest.fixture(scope="module")
def ratio_file(tmp_path_factory):
    rng = np.random.default_rng(7)
    X = np.concatenate([_ratio_table(rng, 800), _lag_table(rng, 800, w=3)], axis=1)
    X[5, 1] = np.nan
    c = gedenb.compress(X, coding="entropy")
    assert c.predict is not None and c.predict.n_groups and c.predict.exc_rows.size
    path = tmp_path_factory.mktemp("pred") / "r.gede"
    gedenb.save(c, path)
    return X, c, path.read_bytes()


def _payload(data):
    pos, nbytes = _pred_frame(data)
    return bytearray(data[pos + SECTION.size:pos + SECTION.size + nbytes])


def _forged(ratio_file, edit):
    X, c, data = ratio_file
    payload = _payload(data)
    edit(payload, c.predict)
    return _with_pred(data, bytes(payload))


_HEAD = _predict._HEAD.itemsize


@pytest.mark.parametrize("edit, match", [
    (lambda b, p: struct.pack_into("<I", b, 0, 2), "version"),
    (lambda b, p: struct.pack_into("<I", b, 12, 0), "PRED"),  # ratio groups dropped: lengths disagree
    (lambda b, p: struct.pack_into("<Q", b, 16, 5), "row counts"),
    (lambda b, p: struct.pack_into("<I", b, _HEAD, 1), "lag group"),  # w = 1
    (lambda b, p: struct.pack_into("<I", b, _HEAD + 4, 65), "lag group"),  # 65-bit side values
    (lambda b, p: struct.pack_into("<I", b, _HEAD + 20, 40), "ratio group"),  # 40-bit denominator
    (lambda b, p: struct.pack_into("<I", b, _HEAD + 32, 99), "out of range"),  # a lag column >= d
    (lambda b, p: struct.pack_into("<I", b, _HEAD + 32, int(p.rat_cols[0])), "twice"),
    (lambda b, p: struct.pack_into("<I", b, _HEAD + 32 + 4 * int(p.lag_cols.size), 0), "IEEE"),  # ratio col 0
], ids=["version", "counts", "rows", "w", "side-bits", "hbits", "col-range", "twice", "ratio-kind"])
def test_forged_pred_sections_raise_format_error(ratio_file, tmp_path, edit, match):
    path = tmp_path / "f.gede"
    path.write_bytes(_forged(ratio_file, edit))
    with pytest.raises(FormatError, match=match):
        gedenb.open(path)


def test_truncated_or_damaged_pred_raises_format_error(ratio_file, tmp_path):
    X, c, data = ratio_file
    payload = bytes(_payload(data))
    path = tmp_path / "f.gede"
    path.write_bytes(_with_pred(data, payload[:-8]))
    with pytest.raises(FormatError, match="PRED"):
        gedenb.open(path)
    pos, nbytes = _pred_frame(data)
    bad = bytearray(data)
    bad[pos + SECTION.size + nbytes - 3] ^= 0x40  # no checksum fix-up
    path.write_bytes(bytes(bad))
    with pytest.raises(FormatError, match="PRED: checksum"):
        gedenb.open(path)
    # exception rows out of order
    E = c.predict.exc_rows.size
    forged = bytearray(payload)
    start = len(payload) - 8 * (E + c.predict.exc_codes.size)
    struct.pack_into("<Q", forged, start, 10**9)
    path.write_bytes(_with_pred(data, bytes(forged)))
    with pytest.raises(FormatError, match="exception rows"):
        gedenb.open(path)


def test_flag_and_version_must_agree(ratio_file, tmp_path):
    X, c, data = ratio_file
    bad = bytearray(data)
    struct.pack_into("<H", bad, 10, 0)  # minor 0: a 3.0 file cannot have PRED
    struct.pack_into("<I", bad, 92, zlib.crc32(bytes(bad[:92])))
    path = tmp_path / "f.gede"
    path.write_bytes(bytes(bad))
    with pytest.raises(FormatError, match="PREDICT flag"):
        gedenb.open(path)


def test_a_row_without_denominator_or_exception_fails_when_read(ratio_file, tmp_path):
    """A forged exception list that misses a row opens (sizes agree) but that row raises on read."""
    X, c, data = ratio_file
    p = c.predict
    row = int(p.exc_rows[0])
    forged = p._replace(exc_rows=np.asarray([row + 1] + p.exc_rows[1:].tolist(), np.int64))
    if forged.exc_rows.size > 1 and forged.exc_rows[1] <= row + 1:
        pytest.skip("adjacent exception rows")
    path = tmp_path / "f.gede"
    path.write_bytes(_with_pred(data, _predict.to_bytes(forged)))
    with gedenb.open(path) as r:
        r.read_rows([row + 2])
        with pytest.raises(FormatError, match="PRED"):
            r.read_rows([row])


# --------------------------------------------------------------------------
# the real tables of issue 7 (slow: the greedy runs on every row)
# --------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["california_housing", "credit_default", "ijcnn1"])
def test_real_tables_round_trip_below_zstd19(name, tmp_path):
    zstandard = pytest.importorskip("zstandard")
    from gedenb import datasets

    if name != "california_housing" and not os.environ.get("GEDENB_DATA"):
        pytest.skip("GEDENB_DATA not set (CI sets it)")
    X = np.ascontiguousarray(getattr(datasets, name)().data)
    c = gedenb.compress(X, coding="entropy")
    assert c.predict is not None
    _round_trips(X, c, tmp_path)
    assert len(_store.to_bytes(c)) <= len(zstandard.ZstdCompressor(level=19).compress(X.tobytes()))


def test_random_damage_to_pred_never_crashes(ratio_file, tmp_path):
    """Flipped bytes in PRED (checksum fixed up): a FormatError at open or when reading, or some rows -- never a
    crash or a hang."""
    X, c, data = ratio_file
    payload = bytes(_payload(data))
    rng = np.random.default_rng(3)
    path = tmp_path / "f.gede"
    outcomes = set()
    for _ in range(150):
        forged = bytearray(payload)
        for pos in rng.integers(0, len(forged), rng.integers(1, 4)):
            forged[pos] = int(rng.integers(0, 256))
        path.write_bytes(_with_pred(data, bytes(forged)))
        try:
            with gedenb.open(path) as r:
                got = r.read_rows(slice(None))
            outcomes.add("read" if got.shape == X.shape else "shape?")
        except FormatError:
            outcomes.add("refused")
    assert outcomes <= {"read", "refused"} and "refused" in outcomes
