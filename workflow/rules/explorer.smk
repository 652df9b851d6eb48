# Stage 9: the explorer, one self-contained page per (model, dataset) to look into every cell.


rule build_explorer:
    input:
        cells=get_probe_cells,
        auc="results/{model}/{dataset}/auc.tsv",
        split="results/{model}/{dataset}/probes/split.tsv",
        selection="results/{model}/{dataset}/probes/selection.json",
        detectors="results/{model}/{dataset}/detectors.tsv",
        generations=expand("results/{{model}}/{{dataset}}/generations/{shard}.jsonl", shard=SHARDS),
        labels=expand("results/{{model}}/{{dataset}}/labels/{shard}.jsonl", shard=SHARDS),
        positions=expand("results/{{model}}/{{dataset}}/positions/{shard}.tsv", shard=SHARDS),
        questions="results/datasets/{dataset}/questions.jsonl",
        model="resources/models/{model}",
    output:
        report(
            "results/{model}/{dataset}/explorer.html",
            caption="../report/explorer.rst",
            category="0. Explorer",
            labels={"model": "{model}", "dataset": "{dataset}"},
        ),
    params:
        code=library_code("build_explorer.py"),
        page=explorer_page_digest(),
        tokens=TOKENS,
        group=get_group_field,
        probe=SETTINGS.probe.pick("ci_level"),
    log:
        "logs/build_explorer/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/build_explorer.py"
