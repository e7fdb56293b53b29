"""The container of a compressed table, its limits, and its size (Eq. 1).

:class:`Compressed` is what :func:`gedenb.compress` returns and
:mod:`gedenb.store` writes; :mod:`gedenb.decode` reads it back.  Neither
side imports the other: both import this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .encode import Codecs
from .layout import Layout, ceil_log2
from .sizes import SizeBreakdown, fields_bytes, params_bits

__all__ = ["MAX_ROWS", "MAX_ROW_BITS", "Compressed", "check_row_bits", "check_rows", "eq1_bits", "size_breakdown",
           "stored_params_bits"]

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



def check_row_bits(l_t: int) -> None:
    """Raise the ValueError of a table whose rows encode to more than :data:`MAX_ROW_BITS` bits.

    Parameters
    ----------
    l_t : int
        Bits per encoded row.
    """
    if l_t > MAX_ROW_BITS:
        raise ValueError(f"rows encode to {l_t} bits; at most {MAX_ROW_BITS} are supported")


def check_rows(rows: int) -> None:
    """Raise the ValueError of a table of more than :data:`MAX_ROWS` rows.

    Parameters
    ----------
    rows : int
        Rows of the table (original plus condensed).
    """
    if rows > MAX_ROWS:
        raise ValueError(f"{rows} rows exceed the limit of {MAX_ROWS}")


def size_breakdown(c: Compressed) -> SizeBreakdown:
    """Eq. 1 split into bases, base IDs, deviations, weights and parameters (bits).

    With ``coding="entropy"`` the deviations term is what is stored for
    them: the coding model, the row index and the rows' rANS streams (and
    section PRED of a transformed table, :mod:`gedenb.entropy.predict`).

    Parameters
    ----------
    c : Compressed or gedenb.sharded.ShardedSummary
        The table.
    """
    N = c.n + c.m
    return SizeBreakdown(
        bases=c.n_bases * c.base_bits,
        base_ids=N * c.id_bits,
        deviations=N * c.deviation_bits if c.coded is None else 8 * (c.coded.nbytes + _pred_bytes(c)),
        weights=c.m * ceil_log2(c.n),
        params=stored_params_bits(c.d, c.row_bits, c.beta, c.dtype, getattr(c, "frame_bytes", b""),
                                  getattr(c, "learning_bytes", b"")),
    )


def stored_params_bits(d: int, l_t: int, beta: int, dtype, frame_bytes: bytes = b"",
                       learning_bytes: bytes = b"") -> int:
    """``S_params`` of Eq. 1 as the file stores it: the parameters, the field list, sections FRAM and LERN.

    Parameters
    ----------
    d : int
        Columns.
    l_t : int
        Bits per encoded row.
    beta : int
        Clustering positions.
    dtype : numpy.dtype
        The table's dtype (a structured one stores its field list).
    frame_bytes : bytes, default b""
        Section FRAM.
    learning_bytes : bytes, default b""
        Section LERN.
    """
    return params_bits(d, l_t, beta) + 8 * (fields_bytes(dtype) + len(frame_bytes) + len(learning_bytes))


def _pred_bytes(c) -> int:
    p = getattr(c, "predict", None)
    return 0 if p is None else p.nbytes


def eq1_bits(c: Compressed) -> int:
    """Eq. 1 of the paper, in bits, for a compressed table.

    Parameters
    ----------
    c : Compressed or gedenb.sharded.ShardedSummary
        The table.
    """
    return size_breakdown(c).total


def _check_compressed(c) -> None:
    """Raise the TypeError of anything but a :class:`Compressed`."""
    if not isinstance(c, Compressed):
        raise TypeError(f"expected a gedenb.Compressed result, got {type(c).__name__}")

