"""Tests for truthmap.h5io: the shard layout, atomic writing, and errors that name the file."""

from __future__ import annotations

import os

import h5py
import numpy as np
import pytest

from truthmap.files import InputError
from truthmap.h5io import (
    CHUNK_ROWS,
    WRITE_BUFFER_BYTES,
    ActivationWriter,
    chunk_rows,
    dataset_name,
    nonfinite_rows,
    read_layer,
    read_meta,
)

TOKENS = ["last_q", "exact_answer_first", "-1"]
SITE = "mlp_input"


def make_data(n: int, hidden: int, layers=(0, 2), seed: int = 0, widths=None):
    """Index arrays and a block per (site, layer) dataset; ``widths`` ({site: H}) defaults to
    one site, :data:`SITE`, of width ``hidden``."""
    rng = np.random.default_rng(seed)
    ids = [f"question-{i}-é" for i in range(n)]  # non-ASCII ids survive the round trip
    labels = rng.integers(0, 2, size=n)
    positions = rng.integers(0, 50, size=(n, len(TOKENS)))
    positions[rng.random(positions.shape) < 0.2] = -1
    blocks = {dataset_name(site, layer): rng.normal(size=(n, len(TOKENS), hidden if layer == -1 else width))
              for site, width in (widths or {SITE: hidden}).items() for layer in layers}
    return ids, labels, positions, blocks


def writer(path, ids, labels, positions, layers, hidden, widths=None):
    return ActivationWriter(
        path, ids=ids, labels=labels, positions=positions, tokens=TOKENS, layers=list(layers),
        hidden_size=hidden, widths=widths or {SITE: hidden}, model="tiny-llama",
    )


def write_all(path, n=10, hidden=4, layers=(0, 2), batches=((7, 2, 9), (0, 5), (8, 1, 3, 4, 6)), widths=None):
    """Write a shard in several calls, each with rows out of order."""
    ids, labels, positions, blocks = make_data(n, hidden, layers, widths=widths)
    with writer(path, ids, labels, positions, layers, hidden, widths) as w:
        for rows in batches:
            rows = np.array(rows)
            w.write(rows, {name: block[rows] for name, block in blocks.items()})
    return ids, labels, positions, blocks


def test_round_trip_of_index_arrays_and_attributes(tmp_path):
    path = tmp_path / "shard.h5"
    ids, labels, positions, _ = write_all(path)
    meta = read_meta(path)
    assert meta.path == str(path)
    assert meta.ids == ids
    assert meta.labels.tolist() == labels.tolist()
    np.testing.assert_array_equal(meta.valid, positions >= 0)
    assert meta.tokens == TOKENS
    assert meta.layers == [0, 2]
    assert (meta.sites, meta.model, meta.hidden_size) == (["mlp_input"], "tiny-llama", 4)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["positions"][:], positions)
        assert f["positions"].dtype == np.int32
        assert f["label"].dtype == np.int8
        assert bool(f.attrs["complete"]) is True


def test_rows_written_out_of_order_land_at_their_rows(tmp_path):
    path = tmp_path / "shard.h5"
    _, _, _, blocks = write_all(path)
    for layer in (0, 2):
        block = read_layer(path, SITE, layer)
        assert block.shape == (10, len(TOKENS), 4)
        np.testing.assert_array_equal(block, blocks[dataset_name(SITE, layer)].astype(np.float16))


@pytest.mark.parametrize("n", [2 * CHUNK_ROWS + 37, 2 * CHUNK_ROWS + 38], ids=["even chunks", "a short last chunk"])
@pytest.mark.parametrize("buffer_bytes", [0, 6_000, WRITE_BUFFER_BYTES], ids=["each", "some", "all"])
def test_batches_scattered_over_many_chunks_keep_every_earlier_row(tmp_path, buffer_bytes, n):
    """Length-sorted extraction batches pick rows from every chunk; each write rewrites the chunks it
    touches, so rows written earlier must survive (and unwritten rows stay zero), whether the
    writer writes each batch at once, a few held together, or all of them at the close. 550 rows
    make chunks of 184, so the last chunk reaches past the end of the shard."""
    rng = np.random.default_rng(3)
    order = rng.permutation(n)
    batches = np.array_split(order[: n - 5], 4)  # the last 5 rows are never written
    path = tmp_path / "shard.h5"
    ids, labels, positions, blocks = make_data(n, 3)
    with ActivationWriter(path, ids=ids, labels=labels, positions=positions, tokens=TOKENS, layers=[0, 2],
                          hidden_size=3, widths={SITE: 3}, model="tiny-llama", buffer_bytes=buffer_bytes) as w:
        for rows in batches:
            w.write(rows, {name: block[rows] for name, block in blocks.items()})
    for layer in (0, 2):
        expected = blocks[dataset_name(SITE, layer)].astype(np.float16)
        expected[order[n - 5 :]] = 0
        np.testing.assert_array_equal(read_layer(path, SITE, layer), expected)


