"""Image classification on compressed stores (paper Sec. 5, Table 1 and Appendix)."""

from __future__ import annotations

import tempfile
import time
from typing import NamedTuple

import numpy as np

from .._optional import require
from ..datasets import cifar10_jpeg, fashion_mnist, mnist
from ..transforms import TRANSFORMS
from .options import ROOT, Option, check_choices, experiment
from .table import ResultTable, pyplot

DEFAULT_METHODS = ("random_static", "rs2", "dreamlearning")
#: The data sets of :func:`image_storage`, by name.
IMAGE_SETS = {"mnist": mnist, "fashion-mnist": fashion_mnist, "cifar10-jpeg": cifar10_jpeg}
PAPER_TABLE1 = {  # MNIST, 10% subset, LeNet5, 100 epochs (paper Table 1)
    "full": 99.3, "random": 99.2, "dreamlearning": 99.1,
}


@experiment("Table 1: LeNet5 on MNIST / Fashion-MNIST, one row per training method (needs gedenb[torch])",
            dataset=Option("mnist or fashion-mnist"), fraction=Option("share of the training images each epoch"),
            epochs=Option("training epochs"),
            methods=Option("training methods, comma-separated: full, random_static, rs2, dreamlearning, or a "
                           "coreset baseline (gradmatch, glister, dq, tdds)"),
            seed=Option("one seed or several, comma-separated: each method runs once per seed", many=True),
            transform=Option("transform of the dreamlearning store", choices=tuple(TRANSFORMS)),
            batch_size=Option("mini-batch size"), lr=Option("SGD learning rate"),
            progress=Option("progress bars (1) or none (0)"),
            device=Option("torch device, e.g. cpu or cuda (default: cuda when available)", type=str), root=ROOT,
            full_epochs=Option("epochs of the full-data run (default: --epochs)", type=int),
            select_every=Option("gradmatch/glister reselect every this many epochs"),
            tdds_epochs=Option("full-data epochs whose training dynamics tdds scores"),
            dq_epochs=Option("epochs of dq's feature extractor on the full data"))
