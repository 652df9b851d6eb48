# Config validation, wildcard constraints and the named input functions.
import sys
from pathlib import Path

from snakemake.utils import validate

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from truthmap.cluster import count_lines, model_job_mem_mb, shard_job_minutes, weights_bytes  # noqa: E402
from truthmap.config import (  # noqa: E402
    ActivationConfig,
    ExactAnswerConfig,
    GenerationConfig,
    ProbeConfig,
    from_mapping,
    generation_settings,
    parse_tokens,
    resolve_layers,
)
from truthmap.datasets import check_source as check_dataset_source  # noqa: E402
from truthmap.models import ModelInfo  # noqa: E402
from truthmap.models import check_source as check_model_source  # noqa: E402
from truthmap.provenance import code_fingerprint  # noqa: E402

validate(config, schema="../schemas/config.schema.yaml")

# Checks the schema cannot express; each error names the config key.
for _model, _mspec in config["models"].items():
    for _dataset, _dspec in config["datasets"].items():
        from_mapping(GenerationConfig, generation_settings(config["generation"], _dspec, _mspec), "generation")
from_mapping(ExactAnswerConfig, config["exact_answer"], "exact_answer")
from_mapping(ActivationConfig, config["activations"], "activations")
from_mapping(ProbeConfig, config["probe"], "probe")

for _name, _spec in config["models"].items():
    check_model_source(f"models.{_name}.source", _spec["source"])
for _name, _spec in config["datasets"].items():
    check_dataset_source(f"datasets.{_name}.source", _spec["source"])

MODELS = list(config["models"])
DATASETS = list(config["datasets"])
SHARDS = [f"{i:03d}" for i in range(config["shards"])]
TOKENS = parse_tokens(config["tokens"])


def extractor_of(model):
    """The model that extracts exact answers of ``model``'s wrong answers."""
    name = config["models"][model].get("extractor") or config["exact_answer"]["extractor"]
    return model if name == "same" else name


for _model in MODELS:
    if extractor_of(_model) not in config["models"]:
        raise ValueError(
            f"config key 'exact_answer.extractor' (or 'models.{_model}.extractor'): "
            f"{extractor_of(_model)!r} is neither 'same' nor a key of 'models' {MODELS}"
        )


wildcard_constraints:
    model=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    dataset=r"[A-Za-z0-9][A-Za-z0-9._-]*",
    shard=r"\d{3}",
    layer=r"\d+",
    token=r"[a-z_]+|-\d+",


def library_code(script):
    """A parameter: the fingerprint of ``script`` and the library code it imports.

    Snakemake's code trigger sees the rule script only; with this parameter a
    change to a stage's library module reruns exactly the rules that run it.
    """
    return code_fingerprint(Path(workflow.basedir) / "scripts" / script)


def get_model_mem_mb(wildcards, input, attempt):
    """Memory of a job that loads the (extractor) model: its weights and working space."""
    model_dir = input.model if hasattr(input, "model") else input.extractor
    return model_job_mem_mb(weights_bytes(model_dir), attempt)


def get_shard_runtime(wildcards, input, attempt):
    """Minutes for a model job over one shard, from its questions and the generation budget."""
    return shard_job_minutes(count_lines(input[0]), get_generation(wildcards)["max_new_tokens"], attempt)


def get_model_source(wildcards):
    return config["models"][wildcards.model]["source"]


LOADER_OPTIONS = ("format", "with_context", "columns", "answer_separator", "split", "skip_malformed")


def get_dataset_spec(wildcards):
    spec = config["datasets"][wildcards.dataset]
    return {
        "source": spec["source"],
        "limit": spec.get("limit"),
        "seed": config["seed"],
        "options": {k: spec[k] for k in LOADER_OPTIONS if spec.get(k) is not None},
    }


def get_generation(wildcards):
    return generation_settings(
        config["generation"], config["datasets"][wildcards.dataset], config["models"][wildcards.model]
    )


def get_dtype(wildcards):
    return config["models"][wildcards.model].get("dtype", "auto")


def get_extractor_dtype(wildcards):
    return config["models"][extractor_of(wildcards.model)].get("dtype", "auto")


def get_extractor_dir(wildcards):
    return f"resources/models/{extractor_of(wildcards.model)}"


def get_layers(wildcards):
    """The layers probed for a model; 'all' needs the prepared model's layer count."""
    model_dir = checkpoints.prepare_model.get(model=wildcards.model).output[0]
    return resolve_layers(config["layers"], ModelInfo.read(model_dir).num_layers)


def get_probe_cells(wildcards):
    return expand(
        "results/{model}/{dataset}/probes/cells/layer{layer}/{token}.json",
        model=wildcards.model,
        dataset=wildcards.dataset,
        layer=get_layers(wildcards),
        token=TOKENS,
    )


def get_p_true_files(wildcards):
    if not config["detectors"]["p_true"]:
        return []
    return expand(
        "results/{model}/{dataset}/baselines/p_true/{shard}.tsv",
        model=wildcards.model,
        dataset=wildcards.dataset,
        shard=SHARDS,
    )


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
                "auc.tsv", "heatmap.png", "heatmap.pdf", "summary.json", "detectors.tsv",
                "detectors.png", "detectors.pdf", "generalisation_domains.tsv",
                "generalisation_domains.png", "generalisation_domains.pdf",
            )
        ],
        model=MODELS,
        dataset=DATASETS,
    )
    per_model = expand(
        "results/{model}/generalisation.{ext}", model=MODELS, ext=("tsv", "png", "pdf")
    )
    return per_pair + per_model
