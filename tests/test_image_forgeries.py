"""Image containers (``gedenb.images``): index checking, forged containers, random damage, pickling.

The container is split and rebuilt here from ``docs/FORMAT.md`` ("Appendix: image containers"), with
valid checksums, so that a forged field reaches the reader's checks instead of its CRCs.
"""

from __future__ import annotations

import json
import pickle
import struct
import zlib

import numpy as np
import pytest

import gedenb
from gedenb import FormatError
from gedenb.images import ImageReader, compress_images, decompress_images

HEADER = struct.Struct("<8sHHIQQIIII12sI")
FIELDS = ("magic", "major", "minor", "nparts", "n", "total", "meta_len", "meta_crc", "index_len", "index_crc",
          "reserved", "crc")
SECTIONS = ("header", "META", "INDEX", "PART")


def _pad(b: bytes, fill: int = 0) -> bytes:
    return b + bytes([fill]) * (-len(b) % 8)


def split(data: bytes):
    """``(header dict, META dict, INDEX bytes, [part bytes, ...])`` of a valid container."""
    h = dict(zip(FIELDS, HEADER.unpack_from(data, 0)))
    pos = HEADER.size
    meta = json.loads(data[pos:pos + h["meta_len"]])
    pos += h["meta_len"] + -h["meta_len"] % 8
    index = data[pos:pos + h["index_len"]]
    parts = [data[a:a + b] for a, b in meta["parts"]]
    return h, meta, index, parts


def forge(data: bytes, edit=None, blob=None, index=None, parts=None, meta_fill=0, index_fill=0, **header) -> bytes:
    """Rebuild a container, every checksum and offset right, with some fields changed.

    ``edit(meta)`` changes META in place (after the part offsets are set); ``blob`` replaces the
    META bytes outright; ``index`` and ``parts`` replace those pieces; ``meta_fill`` and
    ``index_fill`` are the bytes that pad META and INDEX; ``header`` sets header fields (``nparts``
    and ``n`` keep their values unless given).
    """
    h, meta, old_index, old_parts = split(data)
    index = old_index if index is None else index
    parts = old_parts if parts is None else parts
    spans = []
    for _ in range(8):  # the offsets depend on the META length and back: iterate to a fixed point
        m = dict(meta, parts=spans)
        if edit is not None:
            edit(m)
        raw = blob if blob is not None else json.dumps(m, sort_keys=True, separators=(",", ":")).encode()
        start = HEADER.size + len(_pad(raw)) + len(_pad(index))
        new = []
        for p in parts:
            new.append([start, len(p)])
            start += len(_pad(p))
        if new == spans:
            break
        spans = new
    body = _pad(raw, meta_fill) + _pad(index, index_fill) + b"".join(_pad(p) for p in parts)
    h.update(meta_len=len(raw), meta_crc=zlib.crc32(raw), index_len=len(index), index_crc=zlib.crc32(index),
             total=HEADER.size + len(body))
    h.update(header)
    head = HEADER.pack(*(h[f] for f in FIELDS))
    head = head[:-4] + struct.pack("<I", zlib.crc32(head[:-4]))
    return head + body


def _images(n=60, shape=(8, 8), k=3, seed=2):
    rng = np.random.default_rng(seed)
    x = (rng.integers(0, 4, size=(n, *shape)) * 60).astype(np.uint8)
    y = rng.integers(0, k, size=n) * 2 + 1
    y[:k] = np.arange(k) * 2 + 1  # every class present, each with its own count (26, 21, 13)
    return x, y


STORES = {  # name: (image shape, transform, coding)
    "grey_identity_raw": ((8, 8), "identity", "raw"),
    "grey_dct_raw": ((8, 8), "dct", "raw"),
    "grey_identity_entropy": ((8, 8), "identity", "entropy"),
    "rgb_dct_entropy": ((8, 8, 3), "dct", "entropy"),
    "rgb_lossless_raw": ((8, 8, 3), "dct_lossless", "raw"),
}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """name -> (file bytes, images as decoded from the store, labels)."""
    folder = tmp_path_factory.mktemp("images")
    out = {}
    for name, (shape, transform, coding) in STORES.items():
        x, y = _images(shape=shape)
        s = compress_images(x, y, transform=transform, coding=coding)
        gedenb.save(s, folder / name)
        back, labels = decompress_images(s)
        out[name] = ((folder / name).read_bytes(), back, labels)
    return out


