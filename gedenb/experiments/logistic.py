"""Logistic regression on condensed samples: the paper's Fig. 11 (Appendix D).

Data: Default of Credit Card Clients (30,000 x 23 features + 0/1 label,
80/20 split by ``default_rng(seed).permutation``) and IJCNN1 (its own
49,990 / 91,701 train/test files; labels -1/1 mapped to 0/1 before
compression, so the label column is one bit wide).

What the condensed target means
    The centroid of a 0/1 label over a cluster is the cluster's share of
    positives ``s_j``, and ``w_j * [log(1 + e^z) - s_j z]`` is exactly the
    summed cross-entropy of the cluster's rows at a common ``z``: shares in
    [0, 1] are the right targets (:func:`gedenb.solvers.logistic_regression`
    accepts them).  But a stored condensed sample is rounded onto each
    column's codec grid, and a 0/1 label's grid is {0, 1}: the stored label
    is the cluster's *majority* (ties round half to even, to 0).  Three
    targets are compared:

    ``share``
        clusters on the feature bits (the label excluded from clustering),
        target = the cluster's positive share, computed from the rows and
        the stored beta positions (:func:`cluster_shares`; the paper's
        storage-constrained path also recomputes centroids from the rows).
    ``majority``
        the same clusters, the stored (rounded) condensed label.
    ``all columns``
        the plain reading: clustering bits from every column, the label's
        bit included when its entropy ranks; stored condensed samples.

Solver: weighted batch GD on weighted-standardised features (Appendix D),
``lr = 1.0`` (the same minimiser as the solver's default 0.1, reached ~6x
sooner; both full-data fits converge), ``tol = 1e-9`` relative loss change,
``max_iter = 5000``; condensed sets that are linearly separable never
converge and stop there (counted in the table).
"""

from __future__ import annotations

import numpy as np

from .. import condensed
from ..datasets import credit_default, ijcnn1
from ..encode import encode_columns
from ..solvers import accuracy, logistic_regression
from .options import ROOT, Option, experiment
from .regression import SEEDS, _mean_std, _tempdir, compress_variant, split, storage_percent
from .table import ResultTable, pyplot

__all__ = ["CREDIT_BETAS", "IJCNN1_BETAS", "cluster_shares", "fig11", "load_logistic", "log_loss"]

CREDIT_BETAS = (8, 16, 24, 32, 40, 48, 56, 64, 80)
IJCNN1_BETAS = (8, 16, 24, 32, 40, 48, 56, 64)
SOLVER_KW = dict(lr=1.0, tol=1e-9, max_iter=5000)
QUICK_SOLVER_KW = dict(lr=1.0, tol=1e-9, max_iter=300)

#: Numbers the paper's Appendix D states: (fraction of data, accuracy
#: relative to full, storage relative to full).
PAPER = {"credit": [(0.33, 0.91, 0.25), (0.55, 1.0, 0.30)], "ijcnn1": [(0.01, 0.90, 0.20), (0.50, 1.0, 0.30)]}


def load_logistic(name: str, seed: int = 0, root=None):
    """``(train, test)`` tables with the 0/1 label as the last column.

    Parameters
    ----------
    name : {"credit", "ijcnn1"}
        Default of Credit Card Clients (split 80/20 by ``seed``) or IJCNN1 (its own train and test files).
    seed : int
        The split's seed (Credit Default only).
    root : path, optional
        Data folder (default: ``$GEDENB_DATA``).
    """
    if name == "credit":
        return split(credit_default(root).data, seed)
    if name == "ijcnn1":
        train, test = ijcnn1(True, root).data.copy(), ijcnn1(False, root).data.copy()
        for t in (train, test):
            t[:, -1] = t[:, -1] > 0
        return train, test
    raise ValueError(f"unknown data set {name!r}; choose 'credit' or 'ijcnn1'")


