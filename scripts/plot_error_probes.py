"""Snakemake script: each error type's probe AUC with its interval."""

from truthmap import logs
from truthmap.files import read_tsv
from truthmap.plot_resampling import plot_error_probes

log = logs.setup(snakemake.log[0], "plot_error_probes")
plot_error_probes(read_tsv(snakemake.input[0]), snakemake.params.title, [snakemake.output.png, snakemake.output.pdf])
