"""Batches that fit: memory arithmetic, and out-of-memory errors halving real decoding and
extraction batches without losing or repeating a row (the error is raised by a hook on the
model, as CUDA's allocator raises it, so the code under test is the one a GPU runs)."""

from __future__ import annotations

import logging
import numpy as np
import pytest
import torch

from truthmap.activations import extract_to_h5
from truthmap.batches import MEMORY_SHARE, Halving, chunks, rows_that_fit
from truthmap.generation import Sampling, decoding_rows, generate_batched
from truthmap.h5io import read_layer
from truthmap.shapes import ModelShape

LLAMA_70B = ModelShape.from_config({"hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
                                    "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 128256})


def test_kv_cache_bytes_follow_the_grouped_heads():
    # keys and values, 80 layers, 8 kv heads of 128 dims, 2 bytes (bfloat16)
    assert LLAMA_70B.kv_bytes_per_token(2) == 2 * 80 * 8 * 128 * 2 == 327_680


def test_rows_that_fit_the_free_memory():
    per_row = 512 * (327_680 + 4 * 8192 * 2) + 4 * 128256  # 512 tokens: cache, hidden states, float32 logits
    free = 40 * 2**30
    assert rows_that_fit(free, LLAMA_70B, 2, 512, upper=1024) == int(MEMORY_SHARE * free // per_row) == 127
    assert rows_that_fit(free, LLAMA_70B, 2, 512, upper=64) == 64  # the config's batch is an upper bound
    assert rows_that_fit(1, LLAMA_70B, 2, 512, upper=64) == 1  # never below one row


def test_a_cpu_keeps_the_configured_batch(tiny_model):
    model, _ = tiny_model
    assert decoding_rows(model, [[1, 2, 3]], 8, 48) == 48


def oom_step(limit: int, calls: list):
    def step(part):
        calls.append(list(part))
        if len(part) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return [x * 10 for x in part]
    return step


def test_halving_covers_the_batch_once_in_order_and_keeps_the_size_that_fitted(caplog):
    halving, calls = Halving("decoding batch"), []
    with caplog.at_level(logging.WARNING, logger="truthmap.batches"):
        first = list(halving.run(list(range(10)), oom_step(3, calls)))
        second = list(halving.run(list(range(10, 16)), oom_step(3, calls)))
    assert [x for part, _ in first for x in part] == list(range(10))
    assert [v for _, values in first for v in values] == [x * 10 for x in range(10)]
    assert halving.cap == 2 and halving.retries == 2  # 10 -> 5 -> 2
    assert calls[0] == list(range(10)) and calls[1] == list(range(5))
    assert [part for part, _ in second] == [[10, 11], [12, 13], [14, 15]]  # no second failure
    assert "out of memory on a decoding batch of 10 rows" in caplog.text


def test_a_single_row_that_does_not_fit_is_an_error():
    with pytest.raises(torch.OutOfMemoryError):
        list(Halving().run([7], oom_step(0, [])))


def test_chunks():
    assert chunks([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert chunks([1, 2], None) == [[1, 2]]


class OutOfMemoryAbove:
    """A forward pre-hook that raises CUDA's out-of-memory error for batches above ``rows`` rows."""

    def __init__(self, module, rows: int) -> None:
        self.rows, self.raised = rows, 0
        self.handle = module.register_forward_pre_hook(self, with_kwargs=True)

    def __call__(self, module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None and ids.shape[0] > self.rows:
            self.raised += 1
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


PROMPTS = [[5, 6, 7, 8, 9], [10, 11, 12], [13, 14, 15, 16], [17, 18], [19, 20, 21, 22, 23, 24], [25, 26, 27]]


@pytest.mark.parametrize("sampled", [False, True])
def test_decoding_after_an_out_of_memory_error_gives_the_same_answers(tiny_model, sampled, caplog):
    model, _ = tiny_model
    sampling = Sampling(1.0, 20, list(range(len(PROMPTS)))) if sampled else None

    def run():
        return [g.gen_ids for g in generate_batched(model, PROMPTS, pad_id=0, stop_ids=set(), eos=set(),
                                                    max_new_tokens=5, batch_size=6, sampling=sampling)]

    whole = run()
    with OutOfMemoryAbove(model, 2) as hook, caplog.at_level(logging.WARNING, logger="truthmap.batches"):
        halved = run()
    assert hook.raised >= 1 and halved == whole
    assert "retrying it as 2 batches of at most 3" in caplog.text


def test_extraction_after_an_out_of_memory_error_writes_the_same_shard(tiny_model, tmp_path):
    from truthmap.models import decoder_body

    model, tok = tiny_model
    seqs = [p + [30, 31] for p in PROMPTS]
    positions = np.array([[len(s) - 1, 0] for s in seqs])
    paths = []
    for limit in (None, 2):
        path = tmp_path / f"shard{limit}.h5"
        kwargs = dict(ids=[f"q{i}" for i in range(len(seqs))], seqs=seqs, positions=positions,
                      labels=np.array([0, 1, 0, 1, 1, 0], dtype=np.int8), tokens=["last_q", "-1"], layers=[0, 3],
                      sites=["residual"], model_name="tiny", pad_id=tok.pad_token_id, batch_tokens=1000)
        if limit is None:
            extract_to_h5(model, str(path), **kwargs)
        else:
            with OutOfMemoryAbove(decoder_body(model), limit) as hook:
                extract_to_h5(model, str(path), **kwargs)
            assert hook.raised >= 1
        paths.append(path)
    for layer in (0, 3):
        np.testing.assert_allclose(read_layer(paths[0], "residual", layer).astype(np.float32),
                                   read_layer(paths[1], "residual", layer).astype(np.float32), atol=2e-3)


def test_scoring_after_an_out_of_memory_error_gives_the_same_logits(tiny_model):
    """P(True)'s two scorers: prompts one by one, and items whose branches share a stem."""
    from truthmap.generation import branch_logits, next_token_logits

    model, _ = tiny_model
    items = [[p + [40, 41], p + [42]] for p in PROMPTS]

    def run():
        return (next_token_logits(model, PROMPTS, [3, 4], pad_id=0, batch_size=6),
                branch_logits(model, items, [3, 4], pad_id=0, batch_size=6))

    whole = run()
    with OutOfMemoryAbove(model, 2) as hook:
        halved = run()
    assert hook.raised >= 2
    for a, b in zip(whole, halved):
        np.testing.assert_allclose(a, b, atol=1e-5)
