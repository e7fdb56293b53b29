"""Storage figures: class-wise EntroGeDe on image data sets (paper Sec. 5)."""

from __future__ import annotations

import time

import numpy as np

from .. import compress, eq1_bits, save
from ..datasets import fashion_mnist, mnist
from .options import ROOT, Option, check_choices, experiment
from .table import ResultTable

PAPER_PERCENT = {"mnist": 58.0}
#: The image data sets of :func:`mnist_storage`, by name.
LOADERS = {"mnist": mnist, "fashion-mnist": fashion_mnist}


@experiment("MNIST storage: class-wise EntroGeDe of the training images, Eq. 1 and bytes on disk (Sec. 5)",
            draws_figure=False, dataset=Option("training images to compress", choices=tuple(LOADERS)),
            tau=Option("plateau threshold of the base search"), root=ROOT)
def mnist_storage(dataset: str = "mnist", tau: int = 10, root=None, out_dir=None, quick: bool = False,
                  figure: bool = False) -> ResultTable:
    """Class-wise compression of the training images, no clustering (m = 0).

    For each codec setting (``native``: raw 8-bit pixels as in the paper;
    ``narrow``: the narrowest exact codec per pixel column) report Eq. 1 and,
    when ``out_dir`` is given, the bytes of the ten ``.gede`` files, both as
    a percentage of the raw ``uint8`` images.  ``quick`` uses the first
    6,000 images only (a smoke run); ``figure`` is accepted for the common
    experiment signature (this experiment draws none).

    Parameters
    ----------
    dataset : {"mnist", "fashion-mnist"}
        Training images to compress.
    tau : int
        Plateau threshold of the base search.
    root : path, optional
        Data folder in torchvision's raw layout (default: ``$GEDENB_DATA``).
    out_dir : path, optional
        Folder the ``.gede`` files are written to (None: sizes on disk are not measured).
    quick : bool
        A short smoke run (what it cuts is said above).
    figure : bool
        Accepted for the common experiment signature; this experiment draws none.

    Returns
    -------
    ResultTable
    """
    check_choices("dataset", (dataset,), LOADERS)
    loader = LOADERS[dataset]
    x, y = loader(train=True, root=root)
    if quick:
        x, y = x[:6000], y[:6000]
    flat = x.reshape(len(x), -1)
    classes = [np.ascontiguousarray(flat[y == k]) for k in np.unique(y)]
    raw = sum(a.nbytes for a in classes)
    rows = []
    for widths in ("native", "narrow"):
        compress(classes[0][:64], tau=tau, widths=widths)  # JIT warm-up: time compression, not compilation
        t0 = time.perf_counter()
        cs = [compress(a, tau=tau, widths=widths) for a in classes]
        dt = time.perf_counter() - t0
        eq1 = sum(eq1_bits(c) for c in cs) / 8
        disk = float("nan")
        if out_dir is not None:
            disk = sum(save(c, f"{out_dir}/{dataset}-{widths}-{k}.gede") for k, c in enumerate(cs))
        rows.append((widths, tau, round(100 * eq1 / raw, 2), round(100 * disk / raw, 2),
                     sum(c.n_bases for c in cs), round(dt, 3)))
    paper = PAPER_PERCENT.get(dataset)
    notes = f"raw = {raw:,} bytes ({len(x):,} images). Paper: {paper}% of raw." if paper else f"raw = {raw:,} bytes"
    return ResultTable(
        title=f"{dataset} train, class-wise EntroGeDe (beta=None, tau={tau})",
        columns=("widths", "tau", "Eq. 1 % of raw", "on disk % of raw", "sum n_b", "compress s"),
        rows=rows,
        notes=notes,
    )
