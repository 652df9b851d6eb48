# Stage 3: correct or not, and the exact answer's character span in the generation.


rule label_answers:
    input:
        questions="results/datasets/{dataset}/shards/{shard}.jsonl",
        generations="results/{model}/{dataset}/generations/{shard}.jsonl",
        extractor=get_extractor_dir,
    output:
        "results/{model}/{dataset}/labels/{shard}.jsonl",
    params:
        exact_answer=config["exact_answer"],
    log:
        "logs/label_answers/{model}/{dataset}/{shard}.log",
    benchmark:
        "benchmarks/label_answers/{model}/{dataset}/{shard}.tsv"
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/label_answers.py"
