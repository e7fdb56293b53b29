"""The bytes gedenb writes, pinned: every store kind and coding, hashed.

Restructuring the code must not change a single byte of what it writes (a
file written before is read after, and two versions write the same file for
the same input).  Each case below compresses a fixed input and compares the
SHA-256 of the saved store with the value recorded when the case was added.
A change of format is a deliberate act: bump the version, then re-pin with

    GEDENB_DATA=../shared/data python tests/test_pinned_bytes.py

which prints the table of hashes to paste below.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import gedenb
from gedenb.datasets import california_housing, mnist, synthetic_mixed


def _california(**kw):
    X = california_housing().data
    return gedenb.compress(X, **kw)


def _mixed(**kw):
    return gedenb.compress(synthetic_mixed(3_000, seed=1), **kw)


def _special_floats():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(2_000, 5))
    X[::37, 0] = np.nan
    X[5, 1] = np.frombuffer(np.uint64(0x7FF8_0000_DEAD_BEEF).tobytes(), np.float64)[0]  # a NaN payload
    X[::53, 2] = -0.0
    X[7, 3], X[8, 3] = np.inf, -np.inf
    return X


def _ints():
    rng = np.random.default_rng(11)
    X = rng.integers(-(2**62), 2**62, size=(1_500, 3), dtype=np.int64)
    X[:, 1] = rng.integers(0, 40, size=1_500)
    X[0, 2], X[1, 2] = np.iinfo(np.int64).min, np.iinfo(np.int64).max
    return X


def _frame(**kw):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(3)
    n = 1_200
    df = pd.DataFrame({
        "x": rng.normal(size=n),
        "k": rng.integers(0, 9, size=n),
        "city": pd.Series(rng.choice(["Aarhus", "Odense", None, "Køge"], size=n), dtype="string"),
        "grade": pd.Categorical(rng.choice(["a", "b", "c"], size=n)),
        "y": rng.integers(0, 2, size=n),
    })
    df.loc[::17, "x"] = np.nan
    return gedenb.compress(df, **kw)


def _mnist_images(n=400):
    x, y = mnist()
    return x[:n], y[:n]


def _images(**kw):
    from gedenb.images import compress_images

    x, y = _mnist_images()
    return compress_images(x, y, **kw)


def _mnist_rows(**kw):
    x, y = _mnist_images(300)
    X = x[y == 1].reshape(int((y == 1).sum()), -1)
    return gedenb.compress(X, image_shape=(28, 28), **kw)


def _store_bytes(obj, tmp_path: Path) -> bytes:
    path = tmp_path / "store.gede"
    gedenb.save(obj, path)
    return path.read_bytes()


_GENERATION = re.compile(r"\bg[a-z0-9_]{1,16}-")


def _sharded_bytes(tmp_path: Path, **kw) -> bytes:
    """The store folder as one byte string: the files without their generation tags, the manifest's
    JSON without its generation-tagged names and its own checksum (which covers them)."""
    gdask = pytest.importorskip("gedenb.dask")
    X = np.random.default_rng(5).integers(0, 5_000, size=(9_000, 4))
    folder = tmp_path / "sharded"
    gdask.compress(X, folder, beta=6, chunk_rows=4_000, **kw)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.pop("crc32")
    out = [_GENERATION.sub("", json.dumps(manifest, sort_keys=True)).encode()]
    for f in sorted(folder.iterdir(), key=lambda p: _GENERATION.sub("", p.name)):
        if f.name != "manifest.json":
            out += [_GENERATION.sub("", f.name).encode(), f.read_bytes()]
    return b"\0".join(out)


CASES = {
    "california_raw_beta12": lambda: _california(beta=12),
    "california_entropy_beta12": lambda: _california(beta=12, coding="entropy"),
    "california_target_exact": lambda: _california(beta=12, target=8),
    "california_nocondensed": lambda: _california(beta=9, store_condensed=False, widths="native"),
    "mixed_raw_beta8": lambda: _mixed(beta=8),
    "mixed_entropy": lambda: _mixed(beta=8, coding="entropy"),
    "special_floats_raw": lambda: gedenb.compress(_special_floats(), beta=5),
    "special_floats_entropy": lambda: gedenb.compress(_special_floats(), beta=5, coding="entropy"),
    "ints_raw": lambda: gedenb.compress(_ints(), beta=4),
    "ints_entropy": lambda: gedenb.compress(_ints(), beta=4, coding="entropy"),
    "frame_target": lambda: _frame(beta=6, target="y"),
    "frame_entropy": lambda: _frame(beta=6, coding="entropy"),
    "mnist_rows_entropy": lambda: _mnist_rows(coding="entropy"),
    "images_identity_raw": lambda: _images(),
    "images_identity_entropy": lambda: _images(coding="entropy"),
    "images_dct_raw": lambda: _images(transform="dct"),
    "images_dct_lossless_entropy": lambda: _images(transform="dct_lossless", coding="entropy"),
}

PINNED = {
    "california_entropy_beta12": "deafa5dc985ed27299e2930788a3cee0fb9011437ade907523eafa58a9da3223",
    "california_nocondensed": "23ae7a0f29c86e5dcbb4608ee054d5cf4441ef69e07d0b35b5be08ae76f80f6c",
    "california_raw_beta12": "1b0fec9fbd0998812792cd7b11db56cec27e6d04e50ea6ceb90de2fe43154ca0",
    "california_target_exact": "c91b6a38c9129cacb51f7f0385c05604614ee23e75ae9778dd98c97b466cc81b",
    "frame_entropy": "53aa33e7fb517ace91b6c063cdf2dde19ee4f51994c3f3e1f5bbbe8581e57052",
    "frame_target": "a56c262c1db4e88858865e30821fda19b4b1c8dbc72a73d716771a86a62f310d",
    "images_dct_lossless_entropy": "2d5a060adc685096496c160ccc751f634b3b0f524580d1d86ce0a650505a88d2",
    "images_dct_raw": "92750f1018286196d180b036f680705e9c75301dcc2c4c2041dfcd95cbc3c422",
    "images_identity_entropy": "fe72f8bf7aba9929709be352347400c19cecc8d4ababd0cce191451c61fbf078",
    "images_identity_raw": "bf30e0a1ecf5f67b5a369668ffb9d8a30c7d7b2b4a9cb3e32e1f3de9f427f7f4",
    "ints_entropy": "6e8302d559be770755349add35fa490c9c54d4be8939802307e439c7a158e5aa",
    "ints_raw": "bae988514662f54ca74a99a6e4b8d216a5e68537e7e53cf49fd857cfe084103d",
    "mixed_entropy": "e2af7d55acc47ac546d451d48b55db2dee1dd65f960566a14e9f00e6b8fe13ea",
    "mixed_raw_beta8": "023fefd4d8f09a0e55c0cb2604d04ebd79571104398c2a2afcd9dedabf0d1363",
    "mnist_rows_entropy": "9817a162535ec2bc15ae49d34a1103b5a333b11aa55b1137558ea012b6b60a0d",
    "special_floats_entropy": "7a99a975135af9a99b9cd392daf42177defe7699b7be4c5442760309edc69343",
    "special_floats_raw": "68a48eb1e4e5fe83007bc5ad3c5ee5ed87757ce2e4487e34cf75920b468506ea",
}

PINNED_SHARDED = {
    "plain": "b8586babc7ccfd34de9f97597cf954b63c5bdadf084bee05764f81a31359b341",
    "native": "af60a0cde80cc19ebe15b58313526a97838f0d63cc2601599e6d5a0ae2cb225d",
}


def _digest(case, tmp_path):
    return hashlib.sha256(_store_bytes(CASES[case](), tmp_path)).hexdigest()


@pytest.mark.parametrize("case", sorted(CASES))
def test_written_bytes_are_pinned(case, tmp_path):
    assert _digest(case, tmp_path) == PINNED[case], f"{case}: the bytes written changed"


@pytest.mark.parametrize("case", ["plain", "native"])
def test_sharded_store_bytes_are_pinned(case, tmp_path):
    kw = {"plain": {}, "native": {"widths": "native"}}[case]
    digest = hashlib.sha256(_sharded_bytes(tmp_path, **kw)).hexdigest()
    assert digest == PINNED_SHARDED[case], f"sharded {case}: the bytes written changed"


if __name__ == "__main__":  # print the table to pin
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print("PINNED = {")
        for case in sorted(CASES):
            print(f'    "{case}": "{hashlib.sha256(_store_bytes(CASES[case](), Path(tmp))).hexdigest()}",')
        print("}\n\nPINNED_SHARDED = {")
        for case, kw in (("plain", {}), ("native", {"widths": "native"})):
            sub = Path(tmp) / case
            sub.mkdir()
            print(f'    "{case}": "{hashlib.sha256(_sharded_bytes(sub, **kw)).hexdigest()}",')
        print("}")
    sys.exit(0)
