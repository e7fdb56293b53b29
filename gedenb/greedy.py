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
from ._numba import njit
from .sizes import _eq1, eq1

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
        self.args = (self.n, self.m, self.row_bits, self.s_params)

    @property
    def compiled_search(self):
        """The search loop compiled with this cost inlined (called with :attr:`args`)."""
        return _EQ1_SEARCH

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
        A cost with a ``compiled_search`` (:class:`Eq1Cost`) runs the same
        loop compiled, the cost inlined, with its ``args``.
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
    order = np.ascontiguousarray(live[np.lexsort((live, entropy[live]))], dtype=np.int64)
    labels = np.zeros(n_rows, dtype=np.int64)
    limit = int(n_rows if max_bases is None else max_bases)
    search = getattr(cost, "compiled_search", None)
    if search is not None:  # the loop compiled with the cost inlined: no Python call per step
        args, sizes = cost.args, np.empty(order.size + 1, dtype=np.int64)
    else:
        search, args, sizes = _search_loop(_python_cost(cost)), None, np.empty(order.size + 1, dtype=np.float64)
    best_k, best_nb, best_labels, steps = search(T, order, const.copy(), labels, int(const.sum()), int(n_rows),
                                                 int(tau), limit, args, sizes)
    base_mask = const.copy()
    base_mask[order[:best_k]] = True
    return base_mask, int(best_nb), best_labels, np.asarray(np.round(sizes[:steps + 1]), dtype=np.int64)


def _search_loop(cost):
    """The greedy loop (Algorithm 1, lines 12-27) minimising ``cost(mask, n_bases, base_bits, args)``.

    A factory, so that one source serves both uses: compiled with Eq. 1
    inlined (:data:`_EQ1_SEARCH`; a Python call per step made compressing an
    MNIST class measurably slower: docs/BENCHMARKS.md, "Restructuring
    check") and as plain Python around any other cost (the coded size, which
    fits models in Python anyway).  ``mask`` and
    ``labels`` are updated in place; returns ``(best_k, best_nb,
    best_labels, steps)``, the sizes in ``sizes[:steps + 1]``.
    """
    def search(T, order, mask, labels, l_b, n_rows, tau, max_bases, args, sizes):
        table = np.full(2 * n_rows + 2, -1, dtype=np.int64)
        n_b = 1
        best = cost(mask, 1, l_b, args)
        sizes[0] = best
        best_k, best_nb, best_labels = 0, 1, labels.copy()
        c = 0
        steps = 0
        for step in range(1, order.shape[0] + 1):
            k = order[step - 1]
            n_b = _bits._refine(T[k], labels, n_b, table)
            if n_b > max_bases:
                break
            mask[k] = True
            l_b += 1
            s = cost(mask, n_b, l_b, args)
            sizes[step] = s
            steps = step
            if s < best:
                best, best_k, best_nb = s, step, n_b
                best_labels[:] = labels
                c = 0
            else:
                c += 1
                if c >= tau or n_b == n_rows:
                    break
        return best_k, best_nb, best_labels, steps

    return search


def _python_cost(cost: Callable):
    """``cost(mask, n_bases, base_bits)`` in the loop's calling convention."""
    def call(mask, n_bases, base_bits, args):
        return cost(mask, int(n_bases), int(base_bits))

    return call


@njit(inline="always")
def _eq1_cost(mask, n_b, l_b, args):
    n, m, l_t, s_params = args
    return _eq1(n_b, l_b, l_t - l_b, n, m, s_params)


#: The greedy loop under Eq. 1, compiled.
_EQ1_SEARCH = njit(_search_loop(_eq1_cost), variant="eq1")


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
