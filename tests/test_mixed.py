"""Mixed-dtype tables (NumPy structured arrays): compress, decompress, condensed, the .gede 2.0 file.

Round trips are compared as bytes (NaN payloads, -0.0, infinities,
subnormals, integer extremes), in memory and through save/open; the
condensed samples are checked against the slow oracle of ``tests/naive.py``;
FLDS sections that lie (with correct checksums) and damaged files are
rejected.  The fuzz with ``verify=False`` runs in a child process
(``python tests/test_mixed.py fuzz DIR``), so a crash fails the test instead
of killing pytest.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gedenb
from gedenb import FormatError
from gedenb import store as _store
from gedenb.datasets import SYNTHETIC_MIXED_FIELDS, synthetic_mixed
from gedenb.encode import BIN, DEC, IEEE, INT, SUPPORTED_DTYPES, Codecs, as_table, decode_codes, encode_columns
from gedenb.encode import encode_values, fit_codecs
import naive
import support
from test_roundtrip_hypothesis import RECIPES, column

THIS = Path(__file__).resolve()
DTYPES = tuple(SUPPORTED_DTYPES)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape and bytes."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def fields_of(T: np.ndarray) -> list:
    return [T[f] for f in T.dtype.names]


# --------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------
NAMES = ("a", "b", "price", "x y", "π", "count_2", "Ünïcode", "t", "flag", "z" * 40)


@st.composite
def mixed_tables(draw, max_rows=200, max_fields=8):
    n = draw(st.one_of(st.just(1), st.integers(1, 20), st.integers(1, max_rows)))
    d = draw(st.integers(1, max_fields))
    dtypes = draw(st.lists(st.sampled_from(DTYPES), min_size=d, max_size=d))
    names = draw(st.permutations(NAMES))[:d]
    recipes = draw(st.lists(st.sampled_from(RECIPES), min_size=d, max_size=d))
    picks = draw(st.lists(st.integers(0, 63), min_size=1, max_size=6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    T = np.empty(n, dtype=[(f, np.dtype(t)) for f, t in zip(names, dtypes)])
    for j, (f, recipe) in enumerate(zip(names, recipes)):
        T[f] = column(recipe, T.dtype.fields[f][0], n, rng, picks if j % 2 == 0 else picks[::-1])
    return T


def available_beta(T: np.ndarray, widths: str) -> int:
    """Non-constant bit positions of the encoded rows: the largest valid beta."""
    codes = encode_columns(T, fit_codecs(T, widths)).astype(np.uint64)
    changed = np.bitwise_or.reduce(codes ^ codes[:1], axis=0)
    return int(sum(bin(int(v)).count("1") for v in changed))


def options(draw, T):
    widths = draw(st.sampled_from(["narrow", "native"]))
    available = available_beta(T, widths)
    beta = draw(st.one_of(st.none(), st.integers(1, 8), st.integers(1, 60)))
    if beta is not None and beta > available:
        with pytest.raises(ValueError, match="beta"):
            gedenb.compress(T, beta=beta, widths=widths)
        beta = available or None
    return dict(beta=beta, tau=draw(st.integers(1, 12)), store_condensed=draw(st.booleans()), widths=widths)


def special_mixed(n: int = 90, seed: int = 5) -> np.ndarray:
    """One field of every supported dtype made only of edge values, plus constant and decimal fields."""
    from test_roundtrip_hypothesis import special_values

    rng = np.random.default_rng(seed)
    fields = [(f"{dt.name}", dt) for dt in DTYPES] + [("const", np.dtype("i4")), ("dec", np.dtype("f8")),
                                                      ("dec32", np.dtype("f4"))]
    T = np.empty(n, dtype=fields)
    for dt in DTYPES:
        T[dt.name] = rng.choice(special_values(dt), n)
    T["const"] = -7
    T["dec"] = rng.integers(-999, 999, n) / 100.0
    T["dec32"] = (rng.integers(-99, 99, n) / 4.0).astype(np.float32)
    return T


@pytest.fixture(scope="module")
def folder():
    with tempfile.TemporaryDirectory(prefix="gedenb-mixed-") as tmp:
        yield Path(tmp)


# --------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------
def check_round_trip(T, kw, data, folder):
    c = gedenb.compress(T, **kw)
    n, d = len(T), len(T.dtype.names)
    assert c.shape == (n, d) and c.dtype == T.dtype and c.fields == T.dtype.names
    assert c.raw_bytes == T.nbytes
    assert same(gedenb.decompress(c), T)
    if kw["beta"] and kw["store_condensed"]:
        assert c.m == len(c.weights) >= 1 and int(c.weights.sum()) == n
    else:
        assert c.m == 0
    path = folder / f"t{data.draw(st.integers(0, 10**9), label='name')}.gede"
    size = gedenb.save(c, path)
    assert size == path.stat().st_size
    with gedenb.open(path, verify=data.draw(st.booleans(), label="verify")) as r:
        # clustered tables keep their exact cluster statistics (section LERN): format 2.1
        assert r.version == ((2, 1) if kw["beta"] else (2, 0)) and r.shape == (n, d) and r.dtype == T.dtype
        assert len(r) == n
        assert same(r.read_rows(slice(None)), T)
        idx = data.draw(st.lists(st.integers(-n, n - 1), min_size=0, max_size=40), label="rows")
        assert same(r.read_rows(idx), T[np.asarray(idx, dtype=np.int64)])
        i = data.draw(st.integers(-n, n - 1), label="row")
        assert r[i].tobytes() == T[i].tobytes()
        if kw["beta"]:
            s0, w0 = gedenb.condensed(c)
            s1, w1 = r.condensed()
            assert s0.dtype == np.float64 and s0.shape == (len(w0), d)
            assert same(s1, s0) and same(w1, np.asarray(w0)) and int(w1.sum()) == n
        else:
            with pytest.raises(ValueError, match="beta=None"):
                r.condensed()
    path.unlink()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(T=mixed_tables(), data=st.data())
def test_round_trip_memory_and_file(T, data, folder):
    check_round_trip(T, options(data.draw, T), data, folder)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(T=mixed_tables(max_rows=400, max_fields=12), data=st.data())
def test_round_trip_memory_and_file_slow(T, data, folder):
    check_round_trip(T, options(data.draw, T), data, folder)


@pytest.mark.parametrize("kw", [dict(), dict(beta=9), dict(beta=5, store_condensed=False), dict(widths="native"),
                                dict(beta=3, tau=1, widths="native")])
def test_round_trip_of_every_dtype_and_edge_value(kw, tmp_path):
    T = special_mixed()
    c = gedenb.compress(T, **kw)
    assert same(gedenb.decompress(c), T)
    gedenb.save(c, tmp_path / "s.gede")
    with gedenb.open(tmp_path / "s.gede") as r:
        assert same(r.read_rows(slice(None)), T)
        assert same(r.read_rows(np.arange(len(T))[::-7]), T[::-7])
        big = np.resize(np.arange(len(T))[::-1], 70_000 // len(T.dtype.names) + 5)  # the parallel kernel
        assert same(r.read_rows(big), T[big])


def test_parallel_decode_of_many_rows(rng):
    T = synthetic_mixed(7000, seed=3)
    c = gedenb.compress(T, beta=6)
    assert same(gedenb.decompress(c), T)  # 7,000 x 16 values: the parallel kernel


# --------------------------------------------------------------------------
# the same bits as a homogeneous table
# --------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["int16", "float64", "bool", "float32"])
@pytest.mark.parametrize("kw", [dict(beta=3), dict(beta=2, store_condensed=False), dict()])
def test_fields_of_one_dtype_compress_like_the_2d_table(rng, dtype, kw):
    X = np.stack([column(r, np.dtype(dtype), 150, rng, [1, 2, 3]) for r in ("small", "skewed", "small")], axis=1)
    T = np.empty(150, dtype=[(f, dtype) for f in "pqr"])
    for j, f in enumerate("pqr"):
        T[f] = X[:, j]
    a, b = gedenb.compress(X, **kw), gedenb.compress(T, **kw)
    for x, y in zip(a.codecs, b.codecs):
        assert same(x, y)
    for name in ("base_mask", "bases", "records", "weights", "beta_positions", "entropy"):
        assert same(np.asarray(getattr(a, name)), np.asarray(getattr(b, name))), name
    assert a.n_bases == b.n_bases and a.m == b.m
    assert gedenb.eq1_bits(b) - gedenb.eq1_bits(a) == 8 * (12 * 3 + 3)  # the FLDS section
    if kw.get("beta"):
        sa, wa = gedenb.condensed(a)
        sb, wb = gedenb.condensed(b)
        assert same(sa, sb) and same(wa, wb)


GOLDEN = {  # sha256 of files written by gedenb before mixed-dtype tables existed (commit 8fd5b76)
    "int32": "a66f6c4845c7dc4f8c0d2a38e421d0ab488f680de64079523ff7aba04fdba1d3",
    "float64": "bdcd6d0c3242d8553e67643173618b8982661d2967cc0f614220f0d5af045d46",
    "uint8native": "dc5583c1db439cbbf766d7e7dbb7741634af670805df96a82839bac9fafea466",
    "bool": "85e1c70973b889720056ec2744ad0c78fa007c2745a487fbeac8ba7a04a91692",
    "float32": "b2e6a4bdf7fe0a348df65810271316c8369d849690e5c1087e02161e94b7792b",
}


def test_homogeneous_files_are_unchanged():
    rng = np.random.default_rng(7)
    tables = {
        "int32": (rng.integers(-50, 50, (300, 5)).astype(np.int32), dict(beta=4)),
        "float64": (np.round(rng.normal(size=(257, 4)), 2), dict(beta=6, store_condensed=False)),
        "uint8native": (rng.integers(0, 256, (100, 16)).astype(np.uint8), dict(widths="native")),
        "bool": (rng.random((70, 3)) < 0.3, dict()),
        "float32": (rng.normal(size=(90, 3)).astype(np.float32), dict(beta=3, tau=2)),
    }
    for name, (X, kw) in tables.items():
        data = _store.to_bytes(gedenb.compress(X, exact_condensed=False, **kw))  # the paper's file, as before
        assert struct.unpack_from("<HH", data, 8) == (1, 0)
        assert hashlib.sha256(data).hexdigest() == GOLDEN[name], name
        if kw.get("beta"):  # with the exact cluster statistics: 1.1, the same sections and LERN after them
            lern = _store.to_bytes(gedenb.compress(X, **kw))
            assert struct.unpack_from("<HH", lern, 8) == (1, 1) and struct.unpack_from("<I", lern, 64) == (7,)


# --------------------------------------------------------------------------
# condensed samples against the slow oracle
# --------------------------------------------------------------------------
def oracle_condensed(T: np.ndarray, codecs: Codecs, beta_pos):
    """Groups on the beta bits (naive), float64 centroids (naive), each rounded onto its field's grid."""
    names = T.dtype.names
    codes = encode_columns(T, codecs)
    bitmat = naive.bits_matrix(codes, codecs.width)
    labels, m = naive.groups(bitmat, beta_pos)
    values = np.stack([T[f].astype(np.float64) for f in names], axis=1)
    means, weights = naive.centroids(values, labels, m)
    out = np.empty_like(means)
    for j, f in enumerate(names):
        dt, col, k = T.dtype.fields[f][0], values[:, j], int(codecs.kind[j])
        if k == INT:
            out[:, j] = np.clip(np.rint(means[:, j]), col.min(), col.max()) + 0.0  # an integer has no -0
        elif k == DEC:
            s = 10.0 ** int(codecs.scale[j])
            q = np.clip(np.rint(means[:, j] * s), np.rint(col * s).min(), np.rint(col * s).max())
            out[:, j] = (q / s).astype(dt).astype(np.float64)
        elif k == BIN:
            e = int(codecs.scale[j])
            q = np.clip(np.rint(np.ldexp(means[:, j], e)), np.ldexp(col, e).min(), np.ldexp(col, e).max())
            out[:, j] = np.ldexp(q, -e).astype(dt).astype(np.float64)
        else:  # IEEE: the homogeneous one-column path (tested against the oracle in test_entrogede)
            one = Codecs(*(np.ascontiguousarray(a[j:j + 1]) for a in codecs))
            out[:, j] = decode_codes(encode_values(means[:, j:j + 1], one, dt), one, dt)[:, 0].astype(np.float64)
    return out, weights


