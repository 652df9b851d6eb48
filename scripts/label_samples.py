"""Snakemake script: label one shard's sampled answers and find their exact answers."""

import functools

import torch

from truthmap import logs
from truthmap.context import context_length
from truthmap.files import read_jsonl, write_jsonl
from truthmap.generation import Sampling, extract_short_answers
from truthmap.models import ModelInfo, load_model
from truthmap.questions import load_questions
from truthmap.resampling import label_samples
from truthmap.settings import ExactAnswerSettings

log = logs.setup(snakemake.log[0], "label_samples")
torch.set_num_threads(snakemake.threads)
cfg = ExactAnswerSettings.given(snakemake.params.exact_answer)


@functools.cache
def extractor():
    """Loaded only when some sample is incorrect, once for every try."""
    info = ModelInfo.read(snakemake.input.extractor)
    return (info, context_length(info.max_positions, info.name, log),
            *load_model(snakemake.input.extractor, dtype=snakemake.params.dtype))


def extract(pairs, seeds):
    """The greedy first try (seeds None), or a sampled retry."""
    info, max_positions, model, tokenizer = extractor()
    sampling = None if seeds is None else Sampling(cfg.temperature, cfg.top_k, seeds)
    log.info("extracting %d short answers with %s (%s)", len(pairs), info.name,
             "greedy" if seeds is None else "a sampled retry")
    return extract_short_answers(
        pairs, model, tokenizer, cfg.max_new_tokens, cfg.batch_size, info.has_chat_template,
        progress=logs.progress_logger(log, "extracted"), max_positions=max_positions, sampling=sampling,
    )


records, saved = label_samples(load_questions(snakemake.input.questions), read_jsonl(snakemake.input.samples),
                               extract, cfg.max_words, cfg.tries, cfg.seed)
write_jsonl(snakemake.output[0], records)
labels = [label for r in records for label in r["labels"]]
log.info("%d samples of %d questions (%d labelled once for repeated texts): %d correct, %d without an exact answer",
         len(labels), len(records), saved, sum(x["correct"] for x in labels),
         sum(x["exact_method"] == "none" for x in labels))
