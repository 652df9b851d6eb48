# Config validation, wildcard constraints and the named input functions.
import sys
from dataclasses import asdict
from pathlib import Path

from snakemake.utils import validate
from snakemake.exceptions import WorkflowError

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from truthmap.cluster import (  # noqa: E402
    count_lines, model_job_mem_mb, model_job_threads, probe_job_gpus, shard_job_minutes, weights_bytes,
)
from truthmap.datasets import check_source as check_dataset_source  # noqa: E402
from truthmap.files import InputError  # noqa: E402
from truthmap.load_options import parse_options  # noqa: E402
from truthmap.logs import input_error_lines  # noqa: E402
from truthmap.models import ModelInfo  # noqa: E402
from truthmap.models import check_source as check_model_source  # noqa: E402
from truthmap.provenance import asset_digest, cached_code_fingerprint  # noqa: E402
from truthmap.schema import check_config  # noqa: E402
from truthmap.settings import RunSettings, resolve_layers  # noqa: E402

# The schema (generated from the typed settings) checks types and fills defaults;
# the typed settings check every section for what a schema cannot say; then the
# sources must exist. All of it before the first job; an error is one line naming
# its key, and Snakemake exits 1 before planning anything.
try:
    check_config(config)
    validate(config, schema="../schemas/config.schema.yaml")
    SETTINGS = RunSettings.from_config(config)
    for _name, _model in SETTINGS.models.items():
        check_model_source(f"models.{_name}.source", _model.source)
    LOAD_OPTIONS = {}
    for _name, _dataset in SETTINGS.datasets.items():
        check_dataset_source(f"datasets.{_name}.source", _dataset.source)
        LOAD_OPTIONS[_name] = parse_options(_name, _dataset.source, _dataset.loader_options())
except InputError as _err:
    sys.stderr.write(input_error_lines(_err))
    sys.exit(1)

MODELS = list(SETTINGS.models)
DATASETS = list(SETTINGS.datasets)
SHARDS = [f"{i:03d}" for i in range(SETTINGS.shards)]
TOKENS = SETTINGS.tokens
SITES = SETTINGS.activations.sites


wildcard_constraints:
    model=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    dataset=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    shard=r"\d{3}",
    layer=r"-1|\d+",
    token=r"[a-z_]+|-\d+",
    site=r"[a-z_]+",


def library_code(script):
    """A parameter: the fingerprint of ``script`` and of the library code it reaches.

    It replaces Snakemake's ``code`` trigger (off in the profiles), which sees only
    the script's modification time: a change to code a rule runs reruns it, and a
    docstring, a comment or a touched file reruns nothing.
    """
    return cached_code_fingerprint(Path(workflow.basedir) / "scripts" / script)


def explorer_page_digest():
    """A parameter: the digest of the explorer page's template, stylesheet and script (files the
    code fingerprint does not read), so that a change to the page rebuilds every explorer."""
    return asset_digest(Path(workflow.basedir) / "scripts" / "truthmap" / "explorer_assets")


def get_model_threads(wildcards):
    """A model job's threads, from the cores Snakemake was given (none in a dry run or lint)."""
    try:
        cores = workflow.cores
    except WorkflowError:
        cores = None
    return model_job_threads(cores)


def get_model_mem_mb(wildcards, input, attempt):
    """Memory of a job that loads the (extractor) model: its weights and working space."""
    model_dir = input.model if hasattr(input, "model") else input.extractor
    return model_job_mem_mb(weights_bytes(model_dir), attempt)


def get_resample_runtime(wildcards, input, attempt):
    """Minutes for a job over one shard's resampled answers: n answers per question."""
    n_answers = count_lines(input[0]) * max(1, SETTINGS.resampling.n)
    return shard_job_minutes(n_answers, get_generation(wildcards)["max_new_tokens"], attempt)


def get_shard_runtime(wildcards, input, attempt):
    """Minutes for a model job over one shard, from its questions and the generation budget."""
    return shard_job_minutes(count_lines(input[0]), get_generation(wildcards)["max_new_tokens"], attempt)


def get_probe_gpus(wildcards):
    """GPUs of a probe job: one with ``probe.backend: torch`` (the SLURM profile turns it into ``--gpus=1``)."""
    return probe_job_gpus(SETTINGS.probe.backend)


# Parameters: exactly the settings a rule's script reads (config/README.md, "What reruns").


def get_model_preparation(wildcards):
    return SETTINGS.models[wildcards.model].pick("source", "trust_remote_code", "allow_pickle")


def get_dataset_spec(wildcards):
    """What building a dataset reads; the subsample's seed only matters with a limit."""
    spec = SETTINGS.datasets[wildcards.dataset]
    return {
        "source": spec.source,
        "limit": spec.limit,
        "seed": SETTINGS.seed if spec.limit is not None else None,
        "options": asdict(LOAD_OPTIONS[wildcards.dataset]),
    }


def get_generation(wildcards):
    """The generation settings of one (model, dataset): section, format, dataset and model keys."""
    settings = SETTINGS.generation_for(wildcards.model, wildcards.dataset)
    return settings.pick("template", "plain_template", "prompt_style", "max_new_tokens", "batch_size")


