"""Snakemake script: the train-on-A, test-on-B AUC matrix."""

from truthmap import logs
from truthmap.files import read_tsv
from truthmap.plotting import plot_generalisation

log = logs.setup(snakemake.log[0], "plot_generalisation")
plot_generalisation(read_tsv(snakemake.input[0]), snakemake.params.title,
                    [snakemake.output.png, snakemake.output.pdf])
