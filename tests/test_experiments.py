"""Paper reproductions for learning on compressed tables (Fig. 3, 5a, 5b, 9, 10, 11).

Every experiment runs once in ``quick`` mode with a figure; the tables must
be well formed.  The acceptance bar of learning on compressed tables is
checked on California Housing for one split seed with the closed form.
"""

import argparse
import inspect
import math
import os
import sys

import matplotlib
import numpy as np
import pytest

import gedenb
from gedenb._optional import MissingDependency, OptionalDependencyWarning
from gedenb.datasets import california_housing
from gedenb.experiments import EXPERIMENTS, ResultTable
from gedenb.experiments.logistic import cluster_shares, load_logistic
from gedenb.experiments.options import COMMON, Option, add_arguments, experiment
from gedenb.experiments.regression import (
    ACCEPT_BETA,
    compress_variant,
    gd_path,
    gede_base_percent,
    low_entropy_positions,
    split,
    storage_percent,
)
from gedenb.solvers import closed_form, gradient_descent, mse

matplotlib.use("Agg")

LEARNING = ("fig3", "fig3b", "fig5a", "fig5b", "fig9", "fig10", "fig11")
NEEDS_DATA = {"fig11"}


@pytest.fixture(scope="module")
def california_split():
    return split(california_housing().data, 0)


def _number(v):
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def test_registry_lists_the_learning_experiments():
    for name in LEARNING:
        assert callable(EXPERIMENTS[name])


@pytest.mark.parametrize("name", LEARNING)
def test_quick_run_returns_a_well_formed_table_and_figure(name, tmp_path):
    if name in NEEDS_DATA and not os.environ.get("GEDENB_DATA"):
        pytest.skip("GEDENB_DATA is not set")
    import matplotlib.figure
    import matplotlib.pyplot as plt

    table = EXPERIMENTS[name](out_dir=tmp_path, quick=True, figure=True)
    assert isinstance(table, ResultTable)
    assert table.title and table.notes
    assert len(table.rows) >= 2
    for row in table.rows:
        assert len(row) == len(table.columns)
    numbers = [v for row in table.rows for v in row if _number(v)]
    assert numbers and all(math.isfinite(float(v)) for v in numbers)
    assert isinstance(table.figure, matplotlib.figure.Figure)
    assert table.to_markdown().startswith(f"**{table.title}**")
    plt.close(table.figure)
    assert list(tmp_path.iterdir()) == []  # temporary .gede files are cleaned up


def test_fig3b_condensed_samples_keep_the_data_means_and_weights(california_split):
    """Exact means: weights sum to n and the weighted means of the condensed samples are the column means."""
    from gedenb.experiments.scatter import FIG3B_PAIRS

    train, _ = california_split
    c = gedenb.compress(train, beta=ACCEPT_BETA, tau=10, cluster_columns=range(train.shape[1] - 1))
    S, w = gedenb.condensed(c)
    assert w.sum() == len(train)
    np.testing.assert_allclose(w @ S / w.sum(), train.mean(axis=0), rtol=1e-9)
    table = EXPERIMENTS["fig3b"]()
    assert table.figure is None and len(table.rows) == len(FIG3B_PAIRS)
    for row in table.rows:
        n, m = row[1], row[2]
        assert n == len(train) and m == len(w)
        for data_mean, cond_mean, data_std, cond_std in (row[4:8], row[8:12]):
            assert abs(cond_mean - data_mean) <= 1e-9 * abs(data_mean) + 1e-4  # both rounded to 4 decimals
            assert 0 < cond_std <= data_std + 1e-4  # the between-cluster part of the std
        assert 0 < row[12] < n and 0 <= row[13] <= 100 and 0 <= row[14] <= 100 and 0 <= row[15] <= m


def test_quick_run_without_figure_draws_none(tmp_path):
    assert EXPERIMENTS["fig9"](out_dir=tmp_path, quick=True).figure is None


