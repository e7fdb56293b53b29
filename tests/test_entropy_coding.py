"""Entropy-coded deviations (``coding="entropy"``): rANS kernels, models, size model, format 3.0.

The fuzz runs in a child process (``python tests/test_entropy_coding.py
fuzz FILE SEED N``) so that a crash would show up as a failed exit code
instead of killing pytest; so do reads with Numba's on-disk cache
(``... cached X.npy FILE...``), which need fresh processes.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

import gedenb
from gedenb import FormatError
from gedenb import store as _store
from gedenb.entropy import coder as _coder
from gedenb.entropy import deviations as _deviations
from gedenb.entropy import fitting as _fitting
from gedenb.entropy import image_models as _image_models
from gedenb.entropy import model as _model
from gedenb.entropy import serial as _serial
from gedenb.images import compress_images
import support

THIS = Path(__file__).resolve()
HEADER = struct.Struct("<8sHHIQQIIQII8sIIQQII")
SECTION = struct.Struct("<4sIQ")


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
def _images(rng, n=120, H=10, W=9, C=1):
    """Blobby images: mostly background, smooth strokes (like digits)."""
    yy, xx = np.mgrid[:H, :W]
    out = np.zeros((n, H, W, C), dtype=np.uint8)
    for i in range(n):
        cy, cx, r = rng.uniform(2, H - 2), rng.uniform(2, W - 2), rng.uniform(1.5, 3.5)
        dist = np.hypot(yy - cy, xx - cx)
        v = np.clip(255 * (1.5 - np.abs(dist - r)), 0, 255)
        for c in range(C):
            out[i, :, :, c] = (v * rng.uniform(0.6, 1.0)).astype(np.uint8)
    return out


def _special_floats(dtype):
    info = np.finfo(dtype)
    u = np.dtype(f"u{np.dtype(dtype).itemsize}")
    nan_payload = np.array([np.nan], dtype=dtype).view(u) | u.type(1)
    return np.concatenate([np.array([0.0, -0.0, np.inf, -np.inf, info.tiny, -info.tiny, info.max, info.min,
                                     info.smallest_subnormal], dtype=dtype), nan_payload.view(dtype)])


def _tables(rng):
    n = 300
    ints = {dt: np.stack([rng.integers(np.iinfo(dt).min, np.iinfo(dt).max, n, dtype=dt, endpoint=True),
                          rng.integers(0, 5, n).astype(dt), np.full(n, np.iinfo(dt).max, dtype=dt),
                          np.repeat(np.array([np.iinfo(dt).min, 0, 1], dtype=dt), n // 3)], axis=1)
            for dt in (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)}
    out = list(ints.values())
    for dt in (np.float16, np.float32, np.float64):
        X = rng.normal(size=(n, 4)).astype(dt)
        X[:, 1] = np.round(X[:, 1] * 100) / 100  # a decimal column
        sp = _special_floats(dt)
        X[:sp.size, 2] = sp
        out.append(X)
    out.append(rng.integers(0, 2, (n, 5)).astype(bool))
    out.append(np.zeros((7, 3), dtype=np.float32))  # all rows equal
    out.append(rng.integers(0, 1000, (1, 6)).astype(np.int32))  # one row
    return out


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# --------------------------------------------------------------------------
# rANS kernels and models
# --------------------------------------------------------------------------
@pytest.mark.parametrize("prec", [_coder.MIN_PREC, _image_models.IMAGE_PREC, _model.PREC])
def test_quantised_tables_sum_to_2_to_the_prec_and_keep_every_seen_symbol(rng, prec):
    for _ in range(50):
        A = int(rng.integers(1, 257))
        counts = np.zeros((3, A), dtype=np.int64)
        counts[0, rng.integers(0, A, 5)] = rng.integers(1, 10**6, 5)
        counts[1] = rng.integers(0, 3, A)
        counts[2, :] = 1  # every symbol seen once, one of them often
        counts[2, rng.integers(0, A)] = 10**6
        freqs = _coder._quantise(counts, prec)
        for t in range(3):
            if counts[t].sum():
                assert freqs[t].sum() == 1 << prec
                assert ((freqs[t] > 0) == (counts[t] > 0)).all()
            else:
                assert not freqs[t].any()


def test_frequency_tables_serialise_exactly(rng):
    alphabet = rng.choice([2, 16, 256], size=40).astype(np.int64)
    counts = np.zeros((40, 256), dtype=np.int64)
    for t in range(40):
        if t % 7:
            k = int(rng.integers(1, alphabet[t] + 1))
            counts[t, rng.choice(alphabet[t], size=k, replace=False)] = rng.integers(1, 5000, k)
    freqs = _coder._quantise(counts, _model.PREC)
    nbits = int(_coder._table_bits(freqs, alphabet))
    words = _coder._write_tables(freqs, alphabet, nbits)
    back, used = _coder._read_tables(words, nbits, alphabet, _model.PREC)
    assert used == nbits
    assert np.array_equal(back, freqs)
    # a truncated stream is refused, never misread
    assert _coder._read_tables(words, nbits - 1, alphabet, _model.PREC)[1] == -1


def test_rows_of_random_symbols_round_trip(rng):
    """Encode random digits with random models, decode every row alone."""
    n, d = 400, 12
    X = np.empty((n, d), dtype=np.uint16)
    for j in range(d):
        p = rng.dirichlet(np.full(1 << 10, 0.05))
        X[:, j] = rng.choice(1 << 10, size=n, p=p)
    X[:, 3] = rng.integers(0, 1 << 16, n)  # an incompressible column: uniform digits, carried bits
    c = gedenb.compress(X, coding="entropy")
    assert c.coding == "entropy"
    assert _same(gedenb.decompress(c), X)
    rows = rng.integers(-n, n, 50)
    got = _deviations.decode_rows(c.coded, c.records, np.where(rows < 0, rows + n, rows).astype(np.int64), c.dtype)
    assert _same(got, X[rows])


def test_carried_digits_are_uniform_and_unreferenced(rng):
    X = np.stack([rng.integers(0, 1 << 30, 500), rng.integers(0, 4, 500)], axis=1).astype(np.int64)
    c = gedenb.compress(X, coding="entropy")
    m = c.coded.model
    carry = _model.carried_slots(m)
    assert carry.any()
    assert (m.slot_table[carry] < 0).all()
    assert int(m.slot_bits[carry].sum()) <= _coder.CARRY_BITS
    refs = m.refs[m.nlev > 1]
    assert not np.isin(np.flatnonzero(carry), refs).any()
    assert _same(gedenb.decompress(c), X)


# --------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------
def _check_tables_round_trip(rng, tmp_path, tables):
    for k, X in enumerate(tables):
        c = gedenb.compress(X, coding="entropy")
        assert _same(gedenb.decompress(c), X), X.dtype
        path = tmp_path / f"t{k}.gede"
        size = gedenb.save(c, path)
        with gedenb.open(path, verify=bool(k % 2)) as r:
            assert r.version == _store.ENTROPY_FORMAT_VERSION
            assert r.compressed.coding == "entropy"
            assert _same(r.read_rows(slice(None)), X)
            idx = rng.integers(-len(X), len(X), 17)
            assert _same(r.read_rows(idx), X[idx])
            assert _same(r[len(X) - 1], X[-1])
        assert size == path.stat().st_size == len(_store.to_bytes(c))


def test_tables_round_trip_bit_exact_through_save_and_open(rng, tmp_path):
    """A few dtypes (each compiles its own decoding kernel); all of them in the slow variant."""
    keep = (np.dtype(np.uint8), np.dtype(np.int64), np.dtype(np.float64), np.dtype(np.bool_))
    tables = [X for X in _tables(rng) if X.dtype in keep]
    assert len(tables) == 4
    _check_tables_round_trip(rng, tmp_path, tables)


@pytest.mark.slow
def test_tables_of_every_dtype_round_trip_bit_exact(rng, tmp_path):
    _check_tables_round_trip(rng, tmp_path, _tables(rng))


@pytest.mark.parametrize("store_condensed", [True, False])
def test_condensed_samples_unchanged_by_the_coding(rng, tmp_path, store_condensed):
    X = np.round(rng.normal(size=(500, 4)) * 100) / 100
    raw = gedenb.compress(X, beta=4, store_condensed=store_condensed)
    ent = gedenb.compress(X, beta=4, store_condensed=store_condensed, coding="entropy")
    for got, want in zip(gedenb.condensed(ent), gedenb.condensed(raw)):
        assert _same(np.asarray(got), np.asarray(want))
    gedenb.save(ent, tmp_path / "c.gede")
    with gedenb.open(tmp_path / "c.gede") as r:
        for got, want in zip(r.condensed(), gedenb.condensed(raw)):
            assert _same(np.asarray(got), np.asarray(want))


def test_mixed_dtype_table_round_trips(rng, tmp_path):
    T = np.zeros(200, dtype=[("k", "i1"), ("x", "f8"), ("b", "?"), ("u", "u4")])
    T["k"] = rng.integers(-128, 128, 200)
    T["x"] = np.round(rng.normal(size=200), 3)
    T["b"] = rng.integers(0, 2, 200)
    T["u"] = rng.integers(0, 2**32, 200)
    c = gedenb.compress(T, coding="entropy")
    assert gedenb.decompress(c).tobytes() == T.tobytes()
    gedenb.save(c, tmp_path / "s.gede")
    with gedenb.open(tmp_path / "s.gede") as r:
        assert r.read_rows(slice(None)).tobytes() == T.tobytes()


@pytest.mark.parametrize("channels", [1, 3])
def test_images_round_trip_with_2d_contexts(rng, tmp_path, channels):
    imgs = _images(rng, n=600, C=channels)
    labels = rng.integers(0, 3, len(imgs))
    store = compress_images(imgs, labels, coding="entropy")
    assert all(p.coded.model.scheme in _model.IMAGE_SCHEMES for p in store.parts)
    assert all(p.coded.model.image_shape == imgs.shape[1:] for p in store.parts)
    gedenb.save(store, tmp_path / "i.gede")
    with gedenb.open(tmp_path / "i.gede") as r:
        idx = rng.integers(-len(imgs), len(imgs), 40)
        got, lab = r.read_images(idx)
        assert _same(got, imgs[idx]) and np.array_equal(lab, labels[idx])
    raw = compress_images(imgs, labels)
    assert store.eq1_bytes() < raw.eq1_bytes()


@pytest.mark.parametrize("channels", [1, 3])
def test_every_image_scheme_round_trips(rng, tmp_path, channels):
    """Each context scheme (with and without zero runs) forced in turn; rows read alone and in batches."""
    X = _images(rng, n=300, C=channels).reshape(300, -1)
    shape = (10, 9, channels)
    for scheme in _model.IMAGE_SCHEMES:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_fitting, "IMAGE_SCHEMES", (scheme,))
            c = gedenb.compress(X, coding="entropy", image_shape=shape)
        if c.coded.model.scheme != scheme:  # raw digits won: nothing to check for this scheme
            assert c.coded.model.scheme == _model.SCHEME_TABLE
            continue
        gedenb.save(c, tmp_path / f"s{scheme}.gede")
        with gedenb.open(tmp_path / f"s{scheme}.gede") as r:
            assert _same(r.read_rows(slice(None)), X)
            for i in rng.integers(0, 300, 20):
                assert _same(r[int(i)], X[i])


def test_zero_runs_are_chosen_for_digit_like_images(rng):
    X = _images(rng, n=2000, H=20, W=18).reshape(2000, -1)
    c = gedenb.compress(X, coding="entropy", image_shape=(20, 18))
    assert c.coded.model.scheme in _model.RUN_SCHEMES
    assert 0 < c.coded.model.split < 20  # split rows (MODL version 2)
    assert _same(gedenb.decompress(c), X)


def test_small_or_noisy_images_fall_back_to_smaller_models(rng):
    noise = rng.integers(0, 256, (60, 64)).astype(np.uint8)
    c = gedenb.compress(noise, coding="entropy", image_shape=(8, 8))
    assert c.coded.model.scheme in (_model.SCHEME_TABLE, _model.SCHEME_IMAGE_FLAT)  # no neighbours pay here
    assert gedenb.size_breakdown(c).deviations <= 1.25 * noise.size * 8  # raw bits + model, states, index
    assert _same(gedenb.decompress(c), noise)
    few = _images(rng, n=12).reshape(12, -1)
    c = gedenb.compress(few, coding="entropy", image_shape=(10, 9))
    assert c.coded.model.scheme != _model.SCHEME_IMAGE  # 81 contexts do not pay for 12 images
    assert _same(gedenb.decompress(c), few)


def test_image_contexts_beat_table_contexts_on_images(rng):
    X = _images(rng, n=300).reshape(300, -1)
    img = gedenb.compress(X, coding="entropy", image_shape=(10, 9))
    tab = gedenb.compress(X, coding="entropy")
    assert _same(gedenb.decompress(img), X) and _same(gedenb.decompress(tab), X)
    assert gedenb.eq1_bits(img) < gedenb.eq1_bits(tab) < gedenb.eq1_bits(gedenb.compress(X))


def test_parallel_and_serial_decoding_agree(rng):
    X = _images(rng, n=1200).reshape(1200, -1)
    c = gedenb.compress(X, coding="entropy", image_shape=(10, 9))
    rows = rng.integers(0, 1200, 2000).astype(np.int64)  # 2000 * 90 values: the parallel kernel
    assert rows.size * X.shape[1] >= _deviations.PARALLEL_MIN_VALUES
    assert _same(_deviations.decode_rows(c.coded, c.records, rows, c.dtype), X[rows])


def _one_chain(X, **kw):
    """``X`` compressed with rows of one rANS chain (MODL version 1, as gedenb wrote before split rows)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_fitting, "_balanced_split", lambda *a: 0)
        c = gedenb.compress(X, coding="entropy", **kw)
    assert c.coded.model.split == 0
    return c


