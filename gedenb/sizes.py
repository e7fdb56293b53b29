"""Eq. 1 and the size breakdown of a compressed table.

Eq. 1 of the paper, in bits::

    S = n_b * l_b + (n + m) * (ceil(log2 n_b) + l_d) + m * ceil(log2 n) + S_params

``S_params`` is not left "negligible" here: it is the exact size of the
parameters the ``.gede`` file stores (fixed header, one codec entry per
column, the base-position mask and the beta positions, plus the field names
and dtypes of a mixed-dtype table, the schema of a table given as a
DataFrame (section FRAM) and the exact cluster statistics (section LERN)),
so that Eq. 1 can be compared honestly with the bytes on disk.
"""

from __future__ import annotations

from typing import NamedTuple

from ._numba import njit

__all__ = [
    "CODEC_ENTRY_BYTES",
    "FIELD_ENTRY_BYTES",
    "FIXED_HEADER_BYTES",
    "SizeBreakdown",
    "eq1",
    "fields_bytes",
    "params_bits",
]

#: Bytes of the fixed-size file header (see ``docs/FORMAT.md``).
FIXED_HEADER_BYTES = 96
#: Bytes per column codec entry: kind u8, width u8, scale i16, reserved u32, offset u64.
CODEC_ENTRY_BYTES = 16
#: Bytes per beta (clustering) position: u32.
BETA_ENTRY_BYTES = 4
#: Bytes per field of a mixed-dtype table besides its name: dtype (8 bytes), name length u32.
FIELD_ENTRY_BYTES = 12


def params_bits(d: int, l_t: int, beta: int) -> int:
    """``S_params``: bits of the parameters stored with a table (Eq. 1).

    Parameters
    ----------
    d : int
        Columns.
    l_t : int
        Bits per row.
    beta : int
        Clustering bits.
    """
    return 8 * (FIXED_HEADER_BYTES + CODEC_ENTRY_BYTES * d + (l_t + 7) // 8 + BETA_ENTRY_BYTES * beta)


def fields_bytes(dtype) -> int:
    """Bytes of the field list (section FLDS) of a structured dtype; 0 for a homogeneous table.

    Parameters
    ----------
    dtype : numpy dtype
        The table's dtype.
    """
    names = getattr(dtype, "names", None)
    if names is None:
        return 0
    return FIELD_ENTRY_BYTES * len(names) + sum(len(f.encode("utf-8")) for f in names)


@njit(inline="always")
def _ceil_log2(x):
    b = 0
    while (1 << b) < x:
        b += 1
    return b


@njit
def _eq1(n_b, l_b, l_d, n, m, s_params):
    """Eq. 1 in bits."""
    return n_b * l_b + (n + m) * (_ceil_log2(n_b) + l_d) + m * _ceil_log2(n) + s_params


def eq1(n_b: int, l_b: int, l_d: int, n: int, m: int, s_params: int = 0) -> int:
    """Eq. 1 (bits) from its terms; pure Python, exact integers.

    Parameters
    ----------
    n_b : int
        Bases.
    l_b : int
        Base bits.
    l_d : int
        Deviation bits per row.
    n : int
        Rows.
    m : int
        Condensed samples.
    s_params : int
        ``S_params`` (:func:`params_bits`).
    """
    return int(_eq1(int(n_b), int(l_b), int(l_d), int(n), int(m), int(s_params)))


class SizeBreakdown(NamedTuple):
    """Eq. 1 split into its terms, in bits."""

    bases: int
    base_ids: int
    deviations: int
    weights: int
    params: int

    @property
    def total(self) -> int:
        return self.bases + self.base_ids + self.deviations + self.weights + self.params

    def as_bytes(self) -> dict:
        d = {k: v / 8 for k, v in self._asdict().items()}
        d["total"] = self.total / 8
        return d
