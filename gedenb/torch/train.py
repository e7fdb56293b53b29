"""Training harness with the paper's settings as defaults (Sec. 5)."""

from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader

from . import coresets
from .data import ImageDataset, batch_collate
from .sampler import EpochSubsetSampler

__all__ = ["METHODS", "TrainConfig", "TrainResult", "evaluate", "train"]

#: full data; a random subset fixed once; a random subset redrawn each epoch
#: from the uncompressed data (RS2); the same from the compressed store; then
#: the coreset baselines of :mod:`gedenb.torch.coresets` (GRAD-MATCH and
#: GLISTER reselect every ``select_every`` epochs, DQ and TDDS select once).
METHODS = ("full", "random_static", "rs2", "dreamlearning") + coresets.CORESET_METHODS


@dataclass
class TrainConfig:
    """Training settings; defaults are the paper's (LeNet5 on MNIST)."""

    epochs: int = 100
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    fraction: float = 0.1
    seed: int = 0
    class_balanced: bool = False
    num_workers: int = 0
    eval_every: int = 0  # 0: evaluate after the last epoch only
    device: str | None = None  # None: cuda when available, else cpu
    progress: bool = True
    select_every: int = 20  # gradmatch / glister: reselect every this many epochs
    coreset_options: dict = field(default_factory=dict)  # method -> kwargs of coresets.select_<method>


@dataclass
class TrainResult:
    """What one training run measured."""

    method: str
    test_accuracy: float
    epochs: int
    samples_per_epoch: int
    seconds: dict = field(default_factory=dict)  # compression, selection, data, training, evaluation
    peak_rss_bytes: int = 0
    peak_gpu_bytes: int = 0
    bytes_decoded_per_epoch: float = 0.0
    stored_bytes_read_per_epoch: float = 0.0
    history: list = field(default_factory=list)
    config: dict = field(default_factory=dict)
    # peak resident memory above the run's starting level, per phase (coresets.MemoryMonitor)
    selection_memory_bytes: int = 0
    training_memory_bytes: int = 0
    selections: int = 0  # coreset selections made
    selection_images_read: int = 0  # training images decoded by those selections, in total

    def as_row(self) -> dict:
        row = {"method": self.method, "test_accuracy": self.test_accuracy, "epochs": self.epochs,
               "samples_per_epoch": self.samples_per_epoch, "peak_rss_MiB": self.peak_rss_bytes / 2**20,
               "decoded_MB_per_epoch": self.bytes_decoded_per_epoch / 1e6,
               "selection_MiB": self.selection_memory_bytes / 2**20,
               "training_MiB": self.training_memory_bytes / 2**20, "selections": self.selections}
        row.update({f"{k}_s": v for k, v in self.seconds.items()})
        return row


def _device(name):
    if name is not None:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@torch.no_grad()
