"""Many L2 logistic regressions on one feature matrix at once: the probes' solver.

Each fit minimises what scikit-learn's ``make_pipeline(StandardScaler(), LogisticRegression(C=C))``
does on its rows: features standardised on those rows (mean, population standard deviation, a
constant feature left unscaled), then the mean log-loss plus ``||w||^2 / (2 C n)`` (intercept
unpenalised), stopped, as scikit-learn's L-BFGS is, once no gradient entry exceeds ``tol``.

A cell's fits (the primary split, the cross-validation folds, the further seeded splits) use the
same questions' features and differ only in their rows, so they run as one batch: every step of
all of them is two matrix products with the cell's feature matrix instead of two matrix-vector
products per fit. Each fit keeps its own L-BFGS memory and line search. The initial inverse
Hessian of L-BFGS is the inverse of Bohning's bound on the log-loss Hessian (the standardised
features' correlation matrix over 4, plus the penalty), built from a base fit's rows, features
only: standardised hidden states are strongly correlated, and without it a fit takes 150 to
450 steps; with it, 20 to 300.

The objective is strictly convex: its optimum does not depend on the solver, but where a fit
stops short of it does, slightly; :data:`TOL` stops much nearer than scikit-learn's default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from truthmap.lbfgs import NUMPY, minimise

TOL = 3e-5
"""Largest gradient entry at which a fit stops: where the test AUCs of layer 15 of the default
run lie as near the optimum's (within 4.2e-4) as scikit-learn's default stop (tol 1e-4: within
4.6e-4); `python -m truthmap.probe_bench` measures both."""


@dataclass(frozen=True)
class Fits:
    """K fitted probes: standardisation, weights on standardised features, intercept."""

    mean: np.ndarray
    """(K, H) column means of each fit's rows."""
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray

    def decision_function(self, X: np.ndarray, k: int = 0) -> np.ndarray:
        """Fit ``k``'s log-odds of label 1 for the rows of ``X``."""
        X = np.asarray(X, dtype=np.float64)
        return ((X - self.mean[k]) / self.scale[k]) @ self.coef[k] + self.intercept[k]


def softplus(z: np.ndarray) -> np.ndarray:
    """log(1 + exp(z)) without overflow (six times faster than ``np.logaddexp(0, z)``)."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) without overflow."""
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class _Problem:
    """The K objectives on centred features X (N, H); margins Z are (K, N)."""

    def __init__(self, X: np.ndarray, y: np.ndarray, masks: np.ndarray, C: float) -> None:
        self.X, self.XT, self.y, self.M = X, np.ascontiguousarray(X.T), y[None, :], masks
        self.n = masks.sum(1)
        self.mean = (masks @ X) / self.n[:, None]
        var = (masks @ (X * X)) / self.n[:, None] - self.mean**2
        scale = np.sqrt(np.clip(var, 0, None))
        self.scale = np.where(scale < 10 * np.finfo(np.float64).eps, 1.0, scale)
        self.lam = 1.0 / (C * self.n)

    def margins(self, theta: np.ndarray) -> np.ndarray:
        """(K, N) margins of parameters ``theta`` (K, H + 1); linear in ``theta``, so a direction's
        margins are what one unit step along it adds."""
        V = theta[:, :-1] / self.scale
        return V @ self.XT + (theta[:, -1] - (self.mean * V).sum(1))[:, None]

    def loss(self, theta: np.ndarray, Z: np.ndarray) -> np.ndarray:
        w = theta[:, :-1]
        data = ((softplus(Z) - self.y * Z) * self.M).sum(1) / self.n
        return data + 0.5 * self.lam * (w * w).sum(1)

    def gradient(self, theta: np.ndarray, Z: np.ndarray) -> np.ndarray:
        R = (sigmoid(Z) - self.y) * self.M / self.n[:, None]  # (K, N)
        sums = R.sum(1)
        gw = (R @ self.X - self.mean * sums[:, None]) / self.scale + self.lam[:, None] * theta[:, :-1]
        return np.concatenate([gw, sums[:, None]], 1)


