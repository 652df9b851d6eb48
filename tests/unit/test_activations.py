"""Hooked extraction against the model's own output_hidden_states, and the HDF5 it writes."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from truthmap.activations import (
    BackgroundWrites,
    PositionCapture,
    extract_batch,
    extract_to_h5,
    prefix_to_share,
    shard_inputs,
    token_batches,
    write_buffer_bytes,
)
from truthmap.h5io import WRITE_BUFFER_BYTES, dataset_name, read_layer, read_meta
from truthmap.models import decoder_body, decoder_layers

SEQS = [[5, 6, 7, 8, 9, 10, 11], [12, 13, 14], [15, 16, 17, 18, 19], [20, 21, 22, 23, 24, 25, 26, 27, 28]]
POSITIONS = np.array([[6, 2, -1], [2, 0, 1], [4, -1, 3], [8, 0, 5]])


def _reference(model, seq, layer, site):
    """Hidden states of one unpadded sequence: layer output, or the MLP input via a plain hook."""
    ids = torch.tensor([seq])
    if site == "residual":
        with torch.no_grad():
            out = model(ids, output_hidden_states=True)
        return out.hidden_states[layer + 1][0]
    kept = {}
    handle = decoder_layers(model)[layer].mlp.register_forward_hook(lambda m, a, o: kept.setdefault("x", a[0]))
    with torch.no_grad():
        model(ids)
    handle.remove()
    return kept["x"][0]


def test_token_batches_respect_budget():
    lengths = [7, 3, 5, 9, 2, 8]
    batches = token_batches(lengths, 16)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 16


@pytest.mark.parametrize("window", [1, 3, 4, 6, 100])
def test_token_batches_in_windows_finish_each_window_first(window):
    lengths = [7, 3, 5, 9, 2, 8, 4, 4, 6, 1]
    batches = token_batches(lengths, 16, window)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    runs = [{i // window for i in batch} for batch in batches]
    assert all(len(run) == 1 for run in runs)  # no batch takes rows of two windows
    assert [min(run) for run in runs] == sorted(min(run) for run in runs)  # windows in order
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= 16
    if window >= len(lengths):
        assert batches == token_batches(lengths, 16)


def test_a_shard_larger_than_the_hold_is_extracted_window_by_window(tiny_model, tmp_path, monkeypatch):
    """With a hold of two chunk groups, batches finish each window of rows first, every chunk is
    written once, and the values are those of a shard held whole."""
    import truthmap.activations as activations
    from truthmap.h5io import ActivationWriter

    model, tok = tiny_model
    rng = np.random.default_rng(5)
    n = 600  # chunks of 200 rows
    seqs = [list(rng.integers(3, 90, int(rng.integers(4, 12)))) for _ in range(n)]
    positions = np.array([[len(s) - 1, 0] for s in seqs])
    common = dict(ids=[str(i) for i in range(n)], seqs=seqs, positions=positions, labels=np.zeros(n, np.int8),
                  tokens=["-1", "first"], layers=[0, 1], sites=["residual"], model_name="tiny",
                  pad_id=tok.pad_token_id, batch_tokens=512)
    extract_to_h5(model, str(tmp_path / "whole.h5"), **common)
    row_bytes = 2 * 2 * 32 * 2  # layers x tokens x hidden x float16
    monkeypatch.setattr(activations, "write_buffer_bytes", lambda model: 2 * 200 * row_bytes + 5)
    written = []
    original = ActivationWriter._write_chunks
    monkeypatch.setattr(ActivationWriter, "_write_chunks", lambda self, dataset, held: (
        written.extend((dataset.name, int(g)) for g in np.unique(np.concatenate([rows for rows, _ in held]) // 200)),
        original(self, dataset, held))[1])
    extract_to_h5(model, str(tmp_path / "windows.h5"), **common)
    assert sorted(written) == sorted((f"/{dataset_name('residual', layer)}", group)
                                     for layer in (0, 1) for group in range(3))  # each group once
    for layer in (0, 1):
        np.testing.assert_allclose(read_layer(tmp_path / "windows.h5", "residual", layer).astype(np.float32),
                                   read_layer(tmp_path / "whole.h5", "residual", layer).astype(np.float32),
                                   atol=2e-3)


SITES = ["residual", "mlp_input"]


def test_matches_unpadded_forward(tiny_model):
    """Both sites come from one padded forward pass and match unpadded references."""
    model, tok = tiny_model
    layers = [0, 2]
    capture = PositionCapture(model, layers, SITES)
    try:
        blocks = extract_batch(decoder_body(model), capture, SEQS, POSITIONS, tok.pad_token_id, torch.device("cpu"))
    finally:
        capture.remove()
    assert sorted(blocks) == sorted(dataset_name(site, layer) for site in SITES for layer in layers)
    for name, (site, layer) in {dataset_name(s, la): (s, la) for s in SITES for la in layers}.items():
        block = blocks[name]
        assert block.shape == (4, 3, 32) and block.dtype == np.float16
        for row, seq in enumerate(SEQS):
            ref = _reference(model, seq, layer, site)
            for p, pos in enumerate(POSITIONS[row]):
                got = block[row, p].astype(np.float32)
                if pos < 0:
                    assert not got.any()
                else:
                    np.testing.assert_allclose(got, ref[pos].numpy(), rtol=2e-3, atol=2e-3)


PREFIX = [30, 31, 32, 33, 34, 35, 36, 37, 38, 39]
SHARED = [PREFIX + [40, 41, 42], PREFIX + [43, 44, 45, 46, 47], PREFIX + [48]]
SHARED_POSITIONS = np.array([[10, 12, -1], [11, 14, 13], [10, -1, 10]])


def test_prefix_to_share_stops_before_the_first_requested_position():
    assert prefix_to_share(SHARED, SHARED_POSITIONS) == 10
    assert prefix_to_share(SHARED, np.array([[9, 12, -1], [11, 14, 13], [10, -1, 10]])) == 9
    assert prefix_to_share(SHARED, np.array([[5, 12, -1], [11, 14, 13], [10, -1, 10]])) == 0  # below 8
    assert prefix_to_share(SHARED[:1], SHARED_POSITIONS[:1]) == 0  # one sequence: nothing to share
    assert prefix_to_share(SEQS, POSITIONS) == 0


@pytest.mark.parametrize("site", SITES)
def test_a_shared_prefix_gives_the_unshared_states(tiny_model, site):
    model, tok = tiny_model
    layers = [1, 2]
    capture = PositionCapture(model, layers, SITES)
    body = decoder_body(model)
    try:
        shared = extract_batch(body, capture, SHARED, SHARED_POSITIONS, tok.pad_token_id, torch.device("cpu"))
        plain = extract_batch(body, capture, SHARED, SHARED_POSITIONS, tok.pad_token_id, torch.device("cpu"),
                              share_prefix=False)
    finally:
        capture.remove()
    for layer in layers:
        name = dataset_name(site, layer)
        assert not (SHARED_POSITIONS < 0).any() or not shared[name][SHARED_POSITIONS < 0].any()
        np.testing.assert_allclose(shared[name].astype(np.float32), plain[name].astype(np.float32), atol=2e-3)
        row = 1
        ref = _reference(model, SHARED[row], layer, site)
        for p, pos in enumerate(SHARED_POSITIONS[row]):
            np.testing.assert_allclose(shared[name][row, p].astype(np.float32), ref[pos].numpy(), atol=2e-3)


def test_background_writes_keep_order_and_raise_failures():
    seen = []
    writes = BackgroundWrites(lambda x: seen.append(x), depth=1)
    for i in range(20):
        writes.put(i)
    writes.join()
    assert seen == list(range(20))

    def fail(x):
        raise OSError(f"disk full at {x}")

    writes = BackgroundWrites(fail)
    with pytest.raises(OSError, match="disk full at 0"):
        for i in range(10):
            writes.put(i)
        writes.join()


@pytest.mark.parametrize("sites", [["residual"], ["attention_output"], ["residual", "attention_output"],
                                   ["attention_output", "mlp_down_input", "mlp_output"]])
def test_stops_after_the_deepest_layer_once_each_site_is_seen(tiny_model, sites):
    model, tok = tiny_model
    calls = []
    blocks = decoder_layers(model)
    handles = [blocks[2].register_forward_pre_hook(lambda *a: calls.append("block 2")),
               blocks[1].mlp.register_forward_pre_hook(lambda *a: calls.append("mlp 1"))]
    capture = PositionCapture(model, [0, 1], sites)
    try:
        got = extract_batch(decoder_body(model), capture, SEQS[:1], POSITIONS[:1], 0, torch.device("cpu"))
    finally:
        capture.remove()
        for handle in handles:
            handle.remove()
    assert sorted(got) == sorted(dataset_name(site, layer) for site in sites for layer in (0, 1))
    assert "block 2" not in calls  # nothing past the deepest layer runs
    assert ("mlp 1" in calls) == (sites != ["attention_output"])  # nor past its last site


def test_extract_to_h5_is_independent_of_batching(tiny_model, tmp_path):
    model, tok = tiny_model
    ids = ["a", "b", "c", "d"]
    labels = np.array([0, 1, 1, 0], dtype=np.int8)
    tokens = ["last_q", "exact_answer_first", "-1"]
    paths = []
    for budget in (9, 1000):
        path = tmp_path / f"shard{budget}.h5"
        extract_to_h5(model, str(path), ids=ids, seqs=SEQS, positions=POSITIONS, labels=labels, tokens=tokens,
                      layers=[0, 3], sites=["residual"], model_name="tiny", pad_id=tok.pad_token_id,
                      batch_tokens=budget)
        paths.append(path)
    meta = read_meta(paths[0])
    assert meta.ids == ids and meta.tokens == tokens and meta.layers == [0, 3]
    with h5py.File(paths[0]) as f:
        assert f.attrs["model_dtype"] == "float32"  # the dtype the model ran in
    np.testing.assert_array_equal(meta.labels, labels)
    np.testing.assert_array_equal(meta.valid, POSITIONS >= 0)
    for layer in (0, 3):
        np.testing.assert_allclose(
            read_layer(paths[0], "residual", layer).astype(np.float32),
            read_layer(paths[1], "residual", layer).astype(np.float32), atol=2e-3
        )


def test_the_writer_holds_the_weights_bytes_and_at_least_256_mb():
    assert write_buffer_bytes(torch.nn.Linear(4, 4)) == WRITE_BUFFER_BYTES
    with torch.device("meta"):  # shapes without memory: 16,384^2 bfloat16 weights are 512 MiB
        big = torch.nn.Linear(16384, 16384, dtype=torch.bfloat16)
    assert write_buffer_bytes(big) == (16384 * 16384 + 16384) * 2 > WRITE_BUFFER_BYTES


def test_shard_inputs_align_by_id():
    gens = [{"id": "a", "prompt_ids": [1, 2], "gen_ids": [3, 4]}, {"id": "b", "prompt_ids": [1], "gen_ids": [5]}]
    labels = [{"id": "b", "correct": True}, {"id": "a", "correct": False}]
    rows = [{"id": "b", "last_q": "0", "-1": "1"}, {"id": "a", "last_q": "1", "-1": "3"}]
    ids, seqs, pos, y = shard_inputs(gens, labels, rows, ["last_q", "-1"])
    assert ids == ["a", "b"] and seqs == [[1, 2, 3, 4], [1, 5]]
    assert pos.tolist() == [[1, 3], [0, 1]] and y.tolist() == [1, 0]
    with pytest.raises(ValueError, match="beyond"):
        shard_inputs(gens, labels, [{"id": "b", "last_q": "5", "-1": "1"}, rows[1]], ["last_q", "-1"])
    with pytest.raises(ValueError, match="'a'"):
        shard_inputs(gens, labels[:1], rows, ["last_q", "-1"])


def test_a_shared_prefix_works_with_sliding_window_layers():
    """Gemma 3 mixes sliding-window and global attention layers: the reused cache must too."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(
        vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=2,
        num_key_value_heads=1, head_dim=16, sliding_window=4, max_position_embeddings=128,
    )
    model = Gemma3ForCausalLM(config).eval()
    capture = PositionCapture(model, [1, 3], ["residual"])
    body = decoder_body(model)
    try:
        shared = extract_batch(body, capture, SHARED, SHARED_POSITIONS, 0, torch.device("cpu"))
        plain = extract_batch(body, capture, SHARED, SHARED_POSITIONS, 0, torch.device("cpu"), share_prefix=False)
    finally:
        capture.remove()
    for name in (dataset_name("residual", 1), dataset_name("residual", 3)):
        np.testing.assert_allclose(shared[name].astype(np.float32), plain[name].astype(np.float32), atol=3e-3)