def oracle_table(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    T = np.empty(n, dtype=[("k", "i1"), ("price", "f8"), ("half", "f4"), ("ok", "?"), ("u", "u4"), ("t", "i8"),
                           ("noise", "f4")])
    T["k"] = rng.integers(-3, 4, n)
    T["price"] = rng.integers(0, 5000, n) / 100.0
    T["half"] = (rng.integers(-40, 40, n) / 8.0).astype(np.float32)
    T["ok"] = rng.random(n) < 0.4
    T["u"] = rng.choice(np.array([0, 7, 4_000_000_000], dtype=np.uint32), n)
    T["t"] = 1_700_000_000 + np.arange(n) * 17
    T["noise"] = rng.normal(size=n).astype(np.float32)
    return T


@pytest.mark.parametrize("store_condensed", [True, False])
@pytest.mark.parametrize("beta,seed", [(1, 0), (4, 1), (9, 2), (15, 3)])
def test_condensed_matches_the_oracle(beta, seed, store_condensed, tmp_path):
    T = oracle_table(160, seed)
    c = gedenb.compress(T, beta=beta, store_condensed=store_condensed)
    assert c.beta_positions.tolist() == naive.cluster_positions(c.entropy, c.codecs.width, beta)
    want, wweights = oracle_condensed(T, c.codecs, c.beta_positions)
    got, weights = gedenb.condensed(c, exact=False)
    assert same(weights, wweights)
    assert same(got, want)
    codes = encode_columns(T, c.codecs)
    labels, m = naive.groups(naive.bits_matrix(codes, c.codecs.width), c.beta_positions)
    exact, counts, _ = naive.exact_centroids(np.stack([T[f] for f in T.dtype.names], axis=1).astype(object),
                                             labels, m)
    got, weights = gedenb.condensed(c)
    assert same(weights, counts)
    np.testing.assert_allclose(got, exact, rtol=1e-13, atol=0)
    gedenb.save(c, tmp_path / "o.gede")
    with gedenb.open(tmp_path / "o.gede") as r:
        s, w = r.condensed(exact=False)
        assert same(s, want) and same(w, wweights)
        assert same(r.condensed()[0], got)
    s2, w2 = gedenb.decode.recompute_condensed(T, c.codecs, c.beta_positions)
    assert same(s2, want) and same(w2, wweights)


def test_cluster_columns_by_name_or_index():
    T = oracle_table(300, 7)
    a = gedenb.compress(T, beta=5, cluster_columns=["k", "ok", "price"])
    b = gedenb.compress(T, beta=5, cluster_columns=[0, 3, 1])
    c = gedenb.compress(T, beta=5, cluster_columns=["k", 3, "price"])
    assert a.beta_positions.tolist() == b.beta_positions.tolist() == c.beta_positions.tolist()
    starts = np.concatenate(([0], np.cumsum(a.codecs.width)))
    allowed = np.concatenate([np.arange(starts[j], starts[j + 1]) for j in (0, 1, 3)])
    assert np.isin(a.beta_positions, allowed).all()
    with pytest.raises(ValueError, match="no field named 'nope'"):
        gedenb.compress(T, beta=5, cluster_columns=["k", "nope"])
    with pytest.raises(TypeError, match="column indices"):
        gedenb.compress(np.zeros((4, 2)), beta=1, cluster_columns=["a"])


# --------------------------------------------------------------------------
# input forms and their normalisation
# --------------------------------------------------------------------------
def test_dict_recarray_byte_order_padding_and_strides():
    rng = np.random.default_rng(1)
    n = 120
    cols = {"id": np.arange(n, dtype=">i4"), "v": rng.normal(size=n).astype(">f8"), "b": rng.random(n) < 0.5,
            "h": rng.normal(size=n).astype(np.float16)}
    want = np.empty(n, dtype=[("id", "i4"), ("v", "f8"), ("b", "?"), ("h", "f2")])
    for f, v in cols.items():
        want[f] = v
    assert same(gedenb.decompress(gedenb.compress(cols)), want)  # dict: order kept, byte order native
    aligned = np.zeros(n, dtype=np.dtype([("id", ">i4"), ("v", "f8"), ("b", "?"), ("h", "f2")], align=True))
    for f, v in cols.items():
        aligned[f] = v
    assert aligned.dtype.itemsize > want.dtype.itemsize
    assert same(gedenb.decompress(gedenb.compress(aligned)), want)  # padding dropped
    wide = np.zeros(2 * n, dtype=want.dtype)
    wide[::2] = want
    assert same(gedenb.decompress(gedenb.compress(wide[::2])), want)  # strided view
    rec = want.view(np.recarray)
    out = gedenb.decompress(gedenb.compress(rec))
    assert type(out) is np.ndarray and same(out, want)
    sel = want[["v", "id"]]  # a multi-field view: offsets with gaps, fields in the order asked for
    got = gedenb.decompress(gedenb.compress(sel))
    assert got.dtype.names == ("v", "id") and same(got["v"], want["v"]) and same(got["id"], want["id"])
    assert got.dtype.itemsize == 12
    assert as_table(want) is want  # already normalised: no copy
    assert as_table(wide[::2]).flags.c_contiguous


@pytest.mark.parametrize("bad,exc,match", [
    (np.zeros(3, dtype=[("a", "i4"), ("s", "U3")]), TypeError, "field 's' has dtype <U3"),
    (np.zeros(3, dtype=[("a", "i4"), ("c", "c16")]), TypeError, "field 'c'"),
    (np.zeros(3, dtype=[("a", "i4"), ("t", "M8[ns]")]), TypeError, "convert it"),
    (np.zeros(3, dtype=[("a", "i4"), ("o", "O")]), TypeError, "field 'o'"),
    (np.zeros(3, dtype=[("a", "i4"), ("v", "f8", (2,))]), ValueError, "subarray"),
    (np.zeros(3, dtype=[("a", "i4"), ("n", [("x", "i2"), ("y", "i2")])]), ValueError, "nested|structured"),
    (np.zeros(3, dtype=[(("title", "a"), "i4")]), ValueError, "titles"),
    (np.zeros((3, 2), dtype=[("a", "i4")]), ValueError, "1-D"),
    (np.zeros(0, dtype=[("a", "i4")]), ValueError, "at least one row"),
    (np.zeros(3, dtype=np.dtype([])), ValueError, "at least one field"),
    ({}, ValueError, "empty mapping"),
    ({"a": np.arange(3), "b": np.arange(4)}, ValueError, "equal lengths"),
    ({"a": np.zeros((3, 2))}, ValueError, "1-D"),
    ({1: np.arange(3)}, TypeError, "strings"),
    ({"": np.arange(3)}, ValueError, "empty"),
    ({"a": np.array(["x", "y"])}, TypeError, "field 'a'"),
])
def test_bad_tables_are_refused(bad, exc, match):
    with pytest.raises(exc, match=match):
        gedenb.compress(bad)


# --------------------------------------------------------------------------
# the file
# --------------------------------------------------------------------------
HEADER = struct.Struct("<8sHHIQQIIQII8sIIQQII")
FIELDS = ("magic", "major", "minor", "flags", "n", "m", "d", "l_t", "n_b", "beta", "tau", "dtype",
          "n_sections", "reserved0", "total_bytes", "reserved1", "reserved2", "crc32")
SECTION = struct.Struct("<4sIQ")
CODEC = np.dtype([("kind", "<u1"), ("width", "<u1"), ("scale", "<i2"), ("reserved", "<u4"), ("offset", "<u8")])


def parse(data: bytes):
    """``(header dict, [[tag, crc, payload], ...])`` from docs/FORMAT.md."""
    h = dict(zip(FIELDS, HEADER.unpack_from(data, 0)))
    secs, pos = [], HEADER.size
    while pos + SECTION.size <= len(data):
        tag, crc, nb = SECTION.unpack_from(data, pos)
        start = pos + SECTION.size
        secs.append([tag, crc, data[start:start + nb]])
        pos = start + nb + (-nb % 8)
    return h, secs


def build(h: dict, secs) -> bytes:
    """Serialise with every checksum and the total made right."""
    body = bytearray()
    for tag, _, payload in secs:
        body += SECTION.pack(tag, zlib.crc32(payload), len(payload)) + payload + b"\0" * (-len(payload) % 8)
    h = dict(h, total_bytes=HEADER.size + len(body))
    raw = HEADER.pack(*(h[f] for f in FIELDS))
    return raw[:-4] + struct.pack("<I", zlib.crc32(raw[:-4])) + bytes(body)


def flds(fields) -> bytes:
    """A FLDS payload from ``[(name bytes, dtype bytes)]`` as docs/FORMAT.md describes it."""
    lengths = struct.pack(f"<{len(fields)}I", *[len(f) for f, _ in fields])
    return b"".join(t.ljust(8, b"\0") for _, t in fields) + lengths + b"".join(f for f, _ in fields)


def fuzz_table() -> np.ndarray:
    rng = np.random.default_rng(11)
    n = 200
    T = np.empty(n, dtype=[("i", "i2"), ("dec", "f8"), ("bin", "f4"), ("ieee", "f8"), ("flag", "?"), ("u", "u1"),
                           ("h", "f2"), ("c", "i8")])
    T["i"] = rng.choice(np.array([10, 20, 30, -32768], dtype=np.int16), n, p=[.85, .05, .05, .05])
    T["dec"] = rng.integers(-500, 500, n) / 100.0
    T["bin"] = (rng.integers(-64, 64, n) / 8.0).astype(np.float32)
    T["ieee"] = rng.choice(np.array([np.nan, -np.inf, np.inf, -0.0, 5e-324, -1.5]), n)
    T["flag"] = rng.random(n) < 0.1
    T["u"] = rng.integers(0, 256, n)
    T["h"] = rng.normal(size=n).astype(np.float16)
    T["c"] = 42
    return T


@pytest.fixture(scope="module")
def mixed_file(tmp_path_factory):
    T = fuzz_table()
    c = gedenb.compress(T, beta=5, exact_condensed=False)  # the 2.0 layout (section LERN: test_learning.py)
    path = tmp_path_factory.mktemp("mixed") / "m.gede"
    gedenb.save(c, path)
    return T, c, path.read_bytes()


def test_file_layout_follows_the_format(mixed_file):
    T, c, data = mixed_file
    h, secs = parse(data)
    assert (h["major"], h["minor"]) == _store.FIELDS_FORMAT_VERSION == (2, 0)
    assert h["dtype"] == b"|V".ljust(8, b"\0") and h["n_sections"] == 7 and h["d"] == len(T.dtype.names)
    assert [s[0] for s in secs] == [b"CODC", b"FLDS", b"BMSK", b"BETA", b"BASE", b"RECS", b"WGHT"]
    names = T.dtype.names
    dts = [T.dtype.fields[f][0].newbyteorder("<").str.encode() for f in names]
    assert secs[1][2] == flds([(f.encode(), t) for f, t in zip(names, dts)])
    # Eq. 1 counts the FLDS payload among the parameters; the rest of the file is framing and word rounding
    sb = gedenb.size_breakdown(c)
    assert sb.params == 8 * (96 + 16 * c.d + (c.row_bits + 7) // 8 + 4 * c.beta + 12 * c.d + sum(map(len, names)))
    framing = 7 * 16 + sum(-len(s[2]) % 8 for s in secs)
    rounding = sum(len(s[2]) * 8 for s in secs[4:]) - (sb.bases + sb.base_ids + sb.deviations + sb.weights)
    assert len(data) * 8 == sb.total + 8 * framing + rounding and 0 <= rounding < 3 * 64


def _rewrite(data: bytes, edit) -> bytes:
    h, secs = parse(data)
    edit(h, secs)
    return build(h, secs)


def _fields_edit(fn):
    def edit(h, secs):
        secs[1][2] = fn(secs[1][2], h["d"])
    return edit


def _field_dtype(j, code):
    def fn(p, d):
        b = bytearray(p)
        b[8 * j:8 * j + 8] = code.ljust(8, b"\0")
        return bytes(b)
    return _fields_edit(fn)


def _rename(j, new: bytes):
    """Replace field j's name by ``new`` (any bytes), keeping the lengths consistent."""
    def fn(p, d):
        lens = list(struct.unpack_from(f"<{d}I", p, 8 * d))
        pos = 12 * d + sum(lens[:j])
        out = p[:12 * d] + p[12 * d:pos] + new + p[pos + lens[j]:]
        lens[j] = len(new)
        return out[:8 * d] + struct.pack(f"<{d}I", *lens) + out[12 * d:]
    return _fields_edit(fn)


FORGED = [
    ("duplicate name", _rename(1, b"i"), "FLDS: field name 'i' repeated"),
    ("invalid UTF-8", _rename(2, b"\xff\xfe"), "FLDS: the name of field 2 is not valid UTF-8"),
    ("empty name", _rename(0, b""), "FLDS: field 0 has an empty name"),
    ("unknown dtype", _field_dtype(0, b"<c16"), "FLDS: field 'i' has unsupported dtype"),
    ("big-endian dtype", _field_dtype(0, b">i2"), "FLDS: field 'i' has unsupported dtype"),
    ("void field", _field_dtype(0, b"|V"), "FLDS: field 'i' has unsupported dtype"),
    ("garbage after NUL", _field_dtype(0, b"<i2\0\0\0\0x"), "FLDS: field 'i' has unsupported dtype"),
    ("names longer", _fields_edit(lambda p, d: p + b"x"), "FLDS: field names of"),
    ("names shorter", _fields_edit(lambda p, d: p[:-1]), "FLDS: field names of"),
    ("too short", _fields_edit(lambda p, d: p[:12 * d - 1]), "FLDS: .* expected at least"),
    ("empty", _fields_edit(lambda p, d: b""), "FLDS: 0 bytes"),
    ("int field, float codec", _field_dtype(3, b"<i8"), "CODC: non-integer codec in the int64 field"),
    ("float field, int codec", _field_dtype(0, b"<f2"), "CODC: integer codec in the float16 field"),
    ("half field, fixed point", _field_dtype(1, b"<f2"), "CODC: fixed-point codec in the float16 field"),
    ("narrower than its codec", _field_dtype(0, b"|i1"), "CODC: a column is wider than the 8 bits of int8"),
    ("bool from a byte", _field_dtype(5, b"|b1"), "CODC: a column is wider than the 1 bits of bool"),
    ("major 1", lambda h, s: h.update(major=1), r"header: dtype \|V .* needs format 2\.x, the file says 1\.0"),
    ("no FLDS", lambda h, s: (s.pop(1), h.update(n_sections=6)), "header: 6 sections .expected 7."),
    ("FLDS after CODC missing", lambda h, s: s.insert(2, s.pop(1)), "FLDS: expected this section"),
    ("homogeneous dtype", lambda h, s: h.update(dtype=b"<f8"), r"header: 7 sections \(expected 6\)"),
    ("homogeneous dtype, 6 sections", lambda h, s: h.update(dtype=b"<f8", n_sections=6),
     "BMSK: expected this section at byte .*, found b'FLDS'"),
    ("FLDS twice", lambda h, s: (s.append(list(s[1])), h.update(minor=1, n_sections=8)), "FLDS: section repeated"),
]


@pytest.mark.parametrize("verify", [True, False])
@pytest.mark.parametrize("name,edit,match", FORGED, ids=[f[0] for f in FORGED])
def test_forged_fields_are_rejected(mixed_file, tmp_path, name, edit, match, verify):
    T, c, data = mixed_file
    path = tmp_path / "f.gede"
    path.write_bytes(_rewrite(data, edit))
    with pytest.raises(FormatError, match=match) as e:
        gedenb.open(path, verify=verify)
    assert str(path) in str(e.value)


def test_offsets_outside_a_field_are_rejected(mixed_file, tmp_path):
    T, c, data = mixed_file
    h, secs = parse(data)
    codec = np.frombuffer(secs[0][2], dtype=CODEC).copy()
    codec["offset"][5] = 256  # the uint8 field
    secs[0][2] = codec.tobytes()
    (tmp_path / "o.gede").write_bytes(build(h, secs))
    with pytest.raises(FormatError, match="offset does not fit the 8 bits of uint8"):
        gedenb.open(tmp_path / "o.gede")


def test_a_later_minor_is_read(mixed_file, tmp_path):
    T, c, data = mixed_file
    h, secs = parse(data)
    path = tmp_path / "m.gede"
    path.write_bytes(build(dict(h, minor=4, n_sections=8, reserved1=3), secs + [[b"XTRA", 0, b"later"]]))
    with gedenb.open(path) as r:
        assert r.version == (2, 4) and same(r.read_rows(slice(None)), T)


def test_readers_of_format_1_refuse_mixed_files(mixed_file, tmp_path, monkeypatch):
    T, c, data = mixed_file
    path = tmp_path / "m.gede"
    path.write_bytes(data)
    monkeypatch.setattr(_store, "SUPPORTED_MAJOR", (1,))
    with pytest.raises(FormatError, match="version 2.0 is not supported"):
        gedenb.open(path)


def test_the_last_format_1_release_refuses_mixed_files(mixed_file, tmp_path):
    """The gedenb of commit 8fd5b76 (before mixed tables) opens the file in a child process."""
    T, c, data = mixed_file
    old = tmp_path / "old"
    old.mkdir()
    try:
        archive = subprocess.run(["git", "-C", str(support.CHECKOUT), "archive", "8fd5b76", "gedenb"], capture_output=True,
                                 timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip("the git history with commit 8fd5b76 is not available")
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True, timeout=60)
    path = tmp_path / "m.gede"
    path.write_bytes(data)
    code = ("import sys, gedenb\n"
            "assert gedenb.__file__.startswith(sys.argv[2]), gedenb.__file__\n"
            "try:\n    gedenb.open(sys.argv[1])\nexcept gedenb.FormatError as e:\n    print('REFUSED', e)\n")
    env = dict(os.environ, PYTHONPATH=str(old))
    out = subprocess.run([sys.executable, "-c", code, str(path), str(old)], capture_output=True, text=True,
                         timeout=300, env=env, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.startswith("REFUSED header: file format version 2.0 is not supported"), out.stdout


def test_random_damage_is_caught(mixed_file, tmp_path):
    """verify=True: any damage (bit flips, cuts, insertions, in every section) raises FormatError or reads exactly."""
    T, c, data = mixed_file
    rng = np.random.default_rng(2)
    path = tmp_path / "d.gede"
    caught = 0
    for i in range(300):
        b = bytearray(data)
        op = i % 3
        p = int(rng.integers(0, len(b)))
        if op == 0:
            for q in rng.integers(0, 8 * len(b), int(rng.integers(1, 4))):
                b[q // 8] ^= 0x80 >> (q % 8)
        elif op == 1:
            del b[p:p + int(rng.integers(1, 9))]
        else:
            b[p:p] = rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8).tobytes()
        path.write_bytes(bytes(b))
        try:
            with gedenb.open(path) as r:
                assert same(r.read_rows(slice(None)), T)
        except FormatError:
            caught += 1
    assert caught >= 290


def test_damaged_and_forged_files_never_crash(mixed_file, tmp_path):
    """verify=False damage and CRC-consistent forgeries of FLDS, CODC and the header, in a child process."""
    T, c, data = mixed_file
    (tmp_path / "m.gede").write_bytes(data)
    out = subprocess.run([sys.executable, "-X", "faulthandler", str(THIS), "fuzz", str(tmp_path), "400"],
                         capture_output=True, text=True, timeout=600, env=support.child_env())
    assert out.returncode == 0, out.stderr[-4000:]
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert stats["cases"] == 400 and stats["format_error"] >= 100 and stats["ok"] >= 1, stats


def _forge(data: bytes, rng) -> bytes:
    h, secs = parse(data)
    what = int(rng.integers(5))
    d = h["d"]
    if what == 0:  # a field dtype from the supported list (or not)
        j = int(rng.integers(d))
        codes = [np.dtype(t).newbyteorder("<").str.encode() for t in DTYPES] + [b"|V", b"<c8", b""]
        _field_dtype(j, codes[int(rng.integers(len(codes)))])(h, secs)
    elif what == 1:  # random bytes in FLDS
        p = bytearray(secs[1][2])
        for _ in range(int(rng.integers(1, 4))):
            p[int(rng.integers(len(p)))] = int(rng.integers(256))
        secs[1][2] = bytes(p)
    elif what == 2:  # a codec entry
        codec = np.frombuffer(secs[0][2], dtype=CODEC).copy()
        j = int(rng.integers(d))
        f = ("kind", "width", "scale", "offset")[int(rng.integers(4))]
        top = {"kind": 4, "width": 66, "scale": 12, "offset": 1 << 20}[f]
        codec[f][j] = int(rng.integers(top))
        secs[0][2] = codec.tobytes()
    elif what == 3:  # header fields
        f = ("d", "l_t", "n", "m", "n_b", "beta", "major", "minor", "n_sections")[int(rng.integers(9))]
        bits = 16 if f in ("major", "minor") else 64 if f in ("n", "m", "n_b") else 32
        h[f] = int(rng.choice([0, 1, 2, 3, 7, 8, 9, 64, h[f] - 1, h[f] + 1, 2 * h[f], 1 << 31])) & ((1 << bits) - 1)
    else:  # FLDS truncated or extended
        k = int(rng.integers(1, 16))
        secs[1][2] = secs[1][2][:-k] if rng.random() < 0.5 else secs[1][2] + bytes(k)
    return build(h, secs)


def _child_fuzz(folder, n_cases):
    folder = Path(folder)
    data = (folder / "m.gede").read_bytes()
    rng = np.random.default_rng(9)
    stats = {"cases": 0, "format_error": 0, "ok": 0}
    path = folder / "case.gede"
    for i in range(int(n_cases)):
        if i % 2:
            bad = _forge(data, rng)
        else:
            b = bytearray(data)
            for q in rng.integers(0, 8 * len(b), int(rng.integers(1, 6))):
                b[q // 8] ^= 0x80 >> (q % 8)
            bad = bytes(b)
        path.write_bytes(bad)
        try:
            with gedenb.open(path, verify=bool(i % 3)) as r:
                n, d = r.shape
                rows = r.read_rows(np.array([0, n - 1, n // 2], dtype=np.int64))
                assert rows.shape == ((3,) if r.dtype.names else (3, d))
                assert rows.dtype == r.dtype
                if r.compressed.beta and r.m:
                    s, w = r.condensed()
                    assert s.shape == (len(w), d) and int(w.sum()) == n
            stats["ok"] += 1
        except FormatError:
            stats["format_error"] += 1
        stats["cases"] += 1
    print(json.dumps(stats))


# --------------------------------------------------------------------------
# the Reader, the CLI and the synthetic table
# --------------------------------------------------------------------------
def test_reader_surface(mixed_file, tmp_path):
    T, c, data = mixed_file
    path = tmp_path / "m.gede"
    path.write_bytes(data)
    with gedenb.open(path) as r:
        assert r.codecs.kind.tolist() == c.codecs.kind.tolist()
        row = r[-1]
        assert isinstance(row, np.void) and row.tobytes() == T[-1].tobytes()
        assert same(r[3:9], T[3:9]) and same(r[[5, 5, 0]], T[[5, 5, 0]])
        assert "format 2.0" in repr(r) and "('i', '<i2')" in repr(r)
        assert same(gedenb.decompress(r.compressed), T)
        assert gedenb.eq1_bits(r.compressed) == gedenb.eq1_bits(c)
        assert r.compressed.fields == T.dtype.names


def test_cli_shows_fields_and_writes_a_structured_npy(tmp_path, capsys):
    from gedenb.__main__ import main

    T = fuzz_table()
    np.save(tmp_path / "t.npy", T)
    assert main(["compress", str(tmp_path / "t.npy"), str(tmp_path / "t.gede"), "--beta", "4"]) == 0
    capsys.readouterr()
    assert main(["info", str(tmp_path / "t.gede"), "--columns"]) == 0
    text = capsys.readouterr().out
    assert ".gede format 2.1" in text and "8 fields" in text
    assert ("fields         i int16, dec float64, bin float32, ieee float64, flag bool, u uint8, h float16, "
            "c int64") in text
    assert "column    1: dec (float64) decimal:" in text and "raw records" in text
    assert main(["decompress", str(tmp_path / "t.gede"), str(tmp_path / "back.npy")]) == 0
    assert "200 records of 8 fields" in capsys.readouterr().out
    assert same(np.load(tmp_path / "back.npy"), T)


def test_synthetic_mixed_is_deterministic_and_documented():
    a, b = synthetic_mixed(5000, seed=0), synthetic_mixed(5000, seed=0)
    assert same(a, b) and not same(a, synthetic_mixed(5000, seed=1))
    assert a.dtype == np.dtype([(f, t) for f, t in SYNTHETIC_MIXED_FIELDS]) and a.dtype.itemsize == 60
    kinds = {np.dtype(t).name for _, t in SYNTHETIC_MIXED_FIELDS}
    assert kinds == {"int8", "int16", "int32", "int64", "uint8", "uint32", "bool", "float32", "float64"}
    assert (np.diff(a["timestamp"]) >= 0).all() and np.isnan(synthetic_mixed(20_000)["temperature"]).any()
    assert np.array_equal(a["price"], np.round(a["price"], 2))
    discount = np.round(a["discount"].astype(np.float64), 2)  # the float64 rate behind the float32 field
    assert np.array_equal(a["total"], np.round(a["quantity"] * a["price"] * (1.0 - discount), 2))
    c = gedenb.compress(a, beta=8)
    assert same(gedenb.decompress(c), a)
    kind = dict(zip(a.dtype.names, c.codecs.kind.tolist()))
    assert kind["price"] == kind["total"] == kind["discount"] == DEC and kind["temperature"] == IEEE
    assert gedenb.eq1_bits(c) / 8 < 0.6 * a.nbytes  # there is structure to find
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            synthetic_mixed(bad)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"fuzz": _child_fuzz}[cmd](*args)