def _general(coded):
    """The same coded rows without the image decoder: the general kernels decode them."""
    return coded._replace(ip=_image_models._NO_IP, base_lev=_image_models._NO_LEV, base_nz=_image_models._NO_NZ)


@pytest.mark.parametrize("scheme", _model.IMAGE_SCHEMES)
def test_image_decoder_matches_the_general_decoder(rng, scheme):
    """One row (registers), small batches (lanes), large batches (parallel lanes), repeats and negatives."""
    X = _images(rng, n=400, H=9, W=11).reshape(400, -1)
    X[::7, 5] = 3  # a column with a non-zero base level in some rows' neighbourhoods
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_fitting, "IMAGE_SCHEMES", (scheme,))
        c = gedenb.compress(X, coding="entropy", image_shape=(9, 11))
    if c.coded.model.scheme != scheme:
        pytest.skip("raw digits won for this scheme on these images")
    assert c.coded.ip.size  # the image decoder applies
    slow = _general(c.coded)
    for rows in (np.array([5]), np.array([-1]), rng.integers(-400, 400, 3), rng.integers(0, 400, 37),
                 rng.integers(-400, 400, 1000), np.zeros(0, dtype=np.int64)):
        rows = rows.astype(np.int64)
        got = _deviations.decode_rows(c.coded, c.records, rows, c.dtype)
        assert _same(got, X[rows])
        assert _same(got, _deviations.decode_rows(slow, c.records, rows % 400, c.dtype))
        codes = _deviations.decode_rows(c.coded, c.records, rows, c.dtype, codes_only=True)
        assert _same(codes, _deviations.decode_rows(slow, c.records, rows % 400, c.dtype, codes_only=True))


