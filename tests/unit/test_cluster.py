"""Cluster requests sized from the run."""

from __future__ import annotations

from truthmap.cluster import count_lines, model_job_mem_mb, shard_job_minutes, weights_bytes


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
