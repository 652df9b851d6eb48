"""Snakemake script: the share of questions of each type of error."""

from truthmap import logs
from truthmap.files import read_tsv
from truthmap.plot_resampling import plot_error_types

log = logs.setup(snakemake.log[0], "plot_error_types")
plot_error_types(read_tsv(snakemake.input[0]), snakemake.params.title, list(snakemake.output))
