"""Snakemake script: label one shard's answers and find their exact answers."""

import functools

import torch

from truthmap import logs
from truthmap.context import context_length, log_cuts
from truthmap.files import read_jsonl, write_jsonl
from truthmap.generation import Sampling, extract_short_answers
from truthmap.labels import label_shard, shard_items
from truthmap.models import ModelInfo, load_model
from truthmap.questions import load_questions
from truthmap.settings import ExactAnswerSettings

log = logs.setup(snakemake.log[0], "label_answers")
torch.set_num_threads(snakemake.threads)
cfg = ExactAnswerSettings.given(snakemake.params.exact_answer)
items = shard_items(load_questions(snakemake.input.questions), read_jsonl(snakemake.input.generations))


@functools.cache
def extractor():
    """Loaded only when some answer is incorrect, once for every try."""
    info = ModelInfo.read(snakemake.input.extractor)
    context[info.name] = context_length(info.max_positions, info.name, log)
    return (info, *load_model(snakemake.input.extractor, dtype=snakemake.params.dtype))


def extract(pairs, seeds):
    """The greedy first try (seeds None), or a sampled retry."""
    info, model, tokenizer = extractor()
    sampling = None if seeds is None else Sampling(cfg.temperature, cfg.top_k, seeds)
    log.info("extracting %d short answers with %s (%s)", len(pairs), info.name,
             "greedy" if seeds is None else "a sampled retry")
    return extract_short_answers(
        pairs, model, tokenizer, cfg.max_new_tokens, cfg.batch_size, info.has_chat_template,
        progress=logs.progress_logger(log, "extracted"), max_positions=context[info.name], sampling=sampling,
    )


context = {}
labels = label_shard(items, extract, cfg.max_words, cfg.tries, cfg.seed)
for name, max_positions in context.items():
    log_cuts(log, f"{name}'s extraction", {x.id: x.extractor_prompt_cut for x in labels}, max_positions)
write_jsonl(snakemake.output[0], [label.to_dict() for label in labels])
log.info("%d answers, %d correct, %d without an exact answer, %d found by a retry", len(labels),
         sum(x.correct for x in labels), sum(x.exact_method == "none" for x in labels),
         sum(x.exact_method == "extracted" and x.extraction_tries > 1 for x in labels))