@pytest.mark.parametrize("kind", ["offset", "signed", "float"])
def test_image_decoder_writes_every_codec(rng, kind):
    """Integer codecs with offsets (code + offset), signed integers, and floats (the general value path)."""
    X = _images(rng, n=300).reshape(300, -1)
    if kind == "offset":
        X = X // 2 + 100  # every column's minimum is at least 100
    elif kind == "signed":
        X = X.astype(np.int16) - 300
    else:
        X = X.astype(np.float32) / 4
    c = gedenb.compress(X, coding="entropy", image_shape=(10, 9))
    assert c.coded.ip.size  # the image decoder applies
    assert kind == "float" or (np.asarray(c.codecs.offset) != 0).any()
    want = {"offset": 1, "signed": 1, "float": 0}[kind]
    assert c.coded.meta[_model.MT_INT] == want and c.coded.meta_codes[_model.MT_INT] == 2
    rows = rng.integers(-300, 300, 500).astype(np.int64)
    for r in (rows, rows[:1], rows[:5]):
        assert _same(_deviations.decode_rows(c.coded, c.records, r, c.dtype), X[r])
        assert _same(_deviations.decode_rows(c.coded, c.records, r, c.dtype, codes_only=True),
                     _deviations.decode_rows(_general(c.coded), c.records, r % 300, c.dtype, codes_only=True))


