"""EntroGeDe on Dask: compress a table larger than one machine into a sharded store.

Optional extra ``dask`` (``pip install gedenb[dask]``); ``import gedenb``
never imports Dask, ``import gedenb.dask`` does.  The passes over the row
chunks are Dask tasks, run by whatever scheduler is active (a
``dask.distributed`` client when one exists, else Dask's default)::

    1  codec statistics per chunk      -> merged -> column codecs
       (plus a verifying pass per chunk, exactly as fit_codecs verifies)
    2  bit counts per chunk (+ sample) -> summed -> entropies (Eq. 6),
                                          clustering bits (Algorithm 1, l. 4-6)
    3  distinct clustering keys        -> tree-merged by key -> clusters,
       numbered by first occurrence as the single-machine grouping numbers them
    4  per-cluster sums and counts     -> folded over the chunks in row order
                                          -> centroids and weights
    5  greedy base selection (Eq. 1, plateau tau) on a uniform row sample
       (all rows when sample_rows >= n), on the client
    6  distinct bases                  -> tree-merged -> the shared base table
    7  every chunk encoded into one shard file, in parallel

Each reduction gives exactly the single-machine quantity: counts and
extrema are additive or idempotent, codec statistics merge to
``fit_codecs`` of all rows (:func:`gedenb.encode.fit_codecs_chunked`), and
the cluster sums are folded chunk after chunk in row order with the same
float64 additions as :func:`gedenb.compress`, so the centroids are bit for
bit the same (this fold is the only serial step; it adds ``n * d`` numbers).
With ``sample_rows >= n`` the store decodes to the input and its condensed
samples, weights and Eq. 1 size equal ``gedenb.compress(...,
exact_condensed=False)`` on the same data: sharded stores keep the paper's
condensed rows (on the codec grid) and no exact cluster statistics yet.

Only ``coding="raw"`` records (the ``.gede`` v1 layout) are written.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from typing import NamedTuple

import numpy as np

from ._optional import require

require("gedenb.dask", "dask")

import dask  # noqa: E402
from dask.delayed import delayed  # noqa: E402

from . import bits as _bits
from . import sharded as _sh
from ._numba import njit, pnjit, prange
from .bits import _emit, _flush, _get_bits
from .encode import (
    _blocks,
    as_table,
    candidate_codecs,
    codec_check,
    codec_stats,
    encode_columns,
    encode_values,
    merge_codec_checks,
    merge_codec_stats,
    needs_check,
    settle_codecs,
)
from .clusters import clustering_bits
from .compressed import check_row_bits, check_rows, stored_params_bits
from .greedy import greedy_base_selection
from .inputs import check_int, frame_input
from .layout import _runs, gather_records, make_layout
from .stages import transpose

__all__ = ["DEFAULT_SAMPLE_ROWS", "compress"]

#: Rows the greedy base selection searches on when ``sample_rows`` is None.
DEFAULT_SAMPLE_ROWS = 1 << 21


# --------------------------------------------------------------------------
# inputs: a row-chunked dask array or .npy files, as one Delayed per chunk
# --------------------------------------------------------------------------
class _Source(NamedTuple):
    blocks: list
    rows: np.ndarray
    dtype: np.dtype
    d: int


def _probe(dtype, d: int) -> np.dtype:
    """The normalised dtype of a table of ``dtype`` (raises as compress does for a bad one)."""
    dtype = np.dtype(dtype)
    proto = np.zeros(1, dtype=dtype) if dtype.names is not None else np.zeros((1, d), dtype=dtype)
    return as_table(proto).dtype


#: np.load parses the .npy header with ast.literal_eval, which is not thread-safe on
#: CPython 3.11 (gh-106905: "AST constructor recursion depth mismatch" under threads).
_NPY_LOCK = threading.Lock()


def _load_npy(path: str) -> np.ndarray:
    with _NPY_LOCK:  # mapping is cheap: the lock costs nothing measurable
        return np.load(path, mmap_mode="r", allow_pickle=False)


#: Bytes of rows per shard of a table given in memory (``chunk_rows`` unset).
IN_MEMORY_CHUNK_BYTES = 64 << 20


def _in_memory(data, chunk_rows):
    """A table in memory (NumPy, or a DataFrame / Arrow table through :mod:`gedenb.frames`) as a row-chunked
    dask array and its frame schema (None for NumPy); anything else passes through."""
    from .frames import frame_kind

    if not (isinstance(data, np.ndarray) or frame_kind(data) is not None):
        if chunk_rows is not None:
            raise ValueError("chunk_rows is for a table given in memory; a dask array or .npy files bring their "
                             "own chunks")
        return data, None
    import dask.array as da

    from .encode import as_table

    X, frame = frame_input(data)
    X = as_table(X)
    row_bytes = X.dtype.itemsize * (1 if X.dtype.names is not None else X.shape[1])
    rows = check_int(chunk_rows, "chunk_rows", lo=1) if chunk_rows is not None \
        else max(1, IN_MEMORY_CHUNK_BYTES // max(row_bytes, 1))
    chunks = (rows,) if X.ndim == 1 else (rows, -1)
    return da.from_array(X, chunks=chunks), frame


def _sources(data) -> _Source:
    if isinstance(data, (list, tuple)):
        if not data:
            raise ValueError("expected at least one .npy file")
        rows, blocks, dtype, d = [], [], None, None
        for p in data:
            if not isinstance(p, (str, os.PathLike)):
                raise TypeError(f"expected paths of .npy files, got {type(p).__name__}")
            try:
                a = np.load(os.fspath(p), mmap_mode="r", allow_pickle=False)
            except ValueError as e:
                raise ValueError(f"{os.fspath(p)}: not a .npy file of a numeric table ({e})") from None
            if not isinstance(a, np.ndarray):
                raise ValueError(f"{os.fspath(p)}: expected a .npy file, not an archive")
            dd = _table_width(a.ndim, a.shape, a.dtype, os.fspath(p))
            if dtype is None:
                dtype, d = a.dtype, dd
            elif a.dtype != dtype or dd != d:
                raise ValueError(f"{os.fspath(p)}: has {dd} columns of {a.dtype}, the first file {d} of {dtype}")
            if a.shape[0]:
                rows.append(a.shape[0])
                blocks.append(delayed(_load_npy, pure=True)(os.fspath(p)))
            del a
    else:
        import dask.array as da

        if not isinstance(data, da.Array):
            raise TypeError(f"expected a dask array, a list of .npy paths or a table in memory (NumPy, DataFrame, "
                            f"Arrow), got {type(data).__name__}")
        d = _table_width(data.ndim, data.shape, data.dtype, "the dask array")
        if data.ndim == 2 and data.numblocks[1] > 1:
            data = data.rechunk({1: -1})
        if any(np.isnan(c) for c in data.chunks[0]):
            raise ValueError("the dask array has unknown chunk sizes; call .compute_chunk_sizes() first")
        dtype = data.dtype
        keep = [i for i, c in enumerate(data.chunks[0]) if c]
        flat = data.to_delayed().ravel()
        blocks = [flat[i] for i in keep]
        rows = [data.chunks[0][i] for i in keep]
    if not rows:
        raise ValueError("expected at least one row")
    return _Source(blocks, np.asarray(rows, dtype=np.int64), _probe(dtype, d), d)


def _table_width(ndim, shape, dtype, what) -> int:
    if dtype.names is not None:
        if ndim != 1:
            raise ValueError(f"{what}: a structured table must be 1-D, got shape {shape}")
        return len(dtype.names)
    if ndim != 2:
        raise ValueError(f"{what}: expected a 2-D table (rows x columns), got shape {shape}")
    return int(shape[1])


# --------------------------------------------------------------------------
# per-chunk work (runs on the workers)
# --------------------------------------------------------------------------
def _table(block) -> np.ndarray:
    return as_table(np.asarray(block))


def _frozen(codecs):
    """Codecs with read-only arrays, as on the client: the kernels compiled there (and cached) fit."""
    for a in codecs:
        if a.flags.writeable:
            a.setflags(write=False)
    return codecs


def _words(X: np.ndarray, codecs, l_t: int) -> np.ndarray:
    codes = encode_columns(X, _frozen(codecs), check=False)
    return _bits._pack_codes(codes, np.ascontiguousarray(codecs.width), _bits.words_per_row(l_t))


@pnjit
def _gather_keys(words, runs, kw):
    """Each row's bits at ``runs``, packed MSB first into ``kw`` words (a sortable key)."""
    n = words.shape[0]
    out = np.zeros((n, kw), dtype=np.uint64)
    for i in prange(n):
        row = words[i]
        key = out[i]
        acc = np.uint64(0)
        nacc = 0
        wpos = 0
        for r in range(runs.shape[0]):
            ln = runs[r, 1]
            acc, nacc, wpos = _emit(key, acc, nacc, wpos, _get_bits(row, runs[r, 0], ln), ln)
        _flush(key, acc, nacc, wpos)
    return out


