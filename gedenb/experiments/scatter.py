"""The condensed samples drawn over the data: the paper's Fig. 3b.

Paper (intro): "Figure 3b illustrates that compressed data points
effectively capture the underlying data distribution, including outliers."
Same setting as :func:`gedenb.experiments.regression.fig3`: California
Housing, the 80/20 split of ``seed``, ``beta`` clustering bits on the 8
feature columns (the target kept out of the clustering), ``tau = 10``.

What "captures outliers" is measured as
    For each pair of columns drawn, the box is the 1st-99th percentile range
    of both columns over the training rows; a row is an outlier when either
    coordinate lies outside it.  The table gives the share of the outlier
    rows whose cluster's condensed sample lies outside the box too (the
    outlier is still visible in the condensed samples), and the same share
    for the rows inside the box (a sample outside the box that mostly
    stands for ordinary rows would be a distortion, not a capture).
"""

from __future__ import annotations

import numpy as np

from .. import compress, condensed
from ..datasets import CALIFORNIA_COLUMNS, california_housing
from ..decode import _recluster
from .options import Option, experiment
from .regression import ACCEPT_BETA, TAU, split
from .table import ResultTable, pyplot

__all__ = ["FIG3B_PAIRS", "fig3b", "outside_box"]

#: The column pairs of the two panels: income against the target, and the map.
FIG3B_PAIRS = (("MedInc", "MedHouseVal"), ("Longitude", "Latitude"))
#: Percentiles of the box that defines an outlier.
BOX_PERCENTILES = (1.0, 99.0)


