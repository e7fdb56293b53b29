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

One module per method, each over the interface of :mod:`.base`
(:class:`Selection`, :class:`CoresetMethod`, last-layer gradients and
embeddings):

- :mod:`.gradmatch` -- K. Killamsetty et al., *GRAD-MATCH*, ICML 2021;
- :mod:`.glister` -- K. Killamsetty et al., *GLISTER*, AAAI 2021;
- :mod:`.dq` -- D. Zhou et al., *Dataset Quantization*, ICCV 2023;
- :mod:`.tdds` -- X. Zhang et al., *Temporal Dual-Depth Scoring*, CVPR 2024;
- :mod:`.hooks` -- the harness's :class:`SubsetSampler` and
  :class:`MemoryMonitor` (peak resident memory per phase).
"""

from __future__ import annotations

from . import dq, glister, gradmatch, tdds
from .base import (CoresetInfeasible, CoresetMethod, Selection, budget, embeddings, last_layer_gradients,
                   last_linear)
from .dq import dq_bins, dq_sample, select_dq
from .glister import glister_select, select_glister
from .gradmatch import gradmatch_select, omp, select_gradmatch
from .hooks import MemoryMonitor, SubsetSampler
from .tdds import select_tdds, tdds_scores

__all__ = [
    "CORESET_METHODS",
    "CoresetInfeasible",
    "CoresetMethod",
    "MemoryMonitor",
    "Selection",
    "SubsetSampler",
    "budget",
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

#: Every method, by name, in the order of :data:`CORESET_METHODS`.
_METHODS = {m.name: m for m in (gradmatch.METHOD, glister.METHOD, dq.METHOD, tdds.METHOD)}

#: methods implemented here; ``gradmatch`` and ``glister`` reselect every
#: ``select_every`` epochs, ``dq`` and ``tdds`` select once before training.
CORESET_METHODS = tuple(_METHODS)
ADAPTIVE = tuple(name for name, m in _METHODS.items() if m.adaptive)


def select(method: str, model, dataset, fraction: float, *, config, epoch: int = 0, lr: float | None = None,
           options: dict | None = None) -> Selection:
    """Run coreset ``method`` (one of :data:`CORESET_METHODS`) with the harness's settings.

    Parameters
    ----------
    method : str
        One of :data:`CORESET_METHODS`.
    model : torch.nn.Module
        The model being trained (its last linear layer gives the embeddings).
    dataset : ImageDataset
        The training set (anything with ``__getitems__``).
    fraction : float
        Subset size as a share of ``len(dataset)``, in (0, 1].
    config : TrainConfig
        The harness's settings (seed, optimiser, epochs).
    epoch : int
        The current epoch (seeds the adaptive methods' reselections).
    lr : float, optional
        GLISTER's step size (default ``config.lr``).
    options : dict, optional
        Keyword arguments of that method's ``select_*`` function (e.g.
        ``{"epochs": 5}`` for TDDS).

    Returns
    -------
    Selection
    """
    if method not in _METHODS:
        raise ValueError(f"unknown coreset method {method!r}; choose from {CORESET_METHODS}")
    return _METHODS[method].run(model, dataset, fraction, config, epoch, lr, dict(options or {}))
