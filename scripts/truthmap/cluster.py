"""What a job asks a cluster for, sized from the run itself.

A job that runs the model over one shard (generation, labelling, P(True),
extraction) needs memory for the weights plus working space, and time in
proportion to the tokens it processes. The rates are those measured on two
CPU cores (README, Performance), so a GPU node finishes well inside the
request; each retry of a failed job asks for proportionally more.
"""

from __future__ import annotations

import math
from pathlib import Path

SECONDS_PER_TOKEN = 0.005
"""CPU seconds per processed token per question, batched (2 cores, 135M model)."""
PROMPT_TOKENS = 64
"""Tokens assumed for a prompt on top of the generated ones."""
BASE_MINUTES = 10
"""Start-up: Python, torch, loading the model."""
BASE_MEM_MB = 2000
"""Interpreter, torch and batches, besides the weights."""
WEIGHTS_FACTOR = 3
"""Weights in memory, plus a copy while loading, plus activations and KV cache."""


def weights_bytes(model_dir: str | Path) -> int:
    """Bytes of a prepared model's weight files (``*.safetensors``, ``*.bin``, ``*.gguf``)."""
    files = [p for p in Path(model_dir).rglob("*") if p.suffix in {".safetensors", ".bin", ".gguf"}]
    return sum(p.stat().st_size for p in files if p.is_file())


def model_job_mem_mb(weights: int, attempt: int = 1) -> int:
    """Memory (MB) for a job holding a model with ``weights`` bytes of weights."""
    return attempt * (BASE_MEM_MB + math.ceil(WEIGHTS_FACTOR * weights / 2**20))


def shard_job_minutes(n_questions: int, max_new_tokens: int, attempt: int = 1) -> int:
    """Wall-time limit (minutes) for a model job over ``n_questions`` questions."""
    tokens = n_questions * (max_new_tokens + PROMPT_TOKENS)
    return attempt * (BASE_MINUTES + math.ceil(tokens * SECONDS_PER_TOKEN / 60))


def count_lines(path: str | Path) -> int:
    """Non-empty lines of a JSONL shard."""
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def probe_job_gpus(backend: str) -> int:
    """GPUs a probe job (``train_probes``) asks for: one with ``probe.backend: torch``, else none
    (``auto`` picks torch only where a GPU is present, and a job cannot ask for one it may not use)."""
    return 1 if backend == "torch" else 0


def model_job_threads(cores: int | None) -> int:
    """Threads of a model job: 2, or 1 where Snakemake has fewer than 4 ``cores``, so that two
    shards' jobs run side by side there (the decoding loop's Python and a job's start-up use one
    core: on 2 cores, two 1-thread generation jobs did 1.35x the work of one 2-thread job; on a
    16-core GPU machine 1-thread jobs made the default run slower, 2:47 against 2:07). None (a
    dry run or lint: no cores given) gives 2."""
    return 1 if cores is not None and cores < 4 else 2