def table1(dataset: str = "mnist", fraction: float = 0.01, epochs: int = 100, methods=DEFAULT_METHODS,
           seed=0, transform: str = "identity", batch_size: int = 128, lr: float = 0.05, out_dir=None,
           quick: bool = False, figure: bool = False, progress: bool = True, device=None,
           root=None, full_epochs: int | None = None, select_every: int = 20, tdds_epochs: int = 10,
           dq_epochs: int = 2) -> ResultTable:
    """Train LeNet5 on MNIST / Fashion-MNIST with each method and tabulate what it cost.

    ``dreamlearning`` compresses the training images class by class
    (``transform``), saves the store, reopens it memory-mapped and decodes a
    fresh random ``fraction`` of it every epoch; ``rs2`` does the same on
    the uncompressed arrays; ``random_static`` trains on one fixed random
    subset; ``full`` on every image each epoch.  ``quick`` uses 2,000
    training and 1,000 test images and 2 epochs.

    ``seed`` is one seed or several (a sequence or a comma-separated string
    such as ``"0,1,2,3,4"``): with several, every method runs once per seed
    (the store is compressed once) and the table gives the mean accuracy
    with its standard deviation across seeds and mean times.
    ``batch_size`` and ``lr`` default to the paper's settings (128, 0.05).
    Images are read by torchvision's dataset classes
    (:func:`gedenb.torch.torchvision_source`); the store compresses the
    same arrays.

    The coreset baselines (:mod:`gedenb.torch.coresets`): ``gradmatch`` and
    ``glister`` reselect every ``select_every`` epochs; ``dq`` builds its
    bins with a LeNet5 feature extractor trained ``dq_epochs`` epochs on the
    full data; ``tdds`` scores the training dynamics of ``tdds_epochs``
    full-data epochs.  ``full_epochs`` (default ``epochs``) shortens the
    full-data run.  "select/train MiB" are the peak resident-memory growth
    during selection and training above the run's start
    (:class:`gedenb.torch.coresets.MemoryMonitor`); "select MB read" is the
    data the selections decoded.  A one-epoch warm-up on 256 images runs
    first so that torch's one-time allocations are charged to no method.

    Parameters
    ----------
    dataset : {"mnist", "fashion-mnist"}
        The training and test images (read by torchvision).
    fraction : float
        Share of the training images each epoch (and the coresets' size).
    epochs : int
        Training epochs.
    methods : str or tuple of str
        Training methods (comma-separated in a string): ``full``, ``random_static``, ``rs2``,
        ``dreamlearning``, or a coreset baseline (``gradmatch``, ``glister``, ``dq``, ``tdds``).
    seed : int, str or sequence of int
        One seed or several (``"0,1,2"``): each method runs once per seed.
    transform : str
        Transform of the dreamlearning store (:data:`gedenb.transforms.TRANSFORMS`).
    batch_size : int
        Mini-batch size.
    lr : float
        SGD learning rate.
    out_dir : path, optional
        Folder for the run's temporary files (default: the system's temporary folder).
    quick : bool
        A short smoke run (what it cuts is said above).
    figure : bool
        Draw the figure (the table's ``figure``); without matplotlib the table comes without one.
    progress : bool
        Progress bars.
    device : str, optional
        Torch device, e.g. ``"cpu"`` or ``"cuda"`` (default: cuda when available).
    root : path, optional
        Data folder in torchvision's raw layout (default: ``$GEDENB_DATA``).
    full_epochs : int, optional
        Epochs of the full-data run (default: ``epochs``).
    select_every : int
        gradmatch and glister reselect every this many epochs.
    tdds_epochs : int
        Full-data epochs whose training dynamics tdds scores.
    dq_epochs : int
        Epochs of dq's feature extractor on the full data.

    Returns
    -------
    ResultTable
    """
    require("table1", "torch", "torchvision", *(("tqdm",) if progress else ()))
    plt = pyplot(figure)
    from gedenb.torch import METHODS

    if isinstance(methods, str):
        methods = tuple(m.strip() for m in methods.split(",") if m.strip())
    check_choices("methods", methods, METHODS)
    seeds = _seeds(seed)
    setup, epochs = _table1_setup(dataset, root, quick, seeds, epochs, full_epochs, transform,
                                  dict(fraction=float(fraction), progress=progress, device=device,
                                       batch_size=int(batch_size), lr=float(lr), select_every=int(select_every),
                                       coreset_options={"dq": {"epochs": int(dq_epochs)},
                                                        "tdds": {"epochs": int(tdds_epochs)}}))
    if any(m not in ("random_static", "rs2", "dreamlearning") for m in methods):  # warm-up, see docstring
        _warm_up(setup, device, batch_size)
    rows, results, per_seed, infeasible = _table1_rows(methods, setup, out_dir)
    notes = (f"{dataset}, LeNet5, {epochs} epochs, {fraction:.0%} of {len(setup.x):,} training images per epoch, "
             f"batch {batch_size}, lr {lr}, seed{'s' if len(seeds) > 1 else ''} "
             f"{','.join(map(str, seeds))}, transform {transform}; peak RSS is the process's peak so far. "
             f"Paper (Table 1, 10% subset): full 99.3, random 99.2, dreaMLearning 99.1.")
    if "full" in methods and full_epochs is not None:
        notes += f" full: {int(full_epochs)} epochs."
    if any(m in methods for m in ("gradmatch", "glister", "dq", "tdds")):
        notes += (f" Coresets: gradmatch/glister reselect every {select_every} epochs, dq extractor trained "
                  f"{dq_epochs} full epochs, tdds scores {tdds_epochs} full epochs.")
    notes += "".join(" " + t for t in infeasible)
    if per_seed:
        notes += " Accuracy per seed: " + "; ".join(per_seed) + "."
    return ResultTable(
        title=f"Table 1 ({dataset}): methods at {fraction:.0%} per epoch",
        columns=("method", "test acc %", "compress s", "select s", "data s", "train s", "eval s",
                 "storage % of raw", "peak RSS MiB", "samples/epoch", "decoded MB/epoch", "stored MB read/epoch",
                 "select MiB", "train MiB", "select MB read"),
        rows=rows, notes=notes, figure=None if plt is None else _loss_figure(plt, results),
    )


class _Table1Setup(NamedTuple):
    """What every run of :func:`table1` shares: the data, normalisation and training settings."""

    x: np.ndarray
    y: np.ndarray
    xt: np.ndarray
    yt: np.ndarray
    mean: list
    std: list
    seeds: list
    epochs: int
    full_epochs: int | None
    transform: str
    train_kw: dict  # TrainConfig's arguments but epochs and seed


def _table1_setup(dataset, root, quick, seeds, epochs, full_epochs, transform, train_kw) -> tuple:
    """The training and test images (torchvision's own dataset classes read them: the baselines train on
    exactly these arrays), cut for ``quick``; (setup, epochs)."""
    from gedenb.torch import torchvision_source

    tv_train, tv_test = torchvision_source(dataset, True, root), torchvision_source(dataset, False, root)
    x, y, xt, yt = tv_train.images, tv_train.labels, tv_test.images, tv_test.labels
    if quick:
        x, y, xt, yt, epochs = x[:2000], y[:2000], xt[:1000], yt[:1000], min(epochs, 2)
    mean, std = [float(x.mean() / 255)], [float((x / 255).std())]
    return _Table1Setup(x, y, xt, yt, mean, std, seeds, epochs, full_epochs, transform, train_kw), epochs


