"""Snakemake script: one probe per error type at the chosen cell, trained on the greedy answers."""

from truthmap import logs
from truthmap.error_probes import ERROR_PROBE_COLUMNS, probe_error_types
from truthmap.files import read_json, read_tsv, write_tsv
from truthmap.settings import ProbeSettings

log = logs.setup(snakemake.log[0], "probe_error_types")
rows = probe_error_types(
    read_tsv(snakemake.input.split),
    list(snakemake.input.activations),
    list(snakemake.params.tokens),
    read_json(snakemake.input.selection)["probe_best_cell"],
    read_tsv(snakemake.input.error_types),
    ProbeSettings.given(snakemake.params.probe),
)
write_tsv(snakemake.output[0], [r.to_dict() for r in rows], ERROR_PROBE_COLUMNS)
for r in rows:
    log.info("%s (%s): auc %.3f [%.3f, %.3f], prevalence %.3f %s", r.type, r.kind, r.auc, r.ci_low, r.ci_high,
             r.prevalence, r.reason)
