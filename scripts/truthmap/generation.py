"""Batched decoding that keeps each chosen token's log-probability and logit.

Prompts are sorted by length and decoded in batches with left padding and a KV
cache. A sequence stops at an end-of-sequence id, at a stop id (a newline for
plain-style prompts) or after ``max_new_tokens``; a stopped sequence leaves the
batch (its rows of the KV cache are dropped), so the steps after it cost only
the sequences still decoding. Decoding is greedy unless a :class:`Sampling` is given
(the exact-answer extraction's retries): then each prompt draws its tokens from
its own seeded generator, so its continuation does not depend on which prompts
share its batch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import torch

from truthmap.batches import Halving, gpu_budget, rows_that_fit
from truthmap.context import fit_context, prompt_room
from truthmap.placement import input_device
from truthmap.prefix_attention import SharedPrefix, check_attended, shared_prefix_attention, supports_shared_prefix
from truthmap.settings import GenerationSettings

FinishReason = Literal["eos", "stop", "length"]


@dataclass(frozen=True)
class Sampling:
    """Seeded sampling in place of the greedy choice."""

    temperature: float
    top_k: int
    """Draw among this many most likely tokens."""
    seeds: Sequence[int]
    """One seed per prompt, in the prompts' order."""
    top_p: float = 1.0
    """Then among the most likely of those whose probabilities reach this sum (1.0: all of them)."""


@dataclass(frozen=True)
class Generation:
    """One continuation."""

    gen_ids: list[int]
    """Generated ids, the final end-of-sequence or stop token included."""
    logprobs: list[float]
    """log P(chosen token) at each step."""
    logits: list[float]
    """The raw logit of the chosen token at each step."""
    finish_reason: FinishReason


def eos_ids(model, tokenizer) -> set[int]:
    """Every id that ends a sequence: the tokenizer's and the generation config's."""
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif value is not None:
            ids.update(int(v) for v in value)
    return ids


def newline_ids(tokenizer) -> set[int]:
    """Ids whose text contains a newline (used to stop plain-style answers)."""
    vocab_size = len(tokenizer)
    texts = tokenizer.batch_decode([[i] for i in range(vocab_size)])
    return {i for i, text in enumerate(texts) if "\n" in text}


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def generate_batched(
    model,
    prompts: Sequence[Sequence[int]],
    *,
    pad_id: int,
    stop_ids: set[int],
    eos: set[int],
    max_new_tokens: int,
    batch_size: int,
    progress: Callable[[int, int], None] | None = None,
    sampling: Sampling | None = None,
    share_prefix: bool = True,
    compact: bool = True,
    prefix_once: bool = True,
) -> list[Generation]:
    """Greedy continuations of ``prompts`` (token ids), in the order given; sampled ones with ``sampling``.

    ``share_prefix=False`` runs every prompt whole even where a batch shares a prefix,
    ``prefix_once=False`` repeats a shared prefix's KV cache over the batch's rows, and
    ``compact=False`` keeps stopped sequences in the batch until all have stopped (what the
    benchmarks compare with)."""
    if sampling is not None and len(sampling.seeds) != len(prompts):
        raise ValueError(f"{len(sampling.seeds)} seeds for {len(prompts)} prompts")
    results: list[Generation | None] = [None] * len(prompts)
    if not prompts:
        return []
    batch_size = decoding_rows(model, prompts, max_new_tokens, batch_size)

    def step(part: list[int]) -> list[Generation]:
        return _generate_batch(model, [prompts[i] for i in part], pad_id, stop_ids, eos, max_new_tokens,
                               _picker(sampling, part), share_prefix, compact, prefix_once)

    done = 0
    batches = length_batches([len(p) for p in prompts], batch_size)
    for part, outs in Halving("decoding batch").each(batches, step):
        for i, out in zip(part, outs):
            results[i] = out
        done += len(part)
        if progress:
            progress(done, len(prompts))
    return results  # type: ignore[return-value]


def decoding_rows(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, batch_size: int) -> int:
    """``batch_size``, or on a GPU the fewer rows whose cache fits its free memory
    (:func:`truthmap.batches.rows_that_fit`, for the longest prompt)."""
    budget = gpu_budget(model)
    if budget is None:
        return batch_size
    return rows_that_fit(*budget, max(len(p) for p in prompts) + max_new_tokens, batch_size)


