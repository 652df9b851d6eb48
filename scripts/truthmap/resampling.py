"""Resampled answers: each question answered ``n`` more times by seeded sampling, and their labels.

The samples of a shard decode together: a batch holds ``batch_size`` rows, the
``n`` copies of each question's prompt side by side (a decoding step reads every
weight however few rows it serves, so one question's few samples per step left
the processor mostly idle). Sample k of a question draws from its own generator,
seeded by (seed, question id, k) (:func:`sample_seed`), so the other rows of its
batch reach it only through floating-point rounding of the batched arithmetic, as
for the greedy answers: the samples are the same whatever the shards, the order
of the questions or the batch size (the tests decode them every way and compare).

Labels use the greedy answers' rules (:func:`truthmap.labels.label_shard`):
alias match, then the extractor (with its retries) for a wrong sample.
Identical samples of a question are labelled once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import replace

from truthmap.generation import Sampling, answer_prompts, answer_stops, generate_batched
from truthmap.labels import Extract, Item, label_shard, shard_items
from truthmap.settings import GenerationSettings


def sample_seed(seed: int, qid: str, k: int) -> int:
    """The seed of sample ``k`` of question ``qid``: a stable hash of the run's seed, the id and k."""
    digest = hashlib.blake2b(f"sample\0{seed}\0{qid}\0{k}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def sample_answers(
    questions: Sequence[dict], model, tokenizer, cfg: GenerationSettings, has_chat_template: bool, *,
    n: int, temperature: float, top_p: float, top_k: int, seed: int,
    progress: Callable[[int, int], None] | None = None, max_positions: int | None = None,
) -> list[dict]:
    """``n`` sampled answers to each question: one record per question, in the order given.

    A record holds the prompt ids (those of the greedy answer) and, per sample, its
    generated ids, text and finish reason. Temperature 0 is greedy (allowed with n = 1).
    The samples decode ``cfg.batch_size`` rows at a time, of as many questions as fit.
    """
    from truthmap.positions import decode

    prompts = answer_prompts(questions, tokenizer, cfg, has_chat_template, max_positions)
    eos, stops, pad = answer_stops(model, tokenizer, prompts.style)
    rows = [ids for ids in prompts.ids for _ in range(n)]  # question-major: sample k of question i is row i*n+k
    seeds = [sample_seed(seed, q["id"], k) for q in questions for k in range(n)]
    sampling = None if temperature == 0 else Sampling(temperature, top_k, seeds, top_p)
    outs = generate_batched(model, rows, pad_id=pad, stop_ids=stops, eos=eos, max_new_tokens=cfg.max_new_tokens,
                            batch_size=cfg.batch_size, sampling=sampling,
                            progress=(lambda done, total: progress(done // n, len(questions))) if progress else None)
    return [
        {
            "id": q["id"],
            "prompt_ids": ids,
            "prompt_tokens_cut": prompts.cut[i],
            "samples": [{"gen_ids": o.gen_ids, "text": decode(tokenizer, o.gen_ids),
                         "finish_reason": o.finish_reason} for o in outs[i * n:(i + 1) * n]],
        }
        for i, (q, ids) in enumerate(zip(questions, prompts.ids, strict=True))
    ]


def sample_id(qid: str, k: int) -> str:
    """The id of sample ``k`` of question ``qid`` (its labels, its extraction seeds)."""
    return f"{qid}#{k}"


def distinct_texts(records: Sequence[dict]) -> tuple[list[dict], dict[str, list[int]]]:
    """One pseudo-generation per distinct sample text of each question, and, per pseudo id, the
    indices of the samples that share its text (the first one names it)."""
    generations, members = [], {}
    for record in records:
        first_of: dict[str, str] = {}
        for k, sample in enumerate(record["samples"]):
            text = sample["text"]
            if text not in first_of:
                first_of[text] = sample_id(record["id"], k)
                generations.append({"id": first_of[text], "question_id": record["id"], "text": text})
                members[first_of[text]] = []
            members[first_of[text]].append(k)
    return generations, members


def label_samples(
    questions: Sequence[dict], records: Sequence[dict], extract: Extract, max_words: int | None,
    tries: int = 1, seed: int = 0,
) -> tuple[list[dict], int]:
    """Labels of every sample, one record per question ``{"id", "labels": [label per sample]}``,
    and the number of labellings saved by labelling each distinct text once."""
    generations, members = distinct_texts(records)
    by_id = {q["id"]: q for q in questions}
    missing = sorted({g["question_id"] for g in generations} - set(by_id))
    if missing:
        raise ValueError(f"{len(missing)} sampled questions are not in the shard, e.g. {missing[:3]}")
    items: list[Item] = []
    for g in generations:
        (item,) = shard_items([by_id[g["question_id"]]], [{"id": g["question_id"], "text": g["text"]}])
        items.append(replace(item, id=g["id"]))
    labelled = {label.id: label for label in label_shard(items, extract, max_words, tries, seed)}
    labels_of: dict[str, list] = {r["id"]: [None] * len(r["samples"]) for r in records}
    for g in generations:
        for k in members[g["id"]]:
            labels_of[g["question_id"]][k] = replace(labelled[g["id"]], id=sample_id(g["question_id"], k)).to_dict()
    n_samples = sum(len(r["samples"]) for r in records)
    return [{"id": r["id"], "labels": labels_of[r["id"]]} for r in records], n_samples - len(generations)
