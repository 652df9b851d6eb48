"""Snakemake script: n sampled answers to each question of one shard."""

import torch

from truthmap import logs
from truthmap.context import context_length
from truthmap.files import write_jsonl
from truthmap.models import ModelInfo, load_model
from truthmap.questions import load_questions
from truthmap.resampling import sample_answers
from truthmap.settings import GenerationSettings, ResamplingSettings
from truthmap.work import WorkMeter, write_work

log = logs.setup(snakemake.log[0], "resample_answers")
torch.set_num_threads(snakemake.threads)
gen = GenerationSettings.given(snakemake.params.generation)
cfg = ResamplingSettings.given(snakemake.params.resampling)
info = ModelInfo.read(snakemake.input.model)
model, tokenizer = load_model(snakemake.input.model, snakemake.params.device_map, snakemake.params.dtype)
log.info("model %s on %s; %d samples per question at temperature %s, top_k %d, top_p %s",
         info.name, next(model.parameters()).device, cfg.n, cfg.temperature, cfg.top_k, cfg.top_p)
with WorkMeter(model) as work:
    records = sample_answers(
        load_questions(snakemake.input.questions), model, tokenizer, gen, info.has_chat_template,
        n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k, seed=cfg.seed,
        progress=logs.progress_logger(log, "questions resampled"),
        max_positions=context_length(info.max_positions, info.name, log),
    )
write_work(snakemake.log.work, work, n=cfg.n)
write_jsonl(snakemake.output[0], records)
distinct = sum(len({s["text"] for s in r["samples"]}) for r in records)
log.info("wrote %d samples of %d questions (%d distinct answers)", cfg.n * len(records), len(records), distinct)
