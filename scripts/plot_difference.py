"""Snakemake script: the heatmap of each cell's AUC minus the best baseline's (chosen on training questions)."""

from truthmap import logs
from truthmap.detectors import best_baseline
from truthmap.files import read_tsv
from truthmap.plotting import plot_difference
from truthmap.settings import PlotSettings

log = logs.setup(snakemake.log[0], "plot_difference")
model, dataset = snakemake.wildcards.model, snakemake.wildcards.dataset
baseline = best_baseline(read_tsv(snakemake.input.detectors))
name, auc = (baseline["method"], float(baseline["auc"])) if baseline else ("no baseline", float("nan"))
plot_difference(
    read_tsv(snakemake.input.auc), name, auc,
    title=f"Layer vs. Token: AUC minus the best baseline\n{model} on {dataset}; {name} chosen on training "
          "questions",
    out_paths=[snakemake.output.png, snakemake.output.pdf],
    annotate=PlotSettings.given(snakemake.params.plot).annotate,
)
log.info("baseline %s (test AUC %.3f, train AUC %s)", name, auc, baseline and baseline["train_auc"])
