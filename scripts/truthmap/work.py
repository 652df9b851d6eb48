"""The matrix-multiply FLOPs a model stage's forward passes do, counted as they run.

:class:`WorkMeter` hooks a loaded model and adds up, per forward call, the
work of the tokens the call really feeds: padding columns (masked out by the
attention mask) are not counted, so padding is waste that shows as a lower MFU.

- each decoder block that runs counts ``2 x (its Linear weights)`` per real
  token, plus ``4 x (query width) x (keys it attends to)`` for the two attention
  products; a pass cut after a layer (extraction) counts only the blocks it ran;
- the LM head counts ``2 x hidden x vocab`` per real row it projects (every real
  token, or one per prompt with ``logits_to_keep=1``).

A decode step of a row that already stopped still counts: the stage fed it.
Embedding lookups, norms and softmax are not matrix products and are left out,
as is any sliding-window cap on attention (Gemma's local layers attend to at
most their window; the contexts here are shorter). The counts go to a small
JSON file per job (:func:`write_work`), joined with the jobs' wall times by
:mod:`truthmap.efficiency`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from truthmap.files import write_json


@dataclass
class Work:
    """Work counted over one job's forward passes."""

    flops: float = 0.0
    tokens: int = 0
    """Real (unpadded) tokens fed to the decoder body, over every call."""
    padded_tokens: int = 0
    """Tokens the body computed, padding included."""
    calls: int = 0
    model_seconds: float = 0.0
    """Wall time inside the meter's ``with`` block: the model work without loading and writing."""
    dtype: str = ""
    device: str = ""
    threads: int = 0
    """CPU threads torch computed with (0 on a GPU): the peak a job is measured against is that
    of the cores it had, not of the whole machine."""


@dataclass
class _Call:
    real: int = 0
    width: int = 0
    context: float = 0.0
    """Keys attended to, summed over the call's real tokens."""


def linear_weights(module) -> int:
    """Weights of every matrix product in ``module`` (torch Linear and GPT-2 style Conv1D)."""
    total = 0
    for sub in module.modules():
        weight = getattr(sub, "weight", None)
        if weight is not None and weight.dim() == 2 and type(sub).__name__ in ("Linear", "Conv1D"):
            total += weight.numel()
    return total


def query_width(config) -> int:
    """Heads x head size: the width of each attention product per token."""
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = cfg.num_attention_heads
    return heads * (getattr(cfg, "head_dim", None) or cfg.hidden_size // heads)


def call_tokens(input_shape: tuple[int, int], attention_mask, past: int) -> _Call:
    """Real tokens of a (B, T) call and the keys each attends to (causal, under the 2-D mask)."""
    rows, width = input_shape
    if attention_mask is None or attention_mask.dim() != 2:
        per_row = width * past + width * (width + 1) / 2
        return _Call(real=rows * width, width=width, context=rows * per_row)
    mask = attention_mask.long()
    keys = mask.cumsum(-1)[:, -width:]
    own = mask[:, -width:]
    return _Call(real=int(own.sum()), width=width, context=float((keys * own).sum()))


@dataclass
class WorkMeter:
    """``with WorkMeter(model) as work: ...`` counts the work of every forward pass inside."""

    model: object
    work: Work = field(default_factory=Work)
    _call: _Call = field(default_factory=_Call)
    _handles: list = field(default_factory=list)
    _started: float = 0.0

    def __enter__(self) -> Work:
        import torch

        from truthmap.models import decoder_body, decoder_layers

        model = self.model
        body = decoder_body(model)
        q = query_width(model.config)
        param = next(model.parameters())
        self.work.dtype, self.work.device = str(param.dtype).removeprefix("torch."), param.device.type
        self.work.threads = torch.get_num_threads() if param.device.type == "cpu" else 0
        self._handles.append(body.register_forward_pre_hook(self._on_body, with_kwargs=True))
        for block in decoder_layers(model):
            per_token = 2.0 * linear_weights(block)
            self._handles.append(block.register_forward_pre_hook(self._block_hook(per_token, q)))
        head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        if head is not None:
            self._handles.append(head.register_forward_pre_hook(self._head_hook(2.0 * head.weight.numel())))
        self._started = time.perf_counter()
        return self.work

    def __exit__(self, *exc) -> None:
        self.work.model_seconds += time.perf_counter() - self._started
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _on_body(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is None:
            ids = kwargs["inputs_embeds"]
        past = kwargs.get("past_key_values")
        past_len = int(past.get_seq_length()) if past is not None and hasattr(past, "get_seq_length") else 0
        rows, width = ids.shape[0], ids.shape[1]
        self._call = call_tokens((rows, width), kwargs.get("attention_mask"), past_len)
        self.work.tokens += self._call.real
        self.work.padded_tokens += rows * width
        self.work.calls += 1

    def _block_hook(self, per_token: float, q: int):
        def hook(module, args) -> None:
            self.work.flops += per_token * self._call.real + 4.0 * q * self._call.context
        return hook

    def _head_hook(self, per_row: float):
        def hook(module, args) -> None:
            hidden = args[0]
            full = hidden.dim() == 3 and hidden.shape[1] == self._call.width
            rows = self._call.real if full else hidden.numel() // hidden.shape[-1]
            self.work.flops += per_row * rows
        return hook


def write_work(path: str | Path, work: Work, **extra) -> None:
    """The job's counted work as JSON (``extra``: what the stage adds, e.g. its batch size)."""
    write_json(path, {**asdict(work), **extra})
