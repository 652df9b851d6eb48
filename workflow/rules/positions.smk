# Stage 4: named token positions as indices into prompt + generated ids.


rule find_token_positions:
    input:
        generations="results/{model}/{dataset}/generations/{shard}.jsonl",
        labels="results/{model}/{dataset}/labels/{shard}.jsonl",
        model="resources/models/{model}",
    output:
        "results/{model}/{dataset}/positions/{shard}.tsv",
    params:
        code=library_code("find_token_positions.py"),
    log:
        "logs/find_token_positions/{model}/{dataset}/{shard}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/find_token_positions.py"