def test_image_decoder_kernels_agree(rng):
    """The serial and parallel kernels, called directly, on every row: split rows and rows of one chain."""
    X = _images(rng, n=300, H=20, W=18).reshape(300, -1)
    c = gedenb.compress(X, coding="entropy", image_shape=(20, 18))
    assert c.coded.model.split and c.coded.ip[_image_models.IP_SPLIT] == _model.split_slot(c.coded.model) > 0
    one_chain = _one_chain(X, image_shape=(20, 18))
    assert one_chain.coded.ip[_image_models.IP_SPLIT] == -1
    rows = np.arange(300, dtype=np.int64)
    for c, direct in ((c, True), (c, False), (one_chain, False)):  # into the output / through a code scratch
        k = c.coded
        block, serial, parallel = _image_models.image_kernels(k.ip, direct)

        def args(rows):
            out = np.zeros((rows.size, X.shape[1]), dtype=np.uint8)
            return out, (k.stream, c.records if c.records.size else _deviations._EMPTY, k.ip, 300, False, out,
                         _deviations._NO_FLOAT)

        out, a = args(rows)
        ip = k.ip
        scratch = np.empty(2 * (ip[_image_models.IP_D] + ip[_image_models.IP_H] + ip[_image_models.IP_NBUF] // 8),
                           dtype=np.uint64)
        assert block(rows, 0, 300, *a, scratch) == -1 and _same(out, X)
        out, a = args(rows)
        assert parallel(rows, *a) == -1 and _same(out, X)
        for i in (0, 1, 299, -300):
            one = np.array([i], dtype=np.int64)
            out, a = args(one)
            assert serial(one, *a) == -1 and _same(out, X[[i]])
        for bad in (300, -301):
            for rows_ in (np.array([bad]), np.array([0, bad, 1]), np.r_[np.arange(40), bad]):
                out, a = args(rows_)
                assert serial(rows_.astype(np.int64), *a) == int(np.flatnonzero(rows_ == bad)[0])


def test_cached_kernels_keep_their_context_multipliers(rng, tmp_path):
    """Split-row kernels have the context multipliers compiled in (one kernel set per set of multipliers).
    With the on-disk kernel cache (on by default) a later process loads them from disk: each store
    must still get the kernels of its own multipliers.  Two stores (zero-run schemes with 4 and with 2
    neighbours) are read in one process, which compiles and writes the cache, then in the other order in a
    second process, which must load every image kernel from the cache and decode both exactly."""
    X = _images(rng, n=300).reshape(300, -1)
    paths, mults = [], set()
    for scheme in _model.RUN_SCHEMES:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(_fitting, "IMAGE_SCHEMES", (scheme,))
            c = gedenb.compress(X, coding="entropy", image_shape=(10, 9))
        assert c.coded.model.scheme == scheme and c.coded.ip[_image_models.IP_SPLIT] >= 0
        mults.add(tuple(int(m) for m in c.coded.ip[_image_models.IP_MW:_image_models.IP_MNE + 1]))
        paths.append(tmp_path / f"s{scheme}.gede")
        gedenb.save(c, paths[-1])
    assert len(mults) == 2
    np.save(tmp_path / "X.npy", X)
    cache = tmp_path / "numba-cache"
    env = support.child_env(cache=cache)

    def kernels_on_disk():
        return sorted(p.name for p in cache.rglob("*image*.nbc"))

    seen = []
    for order in (paths, paths[::-1]):
        proc = subprocess.run([sys.executable, str(THIS), "cached", str(tmp_path / "X.npy"), *map(str, order)],
                              capture_output=True, text=True, timeout=1200, env=env)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "cached ok" in proc.stdout
        seen.append(kernels_on_disk())
    assert len([k for k in seen[0] if "_decode_image_two" in k]) >= 2  # one per set of multipliers
    assert seen[1] == seen[0]  # the second process compiled nothing new: it loaded every kernel


def _cached(npy: str, *paths: str) -> None:
    X = np.load(npy)
    for path in paths:
        with gedenb.open(path) as r:
            for i in range(len(X)):
                assert r.read_rows(np.array([i], dtype=np.int64)).tobytes() == X[[i]].tobytes(), (path, i)
            assert r.read_rows(slice(None)).tobytes() == X.tobytes(), path
    print("cached ok")


@pytest.mark.parametrize("shape", [(20, 18, 1), (20, 18, 3), (6, 70, 1), (4, 40, 1)])
def test_split_rows_and_rows_of_one_chain_round_trip(rng, tmp_path, shape):
    """Zero-run image rows as two rANS chains (MODL version 2) or one (version 1, files of earlier gedenb):
    the image decoder (one channel, at most 62 wide) and the general decoder (colour, wider), in memory and
    through save/open, one row and batches."""
    H, W, C = shape
    X = _images(rng, n=400, H=H, W=W, C=C).reshape(400, -1)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_fitting, "IMAGE_SCHEMES", _model.RUN_SCHEMES)  # runs even where they would not win
        split = gedenb.compress(X, coding="entropy", image_shape=shape)
        one = _one_chain(X, image_shape=shape)
    assert split.coded.model.scheme in _model.RUN_SCHEMES and 0 < split.coded.model.split < H
    assert (split.coded.ip.size > 0) == (C == 1 and W <= _image_models.IMAGE_MAX_W) == (one.coded.ip.size > 0)
    for c, version in ((split, _serial.SPLIT_MODEL_VERSION), (one, _serial.MODEL_VERSION)):
        assert _serial.model_to_bytes(c.coded.model, 0)[:4] == struct.pack("<I", version)
        assert _same(gedenb.decompress(c), X)
        rows = rng.integers(-400, 400, 300).astype(np.int64)
        assert _same(_deviations.decode_rows(_general(c.coded), c.records, rows % 400, c.dtype), X[rows])
        path = tmp_path / f"v{version}.gede"
        gedenb.save(c, path)
        with gedenb.open(path) as r:
            assert _same(r.read_rows(rows), X[rows])
            for i in (0, 399, -1, 17):
                assert _same(r.read_rows(np.array([i])), X[[i]]) and _same(r[i], X[i])
    # a split costs a second flushed state per row; the estimate counts it
    codes = _codes(X, split)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_fitting, "IMAGE_SCHEMES", _model.RUN_SCHEMES)
        fits = [_fitting.fit(codes, split.widths, split.base_mask, shape, counts_only=True)]
        mp.setattr(_fitting, "_balanced_split", lambda *a: 0)
        fits.append(_fitting.fit(codes, split.widths, split.base_mask, shape, counts_only=True))
    assert fits[0][0].split and not fits[1][0].split
    assert (_fitting.estimate_bits(fits[0][0], fits[0][3], len(X))
            > _fitting.estimate_bits(fits[1][0], fits[1][3], len(X)))


