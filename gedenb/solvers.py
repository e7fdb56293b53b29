"""Solvers that take ``(X, y, w)``: one call shape for full and condensed data.

``w=None`` means every row has weight 1, so the same function trains on the
``n`` original rows or on EntroGeDe's ``m`` weighted condensed samples
(Eq. 4/5, 9, 11 of the paper).  Features are standardised with the
(weighted) statistics of what the solver sees; the returned model maps raw
features.

Registry: :data:`SOLVERS` maps names to functions; :func:`get_solver`
accepts a name or a callable.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from ._numba import njit

__all__ = [
    "SOLVERS",
    "FitResult",
    "LinearModel",
    "LogisticModel",
    "accuracy",
    "closed_form",
    "get_solver",
    "gradient_descent",
    "logistic_regression",
    "mse",
    "sgd",
    "weighted_least_squares",
]


class LinearModel(NamedTuple):
    """``y ~ X @ coef + intercept``."""

    coef: np.ndarray
    intercept: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions ``X @ coef + intercept``.

        Parameters
        ----------
        X : (k, d) array
            Features.
        """
        return np.asarray(X, dtype=np.float64) @ self.coef + self.intercept


class LogisticModel(NamedTuple):
    """``P(y = 1 | x) = sigmoid(x @ coef + intercept)``."""

    coef: np.ndarray
    intercept: float

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The log-odds ``X @ coef + intercept``.

        Parameters
        ----------
        X : (k, d) array
            Features.
        """
        return np.asarray(X, dtype=np.float64) @ self.coef + self.intercept

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """The probability of class 1.

        Parameters
        ----------
        X : (k, d) array
            Features.
        """
        return 1.0 / (1.0 + np.exp(-self.decision_function(X)))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Labels 0/1 (class 1 where the log-odds are positive).

        Parameters
        ----------
        X : (k, d) array
            Features.
        """
        return (self.decision_function(X) > 0).astype(np.int64)


class FitResult(NamedTuple):
    """A fitted model with its training trace.

    ``losses[t]`` is the training loss (weighted mean, in standardised
    space, Eq. 4 normalised by the total weight) before step ``t``;
    ``converged`` says whether the tolerance was met before ``max_iter``.
    """

    model: object
    losses: np.ndarray
    n_iter: int
    converged: bool


# --------------------------------------------------------------------------
# validation and scaling
# --------------------------------------------------------------------------
def _check_xyw(X, y, w):
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},) to match X, got {y.shape}")
    if X.shape[0] == 0:
        raise ValueError("no samples")
    if w is None:
        w = np.ones(X.shape[0])
    else:
        w = np.asarray(w, dtype=np.float64)
        if w.shape != y.shape:
            raise ValueError(f"w must have shape {y.shape} to match y, got {w.shape}")
        if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ValueError("weights must be finite, non-negative and not all zero")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError("X and y must be finite")
    return np.ascontiguousarray(X), y, w


def _standardise(X, w):
    sw = w / w.sum()
    mu = sw @ X
    sd = np.sqrt(sw @ (X - mu) ** 2)
    # a column that is constant over the weighted rows gets an exactly zero
    # standardised column (its weighted mean need not round to the constant,
    # and a tiny nonzero sd would blow rounding noise up to unit scale)
    live = X[w > 0]
    const = (live == live[0]).all(axis=0)
    mu[const] = live[0, const]
    sd[const | (sd == 0)] = 1.0
    return (X - mu) / sd, mu, sd


def _unscale(theta, b, mu, sd):
    coef = theta / sd
    return coef, float(b - mu @ coef)


