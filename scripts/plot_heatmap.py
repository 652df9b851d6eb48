"""Snakemake script: draw the Layer x Token AUC heatmap, pooled and within groups."""

from truthmap import logs
from truthmap.files import read_tsv
from truthmap.plotting import plot_heatmap
from truthmap.settings import PlotSettings

log = logs.setup(snakemake.log[0], "plot_heatmap")
model, dataset = snakemake.wildcards.model, snakemake.wildcards.dataset
rows = read_tsv(snakemake.input[0])
cfg = PlotSettings.given(snakemake.params.plot)
annotate = cfg.annotate
mean = cfg.value == "auc_split_mean"
plot_heatmap(
    rows,
    title=f"Layer vs. Token\n{model} on {dataset}: error-detection AUC" + (", mean over splits" if mean else ""),
    out_paths=[snakemake.output.png, snakemake.output.pdf],
    annotate=annotate,
    column=cfg.value,
    colour_label="ROC AUC, mean over seeded splits" if mean else "ROC AUC (positive class: wrong answer)",
)
grouped = any(int(r["groups"]) > 0 for r in rows)
plot_heatmap(
    rows,
    title=f"Layer vs. Token, within groups\n{model} on {dataset}"
          + ("" if grouped else ": no groups (see detectors.tsv, group_prior)"),
    out_paths=[snakemake.output.within_png, snakemake.output.within_pdf],
    annotate=annotate,
    column="auc_within_group",
    colour_label="AUC within groups (size-weighted mean; wrong answer positive)",
)
log.info("wrote %s, %s and the within-group heatmap", snakemake.output.png, snakemake.output.pdf)
