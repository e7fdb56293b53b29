"""Reliability of the ``.gede`` file: corruption, forged headers, crashes, concurrency.

The file structure is parsed here independently of ``gedenb.store``, from
``docs/FORMAT.md``, so that the fuzz can aim at every section and forge
files whose checksums are right but whose fields lie.

Runs in child processes (``python tests/test_reliability.py <command>``):
the verify=False fuzz and the forged-file fuzz (a segfault there shows up as
a non-zero exit instead of killing pytest), the writer killed with SIGKILL,
and the DataLoader-style fork test.
"""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import gedenb
from gedenb import FormatError
from gedenb import store as _store
import support

THIS = Path(__file__).resolve()

# --------------------------------------------------------------------------
# the file structure, from docs/FORMAT.md
# --------------------------------------------------------------------------
HEADER = struct.Struct("<8sHHIQQIIQII8sIIQQII")
FIELDS = ("magic", "major", "minor", "flags", "n", "m", "d", "l_t", "n_b", "beta", "tau", "dtype",
          "n_sections", "reserved0", "total_bytes", "reserved1", "reserved2", "crc32")
FIELD_BITS = dict(zip(FIELDS, (64, 16, 16, 32, 64, 64, 32, 32, 64, 32, 32, 64, 32, 32, 64, 64, 32, 32)))
SECTION = struct.Struct("<4sIQ")
CODEC = np.dtype([("kind", "<u1"), ("width", "<u1"), ("scale", "<i2"), ("reserved", "<u4"), ("offset", "<u8")])
TAGS = (b"CODC", b"BMSK", b"BETA", b"BASE", b"RECS", b"WGHT")
TARGETS = ("header",) + tuple(t.decode() for t in TAGS)


def ceil_log2(x):
    return int(x - 1).bit_length() if x > 1 else 0


def parse(data: bytes):
    """``(header dict, [[tag, crc, payload], ...], spans)``; spans: name -> (first, end) bytes."""
    h = dict(zip(FIELDS, HEADER.unpack_from(data, 0)))
    secs, spans, pos = [], {"header": (0, HEADER.size)}, HEADER.size
    while pos + SECTION.size <= len(data):
        tag, crc, nb = SECTION.unpack_from(data, pos)
        start = pos + SECTION.size
        end = start + nb + (-nb % 8)
        secs.append([tag, crc, data[start:start + nb]])
        spans[tag.decode(errors="replace")] = (pos, min(end, len(data)))
        pos = end
    return h, secs, spans


def build(h: dict, secs, fix_crc: bool = True) -> bytes:
    """Serialise as the format says; with ``fix_crc`` every checksum and the total are made right."""
    body = bytearray()
    for tag, crc, payload in secs:
        body += SECTION.pack(tag, zlib.crc32(payload) if fix_crc else crc, len(payload))
        body += payload + b"\0" * (-len(payload) % 8)
    h = dict(h)
    if fix_crc:
        h["total_bytes"] = HEADER.size + len(body)
    raw = HEADER.pack(*(h[f] for f in FIELDS))
    if fix_crc:
        raw = raw[:-4] + struct.pack("<I", zlib.crc32(raw[:-4]))
    return raw + bytes(body)


