"""Solvers on (X, y, w): closed form, gradient descent, SGD, logistic regression.

Oracles: NumPy loops of the paper's update rules (Eq. 5 / 9 on standardised
features), row repetition (integer weights must act as repeated rows:
Eq. 4/11), and SciPy's L-BFGS on the same logistic loss.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from gedenb.solvers import (
    SOLVERS,
    FitResult,
    LinearModel,
    LogisticModel,
    accuracy,
    closed_form,
    get_solver,
    gradient_descent,
    logistic_regression,
    mse,
    sgd,
    weighted_least_squares,
)


def linear_problem(rng, n=200, d=4, noise=0.1, scale=None):
    X = rng.normal(size=(n, d))
    if scale is not None:
        X = X * scale + 3.0
    coef = rng.normal(size=d)
    y = X @ coef + 0.7 + noise * rng.normal(size=n)
    return X, y, coef


def logistic_problem(rng, n=300, d=3):
    X = rng.normal(size=(n, d)) * np.array([1.0, 5.0, 0.2])[:d] + 1.0
    z = X @ np.array([1.0, -0.3, 2.0])[:d] - 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.float64)
    return X, y


def repeat_rows(X, y, w):
    w = np.asarray(w, dtype=np.int64)
    return np.repeat(X, w, axis=0), np.repeat(y, w)


# --------------------------------------------------------------------------
# closed form and gradient descent
# --------------------------------------------------------------------------
def test_closed_form_matches_lstsq_with_intercept(rng):
    X, y, _ = linear_problem(rng, scale=np.array([1.0, 100.0, 0.01, 5.0]))
    A = np.column_stack([X, np.ones(len(y))])
    ref, *_ = np.linalg.lstsq(A, y, rcond=None)
    m = closed_form(X, y).model
    np.testing.assert_allclose(m.coef, ref[:-1], rtol=1e-9, atol=1e-12)
    assert m.intercept == pytest.approx(ref[-1], rel=1e-9)


def test_closed_form_ridge_matches_normal_equations(rng):
    X, y, _ = linear_problem(rng)
    ridge = 3.0
    res = closed_form(X, y, ridge=ridge)
    Z = (X - X.mean(0)) / X.std(0)
    theta = np.linalg.solve(Z.T @ Z + ridge * np.eye(X.shape[1]), Z.T @ (y - y.mean()))
    np.testing.assert_allclose(res.model.coef, theta / X.std(0), rtol=1e-9)
    with pytest.raises(ValueError):
        closed_form(X, y, ridge=-1.0)


@pytest.mark.parametrize("weighted", [False, True])
def test_closed_form_and_gd_agree_on_well_conditioned_problems(rng, weighted):
    X, y, _ = linear_problem(rng, scale=np.array([2.0, 50.0, 0.1, 1.0]))
    w = rng.integers(1, 6, len(y)).astype(np.float64) if weighted else None
    cf = closed_form(X, y, w).model
    gd = gradient_descent(X, y, w, lr=0.5, tol=1e-15, max_iter=100_000)
    assert gd.converged
    # loss converged to 1e-15 relative: parameters to ~1e-7 in standardised units
    sd = X.std(axis=0)
    np.testing.assert_allclose(gd.model.coef * sd, cf.coef * sd, rtol=0, atol=1e-6 * np.abs(cf.coef * sd).max())
    np.testing.assert_allclose(gd.model.predict(X), cf.predict(X), rtol=0, atol=1e-6 * y.std())
    assert gd.losses[-1] == pytest.approx(closed_form(X, y, w).losses[0], rel=1e-9)


def test_gd_small_and_large_learning_rates_reach_the_same_minimiser(rng):
    X, y, _ = linear_problem(rng, n=300)
    X[:, 1] = X[:, 0] + 0.3 * X[:, 1]  # correlated features: slow GD
    slow = gradient_descent(X, y, lr=0.001, tol=1e-12, max_iter=2_000_000)
    fast = gradient_descent(X, y, lr=0.5, tol=1e-12, max_iter=2_000_000)
    assert slow.converged and fast.converged
    assert slow.n_iter > 50 * fast.n_iter
    np.testing.assert_allclose(slow.model.coef, fast.model.coef, rtol=1e-3, atol=1e-5)
    assert mse(slow.model, X, y) == pytest.approx(mse(fast.model, X, y), rel=1e-6)


def test_gd_trace_equals_a_numpy_loop_of_eq5(rng):
    """losses[t] and the parameters after t steps follow Eq. 5 on weighted-standardised features."""
    X, y, _ = linear_problem(rng, n=50, d=3)
    w = rng.integers(1, 4, len(y)).astype(np.float64)
    lr, steps = 0.05, 40
    W = w.sum()
    mu = w @ X / W
    sd = np.sqrt(w @ (X - mu) ** 2 / W)
    Z = (X - mu) / sd
    theta, b, losses = np.zeros(3), 0.0, []
    for t in range(steps + 1):
        r = Z @ theta + b - y
        losses.append(0.5 * np.sum(w * r * r) / W)
        if t == steps:
            break
        theta, b = theta - lr * Z.T @ (w * r) / W, b - lr * np.sum(w * r) / W
    res = gradient_descent(X, y, w, lr=lr, tol=0.0, max_iter=steps)
    assert res.n_iter == steps and not res.converged
    np.testing.assert_allclose(res.losses, losses, rtol=1e-12)
    # the model is the one after `steps` updates, mapped back to raw features
    np.testing.assert_allclose(res.model.coef, theta / sd, rtol=1e-10)
    assert res.model.intercept == pytest.approx(b - mu @ (theta / sd), rel=1e-10)


def test_gd_stops_at_max_iter_without_convergence(rng):
    X, y, _ = linear_problem(rng)
    res = gradient_descent(X, y, lr=1e-4, tol=1e-12, max_iter=10)
    assert isinstance(res, FitResult)
    assert res.n_iter == 10 and not res.converged and len(res.losses) == 11
    assert np.all(np.diff(res.losses) < 0)


def test_gd_diverging_learning_rate_stops_unconverged(rng):
    X, y, _ = linear_problem(rng)
    X[:, 1] = X[:, 0]
    with np.errstate(all="ignore"):
        res = gradient_descent(X, y, lr=50.0, tol=1e-10, max_iter=100_000)
    assert not res.converged
    assert res.n_iter < 100_000


def test_closed_form_is_invariant_to_feature_scaling(rng):
    X, y, _ = linear_problem(rng)
    a = closed_form(X, y).model
    b = closed_form(X * np.array([1.0, 1000.0, 1e-3, -2.0]), y).model
    np.testing.assert_allclose(b.coef * np.array([1.0, 1000.0, 1e-3, -2.0]), a.coef, rtol=1e-9)
    assert b.intercept == pytest.approx(a.intercept, rel=1e-9)


def test_constant_feature_is_handled(rng):
    X, y, _ = linear_problem(rng)
    X[:, 2] = 4.0
    w = np.ones(len(y))
    w[0] = 0.0
    X[0, 2] = 1e6  # a zero-weight row does not make the column non-constant
    ref = closed_form(np.delete(X[1:], 2, axis=1), y[1:]).model
    for res in (closed_form(X, y, w), gradient_descent(X, y, w, lr=0.5, tol=1e-14)):
        assert abs(res.model.coef[2]) < 1e-12
        np.testing.assert_allclose(np.delete(res.model.coef, 2), ref.coef, rtol=1e-5)
        assert res.model.intercept == pytest.approx(ref.intercept, rel=1e-5)


# --------------------------------------------------------------------------
# integer weights = repeated rows (condensed samples, Eq. 4 / 11)
# --------------------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), m=st.integers(6, 40), d=st.integers(1, 4))
def test_weighted_closed_form_equals_repeated_rows(seed, m, d):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, d)) * rng.uniform(0.1, 100, size=d)
    y = X @ rng.normal(size=d) + rng.normal(size=m)
    w = rng.integers(1, 30, m)
    a = closed_form(X, y, w)
    b = closed_form(*repeat_rows(X, y, w))
    np.testing.assert_allclose(a.model.coef, b.model.coef, rtol=1e-10, atol=1e-12)
    assert a.model.intercept == pytest.approx(b.model.intercept, rel=1e-10, abs=1e-12)
    assert a.losses[0] == pytest.approx(b.losses[0], rel=1e-10, abs=1e-14)


def test_weighted_gd_equals_repeated_rows(rng):
    X, y, _ = linear_problem(rng, n=60, d=3)
    w = rng.integers(1, 20, len(y))
    for kw in (dict(lr=0.01, tol=0.0, max_iter=500), dict(lr=0.3, tol=1e-12, max_iter=100_000)):
        a = gradient_descent(X, y, w, **kw)
        b = gradient_descent(*repeat_rows(X, y, w), **kw)
        assert a.n_iter == pytest.approx(b.n_iter, abs=2)
        np.testing.assert_allclose(a.model.coef, b.model.coef, rtol=1e-8)
        np.testing.assert_allclose(a.losses[:50], b.losses[:50], rtol=1e-10)


def test_weighted_logistic_equals_repeated_rows(rng):
    X, y = logistic_problem(rng, n=80)
    w = rng.integers(1, 10, len(y))
    a = logistic_regression(X, y, w, lr=1.0, tol=1e-12, max_iter=50_000)
    b = logistic_regression(*repeat_rows(X, y, w), lr=1.0, tol=1e-12, max_iter=50_000)
    assert a.converged and b.converged
    np.testing.assert_allclose(a.model.coef, b.model.coef, rtol=1e-6)


def test_zero_weight_rows_are_ignored(rng):
    X, y, _ = linear_problem(rng, n=60)
    w = np.ones(len(y))
    w[:10] = 0.0
    y2 = y.copy()
    y2[:10] = 1e6
    X2 = X.copy()
    X2[:10] = -1e3
    a = closed_form(X, y, w).model
    b = closed_form(X2, y2, w).model
    c = closed_form(X[10:], y[10:]).model
    np.testing.assert_allclose(a.coef, c.coef, rtol=1e-10)
    np.testing.assert_allclose(b.coef, c.coef, rtol=1e-10)


# --------------------------------------------------------------------------
# logistic regression
# --------------------------------------------------------------------------
def _scipy_logistic(X, y, w=None, l2=0.0, standardise=False):
    w = np.ones(len(y)) if w is None else np.asarray(w, dtype=np.float64)
    W = w.sum()
    if standardise:
        mu = w @ X / W
        X = (X - mu) / np.sqrt(w @ (X - mu) ** 2 / W)

    def f(p):
        z = X @ p[:-1] + p[-1]
        loss = (w @ (np.logaddexp(0.0, z) - y * z)) / W + 0.5 * l2 * p[:-1] @ p[:-1]
        g = w * (1 / (1 + np.exp(-z)) - y) / W
        return loss, np.concatenate([X.T @ g + l2 * p[:-1], [g.sum()]])

    r = minimize(f, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B",
                 options=dict(ftol=1e-15, gtol=1e-11, maxiter=10_000))
    return r.x, r.fun


def test_logistic_matches_scipy_lbfgs_on_raw_features(rng):
    X, y = logistic_problem(rng)
    res = logistic_regression(X, y, lr=1.0, tol=1e-14, max_iter=200_000)
    ref, fun = _scipy_logistic(X, y)
    np.testing.assert_allclose(res.model.coef, ref[:-1], rtol=1e-4, atol=1e-6)
    assert res.model.intercept == pytest.approx(ref[-1], rel=1e-4, abs=1e-6)
    # the solver's loss is in standardised space, which has the same minimum
    assert res.losses[-1] == pytest.approx(fun, rel=1e-8)


def test_weighted_l2_logistic_matches_scipy_on_the_standardised_loss(rng):
    X, y = logistic_problem(rng)
    w = rng.integers(1, 5, len(y)).astype(np.float64)
    res = logistic_regression(X, y, w, lr=1.0, tol=1e-14, max_iter=200_000, l2=0.05)
    ref, fun = _scipy_logistic(X, y, w, l2=0.05, standardise=True)
    W = w.sum()
    mu = w @ X / W
    sd = np.sqrt(w @ (X - mu) ** 2 / W)
    np.testing.assert_allclose(res.model.coef * sd, ref[:-1], rtol=1e-5, atol=1e-7)
    assert res.losses[-1] == pytest.approx(fun, rel=1e-9)


def test_logistic_shares_equal_expanded_labels(rng):
    """A condensed sample with share k/w of positives is k positive and w - k negative rows."""
    m = 30
    X = rng.normal(size=(m, 2))
    w = rng.integers(1, 12, m)
    k = rng.integers(0, w + 1)
    a = logistic_regression(X, k / w, w, lr=1.0, tol=1e-13, max_iter=100_000)
    Xe = np.repeat(X, 2, axis=0)
    ye = np.tile([1.0, 0.0], m)
    we = np.column_stack([k, w - k]).reshape(-1).astype(np.float64)
    b = logistic_regression(Xe, ye, we, lr=1.0, tol=1e-13, max_iter=100_000)
    np.testing.assert_allclose(a.model.coef, b.model.coef, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(a.losses[:20], b.losses[:20], rtol=1e-12)


def test_logistic_minus_one_labels_equal_zero_one(rng):
    X, y = logistic_problem(rng, n=100)
    a = logistic_regression(X, y, max_iter=300)
    b = logistic_regression(X, 2 * y - 1, max_iter=300)
    np.testing.assert_array_equal(a.model.coef, b.model.coef)
    assert accuracy(a.model, X, y) == accuracy(a.model, X, 2 * y - 1)


def test_logistic_model_and_accuracy(rng):
    X, y = logistic_problem(rng)
    m = logistic_regression(X, y, lr=1.0).model
    assert isinstance(m, LogisticModel)
    p = m.predict_proba(X)
    assert ((p > 0) & (p < 1)).all()
    np.testing.assert_array_equal(m.predict(X), (p > 0.5).astype(np.int64))
    assert accuracy(m, X, y) == pytest.approx(np.mean(m.predict(X) == y))
    assert accuracy(m, X, y) > 0.7


def test_logistic_bad_labels_raise(rng):
    X, y = logistic_problem(rng, n=20)
    for bad in (y + 1.0, y - 0.5, np.where(y > 0, 1.0, -2.0)):
        with pytest.raises(ValueError):
            logistic_regression(X, bad)
    with pytest.raises(ValueError):
        logistic_regression(X, y, l2=-1.0)


# --------------------------------------------------------------------------
# SGD
# --------------------------------------------------------------------------
def test_sgd_reduces_the_loss_and_approaches_the_optimum(rng):
    X, y, _ = linear_problem(rng, n=500)
    res = sgd(X, y, lr=0.05, batch_size=16, steps=3000, seed=1)
    assert len(res.losses) == 3001 and not res.converged
    best = closed_form(X, y).losses[0]
    assert res.losses[-1] < 0.05 * res.losses[0]
    assert np.mean(res.losses[-500:]) < 1.2 * best
    # losses[t] is the full loss of the parameters before step t
    assert res.losses[-1] == pytest.approx(0.5 * mse(res.model, X, y), rel=1e-9)


def test_sgd_is_reproducible_and_seeded(rng):
    X, y, _ = linear_problem(rng)
    a = sgd(X, y, lr=0.01, batch_size=8, steps=200, seed=3)
    b = sgd(X, y, lr=0.01, batch_size=8, steps=200, seed=3)
    c = sgd(X, y, lr=0.01, batch_size=8, steps=200, seed=4)
    np.testing.assert_array_equal(a.losses, b.losses)
    assert not np.array_equal(a.losses, c.losses)


def test_sgd_draws_are_those_of_rng_choice(rng):
    """Batch rows are drawn as default_rng(seed).choice(n, batch, p=w/W), step after step."""
    X, y, _ = linear_problem(rng, n=40, d=2)
    w = rng.integers(0, 4, len(y)).astype(np.float64)
    steps, batch, lr = 30, 5, 0.02
    res = sgd(X, y, w, lr=lr, batch_size=batch, steps=steps, seed=9)
    W = w.sum()
    mu = w @ X / W
    sd = np.sqrt(w @ (X - mu) ** 2 / W)
    Z = (X - mu) / sd
    g = np.random.default_rng(9)
    theta, b = np.zeros(2), 0.0
    for _ in range(steps):
        idx = g.choice(len(y), size=batch, p=w / W)
        r = Z[idx] @ theta + b - y[idx]
        theta, b = theta - lr * Z[idx].T @ r / batch, b - lr * r.mean()
    np.testing.assert_allclose(res.model.coef, theta / sd, rtol=1e-10)


def test_sgd_never_draws_zero_weight_rows(rng):
    X, y, _ = linear_problem(rng, n=100)
    w = np.ones(len(y))
    w[::3] = 0.0
    y2 = y.copy()
    y2[::3] = 1e9
    a = sgd(X, y, w, lr=0.01, batch_size=10, steps=300, seed=2)
    b = sgd(X, y2, w, lr=0.01, batch_size=10, steps=300, seed=2)
    np.testing.assert_array_equal(a.model.coef, b.model.coef)
    np.testing.assert_array_equal(a.losses, b.losses)


# --------------------------------------------------------------------------
# registry, metrics, validation
# --------------------------------------------------------------------------
def test_get_solver_by_name_and_callable():
    assert set(SOLVERS) == {"closed_form", "gd", "logistic", "sgd"}
    assert get_solver("closed_form") is closed_form
    assert get_solver("gd") is gradient_descent
    assert get_solver("logistic") is logistic_regression
    assert get_solver("sgd") is sgd

    def mine(X, y, w=None):
        return closed_form(X, y, w)

    assert get_solver(mine) is mine
    with pytest.raises(ValueError, match="unknown solver"):
        get_solver("newton")
    with pytest.raises(ValueError):
        get_solver(None)


def test_linear_model_predict_and_mse(rng):
    m = LinearModel(np.array([1.0, -2.0]), 0.5)
    X = rng.normal(size=(10, 2))
    y = X @ m.coef + 0.5
    np.testing.assert_allclose(m.predict(X), y)
    assert mse(m, X, y) == 0.0
    assert mse(m, X, y + 2.0) == pytest.approx(4.0)
    assert weighted_least_squares(X, y).coef == pytest.approx(m.coef)


BAD_INPUTS = [
    ("X 1-D", lambda X, y, w: (X[:, 0], y, None)),
    ("y 2-D", lambda X, y, w: (X, y[:, None], None)),
    ("y too short", lambda X, y, w: (X, y[:-1], None)),
    ("w wrong shape", lambda X, y, w: (X, y, w[:-1])),
    ("negative weight", lambda X, y, w: (X, y, np.where(np.arange(len(w)) == 3, -1.0, w))),
    ("all-zero weights", lambda X, y, w: (X, y, 0 * w)),
    ("NaN weight", lambda X, y, w: (X, y, np.where(np.arange(len(w)) == 3, np.nan, w))),
    ("inf weight", lambda X, y, w: (X, y, np.where(np.arange(len(w)) == 3, np.inf, w))),
    ("NaN in X", lambda X, y, w: (np.where(X > 1.5, np.nan, X), y, None)),
    ("inf in X", lambda X, y, w: (np.where(X > 1.5, np.inf, X), y, None)),
    ("NaN in y", lambda X, y, w: (X, np.where(np.arange(len(y)) == 2, np.nan, y), None)),
    ("no rows", lambda X, y, w: (X[:0], y[:0], None)),
]


@pytest.mark.parametrize("name", SOLVERS)
@pytest.mark.parametrize("case,make", BAD_INPUTS, ids=[c for c, _ in BAD_INPUTS])
def test_bad_inputs_raise_value_error(rng, name, case, make):
    X = rng.normal(size=(30, 3))
    y = (rng.random(30) > 0.5).astype(np.float64)
    w = np.ones(30)
    Xb, yb, wb = make(X, y, w)
    with pytest.raises(ValueError):
        get_solver(name)(Xb, yb, wb)


@pytest.mark.parametrize("kw", [dict(lr=0.0), dict(lr=-1.0), dict(max_iter=0), dict(tol=-1.0)])
def test_bad_gd_options_raise(rng, kw):
    X, y, _ = linear_problem(rng, n=20)
    with pytest.raises(ValueError):
        gradient_descent(X, y, **kw)
    with pytest.raises(ValueError):
        logistic_regression(X, (y > 0).astype(float), **kw)


@pytest.mark.parametrize("kw", [dict(lr=0.0), dict(batch_size=0), dict(steps=0)])
def test_bad_sgd_options_raise(rng, kw):
    X, y, _ = linear_problem(rng, n=20)
    with pytest.raises(ValueError):
        sgd(X, y, **kw)
