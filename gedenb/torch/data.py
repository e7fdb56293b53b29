"""Map-style datasets over image sources, with batched decoding."""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = ["ArraySource", "ImageDataset", "batch_collate", "cifar_augment", "normalization", "torchvision_source"]


class ArraySource:
    """Uncompressed images in memory, with the same interface as a compressed store.

    Parameters
    ----------
    images : (n, H, W) or (n, H, W, C) uint8
    labels : (n,) integer array
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise TypeError(f"images must be uint8, got {images.dtype}; use .astype(np.uint8)")
        if images.ndim == 3:
            images = images[..., None]
        if images.ndim != 4:
            raise ValueError(f"images must be (n, H, W) or (n, H, W, C), got shape {images.shape}")
        labels = np.asarray(labels)
        if labels.shape != (len(images),) or labels.dtype.kind not in "iu":
            raise ValueError("labels must be a 1-D integer array with one label per image")
        self.images = images
        self.labels = labels.astype(np.int64)
        self.image_shape = images.shape[1:]

    def __len__(self) -> int:
        return len(self.images)

    @property
    def stored_bytes_per_image(self) -> float:
        return float(np.prod(self.image_shape))

    def read_images(self, indices) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels at ``indices``.

        Parameters
        ----------
        indices : 1-D int array
            Positions in the source.

        Returns
        -------
        images : (k, H, W, C) uint8
        labels : (k,) int
        """
        idx = np.asarray(indices, dtype=np.int64)
        return self.images[idx], self.labels[idx]


_TORCHVISION = {"mnist": ("MNIST", "MNIST"), "fashion-mnist": ("FashionMNIST", "FashionMNIST")}


def torchvision_source(name: str, train: bool = True, root=None, cache_dir=None) -> ArraySource:
    """MNIST / Fashion-MNIST read by torchvision's own dataset class, as an :class:`ArraySource`.

    The uncompressed baselines read their data this way, so that nothing of
    gedenb's stands between the raw files and the model.  torchvision's
    classes read the *uncompressed* IDX files of ``<root>/<Name>/raw`` and the
    data folder (``root`` or ``$GEDENB_DATA``) holds them gzipped and may be
    read-only: its four files are decompressed once into ``cache_dir``
    (default ``$GEDENB_CACHE`` or ``~/.cache/gedenb``; each file written to a
    temporary name and renamed, so a crash leaves no half file), and
    ``torchvision.datasets.<Name>(cache_dir, download=False)`` reads them.
    Nothing is downloaded.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
    train : bool
        Training split (else test).
    root : path, optional
        The data folder (default ``$GEDENB_DATA``).
    cache_dir : path, optional
    """
    import torchvision

    from ..datasets import data_root

    if name not in _TORCHVISION:
        raise ValueError(f"unknown data set {name!r}; choose from {sorted(_TORCHVISION)}")
    folder, cls_name = _TORCHVISION[name]
    src = data_root(root) / folder / "raw"
    if cache_dir is None:
        cache_dir = os.environ.get("GEDENB_CACHE") or Path.home() / ".cache" / "gedenb"
    cache = Path(cache_dir).expanduser()
    dst = cache / folder / "raw"
    dst.mkdir(parents=True, exist_ok=True)
    for stem in ("train-images-idx3", "train-labels-idx1", "t10k-images-idx3", "t10k-labels-idx1"):
        gz = src / f"{stem}-ubyte.gz"  # torchvision wants all four, whatever the split
        out = dst / gz.stem
        if not gz.exists():
            raise FileNotFoundError(f"{gz} is missing (expected torchvision's raw layout; nothing is downloaded)")
        if out.exists() and out.stat().st_mtime >= gz.stat().st_mtime:
            continue
        fd, tmp = tempfile.mkstemp(dir=dst, prefix=f".{out.name}.")
        try:
            with os.fdopen(fd, "wb") as f, gzip.open(gz, "rb") as g:
                shutil.copyfileobj(g, f)
            os.replace(tmp, out)
        except BaseException:
            os.unlink(tmp)
            raise
    ds = getattr(torchvision.datasets, cls_name)(str(cache), train=train, download=False)
    return ArraySource(ds.data.numpy(), ds.targets.numpy())


