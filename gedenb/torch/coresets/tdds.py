"""TDDS (temporal dual-depth scoring): top-k samples by their training dynamics (selects once).

TDDS -- X. Zhang et al., *Spanning Training Progress: Temporal Dual-Depth
Scoring (TDDS) for Enhanced Dataset Pruning*, CVPR 2024.  Train on the full
data for ``T`` epochs recording every sample's predicted probabilities
``p_t``; per epoch the contribution ``d_t = sum_c |p_t(c) log(p_t(c) /
p_{t-1}(c))|``; per window of ``K`` epochs the spread ``||d - mean(d)||_2``
of its ``K - 1`` contributions; the score is the exponential moving
average of the windows' spreads; the coreset is the top-k scores.
"""

from __future__ import annotations

import copy

import numpy as np

from .base import CoresetMethod, Selection, _train_full, budget

__all__ = ["select_tdds", "tdds_scores"]


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


def select_tdds(model, dataset, fraction: float, *, config, seed: int = 0, epochs: int = 10, window: int = 5,
                decay: float = 0.9) -> Selection:
    """TDDS: train a copy of ``model`` on the full data for ``epochs`` epochs, score, keep the top ``fraction``.

    Parameters
    ----------
    model : torch.nn.Module
        The model to train; a copy of it records the training dynamics (left unchanged).
    dataset : ImageDataset
        The training set.
    fraction : float
        Subset size as a share of ``len(dataset)``, in (0, 1].
    config : TrainConfig
        The harness's optimiser settings, for the full-data training.
    seed : int
        Seeds the batch order of the full-data training.
    epochs : int >= 2
        Full-data epochs whose predictions are scored.
    window : int
        Epochs per window (at most ``epochs``).
    decay : float in (0, 1)
        The moving average's ``beta`` (:func:`tdds_scores`).

    Returns
    -------
    Selection
        The top-scored indices, no weights.
    """
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


def _run(model, dataset, fraction, config, epoch, lr, options) -> Selection:
    return select_tdds(model, dataset, fraction, config=config, seed=int(config.seed), **options)


METHOD = CoresetMethod("tdds", False, _run)
