"""A sampler that draws a fresh seeded random subset every epoch."""

from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Sampler

__all__ = ["EpochSubsetSampler"]


class EpochSubsetSampler(Sampler):
    """Draw a new random fraction of the data each epoch (dreaMLearning / RS2).

    Parameters
    ----------
    labels_or_n : int or 1-D array
        Number of samples, or their labels (needed for ``class_balanced``).
    fraction : float in (0, 1]
        Share of the samples drawn per epoch (without replacement).
    seed : int
        The subset of epoch ``e`` depends only on ``(seed, e)``: every rank
        and every worker agrees without communication.
    class_balanced : bool
        Draw ``round(fraction * n_c)`` from every class ``c`` (at least one).
    num_replicas, rank : int
        Shard each epoch's subset across DDP ranks like
        ``torch.utils.data.DistributedSampler`` (padded by repeating the
        first indices so every rank gets the same count).
    static : bool
        Keep epoch 0's subset for every epoch (the "random static" baseline).

    Call :meth:`set_epoch` before each epoch; the DataLoader need not be
    rebuilt.
    """

    def __init__(self, labels_or_n, fraction: float, *, seed: int = 0, class_balanced: bool = False,
                 num_replicas: int = 1, rank: int = 0, static: bool = False):
        if isinstance(labels_or_n, (int, np.integer)):
            self.n = int(labels_or_n)
            self.labels = None
        else:
            self.labels = np.asarray(labels_or_n)
            if self.labels.ndim != 1:
                raise ValueError("labels must be 1-D")
            self.n = len(self.labels)
        if self.n < 1:
            raise ValueError("need at least one sample")
        if not 0 < float(fraction) <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        if class_balanced and self.labels is None:
            raise ValueError("class_balanced=True needs the labels, not just n")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas), got rank={rank}, num_replicas={num_replicas}")
        self.fraction = float(fraction)
        self.seed = int(seed)
        self.class_balanced = bool(class_balanced)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.static = bool(static)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the subset of epoch ``epoch`` next (as ``DistributedSampler.set_epoch``).

        Parameters
        ----------
        epoch : int
            The epoch about to start.
        """
        self.epoch = int(epoch)

    def subset(self, epoch: int | None = None) -> np.ndarray:
        """All ranks' indices of an epoch, in the order they are served.

        Parameters
        ----------
        epoch : int, optional
            The epoch (default: the one :meth:`set_epoch` set).
        """
        e = 0 if self.static else (self.epoch if epoch is None else int(epoch))
        rng = np.random.default_rng([self.seed, e])
        if self.class_balanced:
            parts = []
            for c in np.unique(self.labels):
                members = np.flatnonzero(self.labels == c)
                k = max(1, int(round(self.fraction * len(members))))
                parts.append(rng.choice(members, size=k, replace=False))
            idx = np.concatenate(parts)
        else:
            k = max(1, int(round(self.fraction * self.n)))
            idx = rng.choice(self.n, size=k, replace=False)
        return rng.permutation(idx)

    def _sharded(self) -> np.ndarray:
        idx = self.subset()
        total = math.ceil(len(idx) / self.num_replicas) * self.num_replicas
        if total > len(idx):
            idx = np.concatenate([idx, idx[: total - len(idx)]])
        return idx[self.rank::self.num_replicas]

    def __iter__(self):
        return iter(self._sharded().tolist())

    def __len__(self) -> int:
        if self.class_balanced:
            k = sum(max(1, int(round(self.fraction * int((self.labels == c).sum()))))
                    for c in np.unique(self.labels))
        else:
            k = max(1, int(round(self.fraction * self.n)))
        return math.ceil(k / self.num_replicas)
