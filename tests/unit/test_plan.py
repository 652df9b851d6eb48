"""The plan's arithmetic against independent references: parameters counted by transformers on the
meta device, activation bytes written by the real extraction, job counts from a dry-run listing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from truthmap.files import InputError
from truthmap.plan import (
    ModelShape,
    activation_bytes,
    check_disk,
    dry_run_jobs,
    gpus_needed,
    models_to_prepare,
    slurm_submissions,
    with_unplanned_probes,
)

SMOLLM2 = {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
           "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "vocab_size": 49152,
           "tie_word_embeddings": True}
LLAMA_70B = {"model_type": "llama", "hidden_size": 8192, "intermediate_size": 28672, "num_hidden_layers": 80,
             "num_attention_heads": 64, "num_key_value_heads": 8, "vocab_size": 128256,
             "tie_word_embeddings": False}


@pytest.mark.parametrize("config", [SMOLLM2, LLAMA_70B], ids=["smollm2", "llama-70b"])
def test_parameters_equal_those_of_the_model_transformers_builds(config):
    from transformers import AutoModelForCausalLM, LlamaConfig

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(LlamaConfig(**config))
    assert ModelShape.from_config(config).params() == sum(p.numel() for p in model.parameters())


def test_a_nested_text_config_is_read():
    shape = ModelShape.from_config({"model_type": "gemma3", "text_config": {**SMOLLM2, "head_dim": None}})
    assert shape.hidden == 576 and shape.head_dim == 64 and shape.layers == 30


def test_gpus_hold_the_weights_with_headroom():
    weights = ModelShape.from_config(LLAMA_70B).params() * 2  # bfloat16: 141 GB
    assert gpus_needed(weights, 80 * 2**30) == 2 and gpus_needed(weights, 141 * 2**30) == 2
    assert gpus_needed(weights, 192 * 2**30) == 1 and gpus_needed(1, 80 * 2**30) == 1


def test_activation_bytes_equal_what_the_extraction_writes(tiny_model, tmp_path):
    import h5py

    from truthmap.activations import extract_to_h5
    from truthmap.h5io import dataset_name

    model, tok = tiny_model
    seqs = [[5, 6, 7, 8], [9, 10, 11], [12, 13, 14, 15, 16]]
    path = tmp_path / "000.h5"
    extract_to_h5(model, str(path), ids=["a", "b", "c"], seqs=seqs, positions=np.array([[3, 1], [2, 0], [4, 2]]),
                  labels=np.array([0, 1, 0], dtype=np.int8), tokens=["-1", "-2"], layers=[0, 2, 3],
                  sites=["residual", "mlp_down_input"], model_name="tiny", pad_id=tok.pad_token_id,
                  batch_tokens=1000)
    shape = ModelShape.from_config(model.config.to_dict())
    with h5py.File(path) as f:
        for site in ("residual", "mlp_down_input"):
            stored = sum(f[dataset_name(site, layer)].nbytes for layer in (0, 2, 3))
            assert activation_bytes(3, 2, 3, shape.site_width(site)) == stored


DRY_RUN = """Job stats:
job                   count
------------------  -------
all                       1
extract_activations       2

checkpoint prepare_model:
    output: resources/models/Big
    jobid: 3
    reason: Missing output files: resources/models/Big
    wildcards: model=Big
    resources: tmpdir=<TBD>

localrule build_dataset:
    output: results/datasets/builtin/questions.jsonl
    jobid: 5
    wildcards: dataset=builtin

rule extract_activations:
    output: results/Big/builtin/activations/000.h5
    wildcards: model=Big, dataset=builtin, shard=000

rule extract_activations:
    output: results/Big/builtin/activations/001.h5
    wildcards: model=Big, dataset=builtin, shard=001

rule train_probes:
    wildcards: model=Small, dataset=builtin, layer=0

localrule all:
    jobid: 0
"""


def test_jobs_and_submissions_from_a_dry_run_listing():
    jobs = dry_run_jobs(DRY_RUN)
    assert jobs == {"prepare_model": (1, False), "build_dataset": (1, True), "extract_activations": (2, False),
                    "train_probes": (1, False), "all": (1, True)}
    assert models_to_prepare(DRY_RUN) == {"Big"}
    assert slurm_submissions(jobs, group_size=64) == 1 + 2 + 1
    assert slurm_submissions({"train_probes": (130, False)}, group_size=64) == 3
    assert dry_run_jobs("rule gather_auc:\n    wildcards: model=A\n", frozenset({"gather_auc"})) == {
        "gather_auc": (1, True)}


def test_the_snakefiles_local_rules_are_read():
    from truthmap.plan import WORKFLOW, local_rules

    rules = local_rules(WORKFLOW / "Snakefile")
    assert {"all", "build_dataset", "gather_auc", "build_explorer"} <= rules
    assert not rules & {"generate_answers", "extract_activations", "train_probes", "prepare_model"}


def test_probe_jobs_of_a_model_still_to_prepare_are_added():
    from truthmap.plan import RunPlan

    plans = [RunPlan("Big", "builtin", 10, 80, True, 12, {"residual": 1, "embeddings": 1}),
             RunPlan("Small", "builtin", 10, 3, True, 12, {"residual": 1, "embeddings": 1})]
    assert plans[0].probe_jobs == 81 and plans[0].cells == 80 * 12 + 12
    jobs = with_unplanned_probes(dry_run_jobs(DRY_RUN), {"Big"}, plans)
    assert jobs["train_probes"] == (1 + 81, False)


def test_a_disk_too_small_is_one_error_naming_the_folder(tmp_path):
    check_disk(1, tmp_path)
    with pytest.raises(InputError, match=r"results: the activations still to write need [\d,.]+ GiB, the disk has [\d,.]+ [GM]iB free"):
        check_disk(10**21, tmp_path / "results")


def test_a_broken_config_is_left_to_its_prepare_job(tmp_path):
    """The run's disk check skips a model folder whose config.json says too little (prepare_model
    reports it); the plan names the file."""
    from truthmap.plan import check_run_disk, read_shape
    from truthmap.settings import RunSettings

    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"model_type": "llama"}')
    settings = RunSettings.from_config({"models": {"broken": {"source": str(tmp_path / "broken")}},
                                        "datasets": {"builtin": {"source": "builtin", "limit": 8}}})
    assert check_run_disk(settings, tmp_path / "resources" / "models", tmp_path / "results") == 0
    with pytest.raises(InputError, match=r"broken/config.json: not a decoder config .*num_attention_heads"):
        read_shape(tmp_path / "broken" / "config.json")
