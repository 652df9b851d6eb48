"""Snakemake script: split a dataset's questions into shards (each question in exactly one)."""

from truthmap import logs
from truthmap.datasets import shard_records
from truthmap.files import write_jsonl
from truthmap.questions import load_questions

log = logs.setup(snakemake.log[0], "shard_dataset")
questions = load_questions(snakemake.input[0])
shards = shard_records(questions, len(snakemake.output))
for path, records in zip(snakemake.output, shards, strict=True):
    write_jsonl(path, records)
    log.info("%s: %d questions", path, len(records))