def outside_box(points: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Whether each point lies outside the box ``[low, high]`` in any coordinate.

    Parameters
    ----------
    points : (k, 2) array
        The points.
    low : (2,) array
        The box's lower corner.
    high : (2,) array
        The box's upper corner.
    """
    return ((points < low) | (points > high)).any(axis=1)


def _weighted_mean_std(values: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    mean = float(w @ values / w.sum())
    return mean, float(np.sqrt(w @ (values - mean) ** 2 / w.sum()))


def _pair_row(train, S, w, labels, pair):
    """One table row (and what the panel draws) for one pair of columns."""
    cols = [CALIFORNIA_COLUMNS.index(name) for name in pair]
    data, samples = train[:, cols], S[:, cols]
    low, high = np.percentile(data, BOX_PERCENTILES, axis=0)
    row_out = outside_box(data, low, high)
    sample_out = outside_box(samples, low, high)
    captured = sample_out[labels]
    stats = []
    for k in range(2):
        wm, ws = _weighted_mean_std(samples[:, k], w.astype(np.float64))
        stats += [round(float(data[:, k].mean()), 4), round(wm, 4), round(float(data[:, k].std()), 4), round(ws, 4)]
    row = (f"{pair[0]} vs {pair[1]}", len(train), len(w), round(100 * len(w) / len(train), 2), *stats,
           int(row_out.sum()), round(100 * float(captured[row_out].mean()), 1),
           round(100 * float(captured[~row_out].mean()), 2), int(sample_out.sum()))
    return row, (data, samples, low, high, sample_out)


def _draw(plt, panels, w, pairs, beta):
    fig, axes = plt.subplots(1, len(pairs), figsize=(6 * len(pairs), 5))
    area = 400.0 * w / w.max()
    for ax, pair, (data, samples, low, high, sample_out) in zip(np.atleast_1d(axes), pairs, panels):
        ax.scatter(data[:, 0], data[:, 1], s=2, color="0.6", alpha=0.6, lw=0, label="training rows", rasterized=True)
        ax.add_patch(plt.Rectangle(low, *(high - low), fill=False, ls="--", lw=0.8, color="0.3",
                                   label=f"{BOX_PERCENTILES[0]:g}-{BOX_PERCENTILES[1]:g}th percentile box"))
        for out, color, what in ((False, "tab:blue", "inside"), (True, "tab:red", "outside")):
            sel = sample_out == out
            ax.scatter(samples[sel, 0], samples[sel, 1], s=np.maximum(area[sel], 4), color=color, alpha=0.6,
                       edgecolor="k", lw=0.4, label=f"condensed samples {what} the box ({int(sel.sum())})")
        ax.set_xlabel(pair[0])
        ax.set_ylabel(pair[1])
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"Fig. 3b: {len(w)} condensed samples (marker area ~ weight) over {int(w.sum()):,} training rows, "
                 f"California Housing, beta = {beta} feature bits")
    fig.tight_layout()
    return fig


@experiment("Fig. 3b: the condensed samples drawn over the training rows (California Housing)",
            seed=Option("80/20 split seed"), beta=Option("clustering bits (feature columns only)"))
def fig3b(*, seed: int = 0, beta: int = ACCEPT_BETA, out_dir=None, quick: bool = False,
          figure: bool = False) -> ResultTable:
    """Condensed samples (exact cluster means, marker area ~ weight) over the training rows, two panels.

    One compression of the training split (seconds), so ``quick`` cuts
    nothing; nothing is written to ``out_dir``.  The condensed samples are
    the exact means (:func:`gedenb.condensed`); the rows the ``.gede`` file
    stores (``exact=False``: the means rounded onto each column's codec
    grid) are compared in the notes.  Weighted means of the samples equal
    the data's column means; their weighted std is the between-cluster part
    of the data's std, so it is smaller.

    Parameters
    ----------
    seed : int
        80/20 split seed.
    beta : int
        Clustering bits (feature columns only).
    out_dir : path, optional
        Unused (the experiment writes no file); accepted for the common signature.
    quick : bool
        A short smoke run (the same run: see above).
    figure : bool
        Draw the figure (the table's ``figure``); without matplotlib the table comes without one.

    Returns
    -------
    ResultTable
    """
    plt = pyplot(figure)
    train, _ = split(california_housing().data, seed)
    d = train.shape[1]
    c = compress(train, beta=beta, tau=TAU, cluster_columns=range(d - 1))
    S, w = condensed(c)
    grid, _ = condensed(c, exact=False)
    labels, m = _recluster(train, c.codecs, c.beta_positions)
    if m != len(w) or not np.array_equal(np.bincount(labels, minlength=m), w):
        raise AssertionError("the rows' clusters do not match the condensed samples' weights")
    rows, panels = zip(*(_pair_row(train, S, w, labels, pair) for pair in FIG3B_PAIRS))
    shift = np.abs(grid - S).max(axis=0) / train.std(axis=0)
    notes = (f"seed {seed}, n = {len(train):,} training rows, m = {len(w)} condensed samples (beta = {beta} bits of "
             f"the 8 feature columns; target not clustered), {100 * len(w) / len(train):.2f}% of n. 'condensed' "
             f"mean/std: weighted by the cluster sizes over the m exact means (the std is the between-cluster "
             f"part only). Outlier rows: outside the {BOX_PERCENTILES[0]:g}-{BOX_PERCENTILES[1]:g}th percentile "
             f"box of the two columns; 'in outside clusters %': share of them (and of the rows inside the box) "
             f"whose cluster's condensed sample lies outside the box too. The stored rows (exact=False, on the "
             f"codec grid) differ from the exact means by at most {shift.max():.2g} column std "
             f"({CALIFORNIA_COLUMNS[int(shift.argmax())]}): the same picture. Paper Fig. 3b: a figure only, no "
             f"numbers.")
    fig = None if plt is None else _draw(plt, panels, w, FIG3B_PAIRS, beta)
    return ResultTable(
        title="Fig. 3b: condensed samples over the training rows (California Housing)",
        columns=("columns (x vs y)", "n", "m", "m/n %", "x mean data", "x mean condensed", "x std data",
                 "x std condensed", "y mean data", "y mean condensed", "y std data", "y std condensed",
                 "outlier rows", "outlier rows in outside clusters %", "inlier rows in outside clusters %",
                 "samples outside the box"),
        rows=list(rows), notes=notes, figure=fig)
