"""Coreset baselines of the paper's tables: GRAD-MATCH, GLISTER, DQ and TDDS.

Each method is a pure selection function over arrays -- last-layer logits and
penultimate features, or prediction trajectories -- returning indices (and
weights where the method has them), plus a thin wrapper that computes those
arrays with a model and is what :func:`gedenb.torch.train` calls
(:func:`select`):

==========  ==============================================  ==============  =======
method      selection                                       when            weights
==========  ==============================================  ==============  =======
gradmatch   per-class OMP on last-layer gradients           every R epochs  yes
glister     greedy bi-level selection (Taylor)              every R epochs  no
dq          GraphCut bins, uniform sampling from each bin   once            no
tdds        temporal dual-depth score, top-k                once            no
==========  ==============================================  ==============  =======

* GRAD-MATCH -- K. Killamsetty et al., *GRAD-MATCH: Gradient Matching based
  Data Subset Selection for Efficient Deep Model Training*, ICML 2021.
  Per class c, orthogonal matching pursuit with non-negative, ridge-regularised
  weights finds ``k_c`` samples whose weighted last-layer gradients approximate
  the class's summed gradient: ``min_w ||sum_i w_i g_i - sum_j g_j||^2 +
  lam ||w||^2`` (the CORDS "PerClass" variant, ``lam`` 0.5).
* GLISTER -- K. Killamsetty et al., *GLISTER: Generalization based Data
  Subset Selection for Efficient and Robust Learning*, AAAI 2021.
  GLISTER-ONLINE: greedily add the sample whose last-layer gradient has the
  largest inner product with the validation-loss gradient at the one-step
  updated parameters ``theta - eta * sum_{i in S} g_i`` (the Taylor
  approximation of the validation loss), updating that gradient after every
  addition; stochastic greedy over ``(n / k) ln(1 / epsilon)`` random
  candidates per step.
* DQ -- D. Zhou et al., *Dataset Quantization*, ICCV 2023.  Per class, the
  data are split into ``bins`` non-overlapping bins, each built greedily by
  the GraphCut submodular gain ``lam * sum_{i in R} s(i, x) - 2 sum_{j in S}
  s(j, x) - s(x, x)`` on the remaining data R (``s`` the cosine similarity
  of embeddings mapped to [0, 1]); the coreset samples the same share of every
  bin uniformly at random.  Embeddings are last-layer gradients of a feature
  extractor (as in the DQ code); see :func:`select_dq` for the one used here.
* TDDS -- X. Zhang et al., *Spanning Training Progress: Temporal Dual-Depth
  Scoring (TDDS) for Enhanced Dataset Pruning*, CVPR 2024.  Train on the full
  data for ``T`` epochs recording every sample's predicted probabilities
  ``p_t``; per epoch the contribution ``d_t = sum_c |p_t(c) log(p_t(c) /
  p_{t-1}(c))|``; per window of ``K`` epochs the spread ``||d - mean(d)||_2``
  of its ``K - 1`` contributions; the score is the exponential moving
  average of the windows' spreads; the coreset is the top-k scores.

Last-layer gradients are computed in closed form from the logits ``z`` and
the last linear layer's input ``h``: for cross-entropy, ``dL/db = softmax(z)
- onehot(y)`` and ``dL/dW = (softmax(z) - onehot(y)) h^T``
(:func:`last_layer_gradients`).  The selection functions never materialise
the ``n x C(d+1)`` gradient matrix: inner products of such gradients factor as
``g_i . g_j = (e_i . e_j)(1 + h_i . h_j)`` with ``e = softmax - onehot``.

Memory: :class:`MemoryMonitor` samples the process's resident set size in a
thread and reports, per phase (selection, training), the peak growth above
the level at the start of the run; freed heap is returned to the OS
(``malloc_trim``) when a phase starts, so a phase is not credited with memory
an earlier one freed.
"""

from __future__ import annotations

import copy
import ctypes
import math
import os
import threading
import weakref
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Sampler

