"""The greedy base-position search of Algorithm 1 (lines 10-27), with the size it minimises pluggable.

One loop serves both codings: the raw records minimise Eq. 1
(:class:`Eq1Cost`, :func:`greedy_base_selection`), the entropy-coded table
its estimated coded size (:func:`gedenb.entropy.fitting.greedy_base_selection`
passes that cost).  The loop starts from the constant positions, tries the
others by increasing entropy (ties: lower position first), moves one into
the base per step, and stops after ``tau`` steps without a smaller size, when
every row has a base of its own, or before the cost's base limit.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import bits as _bits
from .sizes import eq1

__all__ = ["Eq1Cost", "greedy_base_selection", "greedy_search"]


class Eq1Cost:
    """Eq. 1 (bits) of a table of ``n + m`` rows of ``row_bits`` bits under a candidate base.

    Parameters
    ----------
    n, m : int
        Original and condensed rows.
    row_bits : int
        ``l_t``.
    s_params : int
        ``S_params`` of Eq. 1.
    """

    def __init__(self, n: int, m: int, row_bits: int, s_params: int):
        self.n, self.m, self.row_bits, self.s_params = int(n), int(m), int(row_bits), int(s_params)

    def __call__(self, mask: np.ndarray, n_bases: int, base_bits: int) -> int:
        """Eq. 1 with ``n_bases`` bases of ``base_bits`` bits.

        Parameters
        ----------
        mask : (l_t,) bool
            The candidate base positions (not read: Eq. 1 needs only their number).
        n_bases : int
            ``n_b``.
        base_bits : int
            ``l_b``.
        """
        return eq1(n_bases, base_bits, self.row_bits - base_bits, self.n, self.m, self.s_params)


def greedy_search(T: np.ndarray, counts: np.ndarray, entropy: np.ndarray, n_rows: int, tau: int,
                  cost: Callable, max_bases: int | None = None):
    """The greedy base-position search, minimising ``cost``.

    Parameters
    ----------
    T : (l_t, ceil(n_rows / 64)) uint64
        Transposed bits of the rows being compressed.
    counts : (l_t,) int
        Set-bit counts over those rows; constant positions start the base.
    entropy : (l_t,) float64
        Order key: remaining positions are tried by increasing entropy
        (ties: lower position first).
    n_rows : int
        ``n + m``, the rows of ``T``.
    tau : int
        Plateau threshold: stop after ``tau`` tried positions without a
        smaller size.
    cost : callable
        ``cost(mask, n_bases, base_bits) -> size`` of the table under the
        base positions ``mask`` (a live array: the search changes it after
        the call), with ``n_bases`` distinct bases of ``base_bits`` bits.
        Called once per tried base, in order, starting with the constant
        positions only.
    max_bases : int, optional
        Stop before a base that splits the rows into more bases than this.

    Returns
    -------
    base_mask : (l_t,) bool
        The base of the smallest size (the first one reached on a tie).
    n_bases : int
    labels : (n_rows,) int64
        Base ID of every row, numbered by first occurrence.
    sizes : int64
        The size after each tried addition, rounded (``sizes[0]``: constants only).
    """
    counts = np.asarray(counts)
    const = (counts == 0) | (counts == n_rows)
    live = np.flatnonzero(~const)
    order = live[np.lexsort((live, entropy[live]))]
    labels = np.zeros(n_rows, dtype=np.int64)
    table = np.full(2 * n_rows + 2, -1, dtype=np.int64)
    mask = const.copy()
    n_b, l_b = 1, int(const.sum())
    best = cost(mask, 1, l_b)
    best_k, best_nb, best_labels = 0, 1, labels.copy()
    sizes = [best]
    c = 0
    for step, k in enumerate(order.tolist(), 1):
        n_b = int(_bits._refine(T[k], labels, n_b, table))
        if max_bases is not None and n_b > max_bases:
            break
        mask[k] = True
        l_b += 1
        s = cost(mask, n_b, l_b)
        sizes.append(s)
        if s < best:
            best, best_k, best_nb = s, step, n_b
            best_labels[:] = labels
            c = 0
        else:
            c += 1
            if c >= tau or n_b == n_rows:
                break
    base_mask = const.copy()
    base_mask[order[:best_k]] = True
    return base_mask, best_nb, best_labels, np.asarray(np.round(sizes), dtype=np.int64)


def greedy_base_selection(T: np.ndarray, counts: np.ndarray, entropy: np.ndarray,
                          n: int, m: int, tau: int, s_params: int = 0):
    """Greedy base-position search under Eq. 1 (Algorithm 1, lines 10-27).

    Parameters
    ----------
    T : (l_t, ceil((n + m) / 64)) uint64
        Transposed bits of the ``n + m`` rows being compressed.
    counts : (l_t,) int
        Set-bit counts over those rows; constant positions start the base.
    entropy : (l_t,) float64
        Order key: remaining positions are tried by increasing entropy
        (ties: lower position first).
    n, m : int
        Original and condensed rows, as in Eq. 1.
    tau : int
        The plateau threshold.
    s_params : int, default 0
        ``S_params`` of Eq. 1.

    Returns
    -------
    base_mask : (l_t,) bool
    n_bases : int
    labels : (n + m,) int64
        Base ID of every row, numbered by first occurrence.
    sizes : int64
        Eq. 1 after each tried addition (``sizes[0]``: constants only).
    """
    return greedy_search(T, counts, entropy, int(n) + int(m), int(tau), Eq1Cost(n, m, T.shape[0], s_params))