def _keys(words: np.ndarray, runs: np.ndarray, nbits: int) -> np.ndarray:
    kw = (int(nbits) + 63) // 64
    if kw == 0:
        return np.zeros((words.shape[0], 0), dtype=np.uint64)
    return _gather_keys(words, runs, kw)


def _key_view(keys: np.ndarray) -> np.ndarray:
    """1-D sortable view of (k, kw) keys: the word itself, or kw words as one opaque item."""
    if keys.shape[1] == 1:
        return np.ascontiguousarray(keys[:, 0])
    return np.ascontiguousarray(keys).view(np.dtype((np.void, 8 * keys.shape[1]))).ravel()


def _distinct(keys: np.ndarray, first: np.ndarray):
    """Distinct keys (sorted by :func:`_key_view`) with the smallest ``first`` of each."""
    if keys.shape[1] == 0:
        i = int(np.argmin(first))
        return keys[i:i + 1], first[i:i + 1]
    order = np.argsort(first, kind="stable")
    keys, first = keys[order], first[order]
    _, idx = np.unique(_key_view(keys), return_index=True)  # index of the first (= smallest) occurrence
    return keys[idx], first[idx]


def _merge_distinct(*parts):
    return _distinct(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


class _Dictionary(NamedTuple):
    """Distinct keys (their sorted views) with the id of each; ids number keys by first occurrence.

    Every worker holds one: ``8 * ceil(nbits / 64) + 8`` bytes per key.
    """

    view: np.ndarray
    ids: np.ndarray
    nbits: int

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        if keys.shape[1] == 0:
            return np.zeros(keys.shape[0], dtype=np.int64)
        return self.ids[np.searchsorted(self.view, _key_view(keys))]


def _dictionary(keys: np.ndarray, first: np.ndarray, nbits: int) -> _Dictionary:
    ids = np.empty(len(first), dtype=np.int64)
    ids[np.argsort(first, kind="stable")] = np.arange(len(first), dtype=np.int64)
    view = _key_view(keys) if keys.shape[1] else np.zeros(len(first), dtype=np.uint64)
    return _Dictionary(view, ids, int(nbits))


class _Laps:
    """Wall seconds per stage of :func:`compress` (``ShardedSummary.pass_seconds``)."""

    def __init__(self):
        self.t = time.perf_counter()
        self.laps: dict = {}

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self.t
        self.t = now


class _Plan(NamedTuple):
    codecs: tuple
    l_t: int


def _stats_task(block, widths):
    return codec_stats(_table(block), widths)


def _check_task(block, codecs, stats):
    return codec_check(_table(block), _frozen(codecs), stats)


def _counts_task(block, plan: _Plan, take: int, seed: int, index: int):
    """Bit counts of a chunk and the words of ``take`` of its rows, drawn uniformly (all when -1)."""
    X = _table(block)
    words = _words(X, plan.codecs, plan.l_t)
    if take < 0:
        sample = slice(None)
    else:
        sample = np.sort(np.random.default_rng([seed, index]).choice(X.shape[0], size=take, replace=False))
    if plan.l_t == 0:
        return np.zeros(0, dtype=np.int64), words[sample]
    T = _bits._transpose_bits(words, plan.l_t)
    return _bits._position_counts(T, 0, X.shape[0]), words[sample]


def _distinct_task(block, plan: _Plan, runs: np.ndarray, nbits: int, start: int):
    keys = _keys(_words(_table(block), plan.codecs, plan.l_t), runs, nbits)
    if keys.shape[1] == 0:
        return keys[:1], np.array([start], dtype=np.int64)
    _, idx = np.unique(_key_view(keys), return_index=True)
    return keys[idx], idx.astype(np.int64) + start


@njit
def _add_rows(V, labels, sums):
    """``sums[labels[i], j] += V[i, j]`` in row order: the additions of the single-machine centroids.

    Every supported value converts to float64 exactly as the single-machine
    kernel converts it before adding, so ``V`` is the chunk as float64.
    """
    n, d = V.shape
    for i in range(n):
        g = labels[i]
        for j in range(d):
            sums[g, j] += V[i, j]


def _prepare_task(block, plan: _Plan, runs: np.ndarray, clusters: _Dictionary):
    """Cluster labels of a chunk's rows and the chunk as float64 (the parallel part of the fold)."""
    X = _table(block)
    labels = clusters.lookup(_keys(_words(X, plan.codecs, plan.l_t), runs, clusters.nbits))
    V = np.empty((X.shape[0], plan.codecs.width.shape[0]), dtype=np.float64)
    for cols, B in _blocks(X):
        V[:, cols] = B
    return labels, V


def _fold_task(prepared, state):
    """Add one chunk to the running per-cluster sums and counts (the serial part)."""
    labels, V = prepared
    sums, counts = state[0].copy(), state[1] + np.bincount(labels, minlength=state[1].shape[0])
    _add_rows(V, labels, sums)
    return sums, counts


def _shard_task(block, plan: _Plan, bases: _Dictionary, base_runs, id_bits, dev_runs, folder, index):
    X = _table(block)
    words = _words(X, plan.codecs, plan.l_t)
    ids = bases.lookup(_keys(words, base_runs, bases.nbits))
    records = gather_records(words, np.arange(X.shape[0], dtype=np.int64), ids, id_bits, dev_runs)
    info = _sh.write_words(folder, _sh.shard_name(index, _sh.generation(folder)), records)
    info["rows"] = int(X.shape[0])
    return info


# --------------------------------------------------------------------------
# scheduling helpers (client side)
# --------------------------------------------------------------------------
def _client():
    """The distributed client Dask computes with now, or None."""
    if dask.config.get("scheduler", None) not in (None, "dask.distributed"):
        return None
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def _compute(objs, progress: bool) -> list:
    """Compute Delayed objects with Dask's own progress display when asked."""
    objs = list(objs)
    client = _client()
    if client is not None and progress:
        from distributed import progress as show

        futures = client.compute(objs)
        show(futures)
        return client.gather(futures)
    if progress:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return list(dask.compute(*objs))
    return list(dask.compute(*objs))


def _tree(func, items: list, split_every: int = 8):
    """A Delayed tree reduction of ``items`` with ``func(*group)``."""
    while len(items) > 1:
        items = [delayed(func, pure=True)(*items[i:i + split_every]) for i in range(0, len(items), split_every)]
    return items[0]


def _slots() -> int:
    client = _client()
    if client is not None:
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:  # noqa: BLE001 - a client that cannot say: assume a small cluster
            return 2
    return max(1, os.cpu_count() or 1)


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------
def compress(data, path, beta: int | None = None, tau: int = 10, sample_rows: int | None = None, *,
             widths: str = "narrow", cluster_columns=None, cluster_rule=None, seed: int = 0,
             overwrite: bool = False, progress: bool = False, chunk_rows: int | None = None) -> _sh.ShardedSummary:
    """Compress a row-chunked table with EntroGeDe on Dask into a sharded store.

    Parameters
    ----------
    data : dask.array.Array, list of paths, or a table in memory
        A dask array of shape ``(n, d)`` (or ``(n,)`` with a structured
        dtype) chunked along rows, with known chunk sizes; or ``.npy``
        files of such tables with the same columns and dtype.  Every chunk
        (file) becomes one shard; each must fit in a worker's memory.  Or a
        NumPy table or a pandas / polars DataFrame or pyarrow Table (as
        :func:`gedenb.compress` takes them: strings, categoricals, nulls and
        names are kept, the schema stored beside the shards), cut into
        chunks of ``chunk_rows`` rows.
    path : str or os.PathLike
        The store's folder.  It must not exist, or be an empty folder, or
        (with ``overwrite=True``) hold a sharded store to replace.
    beta, tau
        As in :func:`gedenb.compress`.  Condensed samples are always stored
        (``store_condensed=True``).
    sample_rows : int, optional
        Rows the greedy base selection (Algorithm 1, lines 10-27) searches
        on: a uniform sample without replacement, drawn with ``seed``.  At
        least ``n`` means all rows (then the result equals
        :func:`gedenb.compress`); default :data:`DEFAULT_SAMPLE_ROWS`.  The
        client holds the sample's bits (``sample_rows * l_t / 8`` bytes).
    widths, cluster_columns, cluster_rule
        As in :func:`gedenb.compress`.
    seed : int
        Seed of the row sample.
    overwrite : bool
        Replace a sharded store at ``path``.
    progress : bool
        Show Dask's progress bar for every pass (``distributed.progress``
        under a distributed client, else ``dask.diagnostics.ProgressBar``).
    chunk_rows : int, optional
        Rows per shard of a table given in memory (default: about 64 MB of
        rows per shard).

    Returns
    -------
    ShardedSummary
        The store without its rows; :func:`gedenb.eq1_bits` accepts it and
        :func:`gedenb.open` on ``path`` reads the rows.

    Raises
    ------
    TypeError
        Not a dask array or a list of paths; unsupported dtype.
    ValueError
        Wrong shape, no rows, unknown chunk sizes, files that disagree on
        their columns, bad ``beta``/``tau``/``sample_rows``.
    FileExistsError
        ``path`` exists and may not be replaced.

    Notes
    -----
    The store is written into a temporary folder beside ``path`` (workers
    must share that file system), fsync'ed, and renamed to ``path``; an
    error removes it, and a killed process can leave only that temporary
    folder, never a partial store at ``path``.

    Examples
    --------
    >>> import numpy as np, dask.array as da, gedenb, gedenb.dask, tempfile, os
    >>> X = np.repeat(np.arange(8, dtype=np.int32).reshape(4, 2), 5, axis=0)
    >>> folder = os.path.join(tempfile.mkdtemp(), "store")
    >>> s = gedenb.dask.compress(da.from_array(X, chunks=(6, 2)), folder, beta=1, sample_rows=len(X))
    >>> s.shard_rows.tolist(), gedenb.eq1_bits(s) == gedenb.eq1_bits(gedenb.compress(X, beta=1, exact_condensed=False))
    ([6, 6, 6, 2], True)
    >>> r = gedenb.open(folder)
    >>> bool((r.read_rows(slice(None)) == X).all()), r.condensed()[1].tolist()
    (True, [10, 10])
    """
    job = _validate(data, path, beta, tau, sample_rows, widths, seed, overwrite, chunk_rows, progress)
    lap = _Laps()
    codecs = _codec_passes(job, widths, lap)
    plan = _Plan(codecs, int(codecs.width.sum()))
    dplan = _lit(plan)
    counts, sample = _count_pass(job, plan, dplan)
    H = _bits.entropy(counts, job.n)
    lap("bit_counts")
    clusters = _cluster_passes(job, plan, dplan, H, cluster_columns, cluster_rule, lap)
    frame_bytes = b"" if job.frame is None else job.frame.to_bytes()
    mask, sizes = _greedy_pass(job, plan, H, sample, clusters, frame_bytes)
    lap("greedy")
    bases = _base_pass(job, plan, dplan, mask, clusters)
    lap("bases")
    return _write_store(job, path, overwrite, plan, dplan, clusters, bases, H, sizes, frame_bytes, lap)


# --------------------------------------------------------------------------
# the steps of compress (client side)
# --------------------------------------------------------------------------
class _Job(NamedTuple):
    """The validated arguments of :func:`compress` and the plan of its passes."""

    src: _Source
    frame: object
    n: int
    ns: int  # rows the greedy base selection searches on
    starts: np.ndarray  # first row of every chunk, then n
    tau: int
    beta: int | None
    seed: int
    progress: bool


def _lit(obj):
    """One graph node holding ``obj``, not a copy per task."""
    return delayed(obj, traverse=False)


def _validate(data, path, beta, tau, sample_rows, widths, seed, overwrite, chunk_rows, progress) -> _Job:
    """The input as chunks and the arguments checked, in the order whose errors callers see first."""
    data, frame = _in_memory(data, chunk_rows)
    src = _sources(data)
    tau = check_int(tau, "tau", lo=1)
    if beta is not None:
        beta = check_int(beta, "beta", lo=1)
    if widths not in ("narrow", "native"):
        raise ValueError(f"widths must be 'narrow' or 'native', got {widths!r}")
    seed = check_int(seed, "seed", lo=0)
    n = int(src.rows.sum())
    check_rows(n)
    ns = DEFAULT_SAMPLE_ROWS if sample_rows is None else check_int(sample_rows, "sample_rows", lo=1)
    _sh.check_target(path, overwrite)
    return _Job(src, frame, n, min(ns, n), np.concatenate(([0], np.cumsum(src.rows))), tau, beta, seed, progress)


def _codec_passes(job: _Job, widths: str, lap: _Laps):
    """Pass 1: the column codecs (statistics per chunk, merged; verifying passes where ``fit_codecs`` verifies),
    read-only, their row width checked."""
    src, progress = job.src, job.progress
    parts = _compute([delayed(_stats_task, pure=True)(b, widths) for b in src.blocks], progress)
    stats = parts[0]
    for p in parts[1:]:
        stats = merge_codec_stats(stats, p)
    codecs = candidate_codecs(stats, src.dtype, src.d, widths)
    final = None if widths == "narrow" and needs_check(stats, codecs) else codecs
    lap("codec_stats")
    while final is None:
        dc, ds = _lit(codecs), _lit(stats)
        parts = _compute([delayed(_check_task, pure=True)(b, dc, ds) for b in src.blocks], progress)
        checks = parts[0]
        for p in parts[1:]:
            checks = merge_codec_checks(checks, p)
        final, stats = settle_codecs(stats, checks, src.dtype, src.d, widths)
        if final is None:
            codecs = candidate_codecs(stats, src.dtype, src.d, widths)
            final = None if needs_check(stats, codecs) else codecs
    lap("codec_check")
    for a in final:
        a.setflags(write=False)
    check_row_bits(int(np.ascontiguousarray(final.width, dtype=np.int64).sum()))
    return final


def _count_pass(job: _Job, plan: _Plan, dplan):
    """Pass 2: the bit counts of all rows and the words of the greedy's row sample (all rows when ``ns >= n``;
    else hypergeometric counts per chunk, then uniform within each chunk), as a one-item list that
    :func:`_greedy_pass` empties (the client then holds them only until they are transposed)."""
    src = job.src
    if job.ns >= job.n:
        take = np.full(len(src.rows), -1, dtype=np.int64)
    else:
        take = np.random.default_rng(job.seed).multivariate_hypergeometric(src.rows, job.ns, method="marginals")
    tasks = [delayed(_counts_task, pure=True)(b, dplan, int(take[i]), job.seed, i) for i, b in enumerate(src.blocks)]
    parts = _compute(tasks, job.progress)
    counts = np.zeros(plan.l_t, dtype=np.int64)
    for c, _ in parts:
        counts += c
    swords = np.concatenate([s for _, s in parts]) if parts else np.zeros((0, _bits.words_per_row(plan.l_t)),
                                                                          np.uint64)
    return counts, [swords]


class _Clusters(NamedTuple):
    positions: np.ndarray  # (beta,) clustering bits
    weights: np.ndarray  # (m,) cluster sizes
    cwords: np.ndarray  # (m, nwords) the condensed rows, packed


def _cluster_passes(job: _Job, plan: _Plan, dplan, H: np.ndarray, columns, rule, lap: _Laps) -> _Clusters:
    """Passes 3-4: the clustering bits, the clusters (distinct keys, tree-merged), their sums and counts
    (folded over the chunks in row order) and the condensed rows."""
    nwords = _bits.words_per_row(plan.l_t)
    if job.beta is None:
        return _Clusters(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros((0, nwords), np.uint64))
    src, w = job.src, np.ascontiguousarray(plan.codecs.width, dtype=np.int64)
    beta_pos = clustering_bits(H, w, job.beta, columns, rule, src.dtype.names)
    runs = _runs(np.sort(beta_pos))
    keys, first = _compute([_tree(_merge_distinct, [
        delayed(_distinct_task, pure=True)(b, dplan, runs, job.beta, int(job.starts[i]))
        for i, b in enumerate(src.blocks)
    ])], job.progress)[0]
    clusters = _dictionary(keys, first, job.beta)
    lap("clusters")
    m = len(first)
    check_rows(job.n + m)
    state = (np.zeros((m, src.d), dtype=np.float64), np.zeros(m, dtype=np.int64))
    dclusters = _lit(clusters)
    window = 2 * _slots()
    for g in range(0, len(src.blocks), window):  # in row order; a window of chunks in memory at a time
        s = _lit(state)
        for b in src.blocks[g:g + window]:
            s = delayed(_fold_task, pure=True)(delayed(_prepare_task, pure=True)(b, dplan, runs, dclusters), s)
        state = _compute([s], job.progress)[0]
    sums, weights = state
    with np.errstate(invalid="ignore"):
        centroids = sums / weights[:, None]
    cwords = _bits._pack_codes(encode_values(centroids, plan.codecs, src.dtype), w, nwords)
    lap("cluster_sums")
    return _Clusters(beta_pos, weights, cwords)


def _greedy_pass(job: _Job, plan: _Plan, H: np.ndarray, sample: list, cl: _Clusters, frame_bytes: bytes):
    """Pass 5: the greedy base selection on the sample (taken out of ``sample``) and the condensed rows, on
    the client: ``(base_mask, sizes)``."""
    m = cl.cwords.shape[0]
    rows = np.concatenate([sample.pop(), cl.cwords])
    T = transpose(rows, plan.l_t)
    del rows
    scounts = _bits._position_counts(T, 0, job.ns + m) if plan.l_t else np.zeros(0, dtype=np.int64)
    s_params = stored_params_bits(job.src.d, plan.l_t, len(cl.positions), job.src.dtype, frame_bytes)
    mask, _, _, sizes = greedy_base_selection(T, scounts, H, job.ns, m, job.tau, s_params)
    return mask, sizes


class _Bases(NamedTuple):
    mask: np.ndarray  # (l_t,) the base positions
    table: _Dictionary  # the distinct bases with their ids
    layout: object
    stream: np.ndarray  # the bases' bit stream
    runs: np.ndarray  # runs of the base positions
    ckeys: np.ndarray  # the condensed rows' base bits


def _base_pass(job: _Job, plan: _Plan, dplan, mask: np.ndarray, cl: _Clusters) -> _Bases:
    """Pass 6: the distinct bases of all rows and of the condensed rows, tree-merged, numbered by first
    occurrence; the record layout."""
    n, m = job.n, cl.cwords.shape[0]
    l_b = int(mask.sum())
    base_runs = _runs(np.flatnonzero(mask).astype(np.int64))
    tasks = [delayed(_distinct_task, pure=True)(b, dplan, base_runs, l_b, int(job.starts[i]))
             for i, b in enumerate(job.src.blocks)]
    ckeys = _keys(cl.cwords, base_runs, l_b)
    tasks.append(delayed(_distinct, pure=True)(ckeys, np.arange(n, n + m, dtype=np.int64)) if m else None)
    keys, first = _compute([_tree(_merge_distinct, [t for t in tasks if t is not None])], job.progress)[0]
    n_b = len(first)
    layout = make_layout(np.ascontiguousarray(plan.codecs.width, dtype=np.int64), mask, n_b)
    by_id = keys[np.argsort(first, kind="stable")]
    stream = gather_records(by_id, np.arange(n_b, dtype=np.int64), np.zeros(n_b, dtype=np.int64), 0,
                            _runs(np.arange(l_b, dtype=np.int64))) if l_b else np.zeros(0, np.uint64)
    return _Bases(mask, _dictionary(keys, first, l_b), layout, stream, base_runs, ckeys)


def _write_store(job: _Job, path, overwrite: bool, plan: _Plan, dplan, cl: _Clusters, bases: _Bases,
                 H: np.ndarray, sizes: np.ndarray, frame_bytes: bytes, lap: _Laps) -> _sh.ShardedSummary:
    """Pass 7: every chunk encoded into one shard file, then the shared files and the manifest, written into a
    temporary folder that is renamed into place (removed on an error)."""
    tmp = _sh.new_store_folder(path)
    try:
        layout, m, mask = bases.layout, cl.cwords.shape[0], bases.mask
        dbases = _lit(bases.table)
        tasks = [delayed(_shard_task, pure=True)(b, dplan, dbases, bases.runs, layout.id_bits, layout.dev_runs,
                                                 str(tmp), i) for i, b in enumerate(job.src.blocks)]
        shards = _compute(tasks, job.progress)
        crec = gather_records(cl.cwords, np.arange(m, dtype=np.int64), bases.table.lookup(bases.ckeys),
                              layout.id_bits, layout.dev_runs) if m else np.zeros(0, np.uint64)
        gen = _sh.generation(tmp)
        files = {
            "bases": _sh.write_words(tmp, f"{gen}bases.u64", bases.stream),
            "condensed": _sh.write_words(tmp, f"{gen}condensed.u64", crec),
            "weights": _sh.write_words(tmp, f"{gen}weights.i64", cl.weights.astype(np.int64)),
        }
        for a in (mask, cl.weights, cl.positions, H, sizes):
            a.setflags(write=False)
        lap("shards")
        if job.frame is not None:
            files["frame"] = _sh.write_words(tmp, f"{gen}frame.bin", np.frombuffer(
                frame_bytes + b"\0" * (-len(frame_bytes) % 8), dtype="<u8"))
            files["frame"]["length"] = len(frame_bytes)
        summary = _sh.ShardedSummary(
            path=os.fspath(path), shape=(job.n, job.src.d), dtype=job.src.dtype, codecs=plan.codecs,
            base_mask=mask, n_bases=bases.table.ids.shape[0], weights=cl.weights, beta_positions=cl.positions,
            entropy=H, greedy_sizes=sizes, tau=job.tau,
            shard_rows=np.asarray([s["rows"] for s in shards], dtype=np.int64), sample_rows=job.ns,
            pass_seconds=tuple(lap.laps.items()), frame=job.frame, frame_bytes=frame_bytes,
        )
        _sh.write_manifest(tmp, _sh.manifest_body(summary, files, shards))
        _sh.commit_store(tmp, path, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