def test_image_decoder_applies_only_where_it_can(rng):
    X = _images(rng, n=150, H=4, W=70).reshape(150, -1)  # rows wider than one 64-bit mask
    c = gedenb.compress(X, coding="entropy", image_shape=(4, 70))
    assert c.coded.model.scheme in _model.IMAGE_SCHEMES and c.coded.ip.size == 0
    assert _same(gedenb.decompress(c), X)
    X = _images(rng, n=150, C=3).reshape(150, -1)  # channels: the general image path
    c = gedenb.compress(X, coding="entropy", image_shape=(10, 9, 3))
    assert c.coded.model.scheme in _model.IMAGE_SCHEMES and c.coded.ip.size == 0
    # taller than a slot word's 8-bit row field
    X = _images(rng, n=60, H=_image_models.IMAGE_MAX_H + 1, W=5).reshape(60, -1)
    c = gedenb.compress(X, coding="entropy", image_shape=(_image_models.IMAGE_MAX_H + 1, 5))
    assert c.coded.model.scheme in _model.IMAGE_SCHEMES and c.coded.ip.size == 0
    assert _same(gedenb.decompress(c), X)
    X = _images(rng, n=60, H=_image_models.IMAGE_MAX_H, W=5).reshape(60, -1)  # the tallest the image decoder takes
    c = gedenb.compress(X, coding="entropy", image_shape=(_image_models.IMAGE_MAX_H, 5))
    assert c.coded.ip.size and _same(gedenb.decompress(c), X)
    rows = rng.integers(-60, 60, 30).astype(np.int64)
    assert _same(_deviations.decode_rows(c.coded, c.records, rows, c.dtype), X[rows])
    X = _images(rng, n=150).reshape(150, -1)
    c = gedenb.compress(X, coding="entropy", image_shape=(10, 9))
    assert c.coded.ip.size