def test_the_window_is_whole_chunk_groups_within_the_hold(tmp_path):
    n = 2 * CHUNK_ROWS + 38  # chunks of 184 rows
    ids, labels, positions, _ = make_data(n, 3)
    row_bytes = 2 * len(TOKENS) * 3 * 2  # layers x tokens x width x float16

    def window(buffer_bytes):
        with ActivationWriter(tmp_path / "shard.h5", ids=ids, labels=labels, positions=positions, tokens=TOKENS,
                              layers=[0, 2], hidden_size=3, widths={SITE: 3}, model="tiny",
                              buffer_bytes=buffer_bytes) as w:
            return w.window_rows()

    assert window(n * row_bytes) is None  # the shard fits
    assert window(n * row_bytes - 1) == 2 * 184
    assert window(184 * row_bytes) == 184
    assert window(0) == 184  # at least one group


def test_groups_are_written_once_all_their_rows_have_arrived(tmp_path, monkeypatch):
    """Rows that complete a group of chunk rows are written at once (the hold is never reached),
    and only then: a group is never read back."""
    import truthmap.h5io as h5io

    reads = []
    monkeypatch.setattr(h5io, "_read_group", lambda dataset, start: reads.append(start))
    n = 2 * CHUNK_ROWS + 38
    ids, labels, positions, blocks = make_data(n, 3)
    path = tmp_path / "shard.h5"
    rng = np.random.default_rng(4)
    with ActivationWriter(path, ids=ids, labels=labels, positions=positions, tokens=TOKENS, layers=[0, 2],
                          hidden_size=3, widths={SITE: 3}, model="tiny") as w:
        for first in (368, 0, 184):  # one group at a time, in two writes each, rows shuffled
            rows = first + rng.permutation(min(184, n - first))
            half, rest = np.array_split(rows, 2)
            w.write(half, {name: block[half] for name, block in blocks.items()})
            assert w._pending_bytes > 0  # held: the group is not complete
            w.write(rest, {name: block[rest] for name, block in blocks.items()})
            assert w._pending_bytes == 0  # complete: written
    assert reads == []
    for layer in (0, 2):
        np.testing.assert_array_equal(read_layer(path, SITE, layer),
                                      blocks[dataset_name(SITE, layer)].astype(np.float16))


def test_writes_that_each_fill_one_layer_are_all_kept(tmp_path):
    """A writer may be handed a layer at a time (the bench's synthetic shards): what it holds is
    kept per dataset."""
    path = tmp_path / "shard.h5"
    ids, labels, positions, blocks = make_data(10, 4)
    with writer(path, ids, labels, positions, (0, 2), 4) as w:
        for name, block in blocks.items():
            w.write(np.arange(10)[::-1], {name: block[::-1]})
    for layer in (0, 2):
        np.testing.assert_array_equal(read_layer(path, SITE, layer),
                                      blocks[dataset_name(SITE, layer)].astype(np.float16))


def test_sites_of_their_own_widths_and_one_embeddings_row(tmp_path):
    path = tmp_path / "shard.h5"
    widths = {"mlp_down_input": 6, "residual": 4}
    _, _, _, blocks = write_all(path, layers=(-1, 0, 2), widths=widths)
    meta = read_meta(path)
    assert meta.sites == ["mlp_down_input", "residual"] and meta.layers == [-1, 0, 2]
    for site, width in widths.items():
        for layer in (0, 2):
            block = read_layer(path, site, layer)
            assert block.shape == (10, len(TOKENS), width)
            np.testing.assert_array_equal(block, blocks[f"sites/{site}/{layer}"].astype(np.float16))
        # the embeddings row is stored once and read whatever the site
        np.testing.assert_array_equal(read_layer(path, site, -1), blocks["embeddings"].astype(np.float16))
    with h5py.File(path, "r") as f:
        assert sorted(f["sites"]) == ["mlp_down_input", "residual"] and f["embeddings"].shape == (10, 3, 4)