@dataclass(frozen=True)
class InverseBound:
    """The inverse of Bohning's bound on one base fit's Hessian, ``[[A'A + lam I, 0], [0, 1/4]]^-1``
    with A the base's standardised rows over ``2 sqrt(n)``, applied to gradients.

    Held whole (``dense``, float32: it only steers the steps, and float32 halves its reads) when
    the base has at least as many rows as features; else by Woodbury's identity, ``(I - A' W A) /
    lam`` with ``W = (lam I + A A')^-1`` over the rows, which costs rows x features instead of
    features squared (a wide site, ``mlp_down_input``, on a small dataset)."""

    lam: float
    dense: np.ndarray | None = None
    """(H + 1, H + 1), the intercept's last."""
    rows: np.ndarray | None = None
    """A, (n, H)."""
    woodbury: np.ndarray | None = None
    """W, (n, n)."""

    def apply(self, q: np.ndarray) -> np.ndarray:
        """``q @ inverse`` for gradients ``q`` (K, H + 1)."""
        if self.dense is not None:
            return q.astype(np.float32) @ self.dense
        w = q[:, :-1]
        r = (w - ((w @ self.rows.T) @ self.woodbury) @ self.rows) / self.lam
        return np.concatenate([r, 4.0 * q[:, -1:]], 1)


def bound_inverses(prob: _Problem, masks: np.ndarray, bases: list[int]) -> dict[int, InverseBound]:
    """Per base fit b, the inverse of Bohning's bound on the Hessian of fit b's objective in its
    coordinates, built from fit b's rows (features only): the standardised features' correlation
    over 4, plus the penalty, and 1/4 for the intercept (standardised columns are orthogonal to
    it). A dense one's Gram matrix is the whole matrix's less that of the rows the fit leaves out."""
    X = prob.X
    H = X.shape[1]
    whole = None
    out = {}
    for b in sorted(set(bases)):
        mu, s, lam = prob.mean[b], prob.scale[b], float(prob.lam[b])
        if masks[b].sum() < H:
            A = (X[masks[b] > 0] - mu) / s / (2.0 * np.sqrt(prob.n[b]))
            out[b] = InverseBound(lam, rows=A, woodbury=np.linalg.inv(A @ A.T + lam * np.eye(len(A))))
            continue
        if whole is None:
            whole = prob.XT @ X
        left_out = X[masks[b] == 0]
        cov = (whole - left_out.T @ left_out) / prob.n[b] - np.outer(mu, mu)
        B = np.zeros((H + 1, H + 1))
        B[:H, :H] = cov / np.outer(s, s) / 4
        B[range(H), range(H)] += lam
        B[H, H] = 0.25
        out[b] = InverseBound(lam, dense=np.linalg.inv(B).astype(np.float32))
    return out


def fit_many(X: np.ndarray, y: np.ndarray, masks: np.ndarray, C: float, max_iter: int, tol: float = TOL,
             bases: list[int] | None = None) -> Fits:
    """Fit one probe per row of ``masks`` (K, N): on the rows of X (N, H) and y (0/1) it selects.

    Fit k's steps are preconditioned with a matrix built from the rows of fit ``bases[k]``
    (default: its own), so a fit never depends on rows outside those of its base, and a fit
    whose base is itself on no rows but its own. Every fit needs both labels among its rows
    (the caller checks class counts)."""
    X64 = np.asarray(X, dtype=np.float64)
    center = X64.mean(0)
    masks = np.asarray(masks, dtype=np.float64)
    prob = _Problem(X64 - center, np.asarray(y, dtype=np.float64), masks, C)  # centred: no large means cancel
    K, P = masks.shape[0], X64.shape[1] + 1
    bases = list(range(K)) if bases is None else list(bases)
    groups = [(np.array([k for k in range(K) if bases[k] == b]), inverse)
              for b, inverse in bound_inverses(prob, masks, bases).items()]

    theta, n_iter, done = minimise(prob, _by_base(groups), np.zeros((K, P)), max_iter, tol, NUMPY)
    return Fits(mean=prob.mean + center, scale=prob.scale, coef=theta[:, :-1].copy(), intercept=theta[:, -1].copy(),
                n_iter=n_iter, converged=done)


def _by_base(groups: list[tuple[np.ndarray, InverseBound]]):
    """Gradients (K, H + 1) times the inverse bound of each fit's base (``groups``: the fits
    sharing a base, and its inverse): L-BFGS's initial inverse Hessian."""

    def precondition(q: np.ndarray) -> np.ndarray:
        r = np.empty_like(q)
        for fits, inverse in groups:
            r[fits] = inverse.apply(q[fits])
        return r

    return precondition
