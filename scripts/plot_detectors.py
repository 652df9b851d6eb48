"""Snakemake script: the detectors compared, with their intervals."""

from truthmap import logs
from truthmap.files import read_tsv
from truthmap.plotting import plot_detectors

log = logs.setup(snakemake.log[0], "plot_detectors")
model, dataset = snakemake.wildcards.model, snakemake.wildcards.dataset
plot_detectors(read_tsv(snakemake.input[0]), f"Error detectors: {model} on {dataset}",
               [snakemake.output.png, snakemake.output.pdf])
