# Stage 10 (resampling.n > 0): the paper's second half. Every question is answered n more
# times by seeded sampling; the samples give error types, sample-based detectors (read by
# compare_detectors), probes that predict the error type, and answers chosen by the probe.


rule resample_answers:
    input:
        questions="results/datasets/{dataset}/shards/{shard}.jsonl",
        model="resources/models/{model}",
    output:
        "results/{model}/{dataset}/resampling/samples/{shard}.jsonl",
    params:
        code=library_code("resample_answers.py"),
        generation=get_generation,
        resampling=SETTINGS.resampling.pick("n", "temperature", "top_p", "top_k", "seed"),
        dtype=get_dtype,
        device_map=get_device_map,
    threads: get_model_threads
    resources:
        mem_mb=get_model_mem_mb,
        runtime=get_resample_runtime,
    log:
        "logs/resample_answers/{model}/{dataset}/{shard}.log",
        work="benchmarks/resample_answers/{model}/{dataset}/{shard}.work.json",
    benchmark:
        "benchmarks/resample_answers/{model}/{dataset}/{shard}.tsv"
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/resample_answers.py"


rule label_samples:
    input:
        questions="results/datasets/{dataset}/shards/{shard}.jsonl",
        samples="results/{model}/{dataset}/resampling/samples/{shard}.jsonl",
        extractor=get_extractor_dir,
    output:
        "results/{model}/{dataset}/resampling/labels/{shard}.jsonl",
    params:
        code=library_code("label_samples.py"),
        exact_answer=SETTINGS.exact_answer.pick(
            "max_new_tokens", "batch_size", "max_words", "tries", "temperature", "top_k", "seed"
        ),
        dtype=get_extractor_dtype,
        device_map=get_extractor_device_map,
    threads: get_model_threads
    resources:
        mem_mb=get_model_mem_mb,
        runtime=get_resample_runtime,
    log:
        "logs/label_samples/{model}/{dataset}/{shard}.log",
        work="benchmarks/label_samples/{model}/{dataset}/{shard}.work.json",
    benchmark:
        "benchmarks/label_samples/{model}/{dataset}/{shard}.tsv"
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/label_samples.py"


rule classify_errors:
    input:
        sample_labels=expand("results/{{model}}/{{dataset}}/resampling/labels/{shard}.jsonl", shard=SHARDS),
        labels=expand("results/{{model}}/{{dataset}}/labels/{shard}.jsonl", shard=SHARDS),
    output:
        table=report(
            "results/{model}/{dataset}/resampling/error_types.tsv",
            caption="../report/error_types_table.rst",
            category="5. Resampled answers",
            labels={"model": "{model}", "dataset": "{dataset}", "kind": "error types per question"},
        ),
        summary=report(
            "results/{model}/{dataset}/resampling/error_type_summary.tsv",
            caption="../report/error_types.rst",
            category="5. Resampled answers",
            labels={"model": "{model}", "dataset": "{dataset}", "kind": "error type shares"},
        ),
    params:
        code=library_code("classify_errors.py"),
    log:
        "logs/classify_errors/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/classify_errors.py"


rule probe_error_types:
    input:
        split="results/{model}/{dataset}/probes/split.tsv",
        selection="results/{model}/{dataset}/probes/selection.json",
        activations=expand("results/{{model}}/{{dataset}}/activations/{shard}.h5", shard=SHARDS),
        error_types="results/{model}/{dataset}/resampling/error_types.tsv",
    output:
        report(
            "results/{model}/{dataset}/resampling/error_type_probes.tsv",
            caption="../report/error_type_probes.rst",
            category="5. Resampled answers",
            labels={"model": "{model}", "dataset": "{dataset}", "kind": "error type probes table"},
        ),
    params:
        code=library_code("probe_error_types.py"),
        probe=SETTINGS.probe.pick("C", "max_iter", "bootstrap", "ci_level", "examples", "min_per_class", "seed"),
        tokens=TOKENS,
    log:
        "logs/probe_error_types/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/probe_error_types.py"


