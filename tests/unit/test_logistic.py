"""The batched probe solver against scikit-learn's, run to its optimum, on the same rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from truthmap.logistic import _Problem, bound_inverses, fit_many


def data(n=300, h=12, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, h)) @ rng.normal(size=(h, h))  # correlated features
    X[:, 3] += 50.0  # a large mean, as hidden states have
    y = (X[:, 0] - X[:, 1] + rng.normal(scale=2.0, size=n) > 0).astype(int)
    return X.astype(np.float32), y


def reference(X, y, C):
    X = X.astype(np.float64)  # scikit-learn fits float32 input in float32
    scaler = StandardScaler().fit(X)
    model = LogisticRegression(C=C, tol=1e-12, max_iter=100_000).fit(scaler.transform(X), y)
    return scaler, model


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_every_fit_of_a_batch_reaches_the_optimum_on_its_own_rows(C):
    X, y = data()
    rng = np.random.default_rng(1)
    masks = np.array([rng.random(len(y)) < share for share in (0.8, 0.6, 0.8, 1.0)])
    fits = fit_many(X, y, masks, C, max_iter=1000, tol=1e-8, bases=[0, 0, 2, 3])
    assert fits.converged.all() and (fits.n_iter > 0).all()
    for k, rows in enumerate(masks):
        scaler, model = reference(X[rows], y[rows], C)
        np.testing.assert_allclose(fits.mean[k], scaler.mean_, rtol=1e-6)
        np.testing.assert_allclose(fits.scale[k], scaler.scale_, rtol=1e-5)
        np.testing.assert_allclose(fits.coef[k], model.coef_[0], atol=1e-5)
        assert fits.intercept[k] == pytest.approx(model.intercept_[0], abs=1e-5)
        np.testing.assert_allclose(fits.decision_function(X, k), model.decision_function(scaler.transform(X.astype(np.float64))),
                                   atol=1e-4)


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_fits_on_fewer_rows_than_features_reach_the_optimum(C):
    """Wide features on few rows (a wide site on a small dataset): the bound is applied through
    the rows (Woodbury), the fits still land on scikit-learn's optimum."""
    X, y = data(n=60, h=150, seed=6)
    masks = np.array([np.arange(60) < 45, np.arange(60) >= 15])
    fits = fit_many(X, y, masks, C, max_iter=5000, tol=1e-8)
    assert fits.converged.all()
    for k, rows in enumerate(masks):
        scaler, model = reference(X[rows], y[rows], C)
        np.testing.assert_allclose(fits.decision_function(X, k), model.decision_function(scaler.transform(X.astype(np.float64))),
                                   atol=1e-4)


@pytest.mark.parametrize("n", [40, 400])  # fewer rows than features (Woodbury), more (held whole)
def test_the_inverse_bound_is_the_inverse_of_the_bound(n):
    """Against the matrix written out from its definition and inverted: the base's rows standardised
    (population scale), their correlation over 4 plus the penalty, 1/4 for the intercept."""
    h, C = 120, 0.5
    X = np.random.default_rng(7).normal(size=(n + 30, h)) * np.linspace(0.5, 3.0, h) + 10.0
    rows = np.arange(n + 30) < n
    prob = _Problem(X - X.mean(0), np.zeros(n + 30), rows[None, :].astype(float), C)
    (bound,) = bound_inverses(prob, rows[None, :].astype(float), [0]).values()
    assert (bound.dense is None) == (n < h)
    Z = (X[rows] - X[rows].mean(0)) / X[rows].std(0)
    B = np.zeros((h + 1, h + 1))
    B[:h, :h] = Z.T @ Z / n / 4 + np.eye(h) / (C * n)
    B[h, h] = 0.25
    q = np.random.default_rng(8).normal(size=(3, h + 1))
    expected = q @ np.linalg.inv(B)
    np.testing.assert_allclose(bound.apply(q), expected, rtol=2e-3 if n >= h else 1e-8,
                               atol=1e-3 * np.abs(expected).max())


def test_a_fit_depends_on_no_row_outside_its_base():
    """Rows outside fit 1 and its base (fit 0) may change at will: fit 1 stays the same, bit for bit."""
    X, y = data(seed=2)
    masks = np.zeros((3, len(y)), dtype=bool)
    masks[0, :200], masks[1, :150], masks[2, 100:] = True, True, True
    first = fit_many(X, y, masks, 1.0, max_iter=500, bases=[0, 0, 2])
    X2, y2 = X.copy(), y.copy()
    X2[200:] = np.random.default_rng(3).normal(size=X2[200:].shape)
    y2[200:] = 1 - y2[200:]
    second = fit_many(X2, y2, masks, 1.0, max_iter=500, bases=[0, 0, 2])
    # the centring of the whole matrix moves with the other rows: equal up to rounding
    np.testing.assert_allclose(second.coef[1], first.coef[1], atol=1e-9)
    np.testing.assert_allclose(second.decision_function(X[:150], 1), first.decision_function(X[:150], 1), atol=1e-8)
    assert not np.allclose(second.coef[2], first.coef[2])


def test_a_constant_feature_is_left_unscaled_and_unused():
    X, y = data(seed=4)
    X[:, 5] = 7.0
    fits = fit_many(X, y, np.ones((1, len(y)), dtype=bool), 1.0, max_iter=500)
    assert fits.scale[0, 5] == 1.0 and abs(fits.coef[0, 5]) < 1e-12


def test_a_cap_on_steps_is_reported():
    X, y = data(seed=5)
    fits = fit_many(X, y, np.ones((1, len(y)), dtype=bool), 1.0, max_iter=2, tol=1e-12)
    assert not fits.converged[0] and fits.n_iter[0] == 2
