# Stage 9: does the chosen probe transfer? Trained on A, tested on B, for datasets and for domains.


rule generalise_datasets:
    input:
        unpack(get_generalisation_inputs),
    output:
        report(
            "results/{model}/generalisation.tsv",
            caption="../report/generalisation.rst",
            category="3. Generalisation",
            labels={"model": "{model}", "across": "datasets", "kind": "table"},
        ),
    params:
        code=library_code("generalise_datasets.py"),
        datasets=DATASETS,
        tokens=TOKENS,
        probe=SETTINGS.probe.pick("C", "max_iter", "bootstrap", "ci_level", "examples", "min_per_class", "seed"),
    log:
        "logs/generalise_datasets/{model}.log",
    benchmark:
        "benchmarks/generalise_datasets/{model}.tsv"
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/generalise_datasets.py"


rule generalise_domains:
    input:
        split="results/{model}/{dataset}/probes/split.tsv",
        selection="results/{model}/{dataset}/probes/selection.json",
        activations=expand("results/{{model}}/{{dataset}}/activations/{shard}.h5", shard=SHARDS),
        generations=expand("results/{{model}}/{{dataset}}/generations/{shard}.jsonl", shard=SHARDS),
    output:
        report(
            "results/{model}/{dataset}/generalisation_domains.tsv",
            caption="../report/generalisation_domains.rst",
            category="3. Generalisation",
            labels={"model": "{model}", "across": "domains of {dataset}", "kind": "table"},
        ),
    params:
        code=library_code("generalise_domains.py"),
        tokens=TOKENS,
        probe=SETTINGS.probe.pick("C", "max_iter", "bootstrap", "ci_level", "examples", "min_per_class", "seed"),
    log:
        "logs/generalise_domains/{model}/{dataset}.log",
    benchmark:
        "benchmarks/generalise_domains/{model}/{dataset}.tsv"
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/generalise_domains.py"
