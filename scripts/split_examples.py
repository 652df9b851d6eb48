"""Snakemake script: the train/test split shared by every probe cell of a (model, dataset)."""

from truthmap import logs
from truthmap.settings import SplitSettings
from truthmap.files import read_jsonl, read_tsv, write_tsv
from truthmap.probes import SPLIT_COLUMNS, split_table

log = logs.setup(snakemake.log[0], "split_examples")
cfg = SplitSettings.given(snakemake.params.split)
labels = [row for path in snakemake.input.labels for row in read_jsonl(path)]
positions = [row for path in snakemake.input.positions for row in read_tsv(path)]
rows = split_table(labels, positions, list(snakemake.params.tokens), cfg)
write_tsv(snakemake.output[0], rows, SPLIT_COLUMNS)
common = [r for r in rows if r["common"]]
log.info("%d questions, %d common to all cells (%d left out), %d of them in test",
         len(rows), len(common), len(rows) - len(common), sum(r["split"] == "test" for r in common))