def shared_prefix_len(prompts: Sequence[Sequence[int]], minimum: int = 8) -> int:
    """Length of the prefix all prompts share, leaving each at least one own token.

    Below ``minimum`` tokens sharing is not worth a separate forward pass: 0.
    """
    first = prompts[0]
    n = min(len(p) for p in prompts) - 1
    for prompt in prompts[1:]:
        k = 0
        while k < n and prompt[k] == first[k]:
            k += 1
        n = k
    return n if n >= minimum else 0


def sample_tokens(logits: torch.Tensor, generators: Sequence[torch.Generator], temperature: float,
                  top_k: int, top_p: float = 1.0) -> torch.Tensor:
    """One token per row of ``logits``, drawn among its ``top_k`` most likely at ``temperature``,
    then among the fewest of those whose probabilities reach ``top_p`` (the most likely always stays).

    Row r draws from ``generators[r]`` alone (CPU generators: the draw is the same on any device).
    """
    values, ids = logits.float().topk(min(top_k, logits.shape[-1]), dim=-1)
    probs = torch.softmax(values / temperature, dim=-1).cpu()
    if top_p < 1.0:
        before = probs.cumsum(-1) - probs  # mass of the more likely tokens
        probs = torch.where(before < top_p, probs, torch.zeros_like(probs))
        probs = probs / probs.sum(-1, keepdim=True)
    drawn = torch.stack([torch.multinomial(probs[r], 1, generator=g) for r, g in enumerate(generators)])
    return ids.gather(-1, drawn.to(ids.device))[:, 0]


def _picker(sampling: Sampling | None, batch: Sequence[int]) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """How a batch chooses its next tokens: argmax, or each prompt's own seeded draw.

    The picker gets the logits of the rows still decoding and their rows in ``batch``."""
    if sampling is None:
        return lambda logits, rows: logits.argmax(-1)
    generators = [torch.Generator().manual_seed(int(sampling.seeds[i])) for i in batch]
    return lambda logits, rows: sample_tokens(logits, [generators[r] for r in rows.tolist()], sampling.temperature,
                                              sampling.top_k, sampling.top_p)


@torch.inference_mode()
def _generate_batch(model, prompts, pad_id, stop_ids, eos, max_new_tokens, pick, share_prefix=True,
                    compact=True, prefix_once=True) -> list[Generation]:
    """Decode one batch. A prefix shared by all prompts (chat template, few-shot
    demonstrations) is run once, and its KV cache is held once for the batch where the
    model's attention allows (``prefix_once``), else repeated over the rows; the rest is
    left-padded behind it, with position ids that skip the padding."""
    device = input_device(model)
    shared = shared_prefix_len(prompts) if share_prefix else 0
    firsts, expand = distinct_rows([p[shared:] for p in prompts])
    past, held = None, {}
    if shared:
        prefix = torch.tensor([list(prompts[0][:shared])], dtype=torch.long, device=device)
        past = model(input_ids=prefix, use_cache=True, logits_to_keep=1).past_key_values
        if prefix_once and supports_shared_prefix(model):
            held = {"shared_prefix": SharedPrefix.from_cache(past)}
            past = None
        else:
            past.batch_repeat_interleave(len(firsts))
    with shared_prefix_attention(model) if held else contextlib.nullcontext():
        return _decode(model, [prompts[i] for i in firsts], expand, shared, past, held, pad_id, stop_ids, eos,
                       max_new_tokens, pick, compact)


def distinct_rows(prompts: Sequence[Sequence[int]]) -> tuple[list[int], list[int]]:
    """(the first row of each distinct prompt, each row's place among those firsts)."""
    place: dict[tuple[int, ...], int] = {}
    firsts: list[int] = []
    expand = []
    for row, prompt in enumerate(prompts):
        key = tuple(prompt)
        if key not in place:
            place[key] = len(firsts)
            firsts.append(row)
        expand.append(place[key])
    return firsts, expand


