"""Snakemake script: label one shard's answers and find their exact answers."""

import torch

from truthmap import logs
from truthmap.context import log_cuts
from truthmap.extraction import LazyExtractor
from truthmap.files import read_jsonl, write_jsonl
from truthmap.labels import label_shard, shard_items
from truthmap.questions import load_questions
from truthmap.settings import ExactAnswerSettings
from truthmap.work import write_work

log = logs.setup(snakemake.log[0], "label_answers")
torch.set_num_threads(snakemake.threads)
cfg = ExactAnswerSettings.given(snakemake.params.exact_answer)
items = shard_items(load_questions(snakemake.input.questions), read_jsonl(snakemake.input.generations))
extract = LazyExtractor(snakemake.input.extractor, snakemake.params.device_map, snakemake.params.dtype, cfg, log)
labels = label_shard(items, extract, cfg.max_words, cfg.tries, cfg.seed)
if extract.loaded:
    name, max_positions = extract.name_and_context
    log_cuts(log, f"{name}'s extraction", {x.id: x.extractor_prompt_cut for x in labels}, max_positions)
write_jsonl(snakemake.output[0], [label.to_dict() for label in labels])
write_work(snakemake.log.work, extract.work)
log.info("%d answers, %d correct, %d without an exact answer, %d found by a retry", len(labels),
         sum(x.correct for x in labels), sum(x.exact_method == "none" for x in labels),
         sum(x.exact_method == "extracted" and x.extraction_tries > 1 for x in labels))
