# Stage 3: correct or not, and the exact answer's character span in the generation.


rule label_answers:
    input:
        questions="results/datasets/{dataset}/shards/{shard}.jsonl",
        generations="results/{model}/{dataset}/generations/{shard}.jsonl",
        extractor=get_extractor_dir,
    output:
        "results/{model}/{dataset}/labels/{shard}.jsonl",
    params:
        code=library_code("label_answers.py"),
        exact_answer=SETTINGS.exact_answer.pick(
            "max_new_tokens", "batch_size", "max_words", "tries", "temperature", "top_k", "seed"
        ),
        dtype=get_extractor_dtype,
        device_map=get_extractor_device_map,
    threads: get_model_threads
    resources:
        mem_mb=get_model_mem_mb,
        runtime=get_shard_runtime,
    log:
        "logs/label_answers/{model}/{dataset}/{shard}.log",
        work="benchmarks/label_answers/{model}/{dataset}/{shard}.work.json",
    benchmark:
        "benchmarks/label_answers/{model}/{dataset}/{shard}.tsv"
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/label_answers.py"
