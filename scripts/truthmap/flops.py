"""The hardware's limit and a model's work: the matrix-multiply peak measured here, FLOPs per token.

Shared by ``make bench`` (:mod:`truthmap.bench`) and the per-stage table of a
finished run (:mod:`truthmap.efficiency`).
"""

from __future__ import annotations

import time


def matmul_peak_gflops(device, dtype, size: int = 2048, repeats: int = 5) -> float:
    """Best sustained GFLOP/s of a square matrix product on ``device`` (the roofline's peak)."""
    import torch

    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        for _ in range(4):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - start) / 4)
    return 2 * size**3 / best / 1e9


def forward_flops_per_token(config, layers: int | None = None, context: float = 0.0, lm_head: bool = True) -> float:
    """:meth:`truthmap.shapes.ModelShape.flops_per_token` of a loaded model's config."""
    from truthmap.shapes import ModelShape

    return ModelShape.from_config(config.to_dict()).flops_per_token(context, layers, lm_head)


def sync(device) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()
