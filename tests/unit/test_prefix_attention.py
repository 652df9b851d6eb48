"""Attention over a prefix held once: against attention written out in float64, and decoding with it
against decoding with the prefix's cache repeated over the rows."""

from __future__ import annotations

import types

import pytest
import torch

from truthmap.generation import Sampling, generate_batched
from truthmap.prefix_attention import (
    NAME,
    SharedPrefix,
    attend,
    check_attended,
    shared_prefix_attention,
    supports_shared_prefix,
)


def _reference(query, keys, values, visible, scale):
    """Softmax attention in float64 with the kv heads repeated: (rows, q, heads, d)."""
    group = query.shape[1] // keys.shape[1]
    keys, values = keys.repeat_interleave(group, 1).double(), values.repeat_interleave(group, 1).double()
    scores = query.double() @ keys.transpose(-1, -2) * scale
    scores = scores.masked_fill(~visible, float("-inf"))
    return (torch.softmax(scores, -1) @ values).transpose(1, 2)


class _Cache:
    """The part of transformers' DynamicCache that SharedPrefix.from_cache reads."""

    def __init__(self, keys, values):
        self.layers = [types.SimpleNamespace(keys=k, values=v) for k, v in zip(keys, values)]


@pytest.mark.parametrize("q_len", [1, 5])
def test_attention_over_a_held_prefix_is_attention_over_the_whole_context(q_len):
    torch.manual_seed(0)
    rows, heads, kv_heads, dim, prefix_len, own = 3, 6, 2, 8, 11, 7
    prefix_k, prefix_v = torch.randn(1, kv_heads, prefix_len, dim), torch.randn(1, kv_heads, prefix_len, dim)
    key, value = torch.randn(rows, kv_heads, own, dim), torch.randn(rows, kv_heads, own, dim)
    query = torch.randn(rows, heads, q_len, dim)
    # left padding: row 1 starts 2 own keys late, row 2 has 1 pad; queries see their own past (causal)
    starts = torch.tensor([0, 2, 1])
    k_idx, q_idx = torch.arange(own), torch.arange(own - q_len, own)
    mask = (k_idx[None, None, :] <= q_idx[None, :, None]) & (k_idx[None, None, :] >= starts[:, None, None])
    mask = mask[:, None]  # (rows, 1, q, own), transformers' boolean form
    module = types.SimpleNamespace(layer_idx=0, num_key_value_groups=heads // kv_heads, is_causal=True)
    prefix = SharedPrefix.from_cache(_Cache([prefix_k], [prefix_v]))
    out, _ = attend(module, query, key, value, mask, scaling=0.3, shared_prefix=prefix)

    whole_k = torch.cat([prefix_k.expand(rows, -1, -1, -1), key], 2)
    whole_v = torch.cat([prefix_v.expand(rows, -1, -1, -1), value], 2)
    visible = torch.cat([torch.ones(rows, 1, q_len, prefix_len, dtype=torch.bool), mask], -1)
    assert out.shape == (rows, q_len, heads, dim)
    torch.testing.assert_close(out.double(), _reference(query, whole_k, whole_v, visible, 0.3), atol=1e-5, rtol=1e-5)
    assert prefix.attended == {0}


def test_a_left_out_causal_mask_is_causal():
    torch.manual_seed(1)
    prefix_k, prefix_v = torch.randn(1, 1, 4, 8), torch.randn(1, 1, 4, 8)
    key, value, query = torch.randn(2, 1, 5, 8), torch.randn(2, 1, 5, 8), torch.randn(2, 2, 5, 8)
    prefix = SharedPrefix.from_cache(_Cache([prefix_k], [prefix_v]))
    out, _ = attend(types.SimpleNamespace(layer_idx=0, num_key_value_groups=2, is_causal=True), query, key, value, None, shared_prefix=prefix)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    mask = causal.expand(2, 1, 5, 5)
    visible = torch.cat([torch.ones(2, 1, 5, 4, dtype=torch.bool), mask], -1)
    whole_k = torch.cat([prefix_k.expand(2, -1, -1, -1), key], 2)
    whole_v = torch.cat([prefix_v.expand(2, -1, -1, -1), value], 2)
    torch.testing.assert_close(out.double(), _reference(query, whole_k, whole_v, visible, 8**-0.5), atol=1e-5,
                               rtol=1e-5)


def test_a_prefix_no_layer_attended_to_fails():
    prefix = SharedPrefix.from_cache(_Cache([torch.zeros(1, 1, 2, 4)] * 2, [torch.zeros(1, 1, 2, 4)] * 2))
    prefix.attended.add(0)
    with pytest.raises(RuntimeError, match="1 of 2 layers"):
        check_attended(prefix)


def test_only_whole_context_sdpa_models_hold_a_prefix_once(tiny_model):
    model, _ = tiny_model
    assert supports_shared_prefix(model)
    with shared_prefix_attention(model):
        assert model.config._attn_implementation == NAME
    assert model.config._attn_implementation == "sdpa"
    windowed = types.SimpleNamespace(config=types.SimpleNamespace(_attn_implementation="sdpa", sliding_window=512))
    assert not supports_shared_prefix(windowed)
    eager = types.SimpleNamespace(config=types.SimpleNamespace(_attn_implementation="eager"))
    assert not supports_shared_prefix(eager)


@pytest.mark.parametrize("sampled", [False, True])
def test_decoding_with_the_prefix_held_once_equals_repeating_it(tiny_model, sampled, monkeypatch):
    import truthmap.generation as generation

    held_prefixes, original = [], SharedPrefix.from_cache
    monkeypatch.setattr(generation.SharedPrefix, "from_cache",
                        classmethod(lambda cls, cache: held_prefixes.append(original(cache)) or held_prefixes[-1]))
    model, tok = tiny_model
    prefix = "Answer the question concisely. The capital of France is Paris. The capital of Peru is Lima. "
    ends = ["The capital of Spain is", "17 + 25 =", "Zürich", "I think it is Rome or", "Q"]
    prompts = [tok(prefix + e, add_special_tokens=False)["input_ids"] for e in ends]
    stop = {prompts[0][-1]}  # some rows stop early and leave the batch
    sampling = Sampling(1.0, 20, [3, 4, 5, 6, 7]) if sampled else None
    runs = [generate_batched(model, prompts, pad_id=tok.pad_token_id, stop_ids=stop, eos=set(), max_new_tokens=8,
                             batch_size=5, sampling=sampling, prefix_once=once) for once in (True, False)]
    assert len(held_prefixes) == 1 and held_prefixes[0].attended == {0, 1, 2, 3}  # the first run held it
    for held, repeated in zip(*runs):
        assert held.gen_ids == repeated.gen_ids and held.finish_reason == repeated.finish_reason
        torch.testing.assert_close(torch.tensor(held.logprobs), torch.tensor(repeated.logprobs), atol=1e-5, rtol=0)
