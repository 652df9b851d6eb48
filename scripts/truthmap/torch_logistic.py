"""Every probe of a layer as one batched L2 logistic regression in torch, on a GPU when one is present.

:func:`fit_cells` minimises what :func:`truthmap.logistic.fit_many` does (scikit-learn's
``make_pipeline(StandardScaler(), LogisticRegression(C=C))`` on each fit's rows), with the same
L-BFGS loop (:func:`truthmap.lbfgs.minimise`), preconditioner (the inverse of Bohning's bound,
built from a base fit's rows) and stop rule (no gradient entry above ``tol``), with one more
leading dimension: the *cell*. Cell c has its own features (N_c, H) and fits (its masks over those
rows); every L-BFGS step of every fit of every cell is two batched matrix products, so the cells
of a layer, each with its primary fit, its cross-validation folds and its further seeded splits,
run as one problem on the device.

Cells may use different rows (``probe.examples: per_cell``) and different numbers of fits (a
seeded split short of a class has none): their rows are padded with zero rows that no fit
selects, their fits with empty ones that never step and are not returned. Each fit keeps its own
L-BFGS memory and line search, so padding changes no fit.

Arithmetic is float64 on every device: the solver is memory-bound (each step reads the features
twice), the data-centre GPUs it is meant for (A100, H100, H200) run float64 at half their float32
rate, and in float64 the stop rule at :data:`truthmap.logistic.TOL` is reached as on the CPU, so
the fits land where ``fit_many``'s do. The preconditioner is held in float32, as ``fit_many``
holds it (it only steers the steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from truthmap.lbfgs import ArrayOps, minimise
from truthmap.logistic import TOL, Fits

DTYPE = torch.float64

TORCH = ArrayOps(
    zeros=lambda shape, like, dtype=None: torch.zeros(
        shape, dtype=torch.long if dtype is int else (dtype or like.dtype), device=like.device),
    where=torch.where,
    amax=lambda x: x.amax(-1),
    copy=torch.clone,
    cast=lambda x, like: x.to(like.dtype),
)
"""The operations :func:`truthmap.lbfgs.minimise` needs, in torch."""


@dataclass(frozen=True)
class CellFits:
    """One cell's problem: features, labels and the rows of each of its fits."""

    X: np.ndarray
    """(N, H) features."""
    y: np.ndarray
    """(N,) labels, 0 or 1."""
    masks: np.ndarray
    """(K, N) the rows of each fit; every fit needs both labels."""
    bases: Sequence[int]
    """Whose rows precondition each fit (an index into ``masks``; see :func:`truthmap.logistic.fit_many`)."""


