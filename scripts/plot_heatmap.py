"""Snakemake script: draw the Layer x Token AUC heatmap."""

from truthmap import logs
from truthmap.files import read_tsv
from truthmap.plotting import plot_heatmap
from truthmap.settings import PlotSettings

log = logs.setup(snakemake.log[0], "plot_heatmap")
model, dataset = snakemake.wildcards.model, snakemake.wildcards.dataset
plot_heatmap(
    read_tsv(snakemake.input[0]),
    title=f"Layer vs. Token\n{model} on {dataset}: error-detection AUC",
    out_paths=[snakemake.output.png, snakemake.output.pdf],
    annotate=PlotSettings.given(snakemake.params.plot).annotate,
)
log.info("wrote %s and %s", snakemake.output.png, snakemake.output.pdf)
