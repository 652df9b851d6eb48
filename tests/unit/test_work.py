"""The work meter against the closed-form FLOPs of an unpadded forward pass (from the config alone)."""

from __future__ import annotations

import numpy as np
import torch

from truthmap.activations import PositionCapture, extract_batch
from truthmap.flops import forward_flops_per_token
from truthmap.generation import generate_batched
from truthmap.models import decoder_body
from truthmap.work import WorkMeter, call_tokens


def _run(model, ids: list[list[int]], pad: int = 0, left: bool = True):
    width = max(len(s) for s in ids)
    x = torch.full((len(ids), width), pad, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, s in enumerate(ids):
        cols = slice(width - len(s), width) if left else slice(0, len(s))
        x[row, cols] = torch.tensor(s)
        mask[row, cols] = 1
    with torch.inference_mode(), WorkMeter(model) as work:
        model(input_ids=x, attention_mask=mask)
    return work


def _closed_form(config, length: int, layers: int | None = None, lm_head: bool = True) -> float:
    """One unpadded sequence with logits at every position: token t attends to t keys."""
    return length * forward_flops_per_token(config, layers=layers, context=(length + 1) / 2, lm_head=lm_head)


def test_one_sequence_matches_the_closed_form(tiny_model):
    model, _ = tiny_model
    work = _run(model, [list(range(5, 17))])
    assert work.tokens == work.padded_tokens == 12
    assert work.calls == 1
    assert np.isclose(work.flops, _closed_form(model.config, 12))
    assert work.dtype == "float32" and work.device == "cpu"


def test_padding_is_not_counted(tiny_model):
    model, _ = tiny_model
    a, b = list(range(5, 17)), list(range(30, 35))
    for left in (True, False):
        work = _run(model, [a, b], left=left)
        assert work.tokens == 17 and work.padded_tokens == 24
        assert np.isclose(work.flops, _closed_form(model.config, 12) + _closed_form(model.config, 5))


def test_a_pass_cut_after_a_layer_counts_only_the_blocks_it_ran(tiny_model):
    model, tok = tiny_model
    seq = list(range(5, 15))
    capture = PositionCapture(model, [0], ["residual"])
    try:
        with WorkMeter(model) as work:
            extract_batch(decoder_body(model), capture, [seq], np.array([[3]]), tok.pad_token_id,
                          torch.device("cpu"), share_prefix=False)
    finally:
        capture.remove()
    assert np.isclose(work.flops, _closed_form(model.config, 10, layers=1, lm_head=False))


def test_decoding_counts_prompt_and_steps_with_their_growing_context(tiny_model):
    model, tok = tiny_model
    prompt, steps = list(range(5, 13)), 4
    with WorkMeter(model) as work:
        (gen,) = generate_batched(model, [prompt], pad_id=tok.pad_token_id, stop_ids=set(), eos=set(),
                                  max_new_tokens=steps, batch_size=1)
    cfg = model.config
    body = forward_flops_per_token(cfg, context=(len(prompt) + 1) / 2, lm_head=False) * len(prompt)
    head = forward_flops_per_token(cfg, layers=0)  # logits for the last prompt token only
    # steps - 1 fed tokens: the last sampled token is never fed back
    decode = sum(forward_flops_per_token(cfg, context=len(prompt) + k + 1) for k in range(steps - 1))
    assert len(gen.gen_ids) == steps
    assert work.calls == steps and work.tokens == len(prompt) + steps - 1
    assert np.isclose(work.flops, body + head + decode)


def test_hooks_are_removed_on_exit(tiny_model):
    model, _ = tiny_model
    with WorkMeter(model) as work:
        pass
    _run(model, [[5, 6, 7]])
    assert work.flops == 0 and work.calls == 0


def test_call_tokens_without_a_mask_is_causal_over_the_past():
    call = call_tokens((2, 3), None, past=4)
    assert call.real == 6
    assert call.context == 2 * (5 + 6 + 7)
    masked = call_tokens((1, 2), torch.tensor([[0, 1, 1, 1]]), past=2)
    assert masked.real == 2 and masked.context == 2 + 3
