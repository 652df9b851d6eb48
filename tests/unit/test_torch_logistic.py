"""The torch solver (all cells of a layer in one batch) against scikit-learn's optimum, fit by fit,
and against the numpy solver it ports."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from truthmap.logistic import fit_many
from truthmap.torch_logistic import CellFits, fit_cells


def data(n, h, seed):
    """Correlated features with a large mean, a signal on the first two."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, h)) @ rng.normal(size=(h, h))
    X[:, 3] += 50.0
    y = (X[:, 0] - X[:, 1] + rng.normal(scale=2.0, size=n) > 0).astype(int)
    return X.astype(np.float32), y


def reference(X, y, C):
    """scikit-learn run to its optimum (float64 input: it fits float32 in float32)."""
    X = X.astype(np.float64)
    scaler = StandardScaler().fit(X)
    return scaler, LogisticRegression(C=C, tol=1e-10, max_iter=100_000).fit(scaler.transform(X), y)


def layer_of_cells(h=12):
    """Cells as a layer has them: different row counts (``per_cell``), different numbers of fits
    (a split with no fit), bases shared by the folds, a feature constant in one cell."""
    rng = np.random.default_rng(10)
    cells = []
    for seed, (n, k) in enumerate([(300, 4), (240, 2), (270, 1)]):
        X, y = data(n, h, seed)
        if seed == 1:
            X[:, 5] = 7.0
        train = rng.random(n) < 0.8
        masks = [train] + [train & (rng.random(n) < 0.75) for _ in range(k - 2)] + [rng.random(n) < 0.8][: k - 1]
        bases = [0] * (len(masks) - 1) + [len(masks) - 1] if k > 1 else [0]
        cells.append(CellFits(X, y, np.array(masks), bases))
    return cells


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_every_fit_of_every_cell_reaches_scikit_learns_optimum(C):
    cells = layer_of_cells()
    fitted = fit_cells(cells, C, max_iter=1000, tol=1e-8, device="cpu")
    assert [len(f.coef) for f in fitted] == [4, 2, 1]  # padded fits are not returned
    for cell, fits in zip(cells, fitted):
        assert fits.converged.all() and (fits.n_iter > 0).all()
        for k, rows in enumerate(cell.masks):
            scaler, model = reference(cell.X[rows], cell.y[rows], C)
            np.testing.assert_allclose(fits.mean[k], scaler.mean_, rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(fits.scale[k], scaler.scale_, rtol=1e-5)
            np.testing.assert_allclose(fits.coef[k], model.coef_[0], atol=1e-5)
            assert fits.intercept[k] == pytest.approx(model.intercept_[0], abs=1e-5)
            ours = fits.decision_function(cell.X[~rows], k)
            theirs = model.decision_function(scaler.transform(cell.X[~rows].astype(np.float64)))
            np.testing.assert_allclose(ours, theirs, atol=1e-4)
            assert roc_auc_score(cell.y[~rows], ours) == pytest.approx(roc_auc_score(cell.y[~rows], theirs), abs=1e-9)


def test_a_constant_feature_is_left_unscaled_and_unused():
    cells = layer_of_cells()
    fits = fit_cells(cells, 1.0, max_iter=1000, device="cpu")[1]
    assert (fits.scale[:, 5] == 1.0).all() and (np.abs(fits.coef[:, 5]) < 1e-12).all()


def test_the_batch_takes_the_numpy_solvers_steps():
    """Same objective, preconditioner and stop rule as fit_many: the same number of steps to the same
    point, whatever else is in the batch."""
    cells = layer_of_cells()
    for cell, fits in zip(cells, fit_cells(cells, 1.0, max_iter=1000, device="cpu")):
        alone = fit_many(cell.X, cell.y, cell.masks, 1.0, 1000, bases=cell.bases)
        np.testing.assert_array_equal(fits.n_iter, alone.n_iter)
        np.testing.assert_allclose(fits.coef, alone.coef, atol=1e-7)
        np.testing.assert_allclose(fits.intercept, alone.intercept, atol=1e-7)


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_cells_with_fewer_rows_than_features_reach_the_optimum(C):
    """Wide features on few rows: the bound applied through the rows (Woodbury) in the batch."""
    cells = [CellFits(*data(60, 150, 6), np.array([np.arange(60) < 45, np.arange(60) >= 15]), [0, 1]),
             CellFits(*data(50, 150, 7), np.array([np.arange(50) < 40]), [0])]
    for cell, fits in zip(cells, fit_cells(cells, C, max_iter=5000, tol=1e-8, device="cpu")):
        assert fits.converged.all()
        for k, rows in enumerate(cell.masks):
            scaler, model = reference(cell.X[rows], cell.y[rows], C)
            np.testing.assert_allclose(fits.decision_function(cell.X, k),
                                       model.decision_function(scaler.transform(cell.X.astype(np.float64))), atol=1e-4)


def test_a_fit_depends_on_no_row_outside_its_base():
    """Rows outside fit 1 and its base (fit 0) may change at will, and so may another cell: fit 1 stays."""
    X, y = data(300, 12, 2)
    masks = np.zeros((3, 300), dtype=bool)
    masks[0, :200], masks[1, :150], masks[2, 100:] = True, True, True
    first = fit_cells([CellFits(X, y, masks, [0, 0, 2])], 1.0, 500, device="cpu")[0]
    X2, y2 = X.copy(), y.copy()
    X2[200:] = np.random.default_rng(3).normal(size=X2[200:].shape)
    y2[200:] = 1 - y2[200:]
    other = CellFits(*data(500, 12, 9), np.ones((2, 500), dtype=bool), [0, 1])
    second = fit_cells([other, CellFits(X2, y2, masks, [0, 0, 2])], 1.0, 500, device="cpu")[1]
    np.testing.assert_allclose(second.coef[1], first.coef[1], atol=1e-9)
    assert not np.allclose(second.coef[2], first.coef[2])


def test_a_cap_on_steps_is_reported():
    X, y = data(300, 12, 5)
    (fits,) = fit_cells([CellFits(X, y, np.ones((1, 300), dtype=bool), [0])], 1.0, max_iter=2, tol=1e-12, device="cpu")
    assert not fits.converged[0] and fits.n_iter[0] == 2
