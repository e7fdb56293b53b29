"""The read side of a compressed table: rows, the whole table, condensed samples.

:func:`decompress` and :func:`condensed` read a :class:`gedenb.Compressed`
back; :mod:`gedenb.store`, :mod:`gedenb.sharded` and :mod:`gedenb.images`
decode their rows through :func:`_decode_rows` and :func:`rows_as`.  In the
storage-constrained mode (no condensed rows stored) the condensed samples
and the exact cluster statistics are recomputed from the rows, block by
block (:func:`recompute_condensed_blocks`, :func:`cluster_stats_of`).  This
module does not import the compressor (:mod:`gedenb.entrogede`).
"""

from __future__ import annotations

import numpy as np

from . import bits as _bits
from .clusters import _add_centroid_sums, centroids
from .compressed import Compressed, _check_compressed
from .encode import Codecs, as_float64, code_dtype, decode_codes, encode_columns, encode_values
from .entropy import deviations as _deviations
from .entropy import predict as _predict
from .exact_stats import StatsAccumulator
from .layout import decode_rows

__all__ = ["cluster_stats_of", "condensed", "decompress", "frame_schema", "recompute_condensed",
           "recompute_condensed_blocks", "rows_as"]


def decompress(c: Compressed, as_frame=None):
    """The original table, bit for bit (same dtype and shape).

    A mixed-dtype table comes back as an ``(n,)`` structured array with the
    dtype :func:`gedenb.encode.as_table` gave it (field names and order
    kept, native byte order, no padding).

    Parameters
    ----------
    c : Compressed
    as_frame : None, True or {"pandas", "polars", "arrow"}
        None (default): NumPy; for a table given as a DataFrame that is its
        physical table (:mod:`gedenb.frames`: codes for strings, a bool
        field per column with nulls).  True: the kind of frame it was given
        as; or name one.  A table given as NumPy converts too (fields as
        columns; a homogeneous table's columns are named ``"0"``, ``"1"``, ...).
    """
    _check_compressed(c)
    rows = np.arange(c.n, dtype=np.int64)
    return rows_as(c, _decode_rows(c, rows), rows, as_frame)


def rows_as(c, values: np.ndarray, rows, as_frame):
    """Decoded rows ``values`` of ``c`` as NumPy (``as_frame=None``) or as a frame.

    Parameters
    ----------
    c : Compressed or gedenb.sharded.ShardedSummary
        The table the rows are of.
    values : array
        The rows, as :func:`_decode_rows` gives them.
    rows : (k,) int64
        Their indices (a frame's index).
    as_frame : None, bool or {"pandas", "polars", "arrow"}
        As in :func:`decompress`.
    """
    if as_frame is None or as_frame is False:
        return values
    from . import frames as _frames

    return _frames.to_frame(values, frame_schema(c), as_frame, rows) if c.frame is not None \
        else _frames.plain_frame(values, as_frame)


def frame_schema(c):
    """``c.frame`` as a :class:`gedenb.frames.FrameSchema` (a file opened without pyarrow keeps its bytes).

    Parameters
    ----------
    c : Compressed or gedenb.sharded.ShardedSummary
        A table given as a DataFrame (``c.frame`` is not None).
    """
    from . import frames as _frames

    f = c.frame
    return f if isinstance(f, _frames.FrameSchema) else _frames.FrameSchema.from_bytes(c.frame_bytes, c.dtype)


def condensed(c: Compressed, exact: bool = True):
    """Condensed samples and their weights (Eq. 4/5 inputs).

    Parameters
    ----------
    c : Compressed
    exact : bool, default True
        The exact cluster means (NaN skipped; :mod:`gedenb.learning`), when
        the table keeps them (``compress(exact_condensed=True)``, the
        default, and files written by gedenb 0.2 or later); False, or a
        table without them: the stored rows, i.e. the means rounded onto each
        column's codec grid (the paper's condensed samples).

    Returns
    -------
    samples : (m, d) float64
        Cluster centroids; for a mixed-dtype table column ``j`` is field ``j``.
    weights : (m,) int64
        Cluster sizes; they sum to ``n``.

    Raises
    ------
    ValueError
        If the table was compressed without clustering (``beta=None``).
    """
    _check_compressed(c)
    if c.beta == 0:
        raise ValueError("this table was compressed without clustering (beta=None): no condensed samples")
    if exact and c.learning is not None:
        stats, weights = cluster_stats_of(c)
        return stats.means, weights
    if c.store_condensed:
        rows = np.arange(c.n, c.n + c.m, dtype=np.int64)
        vals = _decode_rows(c, rows)
        return as_float64(vals), np.asarray(c.weights)  # a signalling NaN widens quietly
    return recompute_condensed_blocks(c)


def cluster_stats_of(c, read=None):
    """``(stats, weights)``: the exact cluster statistics of ``c`` (:class:`gedenb.learning.CondensedStats`)
    and the cluster sizes, as stored, or recomputed from the rows in the storage-constrained mode (block by
    block, ``read(rows)`` decoding them); ``(None, weights)`` for a table without them.

    Parameters
    ----------
    c : Compressed
        The table.
    read : callable, optional
        ``read(rows) -> values`` of rows of ``c`` (default: :func:`_decode_rows`).
    """
    st = c.learning
    if st is None or st.means.shape[0] or c.beta == 0:
        return st, np.asarray(c.weights)
    acc = StatsAccumulator(c.codecs, c.dtype, c.n, st.targets, st.task)
    weights = np.zeros(0, dtype=np.int64)
    for X, codes, labels, m in _clusters_by_block(c, read):
        acc.add(X, codes, labels, m)
        weights = np.concatenate([weights, np.zeros(m - weights.size, dtype=np.int64)])
        weights += np.bincount(labels, minlength=m)
    return acc.finish(weights), weights


