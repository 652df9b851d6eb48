"""Attention over a prompt prefix that every row of a batch shares, held once instead of once per row.

The extraction prompts of a batch share their few-shot demonstrations (575 of about 600 tokens
with SmolLM2's chat template) and differ in their last tens. Repeating the prefix's KV cache over
the batch makes every decoding step read one copy of it per row, and every step that drops a
finished row copy them all. Here the prefix's keys and values stay one tensor per layer; the
model's own cache holds each row's suffix only, and each layer scores its queries against both
and takes one softmax over the two, in float32: the same attention, without the copies.

It is an attention function of transformers' ``AttentionInterface`` (:data:`NAME`), used while
:func:`shared_prefix_attention` is active, and only by calls that pass a :class:`SharedPrefix`
(``model(..., shared_prefix=...)``); other calls get scaled-dot-product attention as usual.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "sdpa_shared_prefix"


@dataclass(frozen=True)
class SharedPrefix:
    """Every layer's keys and values of the shared prefix, (kv_heads, prefix length, head dim), in
    the model's dtype and in float32."""

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    keys32: tuple[torch.Tensor, ...]
    values32: tuple[torch.Tensor, ...]
    attended: set[int] = field(default_factory=set, compare=False)
    """The layers that have attended to it (:func:`check_attended`)."""

    @classmethod
    def from_cache(cls, cache) -> SharedPrefix:
        """The prefix of a one-row KV cache (a transformers ``DynamicCache``)."""
        layers = cache.layers
        if any(layer.keys.shape[0] != 1 for layer in layers):
            raise ValueError("a shared prefix comes from a cache of one row")
        keys = tuple(layer.keys[0] for layer in layers)
        values = tuple(layer.values[0] for layer in layers)
        return cls(keys, values, tuple(k.float() for k in keys), tuple(v.float() for v in values))

    @property
    def length(self) -> int:
        return self.keys[0].shape[1]


def supports_shared_prefix(model) -> bool:
    """Whether the model's attention can take a shared prefix: scaled-dot-product attention over the
    whole context (no sliding window, no logit soft-capping), one attention per layer."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layer_types = getattr(text, "layer_types", None) or ()
    return (
        config._attn_implementation in ("sdpa", NAME)
        and getattr(text, "sliding_window", None) is None
        and getattr(text, "attn_logit_softcapping", None) is None
        and all(kind == "full_attention" for kind in layer_types)
    )


def check_attended(prefix: SharedPrefix) -> None:
    """Fail unless every layer attended to ``prefix`` (a model whose attention does not go through
    transformers' attention interface would ignore it, and its rows would not see their prefix)."""
    if len(prefix.attended) != len(prefix.keys):
        raise RuntimeError(f"{len(prefix.attended)} of {len(prefix.keys)} layers attended to the shared prefix")


@contextlib.contextmanager
def shared_prefix_attention(model) -> Iterator[None]:
    """Within this block ``model`` runs :func:`attend`; before and after it, its own implementation."""
    config = model.config
    before = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = before


def attend(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    shared_prefix: SharedPrefix | None = None,
    **kwargs,
) -> tuple[torch.Tensor, None]:
    """Attention of ``query`` (batch, heads, q, d) over the shared prefix and the rows' own ``key`` and
    ``value`` (batch, kv_heads, k, d); ``attention_mask`` (batch, 1, q, k) covers the rows' own keys,
    every query sees the whole prefix. Returns (batch, q, heads, d) as transformers' functions do.

    A step of one query per row (decoding) scores every row's queries against the one prefix in a
    single float32 matrix product per key/value head. Many queries per row (the rows' own prompt
    ends) are a matrix product per row anyway: those run scaled-dot-product attention over the
    prefix put before each row's keys, as without sharing."""
    if shared_prefix is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    if kwargs.get("softcap") is not None or kwargs.get("sliding_window") is not None:
        raise ValueError("shared-prefix attention takes neither soft-capping nor a sliding window")
    rows, _, q_len, _ = query.shape
    layer = module.layer_idx
    shared_prefix.attended.add(layer)
    visible = _visible(attention_mask, rows, q_len, key.shape[2], query.device)
    if q_len > 1:
        prefix_keys, prefix_values = shared_prefix.keys[layer], shared_prefix.values[layer]
        key = torch.cat([prefix_keys.expand(rows, -1, -1, -1), key], dim=2)
        value = torch.cat([prefix_values.expand(rows, -1, -1, -1), value], dim=2)
        seen = torch.ones((rows, 1, q_len, prefix_keys.shape[1]), dtype=torch.bool, device=query.device)
        mask = torch.cat([seen, visible], dim=-1)
        return sdpa_attention_forward(module, query, key, value, mask, dropout=dropout, scaling=scaling, **kwargs)
    return _one_step(query, key, value, visible, shared_prefix.keys32[layer], shared_prefix.values32[layer], scaling)


def _one_step(query, key, value, visible, prefix_keys, prefix_values, scaling) -> tuple[torch.Tensor, None]:
    """Attention of one query per row over the prefix (``prefix_keys``, ``prefix_values``: (kv_heads,
    prefix, d), float32) and the row's own keys and values (``visible`` of them, or all when None)."""
    rows, heads, q_len, dim = query.shape
    kv_heads, prefix_len = prefix_keys.shape[:2]
    group = heads // kv_heads  # query heads per key/value head, kv-head major as transformers' repeat_kv
    scale = dim**-0.5 if scaling is None else scaling
    q = query.float().reshape(rows, kv_heads, group * q_len, dim)
    # Every row's queries of one kv head against the one prefix: a single matrix product per head.
    q_by_head = q.transpose(0, 1).reshape(kv_heads, rows * group * q_len, dim)
    prefix_scores = torch.bmm(q_by_head, prefix_keys.transpose(1, 2)).view(kv_heads, rows, group * q_len, prefix_len)
    own_scores = torch.matmul(q, key.float().transpose(-1, -2))  # (rows, kv_heads, group * q_len, own)
    own_len = own_scores.shape[-1]
    if visible is not None:
        own_scores = own_scores.view(rows, kv_heads, group, q_len, own_len)
        own_scores = own_scores.masked_fill(~visible[:, :, None], float("-inf")).view(rows, kv_heads, -1, own_len)
    scores = torch.cat([prefix_scores.transpose(0, 1), own_scores], dim=-1).mul_(scale)
    probs = torch.softmax(scores, dim=-1)
    out = torch.matmul(probs[..., prefix_len:], value.float())
    from_prefix = torch.bmm(probs[..., :prefix_len].transpose(0, 1).reshape(kv_heads, -1, prefix_len), prefix_values)
    out += from_prefix.view(kv_heads, rows, group * q_len, dim).transpose(0, 1)
    out = out.view(rows, heads, q_len, dim).transpose(1, 2).to(query.dtype).contiguous()
    return out, None


def _visible(mask: torch.Tensor | None, rows: int, q_len: int, own_len: int, device) -> torch.Tensor | None:
    """Which own keys each query sees, (rows, 1, q, own) bool; None when all of them."""
    if mask is None:
        if q_len == 1:
            return None
        # transformers leaves out an all-visible causal mask: query i sees own keys up to its own place
        keys = torch.arange(own_len, device=device)
        queries = torch.arange(own_len - q_len, own_len, device=device)
        return (keys[None, :] <= queries[:, None]).expand(rows, 1, q_len, own_len)
    if mask.dtype == torch.bool:
        return mask[..., -own_len:]
    return mask[..., -own_len:] == 0


AttentionInterface.register(NAME, attend)
AttentionMaskInterface.register(NAME, sdpa_mask)