# --------------------------------------------------------------------------
# linear regression
# --------------------------------------------------------------------------
def closed_form(X, y, w=None, ridge: float = 0.0) -> FitResult:
    """Weighted least squares in closed form (Eq. 11).

    Minimises ``sum_i w_i (y_i - x_i . theta - b)^2 + ridge * |theta_std|^2``
    by SVD-based least squares on weighted-standardised features (no
    explicit inverse), so it stays well behaved when the condensed samples
    are few or nearly collinear.

    Parameters
    ----------
    X : (n, d) array
        Features.
    y : (n,) array
        Targets.
    w : (n,) array, optional
        Row weights (condensed samples' cluster sizes; default: all ones).
    ridge : float
        Ridge penalty on the standardised coefficients.
    """
    X, y, w = _check_xyw(X, y, w)
    if ridge < 0:
        raise ValueError("ridge must be >= 0")
    Z, mu, sd = _standardise(X, w)
    ym = (w / w.sum()) @ y
    r = np.sqrt(w)
    A, b = Z * r[:, None], (y - ym) * r
    if ridge:
        A = np.vstack([A, np.sqrt(ridge) * np.eye(X.shape[1])])
        b = np.concatenate([b, np.zeros(X.shape[1])])
    theta, *_ = np.linalg.lstsq(A, b, rcond=None)
    res = Z @ theta + ym - y
    loss = 0.5 * float((w @ (res * res)) / w.sum())
    return FitResult(LinearModel(*_unscale(theta, ym, mu, sd)), np.array([loss]), 1, True)


def weighted_least_squares(X, y, w=None, ridge: float = 0.0) -> LinearModel:
    """The model of :func:`closed_form` alone.

    Parameters
    ----------
    X : (n, d) array
        Features.
    y : (n,) array
        Targets.
    w : (n,) array, optional
        Row weights (default: all ones).
    ridge : float
        Ridge penalty on the standardised coefficients.
    """
    return closed_form(X, y, w, ridge).model


@njit
def _gd_linear(Z, y, w, lr, tol, max_iter):
    # One pass over the rows per step: the loss at theta_t and its gradient
    # are accumulated together (row-major, cache friendly); the gradient is
    # summed over i in increasing order, as a two-pass version would.
    n, d = Z.shape
    W = w.sum()
    theta = np.zeros(d)
    g = np.zeros(d)
    b = 0.0
    losses = np.empty(max_iter + 1)
    prev = np.inf
    it = 0
    converged = False
    for it in range(max_iter + 1):
        loss = 0.0
        gb = 0.0
        for j in range(d):
            g[j] = 0.0
        for i in range(n):
            s = b - y[i]
            for j in range(d):
                s += Z[i, j] * theta[j]
            r = w[i] * s
            loss += r * s
            gb += r
            for j in range(d):
                g[j] += r * Z[i, j]
        loss = 0.5 * loss / W
        losses[it] = loss
        if abs(prev - loss) <= tol * max(loss, 1e-300) or not np.isfinite(loss):
            converged = np.isfinite(loss)
            break
        if it == max_iter:
            break
        prev = loss
        for j in range(d):
            theta[j] -= lr * g[j] / W
        b -= lr * gb / W
    return theta, b, losses[: it + 1], it, converged


def gradient_descent(X, y, w=None, lr: float = 0.001, tol: float = 1e-10, max_iter: int = 1_000_000) -> FitResult:
    """Weighted batch gradient descent for linear regression (Eq. 3/5, 9).

    ``theta <- theta - lr / W * sum_j w_j (x_j . theta + b - y_j) x_j`` with
    ``W = sum_j w_j`` (``W = n`` for condensed samples, as in Eq. 4), on
    weighted-standardised features, from zero.

    "Until convergence" is made precise: stop when the loss changes by at
    most ``tol`` relative to its value between two steps, or after
    ``max_iter`` steps (``converged=False`` then).

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
    tol : float
        Relative loss change at which to stop.
    max_iter : int
        Step limit.
    """
    X, y, w = _check_xyw(X, y, w)
    if not lr > 0 or not tol >= 0 or int(max_iter) < 1:
        raise ValueError("lr must be > 0, tol >= 0 and max_iter >= 1")
    Z, mu, sd = _standardise(X, w)
    theta, b, losses, it, ok = _gd_linear(Z, y, w, float(lr), float(tol), int(max_iter))
    return FitResult(LinearModel(*_unscale(theta, b, mu, sd)), losses, int(it), bool(ok))


