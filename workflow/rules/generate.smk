# Stage 2: greedy answers per shard, with every chosen token's log-probability and logit.


rule generate_answers:
    input:
        questions="results/datasets/{dataset}/shards/{shard}.jsonl",
        model="resources/models/{model}",
    output:
        "results/{model}/{dataset}/generations/{shard}.jsonl",
    params:
        code=library_code("generate_answers.py"),
        generation=get_generation,
        dtype=get_dtype,
        device_map=get_device_map,
    threads: get_model_threads
    resources:
        mem_mb=get_model_mem_mb,
        runtime=get_shard_runtime,
    log:
        "logs/generate_answers/{model}/{dataset}/{shard}.log",
        work="benchmarks/generate_answers/{model}/{dataset}/{shard}.work.json",
    benchmark:
        "benchmarks/generate_answers/{model}/{dataset}/{shard}.tsv"
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/generate_answers.py"
