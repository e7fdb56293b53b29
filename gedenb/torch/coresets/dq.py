"""DQ (Dataset Quantization): GraphCut bins per class, uniform sampling from each bin (selects once).

DQ -- D. Zhou et al., *Dataset Quantization*, ICCV 2023.  Per class, the
data are split into ``bins`` non-overlapping bins, each built greedily by
the GraphCut submodular gain ``lam * sum_{i in R} s(i, x) - 2 sum_{j in S}
s(j, x) - s(x, x)`` on the remaining data R (``s`` the cosine similarity
of embeddings mapped to [0, 1]); the coreset samples the same share of every
bin uniformly at random.  Embeddings are last-layer gradients of a feature
extractor (as in the DQ code); see :func:`select_dq` for the one used here.
"""

from __future__ import annotations

import copy

import numpy as np

from .base import CoresetInfeasible, CoresetMethod, Selection, _residuals, _train_full, embeddings

__all__ = ["dq_bins", "dq_sample", "select_dq"]


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

    Parameters
    ----------
    bins_per_class : list of lists of int arrays
        One list per class of the global indices of each of its bins (:func:`dq_bins`).
    fraction : float
        Share of every bin to take, in (0, 1].
    rng : numpy Generator or seed, optional
        For the uniform draws.

    Returns
    -------
    (k,) int64
        The drawn indices, bin after bin.

    Raises
    ------
    CoresetInfeasible
        When ``fraction`` rounds to zero samples in every bin.
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

    Parameters
    ----------
    model : torch.nn.Module
        The model to train; the extractor is a copy of it (left unchanged).
    dataset : ImageDataset
        The training set.
    fraction : float
        Share of every (class, bin) to keep, in (0, 1].
    config : TrainConfig
        The harness's optimiser settings, for the extractor's training.
    seed : int
        Seeds the extractor's batch order and the sampling.
    epochs : int >= 0
        Full-data epochs of the extractor's training.
    bins : int
        Bins per class.
    lam : float
        GraphCut's ``lam`` (:func:`dq_bins`).
    batch_size : int
        Samples per forward pass of the embeddings.

    Returns
    -------
    Selection
        No weights; ``images_read`` counts the extractor's epochs and the embedding pass.
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


def _run(model, dataset, fraction, config, epoch, lr, options) -> Selection:
    return select_dq(model, dataset, fraction, config=config, seed=int(config.seed), **options)


METHOD = CoresetMethod("dq", False, _run)
