"""Snakemake script: build or load a dataset into truthmap's question JSONL."""

from truthmap import logs
from truthmap.datasets import SKIPPED_COLUMNS, make_dataset
from truthmap.files import write_jsonl, write_tsv
from truthmap.load_options import LoadOptions

log = logs.setup(snakemake.log[0], "build_dataset")
spec = snakemake.params.spec
loaded = make_dataset(
    name=snakemake.wildcards.dataset,
    source=spec["source"],
    limit=spec["limit"],
    seed=spec["seed"],
    options=LoadOptions(**spec["options"]),  # checked when the workflow started
)
n = write_jsonl(snakemake.output.questions, loaded.records)
write_tsv(snakemake.output.skipped, [vars(s) for s in loaded.skipped], SKIPPED_COLUMNS)
log.info("wrote %d questions to %s; %d malformed rows skipped", n, snakemake.output.questions,
         len(loaded.skipped))
