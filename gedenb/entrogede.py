"""Algorithm 1 of the paper: entropy-based Generalized Deduplication.

Data path (the stages of :mod:`gedenb.stages`)::

    X --fit_codecs/encode_columns--> codes --pack_codes--> rows of bits
      --transpose_bits--> bit lines --position_counts/entropy--> H (Eq. 6)
      --clustering phase (beta high-entropy MSBs)--> condensed samples, weights
      --compression phase (greedy on low-entropy bits, Eq. 1, plateau tau)-->
      base positions --gather_records--> bases table + fixed-width records

The result is a :class:`gedenb.Compressed` container of arrays; nothing is
hidden or cached.  :func:`gedenb.decompress` and :func:`gedenb.condensed`
(:mod:`gedenb.decode`) read it back, and :mod:`gedenb.store` writes it to a
``.gede`` file.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import stages as _st
from .compressed import Compressed, stored_params_bits
from .encode import Codecs, as_table
from .entropy import image_models as _image_models
from .entropy import model as _model
from .inputs import check_int, column_list, column_resolver, frame_input, target_fields

__all__ = ["compress"]


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
        :func:`gedenb.decompress` gives back.  Or a pandas or polars DataFrame or a
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
        :func:`gedenb.condensed` recomputes the samples on demand.
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
        bits; default :func:`gedenb.clusters.cluster_positions` (Algorithm 1, lines 4-6).
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
        class counts; section LERN), so that :func:`gedenb.condensed` returns exact
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
    job = _validate(X, beta, tau, coding, image_shape, target, cluster_columns)
    codecs = _st.fit_column_codecs(job.X, widths)
    bits = _st.encode_bits(job.X, codecs)
    bits, clusters = _clusters(job, bits, codecs, cluster_rule, store_condensed, exact_condensed, task)
    frame_bytes, learning_bytes = _st.section_bytes(job.frame, clusters, codecs, job.X.dtype)
    s_params = stored_params_bits(job.d, int(codecs.width.sum()), clusters.positions.size, job.X.dtype,
                                  frame_bytes, learning_bytes)
    shape = _image_models.check_image_shape(image_shape, job.d) if coding == "entropy" else None
    found = _st.search_bases(bits, clusters, codecs, job.X.dtype, job.tau, s_params, coding, shape)
    layout, bases = _st.base_table(found, codecs.width)
    records, coded = _st.code_rows(found, layout, bases, codecs, job.X.dtype, coding, shape)
    for a in (found.mask, clusters.weights, clusters.positions, bits.entropy, found.sizes, bases, records):
        a.setflags(write=False)
    return Compressed(
        shape=(job.n, job.d), dtype=job.X.dtype, codecs=_frozen(codecs), base_mask=found.mask,
        n_bases=found.n_bases, bases=bases, records=records, weights=clusters.weights,
        beta_positions=clusters.positions, store_condensed=bool(store_condensed) or job.beta is None,
        entropy=bits.entropy, greedy_sizes=found.sizes, tau=job.tau, layout=layout, coded=coded,
        predict=found.predict, frame=job.frame, frame_bytes=frame_bytes, learning=clusters.stats,
        learning_bytes=learning_bytes,
    )


class _Job(NamedTuple):
    """The validated arguments of :func:`compress`."""

    X: np.ndarray
    frame: object
    n: int
    d: int
    tau: int
    beta: int | None
    targets: tuple
    cluster_columns: object


def _validate(X, beta, tau, coding: str, image_shape, target, cluster_columns) -> _Job:
    """The table normalised and the arguments checked, in the order whose errors callers see first."""
    X, frame = frame_input(X)
    X = as_table(X)
    tau = check_int(tau, "tau", lo=1)
    if coding not in _model.CODINGS:
        raise ValueError(f"coding must be one of {_model.CODINGS}, got {coding!r}")
    if image_shape is not None and coding != "entropy":
        raise ValueError("image_shape is used only with coding='entropy'")
    if beta is not None:
        beta = check_int(beta, "beta", lo=1)
    n, d = (X.shape[0], len(X.dtype.names)) if X.dtype.names is not None else X.shape
    resolve = column_resolver(X, frame, d)
    targets = column_list(target, resolve, "target")
    if targets and beta is None:
        raise ValueError("target= needs clustering: give beta (the condensed samples are what it trains on)")
    if cluster_columns is not None and frame is not None:
        cluster_columns = list(column_list(cluster_columns, resolve, "cluster_columns"))
    elif targets and cluster_columns is None:
        cluster_columns = [j for j in range(d) if j not in target_fields(frame, targets)]
        if not cluster_columns:
            raise ValueError("every column is a target: nothing is left to cluster on")
    return _Job(X, frame, n, d, tau, beta, targets, cluster_columns)


def _clusters(job: _Job, bits, codecs: Codecs, rule, store_condensed: bool, exact_condensed: bool, task: str):
    """The clustering phase (stage 3) as :func:`compress`'s options ask for it: ``(bits, clusters)``, the bits
    with the condensed rows appended when they are stored."""
    if job.beta is None:
        return bits, _st.no_clusters()
    clusters = _st.cluster_rows(job.X, bits, codecs, job.beta, job.cluster_columns, rule)
    if exact_condensed or job.targets:
        stats = _st.exact_statistics(job.X, bits, codecs, clusters, job.targets, task, job.frame, store_condensed)
        clusters = clusters._replace(stats=stats)
    if store_condensed:
        bits, clusters = _st.add_condensed_rows(bits, clusters, codecs, job.X.dtype)
    return bits, clusters


def _frozen(codecs: Codecs) -> Codecs:
    for a in codecs:
        a.setflags(write=False)
    return codecs
