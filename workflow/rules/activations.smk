# Stage 5: hidden states of the chosen layers at the chosen positions, one HDF5 file per shard.


rule extract_activations:
    input:
        generations="results/{model}/{dataset}/generations/{shard}.jsonl",
        labels="results/{model}/{dataset}/labels/{shard}.jsonl",
        positions="results/{model}/{dataset}/positions/{shard}.tsv",
        model="resources/models/{model}",
    output:
        "results/{model}/{dataset}/activations/{shard}.h5",
    params:
        code=library_code("extract_activations.py"),
        tokens=TOKENS,
        layers=SETTINGS.layers,
        activations=SETTINGS.activations.pick("sites", "embeddings", "batch_tokens", "share_prefix"),
        dtype=get_dtype,
        device_map=get_device_map,
    threads: get_model_threads
    resources:
        mem_mb=get_model_mem_mb,
        runtime=get_shard_runtime,
    log:
        "logs/extract_activations/{model}/{dataset}/{shard}.log",
        work="benchmarks/extract_activations/{model}/{dataset}/{shard}.work.json",
    benchmark:
        "benchmarks/extract_activations/{model}/{dataset}/{shard}.tsv"
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/extract_activations.py"
# 'layers' is passed as configured ('all' or a list) and resolved against the
# model's manifest inside the job: a parameter that depended on the
# prepare_model checkpoint made Snakemake re-plan every job downstream of the
# activations on each invocation.
