"""Solvers that take ``(X, y, w)``: one call shape for full and condensed data.

``w=None`` means every row has weight 1, so the same function trains on the
``n`` original rows or on EntroGeDe's ``m`` weighted condensed samples
(Eq. 4/5, 9, 11 of the paper).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["LinearModel", "mse", "weighted_least_squares"]


class LinearModel(NamedTuple):
    """``y ~ X @ coef + intercept``."""

    coef: np.ndarray
    intercept: float

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef + self.intercept


def _check_xyw(X, y, w):
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},), got {y.shape}")
    if X.shape[0] == 0:
        raise ValueError("no samples")
    if w is None:
        w = np.ones(X.shape[0])
    else:
        w = np.asarray(w, dtype=np.float64)
        if w.shape != y.shape:
            raise ValueError(f"w must have shape {y.shape}, got {w.shape}")
        if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError("weights must be finite, non-negative and not all zero")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise ValueError("X and y must be finite")
    return X, y, w


def weighted_least_squares(X, y, w=None, ridge: float = 0.0) -> LinearModel:
    """Closed-form weighted least squares with intercept (Eq. 11).

    Minimises ``sum_i w_i (y_i - x_i . theta - b)^2 + ridge * |theta|^2``
    on weighted-standardised features, solved by SVD-based least squares
    (no explicit inverse), so it stays well behaved when the condensed
    samples are few or nearly collinear.
    """
    X, y, w = _check_xyw(X, y, w)
    if ridge < 0:
        raise ValueError("ridge must be >= 0")
    sw = w / w.sum()
    mu = sw @ X
    sd = np.sqrt(sw @ (X - mu) ** 2)
    sd[sd == 0] = 1.0
    ym = sw @ y
    Z = (X - mu) / sd
    r = np.sqrt(w)
    A = Z * r[:, None]
    b = (y - ym) * r
    if ridge:
        A = np.vstack([A, np.sqrt(ridge) * np.eye(X.shape[1])])
        b = np.concatenate([b, np.zeros(X.shape[1])])
    theta, *_ = np.linalg.lstsq(A, b, rcond=None)
    coef = theta / sd
    return LinearModel(coef, float(ym - mu @ coef))


def mse(model: LinearModel, X, y) -> float:
    """Mean squared error of ``model`` on ``(X, y)``."""
    r = model.predict(X) - np.asarray(y, dtype=np.float64)
    return float(np.mean(r * r))
