"""Hidden states at chosen positions of chosen layers, batch by batch, into HDF5.

Each batch of (prompt + generation) sequences is right-padded and run through
the transformer body only (no LM head). Forward hooks on the requested sites of
the requested layers copy out just the requested positions; once the deepest
layer's sites are seen, the forward pass stops there. A prefix that a whole batch shares (a chat
template's system prompt) runs once and its key/value cache is reused. Batches
hold sequences of similar length and at most ``batch_tokens`` padded tokens, so
memory does not grow with the dataset, and a background thread writes each
batch to HDF5 while the next one runs.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence

import numpy as np
import torch

from truthmap.batches import Halving, gpu_budget, tokens_that_fit
from truthmap.generation import shared_prefix_len
from truthmap.h5io import WRITE_BUFFER_BYTES, ActivationWriter, dataset_name, site_layers
from truthmap.models import SITE_PARTS, decoder_body, decoder_layers, dtype_name, site_module, site_width
from truthmap.placement import input_device
from truthmap.settings import EMBEDDINGS_LAYER

log = logging.getLogger("truthmap.activations")


class _StopForward(Exception):
    """Raised by the hook on the deepest needed layer to end the forward pass."""


def token_batches(lengths: Sequence[int], batch_tokens: int, window: int | None = None) -> list[list[int]]:
    """Group example indices by similar length so that rows x longest <= batch_tokens.

    With ``window``, examples are grouped only within consecutive runs of ``window`` indices
    (0 to window - 1, then the next ``window``, ...), so that the batches finish one run of rows
    before they start the next: a shard writer that holds less than the shard then writes each
    chunk once (:meth:`truthmap.h5io.ActivationWriter.window_rows`)."""
    step = window or max(len(lengths), 1)
    batches: list[list[int]] = []
    for first in range(0, len(lengths), step):
        batches += _length_batches(lengths, range(first, min(first + step, len(lengths))), batch_tokens)
    return batches


def _length_batches(lengths: Sequence[int], indices: range, batch_tokens: int) -> list[list[int]]:
    """:func:`token_batches` of the examples at ``indices``."""
    order = sorted(indices, key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        width = lengths[i]  # ascending order: the newest is the longest
        if current and (len(current) + 1) * width > batch_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


class PositionCapture:
    """Forward hooks that keep ``value[b, positions[b, p]]`` of chosen layers at chosen sites.

    A site (:data:`truthmap.models.SITE_PARTS`) is the input or the output of a
    part of each decoder block; every site is captured in the same forward pass,
    which ends once the deepest layer's last site has been seen. Layer
    :data:`~truthmap.settings.EMBEDDINGS_LAYER` (-1) is the first block's input,
    whatever the sites: the token embeddings (plus position embeddings where the
    model adds them, as GPT-2 does). Captures are keyed by
    :func:`truthmap.h5io.dataset_name`.
    """

    def __init__(self, model, layers: Sequence[int], sites: Sequence[str], model_name: str = "the model") -> None:
        self.layers = list(layers)
        self.sites = list(sites)
        self.index: torch.Tensor | None = None
        self.masked: torch.Tensor | None = None
        self.captured: dict[str, torch.Tensor] = {}
        blocks = decoder_layers(model)
        self.hidden_size = int(model.config.get_text_config().hidden_size)
        block_layers = [layer for layer in self.layers if layer != EMBEDDINGS_LAYER]
        deepest = max(self.layers)
        self._last = {dataset_name(site, deepest) for site in (self.sites if block_layers else [""])}
        self._seen: set[str] = set()
        self._handles = []
        self.widths: dict[str, int] = {}
        if EMBEDDINGS_LAYER in self.layers:
            self._handles.append(blocks[0].register_forward_pre_hook(
                self._input_hook(dataset_name("", EMBEDDINGS_LAYER)), with_kwargs=True))
        for site in self.sites:
            modules = {layer: site_module(blocks[layer], site, model_name) for layer in block_layers}
            self.widths[site] = (site_width(modules[deepest], site, self.hidden_size) if block_layers
                                 else self.hidden_size)
            for layer, module in modules.items():
                name = dataset_name(site, layer)
                if SITE_PARTS[site][1] == "output":
                    self._handles.append(module.register_forward_hook(self._output_hook(name)))
                else:
                    self._handles.append(module.register_forward_pre_hook(self._input_hook(name), with_kwargs=True))

    def start(self, index: torch.Tensor | None, masked: torch.Tensor | None = None) -> None:
        """Before a forward pass: the positions to keep (None keeps nothing, e.g. for a shared prefix),
        and which of them are masked (B, P) and kept as zeros."""
        self.index, self.masked, self.captured, self._seen = index, masked, {}, set()

    def _keep(self, name: str, hidden: torch.Tensor) -> None:
        if self.index is not None:
            rows = torch.arange(hidden.shape[0], device=hidden.device)[:, None]
            kept = hidden[rows, self.index.to(hidden.device)]  # a new tensor: zeroed in place, on its device
            if self.masked is not None:
                kept.masked_fill_(self.masked.to(hidden.device)[..., None], 0)
            self.captured[name] = kept.to("cpu", torch.float16)
        self._seen.add(name)
        if self._last <= self._seen:
            raise _StopForward

    def _output_hook(self, name: str) -> Callable:
        def hook(module, args, output):
            self._keep(name, output[0] if isinstance(output, tuple) else output)

        return hook

    def _input_hook(self, name: str) -> Callable:
        def hook(module, args, kwargs):
            self._keep(name, args[0] if args else kwargs.get("hidden_states", next(iter(kwargs.values()))))

        return hook

    def names(self) -> list[str]:
        """Every dataset this capture fills."""
        return [dataset_name(site, layer) for site, layer in site_layers(self.sites, self.layers)]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


@torch.inference_mode()
def extract_batch(body, capture: PositionCapture, seqs: Sequence[Sequence[int]], positions: np.ndarray,
                  pad_id: int, device: torch.device, share_prefix: bool = True) -> dict[str, np.ndarray]:
    """Values (B, P, H) per captured (site, layer) for right-padded ``seqs`` at ``positions`` (B, P),
    keyed by :func:`truthmap.h5io.dataset_name`.

    With ``share_prefix``, a prefix that every sequence of the batch shares (a
    chat template's system prompt, few-shot demonstrations) and that holds no
    requested position runs once; its key/value cache is repeated over the
    batch and only the rest of each sequence runs through the layers.
    """
    shared = prefix_to_share(seqs, positions) if share_prefix and max(capture.layers) >= 0 else 0
    past = prefix_cache(body, capture, seqs[0][:shared], len(seqs), device) if shared else None
    rests = [s[shared:] for s in seqs]
    width = max(len(r) for r in rests)
    ids = torch.full((len(rests), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rests), shared + width), dtype=torch.long)
    for row, rest in enumerate(rests):
        ids[row, : len(rest)] = torch.tensor(rest, dtype=torch.long)
        mask[row, : shared + len(rest)] = 1
    position_ids = (shared + torch.arange(width)).expand(len(rests), width)
    capture.start(torch.as_tensor(np.clip(positions - shared, 0, None), dtype=torch.long, device=device),
                  torch.as_tensor(positions < 0, device=device))
    try:
        body(input_ids=ids.to(device), attention_mask=mask.to(device), position_ids=position_ids.to(device),
             past_key_values=past, use_cache=past is not None)
    except _StopForward:
        pass
    missing = set(capture.names()) - set(capture.captured)
    if missing:
        raise RuntimeError(f"{sorted(missing)} were not reached in the forward pass")
    return {name: t.numpy() for name, t in capture.captured.items()}


def prefix_to_share(seqs: Sequence[Sequence[int]], positions: np.ndarray, minimum: int = 8) -> int:
    """Tokens at the start of every sequence that may run once for the batch: the
    common prefix, ending before the first requested position; 0 below ``minimum``."""
    shared = shared_prefix_len(seqs, minimum=1) if len(seqs) > 1 else 0
    requested = positions[positions >= 0]
    if requested.size:
        shared = min(shared, int(requested.min()))
    return shared if shared >= minimum else 0


def prefix_cache(body, capture: PositionCapture, prefix: Sequence[int], copies: int, device: torch.device):
    """The key/value cache of ``prefix``, up to the deepest captured layer, repeated ``copies`` times."""
    from transformers import DynamicCache

    cache = DynamicCache(config=body.config)
    capture.start(None)  # the hooks keep nothing, the deepest one still stops the pass
    try:
        body(input_ids=torch.tensor([list(prefix)], device=device), past_key_values=cache, use_cache=True)
    except _StopForward:
        pass
    cache.batch_repeat_interleave(copies)
    return cache


class BackgroundWrites:
    """Run ``write(*args)`` calls in one background thread, in order, while the caller computes.

    At most ``depth`` calls wait; a failed write is raised at the next
    :meth:`put` or at :meth:`join`, so no error is lost.
    """

    def __init__(self, write: Callable[..., None], depth: int = 2) -> None:
        self._write = write
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="hdf5-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write(*item)
                except BaseException as err:  # noqa: BLE001 (handed to the caller)
                    self._error = err

    def put(self, *args) -> None:
        self._raise()
        self._queue.put(args)

    def join(self) -> None:
        """Wait for every queued write; raise the first failure."""
        self._queue.put(None)
        self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error


def extract_to_h5(
    model,
    out_path: str,
    *,
    ids: Sequence[str],
    seqs: Sequence[Sequence[int]],
    positions: np.ndarray,
    labels: np.ndarray,
    tokens: Sequence[str],
    layers: Sequence[int],
    sites: Sequence[str],
    model_name: str,
    pad_id: int,
    batch_tokens: int,
    share_prefix: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[int]]:
    """Extract every example of a shard and write the HDF5 file atomically; the batches that ran
    (the example indices of each, after any halving).

    Each batch's blocks are written by a background thread while the next
    batch runs through the model.
    """
    device = input_device(model)
    body = decoder_body(model)
    batch_tokens = fitting_batch_tokens(model, batch_tokens)
    capture = PositionCapture(model, layers, sites, model_name)
    try:
        with ActivationWriter(
            out_path, ids=ids, labels=labels, positions=positions, tokens=tokens,
            layers=layers, hidden_size=capture.hidden_size, widths=capture.widths, model=model_name,
            model_dtype=dtype_name(next(model.parameters()).dtype), buffer_bytes=write_buffer_bytes(model),
        ) as writer:
            writes = BackgroundWrites(writer.write)
            ran: list[list[int]] = []
            try:
                done = 0

                def step(part: list[int]) -> dict:
                    return extract_batch(body, capture, [seqs[i] for i in part], positions[part], pad_id, device,
                                         share_prefix)

                batches = token_batches([len(s) for s in seqs], batch_tokens, writer.window_rows())
                for part, blocks in Halving("extraction batch").each(batches, step):
                    writes.put(np.asarray(part), blocks)
                    ran.append(list(part))
                    done += len(part)
                    if progress:
                        progress(done, len(seqs))
            finally:
                writes.join()
    finally:
        capture.remove()
    return ran


def write_buffer_bytes(model) -> int:
    """Blocks the shard's writer holds before writing: 256 MB, or as many bytes as the model's
    weights, which a model job's memory request already allows three times over
    (:func:`truthmap.cluster.model_job_mem_mb`). Each write rewrites every chunk the held rows
    touch (length-sorted batches touch them all), so a shard held whole is written once: a 7B
    model's 14 GB hold a shard of 4,000 questions x 32 layers x 12 tokens x 4,096 features."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return max(WRITE_BUFFER_BYTES, weights)


def fitting_batch_tokens(model, batch_tokens: int) -> int:
    """``batch_tokens``, or on GPUs the fewer tokens whose cache and transient values fit the free
    memory (:func:`truthmap.batches.tokens_that_fit`); a cut is logged."""
    budget = gpu_budget(model)
    if budget is None:
        return batch_tokens
    fitting = tokens_that_fit(*budget, batch_tokens)
    if fitting < batch_tokens:
        log.info("extraction batches of at most %d tokens (of %d configured): what %.1f GiB free memory holds",
                 fitting, batch_tokens, budget[0] / 2**30)
    return fitting


def fit_sequences(seqs: Sequence[Sequence[int]], positions: np.ndarray, max_positions: int | None
                  ) -> tuple[list[list[int]], np.ndarray, list[int]]:
    """(sequences, positions, tokens cut) with every sequence within ``max_positions``.

    Generation leaves room for its answer, so a prompt and its answer always fit
    the model that wrote them; a longer one (generations of another model) loses
    its start, its positions shift with it, and a position that falls in the
    cut part is masked (-1), as for an example without an exact answer.
    """
    out_seqs, out_pos, cuts = [], positions.copy(), []
    for row, seq in enumerate(seqs):
        cut = 0 if max_positions is None else max(0, len(seq) - max_positions)
        out_seqs.append(list(seq[cut:]))
        cuts.append(cut)
        if cut:
            shifted = out_pos[row] - cut
            out_pos[row] = np.where((out_pos[row] < 0) | (shifted < 0), -1, shifted)
    return out_seqs, out_pos, cuts


def shard_inputs(
    generations: Sequence[dict], labels: Sequence[dict], position_rows: Sequence[dict], tokens: Sequence[str]
) -> tuple[list[str], list[list[int]], np.ndarray, np.ndarray]:
    """(ids, fed ids, positions (N, P), labels with 1 = wrong) of one shard, aligned by id."""
    by_id_label = {r["id"]: r for r in labels}
    by_id_pos = {str(r["id"]): r for r in position_rows}
    ids, seqs, pos, y = [], [], [], []
    for gen in generations:
        qid = gen["id"]
        if qid not in by_id_label or qid not in by_id_pos:
            raise ValueError(f"example {qid!r} lacks a label or a positions row")
        row = by_id_pos[qid]
        seq = list(gen["prompt_ids"]) + list(gen["gen_ids"])
        idx = [int(row[t]) for t in tokens]
        if any(i >= len(seq) for i in idx):
            raise ValueError(f"example {qid!r}: a position is beyond its {len(seq)} tokens")
        ids.append(qid)
        seqs.append(seq)
        pos.append(idx)
        y.append(0 if by_id_label[qid]["correct"] else 1)
    return ids, seqs, np.asarray(pos, dtype=np.int64).reshape(len(ids), len(tokens)), np.asarray(y, dtype=np.int8)
