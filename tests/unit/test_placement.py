"""Where weights go: the placement setting checked and resolved, and a tiny model split across
devices (CPU blocks and blocks whose weights wait on disk, dispatched by accelerate as a model
spread over GPUs is) giving the same captures and the same greedy answers as unsplit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from truthmap.activations import extract_to_h5
from truthmap.batches import MEMORY_SHARE, model_free_memory, tokens_that_fit
from truthmap.files import InputError
from truthmap.generation import generate_batched
from truthmap.h5io import read_layer
from truthmap.models import decoder_layers, load_model
from truthmap.placement import (
    block_shares, check_device_map, execution_device, input_device, needs_offload_folder, resolve,
)
from truthmap.shapes import ModelShape

GIB = 2**30

#: The tiny Llama (4 blocks) with its embeddings, blocks 1 and 2 and its LM head on disk.
SPLIT = {"model.embed_tokens": "disk", "model.layers.0": "cpu", "model.layers.1": "disk", "model.layers.2": "disk",
         "model.layers.3": "cpu", "model.norm": "cpu", "model.rotary_emb": "cpu", "lm_head": "disk"}


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:3", "balanced", "balanced_low_0", "sequential",
                                   {"model.layers.0": 0, "model.layers.1": "cuda:1", "lm_head": "disk", "x": "cpu"}])
def test_placements_that_are_accepted(value):
    check_device_map(value, "models.m.device_map")


@pytest.mark.parametrize("value, message", [
    ("gpu", r"'gpu' is not a placement"),
    ("cuda:", r"'cuda:' is not a placement"),
    ({}, r"an empty mapping places no module"),
    ({"model.layers.0": "tpu"}, r"module 'model.layers.0' is mapped to 'tpu'"),
    ({"model.layers.0": -1}, r"module 'model.layers.0' is mapped to -1"),
    ({"model.layers.0": True}, r"module 'model.layers.0' is mapped to True"),
])
def test_a_wrong_placement_names_its_key(value, message):
    with pytest.raises(InputError, match=r"config key 'models.m.device_map': " + message):
        check_device_map(value, "models.m.device_map")


def test_the_settings_check_the_placement():
    from truthmap.settings import ModelSettings

    assert ModelSettings.from_mapping({"source": "x"}, "models.m").device_map == "auto"
    with pytest.raises(InputError, match=r"'models.m.device_map'"):
        ModelSettings.from_mapping({"source": "x", "device_map": "gpu"}, "models.m")
    with pytest.raises(InputError, match=r"'models.m.device_map'"):
        ModelSettings.from_mapping({"source": "x", "device_map": 3}, "models.m")


def test_auto_is_the_cpu_one_gpu_when_the_weights_fit_it_else_a_spread():
    assert resolve("auto", 140 * GIB, []) == "cpu"
    assert resolve("auto", 60 * GIB, [80 * GIB, 80 * GIB]) == "cuda:0"  # 72 GiB with the headroom
    assert resolve("auto", 70 * GIB, [80 * GIB, 80 * GIB]) == "auto"  # 84 GiB: accelerate spreads it
    assert resolve("balanced", 1, []) == "balanced" and resolve({"a": "disk"}, 1, []) == {"a": "disk"}


def test_an_offload_folder_only_where_weights_may_go_to_disk():
    assert needs_offload_folder(SPLIT) and needs_offload_folder("auto") and needs_offload_folder("sequential")
    assert not needs_offload_folder("cpu") and not needs_offload_folder("cuda:0")
    assert not needs_offload_folder({"model.layers.0": 0, "lm_head": "cpu"})


@pytest.fixture(scope="module")
def split_model(tiny_model_dir, tmp_path_factory):
    return load_model(tiny_model_dir, SPLIT, "float32", offload_dir=tmp_path_factory.mktemp("offload"))


def test_a_split_model_keeps_its_offloaded_weights_on_disk(split_model):
    model, _ = split_model
    blocks = decoder_layers(model)
    assert model.hf_device_map == SPLIT
    assert blocks[1].self_attn.q_proj.weight.device.type == "meta"  # loaded for each call, never held
    assert blocks[0].self_attn.q_proj.weight.device.type == "cpu"
    assert execution_device(blocks[1]).type == "cpu" and input_device(model).type == "cpu"
    assert block_shares(blocks) == {torch.device("cpu"): 1.0}
    assert model_free_memory(model) is None  # CPU: the config's batches


PROMPTS = [[5, 6, 7, 8, 9], [10, 11, 12], [13, 14, 15, 16], [17, 18], [19, 20, 21, 22, 23, 24], [25, 26, 27]]
#: The same behind a shared prefix (a chat template's system prompt): run once, its cache shared.
PREFIXED = [list(range(40, 52)) + p for p in PROMPTS]


@pytest.mark.parametrize("prompts", [PROMPTS, PREFIXED], ids=["own", "shared_prefix"])
def test_a_split_model_gives_the_same_greedy_answers(tiny_model, split_model, prompts):
    def answers(model):
        return [g.gen_ids for g in generate_batched(model, prompts, pad_id=0, stop_ids=set(), eos=set(),
                                                    max_new_tokens=6, batch_size=4)]

    assert answers(split_model[0]) == answers(tiny_model[0])


@pytest.mark.parametrize("prompts", [PROMPTS, PREFIXED], ids=["own", "shared_prefix"])
def test_a_split_model_gives_the_same_captures_and_stops_after_the_deepest_layer(tiny_model, split_model, tmp_path,
                                                                                 prompts):
    seqs = [p + [30, 31] for p in prompts]
    kwargs = dict(ids=[f"q{i}" for i in range(len(seqs))], seqs=seqs,
                  positions=np.array([[len(s) - 1, len(s) - 3] for s in seqs]),
                  labels=np.zeros(len(seqs), dtype=np.int8), tokens=["last_q", "-1"], layers=[-1, 1, 2],
                  sites=["residual", "mlp_output"], model_name="tiny",
                  pad_id=tiny_model[1].pad_token_id, batch_tokens=1000)
    runs = []
    for name, (model, _) in (("whole", tiny_model), ("split", split_model)):
        ran = []
        handle = decoder_layers(model)[3].register_forward_pre_hook(lambda *_: ran.append(1))
        try:
            extract_to_h5(model, str(tmp_path / f"{name}.h5"), **kwargs)
        finally:
            handle.remove()
        assert not ran  # the pass ended at layer 2, before the last block
        runs.append(tmp_path / f"{name}.h5")
    for site in ("residual", "mlp_output"):
        for layer in (-1, 1, 2):
            whole, split = (read_layer(path, site, layer) for path in runs)
            assert np.abs(whole).max() > 0 and np.array_equal(whole, split)


LLAMA_8B = ModelShape(layers=32, hidden=4096, intermediate=14336, heads=32, kv_heads=8, head_dim=128,
                      vocab=128256, tied=False)


def test_extraction_tokens_that_fit_the_free_memory():
    # per token: keys and values of 32 layers x 8 heads x 128 dims, and 4 hidden + 2 intermediate values, bfloat16
    per_token = 2 * 32 * 8 * 128 * 2 + (4 * 4096 + 2 * 14336) * 2
    assert tokens_that_fit(10 * GIB, LLAMA_8B, 2, 10**9) == int(MEMORY_SHARE * 10 * GIB // per_token)
    assert tokens_that_fit(10 * GIB, LLAMA_8B, 2, 4096) == 4096  # the config's batch is an upper bound
    assert tokens_that_fit(1, LLAMA_8B, 2, 4096) == 1


def test_a_spread_model_sizes_its_batches_by_its_fullest_gpu(monkeypatch, tiny_model):
    import truthmap.batches as batches
    import truthmap.placement as placement

    gpu0, gpu1 = torch.device("cuda:0"), torch.device("cuda:1")
    monkeypatch.setattr(placement, "block_shares", lambda blocks: {gpu0: 0.75, gpu1: 0.25})
    monkeypatch.setattr(batches, "free_memory", {gpu0: 30 * GIB, gpu1: 20 * GIB}.get)
    # gpu0 holds three quarters of every row's cache in 30 GiB: as if 40 GiB held all of it
    assert model_free_memory(tiny_model[0]) == 40 * GIB


def test_weight_bytes_in_the_runs_dtype_are_the_models_parameters(tiny_model, tiny_model_dir):
    from truthmap.models import ModelInfo, weight_bytes

    params = sum(p.numel() for p in tiny_model[0].parameters())
    assert weight_bytes(ModelInfo.read(tiny_model_dir), torch.bfloat16) == 2 * params


def test_a_gpu_budget_sizes_decoding_rows_and_extraction_tokens(monkeypatch, tiny_model):
    import truthmap.batches as batches
    from truthmap.activations import fitting_batch_tokens
    from truthmap.batches import rows_that_fit
    from truthmap.generation import decoding_rows

    model = tiny_model[0]
    shape = ModelShape.from_config(model.config.to_dict())
    assert fitting_batch_tokens(model, 2048) == 2048 and decoding_rows(model, [[1, 2]], 8, 48) == 48  # CPU
    monkeypatch.setattr(batches, "model_free_memory", lambda model: 100_000)
    assert batches.gpu_budget(model) == (100_000, shape, 4)
    assert fitting_batch_tokens(model, 2048) == tokens_that_fit(100_000, shape, 4, 2048) < 2048
    assert decoding_rows(model, [[1, 2, 3], [4]], 8, 48) == rows_that_fit(100_000, shape, 4, 11, 48) < 48