def get_dtype(wildcards):
    return SETTINGS.models[wildcards.model].dtype


def get_group_field(wildcards):
    """The meta field that groups a dataset's questions (group_prior, within-group AUCs)."""
    return SETTINGS.datasets[wildcards.dataset].group


def get_extractor_dtype(wildcards):
    return SETTINGS.models[SETTINGS.extractor_of(wildcards.model)].dtype


def get_device_map(wildcards):
    return SETTINGS.models[wildcards.model].device_map


def get_extractor_device_map(wildcards):
    return SETTINGS.models[SETTINGS.extractor_of(wildcards.model)].device_map


def get_extractor_dir(wildcards):
    return f"resources/models/{SETTINGS.extractor_of(wildcards.model)}"


def get_layers(wildcards):
    """The layers probed for a model; 'all' needs the prepared model's layer count."""
    model_dir = checkpoints.prepare_model.get(model=wildcards.model).output[0]
    try:
        return resolve_layers(SETTINGS.layers, ModelInfo.read(model_dir).num_layers, SETTINGS.activations.embeddings)
    except InputError as err:
        sys.stderr.write(input_error_lines(err))
        sys.exit(1)


def get_probe_cells(wildcards):
    return expand(
        "results/{model}/{dataset}/probes/cells/{site}/layer{layer}/{token}.json",
        model=wildcards.model,
        dataset=wildcards.dataset,
        site=SITES,
        layer=get_layers(wildcards),
        token=TOKENS,
    )


def get_p_true_files(wildcards):
    if not SETTINGS.detectors.p_true:
        return []
    return expand(
        "results/{model}/{dataset}/baselines/p_true/{shard}.tsv",
        model=wildcards.model,
        dataset=wildcards.dataset,
        shard=SHARDS,
    )


def get_error_types(wildcards):
    """The resampled answers' error types and sample-based detectors, when resampling is on."""
    if not SETTINGS.resampling.n:
        return []
    return f"results/{wildcards.model}/{wildcards.dataset}/resampling/error_types.tsv"


RESAMPLING_TITLES = {
    "error_types": "Error types",
    "error_type_probes": "Probes that predict the error type",
    "answer_selection": "Choosing the answer",
}


def get_resampling_title(wildcards, output):
    """The title of a resampling figure, from its file name."""
    return f"{RESAMPLING_TITLES[Path(output.png).stem]}: {wildcards.model} on {wildcards.dataset}"


def get_generalisation_inputs(wildcards):
    """Per dataset of the run: its split, its chosen cells and its activation shards."""
    inputs = {}
    for dataset in DATASETS:
        prefix = f"results/{wildcards.model}/{dataset}"
        inputs[f"split_{dataset}"] = f"{prefix}/probes/split.tsv"
        inputs[f"selection_{dataset}"] = f"{prefix}/probes/selection.json"
        inputs[f"activations_{dataset}"] = expand(f"{prefix}/activations/{{shard}}.h5", shard=SHARDS)
    return inputs


def get_generalisation_title(wildcards):
    if "dataset" in wildcards.keys():
        return f"Across domains: {wildcards.model} on {wildcards.dataset} (chosen cell)"
    return f"Across datasets: {wildcards.model} (each training set's chosen cell)"


def get_final_outputs():
    per_pair = expand(
        [
            f"results/{{model}}/{{dataset}}/{name}"
            for name in (
                "auc.tsv", "heatmap.png", "heatmap.pdf", "heatmap_within_groups.png",
                "heatmap_within_groups.pdf", "heatmap_vs_baseline.png", "heatmap_vs_baseline.pdf",
                "summary.json", "detectors.tsv",
                "detectors.png", "detectors.pdf", "generalisation_domains.tsv",
                "generalisation_domains.png", "generalisation_domains.pdf", "explorer.html",
            )
        ],
        model=MODELS,
        dataset=DATASETS,
    )
    per_model = expand(
        "results/{model}/generalisation.{ext}", model=MODELS, ext=("tsv", "png", "pdf")
    )
    resampling = expand(
        "results/{model}/{dataset}/resampling/{name}",
        model=MODELS,
        dataset=DATASETS,
        name=(
            "error_types.tsv", "error_type_summary.tsv", "error_types.png", "error_types.pdf",
            "error_type_probes.tsv", "error_type_probes.png", "error_type_probes.pdf",
            "answer_selection.tsv", "answer_choices.tsv", "answer_selection.png", "answer_selection.pdf",
        ),
    )
    return per_pair + per_model + (resampling if SETTINGS.resampling.n else [])


def check_activation_disk():
    """Before the first job: stop, with one line, when the disk cannot hold the activations still
    to write (truthmap.plan, the arithmetic `make plan` prints)."""
    from truthmap.plan import check_run_disk

    try:
        check_run_disk(SETTINGS, Path("resources/models"), Path("results"))
    except InputError as err:
        sys.stderr.write(input_error_lines(err))
        raise SystemExit(1)
