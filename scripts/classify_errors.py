"""Snakemake script: each question's type of error from its resampled answers, and their counts."""

from truthmap import logs
from truthmap.error_types import ERROR_TYPE_COLUMNS, SUMMARY_COLUMNS, error_type_rows, type_summary
from truthmap.files import read_jsonl, write_tsv

log = logs.setup(snakemake.log[0], "classify_errors")
rows = error_type_rows(
    [record for path in snakemake.input.sample_labels for record in read_jsonl(path)],
    [label for path in snakemake.input.labels for label in read_jsonl(path)],
)
summary = type_summary(rows)
write_tsv(snakemake.output.table, rows, ERROR_TYPE_COLUMNS)
write_tsv(snakemake.output.summary, summary, SUMMARY_COLUMNS)
for r in summary:
    log.info("%-6s %-26s %5d (%.1f%%)", r["kind"], r["type"], r["count"], 100 * r["share"])
unclustered = sum(bool(r["reason"]) for r in rows)
if unclustered:
    log.warning("%d of %d questions have no sample to cluster (see the reason column)", unclustered, len(rows))
