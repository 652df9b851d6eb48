"""`make plan` against the finished tiny run, for a 70B model folder holding only its config.json,
and the run that stops before its first job when the disk cannot hold its activations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import yaml
from helpers import REPO, assert_error_line, snakemake

from truthmap.files import read_tsv
from truthmap.plan import ModelShape, load_settings, run_plan

MODEL, DATASET = "SmolLM2-135M-Instruct", "builtin"
LLAMA_70B = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 8192,
             "intermediate_size": 28672, "num_hidden_layers": 80, "num_attention_heads": 64,
             "num_key_value_heads": 8, "vocab_size": 128256, "tie_word_embeddings": False,
             "max_position_embeddings": 8192}


def plan(config: Path, directory: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "truthmap.plan", "--configfile", str(config),
                           "--directory", str(directory), *args], capture_output=True, text=True,
                          cwd=REPO, env={"PYTHONPATH": str(REPO / "scripts"), "PATH": "/usr/bin:/bin"}, timeout=300)


def test_the_plan_of_the_tiny_run_is_what_it_wrote(workdir):
    settings = load_settings(workdir / "config.yaml")
    shape = ModelShape.from_config(json.loads((workdir / "resources/models" / MODEL / "config.json").read_text()))
    planned = run_plan(MODEL, DATASET, shape, settings, 64)
    written = 0
    for shard in (workdir / "results" / MODEL / DATASET / "activations").glob("*.h5"):
        with h5py.File(shard) as f:
            written += sum(f[name].nbytes for name in _blocks(f))
    assert planned.total_bytes == written
    rows = read_tsv(workdir / "results" / MODEL / DATASET / "auc.tsv")
    cells = {(r["site"], r["layer"], r["token"]) for r in rows if r["layer"] != "-1"}
    embeddings = {(r["layer"], r["token"]) for r in rows if r["layer"] == "-1"}  # one row, shown under each site
    assert planned.cells == len(cells) + len(embeddings)
    done = plan(workdir / "config.yaml", workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SmolLM2-135M-Instruct: 0.13B parameters, 30 layers" in done.stdout
    assert "Disk: activations still to write 0.0 MiB" in done.stdout and "fits" in done.stdout
    assert "Expected time: no make bench figures at" in done.stdout


def _blocks(f) -> list[str]:
    names = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) and obj.ndim == 3 else None)
    return names


def _big_model(folder: Path, **changes) -> dict:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**LLAMA_70B, **changes}))
    return {"models": {"Llama-70B": {"source": str(folder)}}, "datasets": {"builtin": {"source": "builtin"}}}


def test_the_plan_of_a_70b_model_folder_without_weights(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_big_model(tmp_path / "llama-70b")))
    bench = tmp_path / "h100-bench.json"  # rates as if measured on another machine
    bench.write_text(json.dumps({
        "model": "bench-model", "device": "a GPU", "dtype": "bfloat16", "date": "2026-12-04",
        "extraction": {"ours_computed_tokens_per_s": 2e5, "flops_per_token_ours": 2.6e8},
        "generation": {"batched_tokens_per_s": 2e4, "flops_per_generated_token": 3e8, "mean_prompt_tokens": 60.0}}))
    done = plan(config, tmp_path, "--gpu-memory-gib", "80", "--bench", str(bench))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    out = done.stdout
    assert "Llama-70B: 70.55B parameters, 80 layers, hidden 8192" in out and "-> 2 GPU(s)" in out
    # 1,847 questions x 12 tokens x 80 layers x 8,192 values x 2 bytes
    assert "1,847 questions x 12 tokens x 80 layers: residual 27.1 GiB" in out
    assert "972 cells in 81 probe jobs" in out
    assert "prepare_model" in out and "train_probes" in out and "SLURM submissions" in out
    assert "rates measured by make bench: bench-model on a GPU, bfloat16, 2026-12-04" in out
    times = next(line for line in out.splitlines() if line.startswith("  Llama-70B x builtin: generate_answers"))
    assert all(stage in times for stage in ("label_answers", "extract_activations", "score_p_true", "total"))


def test_a_run_whose_activations_cannot_fit_stops_before_its_first_job(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_big_model(tmp_path / "huge", intermediate_size=10**8)
                                     | {"activations": {"sites": ["mlp_down_input"]}}))
    done = snakemake(tmp_path, config, timeout=300)
    assert done.returncode != 0
    assert_error_line(done.stdout + done.stderr, "results: the activations still to write need")
    assert not (tmp_path / "logs").exists() and not (tmp_path / "resources").exists()  # no job ran
