"""PyTorch integration (optional extra ``torch``): data, sampling, models, training.

``import gedenb`` never imports torch; ``import gedenb.torch`` does.

- :class:`ImageDataset` -- a map-style Dataset over any image source (a
  compressed image store opened with :func:`gedenb.open`, or plain arrays via
  :class:`ArraySource`), with batched decoding through ``__getitems__``;
  :func:`torchvision_source` reads MNIST / Fashion-MNIST with torchvision's
  own dataset classes (the uncompressed baselines).
- :class:`EpochSubsetSampler` -- a new seeded random fraction every epoch
  (optionally class-balanced), ``set_epoch`` and DDP sharding like
  ``DistributedSampler``.
- :class:`LeNet5`, :func:`resnet18_cifar` -- the paper's models.
- :func:`train` -- the training harness with the paper's settings as defaults.
- :mod:`gedenb.torch.coresets` -- the coreset baselines GRAD-MATCH, GLISTER,
  DQ and TDDS (selection functions the harness calls).
"""

from .._optional import require

require("gedenb.torch", "torch", "torchvision")  # one line naming the extra, not torch's own ImportError

from . import coresets  # noqa: E402
from .data import ArraySource, ImageDataset, batch_collate, cifar_augment, torchvision_source  # noqa: E402
from .models import LeNet5, resnet18_cifar  # noqa: E402
from .sampler import EpochSubsetSampler  # noqa: E402
from .train import METHODS, TrainConfig, TrainResult, train  # noqa: E402

__all__ = [
    "METHODS",
    "ArraySource",
    "EpochSubsetSampler",
    "ImageDataset",
    "LeNet5",
    "TrainConfig",
    "TrainResult",
    "batch_collate",
    "cifar_augment",
    "coresets",
    "resnet18_cifar",
    "torchvision_source",
    "train",
]
