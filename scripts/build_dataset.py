"""Snakemake script: build or load a dataset into truthmap's question JSONL."""

from truthmap import logs
from truthmap.datasets import make_dataset
from truthmap.files import write_jsonl

log = logs.setup(snakemake.log[0], "build_dataset")
spec = snakemake.params.spec
questions = make_dataset(
    name=snakemake.wildcards.dataset,
    source=spec["source"],
    limit=spec["limit"],
    seed=spec["seed"],
)
n = write_jsonl(snakemake.output[0], questions)
log.info("wrote %d questions to %s", n, snakemake.output[0])
