# truthmap: where does an LLM know that its own answer is wrong?
# Wiring only: every stage lives in its own rule file under workflow/rules/.
from snakemake.utils import min_version

min_version("9.0")


# The default run; a --configfile of your own describes a whole run instead
# (its keys merge with the defaults, not with this file).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/positions.smk"
include: "workflow/rules/activations.smk"
include: "workflow/rules/probes.smk"
include: "workflow/rules/detectors.smk"
include: "workflow/rules/generalise.smk"
include: "workflow/rules/plots.smk"
include: "workflow/rules/resampling.smk"
include: "workflow/rules/explorer.smk"


onstart:
    check_activation_disk()


# Light rules run on the submit host under a cluster executor (no submission).
localrules:
    all,
    build_dataset,
    shard_dataset,
    find_token_positions,
    split_examples,
    gather_auc,
    select_cells,
    summarise_run,
    plot_heatmap,
    plot_difference,
    plot_detectors,
    plot_dataset_generalisation,
    plot_domain_generalisation,
    classify_errors,
    probe_error_types,
    choose_answers,
    plot_error_types,
    plot_error_type_probes,
    plot_answer_selection,
    build_explorer,


rule all:
    input:
        get_final_outputs(),
    default_target: True
