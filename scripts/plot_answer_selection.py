"""Snakemake script: accuracy of greedy, random, majority and probe-chosen answers, overall and per
coarse error type."""

from truthmap import logs
from truthmap.files import read_tsv
from truthmap.plot_resampling import plot_answer_selection

log = logs.setup(snakemake.log[0], "plot_answer_selection")
plot_answer_selection(read_tsv(snakemake.input[0]), snakemake.params.title,
                      [snakemake.output.png, snakemake.output.pdf])