def default_device() -> str:
    """``cuda`` when torch sees a GPU, else ``cpu``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


class _Batch:
    """The padded problem on the device: X (C, N + 1, H) centred per cell (the last row zero and
    in no fit), labels (C, 1, N + 1), masks M (C, K, N + 1); margins Z are (C, K, N + 1)."""

    def __init__(self, cells: Sequence[CellFits], C: float, device: torch.device, dtype: torch.dtype) -> None:
        n_rows = max(len(c.y) for c in cells) + 1
        K = max(len(c.masks) for c in cells)
        H = cells[0].X.shape[1]
        kw = dict(device=device, dtype=dtype)
        self.X = torch.zeros((len(cells), n_rows, H), **kw)
        self.y = torch.zeros((len(cells), 1, n_rows), **kw)
        self.M = torch.zeros((len(cells), K, n_rows), **kw)
        self.center = torch.zeros((len(cells), H), **kw)
        for i, cell in enumerate(cells):
            X = torch.as_tensor(np.asarray(cell.X), device=device).to(dtype)
            self.center[i] = X.mean(0)
            self.X[i, : len(X)] = X - self.center[i]  # centred: no large means cancel
            self.y[i, 0, : len(X)] = torch.as_tensor(np.asarray(cell.y, dtype=np.float64), **kw)
            self.M[i, : len(cell.masks), : len(X)] = torch.as_tensor(np.asarray(cell.masks, dtype=np.float64), **kw)
        self.active = self.M.sum(-1) > 0
        self.n = self.M.sum(-1).clamp(min=1.0)  # a padded fit: no rows, never stepped
        self.mean = (self.M @ self.X) / self.n[..., None]
        var = (self.M @ (self.X * self.X)) / self.n[..., None] - self.mean**2
        scale = var.clamp(min=0).sqrt()
        self.scale = torch.where(scale < 10 * torch.finfo(torch.float64).eps, 1.0, scale)
        self.lam = 1.0 / (C * self.n)

    def margins(self, theta: torch.Tensor) -> torch.Tensor:
        """Margins of parameters ``theta`` (C, K, H + 1); linear in ``theta``."""
        V = theta[..., :-1] / self.scale
        return V @ self.X.transpose(1, 2) + (theta[..., -1] - (self.mean * V).sum(-1))[..., None]

    def loss(self, theta: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
        w = theta[..., :-1]
        softplus = Z.clamp(min=0) + torch.log1p(torch.exp(-Z.abs()))
        data = ((softplus - self.y * Z) * self.M).sum(-1) / self.n
        return data + 0.5 * self.lam * (w * w).sum(-1)

    def gradient(self, theta: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
        R = (torch.sigmoid(Z) - self.y) * self.M / self.n[..., None]
        sums = R.sum(-1)
        gw = (R @ self.X - self.mean * sums[..., None]) / self.scale + self.lam[..., None] * theta[..., :-1]
        return torch.cat([gw, sums[..., None]], -1)


class _Preconditioner:
    """The inverse bound of each fit's base, applied to gradients (C, K, H + 1).

    Slot j holds, per cell, the inverse for the cell's j-th base (a cell with fewer bases repeats
    its first); each fit reads its base's slot. Held whole (float32) when no base has fewer rows
    than features, its Gram matrix the cell's less that of the rows the base leaves out (as
    ``fit_many`` builds it); else by Woodbury's identity over the cell's rows (rows outside the
    base are zero in A, which leaves the inverse unchanged); see
    :class:`truthmap.logistic.InverseBound`."""

    def __init__(self, batch: _Batch, cells: Sequence[CellFits]) -> None:
        C, K, P = batch.M.shape[0], batch.M.shape[1], batch.X.shape[2] + 1
        slots = [sorted(set(cell.bases)) for cell in cells]
        self.n_slots = max(len(s) for s in slots)
        self.base = torch.tensor([[s[j] if j < len(s) else s[0] for j in range(self.n_slots)] for s in slots],
                                 device=batch.X.device)  # (C, slots): the base fit of each slot
        slot_of = np.zeros((C, K), dtype=int)  # padded fits: the first slot
        for c, (cell, s) in enumerate(zip(cells, slots)):
            slot_of[c, : len(cell.bases)] = [s.index(b) for b in cell.bases]
        self.routes = [self._route(slot_of == j, K) for j in range(self.n_slots)]
        cells_index = torch.arange(C, device=batch.X.device)
        self.woodbury = bool((batch.n.gather(1, self.base) < P - 1).any())
        self.lam = batch.lam.gather(1, self.base)  # (C, slots)
        self.rows = [len(cell.y) for cell in cells]
        self.whole = None if self.woodbury else batch.X.transpose(1, 2) @ batch.X  # (C, H, H)
        self.parts = [self._part(batch, cells_index, self.base[:, j], self.lam[:, j]) for j in range(self.n_slots)]
        self.whole = None

    @staticmethod
    def _route(in_slot: np.ndarray, K: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Indices into the flattened (C * K) fits: whose gradients to take (C, G), padded with the
        cell's first fit, and which results to keep (source in the (C * G) products, destination)."""
        C = in_slot.shape[0]
        G = max(1, int(in_slot.sum(1).max()))
        take = np.zeros((C, G), dtype=int)
        src, dst = [], []
        for c in range(C):
            fits = np.flatnonzero(in_slot[c])
            take[c] = c * K + (np.pad(fits, (0, G - len(fits)), constant_values=fits[0] if len(fits) else 0))
            src += [c * G + g for g in range(len(fits))]
            dst += [c * K + k for k in fits]
        return torch.tensor(take), torch.tensor(src, dtype=torch.long), torch.tensor(dst, dtype=torch.long)

    def _part(self, batch: _Batch, cells: torch.Tensor, base: torch.Tensor, lam: torch.Tensor) -> tuple:
        mask = batch.M[cells, base]  # (C, N + 1)
        n, mu, s = batch.n[cells, base], batch.mean[cells, base], batch.scale[cells, base]
        H = batch.X.shape[2]
        if self.woodbury:
            A = (batch.X - mu[:, None]) / s[:, None] * mask[..., None] / (2.0 * n.sqrt())[:, None, None]
            inner = A @ A.transpose(1, 2) + lam[:, None, None] * torch.eye(A.shape[1], dtype=A.dtype, device=A.device)
            return A, torch.cholesky_inverse(torch.linalg.cholesky(inner))
        gram = self.whole - self._left_out_gram(batch, mask)
        cov = gram / n[:, None, None] - mu[:, :, None] * mu[:, None, :]
        B = torch.zeros((len(cells), H + 1, H + 1), dtype=batch.X.dtype, device=batch.X.device)
        B[:, :H, :H] = cov / (s[:, :, None] * s[:, None, :]) / 4
        B[:, range(H), range(H)] += lam[:, None]
        B[:, H, H] = 0.25
        return (torch.cholesky_inverse(torch.linalg.cholesky(B)).to(torch.float32),)

    def _left_out_gram(self, batch: _Batch, mask: torch.Tensor) -> torch.Tensor:
        """X'X over each cell's rows outside ``mask`` (C, N + 1): the whole Gram matrix less this is
        the base's, at the cost of the rows a base leaves out (a fifth, for a training split)."""
        out = [np.flatnonzero(m[:n] == 0) for m, n in zip(mask.cpu().numpy(), self.rows)]
        index = np.full((len(out), max(1, max(len(o) for o in out))), batch.X.shape[1] - 1)  # the zero row
        for c, rows in enumerate(out):
            index[c, : len(rows)] = rows
        index = torch.as_tensor(index, device=batch.X.device)
        left = batch.X[torch.arange(len(out), device=batch.X.device)[:, None], index]  # (C, L, H)
        return left.transpose(1, 2) @ left

    def apply(self, q: torch.Tensor) -> torch.Tensor:
        C, K, P = q.shape
        flat, out = q.reshape(C * K, P), torch.empty_like(q).reshape(C * K, P)
        for j, (take, src, dst) in enumerate(self.routes):
            part = flat[take.to(q.device)]  # (C, G, P)
            if self.woodbury:
                A, W = self.parts[j]
                w = part[..., :-1]
                r = (w - ((w @ A.transpose(1, 2)) @ W) @ A) / self.lam[:, j, None, None]
                r = torch.cat([r, 4.0 * part[..., -1:]], -1)
            else:
                r = (part.to(torch.float32) @ self.parts[j][0]).to(q.dtype)
            out[dst.to(q.device)] = r.reshape(-1, P)[src.to(q.device)]
        return out.reshape(C, K, P)


