# Stage 6: one probe per (layer, token) cell; cells of a layer share a process
# (per-process start-up dominates a single cell's fit), each cell keeps its own output.


rule split_examples:
    input:
        labels=expand("results/{{model}}/{{dataset}}/labels/{shard}.jsonl", shard=SHARDS),
        positions=expand("results/{{model}}/{{dataset}}/positions/{shard}.tsv", shard=SHARDS),
    output:
        "results/{model}/{dataset}/probes/split.tsv",
    params:
        tokens=TOKENS,
        probe=config["probe"],
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
        expand("results/{{model}}/{{dataset}}/probes/cells/layer{{layer}}/{token}.json", token=TOKENS),
    params:
        tokens=TOKENS,
        probe=config["probe"],
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
        get_probe_cells,
    output:
        "results/{model}/{dataset}/auc.tsv",
    log:
        "logs/gather_auc/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/gather_auc.py"
