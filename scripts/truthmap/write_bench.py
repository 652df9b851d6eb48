"""How fast an extraction shard is written: whole chunks as stored bytes, against h5py slabs and row lists.

    PYTHONPATH=scripts .venv/bin/python -m truthmap.write_bench [--examples 1847] [--repeats 2]

A synthetic shard shaped like the default run's activations (30 layers x 12 tokens x 576, float16),
filled batch by batch in the rows an extraction gives it: batches of at most 32,768 tokens (a
GPU's; 2,048 on a CPU) over length-sorted questions, so each batch holds rows from every chunk.
Every writer but the first holds 256 MB of blocks (an extraction job holds at least that) before
it writes them:

- ``row lists`` hands h5py each batch's rows as a row list (the writer until 2026-12-04);
- ``slabs`` hands h5py each group of chunk rows as one (rows, P, H) slab, which HDF5 gathers into
  its chunks (the writer of 2026-12-04, until commit faa2fd5);
- ``chunks`` is :class:`truthmap.h5io.ActivationWriter`, which lays each chunk out in memory and
  writes its bytes as stored;
- ``chunks, in windows`` is the same writer given batches that finish a window of rows (as many
  groups of chunk rows as the hold takes) before they start the next, as an extraction job's are
  when its shard is larger than the hold, so that each chunk is written once. The default shard
  (766 MB) is three times the hold.

The modes alternate ``--repeats`` times in one process, so the ratios compare like with like on a
noisy machine. The bench also times the float16 check every block passes (``np.isfinite``
against the exponent bits the writer tests). On a GPU the extraction job's time was mostly this
write (README, Performance).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from truthmap.activations import token_batches
from truthmap.h5io import WRITE_BUFFER_BYTES, ActivationWriter, dataset_name, nonfinite_rows


class RowListWriter(ActivationWriter):
    """The writer before 2026-12-04 (it held nothing): each batch's rows, sorted, handed to h5py as a row list."""

    def _write_chunks(self, dataset, held) -> None:
        rows, half = _sorted_rows(held)
        dataset[rows] = half


class SlabWriter(ActivationWriter):
    """The writer of 2026-12-04, until commit faa2fd5: each group of chunk rows that the held rows
    touch, as one h5py slab."""

    def _write_chunks(self, dataset, held) -> None:
        rows, half = _sorted_rows(held)
        step = dataset.chunks[0]
        filled = self._filled.setdefault(dataset.name, set())
        starts = np.unique(rows // step * step)
        bounds = np.searchsorted(rows, np.append(starts[1:], dataset.shape[0]))
        first = 0
        for start, last in zip(starts.tolist(), bounds.tolist()):
            stop = min(start + step, dataset.shape[0])
            slab = dataset[start:stop] if start in filled else np.zeros((stop - start, *dataset.shape[1:]),
                                                                          dataset.dtype)
            slab[rows[first:last] - start] = half[first:last]
            dataset[start:stop] = slab
            filled.add(start)
            first = last


def _sorted_rows(held) -> tuple[np.ndarray, np.ndarray]:
    """The held (rows, block) pairs as one block in row order."""
    rows = np.concatenate([r for r, _ in held])
    order = np.argsort(rows, kind="stable")
    return rows[order], np.concatenate([h for _, h in held])[order]


WRITERS = {"row lists": (RowListWriter, 0, False), "slabs": (SlabWriter, WRITE_BUFFER_BYTES, False),
           "chunks": (ActivationWriter, WRITE_BUFFER_BYTES, False),
           "chunks, in windows": (ActivationWriter, WRITE_BUFFER_BYTES, True)}
"""Each mode's writer, the bytes it holds, and whether its batches finish a window of rows before
the next (:meth:`truthmap.h5io.ActivationWriter.window_rows`, what an extraction job does since
commit 7545e77)."""


def time_write(path: Path, lengths: Sequence[int], batch_tokens: int, blocks: dict[str, np.ndarray],
               tokens: int, mode: str) -> float:
    """Seconds to create, fill and close one shard of ``len(lengths)`` examples in ``mode`` of
    :data:`WRITERS`, in the batches that an extraction of examples of ``lengths`` would give it;
    ``blocks`` hold as many rows as the widest batch."""
    path.unlink(missing_ok=True)  # an extraction job writes a new file, never over an old one
    kind, hold, windowed = WRITERS[mode]
    n = len(lengths)
    start = time.perf_counter()
    width = next(iter(blocks.values())).shape[2]
    with kind(path, ids=[str(i) for i in range(n)], labels=np.zeros(n, dtype=np.int8),
              positions=np.zeros((n, tokens), dtype=np.int64), tokens=[str(t) for t in range(tokens)],
              layers=list(range(len(blocks))), hidden_size=width, widths={"residual": width}, model="synthetic",
              buffer_bytes=hold) as writer:
        for rows in token_batches(list(lengths), batch_tokens, writer.window_rows() if windowed else None):
            rows = np.asarray(rows)
            writer.write(rows, {name: block[: len(rows)] for name, block in blocks.items()})
    return time.perf_counter() - start


def check_seconds(block: np.ndarray, bits: bool, repeats: int = 5) -> float:
    """Median seconds of :func:`truthmap.h5io.nonfinite_rows` on ``block``, or of ``np.isfinite``."""
    rows = block.reshape(len(block), -1)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        nonfinite_rows(block) if bits else ~np.isfinite(rows).all(axis=1)
        seconds.append(time.perf_counter() - start)
    return float(np.median(seconds))


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
    batches = token_batches(list(lengths), opts.batch_tokens)
    widest = min(opts.examples, opts.batch_tokens // int(lengths.min()))  # the most rows any batching gives a batch
    blocks = {dataset_name("residual", layer): rng.standard_normal((widest, opts.tokens, opts.hidden))
              .astype(np.float16) for layer in range(opts.layers)}
    megabytes = opts.examples * opts.layers * opts.tokens * opts.hidden * 2 / 1e6
    print(f"shard: {opts.examples} examples x {opts.layers} layers x {opts.tokens} tokens x {opts.hidden}, "
          f"{megabytes:.0f} MB of float16, {len(batches)} batches of {[len(b) for b in batches]} rows")
    times: dict[str, list[float]] = {mode: [] for mode in WRITERS}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(opts.repeats):
            for mode in times:
                times[mode].append(time_write(Path(tmp) / "shard.h5", lengths, opts.batch_tokens, blocks,
                                              opts.tokens, mode))
    before = float(np.median(times["row lists"]))
    print("| writer | median s | MB/s | vs row lists |\n| --- | --- | --- | --- |")
    for mode, seconds in times.items():
        median = float(np.median(seconds))
        print(f"| {mode} | {median:.2f} | {megabytes / median:.0f} | {before / median:.1f}x |")
    block = blocks[dataset_name("residual", 0)]
    isfinite, bits = (check_seconds(block, exponent_bits) * 1e3 for exponent_bits in (False, True))
    print(f"float16 check of a {block.nbytes / 1e6:.1f} MB block: np.isfinite {isfinite:.2f} ms, "
          f"exponent bits {bits:.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
