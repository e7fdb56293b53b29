"""Which scikit-learn model families learn well from gedenb's condensed samples?

For each model family this script fits the same estimator twice on every split:

* **full**: on all training rows (no weights);
* **condensed**: on ``gedenb.learning_set(gedenb.compress(train, beta=B, target=...))``
  with ``sample_weight`` (regression: one row per cluster, the exact cluster means, weight
  = cluster size; classification: one row per (cluster, class), weight = the class's count
  in the cluster),

and scores both on the same held-out test rows.  As a baseline for the number of rows, the
estimator is also fitted (unweighted) on a uniform random subset of the training rows of the
same size as the condensed set (``default_rng(1000 + seed)``).

Data and settings

* California Housing (shipped), regression of ``MedHouseVal`` on the 8 features, 80/20
  splits ``gedenb.experiments.regression.split(data, seed)``, seeds ``0 .. N-1``
  (default N = 10; ``--quick``: 2), beta 12 and 16; metric: test MSE.
* Credit default (needs ``GEDENB_DATA``), classification of the 0/1 label on 23 features,
  ``gedenb.experiments.logistic.load_logistic("credit", seed)``, seeds ``0 .. S-1``
  (default S = 5; ``--quick``: 1), beta 36; metrics: test accuracy and test log-loss.
  Skipped with a note when the data is missing.

In both cases the target is kept out of the clustering bits (``compress(..., target=...)``).
Stochastic estimators use ``random_state=0``; linear models, GLMs, KNN and SGD see
standardised features (a ``StandardScaler`` fitted with the same sample weights).
Weights: the learning set's counts, which sum to n, for estimators whose objective is a
*sum* over rows (Ridge, LogisticRegression, ...); SGDClassifier, whose objective is a
*mean* over rows, gets them rescaled to mean 1 (the same objective as the full data's);
KNN takes no ``sample_weight``, so it sees the condensed rows unweighted.  SGDClassifier runs
twice: with its default ``learning_rate="optimal"`` (whose first steps are large; a row weighing
hundreds of rows then throws the model far off) and with ``learning_rate="adaptive", eta0=0.01``.
HistGradientBoosting runs with ``early_stopping=False`` so that full and condensed fits do the same
100 iterations (the default turns early stopping on above 10,000 rows only), and once more with
``min_samples_leaf=1`` (the default 20 is a large share of ~100-200 condensed rows).

Usage

    source .venv/bin/activate
    export GEDENB_DATA=/work/shared/data          # for credit default; without it: California only
    python scripts/learning_models.py                     # 10 California splits, 5 credit seeds
    python scripts/learning_models.py --quick             # 2 splits, 1 seed (~1 minute on 2 cores)
    python scripts/learning_models.py --splits 3 --credit-seeds 2 --json /tmp/learning.json
    python scripts/learning_models.py --betas 20,24 --splits 3 --credit-beta 24,48 --credit-seeds 2

It prints markdown tables: means over the splits of the test metric on full data and on the
condensed set, their ratio (condensed / full, mean and worst split) or difference, the same
ratio (median and worst split: a few rows with extreme features make linear fits on small random
subsets blow up on some splits) or difference for the random subset, on how many splits the
random subset scores better than the condensed set (lower MSE; lower log-loss), the
median fit time of each, and the share of training rows the condensed set uses
(rows of the learning set / training rows).  ``--json PATH`` also writes every per-split
number.  Fit times are wall seconds of ``estimator.fit`` alone (compression is reported
separately); on a shared machine they vary between runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np

import gedenb
from gedenb.datasets import california_housing
from gedenb.experiments.regression import split

try:
    import sklearn
    from sklearn.ensemble import (GradientBoostingRegressor, HistGradientBoostingClassifier,
                                  HistGradientBoostingRegressor, RandomForestClassifier, RandomForestRegressor)
    from sklearn.linear_model import (LinearRegression, LogisticRegression, PoissonRegressor, Ridge,
                                      SGDClassifier)
    from sklearn.metrics import accuracy_score, log_loss, mean_squared_error
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeRegressor
except ImportError:  # pragma: no cover
    sys.exit("scikit-learn is needed: pip install '.[learn]'")


@dataclass
class Spec:
    """One model family: ``make()`` builds a fresh estimator."""

    name: str
    make: Callable
    scaled: bool = False          # a weighted StandardScaler in front
    weights: str = "counts"       # "counts" (sum n), "mean1" (rescaled to mean 1) or "none" (not accepted)
    note: str = ""


def regression_specs() -> list[Spec]:
    return [
        Spec("LinearRegression", LinearRegression, scaled=True),
        Spec("Ridge(alpha=1)", lambda: Ridge(alpha=1.0), scaled=True),
        Spec("PoissonRegressor (log link)", lambda: PoissonRegressor(alpha=1e-4, solver="newton-cholesky"),
             scaled=True),
        Spec("KNeighborsRegressor(5)", KNeighborsRegressor, scaled=True, weights="none",
             note="no sample_weight: condensed rows unweighted"),
        Spec("DecisionTreeRegressor", lambda: DecisionTreeRegressor(random_state=0)),
        Spec("RandomForestRegressor(100)", lambda: RandomForestRegressor(n_estimators=100, random_state=0, n_jobs=1)),
        Spec("GradientBoostingRegressor", lambda: GradientBoostingRegressor(random_state=0)),
        Spec("HistGradientBoostingRegressor", lambda: HistGradientBoostingRegressor(
            early_stopping=False, random_state=0), note="early_stopping=False for both"),
        Spec("HistGradientBoostingRegressor, min_samples_leaf=1", lambda: HistGradientBoostingRegressor(
            early_stopping=False, min_samples_leaf=1, random_state=0),
             note="leaf size 1 instead of the default 20"),
    ]


def classification_specs() -> list[Spec]:
    return [
        Spec("LogisticRegression", lambda: LogisticRegression(max_iter=1000), scaled=True),
        Spec("SGDClassifier(log_loss)", lambda: SGDClassifier(loss="log_loss", random_state=0), scaled=True,
             weights="mean1", note="default learning_rate='optimal'; weights rescaled to mean 1"),
        Spec("SGDClassifier(log_loss, adaptive)", lambda: SGDClassifier(
            loss="log_loss", learning_rate="adaptive", eta0=0.01, random_state=0), scaled=True, weights="mean1",
             note="learning_rate='adaptive', eta0=0.01; weights rescaled to mean 1"),
        Spec("GaussianNB", GaussianNB),
        Spec("KNeighborsClassifier(5)", KNeighborsClassifier, scaled=True, weights="none",
             note="no sample_weight: condensed rows unweighted"),
        Spec("RandomForestClassifier(100)", lambda: RandomForestClassifier(n_estimators=100, random_state=0,
                                                                           n_jobs=1)),
        Spec("HistGradientBoostingClassifier", lambda: HistGradientBoostingClassifier(
            early_stopping=False, random_state=0), note="early_stopping=False for both"),
    ]


def fit(spec: Spec, X, y, w=None):
    """Fit a fresh estimator of ``spec``; returns (estimator, seconds, warning names)."""
    est = spec.make()
    kw = {}
    if w is not None:
        if spec.weights == "mean1":
            w = w * (len(w) / w.sum())
        if spec.weights != "none":
            kw["sample_weight"] = w
    if spec.scaled:
        step = type(est).__name__.lower()
        est = make_pipeline(StandardScaler(), est)
        if w is not None:
            kw = {f"{step}__{k}": v for k, v in kw.items()}
            kw["standardscaler__sample_weight"] = w
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        est.fit(X, y, **kw)
        dt = time.perf_counter() - t0
    return est, dt, sorted({c.category.__name__ for c in caught})


# --------------------------------------------------------------------------
def _warm_up(table, betas, target):
    """Compress ``table`` once per beta, untimed: the first calls load or compile gedenb's kernels
    (up to a second), which would otherwise count as compression time of the first split."""
    for beta in betas:
        gedenb.learning_set(gedenb.compress(table, beta=beta, target=target))


def run_regression(seeds, betas, specs, log):
    data = california_housing().data
    target = data.shape[1] - 1
    records = []
    _warm_up(data, betas, target)
    for seed in seeds:
        train, test = split(data, seed)
        X, y, Xte, yte = train[:, :-1], train[:, -1], test[:, :-1], test[:, -1]
        full = {}
        for s in specs:
            est, dt, warn = fit(s, X, y)
            full[s.name] = (mean_squared_error(yte, est.predict(Xte)), dt, warn)
        for beta in betas:
            t0 = time.perf_counter()
            c = gedenb.compress(train, beta=beta, target=target)
            t_compress = time.perf_counter() - t0
            ls = gedenb.learning_set(c)
            sub = _subset(len(train), len(ls.y), seed)
            for s in specs:
                est, dt, warn = fit(s, ls.X, ls.y, ls.sample_weight)
                e = mean_squared_error(yte, est.predict(Xte))
                e_sub = mean_squared_error(yte, fit(s, X[sub], y[sub])[0].predict(Xte))
                records.append(dict(data="california", seed=seed, beta=beta, model=s.name, n=len(train),
                                    rows=len(ls.y), compress_s=t_compress, full=full[s.name][0], condensed=e,
                                    subset=e_sub,
                                    fit_full_s=full[s.name][1], fit_condensed_s=dt,
                                    warnings_full=full[s.name][2], warnings_condensed=warn))
        log(f"california seed {seed} done")
    return records


def _subset(n, k, seed):
    """A uniform random subset of ``k`` of ``n`` training rows (the same number of rows as the condensed set)."""
    return np.sort(np.random.default_rng(1000 + seed).choice(n, size=k, replace=False))


def _proba_scores(est, Xte, yte):
    p = est.predict_proba(Xte)
    return accuracy_score(yte, est.classes_[p.argmax(axis=1)]), log_loss(yte, p, labels=est.classes_)


def run_classification(seeds, betas, specs, log):
    from gedenb.experiments.logistic import load_logistic

    records = []
    for seed in seeds:
        train, test = load_logistic("credit", seed)
        target = train.shape[1] - 1
        X, y, Xte, yte = train[:, :-1], train[:, -1], test[:, :-1], test[:, -1]
        if seed == seeds[0]:
            _warm_up(train, betas, target)
        full = {}
        for s in specs:
            est, dt, warn = fit(s, X, y)
            full[s.name] = (*_proba_scores(est, Xte, yte), dt, warn)
        for beta in betas:
            t0 = time.perf_counter()
            c = gedenb.compress(train, beta=beta, target=target)
            t_compress = time.perf_counter() - t0
            ls = gedenb.learning_set(c)
            sub = _subset(len(train), len(ls.y), seed)
            for s in specs:
                est, dt, warn = fit(s, ls.X, ls.y, ls.sample_weight)
                acc, ll = _proba_scores(est, Xte, yte)
                acc_sub, ll_sub = _proba_scores(fit(s, X[sub], y[sub])[0], Xte, yte)
                f = full[s.name]
                records.append(dict(data="credit", seed=seed, beta=beta, model=s.name, n=len(train),
                                    rows=len(ls.y), clusters=int(c.m), compress_s=t_compress,
                                    full=f[0], condensed=acc, full_logloss=f[1], condensed_logloss=ll,
                                    subset=acc_sub, subset_logloss=ll_sub,
                                    majority=float(max(np.mean(yte), 1 - np.mean(yte))),
                                    fit_full_s=f[2], fit_condensed_s=dt,
                                    warnings_full=f[3], warnings_condensed=warn))
        log(f"credit seed {seed} done")
    return records


# --------------------------------------------------------------------------
def _g(v, digits=3):
    return f"{v:.{digits}f}"


def _r(v):
    return f"{v:.3f}" if v < 10 else f"{v:,.0f}"


def _t(v):
    return f"{v:.3f}" if v < 1 else f"{v:.2f}"


def _warn_note(rs):
    full = sorted({w for r in rs for w in r["warnings_full"]})
    cond = sorted({w for r in rs for w in r["warnings_condensed"]})
    out = []
    if full:
        out.append("full: " + ", ".join(full))
    if cond:
        out.append("condensed: " + ", ".join(cond))
    return "; ".join(out)


def regression_table(records, specs):
    lines = []
    for beta in sorted({r["beta"] for r in records}):
        rb = [r for r in records if r["beta"] == beta]
        seeds = sorted({r["seed"] for r in rb})
        share = np.mean([r["rows"] / r["n"] for r in rb])
        rows = np.mean([r["rows"] for r in rb])
        comp = np.median([r["compress_s"] for r in rb])
        lines += [f"**California Housing, beta = {beta}: {rows:.1f} condensed rows = {100 * share:.2f}% of "
                  f"{rb[0]['n']:,} training rows (mean of {len(seeds)} splits, seeds {seeds[0]}-{seeds[-1]}); "
                  f"compress {comp:.3f} s (median)**", "",
                  "| model | test MSE full | test MSE condensed | ratio (mean) | ratio (worst split) | "
                  "random subset: ratio median (worst) | random subset better | fit s full | fit s condensed | "
                  "rows used % | note |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in specs:
            rs = [r for r in rb if r["model"] == s.name]
            ratio = np.array([r["condensed"] / r["full"] for r in rs])
            rsub = np.array([r["subset"] / r["full"] for r in rs])
            note = "; ".join(v for v in (s.note, _warn_note(rs)) if v)
            lines.append(f"| {s.name} | {_g(np.mean([r['full'] for r in rs]))} | "
                         f"{_g(np.mean([r['condensed'] for r in rs]))} | {ratio.mean():.3f} | {ratio.max():.3f} | "
                         f"{np.median(rsub):.3f} ({_r(rsub.max())}) | {int(np.sum(rsub < ratio))}/{len(rs)} | "
                         f"{_t(np.median([r['fit_full_s'] for r in rs]))} | "
                         f"{_t(np.median([r['fit_condensed_s'] for r in rs]))} | {100 * share:.2f} | {note} |")
        lines.append("")
    return lines


def classification_table(records, specs):
    lines = []
    for beta in sorted({r["beta"] for r in records}):
        rb = [r for r in records if r["beta"] == beta]
        seeds = sorted({r["seed"] for r in rb})
        share = np.mean([r["rows"] / r["n"] for r in rb])
        comp = np.median([r["compress_s"] for r in rb])
        lines += [f"**Credit default, beta = {beta}: {np.mean([r['clusters'] for r in rb]):.0f} clusters, "
                  f"{np.mean([r['rows'] for r in rb]):.0f} (cluster, class) rows = {100 * share:.2f}% of "
                  f"{rb[0]['n']:,} training rows (mean of {len(seeds)} seeds, {seeds[0]}-{seeds[-1]}); "
                  f"majority class {np.mean([r['majority'] for r in rb]):.4f}; compress {comp:.3f} s (median)**", "",
                  "| model | accuracy full | accuracy condensed | difference (points) | random subset, difference | "
                  "log-loss full | log-loss condensed | log-loss ratio | random subset, ratio | "
                  "random subset lower log-loss | fit s full | fit s condensed | rows used % | note |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in specs:
            rs = [r for r in rb if r["model"] == s.name]
            d = np.array([r["condensed"] - r["full"] for r in rs])
            ll = np.array([r["condensed_logloss"] / r["full_logloss"] for r in rs])
            dsub = np.mean([r["subset"] - r["full"] for r in rs])
            llsub_all = np.array([r["subset_logloss"] / r["full_logloss"] for r in rs])
            llsub = llsub_all.mean()
            note = "; ".join(v for v in (s.note, _warn_note(rs)) if v)
            lines.append(f"| {s.name} | {np.mean([r['full'] for r in rs]):.4f} | "
                         f"{np.mean([r['condensed'] for r in rs]):.4f} | {100 * d.mean():+.2f} | {100 * dsub:+.2f} | "
                         f"{np.mean([r['full_logloss'] for r in rs]):.4f} | "
                         f"{np.mean([r['condensed_logloss'] for r in rs]):.4f} | {ll.mean():.3f} | {llsub:.3f} | "
                         f"{int(np.sum(llsub_all < ll))}/{len(rs)} | "
                         f"{_t(np.median([r['fit_full_s'] for r in rs]))} | "
                         f"{_t(np.median([r['fit_condensed_s'] for r in rs]))} | {100 * share:.2f} | {note} |")
        lines.append("")
    return lines


def _credit_available() -> bool:
    from gedenb.experiments.logistic import load_logistic

    try:
        load_logistic("credit", 0)
    except Exception as exc:  # missing data: say so, run the rest
        print(f"credit default skipped: {type(exc).__name__}: {exc}", file=sys.stderr)
        return False
    return True


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--splits", type=int, default=None, help="California split seeds 0..N-1 (default 10; --quick 2)")
    p.add_argument("--credit-seeds", type=int, default=None,
                   help="credit default split seeds 0..S-1 (default 5; --quick 1; 0 skips credit)")
    p.add_argument("--betas", default="12,16", help="California betas, comma-separated (default 12,16)")
    p.add_argument("--credit-beta", default="36", help="credit default betas, comma-separated (default 36)")
    p.add_argument("--quick", action="store_true", help="2 California splits and 1 credit seed")
    p.add_argument("--json", metavar="PATH", help="also write every per-split number as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    a = p.parse_args(argv)
    splits = a.splits if a.splits is not None else (2 if a.quick else 10)
    cseeds = a.credit_seeds if a.credit_seeds is not None else (1 if a.quick else 5)
    betas = [int(v) for v in a.betas.split(",") if v]
    cbetas = [int(v) for v in a.credit_beta.split(",") if v]
    t_start = time.perf_counter()

    def log(msg):
        if not a.quiet:
            print(f"[{time.perf_counter() - t_start:7.1f} s] {msg}", file=sys.stderr, flush=True)

    rspecs, cspecs = regression_specs(), classification_specs()
    reg = run_regression(list(range(splits)), betas, rspecs, log) if splits > 0 else []
    cls = run_classification(list(range(cseeds)), cbetas, cspecs, log) \
        if cseeds > 0 and _credit_available() else []
    wall = time.perf_counter() - t_start

    lines = regression_table(reg, rspecs) + classification_table(cls, cspecs)
    cmd = "python scripts/learning_models.py" + ("" if argv is None and len(sys.argv) < 2 else
                                                  " " + " ".join(argv if argv is not None else sys.argv[1:]))
    lines.append(f"`{cmd}`: {wall:.0f} s wall on {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}"
                 f"), load average at the end {os.getloadavg()[0]:.2f}; gedenb {gedenb.__version__}, "
                 f"scikit-learn {sklearn.__version__}, NumPy {np.__version__}. Ratios are condensed / full per split; "
                 "fit times are medians over the splits.")
    print("\n".join(lines))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(command=cmd, wall_s=wall, sklearn=sklearn.__version__, gedenb=gedenb.__version__,
                           records=reg + cls), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