def fit_cells(cells: Sequence[CellFits], C: float, max_iter: int, tol: float = TOL, device: str | None = None,
              dtype: torch.dtype = DTYPE) -> list[Fits]:
    """Fit every fit of every cell in one batch on ``device`` (default: :func:`default_device`);
    one :class:`truthmap.logistic.Fits` per cell, its fits in the order of its masks."""
    dev = torch.device(device or default_device())
    with torch.no_grad():
        batch = _Batch(cells, C, dev, dtype)
        pre = _Preconditioner(batch, cells)
        start = torch.zeros((*batch.M.shape[:2], batch.X.shape[2] + 1), dtype=batch.X.dtype, device=batch.X.device)
        theta, n_iter, done = minimise(batch, pre.apply, start, max_iter, tol, TORCH, active=batch.active)
        done = done & batch.active
    mean, scale = (batch.mean + batch.center[:, None]).cpu().numpy(), batch.scale.cpu().numpy()
    theta, n_iter, done = theta.cpu().numpy(), n_iter.cpu().numpy(), done.cpu().numpy()
    out = []
    for c, cell in enumerate(cells):
        k = len(cell.masks)
        out.append(Fits(mean=mean[c, :k], scale=scale[c, :k], coef=theta[c, :k, :-1].copy(),
                        intercept=theta[c, :k, -1].copy(), n_iter=n_iter[c, :k], converged=done[c, :k]))
    return out
