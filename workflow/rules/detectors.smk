# Stage 8: training-free error detectors and the chosen probes on the same test questions.


rule score_p_true:
    input:
        generations="results/{model}/{dataset}/generations/{shard}.jsonl",
        split="results/{model}/{dataset}/probes/split.tsv",
        model="resources/models/{model}",
    output:
        "results/{model}/{dataset}/baselines/p_true/{shard}.tsv",
    params:
        code=library_code("score_p_true.py"),
        detectors=SETTINGS.detectors.pick("p_true_train_questions", "batch_size"),
        split=SETTINGS.split.pick("seed"),
        dtype=get_dtype,
        device_map=get_device_map,
    threads: get_model_threads
    resources:
        mem_mb=get_model_mem_mb,
        runtime=get_shard_runtime,
    log:
        "logs/score_p_true/{model}/{dataset}/{shard}.log",
        work="benchmarks/score_p_true/{model}/{dataset}/{shard}.work.json",
    benchmark:
        "benchmarks/score_p_true/{model}/{dataset}/{shard}.tsv"
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/score_p_true.py"


rule compare_detectors:
    input:
        split="results/{model}/{dataset}/probes/split.tsv",
        selection="results/{model}/{dataset}/probes/selection.json",
        cells=get_probe_cells,
        generations=expand("results/{{model}}/{{dataset}}/generations/{shard}.jsonl", shard=SHARDS),
        positions=expand("results/{{model}}/{{dataset}}/positions/{shard}.tsv", shard=SHARDS),
        p_true=get_p_true_files,
        error_types=get_error_types,
        questions="results/datasets/{dataset}/questions.jsonl",
    output:
        report(
            "results/{model}/{dataset}/detectors.tsv",
            caption="../report/detectors.rst",
            category="2. Error detectors",
            labels={"model": "{model}", "dataset": "{dataset}", "kind": "table"},
        ),
    params:
        code=library_code("compare_detectors.py"),
        probe=SETTINGS.probe.pick("bootstrap", "ci_level", "seed"),
        group=get_group_field,
    log:
        "logs/compare_detectors/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/compare_detectors.py"