def _write(tmp_path, data: bytes, name="forged.gede"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_forge_rebuilds_the_container_exactly(stores, tmp_path):
    for name, (data, back, labels) in stores.items():
        assert forge(data) == data, name
        with gedenb.open(_write(tmp_path, forge(data))) as r:
            imgs, labs = r.read_images(slice(None))
            assert np.array_equal(imgs, back) and np.array_equal(labs, labels)


# --------------------------------------------------------------------------
# item 3: the same index rules as Reader.read_rows
# --------------------------------------------------------------------------
N = 60
INDEX_CASES = [
    ("uint64 max", np.array([2**64 - 1], np.uint64)),
    ("uint64 huge", np.array([2**64 - 10], np.uint64)),
    ("uint64 2**63", np.array([5, 2**63], np.uint64)),
    ("uint64 in range", np.array([59, 0, 7], np.uint64)),
    ("uint64 scalar huge", np.uint64(2**64 - 1)),
    ("negative in range", np.array([-1, -60, -7])),
    ("negative out of range", np.array([-61])),
    ("out of range", np.array([60])),
    ("out of range list", [0, 60]),
    ("python int beyond int64", [2**70]),
    ("python int below int64", [-(2**70)]),
    ("object array in range", np.array([3, -2], dtype=object)),
    ("float list", [1.5]),
    ("float array", np.array([1.0, 2.0])),
    ("bool", True),
    ("numpy bool", np.bool_(False)),
    ("bool array", np.array([True, False])),
    ("strings", ["a"]),
    ("2-D", [[1, 2]]),
    ("2-D empty", np.zeros((0, 2), np.int64)),
    ("empty list", []),
    ("empty int64", np.zeros(0, np.int64)),
    ("empty float", np.zeros(0, np.float64)),
    ("list", [3, 1, 3, -1]),
    ("int8", np.array([5, -3], np.int8)),
    ("uint8", np.array([255], np.uint8)),
    ("slice", slice(2, 40, 3)),
    ("full slice", slice(None)),
    ("negative slice", slice(-5, None)),
    ("slice beyond", slice(50, 1000)),
    ("numpy int scalar", np.int64(5)),
    ("numpy int scalar negative", np.int32(-2)),
    ("numpy int scalar out of range", np.int64(60)),
    ("python int", 7),
]


def _outcome(read, indices):
    try:
        return read(indices)
    except Exception as e:  # the exception type is what is compared
        return type(e)


@pytest.fixture(scope="module")
def index_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("index")
    x, y = _images(n=N)
    gedenb.save(compress_images(x, y), folder / "img.gede")
    table = np.arange(2 * N, dtype=np.int64).reshape(N, 2) * 3
    gedenb.save(gedenb.compress(table), folder / "tab.gede")
    return folder, x, y, table


@pytest.mark.parametrize("name, indices", INDEX_CASES, ids=[c[0] for c in INDEX_CASES])
def test_image_indices_follow_read_rows(index_files, name, indices):
    folder, x, y, table = index_files
    with gedenb.open(folder / "img.gede") as r, gedenb.open(folder / "tab.gede") as t:
        assert isinstance(r, ImageReader)
        want = _outcome(t.read_rows, indices)
        got = _outcome(r.read_images, indices)
        if isinstance(want, type):
            assert got is want, f"{name}: read_images gave {got!r}, read_rows raised {want.__name__}"
            return
        assert not isinstance(got, type), f"{name}: read_images raised {got.__name__}, read_rows read {want.shape}"
        rows = want[:, 0] // 6  # the row numbers read_rows resolved
        imgs, labs = got
        assert imgs.shape == (len(rows), 8, 8, 1) and labs.shape == (len(rows),)
        assert np.array_equal(imgs[..., 0], x[rows]) and np.array_equal(labs, y[rows])


def test_huge_uint64_indices_do_not_wrap(index_files):
    folder, *_ = index_files
    with gedenb.open(folder / "img.gede") as r:
        for v in (2**64 - 1, 2**64 - 10, 2**64 - N):
            with pytest.raises(IndexError):
                r.read_images(np.array([v], np.uint64))


# --------------------------------------------------------------------------
# item 5: forged containers are refused at open, naming the section
# --------------------------------------------------------------------------
def _set(**fields):
    def edit(m):
        m.update(fields)
    return edit


def _parts_as(dtype):
    """Each part replaced by a table of the same rows and width but another dtype."""
    def parts(data):
        h, meta, index, old = split(data)
        out = []
        for p in old:
            c = gedenb.store.parse_table(p, True)[0]
            rows = np.zeros((c.n, c.d), dtype=dtype) + np.arange(c.d, dtype=dtype)
            out.append(gedenb.store.to_bytes(gedenb.compress(rows, beta=None)))
        return out
    return parts


def _meta_padding(data):
    """An extra META key that leaves META a length with padding, and a non-zero padding byte."""
    for j in range(8):
        if split(forge(data, edit=_set(zz="x" * j)))[0]["meta_len"] % 8:
            return dict(edit=_set(zz="x" * j), meta_fill=0x20)
    raise AssertionError("unreachable")


def _nested(depth):
    inner = "[" * depth + "]" * depth
    return ('{"classes":%s,"image_shape":[8,8,1],"index_dtype":"|u1","kind":"images","parts":[],'
            '"transform":"identity"}' % inner).encode()


# name, store, what to forge (forge() keywords, or a callable of the data giving them), section
FORGERIES = [
    ("unknown transform", "grey_identity_raw", dict(edit=_set(transform="wavelet")), "META"),
    ("transform not a string", "grey_identity_raw", dict(edit=_set(transform=["identity"])), "META"),
    ("transform number", "grey_identity_raw", dict(edit=_set(transform=5)), "META"),
    ("huge class label", "grey_identity_raw", dict(edit=_set(classes=[1, 3, 2**70])), "META"),
    ("class label beyond int64", "grey_identity_raw", dict(edit=_set(classes=[1, 3, 2**63])), "META"),
    ("float class label", "grey_identity_raw", dict(edit=_set(classes=[1, 3.5, 5])), "META"),
    ("float class label integral", "grey_identity_raw", dict(edit=_set(classes=[1.0, 3, 5])), "META"),
    ("bool class label", "grey_identity_raw", dict(edit=_set(classes=[False, True, 5])), "META"),
    ("string class label", "grey_identity_raw", dict(edit=_set(classes=["1", 3, 5])), "META"),
    ("2-D classes", "grey_identity_raw", dict(edit=_set(classes=[[1, 2], [3, 4], [5, 6]])), "META"),
    ("ragged classes", "grey_identity_raw", dict(edit=_set(classes=[[1], 3, 5])), "META"),
    ("classes repeated", "grey_identity_raw", dict(edit=_set(classes=[1, 1, 5])), "META"),
    ("classes descending", "grey_identity_raw", dict(edit=_set(classes=[5, 3, 1])), "META"),
    ("classes an object", "grey_identity_raw", dict(edit=_set(classes={"a": 1})), "META"),
    ("too few classes", "grey_identity_raw", dict(edit=_set(classes=[1, 3])), "META"),
    ("infinite image shape", "grey_identity_raw", dict(edit=_set(image_shape=[float("inf"), 8, 1])), "META"),
    ("NaN image shape", "grey_identity_raw", dict(edit=_set(image_shape=[8, float("nan"), 1])), "META"),
    ("float image shape", "grey_identity_raw", dict(edit=_set(image_shape=[8.0, 8, 1])), "META"),
    ("bool image shape", "grey_identity_raw", dict(edit=_set(image_shape=[True, 64, 1])), "META"),
    ("zero in image shape", "grey_identity_raw", dict(edit=_set(image_shape=[0, 8, 1])), "META"),
    ("2-D image shape", "grey_identity_raw", dict(edit=_set(image_shape=[8, 8])), "META"),
    ("image shape a string", "grey_identity_raw", dict(edit=_set(image_shape="8x8")), "META"),
    ("image shape wraps int64", "grey_identity_raw", dict(edit=_set(image_shape=[2**61 + 1, 64, 1])), "META"),
    ("image shape beyond uint64", "grey_identity_raw", dict(edit=_set(image_shape=[2**64 + 1, 64, 1])), "META"),
    ("image shape too large", "grey_identity_raw", dict(edit=_set(image_shape=[8, 8, 3])), "META"),
    ("two channels", "grey_identity_raw", dict(edit=_set(image_shape=[4, 8, 2])), "META"),
    ("two channels dct", "grey_dct_raw", dict(edit=_set(image_shape=[4, 8, 2])), "META"),
    ("shape against the coded parts", "grey_identity_entropy", dict(edit=_set(image_shape=[4, 16, 1])), "META"),
    ("rgb shape against the coded parts", "rgb_dct_entropy", dict(edit=_set(image_shape=[8, 24, 1])), "META"),
    ("deeply nested META", "grey_identity_raw", dict(blob=_nested(100_000)), "META"),
    ("nested META", "grey_identity_raw", dict(blob=_nested(500)), "META"),
    ("META a list", "grey_identity_raw", dict(blob=b"[1, 2, 3]"), "META"),
    ("META a string", "grey_identity_raw", dict(blob=b'"images"'), "META"),
    ("META not UTF-8", "grey_identity_raw", dict(blob=b"\xff\xfe{}"), "META"),
    ("META a huge number", "grey_identity_raw", dict(blob=b"1" * 5000), "META"),
    ("META key missing", "grey_identity_raw", dict(edit=lambda m: m.pop("transform")), "META"),
    ("META of another kind", "grey_identity_raw", dict(edit=_set(kind="table")), "META"),
    ("index dtype a number", "grey_identity_raw", dict(edit=_set(index_dtype=1)), "META"),
    ("index dtype unknown", "grey_identity_raw", dict(edit=_set(index_dtype="nonsense")), "META"),
    ("index dtype a dict", "grey_identity_raw", dict(edit=_set(index_dtype={"names": ["a"], "formats": ["u1"]})),
     "META"),
    ("index dtype big-endian", "grey_identity_raw", dict(edit=_set(index_dtype=">u2")), "META"),
    ("index dtype int8", "grey_identity_raw", dict(edit=_set(index_dtype="|i1")), "META"),
    ("part offsets floats", "grey_identity_raw",
     dict(edit=lambda m: m.update(parts=[[float(a), b] for a, b in m["parts"]])), "META"),
    ("part offset infinite", "grey_identity_raw",
     dict(edit=lambda m: m.update(parts=[[float("inf"), b] for a, b in m["parts"]])), "META"),
    ("part offset negative", "grey_identity_raw",
     dict(edit=lambda m: m.update(parts=[[-a, b] for a, b in m["parts"]])), "META"),
    ("part span of three", "grey_identity_raw",
     dict(edit=lambda m: m.update(parts=[[a, b, 0] for a, b in m["parts"]])), "META"),
    ("part spans missing", "grey_identity_raw", dict(edit=lambda m: m.update(parts=m["parts"][:2])), "META"),
    ("part spans an object", "grey_identity_raw", dict(edit=_set(parts={"0": [64, 8]})), "META"),
    ("part misplaced", "grey_identity_raw",
     dict(edit=lambda m: m.update(parts=[[a + 8, b] for a, b in m["parts"]])), "PART"),
    ("dct on uint8 parts", "grey_identity_raw", dict(edit=_set(transform="dct")), "META"),
    ("dct_lossless on uint8 parts", "grey_identity_raw", dict(edit=_set(transform="dct_lossless")), "META"),
    ("identity on int16 parts", "grey_dct_raw", dict(edit=_set(transform="identity")), "META"),
    ("identity on int16 colour parts", "rgb_lossless_raw", dict(edit=_set(transform="identity")), "META"),
    ("dct on int32 parts", "grey_dct_raw", lambda data: dict(parts=_parts_as(np.int32)(data)), "META"),
    ("dct on uint16 parts", "grey_dct_raw", lambda data: dict(parts=_parts_as(np.uint16)(data)), "META"),
    ("dct on int64 parts", "grey_dct_raw", lambda data: dict(parts=_parts_as(np.int64)(data)), "META"),
    ("dct_lossless on int64 parts", "rgb_lossless_raw", lambda data: dict(parts=_parts_as(np.int64)(data)),
     "META"),
    ("identity on float parts", "grey_identity_raw", lambda data: dict(parts=_parts_as(np.float64)(data)), "META"),
    ("identity on int16 parts (replaced)", "grey_identity_raw",
     lambda data: dict(parts=_parts_as(np.int16)(data)), "META"),
    ("header more parts", "grey_identity_raw", dict(nparts=4), "META"),
    ("header no parts", "grey_identity_raw", dict(nparts=0), "header"),
    ("header reserved bytes", "grey_identity_raw", dict(reserved=b"\1" + bytes(11)), "header"),
    ("header fewer images", "grey_identity_raw", dict(n=59), "INDEX"),
    ("header huge image count", "grey_identity_raw", dict(n=2**63), "INDEX"),
    ("class index out of range", "grey_identity_raw",
     lambda data: dict(index=bytes([3]) + split(data)[2][1:]), "INDEX"),
    ("class index moved", "grey_identity_raw",
     lambda data: dict(index=bytes([(split(data)[2][0] + 1) % 3]) + split(data)[2][1:]), "PART"),
    ("part 0 repeated", "grey_identity_raw", lambda data: dict(parts=split(data)[3][:1] * 3), "PART"),
    ("META padding not zero", "grey_identity_raw", _meta_padding, "META"),
    ("INDEX padding not zero", "grey_identity_raw", dict(index_fill=1), "INDEX"),
    ("a part one byte longer", "grey_identity_raw",
     lambda data: dict(parts=split(data)[3][:2] + [split(data)[3][2] + b"\0"]), "PART"),
    ("a part with a bad version", "grey_identity_raw",
     lambda data: dict(parts=split(data)[3][:2] + [split(data)[3][2][:8] + b"\0" + split(data)[3][2][9:]]), "PART"),
    ("a part of other dtype", "grey_identity_raw",
     lambda data: dict(parts=split(data)[3][:2] + _parts_as(np.int16)(data)[2:]), "PART"),
]


@pytest.mark.parametrize("verify", [True, False], ids=["verify", "noverify"])
@pytest.mark.parametrize("name, store, how, section", FORGERIES, ids=[f[0] for f in FORGERIES])
def test_forged_container_is_refused_at_open(stores, tmp_path, name, store, how, section, verify):
    data = stores[store][0]
    bad = forge(data, **(how(data) if callable(how) else how))
    assert bad != data
    with pytest.raises(FormatError) as e:
        r = gedenb.open(_write(tmp_path, bad), verify=verify)
        try:  # it opened: say what reading it gives
            r.read_images(slice(None))
        except Exception as err:
            raise AssertionError(f"{name}: opened, then read_images raised {err!r}") from err
        raise AssertionError(f"{name}: opened and read without an error")
    assert str(e.value).startswith(section), f"{name}: {e.value}"


def test_transform_of_ones_own_opens_while_registered(tmp_path):
    from gedenb.transforms import TRANSFORMS, Transform, register_transform

    neg = Transform("negative_for_forgery_tests", lambda x: (255 - x).reshape(len(x), -1).astype(np.int16),
                    lambda c, s: (255 - c).astype(np.uint8).reshape(len(c), *s), True)
    x, y = _images()
    register_transform(neg)
    try:
        gedenb.save(compress_images(x, y, transform=neg), tmp_path / "neg.gede")
        with gedenb.open(tmp_path / "neg.gede") as r:  # its int16 coefficients are its own business
            assert r.transform == neg.name and np.array_equal(r.read_images([3, 0])[0][..., 0], x[[3, 0]])
    finally:
        del TRANSFORMS[neg.name]
    with pytest.raises(FormatError, match="META: unknown transform .*register_transform"):
        gedenb.open(tmp_path / "neg.gede")


META_VALUES = [None, True, -1, 0, 1, 2**64, 1.5, float("inf"), float("nan"), "x", "", [], [[]], [1], [8, 8, 1],
               [1, 3, 5], [[64, 8]], {}, {"a": [1]}]


@pytest.mark.parametrize("key", ["classes", "image_shape", "index_dtype", "kind", "parts", "transform"])
def test_any_meta_value_gives_format_error_or_the_images(stores, tmp_path, key):
    for store in ("grey_identity_raw", "rgb_dct_entropy"):
        data, back, labels = stores[store]
        original = json.dumps(split(data)[1][key])
        for value in META_VALUES:
            if json.dumps(value) == original:
                continue
            p = _write(tmp_path, forge(data, edit=_set(**{key: value})))
            try:
                with gedenb.open(p) as r:
                    imgs, labs = r.read_images(slice(None))
            except FormatError as e:
                assert str(e).startswith(SECTIONS), str(e)
                continue
            except Exception as e:
                raise AssertionError(f"{store}: META {key}={value!r} raised {e!r}") from e
            raise AssertionError(f"{store}: META {key}={value!r} opened")  # every value above is wrong


# --------------------------------------------------------------------------
# item 5: random damage
# --------------------------------------------------------------------------
def _spans(data: bytes) -> dict:
    """Piece name -> (first byte, end) of a valid container."""
    h, meta, _, _ = split(data)
    index_at = HEADER.size + h["meta_len"] + -h["meta_len"] % 8
    out = {"header": (0, HEADER.size), "META": (HEADER.size, index_at),
           "INDEX": (index_at, meta["parts"][0][0])}
    for k, (a, b) in enumerate(meta["parts"]):
        out[f"PART {k}"] = (a, a + b + -b % 8)
    return out


def _damage(data: bytes, rng, op: str, lo: int, hi: int) -> tuple[bytes, str]:
    b = bytearray(data)
    if op == "flip":
        bits = sorted({int(rng.integers(lo * 8, hi * 8)) for _ in range(int(rng.integers(1, 4)))})
        for p in bits:
            b[p // 8] ^= 0x80 >> (p % 8)
        return bytes(b), f"flip bits {bits}"
    p = int(rng.integers(lo, hi))
    k = int(rng.integers(1, 9))
    if op == "delete":
        return bytes(b[:p] + b[p + k:]), f"delete {k} bytes at {p}"
    if op == "insert":
        return bytes(b[:p]) + rng.integers(0, 256, k, dtype=np.uint8).tobytes() + bytes(b[p:]), \
            f"insert {k} bytes at {p}"
    return bytes(b[:p]), f"truncate at {p}"


@pytest.mark.parametrize("verify", [True, False], ids=["verify", "noverify"])
def test_random_damage_gives_format_error_or_the_images(stores, tmp_path, verify):
    """Bit flips, deletions, insertions, truncations of every piece: FormatError or the exact images.

    With ``verify=False`` the parts' stream checksums are skipped (as for a table), so damage inside
    a part may give other pixels; they must still come back as well-formed images, never as another
    exception.  Damage of the header, META and INDEX is always caught (their checks do not depend on
    ``verify``)."""
    rng = np.random.default_rng(2024 + verify)
    names = sorted(stores)
    ops = ("flip", "delete", "insert", "truncate")
    outcomes = {"format_error": 0, "ok": 0}
    for i in range(200):
        name = names[i % len(names)]
        data, back, labels = stores[name]
        spans = _spans(data)
        piece = sorted(spans)[int(rng.integers(len(spans)))] if i % 3 else ("header", "META", "INDEX")[i // 3 % 3]
        op = ops[i // len(names) % len(ops)]
        bad, desc = _damage(data, rng, op, *spans[piece])
        p = _write(tmp_path, bad)
        try:
            with gedenb.open(p, verify=verify) as r:
                imgs, labs = r.read_images(slice(None))
                if verify or not piece.startswith("PART"):
                    assert np.array_equal(imgs, back) and np.array_equal(labs, labels), f"{name}: {piece} {desc}"
                else:
                    assert imgs.shape == back.shape and imgs.dtype == np.uint8 and np.array_equal(labs, labels)
            outcomes["ok"] += 1
        except FormatError as e:
            assert str(e).startswith(SECTIONS), f"{name}: {piece} {desc}: {e}"
            outcomes["format_error"] += 1
        except Exception as e:
            raise AssertionError(f"{name}: {piece} {desc} ({verify=}) raised {e!r}") from e
    assert outcomes["format_error"] > 150, outcomes


# --------------------------------------------------------------------------
# item 9: pickling keeps the reader's verify
# --------------------------------------------------------------------------
@pytest.mark.parametrize("verify", [True, False])
def test_pickle_keeps_verify(stores, tmp_path, verify):
    data, back, _ = stores["grey_identity_raw"]
    with gedenb.open(_write(tmp_path, data), verify=verify) as r:
        assert r._verify is verify
        with pickle.loads(pickle.dumps(r)) as r2:
            assert r2._verify is verify
            assert np.array_equal(r2.read_images([4, 2])[0], back[[4, 2]])
