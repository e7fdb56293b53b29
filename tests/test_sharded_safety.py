"""Sharded stores under overwrite, replacement and crash; manifest forgeries; re-saving unverified data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dask")

import dask  # noqa: E402
import dask.array as da  # noqa: E402

import gedenb  # noqa: E402
import gedenb.dask as gdask  # noqa: E402
import support  # noqa: E402
from gedenb import sharded  # noqa: E402
from gedenb.errors import FormatError  # noqa: E402

THIS = Path(__file__).resolve()


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def noisy(n=40_000, seed=0):
    return np.random.default_rng(seed).integers(0, 2**64 - 1, (n, 8), dtype=np.uint64)


def quiet(n=40_000):
    return (np.arange(n, dtype=np.uint64)[:, None] % np.uint64(3)) * np.ones(8, dtype=np.uint64)


def store(X, path, chunk=5_000, overwrite=False):
    gdask.compress(da.from_array(X, chunks=(chunk, -1)), path, beta=4, sample_rows=len(X), overwrite=overwrite)


def test_an_open_reader_never_reads_the_store_that_replaced_it(tmp_path):
    """The issue's reproducer (smaller): a reader of a noisy store, overwritten by a compressible one of the
    same shape, must give the old rows or FormatError for every row, never rows of neither version."""
    old, new = noisy(), quiet()
    path = tmp_path / "s"
    store(old, path)
    r = gedenb.open(path)
    assert r.read_rows([0, 1]).tobytes() == old[[0, 1]].tobytes()  # maps shard 0 only
    store(new, path, overwrite=True)
    assert r.read_rows([2, 4_999]).tobytes() == old[[2, 4_999]].tobytes()  # a mapped shard keeps the old rows
    for row in (5_000, 20_000, len(old) - 1):  # shards mapped after the overwrite
        with pytest.raises(FormatError, match="replaced or changed since it was opened"):
            r.read_rows([row])
    r.close()
    with gedenb.open(path) as fresh:
        assert fresh.read_rows(slice(None)).tobytes() == new.tobytes()
    leftovers = [f for f in os.listdir(path) if f != sharded.MANIFEST]
    assert sorted(leftovers) == sorted(sharded._manifest_files(json.loads((path / sharded.MANIFEST).read_text())))


def _shorter_shard_child(path):
    r = gedenb.open(path)
    shard = r.path / r._shard_files[3]
    tmp = shard.with_name("other.bin")
    tmp.write_bytes(b"\0" * 64)
    os.replace(tmp, shard)  # a shorter file renamed over a shard the reader has not mapped yet
    try:
        r.read_rows([r.shard_starts[3]])
    except FormatError as e:
        print("FormatError", e)


def test_a_shorter_file_renamed_over_a_shard_is_refused_not_read_past(tmp_path):
    path = tmp_path / "s"
    store(noisy(), path)
    out = subprocess.run([sys.executable, "-X", "faulthandler", str(THIS), "shorter", str(path)],
                         capture_output=True, text=True, timeout=600, env=support.child_env())
    assert out.returncode == 0, out.stderr[-3000:]
    assert "FormatError" in out.stdout and "not the file this reader opened" in out.stdout


@pytest.mark.parametrize("step", ["rename", "fsync"])
def test_a_crash_at_any_step_of_an_overwrite_leaves_a_whole_store(tmp_path, monkeypatch, step):
    """Fail each rename (or each folder fsync) of the commit in turn: the path always opens, as the old
    store or as the new one, never as neither."""
    old, new = noisy(8_000, seed=1), quiet(8_000)
    path = tmp_path / "s"
    store(old, path, chunk=2_000)
    real = {"rename": sharded._rename, "fsync": sharded._fsync_dir}[step]
    seen = []
    k = 0
    while True:
        calls = [0]

        def failing(*args, k=k):
            if calls[0] == k:
                raise OSError("simulated crash")
            calls[0] += 1
            return real(*args)

        monkeypatch.setattr(sharded, "_rename" if step == "rename" else "_fsync_dir", failing)
        try:
            store(new, path, chunk=2_000, overwrite=True)
            done = True
        except OSError:
            done = False
        monkeypatch.setattr(sharded, "_rename" if step == "rename" else "_fsync_dir", real)
        with gedenb.open(path) as r:
            got = r.read_rows(slice(None)).tobytes()
        assert got in (old.tobytes(), new.tobytes()), k
        seen.append(got == new.tobytes())
        if done:
            break
        store(old, path, chunk=2_000, overwrite=True)  # back to the old store for the next step
        k += 1
    assert seen[-1] and k >= (4 if step == "rename" else 2)
    with gedenb.open(path) as r:  # the last overwrite removed every file of the old versions
        names = sharded._manifest_files(json.loads((path / sharded.MANIFEST).read_text()))
        assert sorted(os.listdir(path)) == sorted(names | {sharded.MANIFEST})


def test_a_new_store_is_one_rename_and_an_interrupted_one_leaves_nothing(tmp_path, monkeypatch):
    def crash(*args):
        raise OSError("simulated crash")

    monkeypatch.setattr(sharded, "_rename", crash)
    with pytest.raises(OSError):
        store(quiet(4_000), tmp_path / "s", chunk=1_000)
    assert not (tmp_path / "s").exists() and list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------
# manifest forgeries
# --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "s"
    with dask.config.set(scheduler="synchronous"):
        store(quiet(4_000), path, chunk=1_000)
    return path, (path / sharded.MANIFEST).read_text()


@pytest.mark.parametrize("edit, words", [
    (lambda t: t.replace('"entropy": [', '"entropy": [NaN, ', 1), "not valid JSON"),
    (lambda t: t.replace('"entropy": [', '"entropy": [Infinity, ', 1), "not valid JSON"),
    (lambda t: t.replace('"entropy": [', '"entropy": [1e999, ', 1), "not valid JSON"),
    (lambda t: t.replace('"tau": ', '"deep": ' + "[" * 100_000 + "]" * 100_000 + ', "tau": ', 1), "nested too deeply"),
])
def test_forged_manifests_are_format_errors(manifest, tmp_path, edit, words):
    src, text = manifest
    path = tmp_path / "s"
    path.mkdir()
    for f in src.iterdir():
        (path / f.name).write_bytes(f.read_bytes())
    (path / sharded.MANIFEST).write_text(edit(text))
    with pytest.raises(FormatError, match=words):
        gedenb.open(path)


def test_a_huge_manifest_is_refused_before_it_is_read(manifest, tmp_path, monkeypatch):
    src, text = manifest
    path = tmp_path / "s"
    path.mkdir()
    with open(path / sharded.MANIFEST, "wb") as f:
        f.truncate(sharded.MAX_MANIFEST_BYTES + 1)  # sparse: nothing is written
    read = []
    monkeypatch.setattr(sharded, "_parse_manifest", lambda raw: read.append(raw) or {})
    with pytest.raises(FormatError, match="more than a store's manifest can need"):
        gedenb.open(path)
    assert read == []


def test_folders_without_a_manifest(manifest, tmp_path):
    src, _ = manifest
    (tmp_path / "empty").mkdir()
    with pytest.raises(IsADirectoryError, match="neither a .gede file nor a sharded store"):
        gedenb.open(tmp_path / "empty")
    lost = tmp_path / "lost"
    lost.mkdir()
    for f in src.iterdir():
        if f.name != sharded.MANIFEST:
            (lost / f.name).write_bytes(f.read_bytes())
    with pytest.raises(FormatError, match="no manifest.json"):
        gedenb.open(lost)


# --------------------------------------------------------------------------
# verify=False, then save
# --------------------------------------------------------------------------
def test_saving_what_was_opened_without_verification_checks_it_first(tmp_path):
    X = np.random.default_rng(3).normal(size=(3000, 4)).round(3)
    path = tmp_path / "t.gede"
    gedenb.save(gedenb.compress(X, beta=4), path)
    with gedenb.open(path, verify=False) as r:  # intact: re-saved as it was
        gedenb.save(r.compressed, tmp_path / "copy.gede")
    assert (tmp_path / "copy.gede").read_bytes() == path.read_bytes()
    data = bytearray(path.read_bytes())
    recs = data.find(b"RECS")
    data[recs + 16 + 100] ^= 0x10  # one flipped deviation bit: still decodes, to a wrong value
    path.write_bytes(bytes(data))
    with gedenb.open(path, verify=False) as r:
        with pytest.raises(FormatError, match="RECS: checksum mismatch.*verify=False"):
            gedenb.save(r.compressed, tmp_path / "bad.gede")
    assert not (tmp_path / "bad.gede").exists()
    with pytest.raises(FormatError, match="RECS: checksum mismatch"):
        gedenb.open(path)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"shorter": _shorter_shard_child}[cmd](*args)