def evaluate(model, dataset: ImageDataset, device, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` on every sample of ``dataset``.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier; put in eval mode.
    dataset : ImageDataset
        The samples, read in order ``batch_size`` at a time.
    device : torch.device or str
        Where ``model`` is.
    batch_size : int
        Samples per forward pass.

    Returns
    -------
    float
        The share of samples whose arg-max prediction is their label.
    """
    model.eval()
    correct = 0
    n = len(dataset)
    for start in range(0, n, batch_size):
        x, y = dataset.__getitems__(np.arange(start, min(n, start + batch_size)))
        pred = model(x.to(device)).argmax(1).cpu()
        correct += int((pred == y).sum())
    return correct / n


def train(model: torch.nn.Module, train_source, test_source, method: str = "dreamlearning",
          config: TrainConfig | None = None, *, mean=None, std=None, augment=None,
          compression_seconds: float = 0.0) -> TrainResult:
    """Train ``model`` with one of :data:`METHODS` and measure it.

    Parameters
    ----------
    model : torch.nn.Module
    train_source, test_source
        Image sources (a compressed image store for ``"dreamlearning"``, an
        :class:`~gedenb.torch.ArraySource` for the baselines).
    method : str
        ``"full"`` uses every sample each epoch; ``"random_static"`` one
        random ``fraction`` for all epochs; ``"rs2"`` and
        ``"dreamlearning"`` a fresh random ``fraction`` each epoch (from the
        uncompressed and the compressed data respectively);
        ``"gradmatch"``, ``"glister"``, ``"dq"``, ``"tdds"`` the coreset of
        :mod:`gedenb.torch.coresets` (GRAD-MATCH's weights weight the loss).
        Selection time and memory are measured apart from training.
    config : TrainConfig
    mean, std : per-channel normalisation in [0, 1] units
    augment : callable applied to each training batch after decoding
    compression_seconds : float
        Time spent compressing the training data, reported alongside.

    Returns
    -------
    TrainResult
    """
    cfg = _checked_config(method, config)
    run = _plan(model, train_source, test_source, method, cfg, mean, std, augment, compression_seconds)
    bar = None
    if cfg.progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.epochs, desc=f"{method} ({run.fraction:.0%}/epoch)", leave=False)
    run.select_ds = ImageDataset(train_source, mean, std) if run.coreset else None  # no augmentation
    history = []
    for epoch in range(cfg.epochs):
        record = _epoch(run, epoch)
        history.append(record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{record['train_loss']:.3f}")
    if bar is not None:
        bar.close()
    return _result(run, train_source, history)


def _checked_config(method: str, config: TrainConfig | None) -> TrainConfig:
    """``config`` (default :class:`TrainConfig`) once ``method`` and its sizes are checked."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {METHODS}")
    cfg = config or TrainConfig()
    if cfg.epochs < 1 or cfg.batch_size < 1 or cfg.select_every < 1:
        raise ValueError("epochs, batch_size and select_every must be >= 1")
    return cfg


@dataclass
class _Run:
    """The state of one :func:`train` run: what :func:`_plan` sets up and each epoch updates."""

    method: str
    cfg: TrainConfig
    device: torch.device
    model: torch.nn.Module
    test_ds: ImageDataset
    coreset: bool
    monitor: coresets.MemoryMonitor
    fraction: float
    sampler: object
    loader: DataLoader
    opt: torch.optim.Optimizer
    sched: object
    lossf: torch.nn.Module
    seconds: dict
    select_ds: ImageDataset | None = None
    selections: int = 0
    selection_images: int = 0


def _plan(model, train_source, test_source, method: str, cfg: TrainConfig, mean, std, augment,
          compression_seconds: float) -> _Run:
    """Seed, device, datasets, sampler, loader and optimiser of a run (the memory monitor started)."""
    torch.manual_seed(cfg.seed)
    device = _device(cfg.device)
    model = model.to(device)
    train_ds = ImageDataset(train_source, mean, std, augment)
    test_ds = ImageDataset(test_source, mean, std)
    coreset = method in coresets.CORESET_METHODS
    monitor = coresets.MemoryMonitor(device=device).start()

    t0 = time.perf_counter()
    fraction = 1.0 if method == "full" else cfg.fraction
    if coreset:
        sampler = coresets.SubsetSampler(len(train_source), seed=cfg.seed)
    else:
        sampler = EpochSubsetSampler(train_source.labels if cfg.class_balanced else len(train_source), fraction,
                                     seed=cfg.seed, class_balanced=cfg.class_balanced,
                                     static=(method == "random_static"))
    selection = time.perf_counter() - t0
    loader = DataLoader(train_ds, batch_size=cfg.batch_size, sampler=sampler, collate_fn=batch_collate,
                        num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    lossf = torch.nn.CrossEntropyLoss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = {"compression": float(compression_seconds), "selection": selection, "data": 0.0,
               "training": 0.0, "evaluation": 0.0}
    return _Run(method, cfg, device, model, test_ds, coreset, monitor, fraction, sampler, loader, opt, sched,
                lossf, seconds)


def _epoch(run: _Run, epoch: int) -> dict:
    """One epoch: the coreset (re)selection when due, the training batches, the evaluation when due."""
    cfg, seconds = run.cfg, run.seconds
    t = time.perf_counter()
    run.sampler.set_epoch(epoch)
    seconds["selection"] += time.perf_counter() - t
    if run.coreset and (epoch == 0 or (run.method in coresets.ADAPTIVE and epoch % cfg.select_every == 0)):
        _select(run, epoch)
    weights = run.sampler.weights_in_order() if run.coreset else None
    run.monitor.switch("training")
    run.model.train()
    total, count = _train_batches(run, weights)
    run.monitor.switch(None)
    run.sched.step()
    record = {"epoch": epoch, "train_loss": total / max(count, 1)}
    if cfg.eval_every and (epoch + 1) % cfg.eval_every == 0 and epoch + 1 < cfg.epochs:
        t = time.perf_counter()
        record["test_accuracy"] = evaluate(run.model, run.test_ds, run.device)
        seconds["evaluation"] += time.perf_counter() - t
    return record


def _select(run: _Run, epoch: int) -> None:
    """Select the coreset with the current model and hand it to the sampler (time and memory measured)."""
    with run.monitor.phase("selection"):
        t = time.perf_counter()
        sel = coresets.select(run.method, run.model, run.select_ds, run.cfg.fraction, config=run.cfg, epoch=epoch,
                              lr=run.opt.param_groups[0]["lr"], options=run.cfg.coreset_options.get(run.method))
        run.sampler.set_subset(sel.indices, sel.weights)
        run.seconds["selection"] += time.perf_counter() - t
    run.selections += 1
    run.selection_images += int(sel.images_read)


def _train_batches(run: _Run, weights) -> tuple:
    """One pass over the loader's batches; (summed loss, samples).  ``weights``: per-sample loss weights
    in the sampler's order (GRAD-MATCH), or None."""
    seconds, device, model, opt = run.seconds, run.device, run.model, run.opt
    served, total, count = 0, 0.0, 0
    it = iter(run.loader)
    while True:
        t = time.perf_counter()
        try:
            x, y = next(it)
        except StopIteration:
            break
        seconds["data"] += time.perf_counter() - t
        t = time.perf_counter()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        if weights is None:
            loss = run.lossf(model(x), y)
        else:  # GRAD-MATCH: the batch's loss weighted by the OMP weights (normalised, as CORDS)
            w = torch.as_tensor(weights[served:served + len(y)], dtype=torch.float32, device=device)
            per_sample = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
            loss = (per_sample * w).sum() / w.sum().clamp_min(1e-12)
        served += len(y)
        loss.backward()
        opt.step()
        total += float(loss.detach()) * len(y)
        count += len(y)
        seconds["training"] += time.perf_counter() - t
    return total, count


def _result(run: _Run, train_source, history: list) -> TrainResult:
    """The final evaluation and the run's measurements."""
    device, monitor = run.device, run.monitor
    t = time.perf_counter()
    acc = evaluate(run.model, run.test_ds, device)
    run.seconds["evaluation"] += time.perf_counter() - t

    monitor.stop()

    per_epoch = len(run.sampler)
    image_bytes = float(np.prod(train_source.image_shape))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gpu = max([torch.cuda.max_memory_allocated(device), *monitor.gpu_peaks.values()]) if device.type == "cuda" else 0
    return TrainResult(
        method=run.method, test_accuracy=acc, epochs=run.cfg.epochs, samples_per_epoch=per_epoch,
        seconds=run.seconds, peak_rss_bytes=int(rss), peak_gpu_bytes=int(gpu),
        bytes_decoded_per_epoch=per_epoch * image_bytes,
        stored_bytes_read_per_epoch=per_epoch * float(train_source.stored_bytes_per_image),
        history=history, config=asdict(run.cfg), selection_memory_bytes=monitor.growth("selection"),
        training_memory_bytes=monitor.growth("training"), selections=run.selections,
        selection_images_read=run.selection_images,
    )
