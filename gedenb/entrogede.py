"""Algorithm 1 of the paper: entropy-based Generalized Deduplication.

Data path::

    X --fit_codecs/encode_columns--> codes --pack_codes--> rows of bits
      --transpose_bits--> bit lines --position_counts/entropy--> H (Eq. 6)
      --clustering phase (beta high-entropy MSBs)--> condensed samples, weights
      --compression phase (greedy on low-entropy bits, Eq. 1, plateau tau)-->
      base positions --gather_records--> bases table + fixed-width records

The result is a :class:`Compressed` container of arrays; nothing is hidden
or cached.  :func:`decompress` and :func:`condensed` read it back, and
:mod:`gedenb.store` writes it to a ``.gede`` file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import bits as _bits
from . import learning as _learning
from ._numba import njit
from .encode import (
    Codecs,
    _dtype_groups,
    _field_block,
    as_float64,
    as_table,
    code_dtype,
    decode_codes,
    encode_columns,
    encode_values,
    fit_codecs,
)
from .entropy import deviations as _deviations
from .entropy import fitting as _fitting
from .entropy import image_models as _image_models
from .entropy import model as _model
from .entropy import predict as _predict
from .layout import Layout, ceil_log2, decode_rows, gather_records, make_layout
from .sizes import SizeBreakdown, _eq1, fields_bytes, params_bits

__all__ = [
    "MAX_ROWS",
    "MAX_ROW_BITS",
    "Compressed",
    "cluster_positions",
    "compress",
    "condensed",
    "decompress",
    "eq1_bits",
    "greedy_base_selection",
    "size_breakdown",
]

#: Largest number of rows (original plus condensed) of one table.
MAX_ROWS = 1 << 40
#: Largest number of bits per encoded row (sum of the column widths).
MAX_ROW_BITS = 1 << 20


class _DerivedSizes:
    """Sizes derived from a compressed table's fields (shared by :class:`Compressed`
    and :class:`gedenb.sharded.ShardedSummary`)."""

    __slots__ = ()

    @property
    def n(self) -> int:
        return int(self.shape[0])

    @property
    def d(self) -> int:
        return int(self.shape[1])

    @property
    def m(self) -> int:
        """Number of condensed samples stored as extra rows."""
        return int(self.weights.shape[0]) if self.store_condensed else 0

    @property
    def beta(self) -> int:
        return int(self.beta_positions.shape[0])

    @property
    def fields(self) -> tuple | None:
        """Field names of a mixed-dtype table, in order; None for a homogeneous one."""
        return self.dtype.names

    @property
    def coding(self) -> str:
        """``"raw"`` (fixed-width records, the paper's) or ``"entropy"``."""
        return "raw" if self.coded is None else "entropy"

    @property
    def widths(self) -> np.ndarray:
        return self.codecs.width

    @property
    def row_bits(self) -> int:
        """``l_t``, bits per encoded row."""
        return int(self.codecs.width.sum())

    @property
    def base_bits(self) -> int:
        """``l_b``."""
        return int(self.base_mask.sum())

    @property
    def deviation_bits(self) -> int:
        """``l_d = l_t - l_b``."""
        return self.row_bits - self.base_bits

    @property
    def id_bits(self) -> int:
        return ceil_log2(self.n_bases)

    @property
    def base_positions(self) -> np.ndarray:
        return np.flatnonzero(self.base_mask)

    @property
    def deviation_positions(self) -> np.ndarray:
        return np.flatnonzero(~self.base_mask)

    @property
    def raw_bytes(self) -> int:
        """Bytes of the original array (``n * d * itemsize``; ``n * itemsize`` for a structured one)."""
        return self.n * self.dtype.itemsize * (1 if self.dtype.names is not None else self.d)


@dataclass(frozen=True, eq=False)
class Compressed(_DerivedSizes):
    """An EntroGeDe-compressed table (immutable container of arrays).

    Attributes
    ----------
    shape : (n, d)
        Shape of the original table; for a mixed-dtype (structured) table
        ``d`` is its number of fields.
    dtype : numpy.dtype
        Its dtype; :func:`decompress` returns exactly this.  Structured for
        a mixed-dtype table (then :func:`decompress` returns an ``(n,)``
        structured array); see :func:`gedenb.encode.as_table` for how its
        byte order and padding are normalised.
    codecs : Codecs
        Per-column lossless codecs (widths sum to ``l_t``).
    base_mask : (l_t,) bool
        ``True`` at the base bit positions ``B*_pos``.
    n_bases : int
        ``n_b``, the number of distinct bases.
    bases : uint64 bit stream
        ``n_b`` bases of ``l_b`` bits each.
    records : uint64 bit stream
        ``n + m`` records of ``id_bits + l_d`` bits each: the original rows,
        then the ``m`` condensed samples rounded onto the codec grid.
    weights : (m,) int64
        Cluster sizes of the condensed samples (they sum to ``n``).
    beta_positions : (beta,) int64
        Bit positions used for clustering (empty when ``beta`` is None).
    store_condensed : bool
        False in the storage-constrained mode: no condensed rows are stored
        and :func:`condensed` recomputes them from the data.
    entropy : (l_t,) float64
        Per-position entropy of the original rows (Eq. 6).
    greedy_sizes : int64
        Eq. 1 after each base position the greedy search tried, starting
        with the constant positions only (the curve with its plateau).
    tau : int
        The plateau threshold used.
    coded : gedenb.entropy.deviations.EntropyCoded or None
        With ``coding="entropy"``: the rANS-coded deviations (model, row
        index, row streams); ``records`` then holds only the base IDs.
    predict : gedenb.entropy.predict.Prediction or None
        With ``coding="entropy"``: the per-row code transform (lag groups
        with their side arrays, column residuals) applied before the greedy
        base selection and the entropy coding, when it made the table
        smaller; the bases, records and coded rows then hold transformed
        codes, and every decode undoes the transform row by row.
        ``entropy`` stays that of the original rows, and the condensed
        samples are always computed from (and stored as) the original values.
    frame : gedenb.frames.FrameSchema or None
        For a table given as a DataFrame or Arrow table: how the physical
        table (this container's dtype) maps back to it; ``frame_bytes`` is
        its serialised form (section FRAM).
    learning : gedenb.learning.CondensedStats or None
        Exact cluster statistics (means, NaN counts, targets, class counts;
        ``exact_condensed=True``, the default); ``learning_bytes`` is its
        serialised form (section LERN).  In the storage-constrained mode only
        the targets are kept (``learning.means`` has no rows) and the rest
        is recomputed.
    unverified : dict or None
        For a table opened with ``verify=False``: the file's CRC-32 of each
        bulk section (BASE, RECS, WGHT, RIDX, ROWS) that was not checked;
        :func:`gedenb.save` checks them before writing the data again.
    """

    shape: tuple
    dtype: np.dtype
    codecs: Codecs
    base_mask: np.ndarray
    n_bases: int
    bases: np.ndarray
    records: np.ndarray
    weights: np.ndarray
    beta_positions: np.ndarray
    store_condensed: bool
    entropy: np.ndarray
    greedy_sizes: np.ndarray
    tau: int
    layout: Layout = field(repr=False, compare=False)
    coded: object = field(default=None, repr=False, compare=False)
    predict: object = field(default=None, repr=False, compare=False)
    frame: object = field(default=None, repr=False, compare=False)
    frame_bytes: bytes = field(default=b"", repr=False, compare=False)
    learning: object = field(default=None, repr=False, compare=False)
    learning_bytes: bytes = field(default=b"", repr=False, compare=False)
    unverified: object = field(default=None, repr=False, compare=False)

    def __repr__(self) -> str:
        s = size_breakdown(self)
        return (
            f"Compressed(shape={self.shape}, dtype={self.dtype}, l_t={self.row_bits}, "
            f"l_b={self.base_bits}, n_b={self.n_bases}, m={self.m}, "
            f"eq1={s.total / 8 / self.raw_bytes:.1%} of raw)"
        )


# --------------------------------------------------------------------------
# clustering phase (Algorithm 1, lines 4-8)
# --------------------------------------------------------------------------
def cluster_positions(entropy: np.ndarray, widths: np.ndarray, beta: int) -> np.ndarray:
    """The ``beta`` clustering bit positions (Algorithm 1, lines 4-6).

    Level 0 holds the most significant non-constant bit of every column,
    level 1 the next non-constant bit below it, and so on.  Levels are taken
    in turn, each sorted by decreasing entropy (ties: lower position first),
    until ``beta`` positions are chosen.
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


def _centroids(X: np.ndarray, labels: np.ndarray, m: int):
    d = len(X.dtype.names) if X.dtype.names is not None else X.shape[1]
    sums = np.zeros((m, d), dtype=np.float64)
    counts = np.zeros(m, dtype=np.int64)
    _add_centroid_sums(X, labels, sums, counts)
    with np.errstate(invalid="ignore"):
        return sums / counts[:, None], counts


# --------------------------------------------------------------------------
# compression phase (Algorithm 1, lines 10-27)
# --------------------------------------------------------------------------
@njit
def _greedy(T, order, n, m, v, l_t, tau, s_params):
    N = n + m
    labels = np.zeros(N, dtype=np.int64)
    best_labels = np.zeros(N, dtype=np.int64)
    table = np.full(2 * N + 2, -1, dtype=np.int64)
    n_b = 1
    l_b = v
    l_d = l_t - v
    best = _eq1(1, l_b, l_d, n, m, s_params)
    best_k = 0
    best_nb = 1
    sizes = np.empty(order.shape[0] + 1, dtype=np.int64)
    sizes[0] = best
    c = 0
    steps = 0
    for k in range(order.shape[0]):
        n_b = _bits._refine(T[order[k]], labels, n_b, table)
        l_b += 1
        l_d -= 1
        s = _eq1(n_b, l_b, l_d, n, m, s_params)
        steps = k + 1
        sizes[steps] = s
        if s < best:
            best = s
            best_k = steps
            best_nb = n_b
            best_labels[:] = labels
            c = 0
        else:
            c += 1
            if c >= tau or n_b == N:
                break
    return best_k, best_nb, best_labels, sizes[: steps + 1]


def greedy_base_selection(T: np.ndarray, counts: np.ndarray, entropy: np.ndarray,
                          n: int, m: int, tau: int, s_params: int = 0):
    """Greedy base-position search (Algorithm 1, lines 10-27).

    Parameters
    ----------
    T : (l_t, ceil((n + m) / 64)) uint64
        Transposed bits of the ``n + m`` rows being compressed.
    counts : (l_t,) int
        Set-bit counts over those rows; constant positions start the base.
    entropy : (l_t,) float64
        Order key: remaining positions are tried by increasing entropy
        (ties: lower position first).
    n, m, tau, s_params
        As in Eq. 1; ``tau`` is the plateau threshold.

    Returns
    -------
    base_mask : (l_t,) bool
    n_bases : int
    labels : (n + m,) int64
        Base ID of every row, numbered by first occurrence.
    sizes : int64
        Eq. 1 after each tried addition (``sizes[0]``: constants only).
    """
    N = n + m
    counts = np.asarray(counts)
    const = (counts == 0) | (counts == N)
    live = np.flatnonzero(~const)
    order = live[np.lexsort((live, entropy[live]))]
    k, n_b, labels, sizes = _greedy(T, order, int(n), int(m), int(const.sum()), int(T.shape[0]),
                                    int(tau), int(s_params))
    mask = const.copy()
    mask[order[:k]] = True
    return mask, int(n_b), labels, sizes


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------
def compress(X, beta: int | None = None, tau: int = 10, *, store_condensed: bool = True,
             widths: str = "narrow", cluster_columns=None, cluster_rule=None, coding: str = "raw",
             image_shape=None, target=None, task: str = "auto", exact_condensed: bool = True) -> Compressed:
    """Compress a table with EntroGeDe (Algorithm 1).

    Parameters
    ----------
    X : table
        A homogeneous (n, d) array: bool, int8-64, uint8-64 or
        float16/32/64, any memory order (or a list of rows of numbers).  Or
        a mixed-dtype table: a structured array whose fields are scalars of
        those dtypes, or a dict ``{name: column}``.  Every field is one
        column with its own codec; see :func:`gedenb.encode.as_table` for
        the normalisation (native byte order, no padding) that
        :func:`decompress` gives back.  Or a pandas or polars DataFrame or a
        pyarrow Table / RecordBatch (``pip install "gedenb[frames]"``): with
        strings, categoricals, nulls, datetimes with time zones; it is
        stored as a physical table (:mod:`gedenb.frames`) and comes back as
        it was with ``decompress(c, as_frame=True)``.
    beta : int, optional
        Number of high-entropy bits used for clustering.  ``None`` skips the
        clustering phase (``m = 0``).
    tau : int, default 10
        Plateau threshold: stop after ``tau`` base-position additions
        without improving Eq. 1.
    store_condensed : bool, default True
        Store the condensed samples as extra rows.  False is the paper's
        storage-constrained mode: only the beta positions are kept and
        :func:`condensed` recomputes the samples on demand.
    widths : {"narrow", "native"}, default "narrow"
        Column codecs: the narrowest exact codec per column, or every value
        at its dtype's full width (the paper's setting for raw pixels; see
        :func:`gedenb.encode.fit_codecs`).
    cluster_columns : sequence of int or str, optional
        Columns whose bits may serve as clustering bits (default: all);
        field names are accepted for a mixed-dtype table.
        For supervised learning leave the target out (e.g.
        ``range(d - 1)``): clusters chosen on the target's bits select on
        the outcome and bias regressions fitted to the centroids.  The
        centroids always cover every column.
    cluster_rule : callable, optional
        ``rule(entropy, widths, beta) -> positions`` choosing the clustering
        bits; default :func:`cluster_positions` (Algorithm 1, lines 4-6).
        Entropies of columns outside ``cluster_columns`` are passed as 0.
        Used e.g. to cluster on low-entropy bits (the paper's Fig. 9/10).
    coding : {"raw", "entropy"}, default "raw"
        How deviations are stored: ``"raw"``, the paper's fixed-width
        records; or ``"entropy"``, static rANS with context models and a row
        index (:mod:`gedenb.entropy`), still randomly accessible per row.  The
        greedy base selection then minimises the coded size instead of Eq. 1.
        For a plain table (no ``image_shape``) the column codes may first be
        rewritten by a per-row invertible transform (:mod:`gedenb.entropy.predict`:
        lag groups with a side array, column residuals, ratio groups), kept
        only when the estimated file is smaller with it (``c.predict``).  The
        clustering, the condensed samples and ``c.entropy`` always use the
        original values; bases and deviations hold the transformed codes.
    image_shape : (H, W) or (H, W, C), optional
        With ``coding="entropy"``: the rows are images of this shape
        (``H * W * C == d``, row-major, channels last), so pixels are coded
        in the context of their neighbours.
    target : int, str or sequence of them, optional
        The column(s) to be predicted (names of fields or DataFrame columns
        allowed).  They are kept out of the clustering bits unless
        ``cluster_columns`` says otherwise, recorded in the file, and
        :func:`gedenb.learning_set` trains on them.  Needs ``beta``.
    task : {"auto", "regression", "classification"}, default "auto"
        ``"classification"`` keeps, per cluster, the rows of each class of
        the (one) target.  ``"auto"``: classification for a bool, string or
        categorical target and for one whose values are at most 64 distinct
        whole numbers (of any dtype: 0/1 labels stored as floats are
        classes), regression otherwise.
    exact_condensed : bool, default True
        Keep the exact cluster statistics (means skipping NaN, NaN counts,
        class counts; section LERN), so that :func:`condensed` returns exact
        centroids.  False writes the paper's file, whose condensed samples
        are the rows rounded onto the codec grid.

    Returns
    -------
    Compressed

    Raises
    ------
    TypeError
        Unsupported dtype (of the array or of a field) or not an array.
    ValueError
        Empty or non-2-D input (non-1-D when structured), nested or subarray
        fields, ``tau < 1``, ``beta`` out of range, an unknown field in
        ``cluster_columns``, or a table beyond the documented limits.

    Examples
    --------
    >>> import numpy as np, gedenb
    >>> X = np.array([[1, 10], [1, 11], [2, 10], [2, 13]], dtype=np.int32)
    >>> c = gedenb.compress(X, beta=1)
    >>> bool((gedenb.decompress(c) == X).all()), c.m
    (True, 2)
    >>> samples, weights = gedenb.condensed(c)
    >>> samples.tolist(), weights.tolist()
    ([[1.0, 10.5], [2.0, 11.5]], [2, 2])
    >>> gedenb.condensed(c, exact=False)[0].tolist()  # the stored rows: the paper's, on the codec grid
    [[1.0, 10.0], [2.0, 12.0]]

    A mixed-dtype table:

    >>> T = np.array([(1, 0.25, True), (2, 0.5, False)], dtype=[("k", "i1"), ("x", "f8"), ("b", "?")])
    >>> c = gedenb.compress(T)
    >>> c.fields, gedenb.decompress(c).tobytes() == T.tobytes()
    (('k', 'x', 'b'), True)
    """
    X, frame = _frame_input(X)
    X = as_table(X)
    tau = _check_int(tau, "tau", lo=1)
    if coding not in _model.CODINGS:
        raise ValueError(f"coding must be one of {_model.CODINGS}, got {coding!r}")
    if image_shape is not None and coding != "entropy":
        raise ValueError("image_shape is used only with coding='entropy'")
    if beta is not None:
        beta = _check_int(beta, "beta", lo=1)
    n, d = (X.shape[0], len(X.dtype.names)) if X.dtype.names is not None else X.shape
    resolve = _resolver(X, frame, d)
    targets = _column_list(target, resolve, "target")
    if targets and beta is None:
        raise ValueError("target= needs clustering: give beta (the condensed samples are what it trains on)")
    if cluster_columns is not None and frame is not None:
        cluster_columns = list(_column_list(cluster_columns, resolve, "cluster_columns"))
    elif targets and cluster_columns is None:
        cluster_columns = [j for j in range(d) if j not in _target_fields(frame, targets)]
        if not cluster_columns:
            raise ValueError("every column is a target: nothing is left to cluster on")
    codecs = fit_codecs(X, widths)
    widths = codecs.width
    l_t = int(widths.sum())
    if l_t > MAX_ROW_BITS:
        raise ValueError(f"rows encode to {l_t} bits; at most {MAX_ROW_BITS} are supported")
    codes = encode_columns(X, codecs, check=False)
    words = _bits._pack_codes(codes, widths, _bits.words_per_row(l_t))
    T = _bits._transpose_bits(words, l_t) if l_t else np.zeros((0, (n + 63) // 64), np.uint64)
    counts = _bits._position_counts(T, 0, n)
    H = _bits.entropy(counts, n)

    weights = np.zeros(0, dtype=np.int64)
    beta_pos = np.zeros(0, dtype=np.int64)
    m = 0
    stats = None
    if beta is not None:
        beta_pos = _clustering_bits(cluster_rule, _mask_columns(H, widths, cluster_columns, d, X.dtype.names),
                                    widths, beta)
        labels, groups = _bits._group_by_positions(T, beta_pos, n)
        centroids, weights = _centroids(X, labels, int(groups))
        if exact_condensed or targets:
            categorical = set() if frame is None else {c.field for c in frame.columns if c.storage != "plain"}
            task = _learning.resolve_task(X, codes, codecs, targets, task, categorical)
            if task == "classification" and _target_fields(frame, targets) != set(targets):
                raise ValueError("the classification target has nulls; drop those rows first (or use "
                                 "task='regression')")
            stats = _learning.cluster_stats(X, codes, codecs, labels, int(groups), weights, targets, task) \
                if store_condensed else _learning.CondensedStats(np.zeros((0, d)), np.zeros((0, d), np.int64),
                                                                 np.zeros((0, d), np.int64), targets, task)
        if store_condensed:
            m = int(groups)
            ccodes = encode_values(centroids, codecs, X.dtype)
            cwords = _bits._pack_codes(ccodes, widths, words.shape[1])
            words = np.concatenate([words, cwords])
            if n + m > MAX_ROWS:
                raise ValueError(f"{n + m} rows exceed the limit of {MAX_ROWS}")
            T = _bits._transpose_bits(words, l_t) if l_t else np.zeros((0, (n + m + 63) // 64), np.uint64)
            counts = counts + _bits._position_counts(T, n, n + m)
    # sections FRAM and LERN are parameters too: Eq. 1 counts every byte the file stores
    frame_bytes = b"" if frame is None else frame.to_bytes()
    learning_bytes = b""
    if stats is not None:
        grid = encode_columns(decode_codes(ccodes, codecs, X.dtype), codecs, check=False) if m else None
        learning_bytes = _learning.stats_to_bytes(stats, grid, codecs, weights, stored=bool(m))
    s_params = params_bits(d, l_t, len(beta_pos)) + 8 * (fields_bytes(X.dtype) + len(frame_bytes)
                                                          + len(learning_bytes))
    pred = None
    if coding == "entropy":
        shape = _image_models.check_image_shape(image_shape, d)
        all_codes = np.concatenate([codes, ccodes]) if m else codes
        all_codes = np.ascontiguousarray(all_codes, dtype=np.uint64)
        mask, n_b, labels, sizes, costs = _fitting.greedy_base_selection(T, counts, H, all_codes, widths, n, m,
                                                                        tau, s_params, shape)
        pred = _predict.fit(all_codes, codecs, X.dtype, n) if shape is None else None
        if pred is not None:  # kept only if the table is smaller with it, its section PRED included
            tcodes = _predict.forward(all_codes, codecs, pred)
            twords = _bits._pack_codes(tcodes, widths, words.shape[1])
            tT = _bits._transpose_bits(twords, l_t)
            tcounts = _bits._position_counts(tT, 0, n + m)
            tH = _bits.entropy(_bits._position_counts(tT, 0, n), n)
            got = _fitting.greedy_base_selection(tT, tcounts, tH, tcodes, widths, n, m, tau,
                                                s_params + 8 * pred.nbytes, None)
            if got[3].min() < sizes.min():
                (mask, n_b, labels, sizes, costs), words, all_codes = got, twords, tcodes
            else:
                pred = None
    else:
        mask, n_b, labels, sizes = greedy_base_selection(T, counts, H, n, m, tau, s_params)
    layout = make_layout(widths, mask, n_b)
    first = _first_rows(labels, n_b)
    bases = gather_records(words, first, first, 0, layout.base_runs)
    coded = None
    if coding == "entropy":  # records hold only the base IDs; the deviations are rANS-coded
        records = gather_records(words, np.arange(n + m, dtype=np.int64), labels, layout.id_bits,
                                 np.zeros((0, 2), dtype=np.int64))
        coded = _deviations.compress_deviations(all_codes, codecs, mask, shape, bases, layout, n_b, X.dtype, costs)
    else:
        records = gather_records(words, np.arange(n + m, dtype=np.int64), labels, layout.id_bits, layout.dev_runs)
    for a in (mask, weights, beta_pos, H, sizes, bases, records):
        a.setflags(write=False)
    return Compressed(
        shape=(n, d), dtype=X.dtype, codecs=_frozen(codecs), base_mask=mask, n_bases=n_b,
        bases=bases, records=records, weights=weights, beta_positions=beta_pos,
        store_condensed=bool(store_condensed) or beta is None, entropy=H, greedy_sizes=sizes,
        tau=tau, layout=layout, coded=coded, predict=pred, frame=frame,
        frame_bytes=frame_bytes, learning=stats, learning_bytes=learning_bytes,
    )


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
    """Decoded rows ``values`` of ``c`` as NumPy (``as_frame=None``) or as a frame."""
    if as_frame is None or as_frame is False:
        return values
    from . import frames as _frames

    return _frames.to_frame(values, frame_schema(c), as_frame, rows) if c.frame is not None \
        else _frames.plain_frame(values, as_frame)


def frame_schema(c):
    """``c.frame`` as a :class:`gedenb.frames.FrameSchema` (a file opened without pyarrow keeps its bytes)."""
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
    block, ``read(rows)`` decoding them); ``(None, weights)`` for a table without them."""
    st = c.learning
    if st is None or st.means.shape[0] or c.beta == 0:
        return st, np.asarray(c.weights)
    acc = _learning.StatsAccumulator(c.codecs, c.dtype, c.n, st.targets, st.task)
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
    """:func:`recompute_condensed` over the rows of ``c``, block by block (bounded memory)."""
    sums = np.zeros((0, c.d), dtype=np.float64)
    counts = np.zeros(0, dtype=np.int64)
    for X, _codes, labels, m in _clusters_by_block(c, read):
        if m > counts.size:
            sums = np.concatenate([sums, np.zeros((m - counts.size, c.d))])
            counts = np.concatenate([counts, np.zeros(m - counts.size, dtype=np.int64)])
        _add_centroid_sums(X, labels, sums, counts)
    with np.errstate(invalid="ignore"):
        centroids = sums / counts[:, None]
    rounded = decode_codes(encode_values(centroids, c.codecs, c.dtype), c.codecs, c.dtype)
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
    """
    labels, groups = _recluster(X, codecs, beta_positions)
    centroids, weights = _centroids(X, labels, groups)
    rounded = decode_codes(encode_values(centroids, codecs, X.dtype), codecs, X.dtype)
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


def size_breakdown(c: Compressed) -> SizeBreakdown:
    """Eq. 1 split into bases, base IDs, deviations, weights and parameters (bits).

    With ``coding="entropy"`` the deviations term is what is stored for
    them: the coding model, the row index and the rows' rANS streams (and
    section PRED of a transformed table, :mod:`gedenb.entropy.predict`).
    """
    N = c.n + c.m
    return SizeBreakdown(
        bases=c.n_bases * c.base_bits,
        base_ids=N * c.id_bits,
        deviations=N * c.deviation_bits if c.coded is None else 8 * (c.coded.nbytes + _pred_bytes(c)),
        weights=c.m * ceil_log2(c.n),
        params=params_bits(c.d, c.row_bits, c.beta) + 8 * (fields_bytes(c.dtype) + len(getattr(c, "frame_bytes", b""))
                                                           + len(getattr(c, "learning_bytes", b""))),
    )


def _pred_bytes(c) -> int:
    p = getattr(c, "predict", None)
    return 0 if p is None else p.nbytes


def eq1_bits(c: Compressed) -> int:
    """Eq. 1 of the paper, in bits, for a compressed table."""
    return size_breakdown(c).total


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _frame_input(X):
    """A DataFrame / Arrow table as its physical table and frame schema; a list of rows as an array."""
    from .frames import frame_kind, from_frame

    if frame_kind(X) is not None:
        return from_frame(X)
    if isinstance(X, (list, tuple)):
        a = np.asarray(X)
        if a.dtype == object or a.dtype.kind in "USV":
            raise TypeError(f"a list of rows must hold numbers only, got {a.dtype}; use a pandas DataFrame "
                            "for text columns")
        return a, None
    if not isinstance(X, np.ndarray) and hasattr(X, "__array__") and not hasattr(X, "keys"):
        return np.asarray(X), None
    return X, None


def _resolver(X: np.ndarray, frame, d: int):
    """``resolve(v) -> physical column index`` for a column given by index or name.  For a DataFrame both
    refer to its own columns (the position and the name of a column), mapped to the field holding its
    values; otherwise to the table's columns (names: the fields of a structured table)."""
    names = frame.logical_names if frame is not None else X.dtype.names
    count = len(names) if frame is not None else d

    def resolve(v, what: str) -> int:
        if isinstance(v, str):
            if names is None or v not in names:
                raise ValueError(f"{what}: no column named {v!r}" + (f" (columns: {', '.join(names)})" if names
                                                                      else "; this table's columns have no names"))
            j = names.index(v)
        elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            j = int(v)
            if not -count <= j < count:
                raise ValueError(f"{what}: column {j} is out of range for {count} columns")
            j %= count
        else:
            raise TypeError(f"{what} must be a column index or name, got {v!r}")
        return frame.columns[j].field if frame is not None else j

    return resolve


