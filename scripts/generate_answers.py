"""Snakemake script: greedy answers to one shard of questions."""

import torch

from truthmap import logs
from truthmap.context import context_length, log_cuts
from truthmap.files import write_jsonl
from truthmap.generation import answer_questions
from truthmap.models import ModelInfo, load_model
from truthmap.questions import load_questions
from truthmap.settings import GenerationSettings
from truthmap.work import WorkMeter, write_work

log = logs.setup(snakemake.log[0], "generate_answers")
torch.set_num_threads(snakemake.threads)
cfg = GenerationSettings.given(snakemake.params.generation)
info = ModelInfo.read(snakemake.input.model)
model, tokenizer = load_model(snakemake.input.model, snakemake.params.device_map, snakemake.params.dtype)
log.info("model %s on %s", info.name, next(model.parameters()).device)
questions = load_questions(snakemake.input.questions)
with WorkMeter(model) as work:
    records = answer_questions(
        questions, model, tokenizer, cfg, info.has_chat_template,
        progress=logs.progress_logger(log, "generated"),
        max_positions=context_length(info.max_positions, info.name, log),
    )
write_work(snakemake.log.work, work, batch_size=cfg.batch_size)
log_cuts(log, "answer", {r["id"]: f"{r['prompt_tokens_cut']} prompt tokens cut from the start"
                          for r in records if r["prompt_tokens_cut"]}, info.max_positions)
write_jsonl(snakemake.output[0], records)
log.info("wrote %d answers", len(records))
