"""Training sets for scikit-learn from the exact condensed samples of a compressed table.

The exact per-cluster statistics (means skipping NaN, NaN counts, class
counts of a classification target) are computed at compression and stored
in section LERN (:mod:`gedenb.exact_stats`).  :func:`learning_set` turns
them into ``(X, y, sample_weight)`` for scikit-learn estimators: one row per
cluster with its size as the weight, or for a classification target one row
per (cluster, class) with the class's count in the cluster.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .compressed import Compressed
from .encode import column_dtypes
from .decode import cluster_stats_of, frame_schema
from .exact_stats import TASKS, CondensedStats, cluster_stats
from .inputs import column_resolver

__all__ = ["CondensedStats", "LearningSet", "TASKS", "cluster_stats", "learning_set"]


class LearningSet(NamedTuple):
    """A training set from the condensed samples, ready for ``estimator.fit(X, y, sample_weight=w)``.

    Attributes
    ----------
    X : (k, p) float64
        Features: exact cluster means.
    y : (k,)
        Regression: the target's exact cluster means (float64).
        Classification: class labels (the target's values: bools, integers,
        or a DataFrame's strings / categories), one row per (cluster, class).
    sample_weight : (k,) float64
        Rows behind each training row (cluster sizes, or the count of a class
        in its cluster); they sum to the rows used.
    feature_names : tuple of str
    target_name : str
    task : {"regression", "classification"}
    classes : ndarray or None
        Classification: every class, in the order of ``np.unique`` of the
        target's values.
    """

    X: np.ndarray
    y: np.ndarray
    sample_weight: np.ndarray
    feature_names: tuple
    target_name: str
    task: str
    classes: object = None


_NAN_POLICIES = ("raise", "drop", "keep")


def _source(source):
    """A Compressed from a Compressed or a reader of a single-table file."""
    if isinstance(source, Compressed):
        return source
    c = getattr(source, "compressed", None)
    if isinstance(c, Compressed):
        return c
    raise TypeError(f"expected a gedenb.Compressed or a gedenb.Reader, got {type(source).__name__}")


def learning_set(source, target=None, *, features=None, nan: str = "raise") -> LearningSet:
    """Training rows from the condensed samples of a compressed table, for scikit-learn and friends.

    Parameters
    ----------
    source : Compressed or Reader
        A table compressed with clustering (``beta``); its exact cluster
        statistics are used (``exact_condensed=True``, the default).
    target : int or str, optional
        The column to predict; default: the (first) target named at
        compression.  The target named at compression as a classification
        target gives one row per (cluster, class), weighted by the class's
        count in the cluster; any other column gives one row per cluster with
        the column's exact mean as ``y``.
    features : sequence of int or str, optional
        Feature columns; default every column but the targets named at
        compression and ``target`` (for a DataFrame: its numeric and bool
        columns; null masks, string and categorical columns are left out).
    nan : {"raise", "drop", "keep"}, default "raise"
        What to do with training rows whose features or target are missing
        (a cluster whose values of a column are all NaN or null): raise a
        ValueError saying how many there are, leave them out, or keep them
        (for estimators that accept NaN).  Means skip NaN and nulls, so a
        cluster with some values present always has a mean.

    Returns
    -------
    LearningSet

    Raises
    ------
    ValueError
        No clustering, no exact statistics (``exact_condensed=False`` or a
        file of gedenb < 0.2), no target, unknown columns, or missing values
        with ``nan="raise"``.

    Examples
    --------
    >>> import numpy as np, gedenb
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 8, size=(1000, 3)).astype(np.float64)
    >>> X[:, 2] = 2 * X[:, 0] - X[:, 1] + rng.normal(size=1000)
    >>> ls = gedenb.learning_set(gedenb.compress(X, beta=6, target=2))
    >>> ls.feature_names, ls.target_name, ls.task, int(ls.sample_weight.sum())
    (('x0', 'x1'), 'x2', 'regression', 1000)
    """
    if nan not in _NAN_POLICIES:
        raise ValueError(f"nan must be one of {_NAN_POLICIES}, got {nan!r}")
    c = _source(source)
    if c.beta == 0:
        raise ValueError("this table was compressed without clustering (beta=None): no condensed samples")
    stats, w = cluster_stats_of(c)
    if stats is None:
        raise ValueError("this table keeps no exact cluster statistics (compressed with exact_condensed=False, "
                         "or by gedenb < 0.2); compress it again with gedenb.compress(..., target=...)")
    frame = frame_schema(c) if c.frame is not None else None
    logical, resolve = _naming(c, frame)
    if target is None:
        if not stats.targets:
            raise ValueError("no target: name one, learning_set(c, target=...), or compress with target=...")
        t = stats.targets[0]
    else:
        t = resolve(target, "target")
    if features is None:
        skip = set(stats.targets) | {t}
        candidates = [col.field for col in frame.columns if col.storage == "plain"] if frame is not None \
            else list(range(c.d))
        feats = [j for j in candidates if j not in skip]
    else:
        feats = [resolve(v, "features") for v in features]
        if t in feats:
            raise ValueError("features must not include the target")
    if not feats:
        raise ValueError("no feature columns are left")
    w = np.asarray(w, dtype=np.int64)
    means = _present_means(stats, frame, w)
    Xf = means[:, feats]
    feature_names = tuple(logical(j) for j in feats)
    if stats.task == "classification" and t == stats.targets[0]:
        counts = stats.class_counts
        g, k = np.nonzero(counts)
        labels = _class_labels(stats.classes, t, c, frame)
        X, y, sw = Xf[g], labels[k], counts[g, k].astype(np.float64)
        bad = np.isnan(X).any(axis=1)
        task, classes = "classification", labels
    else:
        X, y, sw = Xf, means[:, t], w.astype(np.float64)
        bad = np.isnan(X).any(axis=1) | np.isnan(y)
        task, classes = "regression", None
    if bad.any() and nan != "keep":
        if nan == "raise":
            cols = [feature_names[i] for i in np.flatnonzero(np.isnan(X).any(axis=0))]
            if task == "regression" and np.isnan(y).any():
                cols.append(logical(t))
            raise ValueError(f"{int(bad.sum())} of {len(bad)} training rows ({sw[bad].sum() / sw.sum():.1%} of the "
                             f"weight) have missing values (every value of their cluster is NaN or null) in "
                             f"{', '.join(cols)}; pass nan='drop' to leave them out, or nan='keep' for an estimator "
                             "that accepts NaN")
        X, y, sw = X[~bad], y[~bad], sw[~bad]
    return LearningSet(np.ascontiguousarray(X), y, sw, feature_names, logical(t), task, classes)


def _naming(c, frame):
    """``logical(j)`` (a physical column's user-facing name) and ``resolve`` (a name or index to the column)."""
    names = c.dtype.names
    if frame is not None:
        by_field = {col.field: col.name for col in frame.columns}

        def logical(j):
            return by_field.get(j, names[j])
    elif names is not None:
        def logical(j):
            return names[j]
    else:
        def logical(j):
            return f"x{j}"
    return logical, column_resolver(np.empty(0, dtype=c.dtype) if names is not None else np.empty((0, c.d)), frame, c.d)


def _present_means(stats: CondensedStats, frame, w: np.ndarray) -> np.ndarray:
    """Means over the present values: a DataFrame column with nulls stores 0 under them, so its mean over
    the rest is ``mean * w / (w - nulls)`` (the null count is its mask's mean times ``w``); NaN where a
    cluster has no value present."""
    means = stats.means.copy()
    if frame is not None:
        for col in frame.columns:
            if col.nulls >= 0:
                nulls = np.rint(stats.means[:, col.nulls] * w).astype(np.int64)
                with np.errstate(invalid="ignore", divide="ignore"):
                    means[:, col.field] = np.where(nulls < w, stats.means[:, col.field] * w / (w - nulls), np.nan)
    return means


def _class_labels(classes: np.ndarray, t: int, c, frame) -> np.ndarray:
    """The class values as labels: a DataFrame's strings or categories, bools, integers."""
    if frame is not None:
        col = next((col for col in frame.columns if col.field == t), None)
        if col is not None and col.storage != "plain":
            values = frame.dictionaries[col.dictionary].to_pylist()
            return np.array([values[int(v)] for v in classes], dtype=object)
    dt = column_dtypes(c.dtype, c.d)[t]
    if dt == np.bool_:
        return classes.astype(bool)
    if dt.kind in "iu":
        return classes.astype(np.int64)
    return classes
