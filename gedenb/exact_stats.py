"""Exact cluster statistics: means, NaN counts, class counts, and their section LERN.

The clustering phase of Algorithm 1 groups the ``n`` rows into ``m``
clusters; a cluster's condensed sample is the mean of its rows.  The paper
stores it as an extra row of the table, which rounds it onto each column's
codec grid (a 0/1 label becomes the cluster's majority, a mean of decimals
loses digits).  gedenb keeps the exact statistics beside those rows
(section LERN, docs/FORMAT.md):

* **exact means** of every column: for integer and fixed-point columns the
  sum of the cluster's codes, stored as its small difference from the
  stored (rounded) row times the cluster size, so the mean is exact to
  float64 rounding; for IEEE-754 columns the float64 mean itself;
* **missing values**: means of float columns skip NaN, with the number of
  NaN per cluster and column kept (a cluster whose values are all NaN has a
  NaN mean); nulls of a DataFrame column are skipped the same way;
* **class counts** of a classification target: how many rows of each class
  each cluster holds, so a classifier trains on one row per (cluster,
  class) with the count as its weight -- exact for the log-loss of a model
  of the features given the centroid.

:mod:`gedenb.learning` turns them into training sets.
"""

from __future__ import annotations

import json
import struct
from typing import NamedTuple

import numpy as np

from . import bits as _bits
from ._numba import njit
from .encode import BIN, DEC, IEEE, INT, Codecs, _signed_offset, column_dtypes
from .errors import FormatError

__all__ = ["CondensedStats", "StatsAccumulator", "TASKS", "cluster_stats", "resolve_task", "stats_from_bytes",
           "stats_head", "stats_to_bytes"]

#: ``task=`` of :func:`gedenb.compress`.
TASKS = ("auto", "regression", "classification")
#: A target with more distinct values than this is not taken for classes by ``task="auto"``.
AUTO_MAX_CLASSES = 64
#: The most classes a classification target may have.
MAX_CLASSES = 4096

_MAGIC = b"GLRN"
_VERSION = 1
_HEAD = struct.Struct("<4sII")  # magic, version, JSON bytes


class CondensedStats(NamedTuple):
    """Exact per-cluster statistics (section LERN).

    Attributes
    ----------
    means : (m, d) float64
        Exact cluster means of every column (NaN skipped).
    missing : (m, d) int64
        NaN values per cluster and column (zeros for columns without NaN).
    targets : tuple of int
        The target columns named at compression (empty: none).
    task : str
        ``"regression"``, ``"classification"``, or ``""`` without a target.
    classes : (K,) float64
        Classification: the target's class values (physical values; for a
        DataFrame's string or categorical target, its dictionary codes).
    class_counts : (m, K) int64
        Classification: rows of each class in each cluster.
    code_sums : (m, d) int64
        Sums of the cluster's codes of the integer and fixed-point columns
        whose sums fit 62 bits (the exact means derive from them); 0 in the
        other columns.
    """

    means: np.ndarray
    missing: np.ndarray
    code_sums: np.ndarray
    targets: tuple = ()
    task: str = ""
    classes: np.ndarray = np.zeros(0)
    class_counts: np.ndarray = np.zeros((0, 0), dtype=np.int64)


# --------------------------------------------------------------------------
# statistics at compression
# --------------------------------------------------------------------------
@njit
def _add_code_sums(codes, labels, out):
    """Add every column's codes per cluster to ``out`` (int64; callers bound the sums below 2**62)."""
    n, d = codes.shape
    for i in range(n):
        g = labels[i]
        for j in range(d):
            out[g, j] += np.int64(codes[i, j])


@njit
def _add_nan_sums(values, labels, sums, nans):
    """Add the non-NaN values and count the NaN per cluster and column, row by row."""
    n, k = values.shape
    for i in range(n):
        g = labels[i]
        for j in range(k):
            v = values[i, j]
            if v != v:
                nans[g, j] += 1
            else:
                sums[g, j] += v


@njit
def _add_counts(cls, labels, out):
    for i in range(cls.shape[0]):
        out[labels[i], cls[i]] += 1


