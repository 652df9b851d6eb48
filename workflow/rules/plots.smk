# Stage 7: the Layer x Token heatmap and the run summary.


rule plot_heatmap:
    input:
        "results/{model}/{dataset}/auc.tsv",
    output:
        png="results/{model}/{dataset}/heatmap.png",
        pdf="results/{model}/{dataset}/heatmap.pdf",
    params:
        plot=config["plot"],
    log:
        "logs/plot_heatmap/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/plot_heatmap.py"


rule summarise_run:
    input:
        auc="results/{model}/{dataset}/auc.tsv",
        split="results/{model}/{dataset}/probes/split.tsv",
        generations=expand("results/{{model}}/{{dataset}}/generations/{shard}.jsonl", shard=SHARDS),
        labels=expand("results/{{model}}/{{dataset}}/labels/{shard}.jsonl", shard=SHARDS),
        skipped="results/datasets/{dataset}/skipped.tsv",
    output:
        "results/{model}/{dataset}/summary.json",
    log:
        "logs/summarise_run/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/summarise_run.py"