def test_missing_matplotlib_returns_the_table_without_a_figure(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    with pytest.warns(OptionalDependencyWarning, match=r'matplotlib: pip install "gedenb\[notebooks\]"'):
        table = EXPERIMENTS["fig3"](out_dir=tmp_path, quick=True, figure=True)
    assert table.figure is None and len(table.rows) == 3 and table.to_markdown()


def test_table1_without_torch_fails_at_once_naming_the_extra(monkeypatch, tmp_path):
    for name in ("torch", "torchvision"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependency, match=r'^table1 needs PyTorch, torchvision: pip install "gedenb\[torch\]"$'):
        EXPERIMENTS["table1"](out_dir=tmp_path, quick=True)
    assert list(tmp_path.iterdir()) == []


#: Parameters no command-line option sets (a dict of solver keywords).
PYTHON_ONLY = {"solver_kw"}


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_parameter_of_an_experiment_is_an_option(name):
    fn = EXPERIMENTS[name]
    params = set(inspect.signature(fn).parameters)
    assert set(COMMON) <= params
    assert set(fn.cli.options) == params - set(COMMON) - PYTHON_ONLY
    for opt, default in fn.cli.options.values():
        assert opt.help and callable(opt.type)
        assert opt.choices is None or all(v in opt.choices for v in (default if opt.many else (default,))
                                          if v is not None)


def test_options_take_their_type_and_default_from_the_signature():
    @experiment("toy", n=Option("count"), xs=Option("values"), seed=Option("seeds", many=True),
                on=Option("switch"), off=Option("switch"), root=Option("folder", type=str),
                kind=Option("kind", choices=("a", "b")))
    def toy(*, n=3, xs=(0.5, 1.0), seed=0, on=True, off=False, root=None, kind="a", out_dir=None, quick=False,
            figure=False):
        pass

    parser = argparse.ArgumentParser()
    add_arguments(parser, toy)
    assert vars(parser.parse_args([])) == {}
    got = parser.parse_args(["--n", "4", "--xs", "1,2.5", "--seed", "7", "--on", "0", "--off", "Yes", "--root", "r",
                             "--kind", "b"])
    assert vars(got) == {"n": 4, "xs": (1.0, 2.5), "seed": (7,), "on": False, "off": True, "root": "r", "kind": "b"}
    with pytest.raises(TypeError, match="needs a default, and a type"):
        experiment("bad", root=Option("folder"))(toy)
    with pytest.raises(TypeError, match="no parameter"):
        experiment("bad", nope=Option("?"))(toy)
    with pytest.raises(TypeError, match="no parameter"):
        experiment("bad", quick=Option("?"))(toy)


def test_cli_reproduce_prints_the_table_and_saves_the_figure(tmp_path, capsys):
    from gedenb.__main__ import main

    assert main(["reproduce", "fig10", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Fig. 10" in out and "GeDe, beta bits as base" in out
    assert (tmp_path / "fig10.png").stat().st_size > 0


# --------------------------------------------------------------------------
# the acceptance bar and the key finding
# --------------------------------------------------------------------------
def test_acceptance_bar_on_california_housing_one_seed(california_split, tmp_path):
    """beta = ACCEPT_BETA: m/n <= 1%, closed-form test MSE within 5% of full, Eq. 1 and disk <= 45% of raw."""
    train, test = california_split
    c = compress_variant(train, ACCEPT_BETA, "features")
    S, w = gedenb.condensed(c)
    assert w.sum() == len(train)
    assert len(w) / len(train) <= 0.01
    full = mse(closed_form(train[:, :-1], train[:, -1]).model, test[:, :-1], test[:, -1])
    cond = mse(closed_form(S[:, :-1], S[:, -1], w).model, test[:, :-1], test[:, -1])
    assert abs(cond / full - 1) <= 0.05
    eq1, disk = storage_percent(c, tmp_path)
    assert c.raw_bytes == train.size * 8
    assert eq1 <= 45.0 and disk <= 45.0


def test_clustering_on_the_target_biases_the_regression(california_split):
    """The plain reading (target bits may cluster) is far worse at the same beta."""
    train, test = california_split
    errs = {}
    for variant in ("features", "all"):
        S, w = gedenb.condensed(compress_variant(train, ACCEPT_BETA, variant))
        errs[variant] = mse(closed_form(S[:, :-1], S[:, -1], w).model, test[:, :-1], test[:, -1])
    assert errs["all"] > 1.3 * errs["features"]


def test_clustering_variants_use_the_intended_bits(california_split):
    train, _ = california_split
    feature_end = int(gedenb.fit_codecs(train).width[:-1].sum())
    for variant in ("features", "low"):
        c = compress_variant(train, 10, variant)
        assert c.beta == 10 and (c.beta_positions < feature_end).all()
    low = compress_variant(train, 10, "low")
    live = np.flatnonzero(low.entropy[:feature_end] > 0)
    assert low.entropy[low.beta_positions].max() <= np.sort(low.entropy[live])[9]
    allc = compress_variant(train, 12, "all")
    assert (allc.beta_positions >= feature_end).any()  # the target's top bit is taken
    with pytest.raises(ValueError):
        compress_variant(train, 10, "target")


def test_low_entropy_positions():
    H = np.array([0.0, 0.9, 0.1, 0.5, 0.0, 0.1, 1.0])
    assert low_entropy_positions(H, np.array([7]), 3).tolist() == [2, 5, 3]
    with pytest.raises(ValueError):
        low_entropy_positions(H, np.array([7]), 6)


def test_gede_base_storage_is_eq1_with_the_clusters_as_bases(california_split):
    train, _ = california_split
    c = compress_variant(train[:3000], 8, "features")
    v = int((c.entropy == 0).sum())
    l_b = v + 8
    m = len(c.weights)
    bits = m * l_b + c.n * (int(np.ceil(np.log2(m))) + c.row_bits - l_b)
    params = gedenb.sizes.params_bits(c.d, c.row_bits, 0)
    assert gede_base_percent(c) == pytest.approx(100 * (bits + params) / 8 / c.raw_bytes)


def test_gd_path_follows_gradient_descent(california_split):
    train, _ = california_split
    c = compress_variant(train, 10, "features")
    S, w = gedenb.condensed(c)
    X, y = train[:, :-1], train[:, -1]
    losses, evals, model = gd_path(S[:, :-1], S[:, -1], w, lr=0.05, steps=300, X_eval=X, y_eval=y)
    ref = gradient_descent(S[:, :-1], S[:, -1], w, lr=0.05, tol=0.0, max_iter=300)
    np.testing.assert_allclose(losses, ref.losses, rtol=1e-10)
    np.testing.assert_allclose(model.coef, ref.model.coef, rtol=1e-9)
    # the evaluation trace is the full-split loss of the same parameters
    assert evals[-1] == pytest.approx(0.5 * mse(model, X, y), rel=1e-9)
    # on its own data the evaluation trace is the training trace
    l2, e2, _ = gd_path(X[:500], y[:500], lr=0.05, steps=50)
    np.testing.assert_allclose(e2, l2, rtol=1e-9)


# --------------------------------------------------------------------------
# logistic regression: the condensed label
# --------------------------------------------------------------------------
def test_cluster_shares_are_the_positive_share_of_each_cluster(rng):
    n = 2000
    X = np.column_stack([rng.integers(0, 50, n), rng.integers(0, 1000, n), rng.integers(0, 2, n)]).astype(np.int64)
    X[:, 2] = (rng.random(n) < 0.2 + 0.6 * (X[:, 0] > 25)).astype(np.int64)
    c = compress_variant(X, 4, "features")
    S, w, majority = cluster_shares(X, c)
    stored, w2 = gedenb.condensed(c)
    np.testing.assert_array_equal(w, w2)
    np.testing.assert_array_equal(S[:, :-1], stored[:, :-1])
    np.testing.assert_array_equal(majority, stored[:, -1])
    assert set(np.unique(majority)) <= {0.0, 1.0}  # the stored label is rounded onto {0, 1}
    # brute force: rows grouped by their top bits of columns 0 and 1 (4 clustering bits)
    assert (S[:, -1] > 0).all() and (S[:, -1] < 1).all()
    assert np.sum(S[:, -1] * w) == pytest.approx(X[:, 2].sum())
    np.testing.assert_array_equal(majority, np.rint(S[:, -1]))


def test_logistic_loaders_map_labels_to_zero_one():
    if not os.environ.get("GEDENB_DATA"):
        pytest.skip("GEDENB_DATA is not set")
    for name in ("credit", "ijcnn1"):
        train, test = load_logistic(name, 0)
        for t in (train, test):
            assert set(np.unique(t[:, -1])) == {0.0, 1.0}
    train, test = load_logistic("credit", 0)
    assert len(train) == 24000 and len(test) == 6000
    with pytest.raises(ValueError):
        load_logistic("adult")