def _grown(a: np.ndarray, rows: int, cols: int | None = None) -> np.ndarray:
    """``a`` zero-extended to at least ``rows`` rows (and ``cols`` columns)."""
    r, c = a.shape
    cols = c if cols is None else cols
    if r >= rows and c >= cols:
        return a
    out = np.zeros((max(rows, r), max(cols, c)), dtype=a.dtype)
    out[:r, :c] = a
    return out


def _exact_columns(codecs: Codecs, n: int) -> np.ndarray:
    """Columns whose means come from integer code sums: integer / fixed-point codecs whose sums over ``n`` rows
    (a bound of any cluster's) fit 62 bits."""
    return (codecs.kind != IEEE) & (codecs.width.astype(np.int64) + int(max(n, 1)).bit_length() <= 62)


def _affine_means(sums: np.ndarray, weights: np.ndarray, codecs: Codecs, dtype, cols: np.ndarray) -> np.ndarray:
    """Means of the values of integer / fixed-point columns ``cols`` from their code sums."""
    dts = column_dtypes(dtype, len(codecs.kind))
    out = np.empty((sums.shape[0], cols.size), dtype=np.float64)
    w = weights.astype(np.int64)
    for i, j in enumerate(cols.tolist()):
        kind = int(codecs.kind[j])
        o = _signed_offset(codecs.offset[j], dts[j] if kind == INT else np.dtype(np.int64))
        # mean key = o + S / w = (o + S // w) + (S % w) / w: the whole part exactly (Python ints: a uint64
        # column's keys exceed int64), so that a large offset does not cancel the digits of the mean
        q, r = np.divmod(sums[:, i], w)
        whole = np.array([float(o + v) for v in q.tolist()], dtype=np.float64)
        key = whole + r.astype(np.float64) / w
        if kind == DEC:
            key = key / 10.0 ** int(codecs.scale[j])
        elif kind == BIN:
            key = np.ldexp(key, -int(codecs.scale[j]))
        out[:, i] = key
    return out


