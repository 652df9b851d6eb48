"""Snakemake script: the chosen probe trained on each domain of a dataset and tested on every domain."""

from truthmap import logs
from truthmap.settings import ProbeSettings
from truthmap.files import read_json, read_jsonl, read_tsv, write_tsv
from truthmap.generalise import GENERALISATION_COLUMNS, across_domains

log = logs.setup(snakemake.log[0], "generalise_domains")
cfg = ProbeSettings.given(snakemake.params.probe)
rows = across_domains(
    read_tsv(snakemake.input.split),
    list(snakemake.input.activations),
    list(snakemake.params.tokens),
    read_json(snakemake.input.selection)["probe_best_cell"],
    {g["id"]: g.get("domain", "") for path in snakemake.input.generations for g in read_jsonl(path)},
    cfg,
)
write_tsv(snakemake.output[0], [r.to_dict() for r in rows], GENERALISATION_COLUMNS)
log.info("%d domain pairs", len(rows))