__all__ = [
    "CORESET_METHODS",
    "CoresetInfeasible",
    "MemoryMonitor",
    "Selection",
    "SubsetSampler",
    "dq_bins",
    "dq_sample",
    "embeddings",
    "glister_select",
    "gradmatch_select",
    "last_layer_gradients",
    "last_linear",
    "omp",
    "select",
    "select_dq",
    "select_glister",
    "select_gradmatch",
    "select_tdds",
    "tdds_scores",
]

#: methods implemented here; ``gradmatch`` and ``glister`` reselect every
#: ``select_every`` epochs, ``dq`` and ``tdds`` select once before training.
CORESET_METHODS = ("gradmatch", "glister", "dq", "tdds")
ADAPTIVE = ("gradmatch", "glister")


class CoresetInfeasible(ValueError):
    """The method cannot select at this size (e.g. DQ at 1% of bins of 50 samples per class)."""


class Selection(NamedTuple):
    """A selected subset of the training set.

    indices : (k,) int64 indices into the training set, distinct
    weights : (k,) float64 per-sample loss weights, or None (uniform)
    images_read : int, training images decoded to make this selection
    info : dict of method-specific diagnostics
    """

    indices: np.ndarray
    weights: np.ndarray | None
    images_read: int
    info: dict


# --------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------


def budget(n: int, fraction: float) -> int:
    """``max(1, round(fraction * n))``: the subset size every method uses."""
    if not 0 < float(fraction) <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    return max(1, int(round(float(fraction) * int(n))))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _check_lfy(logits, features, labels, name=""):
    logits = np.asarray(logits, dtype=np.float64)
    features = np.asarray(features, dtype=np.float64)
    labels = np.asarray(labels)
    if logits.ndim != 2 or features.ndim != 2 or labels.ndim != 1:
        raise ValueError(f"{name}logits (n, C), features (n, d) and labels (n,) expected, got shapes "
                         f"{logits.shape}, {features.shape}, {labels.shape}")
    if not len(logits) == len(features) == len(labels):
        raise ValueError(f"{name}logits, features and labels must have the same length")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{name}labels must be integers, got {labels.dtype}; use .astype(np.int64)")
    if len(labels) and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"{name}labels must be in [0, {logits.shape[1]})")
    if not (np.isfinite(logits).all() and np.isfinite(features).all()):
        raise ValueError(f"{name}logits and features must be finite")
    return logits, features, labels.astype(np.int64)


def _residuals(logits, labels) -> np.ndarray:
    """``softmax(z) - onehot(y)``: the cross-entropy gradient w.r.t. the logits."""
    e = _softmax(logits)
    e[np.arange(len(labels)), labels] -= 1.0
    return e


def last_layer_gradients(logits, features, labels) -> np.ndarray:
    """Per-sample cross-entropy gradients w.r.t. the last linear layer, in closed form.

    Parameters
    ----------
    logits : (n, C) array, the layer's outputs
    features : (n, d) array, the layer's inputs
    labels : (n,) integer array

    Returns
    -------
    (n, C + C*d) float64 array: ``[dL/db, dL/dW]`` with ``dL/db = softmax(z)
    - onehot(y)`` and ``dL/dW = outer(dL/db, h)`` flattened row-major
    (class-major, as ``torch.nn.Linear.weight``).

    Examples
    --------
    >>> g = last_layer_gradients(np.zeros((1, 2)), np.array([[1.0, 2.0]]), np.array([0]))
    >>> g.round(3).tolist()
    [[-0.5, 0.5, -0.5, -1.0, 0.5, 1.0]]
    """
    logits, features, labels = _check_lfy(logits, features, labels)
    e = _residuals(logits, labels)
    n = len(e)
    return np.concatenate([e, (e[:, :, None] * features[:, None, :]).reshape(n, -1)], axis=1)


def last_linear(model: torch.nn.Module) -> torch.nn.Linear:
    """The last ``torch.nn.Linear`` registered in ``model`` (its classifier, for LeNet5 and ResNet)."""
    last = None
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            last = m
    if last is None:
        raise ValueError("the model has no torch.nn.Linear layer; last-layer gradients need one")
    return last


