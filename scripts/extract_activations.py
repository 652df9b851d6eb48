"""Snakemake script: hidden states of one shard at the chosen layers and positions, into HDF5."""

import torch

from truthmap import logs
from truthmap.activations import extract_to_h5, fit_sequences, shard_inputs
from truthmap.context import context_length, log_cuts
from truthmap.settings import ActivationSettings, resolve_layers
from truthmap.files import read_jsonl, read_tsv
from truthmap.models import ModelInfo, load_model
from truthmap.work import WorkMeter, write_work

log = logs.setup(snakemake.log[0], "extract_activations")
torch.set_num_threads(snakemake.threads)
cfg = ActivationSettings.given(snakemake.params.activations)
info = ModelInfo.read(snakemake.input.model)
tokens = list(snakemake.params.tokens)
layers = resolve_layers(snakemake.params.layers, info.num_layers, cfg.embeddings)
ids, seqs, positions, labels = shard_inputs(
    read_jsonl(snakemake.input.generations),
    read_jsonl(snakemake.input.labels),
    read_tsv(snakemake.input.positions),
    tokens,
)
context = context_length(info.max_positions, info.name, log)
seqs, positions, cuts = fit_sequences(seqs, positions, context)
log_cuts(log, "prompt + answer", {q: f"{n} tokens cut from the start" for q, n in zip(ids, cuts) if n}, context)
model, tokenizer = load_model(snakemake.input.model, snakemake.params.device_map, snakemake.params.dtype)
log.info("%d examples, %d tokens, layers %s, sites %s", len(ids), sum(map(len, seqs)), layers, cfg.sites)
with WorkMeter(model) as work:
    extract_to_h5(
        model, snakemake.output[0], ids=ids, seqs=seqs, positions=positions, labels=labels,
        tokens=tokens, layers=layers, sites=cfg.sites, model_name=info.name,
        pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        batch_tokens=cfg.batch_tokens, share_prefix=cfg.share_prefix, progress=logs.progress_logger(log, "extracted"),
    )
write_work(snakemake.log.work, work, batch_tokens=cfg.batch_tokens)