def _warm_up(setup: _Table1Setup, device, batch_size) -> None:
    """One epoch on 256 images, so that torch's one-time allocations are charged to no method."""
    from gedenb.torch import ArraySource, LeNet5, TrainConfig, train

    x, y, xt, yt = setup.x, setup.y, setup.xt, setup.yt
    train(LeNet5(), ArraySource(x[:256], y[:256]), ArraySource(xt[:64], yt[:64]), "full",
          TrainConfig(epochs=1, progress=False, device=device, batch_size=int(batch_size)),
          mean=setup.mean, std=setup.std)


def _table1_rows(methods, setup: _Table1Setup, out_dir) -> tuple:
    """Every method's runs, tabulated: (rows, first run per method, accuracies per seed, infeasible notes)."""
    from gedenb.torch import ArraySource
    from gedenb.torch.coresets import CoresetInfeasible

    plain_train, test = ArraySource(setup.x, setup.y), ArraySource(setup.xt, setup.yt)
    rows, results, per_seed, infeasible = [], {}, [], []
    tmp = tempfile.TemporaryDirectory(dir=out_dir)
    try:
        for method in methods:
            comp_s, source, storage = 0.0, plain_train, 1.0
            if method == "dreamlearning":
                comp_s, source, storage = _store_source(setup, tmp.name)
            try:
                runs = _method_runs(method, setup, source, test, comp_s)
            except CoresetInfeasible as exc:  # reported like the paper's "NA" (DQ at 1% of CIFAR-100)
                rows.append((method, "NA", *["-"] * 13))
                infeasible.append(f"{method} NA ({exc}).")
                continue
            if method == "dreamlearning":
                source.close()
            results[method] = runs[0]
            rows.append(_table1_row(method, runs, storage))
            if len(runs) > 1:
                acc = 100 * np.array([q.test_accuracy for q in runs])
                per_seed.append(f"{method}: " + ", ".join(f"{a:.2f}" for a in acc))
    finally:
        tmp.cleanup()
    return rows, results, per_seed, infeasible


def _store_source(setup: _Table1Setup, folder: str) -> tuple:
    """dreaMLearning's source: the training images compressed class by class, saved and reopened
    memory-mapped; (compression seconds, reader, file size / raw size)."""
    import gedenb
    from gedenb.images import compress_images

    t0 = time.perf_counter()
    store = compress_images(setup.x, setup.y, transform=setup.transform)
    path = f"{folder}/train.gede"
    nbytes = gedenb.save(store, path)
    comp_s = time.perf_counter() - t0
    return comp_s, gedenb.open(path), nbytes / setup.x.nbytes


def _method_runs(method: str, setup: _Table1Setup, source, test, comp_s: float) -> list:
    """One training run of ``method`` per seed, each from the same initial weights."""
    import torch

    from gedenb.torch import LeNet5, TrainConfig, train

    runs = []
    for s_ in setup.seeds:
        ep = int(setup.full_epochs) if method == "full" and setup.full_epochs is not None else int(setup.epochs)
        cfg = TrainConfig(epochs=ep, seed=s_, **setup.train_kw)
        torch.manual_seed(s_)  # every method starts from the same initial weights
        runs.append(train(LeNet5(), source, test, method, cfg, mean=setup.mean, std=setup.std,
                          compression_seconds=comp_s))
    return runs


def _table1_row(method: str, runs: list, storage: float) -> tuple:
    """A method's row: accuracy (mean ± sd over seeds), mean times, the first run's sizes, peak memory."""
    r = runs[0]
    acc = 100 * np.array([q.test_accuracy for q in runs])
    sec = {k: float(np.mean([q.seconds[k] for q in runs])) for k in r.seconds}
    return (method, round(float(acc[0]), 2) if len(runs) == 1 else
            f"{acc.mean():.2f} ± {acc.std(ddof=1):.2f}", round(sec["compression"], 2),
            round(sec["selection"], 3), round(sec["data"], 2), round(sec["training"], 2),
            round(sec["evaluation"], 2), round(100 * storage, 1),
            round(max(q.peak_rss_bytes for q in runs) / 2**20),
            r.samples_per_epoch, round(r.bytes_decoded_per_epoch / 1e6, 2),
            round(r.stored_bytes_read_per_epoch / 1e6, 2),
            round(max(q.selection_memory_bytes for q in runs) / 2**20, 1),
            round(max(q.training_memory_bytes for q in runs) / 2**20, 1),
            round(float(np.mean([q.selection_images_read for q in runs]))
                  * r.stored_bytes_read_per_epoch / r.samples_per_epoch / 1e6, 1))


