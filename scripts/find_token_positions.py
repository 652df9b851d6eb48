"""Snakemake script: named token positions of one shard, from the exact answers' character spans."""

from truthmap import logs
from truthmap.files import read_jsonl, write_tsv
from truthmap.models import load_tokenizer
from truthmap.positions import POSITION_COLUMNS, positions_table

log = logs.setup(snakemake.log[0], "find_token_positions")
rows = positions_table(
    load_tokenizer(snakemake.input.model),
    read_jsonl(snakemake.input.generations),
    read_jsonl(snakemake.input.labels),
)
write_tsv(snakemake.output[0], rows, POSITION_COLUMNS)
log.info("positions of %d examples; %d with an exact answer", len(rows),
         sum(r["exact_answer_first"] >= 0 for r in rows))
