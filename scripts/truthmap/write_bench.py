"""How fast an extraction shard is written: the writer's chunk slabs against h5py row lists.

    PYTHONPATH=scripts .venv/bin/python -m truthmap.write_bench [--examples 1847] [--repeats 2]

A synthetic shard shaped like the default run's activations (30 layers x 12 tokens x 576, float16),
filled batch by batch in the rows an extraction gives it: batches of at most 32,768 tokens (a
GPU's; 2,048 on a CPU) over length-sorted questions, so each batch holds rows from every chunk.
Three writers: ``row lists`` hands h5py each batch's sorted rows (the writer until 2026-12-04);
``slabs`` rewrites each chunk a batch touches whole; ``held slabs`` is
:class:`truthmap.h5io.ActivationWriter` holding 256 MB of blocks (an extraction job holds at least that) before it
writes them as slabs. The modes alternate ``--repeats`` times in one process, so the ratios
compare like with like on a noisy machine.
On a GPU the extraction job's time was mostly this write (README, Performance).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from truthmap.activations import token_batches
from truthmap.h5io import WRITE_BUFFER_BYTES, ActivationWriter, dataset_name


class RowListWriter(ActivationWriter):
    """The writer before 2026-12-04: each batch's sorted rows handed to h5py as a row list."""

    def _write_rows(self, name: str, rows: np.ndarray, half: np.ndarray) -> None:
        self._file[name][rows] = half


def time_write(path: Path, batches: Sequence[np.ndarray], blocks: dict[str, np.ndarray], n: int,
               tokens: int, mode: str) -> float:
    """Seconds to create, fill and close one shard in ``mode`` (``row lists``, ``slabs``, ``held slabs``)."""
    start = time.perf_counter()
    width = next(iter(blocks.values())).shape[2]
    kind = RowListWriter if mode == "row lists" else ActivationWriter
    with kind(path, ids=[str(i) for i in range(n)], labels=np.zeros(n, dtype=np.int8),
              positions=np.zeros((n, tokens), dtype=np.int64), tokens=[str(t) for t in range(tokens)],
              layers=list(range(len(blocks))), hidden_size=width, widths={"residual": width}, model="synthetic",
              buffer_bytes=WRITE_BUFFER_BYTES if mode == "held slabs" else 0) as writer:
        for rows in batches:
            writer.write(rows, {name: block[: len(rows)] for name, block in blocks.items()})
    return time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m truthmap.write_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=1847)
    parser.add_argument("--layers", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=576)
    parser.add_argument("--batch-tokens", type=int, default=32768)
    parser.add_argument("--repeats", type=int, default=2)
    opts = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    lengths = rng.integers(40, 70, opts.examples)  # the built-in questions' prompt + answer lengths
    batches = [np.asarray(b) for b in token_batches(list(lengths), opts.batch_tokens)]
    widest = max(len(b) for b in batches)
    blocks = {dataset_name("residual", layer): rng.standard_normal((widest, opts.tokens, opts.hidden))
              .astype(np.float16) for layer in range(opts.layers)}
    megabytes = opts.examples * opts.layers * opts.tokens * opts.hidden * 2 / 1e6
    print(f"shard: {opts.examples} examples x {opts.layers} layers x {opts.tokens} tokens x {opts.hidden}, "
          f"{megabytes:.0f} MB of float16, {len(batches)} batches of {[len(b) for b in batches]} rows")
    times: dict[str, list[float]] = {"row lists": [], "slabs": [], "held slabs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(opts.repeats):
            for mode in times:
                times[mode].append(time_write(Path(tmp) / "shard.h5", batches, blocks, opts.examples,
                                              opts.tokens, mode))
    before = float(np.median(times["row lists"]))
    print("| writer | median s | MB/s | vs row lists |\n| --- | --- | --- | --- |")
    for mode, seconds in times.items():
        median = float(np.median(seconds))
        print(f"| {mode} | {median:.2f} | {megabytes / median:.0f} | {before / median:.1f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
