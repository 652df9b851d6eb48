"""Snakemake script: one probe per (site, token) cell of one layer; one JSON result per cell."""

from truthmap import logs
from truthmap.settings import ProbeSettings, SplitSettings
from truthmap.files import read_tsv, write_json
from truthmap.probes import train_sites

log = logs.setup(snakemake.log[0], "train_probes")
cfg = ProbeSettings.given(snakemake.params.probe)
tokens = list(snakemake.params.tokens)
results = train_sites(
    read_tsv(snakemake.input.split), list(snakemake.input.activations),
    int(snakemake.wildcards.layer), tokens, list(snakemake.params.sites), cfg,
    split=SplitSettings.given(snakemake.params.split),
)
for path, result in zip(snakemake.output, results, strict=True):
    write_json(path, result.to_dict())
    log.info("%s layer %s %s: auc %.3f [%.3f, %.3f], over %d splits %.3f +- %.3f %s", result.site, result.layer,
             result.token, result.auc, result.ci_low, result.ci_high, len(result.split_aucs), result.auc_split_mean,
             result.auc_split_std, result.reason)
