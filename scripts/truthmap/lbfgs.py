"""L-BFGS over a batch of independent smooth problems at once, in numpy or in torch.

Every problem of the batch takes its own steps: its own curvature memory, line search and stop.
The leading axes of the parameters (K fits, or C cells x K fits) index the problems, the last
axis their parameters. The loop is written once over the operations that numpy arrays and torch
tensors share; :class:`ArrayOps` names the few they spell differently. It serves
:func:`truthmap.logistic.fit_many` (numpy, one cell) and :func:`truthmap.torch_logistic.fit_cells`
(torch, a layer's cells, on a GPU when present); this module never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

ARMIJO = 1e-4
"""Sufficient decrease of the backtracking line search."""

HISTORY = 10
"""Curvature pairs each fit keeps (scikit-learn's L-BFGS keeps 10)."""


class Objective(Protocol):
    """A batch of objectives whose data term depends on the parameters through linear margins."""

    def margins(self, theta: Any) -> Any:
        """Margins of parameters ``theta``; linear in ``theta``, so a direction's margins are what
        one unit step along it adds."""

    def loss(self, theta: Any, Z: Any) -> Any:
        """Each problem's objective at ``theta``, whose margins are ``Z``."""

    def gradient(self, theta: Any, Z: Any) -> Any:
        """Each problem's gradient at ``theta``, shaped like it."""


@dataclass(frozen=True)
class ArrayOps:
    """What numpy and torch spell differently."""

    zeros: Callable[..., Any]
    """``zeros(shape, like, dtype=None)``: zeros on ``like``'s device, in its dtype or ``dtype``."""
    where: Callable[[Any, Any, Any], Any]
    amax: Callable[[Any], Any]
    """The largest entry along the last axis."""
    copy: Callable[[Any], Any]
    cast: Callable[[Any, Any], Any]
    """``cast(x, like)``: ``x`` in ``like``'s dtype."""


NUMPY = ArrayOps(
    zeros=lambda shape, like, dtype=None: np.zeros(shape, dtype or like.dtype),
    where=np.where,
    amax=lambda x: x.max(-1),
    copy=np.copy,
    cast=lambda x, like: x.astype(like.dtype),
)


def minimise(problem: Objective, precondition: Callable[[Any], Any], theta: Any, max_iter: int, tol: float,
             ops: ArrayOps, active: Any | None = None) -> tuple[Any, Any, Any]:
    """L-BFGS from ``theta`` until no gradient entry of a problem exceeds ``tol`` (or ``max_iter``
    steps): (parameters, steps taken, stopped) per problem.

    ``precondition(q)`` applies each problem's initial inverse Hessian to gradients ``q``; steps
    are never uphill, and their lengths halve from 1 until the Armijo condition holds. Problems
    where ``active`` is false never step (padding)."""
    Z = problem.margins(theta)
    f, g = problem.loss(theta, Z), problem.gradient(theta, Z)
    S, Y = ops.zeros((HISTORY, *theta.shape), theta), ops.zeros((HISTORY, *theta.shape), theta)
    rho = ops.zeros((HISTORY, *theta.shape[:-1]), theta)  # 0 marks a pair a fit did not keep
    done = ops.amax(abs(g)) <= tol
    if active is not None:
        done = done | ~active
    n_iter = ops.zeros(theta.shape[:-1], theta, int)
    for it in range(max_iter):
        if bool(done.all()):
            break
        newest_first = [(it - 1 - j) % HISTORY for j in range(min(it, HISTORY))]
        d = -_two_loop(g, S, Y, rho, newest_first, precondition, ops)
        d = ops.where(((g * d).sum(-1) >= 0)[..., None], -g, d)  # never uphill
        d = ops.where(done[..., None], 0.0, d)
        slope = (g * d).sum(-1)
        Zd = problem.margins(d)
        alpha, f_new = _backtrack(problem, theta, Z, f, slope, d, Zd, ~done, ops)
        step = alpha[..., None] * d
        theta_new, Z_new = theta + step, Z + alpha[..., None] * Zd
        g_new = problem.gradient(theta_new, Z_new)
        y_vec = g_new - g
        sy = (step * y_vec).sum(-1)
        keep = (sy > 1e-10) & ~done
        slot = it % HISTORY
        S[slot], Y[slot] = step, y_vec
        rho[slot] = ops.where(keep, 1.0 / ops.where(keep, sy, 1.0), 0.0)
        theta, Z = theta_new, Z_new
        f, g = ops.where(done, f, f_new), ops.where(done[..., None], g, g_new)
        n_iter += ~done
        done = done | (ops.amax(abs(g)) <= tol)
    return theta, n_iter, done


def _two_loop(g, S, Y, rho, newest_first: list[int], precondition: Callable[[Any], Any], ops: ArrayOps):
    """L-BFGS's inverse-Hessian product with ``g`` per problem, ``precondition`` as the initial matrix."""
    q, alphas = ops.copy(g), []
    for i in newest_first:
        a = rho[i] * (S[i] * q).sum(-1)
        alphas.append(a)
        q -= a[..., None] * Y[i]
    r = precondition(q)
    for i, a in zip(reversed(newest_first), reversed(alphas)):
        b = rho[i] * (Y[i] * r).sum(-1)
        r += S[i] * (a - b)[..., None]
    return r


def _backtrack(problem: Objective, theta, Z, f, slope, d, Zd, active, ops: ArrayOps, tries: int = 40):
    """Per-problem step lengths from 1, halved until the Armijo condition holds (0 for inactive
    problems), and the objective there."""
    alpha = ops.cast(active, theta)
    for _ in range(tries):
        trial = problem.loss(theta + alpha[..., None] * d, Z + alpha[..., None] * Zd)
        failing = active & (trial > f + ARMIJO * alpha * slope)
        if not bool(failing.any()):
            break
        alpha = ops.where(failing, alpha / 2, alpha)
    return alpha, trial
