"""Tests for truthmap.random_model: a model of a config's shape with random weights, prepared offline."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from truthmap import bench
from truthmap.files import InputError
from truthmap.models import ModelInfo, load_model
from truthmap.random_model import prepare_random


def shape_folder(tmp_path, tiny_hf_dir, **changes):
    """A folder holding only a config.json: the tiny Llama's, with ``changes``."""
    config = json.loads((tiny_hf_dir / "config.json").read_text())
    config.update(changes)
    folder = tmp_path / "Llama-shape"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def tensors(folder):
    return {k: v for path in sorted(folder.glob("*.safetensors")) for k, v in load_file(path).items()}


def test_a_config_alone_becomes_a_prepared_model_of_its_shape(tmp_path, tiny_hf_dir, tiny_model_dir):
    shape = shape_folder(tmp_path, tiny_hf_dir, num_hidden_layers=3, hidden_size=48, intermediate_size=80,
                         vocab_size=400)
    info = prepare_random(shape, tiny_model_dir, tmp_path / "random", device="cpu")
    assert (info.num_layers, info.hidden_size, info.model_type) == (3, 48, "llama")
    assert info.has_chat_template and info.source == f"random:{shape}"
    assert ModelInfo.read(tmp_path / "random") == info
    (tmp_path / "ordinary").mkdir()  # a prepared folder has the modes of an ordinary one, not mkdtemp's 0700
    assert (tmp_path / "random").stat().st_mode == (tmp_path / "ordinary").stat().st_mode
    model, tokenizer = load_model(tmp_path / "random", device_map="cpu", dtype="float32")
    assert model.config.hidden_size == 48 and model.get_input_embeddings().weight.shape == (400, 48)
    assert len(tokenizer) == len(load_model(tiny_model_dir, device_map="cpu")[1])  # the given tokenizer
    weights = tensors(tmp_path / "random")
    assert weights["model.layers.0.mlp.up_proj.weight"].float().std() > 0  # drawn, not zeros
    again = prepare_random(shape, tiny_model_dir, tmp_path / "again", device="cpu")  # seeded: the same draw
    assert again.num_layers == 3
    for name, value in tensors(tmp_path / "again").items():
        assert torch.equal(value, weights[name]), name


def test_the_bench_extracts_from_a_random_model(tmp_path, tiny_hf_dir, tiny_model_dir):
    shape = shape_folder(tmp_path, tiny_hf_dir, num_hidden_layers=2)
    prepare_random(shape, tiny_model_dir, tmp_path / "random", device="cpu")
    job = bench.extract_job(str(tmp_path / "random"), 6, str(tmp_path / "shard.h5"), 512, "cpu", "float32")
    assert job["examples"] == 6 and job["file_bytes"] >= job["min_bytes"] > 0


def test_bench_shape_prepares_once_then_benches_that_folder(tmp_path, tiny_hf_dir, tiny_model_dir, monkeypatch,
                                                           capsys):
    shape = shape_folder(tmp_path, tiny_hf_dir, num_hidden_layers=2)
    ran = []
    monkeypatch.setattr(bench, "_default_model_dir", lambda: tiny_model_dir)
    def run(model_dir, out, sizes, **kw):
        out.mkdir(parents=True, exist_ok=True)
        ran.append(model_dir)
        return {}

    monkeypatch.setattr(bench, "run", run)
    out = tmp_path / "random"
    args = ["--shape", str(shape), "--model-dir", str(out), "--out", str(tmp_path / "bench"), "--device", "cpu"]
    assert bench.main(args) == 0
    assert ran == [str(out)] and ModelInfo.read(out).num_layers == 2
    (out / "marker").write_text("kept")
    assert bench.main(args) == 0  # prepared already: used as it is
    assert (out / "marker").exists() and ran == [str(out)] * 2
    assert bench.main(["--shape", str(shape), "--model-dir", str(tiny_model_dir), "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert f"error: {tiny_model_dir} holds {tiny_hf_dir}, not random weights of {shape}'s shape" in err
    assert "Traceback" not in err


def test_a_vocabulary_smaller_than_the_tokenizer_is_refused(tmp_path, tiny_hf_dir, tiny_model_dir):
    shape = shape_folder(tmp_path, tiny_hf_dir, vocab_size=100)
    with pytest.raises(InputError, match=r"config.json: vocab_size 100 is smaller than the \d+ ids"):
        prepare_random(shape, tiny_model_dir, tmp_path / "random", device="cpu")
    assert not (tmp_path / "random").exists()
    with pytest.raises(InputError, match="no config.json"):
        prepare_random(tmp_path, tiny_model_dir, tmp_path / "random", device="cpu")
