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
    """Multiply-add FLOPs per token of a decoder forward pass (2 per multiply-add).

    ``layers`` decoder blocks (all when None), attention over ``context``
    tokens on average, plus the LM head when ``lm_head``. Embedding lookups and
    norms are not counted: they are not matrix products.
    """
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    d = cfg.hidden_size
    heads = cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or d // heads
    kv = getattr(cfg, "num_key_value_heads", heads) * head_dim
    q = heads * head_dim
    ff = cfg.intermediate_size
    per_layer = 2 * (d * q + 2 * d * kv + q * d + 3 * d * ff) + 2 * 2 * q * context
    n_layers = cfg.num_hidden_layers if layers is None else layers
    return n_layers * per_layer + (2 * d * cfg.vocab_size if lm_head else 0)


def sync(device) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()
