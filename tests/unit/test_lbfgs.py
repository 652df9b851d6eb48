"""Tests for truthmap.lbfgs: one L-BFGS loop for a batch of problems, in numpy and in torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from truthmap.lbfgs import NUMPY, minimise
from truthmap.torch_logistic import TORCH


class Quadratics:
    """K problems 0.5 theta' A_k theta - b_k' theta, whose margins are A_k theta; minimum A_k^-1 b_k."""

    def __init__(self, A, b):
        self.A, self.b = A, b

    def margins(self, theta):
        return (self.A @ theta[..., None])[..., 0]

    def loss(self, theta, Z):
        return 0.5 * (theta * Z).sum(-1) - (self.b * theta).sum(-1)

    def gradient(self, theta, Z):
        return Z - self.b


def problems(K=5, P=7, seed=0):
    rng = np.random.default_rng(seed)
    R = rng.standard_normal((K, P, P))
    A = R @ R.transpose(0, 2, 1) + 0.5 * np.eye(P)  # positive definite, badly conditioned
    return A, rng.standard_normal((K, P))


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_every_problem_reaches_its_own_minimum(backend):
    A, b = problems()
    expected = np.linalg.solve(A, b[..., None])[..., 0]
    if backend == "numpy":
        theta, n_iter, done = minimise(Quadratics(A, b), lambda q: q.copy(), np.zeros_like(b), 500, 1e-7, NUMPY)
    else:
        A_t, b_t = torch.as_tensor(A), torch.as_tensor(b)
        theta, n_iter, done = minimise(Quadratics(A_t, b_t), torch.clone, torch.zeros_like(b_t), 500, 1e-7, TORCH)
        theta, n_iter, done = theta.numpy(), n_iter.numpy(), done.numpy()
    np.testing.assert_allclose(theta, expected, atol=1e-6)  # |error| <= |A^-1| |gradient| <= 2 x 1e-7 x sqrt(7)
    assert done.all() and (n_iter > 0).all() and len(set(n_iter.tolist())) > 1  # each stops on its own


def test_a_good_preconditioner_takes_one_step_and_inactive_problems_never_move():
    A, b = problems()
    A_t, b_t = torch.as_tensor(A), torch.as_tensor(b)
    inverse = torch.linalg.inv(A_t)
    active = torch.tensor([True, False, True, True, False])
    theta, n_iter, done = minimise(Quadratics(A_t, b_t), lambda q: (inverse @ q[..., None])[..., 0],
                                   torch.zeros_like(b_t), 50, 1e-10, TORCH, active=active)
    assert n_iter.tolist() == [1, 0, 1, 1, 0]  # the exact Hessian: Newton's step, length 1
    assert not theta[~active].any()
    np.testing.assert_allclose(theta[active].numpy(), np.linalg.solve(A, b[..., None])[active.numpy(), :, 0],
                               atol=1e-10)


def test_numpy_and_torch_take_the_same_steps():
    A, b = problems(seed=3)
    np_theta, np_iter, _ = minimise(Quadratics(A, b), lambda q: q.copy(), np.zeros_like(b), 8, 0.0, NUMPY)
    A_t, b_t = torch.as_tensor(A), torch.as_tensor(b)
    t_theta, t_iter, _ = minimise(Quadratics(A_t, b_t), torch.clone, torch.zeros_like(b_t), 8, 0.0, TORCH)
    assert np_iter.tolist() == t_iter.tolist() == [8] * 5
    np.testing.assert_allclose(t_theta.numpy(), np_theta, rtol=1e-12, atol=1e-12)
