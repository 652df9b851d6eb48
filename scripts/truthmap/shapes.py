"""A decoder's shape from its config.json: parameters, key/value cache and site widths, no weights."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from truthmap.settings import SITES


@dataclass(frozen=True)
class ModelShape:
    """What the plan and the batch sizes need of a model's ``config.json`` (its text model's, when nested)."""

    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, config: Mapping) -> ModelShape:
        text = config.get("text_config") or config
        heads = text["num_attention_heads"]
        return cls(
            layers=text["num_hidden_layers"], hidden=text["hidden_size"], intermediate=text["intermediate_size"],
            heads=heads, kv_heads=text.get("num_key_value_heads") or heads,
            head_dim=text.get("head_dim") or text["hidden_size"] // heads, vocab=text["vocab_size"],
            tied=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
        )

    def params(self) -> int:
        """Weights of the embeddings, every block (attention, gated MLP, two norms), the final norm
        and, when not tied to the embeddings, the LM head."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        block = self.hidden * (2 * q + 2 * kv) + 3 * self.hidden * self.intermediate + 2 * self.hidden
        embeddings = self.vocab * self.hidden
        return embeddings * (1 if self.tied else 2) + self.layers * block + self.hidden

    def flops_per_token(self, context: float = 0.0, layers: int | None = None, lm_head: bool = True) -> float:
        """Multiply-add FLOPs per token of a forward pass (2 per multiply-add): ``layers`` blocks (all
        when None) with attention over ``context`` tokens on average, plus the LM head when
        ``lm_head``. Embedding lookups and norms are not counted: they are not matrix products."""
        q, kv = self.heads * self.head_dim, self.kv_heads * self.head_dim
        per_layer = 2 * (self.hidden * q + 2 * self.hidden * kv + q * self.hidden + 3 * self.hidden * self.intermediate)
        per_layer += 2 * 2 * q * context
        head = 2 * self.hidden * self.vocab if lm_head else 0
        return (self.layers if layers is None else layers) * per_layer + head

    def kv_bytes_per_token(self, element_bytes: int) -> int:
        """Bytes of key/value cache one token holds across every layer."""
        return 2 * self.layers * self.kv_heads * self.head_dim * element_bytes

    def site_width(self, site: str) -> int:
        """Values per token at ``site``: the MLP's intermediate width for its down projection's input."""
        if site not in SITES:
            raise ValueError(f"unknown site {site!r}")
        return self.intermediate if site == "mlp_down_input" else self.hidden