def _decode(model, distinct, expand, shared, past, held, pad_id, stop_ids, eos, max_new_tokens, pick, compact):
    """Decode a batch behind its ``shared`` first tokens: in ``past`` repeated over the rows, or
    ``held`` once (:mod:`truthmap.prefix_attention`), when ``past`` is None.

    The batch's rows are ``distinct[expand[row]]``: a prompt that several rows share (an answer's
    sampled tries, a question's resampled answers) runs its prompt once, then its cache and
    next-token logits are copied to each of its rows before their first token is picked."""
    device = input_device(model)
    rests = [list(p[shared:]) for p in distinct]
    width = max(len(r) for r in rests)
    input_ids = torch.full((len(distinct), width), pad_id, dtype=torch.long)
    own = torch.zeros((len(distinct), width), dtype=torch.long)
    for row, rest in enumerate(rests):
        input_ids[row, width - len(rest) :] = torch.tensor(rest, dtype=torch.long)
        own[row, width - len(rest) :] = 1
    input_ids, own = input_ids.to(device), own.to(device)
    positions = shared + (own.cumsum(-1) - 1).clamp(min=0)
    cached = 0 if held else shared  # prefix columns in the rows' own cache and mask
    mask = torch.cat([torch.ones((len(distinct), cached), dtype=torch.long, device=device), own], dim=1)

    n = len(expand)
    chosen = torch.zeros((n, max_new_tokens), dtype=torch.long)
    logprobs = torch.zeros((n, max_new_tokens), dtype=torch.float32)
    logits_out = torch.zeros((n, max_new_tokens), dtype=torch.float32)
    lengths = torch.full((n,), max_new_tokens, dtype=torch.long)
    reasons: list[FinishReason] = ["length"] * n
    stop_all = torch.tensor(sorted(stop_ids | eos), dtype=torch.long, device=device)
    eos_t = torch.tensor(sorted(eos), dtype=torch.long, device=device)

    rows = torch.arange(n)  # the batch rows still decoding; finished ones leave the batch
    finished = torch.zeros(n, dtype=torch.bool)  # of ``rows`` (always False when compacting)
    step_ids, step_pos = input_ids, positions
    for step in range(max_new_tokens):
        out = model(
            input_ids=step_ids,
            attention_mask=mask,
            position_ids=step_pos,
            past_key_values=past,
            use_cache=True,
            logits_to_keep=1,
            **held,
        )
        past = out.past_key_values
        if held and step == 0:
            check_attended(held["shared_prefix"])
        logits = out.logits[:, -1, :].float()
        if step == 0 and len(distinct) < n:
            copies = torch.tensor(expand, dtype=torch.long, device=device)
            past.batch_select_indices(copies)
            logits, mask, step_pos = logits[copies], mask[copies], step_pos[copies]
        token = pick(logits, rows)
        logprob = torch.log_softmax(logits, -1).gather(-1, token[:, None])[:, 0]
        chosen[rows, step] = token.cpu()
        logprobs[rows, step] = logprob.cpu()
        logits_out[rows, step] = logits.gather(-1, token[:, None])[:, 0].cpu()

        stops = torch.isin(token, stop_all).cpu() & ~finished
        for i in torch.nonzero(stops).flatten().tolist():
            lengths[rows[i]] = step + 1
            reasons[int(rows[i])] = "eos" if bool(torch.isin(token[i], eos_t)) else "stop"
        finished |= stops
        if bool(finished.all()):
            break
        step_pos = step_pos[:, -1:] + 1
        mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=mask.dtype, device=device)], dim=1)
        if compact and bool(stops.any()):
            keep = torch.nonzero(~stops).flatten()
            rows, token, finished = rows[keep], token[keep.to(device)], finished[keep]
            past.batch_select_indices(keep.to(device))
            mask, step_pos = mask[keep.to(device)], step_pos[keep.to(device)]
        step_ids = token[:, None]

    return [
        Generation(
            gen_ids=chosen[row, : lengths[row]].tolist(),
            logprobs=logprobs[row, : lengths[row]].tolist(),
            logits=logits_out[row, : lengths[row]].tolist(),
            finish_reason=reasons[row],
        )
        for row in range(n)
    ]


@dataclass(frozen=True)
class AnswerPrompts:
    """The prompts of a batch of questions, as the model gets them."""

    style: Literal["chat", "plain"]
    texts: list[str]
    ids: list[list[int]]
    """Token ids, cut at the start where the model's context needs it."""
    cut: list[int]
    """Tokens cut from each prompt's start."""


