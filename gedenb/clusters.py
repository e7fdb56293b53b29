"""The clustering phase of Algorithm 1 (lines 4-8): clustering bits and cluster centroids.

:func:`clustering_bits` chooses the ``beta`` bit positions the rows are
grouped on; :func:`centroids` sums every group's rows in row order (the
float64 additions that :func:`gedenb.compress`, :func:`gedenb.dask.compress`
and the storage-constrained recomputation of :mod:`gedenb.decode` all
make, so their condensed samples agree bit for bit).
"""

from __future__ import annotations

import numpy as np

from ._numba import njit
from .encode import _dtype_groups, _field_block

__all__ = ["centroids", "cluster_positions", "clustering_bits"]


def cluster_positions(entropy: np.ndarray, widths: np.ndarray, beta: int) -> np.ndarray:
    """The ``beta`` clustering bit positions (Algorithm 1, lines 4-6).

    Level 0 holds the most significant non-constant bit of every column,
    level 1 the next non-constant bit below it, and so on.  Levels are taken
    in turn, each sorted by decreasing entropy (ties: lower position first),
    until ``beta`` positions are chosen.

    Parameters
    ----------
    entropy : (l_t,) float64
        Per-position entropy (Eq. 6).
    widths : (d,) int
        Column widths.
    beta : int
        Positions wanted, at most the non-constant ones.
    """
    entropy = np.asarray(entropy, dtype=np.float64)
    widths = np.asarray(widths, dtype=np.int64)
    starts = np.concatenate(([0], np.cumsum(widths)[:-1]))
    per_col = [np.flatnonzero(entropy[s:s + w] > 0) + s for s, w in zip(starts.tolist(), widths.tolist())]
    available = sum(len(p) for p in per_col)
    if not 1 <= beta <= available:
        raise ValueError(
            f"beta={beta} must be between 1 and the number of non-constant bit positions ({available})"
        )
    chosen: list[int] = []
    level = 0
    while len(chosen) < beta:
        lv = np.asarray([p[level] for p in per_col if len(p) > level], dtype=np.int64)
        lv = lv[np.lexsort((lv, -entropy[lv]))]
        chosen.extend(lv[: beta - len(chosen)].tolist())
        level += 1
    return np.asarray(chosen, dtype=np.int64)


@njit
def _add_group_sums(X, labels, sums, counts):
    """Add rows ``X`` to their groups' sums and counts, in row order."""
    n, d = X.shape
    for i in range(n):
        g = labels[i]
        counts[g] += 1
        for j in range(d):
            sums[g, j] += X[i, j]


def _add_centroid_sums(X: np.ndarray, labels: np.ndarray, sums: np.ndarray, counts: np.ndarray) -> None:
    """:func:`_add_group_sums` for any table (a structured one: the fields of one dtype at a time; float16
    summed as float32)."""
    if X.dtype.names is None:
        _add_group_sums(X.astype(np.float32) if X.dtype == np.float16 else X, labels, sums, counts)
        return
    n_before = counts.copy()
    for _, cols, names in _dtype_groups(X.dtype):
        block = _field_block(X, names)
        part = np.ascontiguousarray(sums[:, cols])
        counts[:] = n_before
        _add_group_sums(block.astype(np.float32) if block.dtype == np.float16 else block, labels, part, counts)
        sums[:, cols] = part


def centroids(X: np.ndarray, labels: np.ndarray, m: int):
    """The mean row of every group and the group sizes.

    Parameters
    ----------
    X : table
        Rows (homogeneous or structured; float16 summed as float32).
    labels : (n,) int64
        The group of every row, in ``[0, m)``.
    m : int
        Number of groups.

    Returns
    -------
    means : (m, d) float64
        Sums in row order divided by the sizes (NaN for an empty group).
    counts : (m,) int64
    """
    d = len(X.dtype.names) if X.dtype.names is not None else X.shape[1]
    sums = np.zeros((m, d), dtype=np.float64)
    counts = np.zeros(m, dtype=np.int64)
    _add_centroid_sums(X, labels, sums, counts)
    with np.errstate(invalid="ignore"):
        return sums / counts[:, None], counts



def clustering_bits(entropy: np.ndarray, widths: np.ndarray, beta: int, columns=None, rule=None,
                    names=None) -> np.ndarray:
    """The ``beta`` clustering bit positions of a table (``compress``'s ``cluster_columns`` and ``cluster_rule``).

    Parameters
    ----------
    entropy : (l_t,) float64
        Per-position entropy of the rows (Eq. 6).
    widths : (d,) int
        Column widths.
    beta : int
        Positions wanted.
    columns : sequence of int or str, optional
        Columns whose bits may be chosen (default all); field ``names``
        allowed.  The entropy of the others is passed to ``rule`` as 0.
    rule : callable, optional
        ``rule(entropy, widths, beta) -> positions``; default
        :func:`cluster_positions`.  What it returns is checked.
    names : tuple of str, optional
        Field names of a structured table.

    Returns
    -------
    (beta,) int64
    """
    widths = np.asarray(widths)
    return _clustering_bits(rule, _mask_columns(entropy, widths, columns, widths.shape[0], names), widths, beta)


def _clustering_bits(rule, H: np.ndarray, widths: np.ndarray, beta: int) -> np.ndarray:
    """Positions from ``rule`` (default Algorithm 1), checked before use."""
    if rule is None:
        return cluster_positions(H, widths, beta)
    if not callable(rule):
        raise TypeError(f"cluster_rule must be callable, got {type(rule).__name__}")
    pos = np.asarray(rule(H, widths, beta))
    if pos.ndim != 1 or pos.size != beta or (pos.size and pos.dtype.kind not in "iu"):
        raise ValueError(f"cluster_rule must return {beta} integer bit positions, got shape {pos.shape}")
    pos = pos.astype(np.int64)
    if pos.size and (pos.min() < 0 or pos.max() >= H.size or np.unique(pos).size != pos.size):
        raise ValueError("cluster_rule returned positions out of range or repeated")
    return pos


def _mask_columns(H: np.ndarray, widths: np.ndarray, columns, d: int, names=None) -> np.ndarray:
    """Entropy with the positions of columns outside ``columns`` zeroed (field names allowed with ``names``)."""
    if columns is None:
        return H
    cols = list(columns) if not isinstance(columns, np.ndarray) else columns
    if names is not None and any(isinstance(v, str) for v in cols):
        unknown = [v for v in cols if isinstance(v, str) and v not in names]
        if unknown:
            raise ValueError(f"cluster_columns: no field named {unknown[0]!r} (fields: {', '.join(names)})")
        cols = [names.index(v) if isinstance(v, str) else v for v in cols]
    cols = np.asarray(cols)
    if cols.ndim != 1 or cols.size == 0 or cols.dtype.kind not in "iu":
        raise TypeError("cluster_columns must be a non-empty sequence of column indices"
                        + (" or field names" if names is not None else ""))
    if cols.min() < -d or cols.max() >= d:
        raise ValueError(f"cluster_columns must lie in [-{d}, {d})")
    keep = np.zeros(d, dtype=bool)
    keep[cols % d] = True
    return np.where(np.repeat(keep, widths), H, 0.0)