def _error(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the type and message are what we compare
        return type(e), str(e)
    return None


def test_lean_read_path_raises_like_the_general_path(rng, tmp_path):
    X, path = _file(rng, tmp_path, image=True)
    n = len(X)
    with gedenb.open(path) as lean, gedenb.open(path) as full:
        full._lean = None
        assert lean._lean is not None
        good = [np.array([3], dtype=np.int64), np.array([-1, 0, n - 1, -n], dtype=np.int64),
                rng.integers(-n, n, 50), np.arange(n, dtype=np.int64)[::-3], np.zeros(0, dtype=np.int64)]
        for idx in good:
            assert _same(lean.read_rows(idx), full.read_rows(idx)) and _same(lean.read_rows(idx), X[idx])
        assert _same(lean[7], X[7]) and _same(lean[-2], X[-2])
        bad = [np.array([n], dtype=np.int64), np.array([-n - 1], dtype=np.int64), np.array([0, 1, n + 5]),
               np.array([2**62, 0]), np.array([True]), np.array([1.0]), np.zeros((1, 1), dtype=np.int64),
               np.array([n], dtype=np.uint64), np.array([n], dtype=np.int32)]
        for idx in bad:
            e = _error(lambda: lean.read_rows(idx))
            assert e is not None and e == _error(lambda: full.read_rows(idx)), (idx, e)
        assert _error(lambda: lean.read_rows(np.array([n])))[0] is IndexError


def test_reader_threads_share_no_scratch(rng, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    X, path = _file(rng, tmp_path, image=True)
    batches = [rng.integers(0, len(X), int(k)).astype(np.int64) for k in rng.integers(1, 60, 200)]
    with gedenb.open(path) as r, ThreadPoolExecutor(4) as pool:
        got = list(pool.map(r.read_rows, batches))
    assert all(_same(g, X[b]) for g, b in zip(got, batches))


# --------------------------------------------------------------------------
# the size model
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["image", "table"])
def test_size_model_tracks_the_bytes_written(rng, kind):
    if kind == "image":
        X, shape = _images(rng, n=400).reshape(400, -1), (10, 9)
    else:
        X, shape = np.round(rng.normal(size=(3000, 5)) * 1000) / 1000, None
    c = gedenb.compress(X, coding="entropy", image_shape=shape)
    written = len(_store.to_bytes(c))
    estimate = c.greedy_sizes.min() / 8  # what the greedy minimised, for the mask it chose
    frames = 16 * 9 + 8 * 9  # nine section frames and their padding, which Eq. 1 leaves out
    assert abs(written - estimate) <= 0.01 * written + frames
    # the breakdown counts exactly the coded sections
    k = c.coded
    assert gedenb.size_breakdown(c).deviations == 8 * (len(_serial.model_to_bytes(k.model, k.off_bits))
                                                       + _coder.index_bytes(k) + k.stream.size)
    assert 0 <= written - gedenb.eq1_bits(c) / 8 <= frames


def test_greedy_keeps_the_smallest_estimated_size(rng):
    X = (np.repeat(rng.integers(0, 2**20, (40, 3)), 50, axis=0) + rng.integers(0, 4, (2000, 3))).astype(np.int64)
    c = gedenb.compress(X, coding="entropy", tau=3)
    sizes = c.greedy_sizes
    assert sizes.size >= 4  # the plateau rule ran
    codes = _codes(X, c)
    # sizes[0] is the estimate with the constant positions only, plus S_params
    s_params = int(sizes[0]) - round(_fitting.coded_size_bits(codes, c.widths, _const_mask(c, X), 1, c.n, 0, 0))
    assert s_params > 0
    again = _fitting.coded_size_bits(codes, c.widths, c.base_mask, c.n_bases, c.n, 0, s_params)
    assert abs(again - sizes.min()) <= 1


@pytest.mark.parametrize("kind", ["images", "tables"])
def test_counts_only_fits_count_what_full_fits_count(rng, kind):
    """Size estimates count symbols without per-row arrays: the same model, counts and estimate as a full fit."""
    cases = []
    if kind == "images":
        for C in (1, 3):
            X = _images(rng, n=150, C=C).reshape(150, -1)
            c = gedenb.compress(X, coding="entropy", image_shape=(10, 9, C))
            cases.append((X, c, (10, 9, C)))
        X = _images(rng, n=150, H=20, W=18).reshape(150, -1)  # zero runs and split rows
        cases.append((X, gedenb.compress(X, coding="entropy", image_shape=(20, 18)), (20, 18, 1)))
        X = (_images(rng, n=150).reshape(150, -1).astype(np.uint16) * 97) % 4099  # two digits per column
        cases.append((X, gedenb.compress(X, coding="entropy", image_shape=(10, 9)), (10, 9, 1)))
    else:
        cases = [(X, gedenb.compress(X, coding="entropy"), None) for X in _tables(rng)]
    seen = set()
    for X, c, shape in cases:
        codes = _codes(X, c)
        for mask in (c.base_mask, np.zeros_like(c.base_mask), _const_mask(c, X)):
            full = _fitting.fit(codes, c.widths, mask, shape)
            lean = _fitting.fit(codes, c.widths, mask, shape, counts_only=True)
            assert lean[2] is None and np.array_equal(lean[3], full[3]) and np.array_equal(lean[1], full[1])
            for a, b in zip(lean[0], full[0]):
                assert np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
            assert _fitting.estimate_bits(lean[0], lean[3], len(X)) == _fitting.estimate_bits(full[0], full[3], len(X))
            seen.add(full[0].scheme)
    if kind == "images":  # chosen models with and without zero runs
        assert seen & set(_model.RUN_SCHEMES) and seen & (set(_model.IMAGE_SCHEMES) - set(_model.RUN_SCHEMES))
    else:
        assert seen == {_model.SCHEME_TABLE}


def _codes(X, c):
    from gedenb.encode import encode_columns

    return np.ascontiguousarray(encode_columns(X, c.codecs), dtype=np.uint64)


def _const_mask(c, X):
    from gedenb import bits as _bits
    from gedenb.encode import encode_columns

    w = c.widths
    l_t = int(w.sum())
    words = _bits._pack_codes(encode_columns(X, c.codecs), w, _bits.words_per_row(l_t))
    counts = _bits._position_counts(_bits._transpose_bits(words, l_t), 0, len(X))
    return (counts == 0) | (counts == len(X))


# --------------------------------------------------------------------------
# arguments
# --------------------------------------------------------------------------
def test_bad_arguments_are_refused(rng):
    X = rng.integers(0, 9, (20, 6)).astype(np.uint8)
    with pytest.raises(ValueError, match="coding"):
        gedenb.compress(X, coding="zstd")
    with pytest.raises(ValueError, match="image_shape"):
        gedenb.compress(X, image_shape=(2, 3))
    with pytest.raises(ValueError, match="image_shape"):
        gedenb.compress(X, coding="entropy", image_shape=(4, 4))
    with pytest.raises(TypeError, match="image_shape"):
        gedenb.compress(X, coding="entropy", image_shape=6)
    c = gedenb.compress(X, coding="entropy", image_shape=(2, 3))
    assert c.coded.model.image_shape == (2, 3, 1)


def test_out_of_range_rows_are_refused_by_the_kernel(rng):
    X = rng.integers(0, 9, (20, 6)).astype(np.uint8)
    c = gedenb.compress(X, coding="entropy")
    with pytest.raises(FormatError, match="out of range"):
        _deviations.decode_rows(c.coded, c.records, np.array([20], dtype=np.int64), c.dtype)


def test_cli_compresses_with_entropy_coding_and_describes_it(rng, tmp_path, capsys):
    from gedenb.__main__ import main

    X = np.round(rng.normal(size=(200, 3)), 2)
    np.save(tmp_path / "t.npy", X)
    assert main(["compress", str(tmp_path / "t.npy"), str(tmp_path / "t.gede"), "--coding", "entropy"]) == 0
    assert main(["info", str(tmp_path / "t.gede")]) == 0
    out = capsys.readouterr().out
    assert ".gede format 3.0" in out and "coding         entropy (rANS, table contexts)" in out
    with gedenb.open(tmp_path / "t.gede") as r:
        assert _same(r.read_rows(slice(None)), X)


# --------------------------------------------------------------------------
# the file: version, checksums, forged fields, damage
# --------------------------------------------------------------------------
def _file(rng, tmp_path, image=False):
    if image:  # big enough for zero runs: split rows (MODL version 2)
        X = _images(rng, n=200, H=20, W=18).reshape(200, -1)
        c = gedenb.compress(X, coding="entropy", image_shape=(20, 18))
        assert c.coded.model.split
    else:
        X = np.round(rng.normal(size=(300, 4)) * 100) / 100
        c = gedenb.compress(X, beta=3, coding="entropy", exact_condensed=False)  # the 3.0 layout
    path = tmp_path / ("img.gede" if image else "tab.gede")
    gedenb.save(c, path)
    return X, path


def _sections(data: bytes):
    out, pos = {}, HEADER.size
    while pos + SECTION.size <= len(data):
        tag, crc, nbytes = SECTION.unpack_from(data, pos)
        out[tag] = (pos, pos + SECTION.size, nbytes)
        pos += SECTION.size + nbytes + (-nbytes % 8)
    return out


def _refix(data: bytearray, tag: bytes) -> None:
    """Recompute the CRC of section ``tag`` (a forged file with correct checksums)."""
    frame, start, nbytes = _sections(bytes(data))[tag]
    struct.pack_into("<I", data, frame + 4, zlib.crc32(bytes(data[start:start + nbytes])))


def test_file_is_format_3_with_the_entropy_flag_and_sections(rng, tmp_path):
    _, path = _file(rng, tmp_path)
    data = path.read_bytes()
    h = HEADER.unpack_from(data, 0)
    assert (h[1], h[2]) == (3, 0) and h[3] & 4 and h[12] == 9
    assert list(_sections(data))[-3:] == [b"MODL", b"RIDX", b"ROWS"]


def test_older_reader_refuses_the_file_by_its_version(rng, tmp_path, monkeypatch):
    _, path = _file(rng, tmp_path)
    monkeypatch.setattr(_store, "SUPPORTED_MAJOR", (1, 2))
    with pytest.raises(FormatError, match="version 3.0 is not supported"):
        gedenb.open(path)


def test_entropy_flag_must_match_the_version(rng, tmp_path):
    _, path = _file(rng, tmp_path)
    data = bytearray(path.read_bytes())
    struct.pack_into("<H", data, 8, 1)  # claim 1.0
    struct.pack_into("<I", data, 92, zlib.crc32(bytes(data[:92])))
    bad = tmp_path / "bad.gede"
    bad.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="ENTROPY flag"):
        gedenb.open(bad)