def _bits_at(codes: np.ndarray, widths: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``(rows, len(positions))`` uint8: the bits of ``codes`` at row bit positions (MSB first)."""
    ends = np.cumsum(widths)
    cols = np.searchsorted(ends, positions, side="right")
    shift = (ends[cols] - 1 - positions).astype(np.uint64)
    return ((codes[:, cols].astype(np.uint64) >> shift) & np.uint64(1)).astype(np.uint8)


def cluster_shares(train: np.ndarray, c) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored condensed samples of ``c`` with each cluster's exact label share.

    Rows are grouped by their bits at ``c.beta_positions`` (the clusters of
    Algorithm 1); each stored condensed sample is matched to its cluster by
    the same bits (a centroid of a prefix-aligned cluster keeps the prefix),
    and the match is verified against the stored weights.

    Parameters
    ----------
    train : (n, d) float64
        The training table that ``c`` compressed, label last.
    c : Compressed
        Its compression with stored condensed samples.

    Returns
    -------
    samples : (m, d) float64
        :func:`gedenb.condensed` output, label column replaced by the share.
    weights : (m,) int64
    majority : (m,) float64
        The stored (rounded) label column, for comparison.
    """
    S, w = condensed(c)
    pos = np.asarray(c.beta_positions, dtype=np.int64)
    widths = np.asarray(c.widths, dtype=np.int64)
    keys_rows = np.packbits(_bits_at(encode_columns(train, c.codecs), widths, pos), axis=1)
    keys_cond = np.packbits(_bits_at(encode_columns(S.astype(train.dtype), c.codecs), widths, pos), axis=1)
    uniq, inv, counts = np.unique(keys_rows, axis=0, return_inverse=True, return_counts=True)
    inv = inv.reshape(-1)
    pos_sum = np.bincount(inv, weights=train[:, -1].astype(np.float64), minlength=len(uniq))
    # locate every condensed key among the row keys
    allk = np.concatenate([uniq, keys_cond])
    _, allinv = np.unique(allk, axis=0, return_inverse=True)
    allinv = allinv.reshape(-1)
    lookup = np.full(allinv.max() + 1, -1, dtype=np.int64)
    lookup[allinv[: len(uniq)]] = np.arange(len(uniq))
    g = lookup[allinv[len(uniq):]]
    if (g < 0).any() or not np.array_equal(counts[g], w):
        raise RuntimeError("condensed samples do not match the clusters of their beta positions")
    out = S.copy()
    out[:, -1] = pos_sum[g] / counts[g]
    return out, w, S[:, -1].copy()


def log_loss(model, X, y) -> float:
    """Mean test cross-entropy of a logistic model (probabilities clipped to [1e-15, 1 - 1e-15]).

    Parameters
    ----------
    model : LogisticModel
        A fitted model (:func:`gedenb.solvers.logistic_regression`).
    X : (n, d) array
        Test features.
    y : (n,) array of 0/1
        Test labels.
    """
    z = model.decision_function(X)
    y = np.asarray(y, dtype=np.float64)
    # log(1 + e^z) - y z, stably; clipping the probability caps each term at -log(1e-15)
    loss = np.logaddexp(0.0, z) - y * z
    return float(np.mean(np.minimum(loss, -np.log(1e-15))))


def _fit_acc(X, y, w, Xte, yte, kw):
    r = logistic_regression(X, y, w, **kw)
    return accuracy(r.model, Xte, yte), log_loss(r.model, Xte, yte), r.converged


def _run(name, betas, seeds, kw, tmp, root, max_train=None):
    acc = {b: {f: [] for f in ("frac", "share", "maj", "eq1", "disk", "fracA", "all", "eq1A", "diskA", "conv",
                                "xshare", "xmaj", "xall")}
           for b in betas}
    full = {f: [] for f in ("acc", "base", "conv", "xent")}
    for seed in seeds:
        train, test = load_logistic(name, seed, root)
        if max_train is not None:  # a random subset: IJCNN1's training file is ordered
            keep = np.sort(np.random.default_rng(seed).permutation(len(train))[:max_train])
            train = np.ascontiguousarray(train[keep])
        Xte, yte = test[:, :-1], test[:, -1]
        a_full, x_full, conv = _fit_acc(train[:, :-1], train[:, -1], None, Xte, yte, kw)
        full["acc"].append(a_full)
        full["xent"].append(x_full)
        full["base"].append(max(yte.mean(), 1 - yte.mean()))
        full["conv"].append(conv)
        for b in betas:
            r = acc[b]
            c = compress_variant(train, b, "features")
            S, w, maj = cluster_shares(train, c)
            a_share, x_share, c1 = _fit_acc(S[:, :-1], S[:, -1], w, Xte, yte, kw)
            a_maj, x_maj, c2 = _fit_acc(S[:, :-1], maj, w, Xte, yte, kw)
            eq, disk = storage_percent(c, tmp)
            cA = compress_variant(train, b, "all")
            SA, wA = condensed(cA)
            a_all, x_all, c3 = _fit_acc(SA[:, :-1], SA[:, -1], wA, Xte, yte, kw)
            eqA, diskA = storage_percent(cA, tmp)
            for f, v in (("frac", 100.0 * len(w) / len(train)), ("share", a_share / a_full),
                         ("maj", a_maj / a_full), ("eq1", eq), ("disk", disk),
                         ("fracA", 100.0 * len(wA) / len(train)), ("all", a_all / a_full), ("eq1A", eqA),
                         ("diskA", diskA), ("conv", int(c1) + int(c2) + int(c3)), ("xshare", x_share / x_full),
                         ("xmaj", x_maj / x_full), ("xall", x_all / x_full)):
                r[f].append(v)
    return full, acc


@experiment("Fig. 11: logistic regression on condensed samples (Credit Default, IJCNN1)",
            seeds=Option("80/20 split seeds of Credit Default, comma-separated (IJCNN1 has its own split)"),
            credit_betas=Option("clustering bits on Credit Default, comma-separated"),
            ijcnn1_betas=Option("clustering bits on IJCNN1, comma-separated"), root=ROOT)
def fig11(*, seeds=SEEDS, credit_betas=CREDIT_BETAS, ijcnn1_betas=IJCNN1_BETAS, solver_kw=None, root=None,
          out_dir=None, quick: bool = False, figure: bool = False) -> ResultTable:
    """Test accuracy and storage relative to full-data training vs fraction of condensed samples.

    Default of Credit Card: mean over the split ``seeds``; IJCNN1: its fixed
    train/test files (one run: compression and GD are deterministic).
    Accuracy is relative to the same solver on the full training data (the
    paper's normalisation); storage is Eq. 1 and ``.gede`` bytes relative
    to the raw training table (8-byte values).  ``quick``: one seed, two
    betas, at most 300 GD steps, 5,000 random IJCNN1 training rows.

    Parameters
    ----------
    seeds : tuple of int
        80/20 split seeds of Credit Default (IJCNN1 has its own split).
    credit_betas : tuple of int
        Clustering bits on Credit Default.
    ijcnn1_betas : tuple of int
        Clustering bits on IJCNN1.
    solver_kw : dict, optional
        Keyword arguments of :func:`gedenb.solvers.logistic_regression`, over the defaults.
    root : path, optional
        Data folder (default: ``$GEDENB_DATA``).
    out_dir : path, optional
        Folder for the run's temporary files (default: the system's temporary folder).
    quick : bool
        A short smoke run (what it cuts is said above).
    figure : bool
        Draw the figure (the table's ``figure``); without matplotlib the table comes without one.

    Returns
    -------
    ResultTable
    """
    plt = pyplot(figure)
    kw = dict(SOLVER_KW if not quick else QUICK_SOLVER_KW)
    kw.update(solver_kw or {})
    if quick:
        seeds, credit_betas, ijcnn1_betas = seeds[:1], (16, 32), (8, 16)
    runs = {}
    with _tempdir(out_dir) as tmp:
        runs["credit"] = (credit_betas, *_run("credit", credit_betas, seeds, kw, tmp, root))
        runs["ijcnn1"] = (ijcnn1_betas, *_run("ijcnn1", ijcnn1_betas, (0,), kw, tmp, root,
                                              max_train=5000 if quick else None))
    rows = []
    absolute = []
    for name, (betas, full, acc) in runs.items():
        fa, fs = _mean_std(full["acc"])
        base = float(np.mean(full["base"]))
        absolute.append(f"{name}: full-data test accuracy {fa:.4f} (std {fs:.4f}), majority class {base:.4f}, "
                        f"full-data test cross-entropy {np.mean(full['xent']):.4f}")
        rows.append((name, "full", 100.0, 1.0, 1.0, 1.0, 1.0, f"{int(np.sum(full['conv']))}/{len(full['conv'])}",
                     100.0, 100.0, 100.0, 1.0, 1.0, 100.0, 100.0))
        r_base = round(float(np.mean(np.asarray(full["base"]) / np.asarray(full["acc"]))), 4)
        rows.append((name, "majority-class predictor", 0.0, r_base, r_base, "-", "-", "-", "-", "-", 0.0, r_base, "-",
                     "-", "-"))
        for b in betas:
            r = acc[b]
            m = {f: float(np.mean(v)) for f, v in r.items()}
            n_fits = 3 * len(r["conv"])
            rows.append((name, b, round(m["frac"], 3), round(m["share"], 4), round(m["maj"], 4),
                         round(m["xshare"], 3), round(m["xmaj"], 3),
                         f"{int(np.sum(r['conv']))}/{n_fits}", round(m["eq1"], 2), round(m["disk"], 2),
                         round(m["fracA"], 3), round(m["all"], 4), round(m["xall"], 3), round(m["eq1A"], 2),
                         round(m["diskA"], 2)))
    paper = "; ".join(f"{k}: " + ", ".join(f"{100 * f:.0f}% of data -> accuracy {a:.2f}, storage {s:.2f}"
                                           for f, a, s in v) for k, v in PAPER.items())
    notes = (f"Logistic regression by weighted GD ({kw}). Credit: seeds {list(seeds)} (80/20 split), means; IJCNN1: "
             f"given split, one run. Columns 'share'/'majority' (features-only clustering, one store) and 'all "
             f"columns' (label bits may cluster, another store): 'acc' = test accuracy / full-data test accuracy, "
             f"'xent' = test cross-entropy / full-data test cross-entropy (lower is better; probabilities clipped "
             f"at 1e-15); "
             f"{'; '.join(absolute)}. 'converged': GD fits that met tol (3 per seed and beta). "
             f"Storage: % of the raw 8-byte training table. Paper (App. D): {paper}.")
    fig = None
    if plt is not None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for ax, (name, (betas, full, acc)) in zip(axes, runs.items()):
            fr = [np.mean(acc[b]["frac"]) for b in betas]
            frA = [np.mean(acc[b]["fracA"]) for b in betas]
            for key, x, label in (("share", fr, "accuracy, share target"), ("maj", fr, "accuracy, majority (stored)"),
                                  ("all", frA, "accuracy, all columns (stored)")):
                ax.plot(x, [np.mean(acc[b][key]) for b in betas], marker="o", label=label)
            ax.plot(fr, [np.mean(acc[b]["eq1"]) / 100 for b in betas], marker="s", ls="--",
                    label="storage (Eq. 1 / raw)")
            ax.axhline(np.mean(full["base"]) / np.mean(full["acc"]), color="grey", ls=":",
                       label="majority-class predictor")
            for f, a, s in PAPER[name]:
                ax.scatter([100 * f], [a], marker="x", color="k")
                ax.scatter([100 * f], [s], marker="+", color="k")
            ax.set_xscale("log")
            ax.set_xlabel("condensed samples, % of training rows")
            ax.set_ylabel("relative to full data")
            ax.set_title(name + " (x, +: paper's stated points)")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle("Fig. 11: logistic regression on condensed samples")
        fig.tight_layout()
    return ResultTable(
        title="Fig. 11: logistic regression, accuracy and storage relative to full data (Credit Default, IJCNN1)",
        columns=("data", "beta", "m/n %", "acc share", "acc majority", "xent share", "xent majority", "converged",
                 "Eq. 1 % raw", "disk % raw", "m/n % (all cols)", "acc all cols", "xent all cols", "Eq. 1 % (all cols)",
                 "disk % (all cols)"),
        rows=rows, notes=notes, figure=fig)