def answer_prompts(
    questions: Sequence[dict], tokenizer, cfg: GenerationSettings, has_chat_template: bool,
    max_positions: int | None = None,
) -> AnswerPrompts:
    """Each question's prompt text and ids in the configured style, fitted to the model's context."""
    from truthmap.prompts import answer_prompt_text, encode_prompt, resolve_style

    style = resolve_style(cfg.prompt_style, has_chat_template)
    texts = [answer_prompt_text(tokenizer, q, cfg, style) for q in questions]
    fitted = [fit_context(encode_prompt(tokenizer, t, style), max_positions, cfg.max_new_tokens) for t in texts]
    return AnswerPrompts(style, texts, [ids for ids, _ in fitted], [cut for _, cut in fitted])


def answer_stops(model, tokenizer, style: Literal["chat", "plain"]) -> tuple[set[int], set[int], int]:
    """(end-of-sequence ids, stop ids, pad id) of an answer: a plain-style answer also stops at a newline."""
    eos = eos_ids(model, tokenizer)
    stops = newline_ids(tokenizer) - eos if style == "plain" else set()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
    return eos, stops, pad


def answer_questions(
    questions: Sequence[dict],
    model,
    tokenizer,
    cfg: GenerationSettings,
    has_chat_template: bool,
    progress: Callable[[int, int], None] | None = None,
    max_positions: int | None = None,
) -> list[dict]:
    """Greedy answers to question records, as generation records (one per question).

    Each record keeps the exact prompt ids and generated ids fed to the model
    later, the decoded text, and per-token log-probabilities and logits. A
    prompt too long for the model's context (``max_positions``) loses its
    start; ``prompt_tokens_cut`` records how many tokens.
    """
    from truthmap.models import dtype_name
    from truthmap.positions import decode

    dtype = dtype_name(next(model.parameters()).dtype)
    prompts = answer_prompts(questions, tokenizer, cfg, has_chat_template, max_positions)
    style = prompts.style
    eos, stops, pad = answer_stops(model, tokenizer, style)
    outs = generate_batched(
        model, prompts.ids, pad_id=pad, stop_ids=stops, eos=eos,
        max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, progress=progress,
    )
    return [
        {
            "id": q["id"],
            "question": q["question"],
            "domain": (q.get("meta") or {}).get("domain", ""),
            "prompt_style": style,
            "prompt": text,
            "prompt_ids": ids,
            "prompt_tokens_cut": cut,
            "gen_ids": out.gen_ids,
            "text": decode(tokenizer, out.gen_ids),
            "logprobs": out.logprobs,
            "logits": out.logits,
            "finish_reason": out.finish_reason,
            "dtype": dtype,
        }
        for q, text, ids, cut, out in zip(questions, prompts.texts, prompts.ids, prompts.cut, outs, strict=True)
    ]


def extract_short_answers(
    pairs: Sequence[tuple[str, str]],
    model,
    tokenizer,
    max_new_tokens: int,
    batch_size: int,
    has_chat_template: bool,
    progress: Callable[[int, int], None] | None = None,
    max_positions: int | None = None,
    sampling: Sampling | None = None,
) -> list[tuple[str | None, str]]:
    """(the extractor's raw reply, what its prompt lost) for (question, long answer) pairs.

    A prompt longer than the extractor's context allows (``max_positions`` less
    ``max_new_tokens``) drops demonstrations, then the question's start; one that
    cannot fit at all is not fed: its reply is None and the note says why.
    Greedy, or sampled with ``sampling`` (one seed per pair).
    """
    from truthmap.positions import decode
    from truthmap.prompts import extraction_prompt_ids

    style = "chat" if has_chat_template else "plain"
    room = prompt_room(max_positions, max_new_tokens, "exact_answer.max_new_tokens")
    fits = [extraction_prompt_ids(tokenizer, q, a, style, room) for q, a in pairs]
    fed = [i for i, fit in enumerate(fits) if fit.ids is not None]
    eos = eos_ids(model, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
    fed_sampling = None if sampling is None else replace(sampling, seeds=[sampling.seeds[i] for i in fed])
    outs = generate_batched(
        model, [fits[i].ids for i in fed], pad_id=pad, stop_ids=newline_ids(tokenizer) - eos, eos=eos,
        max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress, sampling=fed_sampling,
    ) if fed else []
    replies: list[str | None] = [None] * len(pairs)
    for i, out in zip(fed, outs, strict=True):
        replies[i] = decode(tokenizer, out.gen_ids)
    return [(reply, fit.note) for reply, fit in zip(replies, fits, strict=True)]


@torch.inference_mode()
def next_token_logits(
    model, prompts: Sequence[Sequence[int]], token_ids: Sequence[int], *, pad_id: int, batch_size: int
) -> np.ndarray:
    """The logits of ``token_ids`` as the next token after each prompt: (len(prompts), len(token_ids))."""
    device = input_device(model)
    wanted = torch.tensor(list(token_ids), dtype=torch.long, device=device)
    out = np.zeros((len(prompts), len(token_ids)), dtype=np.float32)

    def step(batch: list[int]) -> np.ndarray:
        width = max(len(prompts[i]) for i in batch)
        ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, width - len(prompts[i]) :] = torch.tensor(list(prompts[i]), dtype=torch.long)
            mask[row, width - len(prompts[i]) :] = 1
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1).logits
        return logits[:, -1, :].float().index_select(-1, wanted).cpu().numpy()

    batches = length_batches([len(p) for p in prompts], batch_size)
    for part, values in Halving("scoring batch").each(batches, step):
        out[part] = values
    return out


