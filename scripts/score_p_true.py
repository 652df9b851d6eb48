"""Snakemake script: P(True) log-odds of one shard's test questions and sampled training questions."""

import torch

from truthmap import logs
from truthmap.context import context_length, log_cuts
from truthmap.files import read_jsonl, read_tsv, write_tsv
from truthmap.models import ModelInfo, load_model
from truthmap.settings import DetectorSettings, SplitSettings
from truthmap.ptrue import P_TRUE_COLUMNS, questions_to_score, score_shard
from truthmap.work import WorkMeter, write_work

log = logs.setup(snakemake.log[0], "score_p_true")
torch.set_num_threads(snakemake.threads)
cfg = DetectorSettings.given(snakemake.params.detectors)
split = SplitSettings.given(snakemake.params.split)
wanted = questions_to_score(read_tsv(snakemake.input.split), cfg.p_true_train_questions, split.seed)
generations = read_jsonl(snakemake.input.generations)
info = ModelInfo.read(snakemake.input.model)
context = context_length(info.max_positions, info.name, log)
model, tokenizer = load_model(snakemake.input.model, snakemake.params.device_map, snakemake.params.dtype)
with WorkMeter(model) as work:
    rows = score_shard(model, tokenizer, generations, wanted, cfg.batch_size, context)
write_work(snakemake.log.work, work, batch_size=cfg.batch_size)
log_cuts(log, "P(True)", {r["id"]: r["prompt_cut"] for r in rows}, context)
write_tsv(snakemake.output[0], rows, P_TRUE_COLUMNS)
log.info("P(True) of %d questions", len(rows))
