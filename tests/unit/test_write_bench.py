"""Tests for truthmap.write_bench: the writers it times fill the same shard."""

from __future__ import annotations

import numpy as np

from truthmap.activations import token_batches
from truthmap.h5io import dataset_name, read_layer
from truthmap.write_bench import WRITERS, main, time_write


def test_every_writer_writes_the_same_shard(tmp_path):
    rng = np.random.default_rng(1)
    n = 700  # three chunks, and batches that each take rows from all of them
    lengths = rng.integers(5, 40, n)
    assert len(token_batches(list(lengths), 4000)) > 2
    blocks = {dataset_name("residual", layer): rng.standard_normal((n, 2, 3)).astype(np.float16) for layer in (0, 1)}
    modes = tuple(WRITERS)
    for mode in modes:
        time_write(tmp_path / f"{mode}.h5", lengths, 4000, blocks, 2, mode)
    for layer in (0, 1):
        before = read_layer(tmp_path / "row lists.h5", "residual", layer)
        assert np.count_nonzero(before.any(axis=(1, 2))) > 0
        for mode in modes[1:]:
            np.testing.assert_array_equal(read_layer(tmp_path / f"{mode}.h5", "residual", layer), before)


def test_the_bench_prints_every_writer(capsys):
    args = ["--examples", "40", "--layers", "2", "--hidden", "8", "--batch-tokens", "600", "--repeats", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert all(f"| {mode} |" in out for mode in WRITERS)
    assert "exponent bits" in out
