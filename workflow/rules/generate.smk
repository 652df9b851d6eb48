# Stage 2: greedy answers per shard, with every chosen token's log-probability and logit.


rule generate_answers:
    input:
        questions="results/datasets/{dataset}/shards/{shard}.jsonl",
        model="resources/models/{model}",
    output:
        "results/{model}/{dataset}/generations/{shard}.jsonl",
    params:
        generation=get_generation,
    log:
        "logs/generate_answers/{model}/{dataset}/{shard}.log",
    benchmark:
        "benchmarks/generate_answers/{model}/{dataset}/{shard}.tsv"
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/generate_answers.py"
