"""Snakemake script: gather every probe cell of a (model, dataset) into auc.tsv."""

from truthmap import logs
from truthmap.files import write_tsv
from truthmap.results import AUC_COLUMNS, gather_cells

log = logs.setup(snakemake.log[0], "gather_auc")
rows = gather_cells(list(snakemake.input))
write_tsv(snakemake.output[0], rows, AUC_COLUMNS)
log.info("%d cells, %d skipped", len(rows), sum(r["status"] != "ok" for r in rows))
