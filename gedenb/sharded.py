"""Sharded stores: one compressed table as a folder of record shards.

Written by :func:`gedenb.dask.compress` for tables larger than one
machine; opened by :func:`gedenb.open` (which hands a folder holding a
``manifest.json`` to :class:`ShardedReader`).  A store is::

    path/
      manifest.json       everything small, with a CRC-32 of its own body
      bases.u64           n_b bases of l_b bits (one shared table)
      condensed.u64       the m condensed samples as records
      weights.i64         their weights (int64, little-endian)
      shard-000000.u64    records of rows [0, rows_0)
      shard-000001.u64    records of rows [rows_0, rows_0 + rows_1)
      ...

Records and bases are the bit streams of a ``.gede`` file (``docs/FORMAT.md``):
row ``r`` of a shard is its ``r``-th record of ``id_bits + l_d`` bits, base
IDs index the shared bases table, so row ``i`` of the table decodes from one
shard and one base without touching any other row.  Every file's size and
CRC-32 is in the manifest; a store is written into a temporary folder next
to ``path``, fsync'ed and renamed into place, so a crash never leaves a
half-valid store at ``path``.  The reader checks the streams as the
``.gede`` reader checks its sections, with the functions of
:mod:`gedenb.container` (checksums, padding bits, base IDs, row numbers).
"""

from __future__ import annotations

import builtins
import collections
import errno
import json
import mmap
import os
import re
import shutil
import stat
import tempfile
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .compressed import MAX_ROW_BITS, MAX_ROWS, _DerivedSizes
from .container import RowReader, frozen, max_base_id, release, row_indices, stream_problem
from .encode import BIN, DEC, IEEE, INT, SUPPORTED_DTYPES, Codecs, column_dtypes
from .errors import FormatError
from .layout import ceil_log2, decode_rows, make_layout

__all__ = ["FORMAT_NAME", "MANIFEST", "SHARDED_VERSION", "ShardedReader", "ShardedSummary", "is_sharded"]

#: Name of the manifest file inside a sharded store.
MANIFEST = "manifest.json"
#: ``format`` field of the manifest.
FORMAT_NAME = "gedenb-sharded"
#: (major, minor) written by this version; readers accept any minor of major 1.
SHARDED_VERSION = (1, 0)
#: The version of a store with a DataFrame's schema (file ``frame``): readers of 1.x would return the physical
#: table (string codes) without it, so they must refuse it by its major.
FRAME_SHARDED_VERSION = (2, 0)
SUPPORTED_SHARDED_MAJOR = (1, 2)
#: Shards kept memory-mapped at a time by one reader (each map holds a file descriptor).
MAX_OPEN_SHARDS = 64
_FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True, eq=False)
class ShardedSummary(_DerivedSizes):
    """What a sharded store holds, without its rows (an immutable container).

    Has the size attributes of :class:`gedenb.Compressed`, so
    :func:`gedenb.eq1_bits` and :func:`gedenb.size_breakdown` accept it.

    Attributes
    ----------
    path : str
        The store's folder.
    shape, dtype, codecs, base_mask, n_bases, weights, beta_positions, tau
        As in :class:`gedenb.Compressed`.
    entropy : (l_t,) float64
        Per-position entropy of all ``n`` rows (Eq. 6).
    greedy_sizes : int64
        Eq. 1 after each base position the greedy search tried, on the rows
        it searched on (all rows, or the sample).
    shard_rows : (k,) int64
        Rows per shard, in order.
    sample_rows : int
        Rows the greedy base selection searched on (``n`` when all).
    pass_seconds : tuple of (str, float)
        Wall seconds of every stage of :func:`gedenb.dask.compress`, in
        order (empty for a store opened from disk): ``codec_stats``,
        ``codec_check``, ``bit_counts``, ``clusters``, ``cluster_sums``,
        ``greedy``, ``bases``, ``shards``.
    frame, frame_bytes
        For a table given as a DataFrame: its schema
        (:class:`gedenb.frames.FrameSchema`, or its bytes when opened without
        pyarrow) and their serialised form (file ``frame`` of the manifest;
        the store's version is then 2.0, which readers of 1.x refuse).
    """

    path: str
    shape: tuple
    dtype: np.dtype
    codecs: Codecs
    base_mask: np.ndarray
    n_bases: int
    weights: np.ndarray
    beta_positions: np.ndarray
    entropy: np.ndarray
    greedy_sizes: np.ndarray
    tau: int
    shard_rows: np.ndarray
    sample_rows: int
    pass_seconds: tuple = ()
    frame: object = None
    frame_bytes: bytes = b""

    store_condensed = True
    #: Deviations are stored raw (the ``.gede`` v1 records), never entropy-coded.
    coded = None

    def __repr__(self) -> str:
        return (f"ShardedSummary({self.path!r}, shape={self.shape}, dtype={self.dtype}, shards={len(self.shard_rows)}, "
                f"l_t={self.row_bits}, l_b={self.base_bits}, n_b={self.n_bases}, m={self.m})")


