"""Snakemake script: accuracy, exact-answer coverage and the best cells of a (model, dataset)."""

from truthmap import logs
from truthmap.files import read_jsonl, read_tsv, write_json
from truthmap.results import run_summary

log = logs.setup(snakemake.log[0], "summarise_run")
summary = run_summary(
    generations=[r for p in snakemake.input.generations for r in read_jsonl(p)],
    labels=[r for p in snakemake.input.labels for r in read_jsonl(p)],
    split=read_tsv(snakemake.input.split),
    auc=read_tsv(snakemake.input.auc),
    skipped=read_tsv(snakemake.input.skipped),
)
write_json(snakemake.output[0], summary)
log.info("accuracy %.3f, %d without an exact answer", summary["accuracy"], summary["n_no_exact_answer"])