def _float_block(X: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Columns ``cols`` of a table as (n, k) float64 (NaN kept)."""
    with np.errstate(invalid="ignore"):
        if X.dtype.names is None:
            return np.ascontiguousarray(X[:, cols], dtype=np.float64)
        return np.stack([X[X.dtype.names[j]].astype(np.float64) for j in cols.tolist()], axis=1)


def resolve_task(X: np.ndarray, codes: np.ndarray, codecs: Codecs, targets: tuple, task: str,
                 categorical: set) -> str:
    """The task of ``targets``: ``task`` checked, or for ``"auto"`` chosen from the target column.

    Parameters
    ----------
    X : array
        The table.
    codes : (n, d)
        Its column codes.
    codecs : Codecs
        Its codecs.
    targets : tuple of int
        Physical target columns (empty: none).
    task : {"auto", "regression", "classification"}
        As given to :func:`gedenb.compress`.
    categorical : set of int
        Columns holding a DataFrame's dictionary codes (strings, categories).

    Returns
    -------
    str
        ``"regression"``, ``"classification"``, or ``""`` without a target.
    """
    if not targets:
        if task != "auto":
            raise ValueError(f"task={task!r} needs a target")
        return ""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    t = targets[0]
    if task == "auto":
        if len(targets) > 1:
            return "regression"
        dt = column_dtypes(X.dtype, len(codecs.kind))[t]
        if t in categorical or dt == np.bool_:
            return "classification"
        values = np.unique(codes[:, t])
        if values.size <= AUTO_MAX_CLASSES:  # few distinct values, all whole numbers: classes
            v = _float_block(X, np.array([t]))[:, 0]
            with np.errstate(invalid="ignore"):
                if np.isfinite(v).all() and np.array_equal(v, np.rint(v)):
                    return "classification"
        return "regression"
    if task == "classification":
        if len(targets) != 1:
            raise ValueError("task='classification' takes exactly one target")
        v = _float_block(X, np.array([t]))[:, 0]
        with np.errstate(invalid="ignore"):
            if not (np.isfinite(v).all() and np.array_equal(v, np.rint(v))):
                raise ValueError("a classification target must hold whole numbers (classes), no NaN or infinity")
    return task


class StatsAccumulator:
    """The exact statistics of clusters, accumulated block of rows by block of rows (bounded memory; the
    same sums, in the same order, as one pass over all rows).

    ``add(X, codes, labels, m)`` adds rows ``X`` (their codes, their clusters' labels, ``m`` clusters so far);
    ``finish(weights)`` gives the :class:`CondensedStats`.
    """

    def __init__(self, codecs: Codecs, dtype, n: int, targets: tuple = (), task: str = ""):
        self.codecs, self.dtype, self.targets, self.task = codecs, np.dtype(dtype), tuple(targets), task
        d = len(codecs.kind)
        self.exact = _exact_columns(codecs, n)  # columns summed as integer codes (the table's n rows bound them)
        self.ecols, self.fcols = np.flatnonzero(self.exact), np.flatnonzero(~self.exact)
        self.code_sums = np.zeros((0, self.ecols.size), dtype=np.int64)
        self.float_sums = np.zeros((0, self.fcols.size), dtype=np.float64)
        self.nans = np.zeros((0, self.fcols.size), dtype=np.int64)
        self.d = d
        self.classes: dict = {}  # target code -> (column of counts, the class's value)
        self.counts = np.zeros((0, 0), dtype=np.int64)

    def add(self, X: np.ndarray, codes: np.ndarray, labels: np.ndarray, m: int) -> None:
        """Add a block of rows.

        Parameters
        ----------
        X : array
            The rows.
        codes : (k, d)
            Their column codes.
        labels : (k,) int
            Their clusters.
        m : int
            Clusters seen so far (every label is below it).
        """
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        if self.ecols.size:
            self.code_sums = _grown(self.code_sums, m)
            _add_code_sums(np.ascontiguousarray(codes[:, self.ecols]), labels, self.code_sums)
        if self.fcols.size:
            self.float_sums, self.nans = _grown(self.float_sums, m), _grown(self.nans, m)
            _add_nan_sums(_float_block(X, self.fcols), labels, self.float_sums, self.nans)
        if self.task == "classification":
            t = self.targets[0]
            values, first, inverse = np.unique(codes[:, t], return_index=True, return_inverse=True)
            cols = np.empty(values.size, dtype=np.int64)
            for i, v in enumerate(values.tolist()):
                if v not in self.classes:
                    if len(self.classes) >= MAX_CLASSES:
                        raise ValueError(f"the target has more than {MAX_CLASSES} classes (task='regression' for "
                                         "a numeric target)")
                    self.classes[v] = (len(self.classes), float(_float_block(X[first[i]:first[i] + 1],
                                                                             np.array([t]))[0, 0]))
                cols[i] = self.classes[v][0]
            self.counts = _grown(self.counts, m, len(self.classes))
            _add_counts(cols[inverse.ravel()], labels, self.counts)

    def finish(self, weights: np.ndarray) -> CondensedStats:
        """The statistics of the rows added.

        Parameters
        ----------
        weights : (m,) int
            Cluster sizes.
        """
        weights = np.asarray(weights, dtype=np.int64)
        m, d = weights.size, self.d
        means = np.empty((m, d), dtype=np.float64)
        missing = np.zeros((m, d), dtype=np.int64)
        code_sums = np.zeros((m, d), dtype=np.int64)
        if self.ecols.size:
            code_sums[:, self.ecols] = _grown(self.code_sums, m)[:m]
            means[:, self.ecols] = _affine_means(code_sums[:, self.ecols], weights, self.codecs, self.dtype,
                                                 self.ecols)
        if self.fcols.size:
            sums, nans = _grown(self.float_sums, m)[:m], _grown(self.nans, m)[:m]
            with np.errstate(invalid="ignore", divide="ignore"):
                means[:, self.fcols] = sums / (weights[:, None] - nans)
            missing[:, self.fcols] = nans
        classes, counts = np.zeros(0), np.zeros((0, 0), dtype=np.int64)
        if self.task == "classification":
            order = sorted(self.classes)  # by code: the order of np.unique over all rows
            cols = [self.classes[v][0] for v in order]
            classes = np.array([self.classes[v][1] for v in order], dtype=np.float64)
            counts = _grown(self.counts, m, len(order))[:m][:, cols]
        return CondensedStats(means, missing, code_sums, self.targets, self.task, classes, counts)


def cluster_stats(X: np.ndarray, codes: np.ndarray, codecs: Codecs, labels: np.ndarray, m: int,
                  weights: np.ndarray, targets: tuple = (), task: str = "") -> CondensedStats:
    """Exact statistics of the ``m`` clusters of ``X`` (``labels``: each row's cluster) in one pass.

    Parameters
    ----------
    X : array
        The table.
    codes : (n, d)
        Its column codes (:func:`gedenb.encode.encode_columns`).
    codecs : Codecs
        Its codecs.
    labels : (n,) int
        Every row's cluster.
    m : int
        Clusters.
    weights : (m,) int
        Cluster sizes.
    targets : tuple of int, default ()
        Physical target columns.
    task : str, default ""
        From :func:`resolve_task`.
    """
    acc = StatsAccumulator(codecs, X.dtype, int(np.sum(weights)), targets, task)
    acc.add(X, codes, labels, m)
    return acc.finish(weights)


# --------------------------------------------------------------------------
# section LERN
# --------------------------------------------------------------------------
def _zigzag(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.int64)
    return ((v << 1) ^ (v >> 63)).view(np.uint64)


def _unzigzag(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.uint64)
    return (u >> np.uint64(1)).view(np.int64) ^ -(u & np.uint64(1)).view(np.int64)


def _bitlen(u: np.ndarray) -> int:
    return int(u.max()).bit_length() if u.size else 0


def stats_to_bytes(stats: CondensedStats, grid: np.ndarray | None, codecs: Codecs, weights: np.ndarray,
                   stored: bool) -> bytes:
    """The LERN payload: a JSON head (targets, task, which columns are stored how, bit widths), then arrays,
    each ``u64 length | little-endian bytes | zero padding to 8``:

    * per exact column, its code sums minus ``weight * grid code`` (the stored rounded row; the whole sum
      when ``grid`` is None), zigzag-coded; packed in ``bitlen(w_g)`` bits for cluster ``g`` of ``w_g`` rows
      (a rounded mean is at most half a grid step off, so ``|residual| <= w_g / 2``), head entry -1, or
      where a residual does not fit that, all in the column's widest (head entry: that width);
    * the float64 means of the other columns;
    * per float column with NaN, its NaN counts, packed in ``bitlen(w_g)`` bits;
    * classification: the class values (float64) and the counts of classes ``0 .. K-2`` per cluster,
      each in ``bitlen(w_g)`` bits, cluster by cluster (the last class has the rest of the cluster).

    ``stored=False`` (the storage-constrained mode) writes the head only: the statistics are recomputed
    from the rows.

    Parameters
    ----------
    stats : CondensedStats
        The statistics.
    grid : (m, d) or None
        Codes of the stored condensed rows (None: sums stored whole).
    codecs : Codecs
        The table's codecs.
    weights : (m,) int
        Cluster sizes.
    stored : bool
        False: the head only.
    """
    meta = {"targets": list(stats.targets), "task": stats.task, "stored": bool(stored)}
    arrays = []
    if stored:
        exact = _exact_columns(codecs, int(weights.sum()))
        ecols, fcols = np.flatnonzero(exact), np.flatnonzero(~exact)
        meta["grid"] = grid is not None
        meta["exact_columns"] = ecols.tolist()
        meta["residual_bits"] = []
        per_cluster = _cluster_bits(weights)
        for j in ecols.tolist():
            base = grid[:, j].astype(np.int64) * weights if grid is not None else 0
            z = _zigzag(stats.code_sums[:, j] - base)
            if not (z >> per_cluster.astype(np.uint64)).any():
                meta["residual_bits"].append(-1)
                arrays.append(_bits.pack_varying(z, per_cluster))
            else:
                meta["residual_bits"].append(_bitlen(z))
                arrays.append(_bits.pack_fixed(z, meta["residual_bits"][-1]))
        meta["float_columns"] = fcols.tolist()
        meta["nan_columns"] = [int(j) for j in fcols if stats.missing[:, j].any()]
        if fcols.size:
            arrays.append(stats.means[:, fcols])
        for j in meta["nan_columns"]:
            arrays.append(_bits.pack_varying(stats.missing[:, j].astype(np.uint64), per_cluster))
        if stats.task == "classification":
            k = int(stats.classes.size)
            meta["n_classes"] = k
            arrays.append(stats.classes)
            arrays.append(_bits.pack_varying(stats.class_counts[:, :k - 1].astype(np.uint64).ravel(),
                                             np.repeat(per_cluster, k - 1)))
    head = json.dumps(meta, separators=(",", ":")).encode()
    out = [_HEAD.pack(_MAGIC, _VERSION, len(head)), head, b"\0" * (-(len(head) + _HEAD.size) % 8)]
    for a in arrays:
        a = np.asarray(a)
        raw = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()
        out += [struct.pack("<Q", len(raw)), raw, b"\0" * (-len(raw) % 8)]
    return b"".join(out)


def _cluster_bits(weights: np.ndarray) -> np.ndarray:
    """``bitlen(w_g)`` per cluster: the bits of a count, or of a zigzag residual, within a cluster of ``w_g``."""
    w = np.asarray(weights, dtype=np.int64)
    return np.array([int(v).bit_length() for v in w.tolist()], dtype=np.int64)


def stats_head(raw: bytes) -> tuple[dict, int]:
    """The LERN payload's JSON head (checked for shape) and where its arrays start.

    Parameters
    ----------
    raw : bytes
        The payload.
    """
    if len(raw) < _HEAD.size:
        raise FormatError("LERN: payload too short")
    magic, version, nhead = _HEAD.unpack_from(raw)
    if magic != _MAGIC:
        raise FormatError("LERN: bad magic bytes")
    if version != _VERSION:
        raise FormatError(f"LERN: version {version} is not supported (this gedenb reads {_VERSION})")
    if nhead > len(raw) - _HEAD.size:
        raise FormatError("LERN: head runs past the payload")
    try:
        meta = json.loads(raw[_HEAD.size:_HEAD.size + nhead])
        if not isinstance(meta, dict):
            raise ValueError("not an object")
        targets = tuple(int(t) for t in meta["targets"])
        task = str(meta["task"])
        stored = meta["stored"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise FormatError(f"LERN: malformed head ({e})") from None
    if task not in ("", "regression", "classification") or bool(targets) != bool(task) \
            or (task == "classification" and len(targets) != 1) or not isinstance(stored, bool):
        raise FormatError("LERN: targets and task disagree")
    meta["targets"], meta["task"] = targets, task
    pos = _HEAD.size + nhead
    return meta, pos + (-pos % 8)


def _arrays(raw: bytes, pos: int) -> list:
    out = []
    while pos < len(raw):
        if pos + 8 > len(raw):
            raise FormatError("LERN: array header past the payload")
        (nbytes,) = struct.unpack_from("<Q", raw, pos)
        pos += 8
        if nbytes > len(raw) - pos:
            raise FormatError("LERN: array runs past the payload")
        if any(raw[pos + nbytes:pos + nbytes + (-nbytes % 8)]):
            raise FormatError("LERN: padding bytes must be zero")
        out.append(raw[pos:pos + nbytes])
        pos += nbytes + (-nbytes % 8)
    return out


def stats_from_bytes(raw: bytes, codecs: Codecs, dtype, weights: np.ndarray, grid: np.ndarray | None,
                     d: int) -> CondensedStats | None:
    """Parse a stored LERN payload (``None`` for a head-only one); every length and index is checked.

    Parameters
    ----------
    raw : bytes
        The payload.
    codecs : Codecs
        The table's codecs.
    dtype : numpy.dtype
        The table's dtype.
    weights : (m,) int
        Cluster sizes.
    grid : (m, d) or None
        The codes of the stored condensed rows (required when the payload says it used them).
    d : int
        Columns.
    """
    meta, pos = stats_head(raw)
    if not meta["stored"]:
        return None
    m = weights.size
    arrays = iter(_arrays(raw, pos))

    def take(nbytes: int, what: str) -> bytes:
        try:
            b = next(arrays)
        except StopIteration:
            raise FormatError(f"LERN: {what} missing") from None
        if len(b) != nbytes:
            raise FormatError(f"LERN: {what} has {len(b)} bytes, expected {nbytes}")
        return b

    def packed(bits: int, count: int, what: str) -> np.ndarray:
        if not 0 <= bits <= 64:
            raise FormatError(f"LERN: {what} bit width {bits}")
        words = np.frombuffer(take(8 * ((count * bits + 63) // 64), what), dtype="<u8").astype(np.uint64)
        return _bits.unpack_fixed(words, bits, count) if bits else np.zeros(count, dtype=np.uint64)

    per_cluster = _cluster_bits(weights)

    def varying(nbits: np.ndarray, what: str) -> np.ndarray:
        words = np.frombuffer(take(8 * ((int(nbits.sum()) + 63) // 64), what), dtype="<u8").astype(np.uint64)
        return _bits.unpack_varying(words, nbits)

    try:
        ecols = np.asarray(meta["exact_columns"], dtype=np.int64)
        rbits = [int(b) for b in meta["residual_bits"]]
        fcols = np.asarray(meta["float_columns"], dtype=np.int64)
        nan_cols = [int(j) for j in meta["nan_columns"]]
        used_grid = bool(meta["grid"])
    except (KeyError, TypeError, ValueError) as e:
        raise FormatError(f"LERN: malformed head ({e})") from None
    expect = _exact_columns(codecs, int(weights.sum()))
    if not (np.array_equal(ecols, np.flatnonzero(expect)) and np.array_equal(fcols, np.flatnonzero(~expect))
            and len(rbits) == ecols.size and set(nan_cols) <= set(fcols.tolist())
            and len(set(nan_cols)) == len(nan_cols)):
        raise FormatError("LERN: the column plan does not match the codecs")
    if used_grid and grid is None:
        raise FormatError("LERN: sums relative to condensed rows that the file does not store")
    if meta["targets"] and max(meta["targets"]) >= d:
        raise FormatError("LERN: a target column out of range")
    means = np.empty((m, d), dtype=np.float64)
    missing = np.zeros((m, d), dtype=np.int64)
    code_sums = np.zeros((m, d), dtype=np.int64)
    for j, b in zip(ecols.tolist(), rbits):
        base = grid[:, j].astype(np.int64) * weights if used_grid else 0
        z = varying(per_cluster, f"sums of column {j}") if b == -1 else packed(b, m, f"sums of column {j}")
        code_sums[:, j] = _unzigzag(z) + base
    if ecols.size:
        means[:, ecols] = _affine_means(code_sums[:, ecols], weights, codecs, dtype, ecols)
    if fcols.size:
        means[:, fcols] = np.frombuffer(take(8 * m * fcols.size, "float means"), dtype="<f8").reshape(m, fcols.size)
    for j in nan_cols:
        missing[:, j] = varying(per_cluster, f"NaN counts of column {j}").astype(np.int64)
    if (missing > weights[:, None]).any():
        raise FormatError("LERN: more NaN than rows in a cluster")
    classes, counts = np.zeros(0), np.zeros((0, 0), dtype=np.int64)
    if meta["task"] == "classification":
        try:
            k = int(meta["n_classes"])
        except (KeyError, TypeError, ValueError) as e:
            raise FormatError(f"LERN: malformed head ({e})") from None
        if not 1 <= k <= MAX_CLASSES:
            raise FormatError(f"LERN: {k} classes")
        classes = np.frombuffer(take(8 * k, "class values"), dtype="<f8").astype(np.float64)
        if np.unique(classes).size != k or not np.isfinite(classes).all():
            raise FormatError("LERN: class values must be distinct and finite")
        counts = np.empty((m, k), dtype=np.int64)
        counts[:, :k - 1] = varying(np.repeat(per_cluster, k - 1), "class counts").astype(np.int64).reshape(m, k - 1)
        counts[:, k - 1] = weights - counts[:, :k - 1].sum(axis=1)
        if (counts < 0).any():
            raise FormatError("LERN: class counts exceed the cluster sizes")
    if next(arrays, None) is not None:
        raise FormatError("LERN: unexpected arrays after the last one")
    return CondensedStats(means, missing, code_sums, meta["targets"], meta["task"], classes, counts)
