"""GRAD-MATCH: per-class orthogonal matching pursuit on last-layer gradients (reselects every R epochs).

GRAD-MATCH -- K. Killamsetty et al., *GRAD-MATCH: Gradient Matching based
Data Subset Selection for Efficient Deep Model Training*, ICML 2021.
Per class c, orthogonal matching pursuit with non-negative, ridge-regularised
weights finds ``k_c`` samples whose weighted last-layer gradients approximate
the class's summed gradient: ``min_w ||sum_i w_i g_i - sum_j g_j||^2 +
lam ||w||^2`` (the CORDS "PerClass" variant, ``lam`` 0.5).
"""

from __future__ import annotations

import numpy as np

from .base import CoresetMethod, Selection, _check_lfy, _residuals, budget, embeddings

__all__ = ["gradmatch_select", "omp", "select_gradmatch"]


class _LastLayerAtoms:
    """Last-layer gradients ``g_i = [e_i, e_i h_i^T]`` kept factored as (E, H)."""

    def __init__(self, e: np.ndarray, h: np.ndarray):
        self.e, self.h = e, h
        self.C, self.d = e.shape[1], h.shape[1]

    def __len__(self):
        return len(self.e)

    def split(self, v):
        return v[:self.C], v[self.C:].reshape(self.C, self.d)

    def correlate(self, r: np.ndarray) -> np.ndarray:
        """``G @ r`` for every atom, without forming G."""
        rb, rw = self.split(r)
        return np.einsum("ic,ic->i", self.e, rb[None, :] + self.h @ rw.T)

    def total(self) -> np.ndarray:
        return np.concatenate([self.e.sum(0), (self.e.T @ self.h).ravel()])

    def rows(self, idx) -> np.ndarray:
        e, h = self.e[idx], self.h[idx]
        return np.concatenate([e, (e[:, :, None] * h[:, None, :]).reshape(len(idx), -1)], axis=1)


class _DenseAtoms:
    def __init__(self, a: np.ndarray):
        self.a = a

    def __len__(self):
        return len(self.a)

    def correlate(self, r):
        return self.a @ r

    def rows(self, idx):
        return self.a[idx]


def _omp(atoms, b: np.ndarray, k: int, lam: float, tol: float, positive: bool):
    """Orthogonal matching pursuit with ridge-regularised (optionally non-negative) weights."""
    n = len(atoms)
    k = min(int(k), n)
    chosen: list = []
    excluded = np.zeros(n, dtype=bool)
    x = np.zeros(0)
    resid = b.copy()
    normb = float(np.linalg.norm(b))
    rows = np.zeros((0, len(b)))  # chosen atoms
    gram = np.zeros((0, 0))  # rows @ rows.T, kept up to date
    rb = np.zeros(0)  # rows @ b
    steps = 0
    while len(chosen) < k and steps < 2 * k + 10 and normb > 0:
        steps += 1
        if np.linalg.norm(resid) <= tol * normb:
            break
        score = atoms.correlate(resid)
        if not positive:
            score = np.abs(score)
        score[excluded] = -np.inf
        j = int(np.argmax(score))
        if not score[j] > 0:
            break
        excluded[j] = True  # never reconsidered, even if dropped below
        a = atoms.rows([j])[0]
        cross = rows @ a
        gram = np.block([[gram, cross[:, None]], [cross[None, :], np.array([[a @ a]])]])
        rows = np.vstack([rows, a[None, :]])
        rb = np.append(rb, a @ b)
        chosen.append(j)
        while chosen:
            x = np.linalg.solve(gram + lam * np.eye(len(chosen)), rb)
            if not positive or x.min() >= 0:
                break
            drop = int(np.argmin(x))  # as CORDS: drop the most negative weight and refit
            del chosen[drop]
            rows = np.delete(rows, drop, axis=0)
            gram = np.delete(np.delete(gram, drop, axis=0), drop, axis=1)
            rb = np.delete(rb, drop)
        if not chosen:
            x = np.zeros(0)
        resid = b - rows.T @ x
    return np.asarray(chosen, dtype=np.int64), np.asarray(x, dtype=np.float64)