def _loss_figure(plt, results: dict):
    """Training loss per epoch of each method's first run (log scale)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for m, r in results.items():
        ax.plot([h["epoch"] for h in r.history], [h["train_loss"] for h in r.history], label=m)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    return fig


def _seeds(seed) -> list:
    if isinstance(seed, str):
        seed = [int(t) for t in seed.split(",") if t.strip()]
    seeds = [int(seed)] if np.ndim(seed) == 0 else [int(t) for t in seed]
    if not seeds:
        raise ValueError("seed: give at least one seed")
    return seeds


@experiment("Image stores: bytes on disk per data set and transform, class-wise (Sec. 5 and Appendix)",
            draws_figure=False, datasets=Option("training sets, comma-separated", choices=tuple(IMAGE_SETS)),
            transforms=Option("image transforms, comma-separated", choices=tuple(TRANSFORMS)),
            tau=Option("plateau threshold of the base search"), root=ROOT)
def image_storage(datasets=("mnist", "fashion-mnist", "cifar10-jpeg"), transforms=("identity", "dct", "dct_lossless"),
                  tau: int = 10, out_dir=None, quick: bool = False, figure: bool = False, root=None) -> ResultTable:
    """Class-wise image stores per data set and transform: bytes on disk / raw bytes.

    Each training set is compressed with :func:`gedenb.images.compress_images`
    (narrow codecs, tau 10), saved, and its file size compared with the raw
    uint8 bytes; Eq. 1 of the class parts (plus the label index) is shown
    beside it.  ``quick`` keeps the first 2,000 images of each set.  The
    CIFAR-10 copy here is a lossy JPEG re-encoding: its figures are not
    comparable with the paper's 80%.

    Parameters
    ----------
    datasets : str or tuple of str
        Training sets (comma-separated in a string), from :data:`IMAGE_SETS`.
    transforms : str or tuple of str
        Image transforms (comma-separated in a string), from :data:`gedenb.transforms.TRANSFORMS`.
    tau : int
        Plateau threshold of the base search.
    out_dir : path, optional
        Folder for the run's temporary files (default: the system's temporary folder).
    quick : bool
        A short smoke run (what it cuts is said above).
    figure : bool
        Accepted for the common experiment signature; this experiment draws none.
    root : path, optional
        Data folder in torchvision's raw layout (default: ``$GEDENB_DATA``).

    Returns
    -------
    ResultTable
    """
    import tempfile

    import gedenb
    from gedenb.images import compress_images, decompress_images

    if isinstance(datasets, str):
        datasets = tuple(d.strip() for d in datasets.split(",") if d.strip())
    if isinstance(transforms, str):
        transforms = tuple(t.strip() for t in transforms.split(",") if t.strip())
    check_choices("datasets", datasets, IMAGE_SETS)
    if "cifar10-jpeg" in datasets:
        require("image_storage of cifar10-jpeg", "PIL")
    paper = {"mnist": "58", "cifar10-jpeg": "80 (real CIFAR-10, DCT)"}
    rows = []
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        for name in datasets:
            x, y = IMAGE_SETS[name](train=True, root=root)
            if quick:
                x, y = x[:2000], y[:2000]
            for t in transforms:
                t0 = time.perf_counter()
                store = compress_images(x, y, transform=t, tau=tau)
                secs = time.perf_counter() - t0
                nbytes = gedenb.save(store, f"{tmp}/{name}-{t}.gede")
                back, _ = decompress_images(store)
                err = np.abs(back.astype(np.int16) - (x if x.ndim == 4 else x[..., None]).astype(np.int16))
                rows.append((name, t, len(x), round(100 * store.eq1_bytes() / x.nbytes, 2),
                             round(100 * nbytes / x.nbytes, 2), int(err.max()), round(float(err.mean()), 4),
                             round(secs, 2), paper.get(name, "-") if t != "dct_lossless" else "-"))
    return ResultTable(
        title="Class-wise image stores: storage per transform (training sets)",
        columns=("dataset", "transform", "images", "Eq. 1 % of raw", "on disk % of raw", "max |err|",
                 "mean |err|", "compress s", "paper %"),
        rows=rows,
        notes=("narrow codecs, tau = 10, m = 0, one part per class; 'on disk' includes the label index and the "
               "container framing. cifar10-jpeg is the LOSSY JPEG copy (not the paper's data)."),
    )