def common_stem(branches: Sequence[Sequence[int]]) -> int:
    """Length of the prefix every sequence of ``branches`` shares, leaving each at least one own token."""
    return shared_prefix_len(branches, minimum=0)


@torch.inference_mode()
def branch_logits(
    model, items: Sequence[Sequence[Sequence[int]]], token_ids: Sequence[int], *, pad_id: int, batch_size: int
) -> np.ndarray:
    """The logits of ``token_ids`` as the next token after each of an item's k sequences:
    (len(items), k, len(token_ids)).

    The k sequences of an item (P(True)'s two option orders of one question and answer) share
    a stem, run once: its KV cache is repeated over the k branches, which then run their own
    ends, left-padded behind the stem so that every branch ends in the last column and the LM
    head runs there only. ``batch_size`` counts items.
    """
    device = input_device(model)
    wanted = torch.tensor(list(token_ids), dtype=torch.long, device=device)
    k = len(items[0]) if items else 0
    out = np.zeros((len(items), k, len(token_ids)), dtype=np.float32)
    stems = [common_stem(seqs) for seqs in items]

    def step(batch: list[int]) -> np.ndarray:
        n = len(batch)
        width = max(stems[i] for i in batch)
        stem_ids = torch.full((n, width), pad_id, dtype=torch.long)
        stem_mask = torch.zeros((n, width), dtype=torch.long)
        ends = [[list(seq[stems[i]:]) for seq in items[i]] for i in batch]
        tail = max(len(end) for row in ends for end in row)
        end_ids = torch.full((n * k, tail), pad_id, dtype=torch.long)
        end_mask = torch.zeros((n * k, tail), dtype=torch.long)
        for row, i in enumerate(batch):
            stem = list(items[i][0][: stems[i]])
            if stem:
                stem_ids[row, width - len(stem):] = torch.tensor(stem, dtype=torch.long)
                stem_mask[row, width - len(stem):] = 1
            for j, end in enumerate(ends[row]):
                end_ids[row * k + j, tail - len(end):] = torch.tensor(end, dtype=torch.long)
                end_mask[row * k + j, tail - len(end):] = 1
        stem_ids, stem_mask = stem_ids.to(device), stem_mask.to(device)
        end_ids, end_mask = end_ids.to(device), end_mask.to(device)
        past = None
        if width:
            positions = (stem_mask.cumsum(-1) - 1).clamp(min=0)
            past = model(input_ids=stem_ids, attention_mask=stem_mask, position_ids=positions, use_cache=True,
                         logits_to_keep=1).past_key_values
            past.batch_repeat_interleave(k)
        stem_mask = stem_mask.repeat_interleave(k, dim=0)
        positions = stem_mask.sum(-1, keepdim=True) + (end_mask.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([stem_mask, end_mask], dim=1)
        logits = model(input_ids=end_ids, attention_mask=mask, position_ids=positions, past_key_values=past,
                       use_cache=past is not None, logits_to_keep=1).logits
        chosen = logits[:, -1].float().index_select(-1, wanted)
        return chosen.reshape(n, k, -1).cpu().numpy()

    for part, values in Halving("scoring batch").each(length_batches(stems, batch_size), step):
        out[part] = values
    return out
