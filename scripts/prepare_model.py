"""Snakemake script: prepare a model folder (dequantise GGUF once) and write its manifest."""

from truthmap import logs
from truthmap.models import prepare_model

log = logs.setup(snakemake.log[0], "prepare_model")
info = prepare_model(
    name=snakemake.wildcards.model,
    source=snakemake.params.source,
    out_dir=snakemake.output[0],
    trust_remote_code=snakemake.params.trust_remote_code,
    allow_pickle=snakemake.params.allow_pickle,
)
log.info("prepared %s: %s, %d layers, hidden %d, chat template: %s",
         info.name, info.model_type, info.num_layers, info.hidden_size, info.has_chat_template)
