# Stage 6: one probe per (site, layer, token) cell; the cells of a layer share a process
# (per-process start-up dominates a single cell's fit), each cell keeps its own output.


rule split_examples:
    input:
        labels=expand("results/{{model}}/{{dataset}}/labels/{shard}.jsonl", shard=SHARDS),
        positions=expand("results/{{model}}/{{dataset}}/positions/{shard}.tsv", shard=SHARDS),
    output:
        "results/{model}/{dataset}/probes/split.tsv",
    params:
        code=library_code("split_examples.py"),
        tokens=TOKENS,
        split=SETTINGS.split.pick("test_fraction", "seed"),
    log:
        "logs/split_examples/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/split_examples.py"


rule train_probes:
    input:
        split="results/{model}/{dataset}/probes/split.tsv",
        activations=expand("results/{{model}}/{{dataset}}/activations/{shard}.h5", shard=SHARDS),
    output:
        expand("results/{{model}}/{{dataset}}/probes/cells/{site}/layer{{layer}}/{token}.json", site=SITES,
               token=TOKENS),
    params:
        code=library_code("train_probes.py"),
        tokens=TOKENS,
        sites=SITES,
        probe=SETTINGS.probe.pick(
            "C", "max_iter", "bootstrap", "ci_level", "examples", "min_per_class", "cv_folds", "seed",
            "split_seeds", "backend",
        ),
        split=SETTINGS.split.pick("test_fraction", "seed"),
    resources:
        gpu=get_probe_gpus,
    log:
        "logs/train_probes/{model}/{dataset}/layer{layer}.log",
    benchmark:
        "benchmarks/train_probes/{model}/{dataset}/layer{layer}.tsv"
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/train_probes.py"


rule gather_auc:
    input:
        cells=get_probe_cells,
        split="results/{model}/{dataset}/probes/split.tsv",
        questions="results/datasets/{dataset}/questions.jsonl",
    output:
        report(
            "results/{model}/{dataset}/auc.tsv",
            caption="../report/auc.rst",
            category="1. Layer x Token heatmap",
            labels={"model": "{model}", "dataset": "{dataset}", "kind": "table"},
        ),
    params:
        code=library_code("gather_auc.py"),
        probe=SETTINGS.probe.pick("bootstrap", "ci_level", "seed"),
        group=get_group_field,
    log:
        "logs/gather_auc/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/gather_auc.py"


rule select_cells:
    input:
        get_probe_cells,
    output:
        "results/{model}/{dataset}/probes/selection.json",
    params:
        code=library_code("select_cells.py"),
    log:
        "logs/select_cells/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/select_cells.py"
