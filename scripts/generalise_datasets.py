"""Snakemake script: each dataset's chosen probe trained on it and tested on every dataset of the run."""

from truthmap import logs
from truthmap.settings import ProbeSettings
from truthmap.files import read_json, read_tsv, write_tsv
from truthmap.generalise import GENERALISATION_COLUMNS, across_datasets

log = logs.setup(snakemake.log[0], "generalise_datasets")
cfg = ProbeSettings.given(snakemake.params.probe)
datasets = {
    name: {
        "split": read_tsv(snakemake.input[f"split_{name}"]),
        "shards": list(snakemake.input[f"activations_{name}"]),
        "cell": read_json(snakemake.input[f"selection_{name}"])["probe_best_cell"],
    }
    for name in snakemake.params.datasets
}
rows = across_datasets(datasets, list(snakemake.params.tokens), cfg)
write_tsv(snakemake.output[0], [r.to_dict() for r in rows], GENERALISATION_COLUMNS)
log.info("%d dataset pairs", len(rows))