rule extract_candidates:
    input:
        samples="results/{model}/{dataset}/resampling/samples/{shard}.jsonl",
        sample_labels="results/{model}/{dataset}/resampling/labels/{shard}.jsonl",
        split="results/{model}/{dataset}/probes/split.tsv",
        selection="results/{model}/{dataset}/probes/selection.json",
        model="resources/models/{model}",
    output:
        "results/{model}/{dataset}/resampling/candidates/{shard}.h5",
    params:
        code=library_code("extract_candidates.py"),
        dtype=get_dtype,
        device_map=get_device_map,
        batch_tokens=SETTINGS.activations.batch_tokens,
    threads: get_model_threads
    resources:
        mem_mb=get_model_mem_mb,
        runtime=get_resample_runtime,
    log:
        "logs/extract_candidates/{model}/{dataset}/{shard}.log",
        work="benchmarks/extract_candidates/{model}/{dataset}/{shard}.work.json",
    benchmark:
        "benchmarks/extract_candidates/{model}/{dataset}/{shard}.tsv"
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/extract_candidates.py"


rule choose_answers:
    input:
        split="results/{model}/{dataset}/probes/split.tsv",
        selection="results/{model}/{dataset}/probes/selection.json",
        activations=expand("results/{{model}}/{{dataset}}/activations/{shard}.h5", shard=SHARDS),
        candidates=expand("results/{{model}}/{{dataset}}/resampling/candidates/{shard}.h5", shard=SHARDS),
        sample_labels=expand("results/{{model}}/{{dataset}}/resampling/labels/{shard}.jsonl", shard=SHARDS),
        error_types="results/{model}/{dataset}/resampling/error_types.tsv",
    output:
        table=report(
            "results/{model}/{dataset}/resampling/answer_selection.tsv",
            caption="../report/answer_selection_table.rst",
            category="5. Resampled answers",
            labels={"model": "{model}", "dataset": "{dataset}", "kind": "answer selection table"},
        ),
        choices=report(
            "results/{model}/{dataset}/resampling/answer_choices.tsv",
            caption="../report/answer_selection_table.rst",
            category="5. Resampled answers",
            labels={"model": "{model}", "dataset": "{dataset}", "kind": "answer chosen per question"},
        ),
    params:
        code=library_code("choose_answers.py"),
        probe=SETTINGS.probe.pick("C", "max_iter", "bootstrap", "ci_level", "examples", "min_per_class", "seed"),
        seed=SETTINGS.resampling.seed,
        tokens=TOKENS,
    log:
        "logs/choose_answers/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/choose_answers.py"


rule plot_error_types:
    input:
        "results/{model}/{dataset}/resampling/error_type_summary.tsv",
    output:
        png=report(
            "results/{model}/{dataset}/resampling/error_types.png",
            caption="../report/error_types.rst",
            category="5. Resampled answers",
            labels={"model": "{model}", "dataset": "{dataset}", "kind": "error types"},
        ),
        pdf="results/{model}/{dataset}/resampling/error_types.pdf",
    params:
        code=library_code("plot_error_types.py"),
        title=get_resampling_title,
    log:
        "logs/plot_error_types/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/plot_error_types.py"


rule plot_error_type_probes:
    input:
        "results/{model}/{dataset}/resampling/error_type_probes.tsv",
    output:
        png=report(
            "results/{model}/{dataset}/resampling/error_type_probes.png",
            caption="../report/error_type_probes.rst",
            category="5. Resampled answers",
            labels={"model": "{model}", "dataset": "{dataset}", "kind": "error type probes"},
        ),
        pdf="results/{model}/{dataset}/resampling/error_type_probes.pdf",
    params:
        code=library_code("plot_error_probes.py"),
        title=get_resampling_title,
    log:
        "logs/plot_error_type_probes/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/plot_error_probes.py"


rule plot_answer_selection:
    input:
        "results/{model}/{dataset}/resampling/answer_selection.tsv",
    output:
        png=report(
            "results/{model}/{dataset}/resampling/answer_selection.png",
            caption="../report/answer_selection.rst",
            category="5. Resampled answers",
            labels={"model": "{model}", "dataset": "{dataset}", "kind": "answer selection"},
        ),
        pdf="results/{model}/{dataset}/resampling/answer_selection.pdf",
    params:
        code=library_code("plot_answer_selection.py"),
        title=get_resampling_title,
    log:
        "logs/plot_answer_selection/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/plot_answer_selection.py"
