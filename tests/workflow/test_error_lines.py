"""Errors met inside jobs that the other bad-input tests do not reach: broken model folders, hand-edited
activation shards, a generation length that fills the context, a rule file that forgets a param.

Each ends its job with one line (``error: ...``, a ``hint: ...`` where there is one) in the job
log and on the console, a non-zero exit, and no traceback.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from helpers import assert_error_line, copy_code, snakemake

PREFIX = Path("results/SmolLM2-135M-Instruct/builtin")


def copy_run(workdir: Path, to: Path, *parts: str) -> None:
    """The session run's config and ``parts`` (times kept, so nothing upstream reruns)."""
    shutil.copy(workdir / "config.yaml", to / "config.yaml")
    for part in parts:
        shutil.copytree(workdir / part, to / part, symlinks=True)


def log_of(wd: Path, rule: str, name: str) -> str:
    return (wd / "logs" / rule / name).read_text(encoding="utf-8")


def test_broken_model_folders(tmp_path):
    pickled, remote, unknown = (tmp_path / n for n in ("pickled", "remote", "unknown"))
    for folder in (pickled, remote, unknown):
        folder.mkdir()
    (pickled / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (pickled / "pytorch_model.bin").write_bytes(b"pickle")
    (remote / "config.json").write_text(json.dumps({
        "model_type": "mystery", "auto_map": {"AutoConfig": "configuration_mystery.MysteryConfig"}}))
    (remote / "model.safetensors").write_bytes(b"")
    (unknown / "config.json").write_text(json.dumps({"model_type": "no_such_architecture"}))
    (unknown / "model.safetensors").write_bytes(b"")
    config = {"models": {n: {"source": str(tmp_path / n)} for n in ("pickled", "remote", "unknown")},
              "datasets": {"builtin": {"source": "builtin", "limit": 8}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(tmp_path, tmp_path / "config.yaml", "--keep-going",
                     *(f"resources/models/{n}" for n in ("pickled", "remote", "unknown")), timeout=300)
    assert done.returncode != 0
    console = done.stdout + done.stderr
    expected = {
        "pickled": f"model 'pickled': {pickled} has only pickled weights (pytorch_model.bin)",
        "remote": f"model 'remote': {remote} needs the Python code it ships to load; truthmap does not run it "
                  "unless models.remote.trust_remote_code is true",
        "unknown": f"model 'unknown': {unknown}: cannot read its config or tokenizer",
    }
    for name, message in expected.items():
        assert_error_line(console, message, log_of(tmp_path, "prepare_model", f"{name}.log"))
        assert not (tmp_path / "resources" / "models" / name).exists()
    assert "hint: read the code it ships" in console
    assert "hint: convert the weights to safetensors, or set models.pickled.allow_pickle: true" in console


def test_hand_edited_activation_shards(workdir, tmp_path):
    copy_run(workdir, tmp_path, "resources", "results/datasets/builtin", str(PREFIX))
    first, second = PREFIX / "activations/000.h5", PREFIX / "activations/001.h5"  # as the logs name them
    with h5py.File(tmp_path / first, "r+") as f:  # layer 0: a NaN; layer 14: a row short; layer 29 intact
        f["sites/residual/0"][2, 0, 0] = np.nan
        shape = f["sites/residual/14"].shape
        del f["sites/residual/14"]
        f.create_dataset("sites/residual/14", data=np.zeros((shape[0] - 1, *shape[1:]), dtype=np.float16))
    with h5py.File(tmp_path / second, "r+") as f:  # met only by the layer whose first shard is intact
        f.attrs["complete"] = False
    done = snakemake(tmp_path, tmp_path / "config.yaml", "--keep-going", str(PREFIX / "auc.tsv"), timeout=600)
    assert done.returncode != 0
    console = done.stdout + done.stderr
    logs = "logs/train_probes/SmolLM2-135M-Instruct/builtin"
    assert_error_line(console, f"{first}: residual of layer 0 holds NaN or infinite values in rows [2]",
                      (tmp_path / logs / "layer0.log").read_text())
    assert_error_line(console, f"{first}: residual of layer 14 has shape ({shape[0] - 1}, {shape[1]}, {shape[2]}), "
                               f"expected {shape}", (tmp_path / logs / "layer14.log").read_text())
    assert_error_line(console, f"{second}: incomplete activation shard",
                      (tmp_path / logs / "layer29.log").read_text())
    assert "hint: delete the file: the next run extracts the shard again" in console


def test_a_generation_length_that_fills_the_context(workdir, tmp_path):
    copy_run(workdir, tmp_path, "resources", "results/datasets/builtin")
    config = yaml.safe_load((tmp_path / "config.yaml").read_text())
    config["generation"]["max_new_tokens"] = 8192  # SmolLM2's whole context
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    done = snakemake(tmp_path, tmp_path / "config.yaml", str(PREFIX / "generations/000.jsonl"), timeout=300)
    assert done.returncode != 0
    assert_error_line(
        done.stdout + done.stderr,
        "config key 'generation.max_new_tokens': 8192 leaves no room for a prompt in the model's context of "
        "8192 tokens",
        log_of(tmp_path, "generate_answers", "SmolLM2-135M-Instruct/builtin/000.log"),
    )


@pytest.fixture
def code_without_the_split_seed(tmp_path) -> Path:
    """A copy of the workflow whose split rule forgets to pass ``split.seed``."""
    code = copy_code(tmp_path / "code")
    rules = code / "workflow/rules/probes.smk"
    text = rules.read_text()
    assert 'split=SETTINGS.split.pick("test_fraction", "seed")' in text
    rules.write_text(text.replace('split=SETTINGS.split.pick("test_fraction", "seed")',
                                  'split=SETTINGS.split.pick("test_fraction")'))
    return code


def test_a_rule_that_does_not_pass_a_setting(workdir, tmp_path, code_without_the_split_seed):
    run = tmp_path / "run"
    run.mkdir()
    copy_run(workdir, run, "resources", "results/datasets/builtin", str(PREFIX))
    done = snakemake(run, run / "config.yaml", str(PREFIX / "probes/split.tsv"), "--forcerun", "split_examples",
                     code=code_without_the_split_seed, timeout=300)
    assert done.returncode != 0
    assert_error_line(done.stdout + done.stderr, "setting 'split.seed' was not passed to this rule",
                      log_of(run, "split_examples", "SmolLM2-135M-Instruct/builtin.log"))