def _target_fields(frame, targets: tuple) -> set:
    """The targets and, in a DataFrame, their null masks."""
    masks = set() if frame is None else {c.nulls for c in frame.columns if c.field in targets and c.nulls >= 0}
    return set(targets) | masks


def _column_list(spec, resolve, what: str) -> tuple:
    """``spec`` (None, an int, a name, or a sequence of them) as a tuple of distinct physical columns."""
    if spec is None:
        return ()
    items = [spec] if isinstance(spec, (str, int, np.integer)) else list(spec)
    out = [resolve(v, what) for v in items]
    if len(set(out)) != len(out) or not out:
        raise ValueError(f"{what}: columns must be distinct and at least one")
    return tuple(out)


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


@njit
def _first_rows_kernel(labels, n_b):
    first = np.full(n_b, -1, dtype=np.int64)
    for i in range(labels.shape[0]):
        if first[labels[i]] < 0:
            first[labels[i]] = i
    return first


def _first_rows(labels: np.ndarray, n_b: int) -> np.ndarray:
    return _first_rows_kernel(labels, n_b)


def _frozen(codecs: Codecs) -> Codecs:
    for a in codecs:
        a.setflags(write=False)
    return codecs


def _check_int(v, name: str, lo: int) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(v).__name__}")
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}, got {v}")
    return int(v)


def _check_compressed(c) -> None:
    if not isinstance(c, Compressed):
        raise TypeError(f"expected a gedenb.Compressed result, got {type(c).__name__}")

