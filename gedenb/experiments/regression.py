"""Linear regression on condensed samples: the paper's Fig. 3, 5a, 5b, 9 and 10.

Every experiment here uses California Housing (20,640 rows, 8 features and
the target ``MedHouseVal`` as the last column), split 80/20 by
``np.random.default_rng(seed).permutation`` with ``seed`` the split seed
(seeds ``0..9`` for the "mean over 10 runs"; never tuned per figure).

What enters the clustering
    ``clustering="features"`` (our default): only the 8 feature columns
    offer clustering bits (``compress(..., cluster_columns=range(8))``).
    ``clustering="all"`` (the plain reading of Algorithm 1): all 9 columns,
    the target included.  Choosing clusters on the target's bits selects on
    the outcome -- the classic "grouping on the dependent variable" bias of
    grouped regression -- and the centroids' regression is biased (+50 to
    +70% test MSE at ~1% of the rows); grouping on the features only is
    unbiased to first order (see ``docs/RESULTS.md``).
    ``clustering="low"`` (Fig. 9/10 only): the ``beta`` lowest-entropy
    non-constant feature bit positions instead of Algorithm 1's
    high-entropy MSB levels.

Condensed samples
    :func:`gedenb.condensed`: each cluster's mean over its rows (all
    columns, target included), rounded onto each column's codec grid, as
    stored in the ``.gede`` file; weights are the cluster sizes (sum ``n``).

Solvers
    :mod:`gedenb.solvers`: features are standardised with the (weighted)
    mean and standard deviation of what the solver sees; the loss is
    Eq. 4 (``1/(2W) sum_j w_j r_j^2``, ``W = n``).  Gradient descent stops
    when the loss changes by at most ``tol = 1e-10`` relative between two
    steps ("until convergence"), or at ``max_iter``.

Storage
    Eq. 1 (:func:`gedenb.eq1_bits`) and the bytes of the ``.gede`` file, both
    as a percentage of the raw float64 training table (``n * 9 * 8`` bytes).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import compress, condensed, eq1_bits, save
from ..datasets import california_housing
from ..sizes import eq1, params_bits
from ..solvers import (
    SOLVERS,
    LinearModel,
    _check_xyw,
    _standardise,
    _unscale,
    closed_form,
    get_solver,
    gradient_descent,
    mse,
    sgd,
)
from .options import Option, experiment
from .table import ResultTable, pyplot

__all__ = [
    "ACCEPT_BETA",
    "CALIFORNIA_BETAS",
    "CLUSTERINGS",
    "SEEDS",
    "TIME_BETAS",
    "compress_variant",
    "fig3",
    "fig5a",
    "fig5b",
    "fig9",
    "fig10",
    "gd_path",
    "gede_base_percent",
    "low_entropy_positions",
    "split",
    "storage_percent",
]

#: Split seeds of the "mean over 10 runs" (the same for every figure).
SEEDS = tuple(range(10))
#: Beta sweep of Fig. 5a / 9 / 10 (m/n from ~0.2% to ~25%).
CALIFORNIA_BETAS = (8, 10, 12, 14, 16, 18, 20, 24, 28)
#: Betas of the training-time figure (5b).
TIME_BETAS = (8, 10, 12, 14, 16, 20)
#: The documented beta of the acceptance bar (m/n <= 1%, MSE within 5%,
#: storage <= 45% of the raw float64 table).
ACCEPT_BETA = 12
#: Plateau threshold of the compression phase in every figure.
TAU = 10
#: Clustering variants (see the module docstring).
CLUSTERINGS = ("features", "all", "low")

QUICK_SEEDS = (0,)
QUICK_BETAS = (10, 12)

#: Numbers the paper states in its text (Sec. 5 and Appendix C.1).
PAPER_FIG5B = {"m": 92, "fraction %": 0.6, "MSE vs full %": 4.0, "storage %": 44.0}

#: Options the California Housing sweeps share.
BETAS = Option("clustering bits of the beta sweep, comma-separated")
SPLIT_SEEDS = Option("80/20 split seeds, comma-separated; the table gives means over them")


# --------------------------------------------------------------------------
# building blocks (public: the tests, tutorial and benchmarks use them)
# --------------------------------------------------------------------------
def split(data: np.ndarray, seed: int, train_share: float = 0.8):
    """``(train, test)``: rows permuted by ``default_rng(seed)``, the first
    ``round(train_share * n)`` for training.

    Parameters
    ----------
    data : (n, d) array
        The table.
    seed : int
        Seed of the permutation.
    train_share : float
        Share of the rows for training.
    """
    perm = np.random.default_rng(seed).permutation(len(data))
    n_train = int(round(train_share * len(data)))
    return np.ascontiguousarray(data[perm[:n_train]]), np.ascontiguousarray(data[perm[n_train:]])


def low_entropy_positions(entropy: np.ndarray, widths: np.ndarray, beta: int) -> np.ndarray:
    """The ``beta`` lowest-entropy non-constant bit positions (ties: lower
    position first): the low-entropy counterpart of
    :func:`gedenb.clusters.cluster_positions` for Fig. 9/10.  ``widths`` is
    accepted for the same signature.

    Parameters
    ----------
    entropy : (l_t,) float64
        Entropy of every bit position of the table's codes.
    widths : (d,) int
        Column code widths (unused).
    beta : int
        Positions to choose.
    """
    entropy = np.asarray(entropy, dtype=np.float64)
    live = np.flatnonzero(entropy > 0)
    if not 1 <= beta <= live.size:
        raise ValueError(f"beta={beta} must be between 1 and the number of non-constant bit positions ({live.size})")
    return live[np.lexsort((live, entropy[live]))][:beta].astype(np.int64)


def compress_variant(train: np.ndarray, beta: int, clustering: str = "features", tau: int = TAU):
    """``compress(train, beta, tau)`` with the clustering bits of one variant: the paper's file, whose
    condensed samples are the stored rows on the codec grid (``exact_condensed=False``).

    ``"features"``: Algorithm 1 on the feature columns (all but the last);
    ``"all"``: Algorithm 1 on every column, target included;
    ``"low"``: the ``beta`` lowest-entropy non-constant feature bits.

    Parameters
    ----------
    train : (n, d) float64
        The training table, target last.
    beta : int
        Clustering bits.
    clustering : {"features", "all", "low"}
        The variant (above).
    tau : int
        Plateau threshold of the base search.
    """
    d = train.shape[1]
    if clustering == "features":
        return compress(train, beta=beta, tau=tau, cluster_columns=range(d - 1), exact_condensed=False)
    if clustering == "all":
        return compress(train, beta=beta, tau=tau, exact_condensed=False)
    if clustering == "low":
        return compress(train, beta=beta, tau=tau, cluster_columns=range(d - 1), exact_condensed=False,
                        cluster_rule=low_entropy_positions)
    raise ValueError(f"unknown clustering {clustering!r}; choose from {CLUSTERINGS}")


def storage_percent(c, folder) -> tuple[float, float]:
    """``(Eq. 1, bytes on disk)`` of ``c`` as percentages of its raw table.

    Parameters
    ----------
    c : Compressed
        The compressed table.
    folder : path
        Where the file is written to be measured.
    """
    path = Path(folder) / f"storage-{os.getpid()}.gede"
    try:
        nbytes = save(c, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return 100.0 * eq1_bits(c) / 8 / c.raw_bytes, 100.0 * nbytes / c.raw_bytes


def gede_base_percent(c) -> float:
    """Eq. 1 (% of raw) of classical GeDe with the clustering bits as base bits.

    The base holds the constant positions and the ``beta`` clustering bits,
    so the bases are exactly the clusters (``n_b = m``); every row keeps a
    base ID and its remaining ``l_t - l_b`` bits; no condensed rows.  This
    is the accuracy/compression trade-off of earlier GeDe methods that the
    paper's Fig. 10 illustrates.

    Parameters
    ----------
    c : Compressed
        A table compressed with ``beta`` clustering bits.
    """
    n_b = len(c.weights)
    v = int(np.count_nonzero(c.entropy == 0))
    l_b = v + c.beta
    bits = eq1(n_b, l_b, c.row_bits - l_b, c.n, 0, params_bits(c.d, c.row_bits, 0))
    return 100.0 * bits / 8 / c.raw_bytes


def gd_path(X, y, w=None, *, lr: float, steps: int, X_eval=None, y_eval=None):
    """Weighted batch GD (as :func:`gedenb.solvers.gradient_descent`) with a trace.

    Returns ``(losses, eval_losses, model)``: ``losses[t]`` is the weighted
    loss on ``(X, y, w)`` before step ``t`` (the solver's trace),
    ``eval_losses[t]`` the loss ``1/(2N) sum (x.coef + b - y)^2`` of the same
    parameters on ``(X_eval, y_eval)`` (default: ``X, y`` unweighted).  Used
    by Fig. 3 to put GD on condensed samples on the full data's loss scale.

    Parameters
    ----------
    X : (n, d) array
        Features.
    y : (n,) array
        Targets.
    w : (n,) array, optional
        Row weights (default: all ones).
    lr : float
        Learning rate.
    steps : int
        GD steps.
    X_eval, y_eval : arrays, optional
        The data of ``eval_losses`` (default: ``X, y``).
    """
    X, y, w = _check_xyw(X, y, w)
    X_eval = X if X_eval is None else np.asarray(X_eval, dtype=np.float64)
    y_eval = y if y_eval is None else np.asarray(y_eval, dtype=np.float64)
    # the evaluation loss through centred second moments: O(d^2) per step
    xm, ym = X_eval.mean(axis=0), float(y_eval.mean())
    Xc, yc = X_eval - xm, y_eval - ym
    G, cy, yy, N = Xc.T @ Xc, Xc.T @ yc, float(yc @ yc), len(yc)
    Z, mu, sd = _standardise(X, w)
    W = w.sum()
    theta = np.zeros(X.shape[1])
    b = 0.0
    losses = np.empty(steps + 1)
    eval_losses = np.empty(steps + 1)
    for t in range(steps + 1):
        res = Z @ theta + b - y
        wr = w * res
        losses[t] = 0.5 * float(wr @ res) / W
        coef, icpt = _unscale(theta, b, mu, sd)
        delta = float(xm @ coef) + icpt - ym
        eval_losses[t] = 0.5 * ((float(coef @ G @ coef) - 2.0 * float(coef @ cy) + yy) / N + delta * delta)
        if t == steps:
            break
        theta = theta - lr * (Z.T @ wr) / W
        b -= lr * float(wr.sum()) / W
    return losses, eval_losses, LinearModel(coef, icpt)


def _warm_up() -> None:
    """Compile the solver kernels and Algorithm 1 once: time runs, not JIT."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = X @ np.ones(3) + rng.normal(size=64)
    gradient_descent(X, y, max_iter=5)
    gradient_descent(X, y, np.ones(64), max_iter=5)
    table = california_housing().data[::97]
    compress(table, beta=4, tau=TAU, cluster_columns=range(8))


def _fit(solver, X, y, w, **kw):
    t0 = time.perf_counter()
    res = get_solver(solver)(X, y, w, **kw)
    return res, time.perf_counter() - t0


def _mean_std(values) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0


def _tempdir(out_dir):
    return tempfile.TemporaryDirectory(dir=out_dir)


# --------------------------------------------------------------------------
# Fig. 3: GD vs mini-batch SGD vs GD on condensed samples
# --------------------------------------------------------------------------
@experiment("Fig. 3: GD on the full data vs mini-batch SGD vs GD on condensed samples (California Housing)",
            seed=Option("80/20 split seed (and SGD's)"), beta=Option("clustering bits (feature columns only)"),
            lr=Option("learning rate of all three runs"), steps=Option("steps of each run"))
def fig3(*, seed: int = 0, beta: int = ACCEPT_BETA, lr: float = 0.01, steps: int = 20_000,
         out_dir=None, quick: bool = False, figure: bool = False) -> ResultTable:
    """Training loss (on the full training split) against step.

    Three runs from zero on weighted-standardised features, same learning
    rate: full-batch GD on the ``n`` training rows, mini-batch SGD with
    batch size ``m`` (rows drawn uniformly with replacement), and full-batch
    GD on the ``m`` condensed samples (``beta`` feature bits).  SGD and GD
    on condensed samples cost the same per step (``m`` sample gradients);
    full-batch GD costs ``n / m`` times more per step.  Every curve is the
    loss ``J(theta) = 1/(2n) sum (x.theta + b - y)^2`` on the full training
    split, so the curves share one scale; ``J*`` is its minimum (closed
    form).  ``quick`` runs 1,000 steps.

    Parameters
    ----------
    seed : int
        80/20 split seed (and SGD's).
    beta : int
        Clustering bits (feature columns only).
    lr : float
        Learning rate of all three runs.
    steps : int
        Steps of each run.
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
    if quick:
        steps = 1000
    data = california_housing().data
    train, test = split(data, seed)
    X, y = train[:, :-1], train[:, -1]
    c = compress_variant(train, beta, "features")
    S, w = condensed(c)
    m, n = len(w), len(y)
    j_star = closed_form(X, y).losses[0]
    runs = {}
    t0 = time.perf_counter()
    g = gradient_descent(X, y, lr=lr, tol=0.0, max_iter=steps)
    # tol = 0 stops only if a step leaves the loss bit-identical: pad
    full = np.concatenate([g.losses, np.full(steps + 1 - len(g.losses), g.losses[-1])])
    runs["GD, full data"] = (n, full, g.model, time.perf_counter() - t0)
    t0 = time.perf_counter()
    s = sgd(X, y, lr=lr, batch_size=m, steps=steps, seed=seed)
    runs[f"SGD, batch {m}"] = (m, s.losses, s.model, time.perf_counter() - t0)
    t0 = time.perf_counter()
    _, cond, cond_model = gd_path(S[:, :-1], S[:, -1], w, lr=lr, steps=steps, X_eval=X, y_eval=y)
    runs["GD, condensed"] = (m, cond, cond_model, time.perf_counter() - t0)

    rows = []
    for name, (per_step, curve, model, dt) in runs.items():
        with np.errstate(all="ignore"):
            gap = (curve - j_star) / j_star
            reach = [int(np.argmax(gap <= g)) if (gap <= g).any() else None for g in (0.10, 0.05)]
            tail = curve[-max(1, len(curve) // 10):]
            final, spread = 100 * gap[-1], 100 * (tail.max() - tail.min()) / j_star
            test_mse = mse(model, test[:, :-1], test[:, -1])
        if not (np.isfinite(final) and final < 1e6):
            final = spread = test_mse = "diverged"
        else:
            final, spread, test_mse = round(final, 3), round(spread, 3), round(test_mse, 4)
        rows.append((name, per_step,
                     *(r if r is not None else "never" for r in reach),
                     *(r * per_step if r is not None else "never" for r in reach),
                     final, spread, test_mse, round(dt, 2)))
    notes = (f"seed {seed}, n = {n:,} training rows, m = {m} condensed samples (beta = {beta} feature bits, "
             f"{100 * m / n:.2f}% of n), lr = {lr}, {steps:,} steps from zero; J* = {j_star:.5f} (closed form on "
             f"the full split). 'gap' = (J - J*)/J* of the loss on the FULL training split. Equal cost per step: "
             f"SGD and GD on condensed samples each evaluate m = {m} sample gradients per step; full-batch GD "
             f"evaluates n = {n:,} (n/m = {n / m:.0f}x more), so 'sample gradients' is the cost axis. "
             f"GD on condensed samples converges to the condensed minimiser, whose loss on the full split sits a "
             f"little above J* (final gap); SGD keeps oscillating (last-10% range). Paper Fig. 3a: a figure only, "
             f"no numbers.")
    fig = None
    if plt is not None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for name, (per_step, curve, _, _) in runs.items():
            gap = np.maximum((curve - j_star) / j_star, 1e-12)
            steps_axis = np.arange(len(curve))
            axes[0].loglog(steps_axis[1:], gap[1:], label=name)
            axes[1].loglog(steps_axis[1:] * per_step, gap[1:], label=name)
        axes[0].set_xlabel("step")
        axes[1].set_xlabel("sample gradients evaluated (cost)")
        for ax in axes:
            ax.set_ylabel("(J - J*) / J*  on the full training split")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        fig.suptitle(f"Fig. 3: linear regression by GD on California Housing (lr {lr}, m = {m})")
        fig.tight_layout()
    return ResultTable(
        title="Fig. 3: GD on the full data vs mini-batch SGD (batch m) vs GD on m condensed samples",
        columns=("run", "samples/step", "steps to gap<=10%", "steps to gap<=5%", "sample grads to 10%",
                 "sample grads to 5%", "final gap %", "last-10% range %", "test MSE", "s"),
        rows=rows, notes=notes, figure=fig)


# --------------------------------------------------------------------------
# Fig. 5a: MSE and storage vs fraction of condensed samples
# --------------------------------------------------------------------------
def _sweep(betas, seeds, clusterings, solver, solver_kw, out_dir, gede_base=False):
    """Per (clustering, beta): lists over seeds of m, MSE, relative MSE, storage."""
    data = california_housing().data
    full = {}
    res = {(cl, b): {k: [] for k in ("m", "frac", "mse", "rel", "eq1", "disk", "gede")}
           for cl in clusterings for b in betas}
    with _tempdir(out_dir) as tmp:
        for seed in seeds:
            train, test = split(data, seed)
            Xte, yte = test[:, :-1], test[:, -1]
            model = get_solver(solver)(train[:, :-1], train[:, -1], None, **solver_kw).model
            full[seed] = mse(model, Xte, yte)
            for cl in clusterings:
                for b in betas:
                    c = compress_variant(train, b, cl)
                    S, w = condensed(c)
                    e = mse(get_solver(solver)(S[:, :-1], S[:, -1], w, **solver_kw).model, Xte, yte)
                    eq, disk = storage_percent(c, tmp)
                    r = res[(cl, b)]
                    r["m"].append(len(w))
                    r["frac"].append(100.0 * len(w) / len(train))
                    r["mse"].append(e)
                    r["rel"].append(100.0 * (e / full[seed] - 1))
                    r["eq1"].append(eq)
                    r["disk"].append(disk)
                    if gede_base:
                        r["gede"].append(gede_base_percent(c))
    return full, res


def _fraction_plot(ax, res, clusterings, betas, key, labels, err=True):
    for cl in clusterings:
        fr = [np.mean(res[(cl, b)]["frac"]) for b in betas]
        vals = [_mean_std(res[(cl, b)][key]) for b in betas]
        ax.errorbar(fr, [v[0] for v in vals], yerr=[v[1] for v in vals] if err else None,
                    marker="o", capsize=3, label=labels[cl])
    ax.set_xscale("log")
    ax.set_xlabel("condensed samples, % of training rows (m/n)")
    ax.grid(True, which="both", alpha=0.3)


_LABELS = {"features": "clustering on feature bits (ours)",
           "all": "clustering on all columns incl. target (plain reading)",
           "low": "low-entropy feature bits"}


@experiment("Fig. 5a: test MSE and storage vs fraction of condensed samples (California Housing)",
            betas=BETAS, seeds=SPLIT_SEEDS, clusterings=Option("clustering variants", choices=CLUSTERINGS),
            solver=Option("linear-regression solver", choices=tuple(SOLVERS)))
def fig5a(*, betas=CALIFORNIA_BETAS, seeds=SEEDS, clusterings=("features", "all"), solver="closed_form",
          solver_kw=None, out_dir=None, quick: bool = False, figure: bool = False) -> ResultTable:
    """Test MSE and storage against the fraction of condensed samples.

    Beta sweep on California Housing, mean and standard deviation over the
    split seeds, for clustering on the feature bits (ours) and on all
    columns (the plain reading).  ``solver`` defaults to the closed form
    (Eq. 10/11), the minimiser that GD at lr 0.001 converges to (Fig. 5b
    checks this); pass ``solver="gd"`` for GD.  Storage: Eq. 1 and bytes on
    disk as % of the raw float64 training table.

    Parameters
    ----------
    betas : tuple of int
        Clustering bits of the sweep.
    seeds : tuple of int
        80/20 split seeds; the table gives means over them.
    clusterings : tuple of str
        Clustering variants, from :data:`CLUSTERINGS` (:func:`compress_variant`).
    solver : str
        Linear-regression solver, from :data:`gedenb.solvers.SOLVERS`.
    solver_kw : dict, optional
        Keyword arguments of the solver.
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
    if quick:
        betas, seeds = QUICK_BETAS, QUICK_SEEDS
    solver_kw = dict(solver_kw or {})
    full, res = _sweep(betas, seeds, clusterings, solver, solver_kw, out_dir)
    fm, fs = _mean_std(list(full.values()))
    n_train = int(round(0.8 * len(california_housing().data)))
    rows = [("full data", "-", n_train, 100.0, round(fm, 4), round(fs, 4), 0.0, 0.0, 0.0, 100.0, 100.0)]
    for cl in clusterings:
        for b in betas:
            r = res[(cl, b)]
            mm, ms = _mean_std(r["mse"])
            rm, rs = _mean_std(r["rel"])
            rows.append((cl, b, round(float(np.mean(r["m"])), 1), round(float(np.mean(r["frac"])), 3),
                         round(mm, 4), round(ms, 4), round(rm, 2), round(rs, 2), round(float(np.max(r["rel"])), 2),
                         round(float(np.mean(r["eq1"])), 2), round(float(np.mean(r["disk"])), 2)))
    notes = (f"California Housing, 80/20 split, seeds {list(seeds)}; solver {solver} {solver_kw or ''}; tau = {TAU}. "
             f"'MSE vs full %' is the mean over seeds of 100*(MSE_condensed/MSE_full - 1) with its std and its "
             f"largest value (worst seed). "
             f"Storage: Eq. 1 and .gede bytes as % of the raw float64 training table (n x 9 x 8 bytes); "
             f"the full-data row is the raw table itself. Paper (Sec. 5): at 5% of the training rows the MSE is "
             f"'comparable to the full dataset' with storage 'less than 50%'; the curve itself is a figure only.")
    fig = None
    if plt is not None:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        _fraction_plot(axes[0], res, clusterings, betas, "mse", _LABELS)
        axes[0].axhline(fm, color="k", ls="--", label="full data")
        axes[0].set_ylim(0.9 * fm, 2.0 * fm)  # degenerate tiny-m points lie far above: see the table
        axes[0].set_ylabel("test MSE (clipped at 2x full)")
        axes[0].legend(fontsize=8)
        _fraction_plot(axes[1], res, clusterings, betas, "eq1", {k: v + " (Eq. 1)" for k, v in _LABELS.items()},
                       err=False)
        _fraction_plot(axes[1], res, clusterings[:1], betas, "disk", {k: v + " (on disk)" for k, v in _LABELS.items()},
                       err=False)
        axes[1].set_ylabel("storage, % of raw float64 table")
        axes[1].legend(fontsize=8)
        fig.suptitle(f"Fig. 5a: California Housing, {len(seeds)} seed(s), solver {solver}")
        fig.tight_layout()
    return ResultTable(
        title="Fig. 5a: test MSE and storage vs fraction of condensed samples (California Housing)",
        columns=("clustering", "beta", "m", "m/n %", "test MSE", "MSE std", "MSE vs full %", "vs full std",
                 "worst seed %", "Eq. 1 % raw", "disk % raw"),
        rows=rows, notes=notes, figure=fig)


# --------------------------------------------------------------------------
# Fig. 5b: training time vs MSE (GD, lr 0.001, until convergence)
# --------------------------------------------------------------------------
@experiment("Fig. 5b: GD training time vs test MSE, full data vs condensed samples (California Housing)",
            betas=BETAS, seeds=SPLIT_SEEDS, lrs=Option("GD learning rates, comma-separated"),
            tol=Option("GD stops at this relative loss change"), max_iter=Option("GD step limit"))
def fig5b(*, betas=TIME_BETAS, seeds=SEEDS, lrs=(0.001, 0.1), tol: float = 1e-10, max_iter: int = 1_000_000,
          out_dir=None, quick: bool = False, figure: bool = False) -> ResultTable:
    """Training time against test MSE: GD on the full split vs on condensed samples.

    For each learning rate in ``lrs`` (the paper's 0.001, and 0.1, which
    reaches the same minimiser ~70x sooner on standardised features), GD runs
    from zero until the loss changes by at most ``tol`` relative between two
    steps (or ``max_iter``).  Times are the solver call only (kernels
    compiled beforehand); compression time is reported separately.  The
    closed-form MSE of the same data is given beside GD's.  The acceptance
    bar (m/n <= 1%, MSE within 5% of full with the same solver, Eq. 1 and
    disk <= 45% of raw) is checked per row on the seed means.
    ``quick``: one seed, two betas, lr 0.1 only.

    Parameters
    ----------
    betas : tuple of int
        Clustering bits of the sweep.
    seeds : tuple of int
        80/20 split seeds; the table gives means over them.
    lrs : tuple of float
        GD learning rates.
    tol : float
        GD stops at this relative loss change.
    max_iter : int
        GD step limit.
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
    if quick:
        betas, seeds, lrs = QUICK_BETAS, QUICK_SEEDS, (0.1,)
    _warm_up()
    data = california_housing().data
    keys = [(lr, b) for lr in lrs for b in (None, *betas)]
    acc = {k: {f: [] for f in _FIG5B_FIELDS} for k in keys}
    with _tempdir(out_dir) as tmp:
        for seed in seeds:
            _fig5b_seed(acc, data, seed, betas, lrs, tol, max_iter, tmp)
    rows = [_fig5b_row(lr, b, acc[(lr, b)]) for lr, b in keys]
    p = PAPER_FIG5B
    rows.append(("paper", "?", p["m"], p["fraction %"], "?", "?", "?", "?", "?", p["MSE vs full %"], "?", "?", "?",
                 p["storage %"], "?", "-"))
    notes = (f"California Housing, 80/20 split, seeds {list(seeds)}; GD from zero on weighted-standardised "
             f"features, tol {tol:g} (relative loss change), max_iter {max_iter:,}; clustering on feature bits, "
             f"tau {TAU}. 'train s': the solver call (JIT compiled beforehand); 'compress s': compress() of the "
             f"training split. 'MSE vs full %': mean over seeds of 100*(MSE/MSE_full - 1), GD vs GD at the same "
             f"lr; 'closed form vs full %': the same with the closed form on both sides. 'bar' = m/n <= 1%, |MSE "
             f"vs full| <= 5% (GD and closed form), Eq. 1 and disk <= 45% of raw. Paper (Sec. 5, App. C.1): 92 "
             f"condensed samples (0.6% of the rows), MSE 4% above full, 44% storage, Apple M3 Pro; times are a "
             f"figure only.")
    return ResultTable(
        title="Fig. 5b: GD training time vs test MSE, full data vs condensed samples (California Housing)",
        columns=("lr", "beta", "m", "m/n %", "GD steps", "converged", "train s", "compress s", "test MSE",
                 "MSE vs full %", "vs full std", "worst seed %", "closed form vs full %", "Eq. 1 % raw", "disk % raw",
                 "bar"),
        rows=rows, notes=notes, figure=None if plt is None else _fig5b_figure(plt, acc, betas, lrs))


#: What :func:`fig5b` records per (lr, beta) and seed.
_FIG5B_FIELDS = ("m", "frac", "iter", "conv", "t", "tc", "mse", "rel", "cf", "cfrel", "eq1", "disk")


def _fig5b_seed(acc: dict, data: np.ndarray, seed: int, betas, lrs, tol: float, max_iter: int, tmp) -> None:
    """One split of :func:`fig5b`: compress per beta, then GD per lr on the full split and on each
    condensed set; appended to ``acc[(lr, beta)]`` (beta None: the full split)."""
    train, test = split(data, seed)
    X, y, Xte, yte = train[:, :-1], train[:, -1], test[:, :-1], test[:, -1]
    cf_full = mse(closed_form(X, y).model, Xte, yte)
    comp = {}
    for b in betas:
        t0 = time.perf_counter()
        c = compress_variant(train, b, "features")
        tc = time.perf_counter() - t0
        comp[b] = (c, *condensed(c), tc, *storage_percent(c, tmp))
    for lr in lrs:
        r, dt = _fit("gd", X, y, None, lr=lr, tol=tol, max_iter=max_iter)
        e_full = mse(r.model, Xte, yte)
        _record(acc[(lr, None)], (len(y), 100.0, r.n_iter, r.converged, dt, 0.0, e_full, 0.0, cf_full, 0.0,
                                  100.0, 100.0))
        for b in betas:
            c, S, w, tc, eq, disk = comp[b]
            r, dt = _fit("gd", S[:, :-1], S[:, -1], w, lr=lr, tol=tol, max_iter=max_iter)
            e = mse(r.model, Xte, yte)
            cf = mse(closed_form(S[:, :-1], S[:, -1], w).model, Xte, yte)
            _record(acc[(lr, b)], (len(w), 100.0 * len(w) / len(y), r.n_iter, r.converged, dt, tc, e,
                                   100.0 * (e / e_full - 1), cf, 100.0 * (cf / cf_full - 1), eq, disk))


def _record(a: dict, values: tuple) -> None:
    """Append one seed's ``values`` (in :data:`_FIG5B_FIELDS` order) to the lists of ``a``."""
    for f, v in zip(_FIG5B_FIELDS, values):
        a[f].append(v)


def _fig5b_row(lr, b, a: dict) -> tuple:
    """The table row of one (lr, beta): seed means, and whether they meet the acceptance bar."""
    mean = {f: float(np.mean(a[f])) for f in a}
    ok = (b is not None and mean["frac"] <= 1.0 and abs(mean["rel"]) <= 5.0 and abs(mean["cfrel"]) <= 5.0
          and mean["eq1"] <= 45.0 and mean["disk"] <= 45.0)
    return (lr, "full" if b is None else b, round(mean["m"], 1), round(mean["frac"], 3),
            round(mean["iter"]), f"{int(np.sum(a['conv']))}/{len(a['conv'])}",
            round(mean["t"], 4), round(mean["tc"], 3), round(mean["mse"], 4),
            round(_mean_std(a["rel"])[0], 2), round(_mean_std(a["rel"])[1], 2),
            round(float(np.max(a["rel"])), 2), round(mean["cfrel"], 2), round(mean["eq1"], 2),
            round(mean["disk"], 2), "-" if b is None else ("yes" if ok else "no"))


def _fig5b_figure(plt, acc: dict, betas, lrs):
    """Test MSE against training time, one panel per learning rate."""
    fig, axes = plt.subplots(1, len(lrs), figsize=(5.5 * len(lrs), 4), squeeze=False)
    for ax, lr in zip(axes[0], lrs):
        for b in (None, *betas):
            a = acc[(lr, b)]
            ax.scatter(np.mean(a["t"]), np.mean(a["mse"]), marker="*" if b is None else "o", s=80)
            ax.annotate("full" if b is None else f"beta {b}\n({np.mean(a['frac']):.2f}%)",
                        (np.mean(a["t"]), np.mean(a["mse"])), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("training time, s (GD until convergence)")
        ax.set_ylabel("test MSE")
        ax.set_title(f"lr {lr}")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("Fig. 5b: training time vs test MSE (California Housing)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------
# Fig. 9 / 10: high- vs low-entropy clustering bits
# --------------------------------------------------------------------------
def _entropy_rows(betas, seeds, out_dir, metric):
    full, res = _sweep(betas, seeds, ("features", "low"), "closed_form", {}, out_dir, gede_base=metric == "storage")
    rows = []
    for cl in ("features", "low"):
        name = "high (Algorithm 1)" if cl == "features" else "low"
        for b in betas:
            r = res[(cl, b)]
            if metric == "mse":
                mm, ms = _mean_std(r["mse"])
                rm, rs = _mean_std(r["rel"])
                rows.append((name, b, round(float(np.mean(r["frac"])), 3), round(mm, 4), round(ms, 4),
                             round(rm, 2), round(rs, 2)))
            else:
                rows.append((name, b, round(float(np.mean(r["frac"])), 3), round(float(np.mean(r["eq1"])), 2),
                             round(float(np.mean(r["disk"])), 2), round(float(np.mean(r["gede"])), 2)))
    return full, res, rows


@experiment("Fig. 9: test MSE vs fraction, clustering on high- vs low-entropy bits (California Housing)",
            betas=BETAS, seeds=SPLIT_SEEDS)
def fig9(*, betas=CALIFORNIA_BETAS, seeds=SEEDS, out_dir=None, quick: bool = False,
         figure: bool = False) -> ResultTable:
    """Test MSE vs fraction: clustering on high- vs low-entropy feature bits.

    High: Algorithm 1's MSB levels by decreasing entropy; low: the ``beta``
    lowest-entropy non-constant feature bit positions.  Closed-form weighted
    least squares on the condensed samples; mean and std over the seeds.

    Parameters
    ----------
    betas : tuple of int
        Clustering bits of the sweep.
    seeds : tuple of int
        80/20 split seeds; the table gives means over them.
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
    if quick:
        betas, seeds = QUICK_BETAS, QUICK_SEEDS
    full, res, rows = _entropy_rows(betas, seeds, out_dir, "mse")
    fm = float(np.mean(list(full.values())))
    notes = (f"California Housing, 80/20 split, seeds {list(seeds)}, closed form; both variants cluster on the 8 "
             f"feature columns only. Full-data test MSE {fm:.4f}. Paper (App. B): 'high-entropy bit selection "
             f"significantly reduces MSE'; Fig. 9 is a figure only, no numbers.")
    fig = None
    if plt is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        _fraction_plot(ax, res, ("features", "low"), betas, "mse",
                       {"features": "high-entropy bits (Algorithm 1)", "low": "low-entropy bits"})
        ax.axhline(fm, color="k", ls="--", label="full data")
        ax.set_ylim(0.9 * fm, 3.0 * fm)
        ax.set_ylabel("test MSE (clipped at 3x full)")
        ax.legend()
        ax.set_title("Fig. 9: compressed data fraction vs MSE")
        fig.tight_layout()
    return ResultTable(
        title="Fig. 9: test MSE vs fraction, clustering on high- vs low-entropy bits (California Housing)",
        columns=("clustering bits", "beta", "m/n %", "test MSE", "MSE std", "MSE vs full %", "vs full std"),
        rows=rows, notes=notes, figure=fig)


@experiment("Fig. 10: storage vs fraction, clustering on high- vs low-entropy bits (California Housing)",
            betas=BETAS, seeds=SPLIT_SEEDS)
def fig10(*, betas=CALIFORNIA_BETAS, seeds=SEEDS, out_dir=None, quick: bool = False,
          figure: bool = False) -> ResultTable:
    """Storage vs fraction: clustering on high- vs low-entropy feature bits.

    Two storage measures per variant: EntroGeDe (the clustering bits only
    choose the condensed samples; the base is still chosen greedily by
    increasing entropy, Eq. 1 with the ``m`` stored samples; and the
    ``.gede`` bytes), and classical GeDe with the same ``beta`` bits as the
    base bits (``n_b = m``, see :func:`gede_base_percent`) -- the trade-off
    the paper's Fig. 10 is about.

    Parameters
    ----------
    betas : tuple of int
        Clustering bits of the sweep.
    seeds : tuple of int
        80/20 split seeds; the table gives means over them.
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
    if quick:
        betas, seeds = QUICK_BETAS, QUICK_SEEDS
    full, res, rows = _entropy_rows(betas, seeds, out_dir, "storage")
    notes = (f"California Housing, 80/20 split, seeds {list(seeds)}; % of the raw float64 training table. "
             f"'EntroGeDe': compress() with the given clustering bits (base chosen greedily on low-entropy bits, "
             f"m condensed rows stored). 'GeDe, beta bits as base': Eq. 1 when the clustering bits themselves are "
             f"the base bits (n_b = m, no condensed rows). Paper (App. B): 'low-entropy bit selection "
             f"substantially lowers storage needs'; Fig. 10 is a figure only, no numbers.")
    fig = None
    if plt is not None:
        fig, ax = plt.subplots(figsize=(6, 4))
        _fraction_plot(ax, res, ("features", "low"), betas, "eq1",
                       {"features": "EntroGeDe, high-entropy clustering", "low": "EntroGeDe, low-entropy clustering"},
                       err=False)
        _fraction_plot(ax, res, ("features", "low"), betas, "gede",
                       {"features": "GeDe, high-entropy bits as base", "low": "GeDe, low-entropy bits as base"},
                       err=False)
        ax.set_ylabel("Eq. 1, % of raw float64 table")
        ax.legend(fontsize=8)
        ax.set_title("Fig. 10: compressed data fraction vs storage")
        fig.tight_layout()
    return ResultTable(
        title="Fig. 10: storage vs fraction, clustering on high- vs low-entropy bits (California Housing)",
        columns=("clustering bits", "beta", "m/n %", "EntroGeDe Eq. 1 % raw", "EntroGeDe disk % raw",
                 "GeDe, beta bits as base, Eq. 1 % raw"),
        rows=rows, notes=notes, figure=fig)