def omp(A, b, k: int, *, lam: float = 0.5, tol: float = 1e-4, positive: bool = True):
    """Orthogonal matching pursuit: ``k`` columns of ``A.T`` whose weighted sum approximates ``b``.

    Solves ``min_w ||A[S].T @ w - b||^2 + lam ||w||^2`` over ``|S| <= k``
    greedily: add the row of ``A`` most correlated with the residual, refit
    the ridge weights on the chosen rows, and with ``positive`` drop the most
    negative weight until all are non-negative (as the CORDS solver).
    Stops early when the residual falls below ``tol * ||b||`` or no row
    correlates positively with it.

    Parameters
    ----------
    A : (n, D) array, one candidate per row
    b : (D,) target
    k : int, at most this many rows
    lam : float >= 0, ridge regularisation
    tol : float, relative residual at which to stop
    positive : bool, non-negative weights

    Returns
    -------
    indices (s,) int64 with s <= k, weights (s,) float64

    Examples
    --------
    >>> A = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    >>> idx, w = omp(A, np.array([2.0, 2.0]), 1, lam=0.0)
    >>> idx.tolist(), w.tolist()
    ([2], [2.0])
    """
    A = np.asarray(A, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if A.ndim != 2 or b.shape != (A.shape[1],):
        raise ValueError(f"A must be (n, D) and b (D,), got {A.shape} and {b.shape}")
    if int(k) < 1 or lam < 0:
        raise ValueError("k must be >= 1 and lam >= 0")
    return _omp(_DenseAtoms(A), b, k, float(lam), float(tol), bool(positive))


def _apportion(counts: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` across groups in proportion to ``counts`` (largest remainder, at most counts)."""
    counts = np.asarray(counts, dtype=np.int64)
    quota = total * counts / counts.sum()
    k = np.minimum(np.floor(quota).astype(np.int64), counts)
    order = np.argsort(-(quota - k), kind="stable")
    for c in order:
        if k.sum() >= total:
            break
        if k[c] < counts[c]:
            k[c] += 1
    return k


def gradmatch_select(logits, features, labels, k: int, *, lam: float = 0.5, tol: float = 1e-4, rng=None):
    """GRAD-MATCH, per class: OMP on last-layer gradients matching each class's summed gradient.

    Class c gets ``k_c`` of the ``k`` slots in proportion to its size; OMP
    (:func:`omp`, non-negative, ridge ``lam``) picks samples and weights so
    that ``sum_i w_i g_i`` approximates ``sum_{j in c} g_j``.  Slots OMP
    leaves empty (it stops when no candidate correlates positively with the
    residual) are filled with random samples of the class at weight 1, as
    CORDS does (it fills from the whole set).

    Parameters
    ----------
    logits, features, labels : (n, C), (n, d), (n,) arrays
        The last linear layer's outputs and inputs (:func:`embeddings`), and the labels.
    k : int
        Subset size.
    lam, tol : float
        OMP regularisation and stopping tolerance.
    rng : numpy Generator or seed, optional
        For the random fill.

    Returns
    -------
    Selection with ``weights``
    """
    logits, features, labels = _check_lfy(logits, features, labels)
    n = len(labels)
    if not 1 <= int(k) <= n:
        raise ValueError(f"k must be in [1, {n}], got {k}")
    rng = np.random.default_rng(rng)
    e = _residuals(logits, labels)
    classes, counts = np.unique(labels, return_counts=True)
    ks = _apportion(counts, int(k))
    idx_parts, w_parts, filled = [], [], 0
    for c, kc in zip(classes, ks):
        if kc == 0:
            continue
        members = np.flatnonzero(labels == c)
        atoms = _LastLayerAtoms(e[members], features[members])
        sel, w = _omp(atoms, atoms.total(), int(kc), float(lam), float(tol), True)
        keep = w > 0
        sel, w = sel[keep], w[keep]
        if len(sel) < kc:
            rest = np.setdiff1d(np.arange(len(members)), sel)
            extra = rng.choice(rest, size=int(kc) - len(sel), replace=False)
            filled += len(extra)
            sel, w = np.concatenate([sel, extra]), np.concatenate([w, np.ones(len(extra))])
        idx_parts.append(members[sel])
        w_parts.append(w)
    idx, w = np.concatenate(idx_parts), np.concatenate(w_parts)
    return Selection(idx.astype(np.int64), w, 0, {"random_fill": int(filled)})


def select_gradmatch(model, dataset, fraction: float, *, seed: int = 0, epoch: int = 0, lam: float = 0.5,
                     tol: float = 1e-4, batch_size: int = 1000) -> Selection:
    """GRAD-MATCH with the current ``model``: one pass over the training set, then :func:`gradmatch_select`.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained (its current weights give the embeddings).
    dataset : ImageDataset
        The training set.
    fraction : float
        Subset size as a share of ``len(dataset)``, in (0, 1].
    seed : int
        Seeds the random fill.
    epoch : int
        The current epoch (seeds the random fill).
    lam, tol : float
        OMP regularisation and stopping tolerance.
    batch_size : int
        Samples per forward pass of the embeddings.

    Returns
    -------
    Selection
        With weights; ``images_read`` is ``len(dataset)``.
    """
    logits, feats, labels = embeddings(model, dataset, batch_size=batch_size)
    sel = gradmatch_select(logits, feats, labels, budget(len(dataset), fraction), lam=lam, tol=tol,
                           rng=np.random.default_rng([seed, epoch, 0x6D]))
    return sel._replace(images_read=len(dataset))


def _run(model, dataset, fraction, config, epoch, lr, options) -> Selection:
    return select_gradmatch(model, dataset, fraction, seed=int(config.seed), epoch=epoch, **options)


METHOD = CoresetMethod("gradmatch", True, _run)