# --------------------------------------------------------------------------
# writing (used by gedenb.dask; workers call write_words)
# --------------------------------------------------------------------------
def write_words(folder, name: str, words: np.ndarray) -> dict:
    """Write a uint64 bit stream (or int64 array) to ``folder/name``, fsync'ed; its manifest entry.

    Parameters
    ----------
    folder : str or os.PathLike
        The store's (temporary) folder.
    name : str
        The new file's name (it must not exist).
    words : uint64 or int64 ndarray
        The stream, written little-endian.

    Returns
    -------
    dict
        ``{"file": name, "nbytes": ..., "crc32": ...}``.
    """
    a = np.ascontiguousarray(words, dtype="<i8" if words.dtype.kind == "i" else "<u8")
    view = memoryview(a).cast("B")
    with builtins.open(os.path.join(os.fspath(folder), name), "xb") as f:
        f.write(view)
        f.flush()
        os.fsync(f.fileno())
    return {"file": name, "nbytes": len(view), "crc32": zlib.crc32(view)}


def shard_name(index: int, generation: str = "") -> str:
    """The file name of shard ``index``.

    Parameters
    ----------
    index : int
        The shard's number (from 0).
    generation : str, default ""
        The tag of the store's generation (:func:`generation`), put in front.
    """
    return f"{generation}shard-{index:06d}.u64"


def generation(tmp) -> str:
    """The tag that the files of a store written in folder ``tmp`` carry in their names: the random part of
    the temporary folder's name (:func:`new_store_folder`), so that an overwrite can move them next to the
    files of the store it replaces without a clash.

    Parameters
    ----------
    tmp : str or os.PathLike
        The temporary folder, as :func:`new_store_folder` made it.
    """
    name = Path(os.fspath(tmp)).name
    return "g" + name[:-len(".tmp")].rsplit(".", 1)[1] + "-"


def _canonical(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def manifest_body(summary: ShardedSummary, files: dict, shards: list) -> dict:
    """The manifest of a store (without its own checksum).

    Parameters
    ----------
    summary : ShardedSummary
        What the store holds.
    files : dict
        Manifest entries (:func:`write_words`) of ``bases``, ``condensed``, ``weights`` and, for a table
        given as a DataFrame, ``frame``.
    shards : list of dict
        The shards' entries in order, each with its ``rows``.
    """
    c = summary.codecs
    return {
        "format": FORMAT_NAME,
        "version": list(FRAME_SHARDED_VERSION if "frame" in files else SHARDED_VERSION),
        "n": summary.n,
        "d": summary.d,
        "m": summary.m,
        "dtype": np.lib.format.dtype_to_descr(np.dtype(summary.dtype).newbyteorder("<")
                                              if summary.dtype.names is None else summary.dtype),
        "l_t": summary.row_bits,
        "n_bases": summary.n_bases,
        "tau": summary.tau,
        "codecs": {"kind": c.kind.tolist(), "width": c.width.tolist(), "scale": c.scale.tolist(),
                   "offset": [int(v) for v in c.offset]},
        "base_mask": np.packbits(summary.base_mask.astype(np.uint8)).tobytes().hex(),
        "beta_positions": summary.beta_positions.tolist(),
        "entropy": [float(v) for v in summary.entropy],
        "greedy_sizes": [int(v) for v in summary.greedy_sizes],
        "sample_rows": int(summary.sample_rows),
        "files": files,
        "shards": shards,
    }


def write_manifest(folder, body: dict) -> None:
    """Write ``folder/manifest.json``: ``body`` with the CRC-32 of its canonical JSON, fsync'ed.

    Parameters
    ----------
    folder : str or os.PathLike
        The store's (temporary) folder.
    body : dict
        The manifest, as :func:`manifest_body` gives it.
    """
    doc = dict(body)
    doc["crc32"] = zlib.crc32(_canonical(body))
    raw = json.dumps(doc, sort_keys=True, indent=1, allow_nan=False).encode()
    with builtins.open(os.path.join(os.fspath(folder), MANIFEST), "xb") as f:
        f.write(raw)
        f.flush()
        os.fsync(f.fileno())


def new_store_folder(path) -> Path:
    """A fresh temporary folder beside ``path`` to build a store in.

    Parameters
    ----------
    path : str or os.PathLike
        Where the store will be; its parent folder must exist.
    """
    path = Path(os.fspath(path))
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"folder {parent} does not exist", str(path))
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))