def normalization(source) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (in [0, 1] units) of up to 10,000 images of a source.

    Parameters
    ----------
    source : image source
        Anything with ``read_images`` and ``__len__`` (:class:`ImageDataset`'s ``source``).

    Returns
    -------
    mean, std : (C,) float64
    """
    n = len(source)
    idx = np.linspace(0, n - 1, num=min(n, 10_000)).astype(np.int64)
    imgs, _ = source.read_images(idx)
    x = imgs.reshape(-1, imgs.shape[-1]).astype(np.float64) / 255.0
    return x.mean(0), np.maximum(x.std(0), 1e-6)


def cifar_augment(batch: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop 32 with padding 4 and horizontal flip, per image of an (N, C, H, W) batch.

    Parameters
    ----------
    batch : (N, C, H, W) torch.Tensor
        The decoded, normalised batch.
    generator : torch.Generator, optional
        For the crops and flips (default: torch's global generator).

    Returns
    -------
    torch.Tensor
        The augmented batch, same shape.
    """
    n, c, h, w = batch.shape
    padded = torch.nn.functional.pad(batch, (4, 4, 4, 4))
    dy = torch.randint(0, 9, (n,), generator=generator)
    dx = torch.randint(0, 9, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    rows = (dy[:, None] + torch.arange(h)[None, :])  # (n, h)
    cols = (dx[:, None] + torch.arange(w)[None, :])  # (n, w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    bidx = torch.arange(n)[:, None, None, None]
    cidx = torch.arange(c)[None, :, None, None]
    return padded[bidx, cidx, rows[:, None, :, None], cols[:, None, None, :]]


def batch_collate(batch):
    """Collate for :class:`ImageDataset`: batches arrive already stacked.

    Parameters
    ----------
    batch : tuple
        The ``(images, labels)`` tensors ``ImageDataset.__getitems__`` returned.
    """
    return batch


class ImageDataset(Dataset):
    """A map-style Dataset over an image source.

    ``source`` is anything with ``read_images(indices) -> (uint8 (k, H, W, C),
    labels)``, ``labels`` and ``__len__``: an image store opened with
    :func:`gedenb.open` (decodes only the requested images from the
    memory-mapped file) or an :class:`ArraySource`.

    With a batch sampler (any ``DataLoader(batch_size=...)``) the loader
    calls ``__getitems__`` and a whole batch is decoded at once; pass
    ``collate_fn=batch_collate``.  Safe with worker processes (fork and
    spawn): a store reopens its memory map in each process.  Workers do
    not compile: the source's ``warmup()`` runs here, in the parent, so
    forked workers inherit its compiled decoders (non-persistent workers
    are forked anew every epoch) and spawned ones load them from the
    on-disk kernel cache it filled.

    Parameters
    ----------
    source
    mean, std : per-channel floats in [0, 1] units, optional
        Normalisation after scaling to [0, 1].
    augment : callable, optional
        ``augment(batch (N, C, H, W) float tensor) -> tensor``, applied after
        decoding, e.g. :func:`cifar_augment`.
    warmup : bool
        Call ``source.warmup()`` (when it has one) now; default True.
    """

    def __init__(self, source, mean=None, std=None, augment: Callable | None = None, warmup: bool = True):
        if warmup and callable(getattr(source, "warmup", None)):
            source.warmup()
        self.source = source
        c = source.image_shape[-1]
        self.mean = torch.as_tensor(np.zeros(c) if mean is None else mean, dtype=torch.float32).view(1, c, 1, 1)
        self.std = torch.as_tensor(np.ones(c) if std is None else std, dtype=torch.float32).view(1, c, 1, 1)
        self.augment = augment

    def __len__(self) -> int:
        return len(self.source)

    def _to_tensor(self, imgs: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - self.mean) / self.std
        if self.augment is not None:
            x = self.augment(x)
        return x

    def __getitems__(self, indices):
        imgs, labels = self.source.read_images(np.asarray(indices, dtype=np.int64))
        return self._to_tensor(imgs), torch.from_numpy(np.asarray(labels, dtype=np.int64))

    def __getitem__(self, i):
        x, y = self.__getitems__([int(i)])
        return x[0], y[0]
