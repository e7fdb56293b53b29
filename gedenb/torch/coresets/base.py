"""The selection interface every coreset method implements, and the helpers they share.

A method is a pure selection function over arrays (last-layer logits and
penultimate features, or prediction trajectories) that returns a
:class:`Selection`, plus a thin wrapper that computes those arrays with a
model.  The harness (:func:`gedenb.torch.train`, through
:func:`gedenb.torch.coresets.select`) sees each method as a
:class:`CoresetMethod`: its name, whether it reselects during training,
and a ``run`` function with one signature for all.

Last-layer gradients are computed in closed form from the logits ``z`` and
the last linear layer's input ``h``: for cross-entropy, ``dL/db = softmax(z)
- onehot(y)`` and ``dL/dW = (softmax(z) - onehot(y)) h^T``
(:func:`last_layer_gradients`).  The selection functions never materialise
the ``n x C(d+1)`` gradient matrix: inner products of such gradients factor as
``g_i . g_j = (e_i . e_j)(1 + h_i . h_j)`` with ``e = softmax - onehot``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch

__all__ = ["CoresetInfeasible", "CoresetMethod", "Selection", "budget", "embeddings", "last_layer_gradients",
           "last_linear"]


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


class CoresetMethod(NamedTuple):
    """A coreset method as the training harness runs it.

    name : str, the ``method`` of :func:`gedenb.torch.train`
    adaptive : bool, reselect every ``select_every`` epochs (else once, before training)
    run : ``run(model, dataset, fraction, config, epoch, lr, options) -> Selection``, the method's
        ``select_*`` wrapper called with the harness's settings (``config`` a
        :class:`~gedenb.torch.TrainConfig`, ``lr`` the current learning rate, ``options`` a dict of
        keyword arguments of the wrapper, the caller's copy)
    """

    name: str
    adaptive: bool
    run: Callable


def budget(n: int, fraction: float) -> int:
    """``max(1, round(fraction * n))``: the subset size every method uses.

    Parameters
    ----------
    n : int
        Training-set size.
    fraction : float
        Share of it to select, in (0, 1].
    """
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
    """The last ``torch.nn.Linear`` registered in ``model`` (its classifier, for LeNet5 and ResNet).

    Parameters
    ----------
    model : torch.nn.Module
        The network; its modules are searched in registration order.
    """
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