def _fsync_dir(folder) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_target(path, overwrite: bool) -> None:
    """Refuse a target that exists, unless it is an empty folder or ``overwrite`` allows replacing a store.

    Parameters
    ----------
    path : str or os.PathLike
        Where the store is to be written.
    overwrite : bool
        Whether an existing sharded store there may be replaced.

    Raises
    ------
    FileNotFoundError
        The parent folder does not exist.
    FileExistsError
        ``path`` exists and may not (or, not being a sharded store, cannot) be replaced.
    """
    p = Path(os.fspath(path))
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, f"folder {parent} does not exist", str(p))
    if not os.path.lexists(p):
        return
    if p.is_dir() and not p.is_symlink() and not any(p.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(errno.EEXIST, "exists; pass overwrite=True to replace a sharded store", str(p))
    if not is_sharded(p):
        raise FileExistsError(errno.EEXIST, "exists and is not a sharded gedenb store; not replacing it", str(p))


def _rename(src, dst) -> None:
    """``os.replace`` (one place, so that tests can fail each step of a commit in turn)."""
    os.replace(src, dst)


#: What the files of a store are called (new ones carry a generation tag, see :func:`generation`).
_STORE_FILE = re.compile(r"^(g[a-z0-9_]{1,16}-)?(bases\.u64|condensed\.u64|weights\.i64|frame\.bin|shard-\d{6}\.u64)$")


def _manifest_files(doc: dict) -> set:
    """Names of the files a manifest (body) refers to."""
    names = {e.get("file") for e in doc.get("files", {}).values() if isinstance(e, dict)}
    names |= {s.get("file") for s in doc.get("shards", []) if isinstance(s, dict)}
    return {f for f in names if isinstance(f, str)}


def commit_store(tmp: Path, path, overwrite: bool) -> None:
    """Move a finished store from ``tmp`` to ``path`` (see :func:`check_target`).

    A new store is one rename of the folder.  Replacing a store keeps its folder: the new files (their
    names carry the new generation's tag) are renamed into it beside the old ones, then the new manifest is
    renamed over the old one -- the one step that switches versions -- and only then are the old files
    removed.  A crash at any point leaves a complete store at ``path``: the old one up to the manifest's
    rename, the new one after it (with files of the other version left over at most).

    Parameters
    ----------
    tmp : Path
        The temporary folder holding the finished store (:func:`new_store_folder`).
    path : str or os.PathLike
        Where the store goes.
    overwrite : bool
        As :func:`check_target`.
    """
    path = Path(os.fspath(path))
    check_target(path, overwrite)
    _fsync_dir(tmp)
    if not (os.path.lexists(path) and any(path.iterdir())):
        _rename(tmp, path)  # also replaces an empty folder atomically
        _fsync_dir(path.parent if str(path.parent) else ".")
        return
    new = sorted(f for f in os.listdir(tmp) if f != MANIFEST)
    clash = set(new) & set(os.listdir(path))
    if clash:
        raise FileExistsError(errno.EEXIST, f"files of the new store already exist in the old one ({sorted(clash)[0]})",
                              str(path))
    for name in new:
        _rename(tmp / name, path / name)
    _fsync_dir(path)
    _rename(tmp / MANIFEST, path / MANIFEST)  # the commit point
    _fsync_dir(path)
    for name in os.listdir(path):  # the old version's files (not foreign ones: only names a store gives)
        if name not in new and name != MANIFEST and _STORE_FILE.match(name):
            try:
                os.unlink(path / name)
            except OSError:
                pass
    shutil.rmtree(tmp, ignore_errors=True)


def looks_like_a_store(path) -> bool:
    """Whether folder ``path`` holds files named as a sharded store's are (a store that lost its manifest).

    Parameters
    ----------
    path : str or os.PathLike
        A folder.
    """
    try:
        return any(_STORE_FILE.match(name) for name in os.listdir(path))
    except OSError:
        return False


def is_sharded(path) -> bool:
    """Whether ``path`` is a folder holding a sharded-store manifest.

    Parameters
    ----------
    path : str or os.PathLike
        Any path.
    """
    p = Path(os.fspath(path))
    return p.is_dir() and (p / MANIFEST).is_file()


# --------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------
def _int(body, key, lo=0, hi=None):
    v = body.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        raise FormatError(f"manifest: {key}={v!r} is not an integer in [{lo}, {hi if hi is not None else 'inf'}]")
    return v


def _int_list(body, key, n, lo, hi):
    v = body.get(key) if isinstance(body, dict) else None
    if not isinstance(v, list) or len(v) != n or any(isinstance(x, bool) or not isinstance(x, int) for x in v) \
            or (n and (min(v) < lo or max(v) > hi)):
        raise FormatError(f"manifest: {key} must be {n} integers in [{lo}, {hi}]")
    return v


def _dtype(descr) -> np.dtype:
    try:
        dtype = np.lib.format.descr_to_dtype(descr if isinstance(descr, str) else [tuple(f) for f in descr])
    except Exception:  # noqa: BLE001 - any malformed description is a format error
        raise FormatError(f"manifest: dtype {descr!r} is not a dtype description") from None
    fields = column_dtypes(dtype, 1) if dtype.names is None else column_dtypes(dtype, len(dtype.names))
    if any(f.newbyteorder("=") not in SUPPORTED_DTYPES or f.byteorder == ">" for f in fields):
        raise FormatError(f"manifest: unsupported dtype {descr!r}")
    if dtype.names is not None and (len(dtype.fields) != len(dtype.names)
                                    or dtype.itemsize != sum(f.itemsize for f in fields)):
        raise FormatError("manifest: a structured dtype must be packed and without titles")
    return dtype.newbyteorder("=") if dtype.names is None else dtype


#: The largest manifest read (it holds ~50 bytes per row bit and per shard: 2**20 row bits and a million shards
#: stay far below).
MAX_MANIFEST_BYTES = 256 << 20


def _finite(text: str) -> float:
    v = float(text)
    if not np.isfinite(v):
        raise ValueError(f"number {text} out of range")
    return v


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _parse_manifest(raw: bytes) -> dict:
    try:
        doc = json.loads(raw.decode("utf-8"), parse_float=_finite, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError):
        raise FormatError("manifest: not valid JSON (the file is corrupt)") from None
    except RecursionError:
        raise FormatError("manifest: nested too deeply (the file is corrupt or forged)") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        raise FormatError("manifest: not a gedenb sharded store")
    crc = doc.pop("crc32", None)
    if not isinstance(crc, int) or zlib.crc32(_canonical(doc)) != crc:
        raise FormatError("manifest: checksum mismatch (the file is corrupt)")
    ver = doc.get("version")
    if not (isinstance(ver, list) and len(ver) == 2 and all(isinstance(v, int) for v in ver)):
        raise FormatError("manifest: malformed version")
    if ver[0] not in SUPPORTED_SHARDED_MAJOR:
        raise FormatError(f"manifest: sharded format version {ver[0]}.{ver[1]} is not supported; this gedenb "
                          f"reads major versions {', '.join(map(str, SUPPORTED_SHARDED_MAJOR))}")
    return doc


def _words_bytes(nbits: int) -> int:
    """Bytes of a uint64 bit stream of ``nbits`` bits."""
    return 8 * ((nbits + 63) // 64)


def _manifest_shape(doc: dict) -> tuple:
    """``(n, d, m, dtype)`` of the manifest, within the format's limits."""
    n = _int(doc, "n", 1, MAX_ROWS)
    d = _int(doc, "d", 1, 1 << 31)
    m = _int(doc, "m", 0, n)
    if n + m > MAX_ROWS:
        raise FormatError(f"manifest: n + m exceeds {MAX_ROWS}")
    dtype = _dtype(doc.get("dtype"))
    if (dtype.names is not None and len(dtype.names) != d):
        raise FormatError(f"manifest: dtype has {len(dtype.names)} fields, d={d}")
    return n, d, m, dtype


def _manifest_codecs(doc: dict, d: int, dtype: np.dtype) -> tuple:
    """``(kind, width, scale, offset)`` of the ``d`` column codecs, each checked against its column's dtype."""
    codecs = doc.get("codecs")
    if not isinstance(codecs, dict):
        raise FormatError("manifest: codecs missing")
    kind = np.array(_int_list(codecs, "kind", d, INT, IEEE), dtype=np.uint8)
    width = np.array(_int_list(codecs, "width", d, 0, 64), dtype=np.int64)
    scale = np.array(_int_list(codecs, "scale", d, 0, 1074), dtype=np.int64)
    offset = np.array(_int_list(codecs, "offset", d, 0, (1 << 64) - 1), dtype=np.uint64)
    cdt = column_dtypes(dtype, d)
    for j in range(d):
        dt = cdt[j]
        nbits = 1 if dt == np.bool_ else 8 * dt.itemsize
        ok = (kind[j] == INT) == (dt.kind in "biu")
        ok &= kind[j] not in (DEC, BIN) or dt.itemsize >= 4
        ok &= kind[j] in (DEC, BIN) or (width[j] <= nbits and (nbits == 64 or int(offset[j]) >> nbits == 0))
        ok &= kind[j] != DEC or scale[j] <= 9
        ok &= kind[j] in (DEC, BIN) or scale[j] == 0
        ok &= dt != np.bool_ or int(offset[j]) + (1 << int(width[j])) - 1 <= 1
        if not ok:
            raise FormatError(f"manifest: codec of column {j} does not fit its dtype {dt}")
    return kind, width, scale, offset


def _manifest_bases(doc: dict, width: np.ndarray, n: int, m: int) -> tuple:
    """``(l_t, n_b, tau, base mask)``: the row bits against the codecs, the mask against them and ``n_b``."""
    l_t = int(width.sum())
    if _int(doc, "l_t", 0, MAX_ROW_BITS) != l_t:
        raise FormatError("manifest: l_t is not the sum of the codec widths")
    n_b = _int(doc, "n_bases", 1, n + m)
    tau = _int(doc, "tau", 1)
    try:
        mask_bytes = bytes.fromhex(doc.get("base_mask"))
    except (TypeError, ValueError):
        raise FormatError("manifest: base_mask is not hex") from None
    if len(mask_bytes) != (l_t + 7) // 8:
        raise FormatError("manifest: base_mask has the wrong length")
    mask = np.unpackbits(np.frombuffer(mask_bytes, dtype=np.uint8))
    if mask[l_t:].any():
        raise FormatError("manifest: base_mask padding bits must be zero")
    mask = mask[:l_t].astype(bool)
    l_b = int(mask.sum())
    if l_b < 64 and n_b > 1 << l_b:
        raise FormatError(f"manifest: {l_b} base bits cannot give n_b={n_b} distinct bases")
    return l_t, n_b, tau, mask


def _manifest_search(doc: dict, l_t: int, n: int, m: int) -> tuple:
    """``(beta positions, entropy, greedy sizes, sample rows)``: what the compressor's search found."""
    beta = doc.get("beta_positions")
    if not isinstance(beta, list):
        raise FormatError("manifest: beta_positions missing")
    beta = np.array(_int_list(doc, "beta_positions", len(beta), 0, max(l_t - 1, 0)), dtype=np.int64)
    if np.unique(beta).size != beta.size or (beta.size == 0) != (m == 0):
        raise FormatError("manifest: beta positions repeated, or condensed rows without clustering")
    entropy = doc.get("entropy")
    if not isinstance(entropy, list) or len(entropy) != l_t or not all(isinstance(v, (int, float)) for v in entropy):
        raise FormatError("manifest: entropy must hold l_t numbers")
    sizes = doc.get("greedy_sizes")
    if not isinstance(sizes, list):
        raise FormatError("manifest: greedy_sizes missing")
    sizes = _int_list(doc, "greedy_sizes", len(sizes), 0, 1 << 62)
    sample = _int(doc, "sample_rows", 1, n)
    return beta, entropy, sizes, sample


def _manifest_shards(doc: dict, n: int) -> tuple:
    """``(shard entries, rows per shard, file entries)``: rows summing to ``n``, file names distinct, a frame
    schema exactly in the stores of its version."""
    shards = doc.get("shards")
    if not isinstance(shards, list) or not shards:
        raise FormatError("manifest: shards missing")
    rows = []
    for s in shards:
        r = s.get("rows") if isinstance(s, dict) else None
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise FormatError("manifest: every shard needs rows >= 1")
        rows.append(r)
    if sum(rows) != n:
        raise FormatError(f"manifest: shard rows sum to {sum(rows)}, expected n={n}")
    names = [s.get("file") for s in shards]
    files = doc.get("files")
    if not isinstance(files, dict):
        raise FormatError("manifest: files missing")
    roles = ("bases", "condensed", "weights") + (("frame",) if "frame" in files else ())
    if ("frame" in files) != (doc["version"][0] == FRAME_SHARDED_VERSION[0]):
        raise FormatError("manifest: a frame schema is in exactly the stores of version "
                          f"{FRAME_SHARDED_VERSION[0]}.x")
    others = [files.get(k, {}).get("file") if isinstance(files.get(k), dict) else None for k in roles]
    if len(set(names + others)) != len(names) + len(roles):
        raise FormatError("manifest: file names repeated")
    return shards, rows, files


class ShardedReader(RowReader):
    """Random access to a sharded store (see the module docstring).

    Create with :func:`gedenb.open` on the store's folder.  Rows are
    addressed by their global index ``0 .. n-1`` and decoded from their own
    shard's record and the shared bases table, through read-only memory
    maps.  Same surface as :class:`gedenb.Reader`: ``len``, ``read_rows``,
    indexing, ``condensed``, ``close``/``with``; pickling reopens by path
    (``spawn`` DataLoader workers).  Shards are mapped on first use, at most
    ``MAX_OPEN_SHARDS`` at a time (each map holds a file descriptor).

    ``verify=True`` (default) checks every file's CRC-32 and every record's
    base ID at open, one sequential pass; ``verify=False`` checks the
    manifest, every size and the small files only (a record naming a base
    ID out of range still raises :class:`~gedenb.errors.FormatError` when read).

    Attributes
    ----------
    shape, dtype, n, d, m, n_bases, codecs, beta_positions
        As in :class:`gedenb.Compressed`.
    summary : ShardedSummary
        The store without its rows; :func:`gedenb.eq1_bits` accepts it.
    shard_starts : (k + 1,) int64
        First global row of every shard, then ``n``.
    nbytes : int
        Bytes of all files of the store.
    """

    _name = "ShardedReader"

    def __init__(self, path, verify: bool = True):
        self.path = Path(os.fspath(path))
        self._verify = bool(verify)
        if not self.path.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "a sharded store is a folder", str(self.path))
        error = None
        try:
            self._open()
        except FormatError as e:
            error = FormatError(f"{e} [{self.path}]")
        except BaseException:
            self.close()
            raise
        if error is not None:  # raised outside the handler: no traceback keeps views of the maps alive
            self.close()
            raise error

    def _file(self, entry, expect_bytes: int, what: str) -> Path:
        """Check a manifest file entry against the layout and the file on disk; its path (and its identity in
        ``self._ids``, checked again whenever the file is mapped later)."""
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) \
                or not _FILE_NAME.match(entry["file"]) or entry["file"] == MANIFEST:
            raise FormatError(f"manifest: bad file entry for {what}")
        nbytes = entry.get("nbytes")
        if nbytes != expect_bytes:
            raise FormatError(f"{what}: manifest says {nbytes!r} bytes, the layout needs {expect_bytes}")
        crc = entry.get("crc32")
        if not isinstance(crc, int):
            raise FormatError(f"manifest: bad checksum entry for {what}")
        p = self.path / entry["file"]
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise FormatError(f"{what}: file {entry['file']} is missing") from None
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(f"{what}: {entry['file']} is not a regular file")
        if st.st_size != expect_bytes:
            raise FormatError(f"{what}: {entry['file']} has {st.st_size} bytes, expected {expect_bytes} "
                              "(truncated or extended)")
        self._ids[p.name] = (st.st_dev, st.st_ino)
        return p

    def _mmap(self, p: Path, nbytes: int, what: str):
        """``(mmap or None, read-only uint64 words)`` of exactly ``nbytes`` bytes of ``p``, the very file the
        reader checked at open (same device and inode, same size): a store overwritten since, or a file
        renamed over one of its shards, raises FormatError instead of giving rows of neither version or
        reading past the end of a shorter file."""
        if nbytes == 0:
            return None, frozen(np.zeros(0, dtype=np.uint64))[0]
        try:
            f = p.open("rb")
        except FileNotFoundError:
            raise FormatError(f"{what}: {p.name} is gone: the store was replaced or changed since it was "
                              f"opened; open it again [{self.path}]") from None
        with f:
            st = os.fstat(f.fileno())
            if (st.st_dev, st.st_ino) != self._ids.get(p.name) or st.st_size != nbytes:
                raise FormatError(f"{what}: {p.name} is not the file this reader opened: the store was replaced "
                                  f"or changed since it was opened; open it again [{self.path}]")
            mm = mmap.mmap(f.fileno(), nbytes, access=mmap.ACCESS_READ)
        return mm, np.frombuffer(mm, dtype="<u8")

    def _map(self, entry, expect_bytes: int, nbits: int, what: str):
        """Map a file kept open for the reader's lifetime (bases, condensed rows, weights)."""
        mm, words = self._mmap(self._file(entry, expect_bytes, what), expect_bytes, what)
        if mm is not None:
            self._maps.append(mm)
        problem = stream_problem(words, entry["crc32"], nbits, what, self._verify)
        if problem:
            raise FormatError(problem)
        return words

    def _frame(self, entry, dtype):
        """The store's frame schema (file ``frame``), checked against its dtype; ``(None, b"")`` without one."""
        if entry is None:
            return None, b""
        from . import frames as _frames
        from ._optional import MissingDependency

        length = entry.get("length") if isinstance(entry, dict) else None
        if isinstance(length, bool) or not isinstance(length, int) or not 0 <= length <= MAX_MANIFEST_BYTES:
            raise FormatError("manifest: bad length of the frame schema")
        words = self._map(entry, 8 * ((length + 7) // 8), 8 * length, "frame")
        raw = words.tobytes()
        if any(raw[length:]):
            raise FormatError("frame: padding bytes must be zero")
        raw = raw[:length]
        if dtype.names is None:
            raise FormatError("frame: a frame schema on a table without fields")
        try:
            return _frames.FrameSchema.from_bytes(raw, dtype), raw
        except MissingDependency:  # NumPy reads need no pyarrow: keep the bytes, parse when a frame is asked for
            _frames._split(raw)
            return raw, raw

    def _shard(self, k: int):
        """Records of shard ``k``, mapped on first use; at most MAX_OPEN_SHARDS stay mapped."""
        with self._lock:
            words = self._open_shards.get(k)
            if words is not None:
                self._open_shards.move_to_end(k)
                return words
            mm, words = self._mmap(self.path / self._shard_files[k], self._shard_bytes[k], f"shard {k}")
            self._open_shards[k] = words
            if len(self._open_shards) > MAX_OPEN_SHARDS:
                self._open_shards.popitem(last=False)  # the map closes with the last view of it
            return words

    def _open(self) -> None:
        """Read the manifest, check it, map the bases, condensed rows and weights, check the shards (one pass
        when verifying), then build the summary."""
        self._maps = []
        self._ids = {}
        raw = self._read_manifest()
        doc = _parse_manifest(raw)
        n, d, m, dtype = _manifest_shape(doc)
        kind, width, scale, offset = _manifest_codecs(doc, d, dtype)
        l_t, n_b, tau, mask = _manifest_bases(doc, width, n, m)
        beta, entropy, sizes, sample = _manifest_search(doc, l_t, n, m)
        shards, rows, files = _manifest_shards(doc, n)
        id_bits = ceil_log2(n_b)
        rec_bits = id_bits + l_t - int(mask.sum())
        bases, cond, weights = self._map_tables(files, n, m, n_b, int(mask.sum()), id_bits, rec_bits)
        self._check_shards(shards, rows, rec_bits, id_bits, n_b)
        frame, frame_bytes = self._frame(files.get("frame"), dtype)
        codecs = Codecs(kind, width, offset, scale)
        frozen(*codecs, mask, beta, weights)
        self.layout = make_layout(width, mask, n_b)
        self._bases, self._cond = bases, cond
        self._open_shards = collections.OrderedDict()
        self._lock = threading.Lock()
        self._factor = codecs.factor
        self.shard_starts = np.concatenate(([0], np.cumsum(rows))).astype(np.int64)
        self.nbytes = len(raw) + len(bases) * 8 + len(cond) * 8 + 8 * m + sum(self._shard_bytes)
        self.version = tuple(doc["version"])
        self.summary = ShardedSummary(
            path=str(self.path), shape=(n, d), dtype=dtype, codecs=codecs, base_mask=mask, n_bases=n_b,
            weights=weights, beta_positions=beta, entropy=np.asarray(entropy, dtype=np.float64),
            greedy_sizes=np.asarray(sizes, dtype=np.int64), tau=tau, shard_rows=np.asarray(rows, dtype=np.int64),
            sample_rows=sample, frame=frame, frame_bytes=frame_bytes,
        )

    def _read_manifest(self) -> bytes:
        """The bytes of ``manifest.json``: a regular file of at most :data:`MAX_MANIFEST_BYTES`."""
        try:
            with builtins.open(self.path / MANIFEST, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise FormatError(f"manifest: {MANIFEST} is not a regular file")
                if size > MAX_MANIFEST_BYTES:
                    raise FormatError(f"manifest: {size:,} bytes, more than a store's manifest can need "
                                      f"({MAX_MANIFEST_BYTES:,})")
                return f.read(MAX_MANIFEST_BYTES + 1)
        except FileNotFoundError:
            raise FormatError(f"manifest: no {MANIFEST} in this folder") from None

    def _map_tables(self, files: dict, n: int, m: int, n_b: int, l_b: int, id_bits: int, rec_bits: int) -> tuple:
        """``(bases, condensed records, weights)``, mapped and checked (``verify``: the condensed rows' base IDs)."""
        bases = self._map(files.get("bases"), _words_bytes(n_b * l_b), n_b * l_b, "bases")
        cond = self._map(files.get("condensed"), _words_bytes(m * rec_bits), m * rec_bits, "condensed")
        wmap = self._map(files.get("weights"), 8 * m, 64 * m, "weights")
        weights = wmap.view("<i8").astype(np.int64)
        if m and (weights.min() < 1 or float(weights.sum(dtype=np.float64)) > 2.0 * n or int(weights.sum()) != n):
            raise FormatError(f"weights: must be >= 1 and sum to n={n}")
        if self._verify and id_bits and m and max_base_id(cond, rec_bits, id_bits, m) >= n_b:
            raise FormatError(f"condensed: a record names a base ID >= n_b={n_b}")
        return bases, cond, weights

    def _check_shards(self, shards: list, rows: list, rec_bits: int, id_bits: int, n_b: int) -> None:
        """Every shard's file against its entry (``verify``: its checksum and base IDs, one sequential pass whose
        maps are dropped again); sets the shards' file names and sizes."""
        self._shard_files, self._shard_bytes = [], []
        for i, (entry, r) in enumerate(zip(shards, rows)):
            what = f"shard {i}"
            nbytes = _words_bytes(r * rec_bits)
            p = self._file(entry, nbytes, what)
            self._shard_files.append(p.name)
            self._shard_bytes.append(nbytes)
            if self._verify:
                mm, a = self._mmap(p, nbytes, what)
                problem = stream_problem(a, entry["crc32"], r * rec_bits, what, self._verify)
                if not problem and id_bits and max_base_id(a, rec_bits, id_bits, r) >= n_b:
                    problem = f"{what}: a record names a base ID >= n_b={n_b}"
                del a
                if mm is not None:
                    mm.close()
                if problem:
                    raise FormatError(problem)

    # --- public surface -------------------------------------------------------
    def _s(self) -> ShardedSummary:
        try:
            return self.__dict__["summary"]
        except KeyError:
            raise ValueError(f"I/O operation on a closed gedenb.ShardedReader ({self.path})") from None

    @property
    def closed(self) -> bool:
        return "summary" not in self.__dict__

    shape = property(lambda self: self._s().shape)
    dtype = property(lambda self: self._s().dtype)
    n = property(lambda self: self._s().n)
    d = property(lambda self: self._s().d)
    m = property(lambda self: self._s().m)
    n_bases = property(lambda self: self._s().n_bases)
    codecs = property(lambda self: self._s().codecs)
    beta_positions = property(lambda self: self._s().beta_positions)
    fields = property(lambda self: self._s().dtype.names)

    @property
    def n_shards(self) -> int:
        return len(self._s().shard_rows)

    def _decode(self, stream, rows, what):
        s = self._s()
        try:
            return decode_rows(stream, self._bases, self.layout, s.codecs, rows, s.dtype, s.n_bases, self._factor)
        except FormatError as e:
            raise FormatError(f"{what}: {e} [{self.path}]") from None

    def read_rows(self, indices, as_frame=None) -> np.ndarray:
        """Decode only the given rows (global indices), as :meth:`gedenb.Reader.read_rows`.

        Parameters
        ----------
        indices : int, slice or 1-D integer array-like
            Row numbers in ``[-n, n)``, any order, repeats allowed.
        as_frame : None, True or {"pandas", "polars", "arrow"}
            As :meth:`gedenb.Reader.read_rows`.

        Returns
        -------
        ndarray of the table's dtype, rows in the order asked for ((k, d),
        or (k,) for a mixed-dtype table).

        Raises
        ------
        TypeError, IndexError, ValueError
            As :meth:`gedenb.Reader.read_rows`.
        """
        s = self._s()
        rows = row_indices(indices, s.n)
        if as_frame is not None:
            from .decode import rows_as

            return rows_as(s, self.read_rows(rows), rows, as_frame)
        starts = self.shard_starts
        if len(starts) == 2:
            return self._decode(self._shard(0), rows, "shard 0")
        sid = np.searchsorted(starts, rows, side="right") - 1
        order = np.argsort(sid, kind="stable")
        sorted_sid = sid[order]
        cuts = np.flatnonzero(np.diff(sorted_sid)) + 1
        out = None
        for part in np.split(order, cuts) if rows.size else []:
            k = int(sid[part[0]])
            vals = self._decode(self._shard(k), rows[part] - starts[k], f"shard {k}")
            if out is None:
                out = np.empty((rows.size,) + vals.shape[1:], dtype=vals.dtype)
            out[part] = vals
        if out is None:
            return self._decode(self._shard(0), rows, "shard 0")
        return out

    def condensed(self):
        """Condensed samples (float64, one column per column or field) and weights, as :func:`gedenb.condensed`."""
        from .encode import as_float64

        s = self._s()
        if s.beta == 0:
            raise ValueError("this store was compressed without clustering (beta=None): no condensed samples")
        vals = self._decode(self._cond, np.arange(s.m, dtype=np.int64), "condensed")
        return as_float64(vals), np.array(s.weights)

    def close(self) -> None:
        """Drop this reader's maps; they close once no array views of them remain."""
        self.__dict__.pop("summary", None)
        self._bases = self._cond = None
        self._maps = getattr(self, "_maps", [])
        self._open_shards = collections.OrderedDict()
        for mm in self._maps:
            release(mm)
        self._maps = []

    def __repr__(self) -> str:
        if self.closed:
            return f"<gedenb.ShardedReader {self.path} (closed)>"
        return (f"<gedenb.ShardedReader {self.path}: shape={self.shape}, dtype={self.dtype}, "
                f"shards={self.n_shards}, n_b={self.n_bases}, m={self.m}>")