@njit
def _linear_loss(Z, y, p, theta, b):
    loss = 0.0
    for i in range(Z.shape[0]):
        r = b - y[i]
        for j in range(Z.shape[1]):
            r += Z[i, j] * theta[j]
        loss += p[i] * r * r
    return 0.5 * loss


@njit
def _sgd_linear(Z, y, p, idx, theta, b, lr, losses, t0):
    # idx[s] are the rows of step t0 + s; theta is updated in place
    d = Z.shape[1]
    k = idx.shape[1]
    g = np.empty(d)
    for s in range(idx.shape[0]):
        losses[t0 + s] = _linear_loss(Z, y, p, theta, b)
        for j in range(d):
            g[j] = 0.0
        gb = 0.0
        for q in range(k):
            i = idx[s, q]
            r = b - y[i]
            for j in range(d):
                r += Z[i, j] * theta[j]
            gb += r
            for j in range(d):
                g[j] += r * Z[i, j]
        for j in range(d):
            theta[j] -= lr * g[j] / k
        b -= lr * gb / k
    return b


def sgd(X, y, w=None, lr: float = 0.001, batch_size: int = 32, steps: int = 1000, seed: int = 0) -> FitResult:
    """Mini-batch stochastic gradient descent for linear regression.

    Each step draws ``batch_size`` rows with replacement (with probability
    proportional to ``w``, so weighted data are sampled as if expanded; the
    draws are those of ``default_rng(seed).choice(n, batch_size, p=w/W)``
    step after step) and takes one step along the batch's mean gradient;
    ``losses[t]`` is the full weighted loss before step ``t`` (and
    ``losses[steps]`` after the last), so curves compare with
    :func:`gradient_descent` step by step (the paper's Fig. 3 at equal cost
    per step).  ``converged`` is always False: SGD has no stopping rule.

    Parameters
    ----------
    X : (n, d) array
        Features.
    y : (n,) array
        Targets.
    w : (n,) array, optional
        Row weights, as sampling probabilities (default: uniform).
    lr : float
        Learning rate.
    batch_size : int
        Rows per step.
    steps : int
        Steps.
    seed : int
        Seed of the draws.
    """
    X, y, w = _check_xyw(X, y, w)
    if not lr > 0 or int(batch_size) < 1 or int(steps) < 1:
        raise ValueError("lr must be > 0, batch_size >= 1 and steps >= 1")
    steps, batch_size = int(steps), int(batch_size)
    Z, mu, sd = _standardise(X, w)
    rng = np.random.default_rng(seed)
    p = w / w.sum()
    # what rng.choice(n, size, p=p) does, without rebuilding the cumulative
    # distribution on every call
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    theta = np.zeros(X.shape[1])
    b = 0.0
    losses = np.empty(steps + 1)
    chunk = max(1, (1 << 20) // batch_size)
    for t0 in range(0, steps, chunk):
        u = rng.random((min(chunk, steps - t0), batch_size))
        idx = cdf.searchsorted(u, side="right").astype(np.int64)
        b = _sgd_linear(Z, y, p, idx, theta, float(b), float(lr), losses, t0)
    losses[steps] = _linear_loss(Z, y, p, theta, b)
    return FitResult(LinearModel(*_unscale(theta, b, mu, sd)), losses, steps, False)


# --------------------------------------------------------------------------
# logistic regression (Appendix D)
# --------------------------------------------------------------------------
@njit
def _gd_logistic(Z, y, w, lr, tol, max_iter, l2):
    # one pass over the rows per step, as in _gd_linear
    n, d = Z.shape
    W = w.sum()
    theta = np.zeros(d)
    g = np.zeros(d)
    b = 0.0
    losses = np.empty(max_iter + 1)
    prev = np.inf
    it = 0
    converged = False
    for it in range(max_iter + 1):
        loss = 0.0
        gb = 0.0
        for j in range(d):
            g[j] = 0.0
        for i in range(n):
            s = b
            for j in range(d):
                s += Z[i, j] * theta[j]
            # log(1 + exp(s)) - y s and sigmoid(s), computed stably
            e = np.exp(-abs(s))
            if s > 0:
                lse = s + np.log1p(e)
                p = 1.0 / (1.0 + e)
            else:
                lse = np.log1p(e)
                p = e / (1.0 + e)
            loss += w[i] * (lse - y[i] * s)
            r = w[i] * (p - y[i])
            gb += r
            for j in range(d):
                g[j] += r * Z[i, j]
        reg = 0.0
        for j in range(d):
            reg += theta[j] * theta[j]
        loss = loss / W + 0.5 * l2 * reg
        losses[it] = loss
        if abs(prev - loss) <= tol * max(loss, 1e-300) or not np.isfinite(loss):
            converged = np.isfinite(loss)
            break
        if it == max_iter:
            break
        prev = loss
        for j in range(d):
            theta[j] -= lr * (g[j] / W + l2 * theta[j])
        b -= lr * gb / W
    return theta, b, losses[: it + 1], it, converged


def logistic_regression(X, y, w=None, lr: float = 0.1, tol: float = 1e-9, max_iter: int = 100_000,
                        l2: float = 0.0) -> FitResult:
    """Weighted logistic regression by batch gradient descent (Appendix D).

    ``y`` holds class labels in {0, 1} or {-1, 1}; for condensed samples it
    may be the cluster's share of positives in [0, 1] (the centroid of a 0/1
    target), which is exactly the weighted cross-entropy of the cluster.

    Parameters
    ----------
    X : (n, d) array
        Features.
    y : (n,) array
        Labels in {0, 1} or {-1, 1}, or shares of positives in [0, 1].
    w : (n,) array, optional
        Row weights (default: all ones).
    lr : float
        Learning rate.
    tol : float
        Relative loss change at which to stop.
    max_iter : int
        Step limit.
    l2 : float
        L2 penalty on the standardised coefficients.
    """
    X, y, w = _check_xyw(X, y, w)
    if y.size and y.min() < 0:
        if not np.isin(y, (-1.0, 1.0)).all():
            raise ValueError("labels with negative values must be -1 or 1")
        y = (y > 0).astype(np.float64)
    if (y < 0).any() or (y > 1).any():
        raise ValueError("labels must be in {0, 1}, {-1, 1}, or shares in [0, 1]")
    if not lr > 0 or not tol >= 0 or int(max_iter) < 1 or l2 < 0:
        raise ValueError("lr must be > 0, tol >= 0, max_iter >= 1, l2 >= 0")
    Z, mu, sd = _standardise(X, w)
    theta, b, losses, it, ok = _gd_logistic(Z, y, w, float(lr), float(tol), int(max_iter), float(l2))
    return FitResult(LogisticModel(*_unscale(theta, b, mu, sd)), losses, int(it), bool(ok))


# --------------------------------------------------------------------------
# metrics and registry
# --------------------------------------------------------------------------
def mse(model, X, y) -> float:
    """Mean squared error of a linear model on ``(X, y)``.

    Parameters
    ----------
    model : LinearModel
        A fitted model.
    X : (n, d) array
        Features.
    y : (n,) array
        Targets.
    """
    r = model.predict(X) - np.asarray(y, dtype=np.float64)
    return float(np.mean(r * r))


def accuracy(model, X, y) -> float:
    """Share of correct labels of a logistic model (labels 0/1 or -1/1).

    Parameters
    ----------
    model : LogisticModel
        A fitted model.
    X : (n, d) array
        Features.
    y : (n,) array
        Labels 0/1 or -1/1.
    """
    y = np.asarray(y)
    truth = (y > 0).astype(np.int64)
    return float(np.mean(model.predict(X) == truth))


SOLVERS: dict[str, Callable] = {
    "closed_form": closed_form,
    "gd": gradient_descent,
    "logistic": logistic_regression,
    "sgd": sgd,
}


def get_solver(solver) -> Callable:
    """A solver by name (see :data:`SOLVERS`) or a callable passed through.

    Parameters
    ----------
    solver : str or callable
        A name in :data:`SOLVERS`, or a solver itself.
    """
    if callable(solver):
        return solver
    try:
        return SOLVERS[solver]
    except KeyError:
        raise ValueError(f"unknown solver {solver!r}; choose from {sorted(SOLVERS)} or pass a callable") from None
