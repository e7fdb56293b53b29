"""GLISTER: greedy bi-level selection by the Taylor-approximated validation loss (reselects every R epochs).

GLISTER -- K. Killamsetty et al., *GLISTER: Generalization based Data
Subset Selection for Efficient and Robust Learning*, AAAI 2021.
GLISTER-ONLINE: greedily add the sample whose last-layer gradient has the
largest inner product with the validation-loss gradient at the one-step
updated parameters ``theta - eta * sum_{i in S} g_i`` (the Taylor
approximation of the validation loss), updating that gradient after every
addition; stochastic greedy over ``(n / k) ln(1 / epsilon)`` random
candidates per step.
"""

from __future__ import annotations

import math

import numpy as np

from .base import CoresetMethod, Selection, _check_lfy, _residuals, _softmax, budget, embeddings

__all__ = ["glister_select", "select_glister"]


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
    logits, features, labels : (n, C), (n, d), (n,) arrays
        The training candidates' last-layer outputs, inputs and labels.
    val_logits, val_features, val_labels : (m, C), (m, d), (m,) arrays
        The same of the validation split.
    k : int
        Subset size.
    eta : float > 0
        The step size (the current learning rate).
    greedy : {"stochastic", "naive"}
        ``"stochastic"`` (each step scores ``(n / k) ln(1 / epsilon)`` random
        remaining candidates; CORDS's default) or ``"naive"`` (all).
    epsilon : float in (0, 1)
        Stochastic greedy's tolerance (more candidates per step when smaller).
    rng : numpy Generator or seed, optional
        For the stochastic candidates.

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

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained (its current weights give the embeddings).
    dataset : ImageDataset
        The training set.
    fraction : float
        Subset size as a share of ``len(dataset)``, in (0, 1].
    eta : float
        The step size: the current learning rate.
    seed : int
        Seeds the validation split and the selection.
    epoch : int
        The current epoch (seeds the selection).
    val_fraction : float in (0, 1)
        Share of the training set held out as the validation split.
    greedy : {"stochastic", "naive"}
        As in :func:`glister_select`.
    epsilon : float
        As in :func:`glister_select`.
    batch_size : int
        Samples per forward pass of the embeddings.

    Returns
    -------
    Selection
        Indices into ``dataset``, no weights.
    """
    n = len(dataset)
    cand, val = _validation_split(n, val_fraction, seed)
    k = min(budget(n, fraction), len(cand))
    logits, feats, labels = embeddings(model, dataset, cand, batch_size=batch_size)
    vl, vf, vy = embeddings(model, dataset, val, batch_size=batch_size)
    sel = glister_select(logits, feats, labels, vl, vf, vy, k, eta=eta, greedy=greedy, epsilon=epsilon,
                         rng=np.random.default_rng([seed, epoch, 0x61]))
    return Selection(cand[sel.indices], None, n, dict(sel.info, validation_size=len(val)))


def _run(model, dataset, fraction, config, epoch, lr, options) -> Selection:
    options.setdefault("eta", float(config.lr if lr is None else lr))
    return select_glister(model, dataset, fraction, seed=int(config.seed), epoch=epoch, **options)


METHOD = CoresetMethod("glister", True, _run)