def test_layers_are_stored_and_read_as_float16(tmp_path):
    path = tmp_path / "shard.h5"
    ids, labels, positions, _ = make_data(2, 3, layers=(1,))
    block = np.full((2, len(TOKENS), 3), 1 / 3)
    with writer(path, ids, labels, positions, [1], 3) as w:
        w.write(np.array([1, 0]), {dataset_name(SITE, 1): block})
    with h5py.File(path, "r") as f:
        assert f[dataset_name(SITE, 1)].dtype == np.float16
    out = read_layer(path, SITE, 1)
    assert out.dtype == np.float16
    assert np.all(out == np.float16(1 / 3))
    assert np.all(out.astype(np.float64) != 1 / 3)  # rounded, so really stored at half precision


def test_read_layer_one_token(tmp_path):
    path = tmp_path / "shard.h5"
    _, _, _, blocks = write_all(path)
    for p in range(len(TOKENS)):
        cell = read_layer(path, SITE, 2, token_index=p)
        assert cell.shape == (10, 4) and cell.dtype == np.float16
        np.testing.assert_array_equal(cell, blocks[dataset_name(SITE, 2)][:, p, :].astype(np.float16))


@pytest.mark.parametrize("n, rows", [(10, 10), (300, 150), (512, CHUNK_ROWS)])
def test_chunks_hold_one_token_so_a_cell_read_touches_only_its_chunks(tmp_path, n, rows):
    path = tmp_path / "shard.h5"
    write_all(path, n=n, hidden=4, layers=(0,), batches=(np.arange(n)[::-1],))
    with h5py.File(path, "r") as f:
        dset = f[dataset_name(SITE, 0)]
        assert dset.chunks == (rows, 1, 4)
        n_chunks = dset.id.get_num_chunks()
        assert n_chunks == -(-n // rows) * len(TOKENS)
        offsets = [dset.id.get_chunk_info(i).chunk_offset for i in range(n_chunks)]
    # every chunk covers one token and every hidden unit: a (layer, token) cell is its own chunks
    assert sorted({o[1] for o in offsets}) == list(range(len(TOKENS)))
    assert {o[2] for o in offsets} == {0}


def test_exception_inside_the_writer_leaves_no_file(tmp_path):
    path = tmp_path / "shard.h5"
    ids, labels, positions, blocks = make_data(4, 2)
    with pytest.raises(RuntimeError, match="boom"):
        with writer(path, ids, labels, positions, [0, 2], 2) as w:
            w.write(np.array([0, 1]), {name: block[:2] for name, block in blocks.items()})
            raise RuntimeError("boom")
    assert not path.exists()
    assert os.listdir(tmp_path) == []  # no temporary file left behind either


def test_exception_inside_the_writer_keeps_the_previous_shard(tmp_path):
    path = tmp_path / "shard.h5"
    ids, _, _, _ = write_all(path)
    with pytest.raises(KeyboardInterrupt):
        new_ids, labels, positions, _ = make_data(3, 4, seed=1)
        with writer(path, [f"new-{i}" for i in range(3)], labels, positions, [0], 4):
            raise KeyboardInterrupt
    assert read_meta(path).ids == ids
    assert os.listdir(tmp_path) == ["shard.h5"]


def test_writer_rejects_arrays_of_different_sizes(tmp_path):
    ids, labels, positions, _ = make_data(4, 2)
    with pytest.raises(ValueError, match="disagree in size"):
        writer(tmp_path / "shard.h5", ids[:3], labels, positions, [0], 2)
    assert os.listdir(tmp_path) == []


def test_incomplete_file_is_an_input_error_naming_the_path(tmp_path):
    path = tmp_path / "shard.h5"
    write_all(path)
    with h5py.File(path, "r+") as f:
        f.attrs["complete"] = False
    with pytest.raises(InputError, match="incomplete") as err:
        read_meta(path)
    assert str(path) in str(err.value)


def test_file_without_the_complete_attribute_is_incomplete(tmp_path):
    path = tmp_path / "shard.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("ids", data=np.array(["a"], dtype=object), dtype=h5py.string_dtype())
    with pytest.raises(InputError, match="incomplete"):
        read_meta(path)


@pytest.mark.parametrize("content", [b"", b"this is not an HDF5 file\n" * 10, "truncated"])
def test_unreadable_file_is_an_input_error_naming_the_path(tmp_path, content):
    path = tmp_path / "bad.h5"
    if content == "truncated":
        write_all(tmp_path / "good.h5")
        content = (tmp_path / "good.h5").read_bytes()[:600]
    path.write_bytes(content)
    for read in (read_meta, lambda p: read_layer(p, SITE, 0)):
        with pytest.raises(InputError, match="not a readable HDF5 file") as err:
            read(path)
        assert str(path) in str(err.value)


def test_missing_file_is_an_input_error_naming_the_path(tmp_path):
    path = tmp_path / "nowhere" / "shard.h5"
    for read in (read_meta, lambda p: read_layer(p, SITE, 0)):
        with pytest.raises(InputError, match="not found") as err:
            read(path)
        assert str(path) in str(err.value)


def test_missing_layer_is_an_input_error(tmp_path):
    path = tmp_path / "shard.h5"
    write_all(path)
    with pytest.raises(InputError, match=r"mlp_input of layer 7 was not extracted \(have mlp_input 0, mlp_input 2\)") as err:
        read_layer(path, SITE, 7)
    assert str(path) in str(err.value)
    with pytest.raises(InputError, match=r"residual of layer 0 was not extracted"):
        read_layer(path, "residual", 0)
    with pytest.raises(InputError, match=r"the embeddings \(layer -1\) was not extracted"):
        read_layer(path, SITE, -1)


def test_chunks_split_the_rows_evenly():
    assert [chunk_rows(n) for n in (0, 1, 100, 256, 257, 384, 512, 1000)] == [1, 1, 100, 256, 129, 192, 256, 250]
    for n in range(1, 2000, 7):
        rows = chunk_rows(n)
        chunks = -(-n // rows)
        assert rows <= 256 and chunks * rows - n < chunks


def test_values_beyond_float16_stop_the_write_with_layer_and_rows(tmp_path):
    path = tmp_path / "shard.h5"
    ids, labels, positions, blocks = make_data(4, 2)
    blocks[dataset_name(SITE, 2)][3, 0, 0] = 1e6
    with pytest.raises(ValueError, match=r"mlp_input of layer 2, rows \[3\]: hidden states are NaN or beyond the "
                                         "float16 range"):
        with writer(path, ids, labels, positions, [0, 2], 2) as w:
            w.write(np.arange(4), blocks)
    assert not path.exists()


def test_the_float16_check_agrees_with_isfinite_on_every_bit_pattern():
    every = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    np.testing.assert_array_equal(nonfinite_rows(every[:, None]), ~np.isfinite(every))
    rows = np.zeros((4, 3, 5), np.float16)
    rows[1, 2, 3], rows[3, 0, 0] = np.inf, -np.nan
    assert nonfinite_rows(rows).tolist() == [False, True, False, True]
    assert nonfinite_rows(rows[:, :, ::2]).tolist() == [False, False, False, True]  # a strided view
    assert nonfinite_rows(rows.astype(np.float32)).tolist() == [False, True, False, True]


def test_a_tampered_shard_is_refused_on_read(tmp_path):
    path = tmp_path / "shard.h5"
    write_all(path, n=6, hidden=4, layers=(0, 1), batches=(np.arange(6),))
    with h5py.File(path, "r+") as f:
        f[dataset_name(SITE, 0)][2, 1, 3] = np.nan
        del f[dataset_name(SITE, 1)]
        f.create_dataset(dataset_name(SITE, 1), data=np.zeros((5, len(TOKENS), 4), dtype=np.float16))
    with pytest.raises(InputError, match=r"mlp_input of layer 0 holds NaN or infinite values in rows \[2\]"):
        read_layer(path, SITE, 0)
    with pytest.raises(InputError, match=r"mlp_input of layer 1 has shape \(5, 3, 4\), expected \(6, 3, 4\)"):
        read_layer(path, SITE, 1)