#: Bytes of decoded rows (or of their codes or bits) that a storage-constrained recomputation of the condensed
#: samples holds at a time.
RECOMPUTE_BLOCK_BYTES = 64 << 20


def _clusters_by_block(c, read=None):
    """Blocks of ``(X, codes, labels, m)`` over all rows of ``c``: each row's cluster on the beta positions,
    numbered by first occurrence over all rows (as :func:`gedenb.bits.group_by_positions` numbers them), and
    ``m`` the clusters seen so far.  Memory is bounded by :data:`RECOMPUTE_BLOCK_BYTES`, whatever ``n``."""
    read = read or (lambda rows: _decode_rows(c, rows))
    widths = c.codecs.width
    nwords = _bits.words_per_row(int(widths.sum()))
    positions = np.ascontiguousarray(c.beta_positions, dtype=np.int64)
    row_bytes = max(np.dtype(c.dtype).itemsize * (1 if c.dtype.names is not None else c.d),
                    c.d * np.dtype(code_dtype(widths)).itemsize, 8 * nwords, 1)
    step = max(1, RECOMPUTE_BLOCK_BYTES // row_bytes)
    ids: dict = {}
    for start in range(0, c.n, step):
        X = read(np.arange(start, min(c.n, start + step), dtype=np.int64))
        codes = encode_columns(X, c.codecs, check=False)
        keys = _bits._row_keys(_bits._pack_codes(codes, widths, nwords), positions)
        uniq, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
        gid = np.empty(len(uniq), dtype=np.int64)
        for u in np.argsort(first, kind="stable").tolist():
            gid[u] = ids.setdefault(uniq[u].tobytes(), len(ids))
        yield X, codes, gid[inverse.ravel()], len(ids)


def recompute_condensed_blocks(c, read=None):
    """:func:`recompute_condensed` over the rows of ``c``, block by block (bounded memory).

    Parameters
    ----------
    c : Compressed
        The table.
    read : callable, optional
        ``read(rows) -> values`` of rows of ``c`` (default: :func:`_decode_rows`).

    Returns
    -------
    samples : (m, d) float64
        The condensed samples on the codec grid.
    weights : (m,) int64
    """
    sums = np.zeros((0, c.d), dtype=np.float64)
    counts = np.zeros(0, dtype=np.int64)
    for X, _codes, labels, m in _clusters_by_block(c, read):
        if m > counts.size:
            sums = np.concatenate([sums, np.zeros((m - counts.size, c.d))])
            counts = np.concatenate([counts, np.zeros(m - counts.size, dtype=np.int64)])
        _add_centroid_sums(X, labels, sums, counts)
    with np.errstate(invalid="ignore"):
        means = sums / counts[:, None]
    rounded = decode_codes(encode_values(means, c.codecs, c.dtype), c.codecs, c.dtype)
    return as_float64(rounded), counts  # a signalling NaN widens quietly


def _recluster(X: np.ndarray, codecs: Codecs, beta_positions: np.ndarray):
    """Each row's cluster from the data and the beta positions alone."""
    n = X.shape[0]
    widths = codecs.width
    l_t = int(widths.sum())
    words = _bits._pack_codes(encode_columns(X, codecs, check=False), widths, _bits.words_per_row(l_t))
    T = _bits._transpose_bits(words, l_t)
    labels, groups = _bits._group_by_positions(T, np.asarray(beta_positions, dtype=np.int64), n)
    return labels, int(groups)


def recompute_condensed(X: np.ndarray, codecs: Codecs, beta_positions: np.ndarray):
    """Condensed samples from the data and the beta positions alone.

    This is the storage-constrained path of the paper's Sec. 3; it returns
    exactly what the stored mode stores (the means rounded onto the grid).

    Parameters
    ----------
    X : table
        All rows of the table.
    codecs : Codecs
        Its codecs.
    beta_positions : (beta,) int
        Its clustering bit positions.

    Returns
    -------
    samples : (m, d) float64
    weights : (m,) int64
    """
    labels, groups = _recluster(X, codecs, beta_positions)
    means, weights = centroids(X, labels, groups)
    rounded = decode_codes(encode_values(means, codecs, X.dtype), codecs, X.dtype)
    return as_float64(rounded), weights  # a signalling NaN widens quietly


def _decode_rows(c: Compressed, rows: np.ndarray, factor=None) -> np.ndarray:
    """Rows ``rows`` (validated int64) of ``c``, whichever its coding."""
    if c.coded is None:
        return decode_rows(c.records, c.bases, c.layout, c.codecs, rows, c.dtype, c.n_bases, factor)
    if c.predict is not None:  # transformed codes: decode them, undo the transform row by row, then the codecs
        codes = _deviations.decode_rows(c.coded, c.records, rows, c.dtype, codes_only=True)
        return decode_codes(_predict.inverse(codes, rows, c.codecs, c.predict), c.codecs, c.dtype, factor)
    if c.dtype.names is not None:  # mixed dtypes: column codes, then every field through its codecs
        return decode_codes(_deviations.decode_rows(c.coded, c.records, rows, c.dtype, codes_only=True), c.codecs,
                            c.dtype)
    return _deviations.decode_rows(c.coded, c.records, rows, c.dtype, factor=factor)
