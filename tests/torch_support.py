"""DataLoader workers that count their own compilations (for ``test_torch``), and the child process that
runs them: ``python torch_support.py CTX CODING WARMUP EPOCHS FOLDER`` prints one JSON line.

Module-level, so that spawned workers can unpickle the dataset and the worker hook by name.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from numba.core import event

import gedenb
from gedenb.images import compress_images
from gedenb.torch import EpochSubsetSampler, ImageDataset, batch_collate

_COMPILED = [0]


class _Count(event.Listener):
    def on_start(self, e):
        pass

    def on_end(self, e):
        _COMPILED[0] += 1


def count_compilations(worker_id):
    """``worker_init_fn``: count every Numba compilation this worker makes from now on (loads from the
    on-disk cache are not compilations)."""
    event.register("numba:compile", _Count())


class CountingDataset(ImageDataset):
    """Batches with a third item: the worker's compilations so far."""

    def __getitems__(self, indices):
        x, y = super().__getitems__(indices)
        return x, y, torch.tensor(_COMPILED[0])


def digit_like(n: int, seed: int = 0, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Discs on a black background (zero runs, as in MNIST, so entropy coding takes its image decoder)."""
    rng = np.random.default_rng(seed)
    i, j = np.mgrid[:size, :size]
    cy, cx = rng.uniform(4, size - 4, (2, n, 1, 1))
    r = rng.uniform(2, 5, (n, 1, 1))
    x = np.where(np.hypot(i - cy, j - cx) < r, rng.integers(128, 256, (n, 1, 1)), 0).astype(np.uint8)
    return x, np.arange(n) % 3


def main(ctx: str, coding: str, warmup: str, epochs: str, folder: str) -> None:
    x, y = digit_like(600)
    path = f"{folder}/{coding}.gede"
    gedenb.save(compress_images(x, y, coding=coding), path)
    store = gedenb.open(path)
    t = time.perf_counter()
    ds = CountingDataset(store, warmup=warmup == "1")
    parent_s = time.perf_counter() - t
    sampler = EpochSubsetSampler(len(x), 0.5, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_size=50, sampler=sampler, collate_fn=batch_collate,
                                         num_workers=2, persistent_workers=False, multiprocessing_context=ctx,
                                         worker_init_fn=count_compilations)
    out = {"parent_warmup_s": parent_s, "epochs": []}
    for epoch in range(int(epochs)):
        sampler.set_epoch(epoch)
        order, seen, compiled = list(sampler), [], 0
        t = time.perf_counter()
        for xb, yb, nc in loader:
            idx = order[len(seen):len(seen) + len(yb)]
            seen.extend(idx)
            assert torch.equal((xb[:, 0] * 255).round().to(torch.uint8), torch.from_numpy(x[idx]))
            assert yb.tolist() == y[idx].tolist()
            compiled = max(compiled, int(nc))
        assert seen == order
        out["epochs"].append({"seconds": time.perf_counter() - t, "compilations": compiled})
    print(json.dumps(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
