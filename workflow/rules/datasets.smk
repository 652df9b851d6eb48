# Stage 1: questions in one JSONL schema, split into shards.


rule build_dataset:
    output:
        questions="results/datasets/{dataset}/questions.jsonl",
        skipped="results/datasets/{dataset}/skipped.tsv",
    params:
        code=library_code("build_dataset.py"),
        spec=get_dataset_spec,
    log:
        "logs/build_dataset/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/build_dataset.py"


rule shard_dataset:
    input:
        "results/datasets/{dataset}/questions.jsonl",
    output:
        expand("results/datasets/{{dataset}}/shards/{shard}.jsonl", shard=SHARDS),
    params:
        code=library_code("shard_dataset.py"),
    log:
        "logs/shard_dataset/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/shard_dataset.py"