@pytest.mark.parametrize("tag", [b"MODL", b"RIDX", b"ROWS"])
def test_damaged_coded_sections_fail_their_checksum(rng, tmp_path, tag):
    _, path = _file(rng, tmp_path)
    data = bytearray(path.read_bytes())
    _frame, start, nbytes = _sections(bytes(data))[tag]
    data[start + nbytes // 2] ^= 0x10
    bad = tmp_path / "bad.gede"
    bad.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="checksum"):
        gedenb.open(bad)


FORGERIES = {
    "model version": (b"MODL", lambda p: struct.pack_into("<I", p, 0, 3), "model version"),
    "split rows in a table model": (b"MODL", lambda p: struct.pack_into("<I", p, 0, 2), "zero-run scheme"),
    "precision": (b"MODL", lambda p: struct.pack_into("<I", p, 8, 13), "precision"),
    "precision too low": (b"MODL", lambda p: struct.pack_into("<I", p, 8, 7), "precision"),
    # a supported precision that is not the one the tables were quantised to: they do not sum to 2**prec
    "precision not the tables'": (b"MODL", lambda p: struct.pack_into("<I", p, 8, 11 - (
        struct.unpack_from("<I", p, 8)[0] == 11)), "frequency tables"),
    "slot count": (b"MODL", lambda p: struct.pack_into("<I", p, 20, struct.unpack_from("<I", p, 20)[0] + 1),
                   "digit slots"),
    "table count": (b"MODL", lambda p: struct.pack_into("<I", p, 24, 5000), "frequency tables"),
    "table bits": (b"MODL", lambda p: struct.pack_into("<Q", p, 56, struct.unpack_from("<Q", p, 56)[0] - 3),
                   "table stream|frequency tables|padding"),
    "first block offset": (b"RIDX", lambda p: struct.pack_into("<Q", p, 0, 1), "block offsets"),
    "last block offset": (b"RIDX", lambda p: struct.pack_into("<Q", p, 8, 2**40), "block offsets"),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_forged_fields_with_correct_checksums_are_rejected(rng, tmp_path, name):
    tag, edit, why = FORGERIES[name]
    _, path = _file(rng, tmp_path)
    data = bytearray(path.read_bytes())
    _frame, start, nbytes = _sections(bytes(data))[tag]
    payload = bytearray(data[start:start + nbytes])
    edit(payload)
    data[start:start + nbytes] = payload
    _refix(data, tag)
    bad = tmp_path / "bad.gede"
    bad.write_bytes(bytes(data))
    for verify in (True, False):
        with pytest.raises(FormatError, match=why):
            gedenb.open(bad, verify=verify)


SPLIT_FORGERIES = {
    "split row 0": (lambda p: struct.pack_into("<I", p, 64, 0), "split row"),
    "split row H": (lambda p: struct.pack_into("<I", p, 64, 20), "split row"),
    "split padding": (lambda p: struct.pack_into("<I", p, 68, 1), "split row"),
    "one chain claimed": (lambda p: struct.pack_into("<I", p, 0, 1), "MODL"),
    "another split row": (lambda p: struct.pack_into("<I", p, 64, struct.unpack_from("<I", p, 64)[0] + 1), "ROWS"),
}


@pytest.mark.parametrize("name", sorted(SPLIT_FORGERIES))
def test_forged_split_records_are_rejected(rng, tmp_path, name):
    """MODL version 2: the split record is checked at open; a valid but wrong split row fails its rows."""
    edit, why = SPLIT_FORGERIES[name]
    X, path = _file(rng, tmp_path, image=True)
    data = bytearray(path.read_bytes())
    _frame, start, nbytes = _sections(bytes(data))[b"MODL"]
    assert struct.unpack_from("<I", data, start)[0] == _serial.SPLIT_MODEL_VERSION
    payload = bytearray(data[start:start + nbytes])
    edit(payload)
    data[start:start + nbytes] = payload
    _refix(data, b"MODL")
    bad = tmp_path / "bad.gede"
    bad.write_bytes(bytes(data))
    with pytest.raises(FormatError, match=why):
        with gedenb.open(bad) as r:  # a wrong split row is a valid model: its rows do not decode
            r.read_rows(np.arange(len(X)))


def _damaged_rows(rng, tmp_path, step, flip):
    """An image store whose ROWS bytes ``0, step, 2 step, ...`` are XOR-ed with ``flip`` (checksum not fixed)."""
    X, path = _file(rng, tmp_path, image=True)
    data = bytearray(path.read_bytes())
    _frame, start, nbytes = _sections(bytes(data))[b"ROWS"]
    for k in range(0, nbytes, step):
        data[start + k] ^= flip
    bad = tmp_path / "bad.gede"
    bad.write_bytes(bytes(data))
    return X, bad


def test_damaged_rows_read_without_verification_fail_at_read(rng, tmp_path):
    X, bad = _damaged_rows(rng, tmp_path, 97, 0xA5)
    with gedenb.open(bad, verify=False) as r:
        caught = 0
        for i in range(len(X)):
            try:
                row = r.read_rows([i])
            except FormatError:
                caught += 1
                continue
            assert row.shape == (1, X.shape[1]) and row.dtype == X.dtype
        assert caught > 0


def test_damaged_rows_in_batches_name_the_first_bad_row(rng, tmp_path):
    """Batches decode rows in pairs: a batch fails exactly when one of its rows fails alone, naming the first."""
    X, bad_path = _damaged_rows(rng, tmp_path, 211, 0x5A)
    with gedenb.open(bad_path, verify=False) as r:
        assert r._lean is not None  # the image decoder reads these rows
        bad = set()
        for i in range(len(X)):
            try:
                r.read_rows(np.array([i], dtype=np.int64))
            except FormatError:
                bad.add(i)
        assert 0 < len(bad) < len(X)
        first_bad = min(bad)
        good = [i for i in range(len(X)) if i not in bad]
        cases = [np.array(good, dtype=np.int64), np.array([first_bad, good[0]]), np.array([good[0], first_bad]),
                 np.array([first_bad, first_bad]), np.array(good[:3] + [first_bad] + good[3:6])]
        cases += [rng.permutation(len(X))[:n].astype(np.int64) for n in (2, 3, 17, 40)]
        for rows in cases:
            rows = np.ascontiguousarray(rows, dtype=np.int64)
            hit = [int(i) for i in rows if int(i) in bad]
            if not hit:
                got = r.read_rows(rows)
                for k, i in enumerate(rows):
                    assert got[k].tobytes() == r.read_rows(np.array([i], dtype=np.int64))[0].tobytes()
                continue
            with pytest.raises(FormatError, match=f"row {hit[0]} is out of range or corrupt"):
                r.read_rows(rows)


def _check_random_damage(rng, tmp_path, kinds, n_cases):
    for image in kinds:
        _, path = _file(rng, tmp_path, image=image)
        seed = int(rng.integers(2**31))
        proc = subprocess.run([sys.executable, str(THIS), "fuzz", str(path), str(seed), str(n_cases)],
                              capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        assert "fuzz ok" in proc.stdout


def test_random_damage_never_crashes(rng, tmp_path):
    """Random bit flips in the coded sections, plain and with forged checksums, in a child process."""
    _check_random_damage(rng, tmp_path, (True,), 60)


@pytest.mark.slow
def test_random_damage_never_crashes_slow(rng, tmp_path):
    _check_random_damage(rng, tmp_path, (False, True), 1000)


def _fuzz(path: str, seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    good = Path(path).read_bytes()
    secs = _sections(good)
    with gedenb.open(path) as r:
        want = r.read_rows(slice(None))
    out = Path(path).with_suffix(".fuzz")
    outcomes = {"refused": 0, "exact": 0, "read error": 0, "wrong values": 0}
    for case in range(n):
        data = bytearray(good)
        tag = [b"MODL", b"RIDX", b"ROWS", b"RECS", b"BASE"][case % 5]
        _frame, start, nbytes = secs[tag]
        if nbytes == 0:
            continue
        for _ in range(int(rng.integers(1, 4))):
            q = start + int(rng.integers(nbytes))
            data[q] ^= 1 << int(rng.integers(8))
        if case % 2:
            _refix(data, tag)  # forged: checksums right, contents wrong
        out.write_bytes(bytes(data))
        for verify in (True, False):
            try:
                r = gedenb.open(out, verify=verify)
            except FormatError:
                outcomes["refused"] += 1
                continue
            try:
                for rows in (slice(None), rng.integers(0, len(want), 5)):
                    try:
                        got = r.read_rows(rows)
                    except FormatError:
                        outcomes["read error"] += 1
                        continue
                    assert got.shape == want[rows].shape and got.dtype == want.dtype
                    outcomes["exact" if got.tobytes() == want[rows].tobytes() else "wrong values"] += 1
            finally:
                r.close()
    print("fuzz ok", outcomes)


if __name__ == "__main__":  # child processes of the tests above
    if sys.argv[1] == "fuzz":
        _fuzz(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "cached":
        _cached(*sys.argv[2:])


def test_image_models_of_another_precision_still_read(rng, tmp_path, monkeypatch):
    """Image models are written with IMAGE_PREC bits; a file with 12-bit image tables (as written before)
    decodes through the general decoder, bit for bit."""
    X = np.where(rng.random((300, 64)) < 0.7, 0, rng.integers(0, 256, (300, 64))).astype(np.uint8)
    c_new = gedenb.compress(X, coding="entropy", image_shape=(8, 8))
    assert c_new.coded.model.prec == _image_models.IMAGE_PREC and c_new.coded.ip.size > 0  # the image decoder applies
    monkeypatch.setattr(_image_models, "IMAGE_PREC", _model.PREC)
    c_old = gedenb.compress(X, coding="entropy", image_shape=(8, 8))
    monkeypatch.undo()
    assert c_old.coded.model.prec == _model.PREC
    gedenb.save(c_old, tmp_path / "old.gede")
    with gedenb.open(tmp_path / "old.gede") as r:
        assert r.compressed.coded.model.prec == _model.PREC and r.compressed.coded.ip.size == 0  # general decoder
        idx = rng.integers(-300, 300, 50)
        assert r.read_rows(idx).tobytes() == X[idx].tobytes()
        assert r.read_rows(slice(None)).tobytes() == X.tobytes()


def test_reader_rows_of_an_image_store_with_condensed_samples(rng, tmp_path):
    """The image decoder's own index check covers the n original rows only: condensed samples (rows n .. n+m-1
    inside the store) are not rows of the table, and -1 is row n - 1."""
    X = np.where(rng.random((300, 64)) < 0.7, 0, rng.integers(0, 256, (300, 64))).astype(np.uint8)
    c = gedenb.compress(X, beta=6, coding="entropy", image_shape=(8, 8))
    assert c.m > 0 and c.coded.ip.size > 0
    gedenb.save(c, tmp_path / "c.gede")
    with gedenb.open(tmp_path / "c.gede") as r:
        for idx in ([-1], [-300, 299], [0, -1, 5, -5], list(range(-300, 300, 7))):
            assert r.read_rows(np.array(idx, dtype=np.int64)).tobytes() == X[idx].tobytes()
        for bad in ([300], [-301], [0, 340], [340]):
            with pytest.raises(IndexError):
                r.read_rows(np.array(bad, dtype=np.int64))
        samples, weights = r.condensed()
        assert weights.sum() == 300 and samples.shape == (c.m, 64)
