"""Batches that fit the accelerator: sized from free memory, halved on an out-of-memory error.

The config's batch sizes are upper bounds. On CUDA a decoding batch is first cut
to the rows whose key/value cache fits in the free memory
(:func:`rows_that_fit`); a batch that still runs out of memory is split in half
and retried (:class:`Halving`), and the smaller size is kept for the batches
that follow. Each retry is logged; no row is lost or run twice, and the results
come out in the batch's order.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

import torch

from truthmap.shapes import ModelShape

log = logging.getLogger("truthmap.batches")
T = TypeVar("T")

#: Share of the free memory a batch's cache and logits may take (the rest: activations, allocator slack).
MEMORY_SHARE = 0.6


def rows_that_fit(free_bytes: int, shape: ModelShape, element_bytes: int, tokens_per_row: int, upper: int) -> int:
    """Rows of ``tokens_per_row`` tokens (prompt and generation) whose cache, hidden states and float32
    logits fit in :data:`MEMORY_SHARE` of ``free_bytes``; at most ``upper``, at least 1."""
    per_row = (tokens_per_row * (shape.kv_bytes_per_token(element_bytes) + 4 * shape.hidden * element_bytes)
               + 4 * shape.vocab)
    return max(1, min(upper, int(MEMORY_SHARE * free_bytes // per_row)))


def tokens_that_fit(free_bytes: int, shape: ModelShape, element_bytes: int, upper: int) -> int:
    """Tokens of a forward pass without decoding (extraction) whose cache and transient values (a
    block's input, its attention and MLP outputs, the MLP's two intermediate tensors) fit in
    :data:`MEMORY_SHARE` of ``free_bytes``; at most ``upper``, at least 1."""
    per_token = shape.kv_bytes_per_token(element_bytes) + (4 * shape.hidden + 2 * shape.intermediate) * element_bytes
    return max(1, min(upper, int(MEMORY_SHARE * free_bytes // per_token)))


def free_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA ``device``; None elsewhere (a CPU's batches are the config's)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


def model_free_memory(model) -> int | None:
    """The free bytes a batch of the whole model may use: on each GPU its blocks compute on, the
    free bytes over that GPU's share of the blocks (it holds that share of every row's cache),
    the least of them; None when a block computes on the CPU (its batches are the config's)."""
    from truthmap.models import decoder_layers
    from truthmap.placement import block_shares

    shares = block_shares(decoder_layers(model))
    free = {device: free_memory(device) for device in shares}
    if any(f is None for f in free.values()):
        return None
    return int(min(free[device] / share for device, share in shares.items()))


def gpu_budget(model) -> tuple[int, ModelShape, int] | None:
    """What sizing a batch of ``model`` needs on GPUs: (free bytes, :func:`model_free_memory`; its
    shape; bytes per value); None on a CPU, whose batches are the config's."""
    free = model_free_memory(model)
    if free is None:
        return None
    return free, ModelShape.from_config(model.config.to_dict()), model.dtype.itemsize


def chunks(items: Sequence[T], size: int | None) -> list[list[T]]:
    """``items`` in runs of at most ``size`` (all in one when ``size`` is None)."""
    items = list(items)
    if size is None or len(items) <= size:
        return [items]
    return [items[i:i + size] for i in range(0, len(items), size)]


class Halving:
    """Runs batches, halving one that runs out of memory; the size that fitted caps later batches."""

    def __init__(self, what: str = "batch") -> None:
        self.what = what
        self.cap: int | None = None
        self.retries = 0

    def run(self, batch: Sequence[T], step: Callable[[list[T]], object]) -> Iterator[tuple[list[T], object]]:
        """``(part, step(part))`` for parts of ``batch`` that fit, in order, covering it once."""
        todo = deque(chunks(batch, self.cap))
        while todo:
            part = todo.popleft()
            if self.cap is not None and len(part) > self.cap:  # queued before a later halving
                todo.extendleft(reversed(chunks(part, self.cap)))
                continue
            try:
                value = step(part)
            except torch.OutOfMemoryError:
                if len(part) == 1:
                    raise
                self.cap = len(part) // 2
                self.retries += 1
                log.warning("out of memory on a %s of %d rows: retrying it as %d batches of at most %d",
                            self.what, len(part), -(-len(part) // self.cap), self.cap)
                release_cached_memory()
                todo.extendleft(reversed(chunks(part, self.cap)))
                continue
            yield part, value

    def each(self, batches: Iterable[Sequence[T]],
             step: Callable[[list[T]], object]) -> Iterator[tuple[list[T], object]]:
        """:meth:`run` over every batch in turn."""
        for batch in batches:
            yield from self.run(batch, step)


def release_cached_memory() -> None:
    """Hand the failed batch's cached blocks back before the retry."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
