"""Algorithm 1 as named stages: codecs -> bits -> clusters -> base search -> layout -> coding.

Each stage is a function of the previous stages' outputs::

    fit_column_codecs   table                    -> Codecs
    encode_bits         table, codecs            -> Bits (codes, packed rows, bit lines, counts, Eq. 6)
    cluster_rows        table, bits, beta, ...   -> Clusters (clustering bits, labels, centroids, weights)
    exact_statistics    ... clusters, targets    -> CondensedStats (section LERN)
    add_condensed_rows  bits, centroids          -> Bits of the n + m rows, codes of the m condensed rows
    section_bytes       frame, statistics        -> sections FRAM and LERN (counted in S_params)
    search_bases        bits, S_params, tau      -> Bases (greedy, Eq. 1 or the coded size)
    base_table          rows, base               -> Layout, the bases' bit stream
    code_rows           rows, base, layout       -> records (and the rANS-coded deviations)

:func:`gedenb.compress` runs them all in memory.  :func:`gedenb.dask.compress`
has distributed passes of its own for the codecs, bits and clusters and
shares :func:`transpose`, :func:`gedenb.clusters.clustering_bits`,
:func:`gedenb.compressed.stored_params_bits`, the base search
(:func:`gedenb.greedy.greedy_base_selection`) and the layout.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import bits as _bits
from . import exact_stats as _exact
from ._numba import njit
from .clusters import centroids, clustering_bits
from .compressed import check_row_bits, check_rows
from .encode import Codecs, decode_codes, encode_columns, encode_values, fit_codecs
from .entropy import deviations as _deviations
from .entropy import fitting as _fitting
from .entropy import predict as _predict
from .greedy import greedy_base_selection
from .inputs import target_fields
from .layout import Layout, gather_records, make_layout

__all__ = ["Bases", "Bits", "Clusters", "add_condensed_rows", "base_table", "cluster_rows", "code_rows",
           "encode_bits", "exact_statistics", "fit_column_codecs", "no_clusters", "search_bases", "section_bytes",
           "transpose"]


# --------------------------------------------------------------------------
# codecs
# --------------------------------------------------------------------------
def fit_column_codecs(X: np.ndarray, widths: str) -> Codecs:
    """Stage 1: the column codecs of a table, their row width checked.

    Parameters
    ----------
    X : array
        The table, normalised (:func:`gedenb.encode.as_table`).
    widths : {"narrow", "native"}
        As in :func:`gedenb.encode.fit_codecs`.

    Returns
    -------
    Codecs
        Widths summing to at most :data:`gedenb.compressed.MAX_ROW_BITS`.
    """
    codecs = fit_codecs(X, widths)
    check_row_bits(int(codecs.width.sum()))
    return codecs


# --------------------------------------------------------------------------
# bits
# --------------------------------------------------------------------------
class Bits(NamedTuple):
    """The rows of a table as bits (stage 2) and what Algorithm 1 reads of them.

    Attributes
    ----------
    codes : (n, d)
        Column codes of the ``n`` original rows.
    words : (N, ceil(l_t / 64)) uint64
        The ``N`` rows packed, most significant bit first (``N = n``, or
        ``n + m`` after :func:`add_condensed_rows`).
    T : (l_t, ceil(N / 64)) uint64
        Their transposed bits.
    counts : (l_t,) int64
        Set bits per position over the ``N`` rows.
    entropy : (l_t,) float64
        Per-position entropy of the ``n`` original rows (Eq. 6).
    """

    codes: np.ndarray
    words: np.ndarray
    T: np.ndarray
    counts: np.ndarray
    entropy: np.ndarray


def transpose(words: np.ndarray, l_t: int) -> np.ndarray:
    """The bit lines of packed rows (none for rows of no bits).

    Parameters
    ----------
    words : (N, ceil(l_t / 64)) uint64
        Packed rows.
    l_t : int
        Bits per row.

    Returns
    -------
    (l_t, ceil(N / 64)) uint64
    """
    return _bits._transpose_bits(words, l_t) if l_t else np.zeros((0, (len(words) + 63) // 64), np.uint64)


def encode_bits(X: np.ndarray, codecs: Codecs) -> Bits:
    """Stage 2: the table's rows encoded, packed and transposed, with their bit counts and entropies.

    Parameters
    ----------
    X : array
        The table.
    codecs : Codecs
        Its codecs (stage 1).

    Returns
    -------
    Bits
    """
    n = X.shape[0]
    widths = codecs.width
    l_t = int(widths.sum())
    codes = encode_columns(X, codecs, check=False)
    words = _bits._pack_codes(codes, widths, _bits.words_per_row(l_t))
    T = transpose(words, l_t)
    counts = _bits._position_counts(T, 0, n)
    return Bits(codes, words, T, counts, _bits.entropy(counts, n))


# --------------------------------------------------------------------------
# clusters
# --------------------------------------------------------------------------
class Clusters(NamedTuple):
    """The clustering phase's result (stage 3).

    Attributes
    ----------
    positions : (beta,) int64
        The clustering bit positions (empty: no clustering).
    labels : (n,) int64 or None
        Every row's cluster, numbered by first occurrence.
    means : (g, d) float64 or None
        The clusters' mean rows (float64 sums in row order).
    weights : (g,) int64
        Cluster sizes.
    stats : gedenb.exact_stats.CondensedStats or None
        The exact statistics (:func:`exact_statistics`).
    ccodes : (m, d) or None
        Codes of the condensed rows stored (:func:`add_condensed_rows`); None when none are.
    """

    positions: np.ndarray
    labels: np.ndarray | None
    means: np.ndarray | None
    weights: np.ndarray
    stats: object = None
    ccodes: np.ndarray | None = None

    @property
    def m(self) -> int:
        """Condensed rows stored."""
        return 0 if self.ccodes is None else int(self.ccodes.shape[0])


def no_clusters() -> Clusters:
    """Stage 3 skipped (``beta=None``): no clustering bits, no clusters."""
    return Clusters(np.zeros(0, dtype=np.int64), None, None, np.zeros(0, dtype=np.int64))


def cluster_rows(X: np.ndarray, bits: Bits, codecs: Codecs, beta: int, columns=None, rule=None) -> Clusters:
    """Stage 3: the clustering bits, every row's cluster, the clusters' means and sizes.

    Parameters
    ----------
    X : array
        The table.
    bits : Bits
        Its bits (stage 2, the ``n`` original rows).
    codecs : Codecs
        Its codecs.
    beta : int
        Clustering bits.
    columns : sequence of int or str, optional
        ``cluster_columns`` of :func:`gedenb.compress`.
    rule : callable, optional
        ``cluster_rule`` of :func:`gedenb.compress`.

    Returns
    -------
    Clusters
        Without statistics and condensed rows.
    """
    positions = clustering_bits(bits.entropy, codecs.width, beta, columns, rule, X.dtype.names)
    labels, groups = _bits._group_by_positions(bits.T, positions, X.shape[0])
    means, weights = centroids(X, labels, int(groups))
    return Clusters(positions, labels, means, weights)


def exact_statistics(X: np.ndarray, bits: Bits, codecs: Codecs, clusters: Clusters, targets: tuple, task: str,
                     frame, stored: bool):
    """Stage 3, continued: the exact cluster statistics (:mod:`gedenb.exact_stats`), the task checked.

    Parameters
    ----------
    X : array
        The table.
    bits : Bits
        Its bits (the codes are read).
    codecs : Codecs
        Its codecs.
    clusters : Clusters
        From :func:`cluster_rows`.
    targets : tuple of int
        Physical target columns.
    task : {"auto", "regression", "classification"}
        As given to :func:`gedenb.compress`.
    frame : gedenb.frames.FrameSchema or None
        The table's frame schema.
    stored : bool
        False in the storage-constrained mode: only the targets and the task
        are kept (the statistics are recomputed from the rows).

    Returns
    -------
    gedenb.exact_stats.CondensedStats
    """
    d = codecs.width.shape[0]
    categorical = set() if frame is None else {c.field for c in frame.columns if c.storage != "plain"}
    task = _exact.resolve_task(X, bits.codes, codecs, targets, task, categorical)
    if task == "classification" and target_fields(frame, targets) != set(targets):
        raise ValueError("the classification target has nulls; drop those rows first (or use "
                         "task='regression')")
    if not stored:
        return _exact.CondensedStats(np.zeros((0, d)), np.zeros((0, d), np.int64), np.zeros((0, d), np.int64),
                                     targets, task)
    return _exact.cluster_stats(X, bits.codes, codecs, clusters.labels, clusters.weights.size, clusters.weights,
                                targets, task)


def add_condensed_rows(bits: Bits, clusters: Clusters, codecs: Codecs, dtype) -> tuple:
    """Stage 3, last: the clusters' means, rounded onto the codec grid, as ``m`` more rows.

    Parameters
    ----------
    bits : Bits
        The bits of the ``n`` original rows.
    clusters : Clusters
        From :func:`cluster_rows`.
    codecs : Codecs
        The table's codecs.
    dtype : numpy.dtype
        The table's dtype.

    Returns
    -------
    bits : Bits
        Of the ``n + m`` rows (``codes`` and ``entropy`` still those of the original rows).
    clusters : Clusters
        With ``ccodes``, the codes of the condensed rows.
    """
    n = bits.words.shape[0]
    l_t = int(codecs.width.sum())
    ccodes = encode_values(clusters.means, codecs, dtype)
    words = np.concatenate([bits.words, _bits._pack_codes(ccodes, codecs.width, bits.words.shape[1])])
    check_rows(words.shape[0])
    T = transpose(words, l_t)
    counts = bits.counts + _bits._position_counts(T, n, words.shape[0])
    return bits._replace(words=words, T=T, counts=counts), clusters._replace(ccodes=ccodes)


def section_bytes(frame, clusters: Clusters, codecs: Codecs, dtype) -> tuple:
    """Sections FRAM and LERN: parameters too, since Eq. 1 counts every byte the file stores.

    Parameters
    ----------
    frame : gedenb.frames.FrameSchema or None
        The table's frame schema.
    clusters : Clusters
        The clustering phase's result.
    codecs : Codecs
        The table's codecs.
    dtype : numpy.dtype
        The table's dtype.

    Returns
    -------
    frame_bytes, learning_bytes : bytes
        Empty where the table has no such section.
    """
    frame_bytes = b"" if frame is None else frame.to_bytes()
    if clusters.stats is None:
        return frame_bytes, b""
    m = clusters.m
    grid = encode_columns(decode_codes(clusters.ccodes, codecs, dtype), codecs, check=False) if m else None
    return frame_bytes, _exact.stats_to_bytes(clusters.stats, grid, codecs, clusters.weights, stored=bool(m))


# --------------------------------------------------------------------------
# base search
# --------------------------------------------------------------------------
class Bases(NamedTuple):
    """The base search's result (stage 4).

    Attributes
    ----------
    mask : (l_t,) bool
        The base positions.
    n_bases : int
    labels : (n + m,) int64
        Every row's base ID, numbered by first occurrence.
    sizes : int64
        The size after each tried addition (Eq. 1, or the coded size).
    costs : object
        The coded search's context costs (:func:`gedenb.entropy.deviations.compress_deviations`), else None.
    predict : gedenb.entropy.predict.Prediction or None
        The row transform kept (entropy coding only).
    words : (n + m, ceil(l_t / 64)) uint64
        The packed rows the base was chosen on (transformed codes with ``predict``).
    codes : (n + m, d) uint64 or None
        Entropy coding: their column codes.
    """

    mask: np.ndarray
    n_bases: int
    labels: np.ndarray
    sizes: np.ndarray
    costs: object = None
    predict: object = None
    words: np.ndarray | None = None
    codes: np.ndarray | None = None


def search_bases(bits: Bits, clusters: Clusters, codecs: Codecs, dtype, tau: int, s_params: int,
                 coding: str = "raw", image_shape=None) -> Bases:
    """Stage 4: Algorithm 1's greedy base search, under Eq. 1 or (entropy coding) the coded size.

    Parameters
    ----------
    bits : Bits
        Of the ``n + m`` rows (:func:`add_condensed_rows`).
    clusters : Clusters
        The clustering phase's result (its condensed rows' codes are read).
    codecs : Codecs
        The table's codecs.
    dtype : numpy.dtype
        The table's dtype.
    tau : int
        The plateau threshold.
    s_params : int
        ``S_params`` (:func:`gedenb.compressed.stored_params_bits`).
    coding : {"raw", "entropy"}, default "raw"
        The coding the size is of.
    image_shape : tuple, optional
        Entropy coding of images: their shape, checked
        (:func:`gedenb.entropy.image_models.check_image_shape`).

    Returns
    -------
    Bases
    """
    m = clusters.m
    n = bits.words.shape[0] - m
    if coding != "entropy":
        mask, n_b, labels, sizes = greedy_base_selection(bits.T, bits.counts, bits.entropy, n, m, tau, s_params)
        return Bases(mask, n_b, labels, sizes, words=bits.words)
    codes = np.concatenate([bits.codes, clusters.ccodes]) if m else bits.codes
    codes = np.ascontiguousarray(codes, dtype=np.uint64)
    found = Bases(*_fitting.greedy_base_selection(bits.T, bits.counts, bits.entropy, codes, codecs.width, n, m, tau,
                                                 s_params, image_shape), words=bits.words, codes=codes)
    pred = _predict.fit(codes, codecs, dtype, n) if image_shape is None else None
    if pred is None:
        return found
    return _with_prediction(found, pred, codecs, n, m, tau, s_params)


def _with_prediction(found: Bases, pred, codecs: Codecs, n: int, m: int, tau: int, s_params: int) -> Bases:
    """The base search on the codes transformed by ``pred``, kept only if the table is smaller with it (its
    section PRED included)."""
    widths = codecs.width
    tcodes = _predict.forward(found.codes, codecs, pred)
    twords = _bits._pack_codes(tcodes, widths, found.words.shape[1])
    tT = _bits._transpose_bits(twords, int(widths.sum()))
    tcounts = _bits._position_counts(tT, 0, n + m)
    tH = _bits.entropy(_bits._position_counts(tT, 0, n), n)
    got = _fitting.greedy_base_selection(tT, tcounts, tH, tcodes, widths, n, m, tau, s_params + 8 * pred.nbytes, None)
    if got[3].min() < found.sizes.min():
        return Bases(*got, predict=pred, words=twords, codes=tcodes)
    return found


# --------------------------------------------------------------------------
# layout and coding
# --------------------------------------------------------------------------
@njit
def _first_rows_kernel(labels, n_b):
    first = np.full(n_b, -1, dtype=np.int64)
    for i in range(labels.shape[0]):
        if first[labels[i]] < 0:
            first[labels[i]] = i
    return first


def base_table(found: Bases, widths: np.ndarray) -> tuple:
    """Stage 5: the record layout and the bases' bit stream.

    Parameters
    ----------
    found : Bases
        The base search's result.
    widths : (d,) int
        Column widths.

    Returns
    -------
    layout : Layout
    bases : uint64 bit stream
        The ``n_b`` bases, each the base bits of its first row.
    """
    layout: Layout = make_layout(widths, found.mask, found.n_bases)
    first = _first_rows_kernel(found.labels, found.n_bases)
    return layout, gather_records(found.words, first, first, 0, layout.base_runs)


def code_rows(found: Bases, layout: Layout, bases: np.ndarray, codecs: Codecs, dtype, coding: str = "raw",
              image_shape=None) -> tuple:
    """Stage 6: every row's record, and with entropy coding its rANS-coded deviations.

    Parameters
    ----------
    found : Bases
        The base search's result.
    layout : Layout
        From :func:`base_table`.
    bases : uint64 bit stream
        From :func:`base_table`.
    codecs : Codecs
        The table's codecs.
    dtype : numpy.dtype
        The table's dtype.
    coding : {"raw", "entropy"}, default "raw"
        Raw: fixed-width records of base ID and deviation bits.  Entropy:
        records of the base IDs only.
    image_shape : tuple, optional
        Entropy coding of images: their shape.

    Returns
    -------
    records : uint64 bit stream
    coded : gedenb.entropy.deviations.EntropyCoded or None
    """
    rows = np.arange(found.labels.shape[0], dtype=np.int64)
    if coding != "entropy":
        return gather_records(found.words, rows, found.labels, layout.id_bits, layout.dev_runs), None
    records = gather_records(found.words, rows, found.labels, layout.id_bits, np.zeros((0, 2), dtype=np.int64))
    coded = _deviations.compress_deviations(found.codes, codecs, found.mask, image_shape, bases, layout, found.n_bases,
                                        dtype, found.costs)
    return records, coded
