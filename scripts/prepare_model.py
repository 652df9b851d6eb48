"""Snakemake script: prepare a model folder (dequantise GGUF once) and write its manifest."""

from truthmap import logs
from truthmap.models import prepare_model
from truthmap.settings import ModelSettings

log = logs.setup(snakemake.log[0], "prepare_model")
spec = ModelSettings.given(snakemake.params.model, f"models.{snakemake.wildcards.model}")
info = prepare_model(
    name=snakemake.wildcards.model,
    source=spec.source,
    out_dir=snakemake.output[0],
    trust_remote_code=spec.trust_remote_code,
    allow_pickle=spec.allow_pickle,
)
log.info("prepared %s: %s, %d layers, hidden %d, chat template: %s",
         info.name, info.model_type, info.num_layers, info.hidden_size, info.has_chat_template)
