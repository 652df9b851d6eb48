# Stage 7: the Layer x Token heatmap and the run summary.


rule plot_heatmap:
    input:
        "results/{model}/{dataset}/auc.tsv",
    output:
        png=report(
            "results/{model}/{dataset}/heatmap.png",
            caption="../report/heatmap.rst",
            category="1. Layer x Token heatmap",
            labels={"model": "{model}", "dataset": "{dataset}"},
        ),
        pdf="results/{model}/{dataset}/heatmap.pdf",
        within_png=report(
            "results/{model}/{dataset}/heatmap_within_groups.png",
            caption="../report/heatmap_within_groups.rst",
            category="1. Layer x Token heatmap",
            labels={"model": "{model}", "dataset": "{dataset}", "kind": "within groups"},
        ),
        within_pdf="results/{model}/{dataset}/heatmap_within_groups.pdf",
    params:
        code=library_code("plot_heatmap.py"),
        plot=SETTINGS.plot.pick("annotate", "value"),
    log:
        "logs/plot_heatmap/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/plot_heatmap.py"


rule plot_difference:
    input:
        auc="results/{model}/{dataset}/auc.tsv",
        detectors="results/{model}/{dataset}/detectors.tsv",
    output:
        png=report(
            "results/{model}/{dataset}/heatmap_vs_baseline.png",
            caption="../report/heatmap_vs_baseline.rst",
            category="1. Layer x Token heatmap",
            labels={"model": "{model}", "dataset": "{dataset}", "kind": "minus the best baseline"},
        ),
        pdf="results/{model}/{dataset}/heatmap_vs_baseline.pdf",
    params:
        code=library_code("plot_difference.py"),
        plot=SETTINGS.plot.pick("annotate"),
    log:
        "logs/plot_difference/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/plot_difference.py"


rule summarise_run:
    input:
        auc="results/{model}/{dataset}/auc.tsv",
        split="results/{model}/{dataset}/probes/split.tsv",
        generations=expand("results/{{model}}/{{dataset}}/generations/{shard}.jsonl", shard=SHARDS),
        labels=expand("results/{{model}}/{{dataset}}/labels/{shard}.jsonl", shard=SHARDS),
        skipped="results/datasets/{dataset}/skipped.tsv",
    output:
        report(
            "results/{model}/{dataset}/summary.json",
            caption="../report/summary.rst",
            category="4. Run summary",
            labels={"model": "{model}", "dataset": "{dataset}"},
        ),
    params:
        code=library_code("summarise_run.py"),
    log:
        "logs/summarise_run/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/summarise_run.py"


rule plot_detectors:
    input:
        "results/{model}/{dataset}/detectors.tsv",
    output:
        png=report(
            "results/{model}/{dataset}/detectors.png",
            caption="../report/detectors.rst",
            category="2. Error detectors",
            labels={"model": "{model}", "dataset": "{dataset}", "kind": "figure"},
        ),
        pdf="results/{model}/{dataset}/detectors.pdf",
    params:
        code=library_code("plot_detectors.py"),
    log:
        "logs/plot_detectors/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/plot_detectors.py"


rule plot_dataset_generalisation:
    input:
        "results/{model}/generalisation.tsv",
    output:
        png=report(
            "results/{model}/generalisation.png",
            caption="../report/generalisation.rst",
            category="3. Generalisation",
            labels={"model": "{model}", "across": "datasets", "kind": "figure"},
        ),
        pdf="results/{model}/generalisation.pdf",
    params:
        code=library_code("plot_generalisation.py"),
        title=get_generalisation_title,
    log:
        "logs/plot_dataset_generalisation/{model}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/plot_generalisation.py"


rule plot_domain_generalisation:
    input:
        "results/{model}/{dataset}/generalisation_domains.tsv",
    output:
        png=report(
            "results/{model}/{dataset}/generalisation_domains.png",
            caption="../report/generalisation_domains.rst",
            category="3. Generalisation",
            labels={"model": "{model}", "across": "domains of {dataset}", "kind": "figure"},
        ),
        pdf="results/{model}/{dataset}/generalisation_domains.pdf",
    params:
        code=library_code("plot_generalisation.py"),
        title=get_generalisation_title,
    log:
        "logs/plot_domain_generalisation/{model}/{dataset}.log",
    conda:
        "../../envs/truthmap.yaml"
    script:
        "../../scripts/plot_generalisation.py"