def expected_sizes(h: dict, secs) -> dict:
    """Payload sizes the header and BMSK imply (docs/FORMAT.md, 'Sizes')."""
    l_t, n, m, n_b = h["l_t"], h["n"], h["m"], h["n_b"]
    bm = np.unpackbits(np.frombuffer(secs[1][2], dtype=np.uint8))[:l_t]
    l_b = int(bm.sum())
    rec = ceil_log2(n_b) + l_t - l_b
    return {b"CODC": 16 * h["d"], b"BMSK": (l_t + 7) // 8, b"BETA": 4 * h["beta"],
            b"BASE": 8 * ((n_b * l_b + 63) // 64), b"RECS": 8 * (((n + m) * rec + 63) // 64),
            b"WGHT": 8 * ((m * ceil_log2(n) + 63) // 64)}


def interesting(old: int, bits: int, rng) -> int:
    top = (1 << bits) - 1
    vals = [0, 1, 2, 3, 7, 8, 63, 64, 65, old - 1, old + 1, 2 * old, old // 2, 1 << 31, (1 << 32) - 1, 1 << 40,
            (1 << 40) + 1, 1 << 63, top, int(rng.integers(0, 1 << min(bits, 62)))]
    return int(vals[rng.integers(len(vals))]) & top


def forge(data: bytes, rng) -> tuple[bytes, str]:
    """A CRC-consistent lie: checksums and total are right, a field or payload is not."""
    h, secs, _ = parse(data)
    secs = [list(s) for s in secs[:len(TAGS)]]
    what = int(rng.integers(7))
    if what in (0, 1):  # one header field; half of the time resize the streams to match it
        f = FIELDS[int(rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 15, 16]))]
        h[f] = interesting(h[f], FIELD_BITS[f], rng)
        desc = f"header.{f}={h[f]}"
        if what == 1:
            try:
                sizes = expected_sizes(h, secs)
            except (ValueError, OverflowError, MemoryError):
                sizes = {}
            for s in secs:
                want = sizes.get(s[0], len(s[2]))
                if want <= 1 << 20:
                    extra = rng.integers(0, 256, max(0, want - len(s[2])), dtype=np.uint8).tobytes()
                    s[2] = (s[2] + extra)[:want]
            desc += " (streams resized)"
    elif what == 2 and h["d"]:  # one codec field
        codec = np.frombuffer(secs[0][2], dtype=CODEC).copy()
        j = int(rng.integers(len(codec)))
        f = ("kind", "width", "scale", "reserved", "offset")[int(rng.integers(5))]
        bits = {"kind": 8, "width": 8, "scale": 16, "reserved": 32, "offset": 64}[f]
        v = interesting(int(codec[f][j]) & ((1 << bits) - 1), bits, rng)
        codec[f][j] = v - (1 << 16) if f == "scale" and v >= 1 << 15 else v
        secs[0][2] = codec.tobytes()
        desc = f"CODC[{j}].{f}={v}"
    elif what == 3:  # flip bits of a small section, checksum fixed
        k = int(rng.integers(1, 3))
        s = secs[k]
        if s[2]:
            b = bytearray(s[2])
            p = int(rng.integers(len(b) * 8))
            b[p // 8] ^= 0x80 >> (p % 8)
            s[2] = bytes(b)
        desc = f"{s[0].decode()} bit flipped, crc fixed"
    elif what == 4:  # overwrite one word of a stream, checksum fixed
        k = int(rng.integers(3, 6))
        s = secs[k]
        if len(s[2]) >= 8:
            b = bytearray(s[2])
            p = 8 * int(rng.integers(len(b) // 8))
            b[p:p + 8] = struct.pack("<Q", interesting(int.from_bytes(b[p:p + 8], "little"), 64, rng))
            s[2] = bytes(b)
        desc = f"{s[0].decode()} word replaced, crc fixed"
    elif what == 5:  # grow or shrink one payload, checksum and total fixed
        k = int(rng.integers(len(secs)))
        s = secs[k]
        step = int(rng.choice([1, 4, 8, 16]))
        s[2] = s[2] + bytes(step) if rng.random() < 0.5 or len(s[2]) < step else s[2][:-step]
        desc = f"{s[0].decode()} resized by {step}"
    else:  # a tag renamed or two sections swapped
        if rng.random() < 0.5:
            k = int(rng.integers(len(secs)))
            secs[k][0] = TAGS[(k + 1) % len(TAGS)]
            desc = f"section {k} renamed"
        else:
            k = int(rng.integers(len(secs) - 1))
            secs[k], secs[k + 1] = secs[k + 1], secs[k]
            desc = f"sections {k}, {k + 1} swapped"
    return build(h, secs), desc


def mutate(data: bytes, rng, op: str, target: str) -> tuple[bytes, str]:
    """Damage ``target`` (header or a section, frame included) of a valid file."""
    if op == "forge":
        return forge(data, rng)
    lo, hi = parse(data)[2][target]
    b = bytearray(data)
    if op == "flip":
        bits = sorted({int(rng.integers(lo * 8, hi * 8)) for _ in range(int(rng.integers(1, 4)))})
        for p in bits:
            b[p // 8] ^= 0x80 >> (p % 8)
        return bytes(b), f"flip {target} bits {bits}"
    p = int(rng.integers(lo, hi))
    k = int(rng.integers(1, 9))
    if op == "delete":
        return bytes(b[:p] + b[p + k:]), f"delete {k} bytes of {target} at {p}"
    if op == "insert":
        return bytes(b[:p]) + rng.integers(0, 256, k, dtype=np.uint8).tobytes() + bytes(b[p:]), \
            f"insert {k} bytes into {target} at {p}"
    if op == "truncate":
        return bytes(b[:p]), f"truncate in {target} at {p}"
    raise ValueError(op)


# --------------------------------------------------------------------------
# tables used by the fuzz: every section present, every codec kind
# --------------------------------------------------------------------------
def fuzz_tables():
    """Small tables whose files have every section, every codec kind and n_b > 1 (not a power of two)."""
    rng = np.random.default_rng(20240611)
    n = 200
    skew = lambda vals, p: rng.choice(vals, n, p=p)  # noqa: E731 - low-entropy bits: real bases
    special = np.array([np.nan, -np.inf, np.inf, -0.0, 5e-324, -1.5], dtype=np.float64)
    f64 = np.stack([
        rng.integers(-500, 500, n) / 100.0,  # decimal
        rng.integers(-64, 64, n) / 8.0,  # binary
        rng.choice(special, n),  # IEEE
        np.full(n, 2.5),  # constant
        skew([0.0, 16.0, 48.0, 112.0], [.85, .07, .05, .03]),
        skew([3.0, 5.0, 9.0, 1e6], [.8, .1, .05, .05]),
    ], axis=1)
    i16 = np.stack([rng.integers(-3, 3, n), rng.integers(-32768, 32767, n, endpoint=True), np.full(n, 7),
                    skew([10, 20, 30], [.9, .05, .05]), skew([0, 256, 512, 4096], [.85, .05, .05, .05]),
                    skew([1, 3], [.95, .05])], axis=1).astype(np.int16)
    f16 = rng.integers(0, 2**16, (n, 3), dtype=np.uint64).astype(np.uint16).view(np.float16)
    f16[:, 1] = skew(np.array([1.0, 2.0, -0.0, 65504.0], np.float16), [.85, .05, .05, .05])
    const = np.full((n, 3), -4.25)
    return {
        "f64_stored.gede": (f64, dict(beta=4, tau=10)),
        "i16_lean.gede": (i16, dict(beta=3, store_condensed=False)),
        "f16_plain.gede": (f16, dict(tau=5)),
        "const.gede": (const, dict()),
    }


def write_fuzz_files(folder: Path) -> dict:
    """Valid files for the fuzz, with their tables saved beside them (``.npy``)."""
    out = {}
    for name, (X, kw) in fuzz_tables().items():
        c = gedenb.compress(X, exact_condensed=False, **kw)  # the 1.0 layout (section LERN: test_learning.py)
        gedenb.save(c, folder / name)
        np.save(folder / (name + ".npy"), X)
        out[name] = (X, c)
    return out


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Same dtype, shape and bytes (NaN payloads and -0.0 included)."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def probe(r, rng) -> int:
    """Read a bounded set of rows the way a user would; check shapes; return rows read."""
    n, d = r.shape
    assert len(r) == n >= 1 and d >= 1 and r.dtype in gedenb.encode.SUPPORTED_DTYPES
    idx = np.concatenate([[0, n - 1, -1, -n], rng.integers(-n, n, 64)]).astype(np.int64)
    rows = r.read_rows(idx)
    assert rows.shape == (len(idx), d) and rows.dtype == r.dtype
    k = min(n, 300)
    rows = r.read_rows(slice(0, k))
    assert rows.shape == (k, d) and rows.dtype == r.dtype
    row = r[n - 1]
    assert row.shape == (d,) and row.dtype == r.dtype
    if r.compressed.beta and (r.m or n * d <= 200_000):
        s, w = r.condensed()
        assert s.dtype == np.float64 and s.ndim == 2 and s.shape[1] == d
        assert w.shape == (s.shape[0],) and int(w.sum()) == n
    return len(idx) + k + 1


def run_fuzz(files: dict, ops, n_cases: int, seed: int, verify: bool, exact: bool, workdir: Path) -> dict:
    """Mutate the files round-robin over ``ops`` x targets; open and read every result.

    ``exact``: a file that opens must give exactly the original table (used
    with verify=True and random damage).  Otherwise it must only give
    arrays of the shape and dtype it announces.  Returns outcome counts.
    """
    rng = np.random.default_rng(seed)
    names = sorted(files)
    stats = {"cases": 0, "format_error": 0, "ok": 0, "rows_read": 0, "by": {}}
    tmp = workdir / f"case-{os.getpid()}-{seed}.gede"
    for i in range(n_cases):
        name = names[i % len(names)]
        X, data = files[name]
        op = ops[(i // len(names)) % len(ops)]
        target = TARGETS[(i // (len(names) * len(ops))) % len(TARGETS)]
        bad, desc = mutate(data, rng, op, target)
        tmp.write_bytes(bad)
        outcome = "ok"
        try:
            with gedenb.open(tmp, verify=verify) as r:
                if exact:
                    assert same(r.read_rows(slice(None)), X), f"{name}: {desc} read back different data"
                    stats["rows_read"] += len(X)
                else:
                    stats["rows_read"] += probe(r, rng)
        except FormatError as e:
            outcome = "format_error"
            assert str(e).split(":")[0] in TARGETS + ("extension section",) or str(e).startswith("b'"), str(e)
        except BaseException as e:  # anything else is a bug: say which case
            raise AssertionError(f"{name}: {desc} ({'verify' if verify else 'no verify'}) raised {e!r}") from e
        stats["cases"] += 1
        stats[outcome] += 1
        key = f"{op}/{target}/{outcome}"
        stats["by"][key] = stats["by"].get(key, 0) + 1
    tmp.unlink(missing_ok=True)
    return stats


_CHILD_CACHE = []


def child_env() -> dict:
    """Environment of the child processes: the same gedenb as this process, and one on-disk kernel cache
    shared by the children of this test module, so that only the first pays for compiling."""
    return support.child_env(cache=_CHILD_CACHE[0] if _CHILD_CACHE else None)


def run_child(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "faulthandler", str(THIS), *map(str, args)],
                          capture_output=True, text=True, timeout=timeout, env=child_env())


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _child_numba_cache(tmp_path_factory):
    _CHILD_CACHE[:] = [tmp_path_factory.mktemp("numba-cache")]
    yield
    _CHILD_CACHE.clear()


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    tables = write_fuzz_files(folder)
    return folder, {name: (X, (folder / name).read_bytes()) for name, (X, _) in tables.items()}


@pytest.fixture(scope="module")
def cal():
    import gedenb.datasets

    X = gedenb.datasets.california_housing().data
    return X, gedenb.compress(X, beta=8)


@pytest.fixture(scope="module")
def cal_file(cal, tmp_path_factory):
    path = tmp_path_factory.mktemp("cal") / "cal.gede"
    gedenb.save(cal[1], path)
    return path


# --------------------------------------------------------------------------
# the fuzz
# --------------------------------------------------------------------------
def test_fuzz_files_cover_every_section(fuzz_dir):
    folder, files = fuzz_dir
    nonempty = set()
    for name, (X, data) in files.items():
        h, secs, spans = parse(data)
        assert [s[0] for s in secs] == list(TAGS) and h["total_bytes"] == len(data)
        nonempty |= {s[0] for s in secs if s[2]}
        with gedenb.open(folder / name) as r:
            assert same(r.read_rows(slice(None)), X)
    assert nonempty == set(TAGS)  # every section has a payload in some file
    assert build(*parse(files["f64_stored.gede"][1])[:2]) == files["f64_stored.gede"][1]


def _check_random_damage(fuzz_dir, n_cases, seed):
    folder, files = fuzz_dir
    stats = run_fuzz(files, ("flip", "delete", "insert", "truncate"), n_cases, seed, verify=True, exact=True,
                     workdir=folder)
    assert stats["cases"] == n_cases
    hit = {k.split("/")[1] for k in stats["by"]}
    assert hit == set(TARGETS)
    # every byte is covered by a checksum, a size or a zero-padding rule: no flip goes unnoticed
    for target in TARGETS:
        assert stats["by"].get(f"flip/{target}/ok", 0) == 0
    assert stats["format_error"] > 0.9 * n_cases
    return stats


def test_random_damage_is_caught_or_harmless(fuzz_dir):
    """Bit flips, deletions, insertions, truncations with verify=True: FormatError or the exact table."""
    _check_random_damage(fuzz_dir, 336, seed=1)


@pytest.mark.slow
def test_random_damage_is_caught_or_harmless_slow(fuzz_dir):
    _check_random_damage(fuzz_dir, 8400, seed=2)


def _check_child_fuzz(fuzz_dir, n_random, n_forged, seed):
    folder, _ = fuzz_dir
    out = run_child("fuzz", folder, n_random, n_forged, seed)
    assert out.returncode == 0, f"fuzz child died (exit code {out.returncode}):\n{out.stderr[-6000:]}"
    res = json.loads(out.stdout.strip().splitlines()[-1])
    random_nv, forged_nv, forged_v = res["random_noverify"], res["forged_noverify"], res["forged_verify"]
    assert random_nv["cases"] == n_random and forged_nv["cases"] == forged_v["cases"] == n_forged
    assert {k.split("/")[1] for k in random_nv["by"]} == set(TARGETS)
    # the fuzz must reach the decoders, not only the first checks
    assert random_nv["ok"] > 0 and forged_nv["ok"] > 0 and forged_nv["format_error"] > 0
    return res


def test_damaged_and_forged_files_never_crash(fuzz_dir):
    """verify=False and CRC-consistent forgeries, in a child process: FormatError or well-formed arrays."""
    _check_child_fuzz(fuzz_dir, 400, 300, seed=3)


@pytest.mark.slow
def test_damaged_and_forged_files_never_crash_slow(fuzz_dir):
    _check_child_fuzz(fuzz_dir, 6000, 4000, seed=4)


def _child_fuzz(folder, n_random, n_forged, seed):
    folder = Path(folder)
    files = {p.name: (np.load(str(p) + ".npy"), p.read_bytes()) for p in sorted(folder.glob("*.gede"))}
    for name, (X, _) in files.items():  # the intact files read exactly (float64: also the parallel kernel)
        idx = np.resize(np.arange(len(X))[::-1], 70_000 // X.shape[1] + 1 if name == "f64_stored.gede" else 999)
        with gedenb.open(folder / name, verify=False) as r:
            assert same(r.read_rows(idx), X[idx]) and same(r.read_rows(idx[:5]), X[idx[:5]])
    res = {
        "random_noverify": run_fuzz(files, ("flip", "delete", "insert", "truncate"), int(n_random), int(seed),
                                    verify=False, exact=False, workdir=folder),
        "forged_noverify": run_fuzz(files, ("forge",), int(n_forged), int(seed) + 1, verify=False, exact=False,
                                    workdir=folder),
        "forged_verify": run_fuzz(files, ("forge",), int(n_forged), int(seed) + 2, verify=True, exact=False,
                                  workdir=folder),
    }
    print(json.dumps(res))


# --------------------------------------------------------------------------
# forged fields, one rule at a time
# --------------------------------------------------------------------------
def _edit_header(**fields):
    def edit(h, secs):
        h.update(fields)
    return edit


def _edit_codec(j, **fields):
    def edit(h, secs):
        codec = np.frombuffer(secs[0][2], dtype=CODEC).copy()
        for k, v in fields.items():
            codec[k][j] = v
        secs[0][2] = codec.tobytes()
    return edit


def _edit_payload(tag, fn):
    def edit(h, secs):
        k = TAGS.index(tag)
        secs[k][2] = fn(secs[k][2])
    return edit


def _set_word(index, value):
    def fn(p):
        b = bytearray(p)
        b[8 * index:8 * index + 8] = struct.pack("<Q", value)
        return bytes(b)
    return fn


def _max_base_id_record(h, secs):
    """Point record 0 at base ID 2**id_bits - 1 (>= n_b when n_b is not a power of two)."""
    id_bits = ceil_log2(h["n_b"])
    p = bytearray(secs[4][2])
    w = int.from_bytes(p[:8], "little")  # record 0's ID: the top id_bits bits of word 0 (MSB first)
    w |= ((1 << id_bits) - 1) << (64 - id_bits)
    p[:8] = w.to_bytes(8, "little")
    secs[4][2] = bytes(p)


FORGED = [
    # (file, edit, section named in the message, what it checks)
    ("f64_stored.gede", _edit_header(magic=b"GEDE\0\0\0\0"), "header", "magic"),
    ("f64_stored.gede", _edit_header(n=0), "header", "n >= 1"),
    ("f64_stored.gede", _edit_header(n=1 << 41), "header", "n beyond MAX_ROWS"),
    ("f64_stored.gede", _edit_header(n=1 << 39), "RECS", "n huge but within MAX_ROWS: stream size"),
    ("f64_stored.gede", _edit_header(m=(1 << 64) - 1), "header", "m huge"),
    ("f64_stored.gede", _edit_header(m=100), "header", "m > n"),
    ("f64_stored.gede", _edit_header(d=0), "header", "d >= 1"),
    ("f64_stored.gede", _edit_header(d=(1 << 32) - 1), "CODC", "d huge: codec section size"),
    ("f64_stored.gede", _edit_header(l_t=1 << 21), "header", "l_t beyond MAX_ROW_BITS"),
    ("f64_stored.gede", _edit_header(n_b=0), "header", "n_b >= 1"),
    ("f64_stored.gede", _edit_header(n_b=1 << 50), "header", "n_b <= n + m"),
    ("f64_stored.gede", _edit_header(tau=0), "header", "tau >= 1"),
    ("f64_stored.gede", _edit_header(beta=0), "header", "beta vs clustering flag"),
    ("f64_stored.gede", _edit_header(beta=10_000), "header", "beta <= l_t"),
    ("f64_stored.gede", _edit_header(flags=8 | 3), "header", "unknown flag"),
    ("f64_stored.gede", _edit_header(flags=2), "header", "condensed rows not flagged"),
    ("f16_plain.gede", _edit_header(flags=0), "header", "no clustering requires the condensed flag"),
    ("f64_stored.gede", _edit_header(dtype=b"<c16\0\0\0\0"), "header", "dtype"),
    ("f64_stored.gede", _edit_header(dtype=b">f8\0\0\0\0\0"), "header", "big-endian dtype"),
    ("f64_stored.gede", _edit_header(n_sections=5), "header", "section count"),
    ("f64_stored.gede", _edit_header(n_sections=7), "header", "extra section in a 1.0 file"),
    ("f64_stored.gede", _edit_header(reserved1=1), "header", "reserved field in a 1.0 file"),
    ("f64_stored.gede", _edit_codec(0, width=65), "CODC", "width > 64"),
    ("f64_stored.gede", _edit_codec(0, kind=4), "CODC", "unknown kind"),
    ("f64_stored.gede", _edit_codec(0, kind=0), "CODC", "integer codec in a float table"),
    ("f64_stored.gede", _edit_codec(0, scale=10), "CODC", "decimal scale > 9"),
    ("f64_stored.gede", _edit_codec(0, scale=-1), "CODC", "negative scale"),
    ("f64_stored.gede", _edit_codec(1, scale=1075), "CODC", "binary scale > 1074"),
    ("f64_stored.gede", _edit_codec(2, scale=3), "CODC", "scale on an IEEE codec"),
    ("f64_stored.gede", _edit_codec(0, reserved=1), "CODC", "reserved codec bytes"),
    ("i16_lean.gede", _edit_codec(0, kind=3), "CODC", "IEEE codec in an integer table"),
    ("i16_lean.gede", _edit_codec(1, width=17), "CODC", "wider than the dtype (sum also off)"),
    ("i16_lean.gede", _edit_codec(0, offset=1 << 16), "CODC", "offset beyond the dtype"),
    ("f16_plain.gede", _edit_codec(0, kind=1), "CODC", "fixed point in a float16 table"),
    ("f16_plain.gede", _edit_codec(0, kind=2), "CODC", "binary fixed point in a float16 table"),
    ("f64_stored.gede", _edit_payload(b"BETA", lambda p: struct.pack("<I", 10_000) + p[4:]), "BETA",
     "beta position out of range"),
    ("f64_stored.gede", _edit_payload(b"BETA", lambda p: p[4:8] + p[4:]), "BETA", "repeated beta position"),
    ("f64_stored.gede", _edit_payload(b"WGHT", _set_word(0, 0)), "WGHT", "weights do not sum to n"),
    ("f64_stored.gede", _edit_payload(b"WGHT", lambda p: p + bytes(8)), "WGHT", "stream size"),
    ("f64_stored.gede", _edit_payload(b"RECS", lambda p: p[:-8]), "RECS", "stream size"),
    ("f64_stored.gede", _edit_payload(b"BASE", lambda p: p + bytes(8)), "BASE", "stream size"),
    ("f64_stored.gede", _edit_payload(b"BMSK", lambda p: p[:-1]), "BMSK", "mask size"),
    ("f64_stored.gede", _edit_payload(b"CODC", lambda p: p + bytes(16)), "CODC", "codec count"),
]


def _bmsk_padding(h, secs):
    assert h["l_t"] % 8, "needs a mask with padding bits"
    p = bytearray(secs[1][2])
    p[-1] |= 1  # the last bit of the last mask byte lies beyond l_t
    secs[1][2] = bytes(p)


def _bmsk_clear(h, secs):
    secs[1][2] = bytes(len(secs[1][2]))  # no base bits: n_b must be 1


FORGED += [
    ("f64_stored.gede", _bmsk_padding, "BMSK", "mask padding bits"),
    ("f64_stored.gede", _bmsk_clear, "BMSK", "popcount too small for n_b"),
]


@pytest.mark.parametrize("name,edit,section,why", FORGED, ids=[f[3] for f in FORGED])
@pytest.mark.parametrize("verify", [True, False])
def test_forged_fields_are_rejected(fuzz_dir, name, edit, section, why, verify, tmp_path):
    """Checksums right, one field wrong: FormatError naming the section, with or without verify."""
    folder, files = fuzz_dir
    X, data = files[name]
    h, secs, _ = parse(data)
    secs = [list(s) for s in secs]
    edit(h, secs)
    path = tmp_path / "forged.gede"
    path.write_bytes(build(h, secs))
    with pytest.raises(FormatError, match=f"^{section}:") as e:
        with gedenb.open(path, verify=verify) as r:
            probe(r, np.random.default_rng(0))
    assert str(path) in str(e.value)


@pytest.mark.parametrize("verify", [True, False])
def test_clustering_positions_need_rows_that_differ(tmp_path, verify):
    """beta > 0 in a table of identical rows (R = 0 bits per record) would let a tiny file claim 2**40 rows."""
    X = np.full((10, 2), 3.0)
    h, secs, _ = parse(_store.to_bytes(gedenb.compress(X, widths="native")))
    assert h["l_t"] == 128 and h["n_b"] == 1 and not secs[4][2]  # all bits in the base, empty records
    secs = [list(s) for s in secs]
    secs[2][2] = struct.pack("<I", 5)
    path = tmp_path / "beta.gede"
    path.write_bytes(build(dict(h, beta=1, flags=2, n=1 << 39), secs))
    with pytest.raises(FormatError, match="^BETA: clustering positions"):
        gedenb.open(path, verify=verify)
    path.write_bytes(build(dict(h, n=1 << 39), secs[:2] + [[b"BETA", 0, b""]] + secs[3:]))
    with gedenb.open(path, verify=verify) as r:  # legitimately huge: 2**39 equal rows in a few hundred bytes
        assert len(r) == 1 << 39 and same(r.read_rows([0, -1, 12345]), np.full((3, 2), 3.0))


@pytest.mark.parametrize("verify", [True, False])
def test_bool_columns_decode_only_to_0_or_1(tmp_path, verify):
    X = np.random.default_rng(8).integers(0, 2, (64, 3)).astype(bool)
    X[:, 1] = True  # a constant column: width 0, offset 1
    h, secs, _ = parse(_store.to_bytes(gedenb.compress(X)))
    codec = np.frombuffer(secs[0][2], dtype=CODEC)
    assert codec["width"].tolist() == [1, 0, 1] and codec["offset"].tolist() == [0, 1, 0]
    for j, width, offset, ok in ((0, 1, 1, False), (1, 0, 2, False), (1, 0, 0, True)):
        forged = codec.copy()
        forged["offset"][j] = offset
        forged["width"][j] = width
        path = tmp_path / "bool.gede"
        path.write_bytes(build(h, [[secs[0][0], 0, forged.tobytes()]] + [list(x) for x in secs[1:]]))
        if ok:  # a constant False column instead of True: valid, other data
            with gedenb.open(path, verify=verify) as r:
                assert same(r.read_rows(slice(None)), np.where([True, False, True], X, False))
        else:
            with pytest.raises(FormatError, match="^CODC:"):
                gedenb.open(path, verify=verify)


def test_stream_padding_bits_are_checked(fuzz_dir, tmp_path):
    folder, files = fuzz_dir
    X, data = files["f64_stored.gede"]
    h, secs, _ = parse(data)
    secs = [list(s) for s in secs]
    l_b = int(np.unpackbits(np.frombuffer(secs[1][2], dtype=np.uint8))[:h["l_t"]].sum())
    used = (h["n"] + h["m"]) * (ceil_log2(h["n_b"]) + h["l_t"] - l_b)
    assert used % 64 and len(secs[4][2]) == 8 * ((used + 63) // 64)
    p = bytearray(secs[4][2])
    p[-8] |= 1  # lowest bit of the last word
    secs[4][2] = bytes(p)
    path = tmp_path / "pad.gede"
    path.write_bytes(build(h, secs))
    for verify in (True, False):
        with pytest.raises(FormatError, match="^RECS: padding bits"):
            gedenb.open(path, verify=verify)


def test_bad_base_id_is_caught_at_open_or_at_read(fuzz_dir, tmp_path):
    """verify=True scans the base IDs at open; verify=False flags them when the row is read."""
    folder, files = fuzz_dir
    X, data = files["f64_stored.gede"]
    h, secs, _ = parse(data)
    assert h["n_b"] & (h["n_b"] - 1), "needs n_b that is not a power of two"
    secs = [list(s) for s in secs]
    _max_base_id_record(h, secs)
    path = tmp_path / "badid.gede"
    path.write_bytes(build(h, secs))
    with pytest.raises(FormatError, match="^RECS: a record names base ID"):
        gedenb.open(path)
    with gedenb.open(path, verify=False) as r:
        assert same(r.read_rows(slice(1, None)), X[1:])  # other rows are fine
        with pytest.raises(FormatError, match="^RECS:.*base ID"):
            r.read_rows([3, 0])
        with pytest.raises(FormatError, match="^RECS:"):
            r[0]
        with pytest.raises(FormatError, match="base ID"):
            gedenb.decompress(r.compressed)


def test_unverified_open_skips_stream_checksums(fuzz_dir, tmp_path):
    """The documented trade-off: verify=False misses flipped deviation bits, verify=True does not."""
    folder, files = fuzz_dir
    X, data = files["i16_lean.gede"]
    h, secs, spans = parse(data)
    lo, _ = spans["RECS"]
    assert ceil_log2(h["n_b"]) < 7
    b = bytearray(data)
    b[lo + SECTION.size + 7] ^= 0x01  # bit 56 of word 0 is stream bit 7: a deviation bit of row 0, after its ID
    path = tmp_path / "flip.gede"
    path.write_bytes(bytes(b))
    with pytest.raises(FormatError, match="^RECS: checksum mismatch"):
        gedenb.open(path)
    with gedenb.open(path, verify=False) as r:
        back = r.read_rows(slice(None))
    assert back.shape == X.shape and back.dtype == X.dtype and not same(back, X)


# --------------------------------------------------------------------------
# versions
# --------------------------------------------------------------------------
def test_unknown_major_version_names_both_versions(fuzz_dir, tmp_path):
    folder, files = fuzz_dir
    h, secs, _ = parse(files["f64_stored.gede"][1])
    for major, fix in ((4, True), (4, False), (0, True), (65535, True)):
        h2 = dict(h, major=major, minor=3)
        path = tmp_path / f"v{major}.gede"
        path.write_bytes(build(h2, secs, fix_crc=fix))
        with pytest.raises(FormatError) as e:
            gedenb.open(path)
        msg = str(e.value)
        assert msg.startswith("header:")
        assert f"version {major}.3 is not supported" in msg
        assert "reads major version(s) 1, 2" in msg and "writes 1.0" in msg and "2.0 for mixed-dtype" in msg


def test_later_minor_version_is_accepted(fuzz_dir, tmp_path):
    """Minor bumps are compatible: reserved fields and extra trailing sections are ignored."""
    folder, files = fuzz_dir
    for name, (X, data) in files.items():
        h, secs, _ = parse(data)
        assert (h["major"], h["minor"]) == gedenb.store.FORMAT_VERSION == (1, 0)
        path = tmp_path / name
        path.write_bytes(build(dict(h, minor=1), secs))
        with gedenb.open(path) as r:
            assert r.version == (1, 1) and same(r.read_rows(slice(None)), X)
        extra = secs + [[b"XTRA", 0, b"future data"], [b"MORE", 0, b""]]
        h2 = dict(h, minor=9, n_sections=8, reserved0=5, reserved1=1 << 60, reserved2=7)
        path.write_bytes(build(h2, extra))
        for verify in (True, False):
            with gedenb.open(path, verify=verify) as r:
                assert r.version == (1, 9) and same(r.read_rows(slice(None)), X)
        # ... but an extension section must still be framed and checksummed
        bad = bytearray(build(h2, extra))
        bad[-20] ^= 1
        path.write_bytes(bytes(bad))
        with pytest.raises(FormatError):
            gedenb.open(path)
        # and the same additions in a file that claims 1.0 are corruption
        path.write_bytes(build(dict(h2, minor=0), extra))
        with pytest.raises(FormatError, match="^header"):
            gedenb.open(path)


# --------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------
class _FailingFile:
    """A file object that writes ``budget`` bytes, then raises ``exc``."""

    def __init__(self, f, budget, exc):
        self._f, self._budget, self._exc = f, budget, exc

    def write(self, b):
        b = memoryview(b).cast("B")
        if len(b) > self._budget:
            self._f.write(b[:self._budget])
            self._f.flush()
            self._budget = 0
            raise self._exc
        self._budget -= len(b)
        return self._f.write(b)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def _leftovers(folder: Path, name: str):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}.") and p.name.endswith(".tmp"))


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), OSError(errno.ENOSPC, "No space left on device"),
                                 RuntimeError("boom")], ids=["KeyboardInterrupt", "ENOSPC", "RuntimeError"])
@pytest.mark.parametrize("where", ["mid-write", "fsync", "rename"])
@pytest.mark.parametrize("previous", [True, False], ids=["replacing", "new"])
def test_interrupted_save_leaves_previous_file_and_no_temp(fuzz_dir, tmp_path, monkeypatch, exc, where, previous):
    folder, files = fuzz_dir
    old_X, old = files["i16_lean.gede"]
    c = gedenb.compress(files["f64_stored.gede"][0], beta=2)
    path = tmp_path / "table.gede"
    if previous:
        path.write_bytes(old)
    real_fdopen = os.fdopen
    calls = []
    if where == "mid-write":
        def fdopen(fd, *a, **k):
            calls.append(fd)
            return _FailingFile(real_fdopen(fd, *a, **k), 150, exc)
        monkeypatch.setattr(os, "fdopen", fdopen)
    elif where == "fsync":
        def fsync(fd):
            calls.append(fd)
            raise exc
        monkeypatch.setattr(os, "fsync", fsync)
    else:
        def replace(a, b):
            calls.append(a)
            assert Path(a).stat().st_size > 0  # fully written, about to be renamed
            raise exc
        monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(type(exc)):
        gedenb.save(c, path)
    monkeypatch.undo()
    assert calls, "the failure was not injected"
    assert _leftovers(tmp_path, "table.gede") == []
    if previous:
        assert path.read_bytes() == old
        with gedenb.open(path) as r:
            assert same(r.read_rows(slice(None)), old_X)
    else:
        assert not path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["table.gede"] if previous else [])
    gedenb.save(c, path)  # and the next save works
    assert path.read_bytes() == _store.to_bytes(c)


def _writer_child(pickled, path):
    with open(pickled, "rb") as f:
        versions = pickle.load(f)
    gedenb.save(versions[0], path)
    print("ready", flush=True)
    i = 1
    while True:
        gedenb.save(versions[i % len(versions)], path)
        i += 1


def _check_sigkill(cal, tmp_path, kills, seed):
    X, c = cal
    versions = [c, gedenb.compress(X[:15000], beta=3, tau=4)]
    blobs = [_store.to_bytes(v) for v in versions]
    pickled = tmp_path / "versions.pkl"
    pickled.write_bytes(pickle.dumps(versions))
    rng = np.random.default_rng(seed)
    seen_tmp = 0
    for k in range(kills):
        folder = tmp_path / f"kill{k}"
        folder.mkdir()
        path = folder / "table.gede"
        with subprocess.Popen([sys.executable, str(THIS), "writer", pickled, path], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True, env=child_env()) as p:
            try:
                assert p.stdout.readline().strip() == "ready", "the writer did not start"
                time.sleep(float(rng.uniform(0.0, 0.25)))
            finally:
                p.send_signal(signal.SIGKILL)
                p.wait(60)
        assert p.returncode == -signal.SIGKILL
        data = path.read_bytes()
        assert data in blobs, "the file at the path is not one of the complete versions"
        with gedenb.open(path) as r:
            v = versions[blobs.index(data)]
            idx = rng.integers(0, r.n, 100)
            assert same(r.read_rows(idx), X[idx])
            assert r.shape == v.shape
        left = _leftovers(folder, "table.gede")
        assert len(left) <= 1, left  # at most the one being written when the process died
        assert sorted(p.name for p in folder.iterdir()) == sorted(["table.gede"] + left)
        for name in left:  # a prefix of a complete version
            part = (folder / name).read_bytes()
            assert any(b.startswith(part) for b in blobs)
            seen_tmp += 1
    return seen_tmp


def test_sigkill_during_save_leaves_a_complete_file(cal, tmp_path):
    """A writer killed at a random moment: the path holds a complete version; a `.NAME.*.tmp` may remain."""
    _check_sigkill(cal, tmp_path, kills=3, seed=5)


@pytest.mark.slow
def test_sigkill_during_save_leaves_a_complete_file_slow(cal, tmp_path):
    _check_sigkill(cal, tmp_path, kills=25, seed=6)


# --------------------------------------------------------------------------
# concurrent readers
# --------------------------------------------------------------------------
def test_threads_share_one_reader(cal, cal_file):
    X, c = cal
    with gedenb.open(cal_file) as r:
        def job(seed):
            rng = np.random.default_rng(seed)
            for _ in range(25):
                k = int(rng.choice([1, 7, 300, 9000]))  # serial and parallel decoding
                idx = rng.integers(-len(r), len(r), k)
                assert same(r.read_rows(idx), X[idx])
                i = int(rng.integers(len(r)))
                assert same(r[i], X[i])
            return True

        with ThreadPoolExecutor(max_workers=4) as ex:
            assert all(ex.map(job, range(8)))
        s, w = r.condensed()
    s2, w2 = gedenb.condensed(c)
    assert same(s, s2) and same(w, w2.astype(w.dtype))


def _fork_child(path, npy, read_before_fork):
    """DataLoader style: open in the parent, fork, read in the children."""
    X = np.load(npy)
    r = gedenb.open(path)
    if read_before_fork == "1":
        assert same(r.read_rows(np.arange(2000)), X[:2000])
        assert same(r.read_rows(np.arange(9000)), X[:9000])  # >= 2**16 values: the parallel kernel
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()

    def work(seed):
        rng = np.random.default_rng(seed)
        ok = True
        for _ in range(10):
            idx = rng.integers(0, len(r), int(rng.choice([3, 500, 9000])))  # serial and parallel kernels
            ok &= same(r.read_rows(idx), X[idx])
        q.put((seed, bool(ok)))

    procs = [ctx.Process(target=work, args=(s,)) for s in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    codes = [p.exitcode for p in procs]
    results = sorted(q.get(timeout=5) for _ in range(sum(c == 0 for c in codes)))
    print(json.dumps({"exitcodes": codes, "results": results, "layer": _layer_report()}))


def _layer_report() -> dict:
    """gedenb's threading-layer report after a parallel kernel ran, and the TBB runtimes this process mapped."""
    from gedenb._numba import threading_layer_info

    if threading_layer_info()["in_use"] is None:
        gedenb.decompress(gedenb.compress(np.arange(300_000, dtype=np.int64).reshape(-1, 3)))
    info = threading_layer_info()
    with open("/proc/self/maps") as f:
        info["mapped"] = sorted({line.split()[-1] for line in f if "libtbb.so" in line})
    return info


def _layer_child():
    print(json.dumps(_layer_report()))


def _tbb_runtime_of_the_wheel():
    """The TBB runtime of the installed ``tbb`` distribution (a dependency on x86-64), or None."""
    import importlib.metadata

    try:
        files = importlib.metadata.distribution("tbb").files or ()
    except importlib.metadata.PackageNotFoundError:
        return None
    return next((str(Path(f.locate()).resolve()) for f in files if f.name == "libtbb.so.12"), None)


def _check_layer(info):
    """The fork-safe layer gedenb chose is the one in use: TBB, the wheel's own runtime (not a system
    library that happens to be installed), wherever the wheel exists."""
    import platform

    wheel = _tbb_runtime_of_the_wheel()
    if platform.machine() in ("x86_64", "AMD64"):
        assert wheel is not None, "the tbb wheel is a dependency on x86-64 but is not installed"
    if wheel is None:  # no TBB wheel for this platform: Numba's own choice stands (docs: README, Threading)
        assert info["requested"] == "default" and info["tbb_library"] is None, info
        return
    assert info["in_use"] == "tbb" and info["fork_safe"] is True, info
    assert info["tbb_library"] == wheel and info["mapped"] == [wheel], info


def _check_fork(cal, cal_file, tmp_path, read_before_fork):
    X, _ = cal
    npy = tmp_path / "X.npy"
    np.save(npy, X)
    out = run_child("fork", cal_file, npy, "1" if read_before_fork else "0")
    assert out.returncode == 0, out.stderr[-4000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["exitcodes"] == [0, 0, 0], out.stderr[-4000:]
    assert res["results"] == [[0, True], [1, True], [2, True]]
    _check_layer(res["layer"])


def test_a_fresh_process_runs_parallel_kernels_on_the_wheels_tbb():
    """No ``NUMBA_THREADING_LAYER``: gedenb loads the tbb wheel's runtime (Numba cannot find it in
    ``<venv>/lib`` by itself) and Numba runs parallel kernels on it; a system libtbb would show in the maps."""
    env = child_env()
    env.pop("NUMBA_THREADING_LAYER", None)
    out = subprocess.run([sys.executable, str(THIS), "layer"], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-4000:]
    _check_layer(json.loads(out.stdout.strip().splitlines()[-1]))


def test_forked_readers_share_one_open_file(cal, cal_file, tmp_path):
    _check_fork(cal, cal_file, tmp_path, read_before_fork=False)


def test_forked_readers_after_the_parent_read_rows(cal, cal_file, tmp_path):
    """The parent decoded rows (serial and parallel kernels) before forking: children still read."""
    _check_fork(cal, cal_file, tmp_path, read_before_fork=True)


def test_reader_pickles_by_path(cal, cal_file):
    X, _ = cal
    with gedenb.open(cal_file, verify=False) as r:
        r2 = pickle.loads(pickle.dumps(r))
    assert r2.path == Path(cal_file) and r2._verify is False
    idx = np.arange(0, len(X), 97)
    assert same(r2.read_rows(idx), X[idx])
    r2.close()


# --------------------------------------------------------------------------
# determinism
# --------------------------------------------------------------------------
def test_output_is_deterministic(fuzz_dir, tmp_path):
    folder, files = fuzz_dir
    for name, (X, kw) in fuzz_tables().items():
        a = _store.to_bytes(gedenb.compress(X, exact_condensed=False, **kw))
        b = _store.to_bytes(gedenb.compress(np.asfortranarray(X), exact_condensed=False, **kw))
        assert a == b == files[name][1]
        gedenb.save(gedenb.compress(X.copy(), exact_condensed=False, **kw), tmp_path / name)
        assert (tmp_path / name).read_bytes() == a
        if kw.get("beta"):  # with the exact cluster statistics (section LERN) too
            lern = [_store.to_bytes(gedenb.compress(t, **kw)) for t in (X, np.asfortranarray(X))]
            assert lern[0] == lern[1] != a


def _hash_child(npy, beta):
    import hashlib

    X = np.load(npy)
    print(hashlib.sha256(_store.to_bytes(gedenb.compress(X, beta=int(beta)))).hexdigest())


@pytest.mark.slow
def test_output_is_deterministic_across_processes(cal, tmp_path):
    import hashlib

    X, c = cal
    npy = tmp_path / "X.npy"
    np.save(npy, X)
    out = run_child("hash", npy, 8)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.split()[-1] == hashlib.sha256(_store.to_bytes(c)).hexdigest()


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"fuzz": _child_fuzz, "writer": _writer_child, "fork": _fork_child, "hash": _hash_child,
     "layer": _layer_child}[cmd](*args)
