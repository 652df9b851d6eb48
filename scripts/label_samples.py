"""Snakemake script: label one shard's sampled answers and find their exact answers."""

import torch

from truthmap import logs
from truthmap.extraction import LazyExtractor
from truthmap.files import read_jsonl, write_jsonl
from truthmap.questions import load_questions
from truthmap.resampling import label_samples
from truthmap.settings import ExactAnswerSettings
from truthmap.work import write_work

log = logs.setup(snakemake.log[0], "label_samples")
torch.set_num_threads(snakemake.threads)
cfg = ExactAnswerSettings.given(snakemake.params.exact_answer)
extract = LazyExtractor(snakemake.input.extractor, snakemake.params.device_map, snakemake.params.dtype, cfg, log)
records, saved = label_samples(load_questions(snakemake.input.questions), read_jsonl(snakemake.input.samples),
                               extract, cfg.max_words, cfg.tries, cfg.seed)
write_jsonl(snakemake.output[0], records)
write_work(snakemake.log.work, extract.work)
labels = [label for r in records for label in r["labels"]]
log.info("%d samples of %d questions (%d labelled once for repeated texts): %d correct, %d without an exact answer",
         len(labels), len(records), saved, sum(x["correct"] for x in labels),
         sum(x["exact_method"] == "none" for x in labels))