def _model_device(model):
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def embeddings(model: torch.nn.Module, dataset, indices=None, *, batch_size: int = 1000):
    """Logits, last-layer inputs and labels of ``dataset[indices]`` (model in eval mode).

    Parameters
    ----------
    model : torch.nn.Module with a final ``torch.nn.Linear`` (:func:`last_linear`)
    dataset : an :class:`~gedenb.torch.ImageDataset` (anything with ``__getitems__``)
    indices : 1-D integer array, optional (default: every sample)
    batch_size : int

    Returns
    -------
    logits (k, C) float32, features (k, d) float32, labels (k,) int64
    """
    layer = last_linear(model)
    idx = np.arange(len(dataset), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
    device = _model_device(model)
    logits = np.empty((len(idx), layer.out_features), np.float32)
    feats = np.empty((len(idx), layer.in_features), np.float32)
    labels = np.empty(len(idx), np.int64)
    seen = {}
    hook = layer.register_forward_hook(lambda mod, inp, out: seen.__setitem__("h", inp[0]))
    was_training = model.training
    model.eval()
    try:
        for s in range(0, len(idx), batch_size):
            x, y = dataset.__getitems__(idx[s:s + batch_size])
            out = model(x.to(device))
            k = len(y)
            logits[s:s + k] = out.float().cpu().numpy()
            feats[s:s + k] = seen["h"].reshape(k, -1).float().cpu().numpy()
            labels[s:s + k] = np.asarray(y)
    finally:
        hook.remove()
        model.train(was_training)
    return logits, feats, labels


class SubsetSampler(Sampler):
    """Serve the current subset of a training set in a fresh seeded order every epoch.

    The coreset methods swap the subset with :meth:`set_subset` (GRAD-MATCH
    and GLISTER every few epochs); the DataLoader need not be rebuilt.
    Batches come in :meth:`order`'s order, so the weights of a batch are the
    next ``len(batch)`` entries of :meth:`weights_in_order`.
    """

    def __init__(self, n: int, *, seed: int = 0):
        if int(n) < 1:
            raise ValueError("need at least one sample")
        self.n = int(n)
        self.seed = int(seed)
        self.epoch = 0
        self.indices = np.arange(self.n, dtype=np.int64)
        self.weights = None

    def set_subset(self, indices, weights=None) -> None:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or len(idx) == 0:
            raise ValueError("indices must be a non-empty 1-D array")
        if idx.min() < 0 or idx.max() >= self.n or len(np.unique(idx)) != len(idx):
            raise ValueError(f"indices must be distinct and in [0, {self.n})")
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != idx.shape or not np.isfinite(weights).all() or (weights < 0).any():
                raise ValueError("weights must be finite, non-negative, one per index")
        self.indices, self.weights = idx, weights

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _perm(self) -> np.ndarray:
        return np.random.default_rng([self.seed, self.epoch, 0x5EED]).permutation(len(self.indices))

    def order(self) -> np.ndarray:
        """This epoch's indices, in the order they are served."""
        return self.indices[self._perm()]

    def weights_in_order(self) -> np.ndarray | None:
        return None if self.weights is None else self.weights[self._perm()]

    def __iter__(self):
        return iter(self.order().tolist())

    def __len__(self) -> int:
        return len(self.indices)


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class MemoryMonitor:
    """Peak resident memory per phase of a run, above the level at its start.

    A thread reads ``/proc/self/statm`` every ``interval`` seconds and keeps,
    for the current phase, the largest resident set size seen; on entering a
    phase freed heap is handed back to the OS (glibc ``malloc_trim``), so
    what one phase freed is not counted in the next.  :meth:`growth` is the
    phase's peak minus the resident size at :meth:`start` (model, optimiser
    and in-memory data already included there).  Where ``/proc`` is missing
    (not Linux) every growth reads 0.  On CUDA the allocator's peak per phase
    is kept as well (:attr:`gpu_peaks`).

    Examples
    --------
    >>> mon = MemoryMonitor().start()
    >>> with mon.phase("work"):
    ...     block = np.ones(20_000_000 // 8)
    >>> mon.stop(); del block
    >>> mon.growth("work") >= 0
    True
    """

    def __init__(self, interval: float = 0.002, device=None):
        self.interval = float(interval)
        self.device = torch.device(device) if device is not None else None
        self.peaks: dict = {}
        self.gpu_peaks: dict = {}
        self.baseline = 0
        self.current = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = None

    @property
    def cuda(self) -> bool:
        return self.device is not None and self.device.type == "cuda"

    def start(self) -> MemoryMonitor:
        _malloc_trim()
        self.baseline = _rss_bytes() or 0
        if _rss_bytes() is not None:
            # the thread holds the monitor weakly: it ends with stop() or when the monitor is dropped
            ref, stop, interval = weakref.ref(self), self._stop, self.interval

            def run():
                while not stop.wait(interval):
                    mon = ref()
                    if mon is None:
                        return
                    mon._sample()
                    del mon

            self._thread = threading.Thread(target=run, name="gedenb-memory-monitor", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        phase = self.current
        if phase is None:
            return
        rss = _rss_bytes()
        if rss is not None:
            with self._lock:
                if rss > self.peaks.get(phase, 0):
                    self.peaks[phase] = rss

    def switch(self, name: str | None) -> str | None:
        """Attribute samples to phase ``name`` from now on (None: to no phase); returns the previous phase."""
        prev = self.current
        if prev is not None:
            self._sample()
            if self.cuda:
                torch.cuda.synchronize(self.device)
                peak = int(torch.cuda.max_memory_allocated(self.device))
                self.gpu_peaks[prev] = max(self.gpu_peaks.get(prev, 0), peak)
        self.current = None
        if name is not None:
            _malloc_trim()
            if self.cuda:
                torch.cuda.synchronize(self.device)
                torch.cuda.reset_peak_memory_stats(self.device)
            self.current = name
            self._sample()
        return prev

    def phase(self, name: str):
        """Context manager: :meth:`switch` to ``name`` inside, back to the outer phase after."""
        mon = self

        class _Phase:
            def __enter__(self):
                self.outer = mon.switch(name)
                return mon

            def __exit__(self, *exc):
                mon.switch(self.outer)
                return False

        return _Phase()

    def growth(self, name: str) -> int:
        """Peak resident bytes seen in phase ``name`` minus the baseline (0 if never entered)."""
        return max(0, self.peaks.get(name, 0) - self.baseline) if name in self.peaks else 0

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


# --------------------------------------------------------------------------
# GRAD-MATCH
# --------------------------------------------------------------------------


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
    logits : (n, C), features : (n, d), labels : (n,)
        The last linear layer's outputs and inputs (:func:`embeddings`).
    k : int, subset size
    lam, tol : OMP regularisation and stopping tolerance
    rng : numpy Generator or seed, for the random fill

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


# --------------------------------------------------------------------------
# GLISTER
# --------------------------------------------------------------------------


def glister_select(logits, features, labels, val_logits, val_features, val_labels, k: int, *, eta: float,
                   greedy: str = "stochastic", epsilon: float = 0.01, rng=None):
    """GLISTER-ONLINE: greedy selection maximising the one-step validation log-likelihood (Taylor).

    With ``G_S = sum_{i in S} g_i`` (last-layer gradients) the validation
    loss after one step is approximated around the current one-step point:
    the gain of sample e is ``g_e . grad L_V(theta - eta G_S)``, so each
    step adds the candidate with the largest gain and recomputes the
    validation gradient at ``theta - eta G_S`` -- exactly, in closed form,
    for the last layer (validation logits move by ``-eta (b_S + W_S h)``).

    Parameters
    ----------
    logits, features, labels : training candidates (n, C), (n, d), (n,)
    val_logits, val_features, val_labels : the validation split
    k : int, subset size
    eta : float > 0, the step size (the current learning rate)
    greedy : ``"stochastic"`` (each step scores ``(n / k) ln(1 / epsilon)``
        random remaining candidates; CORDS's default) or ``"naive"`` (all)
    rng : numpy Generator or seed

    Returns
    -------
    Selection (no weights), indices in selection order; ``info["val_loss"]``
    holds the validation loss at ``theta - eta G_S`` after each addition.
    """
    logits, features, labels = _check_lfy(logits, features, labels)
    vz0, vh, vy = _check_lfy(val_logits, val_features, val_labels, "val_")
    n, m = len(labels), len(vy)
    if logits.shape[1] != vz0.shape[1] or features.shape[1] != vh.shape[1]:
        raise ValueError("training and validation logits/features must have the same widths")
    if not 1 <= int(k) <= n or m < 1:
        raise ValueError(f"k must be in [1, {n}] and the validation split non-empty")
    if not eta > 0:
        raise ValueError(f"eta must be > 0, got {eta}")
    if greedy not in ("stochastic", "naive"):
        raise ValueError(f"greedy must be 'stochastic' or 'naive', got {greedy!r}")
    if not 0 < epsilon < 1:
        raise ValueError("epsilon must be in (0, 1)")
    rng = np.random.default_rng(rng)
    k = int(k)
    e = _residuals(logits, labels)
    vrows = np.arange(m)
    z = vz0.copy()  # validation logits at theta - eta * G_S

    def val_state(z):
        p = _softmax(z)
        loss = float(-np.log(np.maximum(p[vrows, vy], 1e-300)).mean())
        p[vrows, vy] -= 1.0
        return p.mean(0), (p.T @ vh) / m, loss  # mean validation gradient (bias, weight), loss

    vb, vw, loss = val_state(z)
    remaining = np.ones(n, dtype=bool)
    pool = np.arange(n)
    sample = n if greedy == "naive" else max(1, min(n, int(n / k * math.log(1 / epsilon))))
    chosen, losses = [], []
    for _ in range(k):
        cand = pool[remaining]
        if sample < len(cand):
            cand = rng.choice(cand, size=sample, replace=False)
        gains = np.einsum("ic,ic->i", e[cand], vb[None, :] + features[cand] @ vw.T)
        best = int(cand[int(np.argmax(gains))])
        chosen.append(best)
        remaining[best] = False
        # theta -= eta * g_best: logits z_v -= eta * (1 + h_v . h_best) * e_best
        z -= eta * (1.0 + vh @ features[best])[:, None] * e[best][None, :]
        vb, vw, loss = val_state(z)
        losses.append(loss)
    return Selection(np.asarray(chosen, dtype=np.int64), None, 0, {"val_loss": np.asarray(losses)})


# --------------------------------------------------------------------------
# DQ
# --------------------------------------------------------------------------


def _cosine01(e: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``0.5 + 0.5 cos(g_i, g_j)`` of last-layer gradients, float32, from the factored Gram matrix."""
    e32, h32 = e.astype(np.float32), h.astype(np.float32)
    g = h32 @ h32.T
    g += 1.0
    g *= e32 @ e32.T  # g_i . g_j = (e_i . e_j)(1 + h_i . h_j)
    norm = np.sqrt(np.maximum(np.diag(g), 1e-30)).astype(np.float32)
    g /= norm[:, None]
    g /= norm[None, :]
    np.clip(g, -1.0, 1.0, out=g)
    g *= 0.5
    g += 0.5
    return g


def dq_bins(similarity, n_bins: int, *, lam: float = 1.0):
    """DQ bin generation on one class: ``n_bins`` disjoint greedy GraphCut bins covering every sample.

    Bin b takes ``round(r / (n_bins - b))`` of the r samples still
    unassigned (the last bin takes the rest), each chosen greedily by the
    GraphCut marginal gain on the remaining set R:
    ``f(S) = lam sum_{i in R, j in S} s_ij - sum_{i, j in S} s_ij``,
    gain ``lam sum_{i in R} s_ix - 2 sum_{j in S} s_jx - s_xx``.

    Parameters
    ----------
    similarity : (n, n) symmetric non-negative array
    n_bins : int >= 1
    lam : float

    Returns
    -------
    bins : list of int64 index arrays, in selection order
    gains : list of float64 arrays, the marginal gain of each selected sample
        (non-increasing within a bin: GraphCut with non-negative similarity is
        submodular, and greedy gains of a submodular function never increase)
    """
    s = np.asarray(similarity)
    n = s.shape[0] if s.ndim == 2 else 0
    if s.ndim != 2 or s.shape != (n, n) or n == 0:
        raise ValueError(f"similarity must be a non-empty square matrix, got shape {s.shape}")
    if int(n_bins) < 1:
        raise ValueError("n_bins must be >= 1")
    if not np.isfinite(s).all() or (s < 0).any():
        raise ValueError("similarity must be finite and non-negative")
    remaining = np.ones(n, dtype=bool)
    colsum = s.sum(axis=0, dtype=np.float64)  # sum over R of s_ix
    diag = np.diag(s).astype(np.float64)
    bins, gains = [], []
    for b in range(int(n_bins)):
        r = int(remaining.sum())
        size = r if b == int(n_bins) - 1 else int(round(r / (int(n_bins) - b)))
        acc = np.zeros(n, dtype=np.float64)  # sum over S of s_jx
        chosen, g = [], []
        for _ in range(size):
            gain = lam * colsum - 2.0 * acc - diag
            gain[~remaining] = -np.inf
            x = int(np.argmax(gain))
            chosen.append(x)
            g.append(gain[x])
            remaining[x] = False
            acc += s[x]
        chosen = np.asarray(chosen, dtype=np.int64)
        if len(chosen):
            colsum -= s[chosen].sum(axis=0, dtype=np.float64)
        bins.append(chosen)
        gains.append(np.asarray(g, dtype=np.float64))
    return bins, gains


def dq_sample(bins_per_class, fraction: float, rng=None) -> np.ndarray:
    """Uniform sampling of ``round(fraction * |bin|)`` samples from every (class, bin) of DQ.

    ``bins_per_class`` is a list (one per class) of lists of global index
    arrays (the bins of that class).
    """
    if not 0 < float(fraction) <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    rng = np.random.default_rng(rng)
    out = []
    for bins in bins_per_class:
        for b in bins:
            take = int(round(float(fraction) * len(b)))
            if take:
                out.append(rng.choice(np.asarray(b, dtype=np.int64), size=take, replace=False))
    if not out:
        sizes = sorted({len(b) for bins in bins_per_class for b in bins})
        raise CoresetInfeasible(f"DQ: {fraction:g} of bins of {sizes[0]}-{sizes[-1]} samples per class rounds to "
                                "zero samples in every bin (use fewer bins or a larger fraction)")
    return np.concatenate(out)


# --------------------------------------------------------------------------
# TDDS
# --------------------------------------------------------------------------


def tdds_scores(probs, window: int, decay: float = 0.9) -> np.ndarray:
    """Temporal dual-depth scores from per-epoch predicted probabilities.

    Parameters
    ----------
    probs : (T, n, C) array, ``probs[t, i]`` sample i's predicted class
        probabilities in training epoch t
    window : int, K in [2, T] epochs per window
    decay : float in (0, 1), beta of the moving average

    Returns
    -------
    (n,) float64: ``sum_k beta (1 - beta)^(T - K - k) ||d_k - mean(d_k)||_2``
    over windows k = 0..T-K, where ``d_k`` holds the K - 1 contributions
    ``d_t = sum_c |p_t(c) (log p_t(c) - log p_{t-1}(c))|`` for t = k+1..k+K-1.
    Probabilities are offset by 1e-8 inside the logarithms, as the TDDS code.

    Examples
    --------
    >>> p = np.array([[[0.5, 0.5]], [[0.5, 0.5]], [[0.9, 0.1]]])
    >>> float(tdds_scores(p, window=3, decay=0.5)[0].round(4))  # 0.5 * |0 - 0.69| / sqrt(2)
    0.2439
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(f"probs must be (T, n, C), got shape {p.shape}")
    T = p.shape[0]
    if not 2 <= int(window) <= T:
        raise ValueError(f"window must be in [2, T={T}], got {window}")
    if not 0 < decay < 1:
        raise ValueError("decay must be in (0, 1)")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probs must be finite and non-negative")
    K = int(window)
    logp = np.log(p + 1e-8)
    d = np.abs(p[1:] * (logp[1:] - logp[:-1])).sum(axis=2)  # (T-1, n): d[t-1] compares epochs t-1, t
    score = np.zeros(p.shape[1])
    for k in range(T - K + 1):
        dk = d[k:k + K - 1]
        spread = np.sqrt(((dk - dk.mean(axis=0)) ** 2).sum(axis=0))
        score += spread * decay * (1 - decay) ** (T - K - k)
    return score


# --------------------------------------------------------------------------
# model-facing wrappers (what train() calls)
# --------------------------------------------------------------------------


def _fresh_optimizer(model, config):
    opt = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                          weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs)
    return opt, sched


def _train_full(model, dataset, config, epochs: int, seed: int, record: bool = False):
    """Train ``model`` in place on every sample for ``epochs`` epochs (the harness's optimiser settings).

    The schedule is the start of a ``config.epochs``-epoch cosine run.  With
    ``record``, returns the (epochs, n, C) softmax outputs of each sample seen
    in its training forward pass (as the TDDS code records them).
    """
    n = len(dataset)
    device = _model_device(model)
    opt, sched = _fresh_optimizer(model, config)
    probs = None
    model.train()
    for t in range(epochs):
        order = np.random.default_rng([seed, t, 0x7DD5]).permutation(n)
        for s in range(0, n, config.batch_size):
            idx = order[s:s + config.batch_size]
            x, y = dataset.__getitems__(idx)
            x, y = x.to(device), y.to(device)
            opt.zero_grad(set_to_none=True)
            out = model(x)
            torch.nn.functional.cross_entropy(out, y).backward()
            opt.step()
            if record:
                if probs is None:
                    probs = np.zeros((epochs, n, out.shape[1]), np.float32)
                probs[t, idx] = torch.softmax(out.detach().float(), 1).cpu().numpy()
        sched.step()
    return probs


def select_gradmatch(model, dataset, fraction: float, *, seed: int = 0, epoch: int = 0, lam: float = 0.5,
                     tol: float = 1e-4, batch_size: int = 1000) -> Selection:
    """GRAD-MATCH with the current ``model``: one pass over the training set, then :func:`gradmatch_select`."""
    logits, feats, labels = embeddings(model, dataset, batch_size=batch_size)
    sel = gradmatch_select(logits, feats, labels, budget(len(dataset), fraction), lam=lam, tol=tol,
                           rng=np.random.default_rng([seed, epoch, 0x6D]))
    return sel._replace(images_read=len(dataset))


def _validation_split(n: int, val_fraction: float, seed: int):
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    m = min(n - 1, max(1, int(round(val_fraction * n))))
    perm = np.random.default_rng([seed, 0x7A1]).permutation(n)
    return np.sort(perm[m:]), np.sort(perm[:m])


def select_glister(model, dataset, fraction: float, *, eta: float, seed: int = 0, epoch: int = 0,
                   val_fraction: float = 0.1, greedy: str = "stochastic", epsilon: float = 0.01,
                   batch_size: int = 1000) -> Selection:
    """GLISTER with the current ``model``.

    A seeded ``val_fraction`` of the training set (the same at every
    reselection) is the validation split; the subset is chosen from the rest.
    ``eta`` is the current learning rate.
    """
    n = len(dataset)
    cand, val = _validation_split(n, val_fraction, seed)
    k = min(budget(n, fraction), len(cand))
    logits, feats, labels = embeddings(model, dataset, cand, batch_size=batch_size)
    vl, vf, vy = embeddings(model, dataset, val, batch_size=batch_size)
    sel = glister_select(logits, feats, labels, vl, vf, vy, k, eta=eta, greedy=greedy, epsilon=epsilon,
                         rng=np.random.default_rng([seed, epoch, 0x61]))
    return Selection(cand[sel.indices], None, n, dict(sel.info, validation_size=len(val)))


def select_dq(model, dataset, fraction: float, *, config, seed: int = 0, epochs: int = 2, bins: int = 10,
              lam: float = 1.0, batch_size: int = 1000) -> Selection:
    """Dataset Quantization with a LeNet-scale feature extractor trained here.

    The DQ code embeds samples by the last-layer gradients of a feature
    extractor (for CIFAR/ImageNet a pretrained ResNet/ViT; the dreaMLearning
    authors' MNIST fork pretrains LeNet5 on full MNIST for 10 epochs).  Here
    the extractor is a copy of ``model`` (same initial weights) trained on
    the full training set for ``epochs`` epochs with the harness's optimiser;
    one extractor serves every bin (the DQ code retrains one per bin).  Bins
    are built per class (:func:`dq_bins`), then :func:`dq_sample` takes
    ``fraction`` of every (class, bin).
    """
    if int(epochs) < 0:
        raise ValueError("epochs must be >= 0")
    extractor = copy.deepcopy(model)
    _train_full(extractor, dataset, config, int(epochs), seed)
    logits, feats, labels = embeddings(extractor, dataset, batch_size=batch_size)
    del extractor
    e = _residuals(logits.astype(np.float64), labels)
    per_class = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        sim = _cosine01(e[members], feats[members])
        b, _ = dq_bins(sim, bins, lam=lam)
        del sim
        per_class.append([members[x] for x in b])
    idx = dq_sample(per_class, fraction, np.random.default_rng([seed, 0xD0]))
    return Selection(idx, None, (int(epochs) + 1) * len(dataset),
                     {"extractor_epochs": int(epochs), "bins": int(bins)})


def select_tdds(model, dataset, fraction: float, *, config, seed: int = 0, epochs: int = 10, window: int = 5,
                decay: float = 0.9) -> Selection:
    """TDDS: train a copy of ``model`` on the full data for ``epochs`` epochs, score, keep the top ``fraction``."""
    if int(epochs) < 2:
        raise ValueError("TDDS needs at least 2 epochs of training dynamics")
    net = copy.deepcopy(model)
    probs = _train_full(net, dataset, config, int(epochs), seed, record=True)
    del net
    scores = tdds_scores(probs, min(int(window), int(epochs)), decay)
    k = budget(len(dataset), fraction)
    idx = np.argsort(-scores, kind="stable")[:k]
    return Selection(idx.astype(np.int64), None, int(epochs) * len(dataset),
                     {"epochs": int(epochs), "window": min(int(window), int(epochs))})


def select(method: str, model, dataset, fraction: float, *, config, epoch: int = 0, lr: float | None = None,
           options: dict | None = None) -> Selection:
    """Run coreset ``method`` (one of :data:`CORESET_METHODS`) with the harness's settings.

    ``options`` are keyword arguments of that method's ``select_*`` function
    (e.g. ``{"epochs": 5}`` for TDDS).  ``lr`` is GLISTER's step size
    (default ``config.lr``).
    """
    opts = dict(options or {})
    seed = int(config.seed)
    if method == "gradmatch":
        return select_gradmatch(model, dataset, fraction, seed=seed, epoch=epoch, **opts)
    if method == "glister":
        opts.setdefault("eta", float(config.lr if lr is None else lr))
        return select_glister(model, dataset, fraction, seed=seed, epoch=epoch, **opts)
    if method == "dq":
        return select_dq(model, dataset, fraction, config=config, seed=seed, **opts)
    if method == "tdds":
        return select_tdds(model, dataset, fraction, config=config, seed=seed, **opts)
    raise ValueError(f"unknown coreset method {method!r}; choose from {CORESET_METHODS}")
