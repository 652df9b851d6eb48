"""Snakemake script: hidden states of the test questions' distinct sampled answers at the chosen cell."""

import torch

from truthmap import logs
from truthmap.candidates import candidate_inputs, extract_candidates, with_positions
from truthmap.activations import fit_sequences
from truthmap.context import context_length
from truthmap.files import read_json, read_jsonl, read_tsv
from truthmap.models import ModelInfo, load_model
from truthmap.results import Cell
from truthmap.work import WorkMeter, write_work

log = logs.setup(snakemake.log[0], "extract_candidates")
torch.set_num_threads(snakemake.threads)
chosen = read_json(snakemake.input.selection)["probe_best_cell"]
cell = None if chosen is None else Cell.of(chosen)
info = ModelInfo.read(snakemake.input.model)
model, tokenizer = load_model(snakemake.input.model, snakemake.params.device_map, snakemake.params.dtype)
test_ids = {r["id"] for r in read_tsv(snakemake.input.split) if r["split"] == "test"}
inputs = candidate_inputs(tokenizer, read_jsonl(snakemake.input.samples), read_jsonl(snakemake.input.sample_labels),
                          test_ids, cell.token if cell else "-1")
seqs, positions, cuts = fit_sequences(inputs.seqs, inputs.positions[:, None], context_length(info.max_positions, info.name, log))
inputs = with_positions(inputs, seqs, positions[:, 0])
log.info("cell %s: %d candidates of %d test questions, %d scorable, %d cut to fit the context", cell,
         len(inputs.ids), len(set(inputs.ids)), int((inputs.positions >= 0).sum()), sum(1 for c in cuts if c))
with WorkMeter(model) as work:
    extract_candidates(
        model, snakemake.output[0], inputs, cell, model_name=info.name,
        pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
        batch_tokens=int(snakemake.params.batch_tokens), progress=logs.progress_logger(log, "extracted"),
    )
write_work(snakemake.log.work, work)
