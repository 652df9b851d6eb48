"""Cluster requests sized from the run."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import yaml
from snakemake.resources import GroupResources, Resources

from truthmap.cluster import (
    count_lines, model_job_mem_mb, model_job_threads, probe_job_gpus, shard_job_minutes, weights_bytes,
)


def test_weights_bytes_counts_weight_files_only(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x" * 3000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "part.bin").write_bytes(b"x" * 1000)
    (tmp_path / "tokenizer.json").write_bytes(b"x" * 5000)
    assert weights_bytes(tmp_path) == 4000


def test_memory_grows_with_weights_and_attempts():
    small, large = model_job_mem_mb(100 * 2**20), model_job_mem_mb(1000 * 2**20)
    assert small == 2000 + 300 and large == 2000 + 3000
    assert model_job_mem_mb(100 * 2**20, attempt=2) == 2 * small


def test_runtime_grows_with_questions_tokens_and_attempts():
    assert shard_job_minutes(0, 64) == 10
    assert shard_job_minutes(462, 64) == 10 + 5  # 462 x 128 tokens x 5 ms = 296 s
    assert shard_job_minutes(462, 200) > shard_job_minutes(462, 64)
    assert shard_job_minutes(462, 64, attempt=3) == 3 * 15


def test_count_lines_skips_blank_lines(tmp_path):
    path = tmp_path / "shard.jsonl"
    path.write_text('{"id": 1}\n\n{"id": 2}\n')
    assert count_lines(path) == 2


def test_probe_jobs_ask_for_a_gpu_only_with_the_torch_backend():
    assert [probe_job_gpus(b) for b in ("torch", "auto", "numpy", "sklearn")] == [1, 0, 0, 0]


def test_the_slurm_probe_group_asks_for_one_gpu_with_torch_and_none_without():
    """Snakemake's own sizing of a group job (as for a submission), with the SLURM profile's pool:
    31 layer jobs of one CPU each, with and without a GPU each. Without the pool's GPU the group
    would ask for two (two layers at a time)."""
    profile = yaml.safe_load((Path(__file__).parents[2] / "workflow/profiles/slurm/config.yaml").read_text())
    pool = Resources.parse(profile["resources"], allow_expressions=False)
    for gpus, expected in ((1, {"gpu": 1, "cpus_per_task": 1}), (0, {"gpu": 0, "cpus_per_task": 2})):
        jobs = [SimpleNamespace(resources={"cpus_per_task": 1, "gpu": gpus, "runtime": 60}, pipe_group=None)
                for _ in range(31)]
        group = GroupResources.basic_layered([jobs], pool, run_local=False, additive_resources=["runtime"])
        assert {k: group[k] for k in expected} == expected


def test_model_jobs_take_one_thread_below_four_cores():
    assert [model_job_threads(c) for c in (1, 2, 3, 4, 16)] == [1, 1, 1, 2, 2]
    assert model_job_threads(None) == 2  # a dry run or lint
