"""The HDF5 layout of one activation shard, written atomically and read per cell.

One file per shard::

    /ids               (N,)        utf-8 strings, the question ids
    /label             (N,)        int8: 1 = the answer is wrong, 0 = right
    /positions         (N, P)      int32 index into prompt + generation, -1 = masked
    /valid             (N, P)      bool, positions >= 0
    /sites/<site>/<l>  (N, P, H)   float16 values of layer l's site at the P positions
    /embeddings        (N, P, D)   float16 first block's input (layer -1), when asked for

File attributes: ``tokens`` (the P names, in order), ``layers`` (-1 first when
the embeddings are there), ``sites`` and ``site_widths`` (each site's H: the
model's hidden size D, or the MLP's intermediate size for ``mlp_down_input``),
``model``, ``hidden_size`` (D), ``complete`` (set last, just before the file is
renamed into place). Every site of a layer comes from the same forward pass.
Datasets are chunked ``(rows, 1, H)`` so that reading one (site, layer, token)
cell touches only that cell's chunks; ``rows`` (at most :data:`CHUNK_ROWS`)
divides the shard evenly, so the last chunk is not mostly empty space.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from truthmap.files import InputError, atomic_path
from truthmap.settings import EMBEDDINGS_LAYER

CHUNK_ROWS = 256

WRITE_BUFFER_BYTES = 256 * 2**20
"""Blocks a writer holds at most before writing them. A chunk is written once all its rows have
arrived; until then its rows wait, and a write of a chunk only partly filled must be redone when
the rest arrives, so the hold decides how often that happens (see ``window_rows``)."""

FLOAT16_EXPONENT = np.uint16(0x7C00)
"""The exponent bits of a float16: all set in an infinity or a NaN."""

REMAKE = "delete the file: the next run extracts the shard again"


@dataclass(frozen=True)
class ShardMeta:
    """What a shard file holds, read from its attributes and index datasets."""

    path: str
    ids: list[str]
    labels: np.ndarray
    valid: np.ndarray
    tokens: list[str]
    layers: list[int]
    sites: list[str]
    model: str
    hidden_size: int


def dataset_name(site: str, layer: int) -> str:
    """Where (site, layer) is stored; the embeddings row is one dataset whatever the site."""
    return "embeddings" if layer == EMBEDDINGS_LAYER else f"sites/{site}/{layer}"


def site_layers(sites: Sequence[str], layers: Sequence[int]) -> list[tuple[str, int]]:
    """Every (site, layer) a shard stores: each site of each block layer, and the embeddings row
    (layer -1) once, under site ""."""
    return [(site, layer) for layer in layers
            for site in (sites if layer != EMBEDDINGS_LAYER else [""])]


class ActivationWriter:
    """Write one shard: create with the index arrays, then fill (site, layer) blocks by rows.

    ``widths`` maps each site to its H; ``layers`` may hold the embeddings row (-1).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        ids: Sequence[str],
        labels: np.ndarray,
        positions: np.ndarray,
        tokens: Sequence[str],
        layers: Sequence[int],
        hidden_size: int,
        widths: dict[str, int],
        model: str,
        model_dtype: str = "",
        buffer_bytes: int = WRITE_BUFFER_BYTES,
    ) -> None:
        """``model_dtype``: the dtype the model ran in (stored as an attribute; the blocks are float16).
        ``buffer_bytes``: blocks held before they are written (0 writes each one at once)."""
        self.path = Path(path)
        self.layers = list(layers)
        self.widths = {site: int(width) for site, width in widths.items()}
        n, p = positions.shape
        if len(ids) != n or len(labels) != n or p != len(tokens):
            raise ValueError("ids, labels, positions and tokens disagree in size")
        self.buffer_bytes = buffer_bytes
        self._pending: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        """Per dataset, the held (sorted rows, float16 block) of each write."""
        self._pending_bytes = 0
        self._filled: dict[str, set[int]] = {}
        """Per dataset, the first rows of the chunks written so far."""
        self._step = chunk_rows(n)
        self._group_rows = np.diff(np.append(np.arange(0, n, self._step), n))
        """Rows of each group of chunk rows (the last may be short)."""
        self._received: dict[str, np.ndarray] = {}
        """Per dataset, the rows handed to it so far in each group."""
        self._ctx = atomic_path(self.path, suffix=".h5.tmp")
        tmp = self._ctx.__enter__()
        try:
            self._file = h5py.File(tmp, "w")
            self._create(ids, labels, positions, tokens, hidden_size, model)
            self._file.attrs["model_dtype"] = model_dtype
        except BaseException as err:
            if getattr(self, "_file", None) is not None:
                self._file.close()
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise

    def _create(self, ids, labels, positions, tokens, hidden_size, model) -> None:
        f = self._file
        n, p = positions.shape
        f.create_dataset("ids", data=np.array(list(ids), dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("label", data=np.asarray(labels, dtype=np.int8))
        f.create_dataset("positions", data=positions.astype(np.int32))
        f.create_dataset("valid", data=positions >= 0)
        self._row_bytes = 0
        for site, layer in site_layers(list(self.widths), self.layers):
            width = hidden_size if layer == EMBEDDINGS_LAYER else self.widths[site]
            self._row_bytes += p * width * np.dtype(np.float16).itemsize
            f.create_dataset(dataset_name(site, layer), shape=(n, p, width), dtype=np.float16,
                             chunks=(self._step, 1, width))
        f.attrs.update(
            tokens=list(tokens), layers=self.layers, sites=list(self.widths), model=model,
            hidden_size=hidden_size, site_widths=list(self.widths.values()), complete=False,
        )

    def write(self, rows: np.ndarray, blocks: dict[str, np.ndarray]) -> None:
        """Store ``blocks[name]`` (len(rows), P, H) at ``rows`` (any order); ``name`` is a
        :func:`dataset_name`. Blocks wait in memory until every row of their group of chunk rows
        has arrived, or ``buffer_bytes`` of them are held, or the file closes, so that each chunk
        is written as few times as possible. A float16 block is held as it is, not copied: do not
        change it after.

        A value that is not finite in float16 (NaN, or beyond +-65504) stops the
        write with the layer and the rows: a probe could not use it.
        """
        rows = np.asarray(rows, dtype=np.int64)
        halves = {}
        for name, block in blocks.items():
            with np.errstate(over="ignore"):  # an overflow becomes inf, reported just below
                half = np.asarray(block).astype(np.float16, copy=False)
            bad = np.sort(rows[nonfinite_rows(half)])
            if bad.size:
                where, leave_out = _describe(name)
                raise InputError(f"{self.path}: {where}, rows {bad[:5].tolist()}: hidden states are NaN "
                                 "or beyond the float16 range",
                                 hint=f"{leave_out}, or check the model's weights and dtype")
            halves[name] = half
        for name, half in halves.items():
            self._pending.setdefault(name, []).append((rows, half))
            self._pending_bytes += half.nbytes
            received = self._received.setdefault(name, np.zeros(len(self._group_rows), np.int64))
            received += np.bincount(rows // self._step, minlength=len(received))
        self._write_complete_groups()
        if self._pending_bytes >= self.buffer_bytes:
            self._flush()

    def window_rows(self) -> int | None:
        """Rows to extract before the next ones when the shard is larger than the writer's hold:
        as many whole groups of chunk rows as the hold takes (at least one); None when the
        whole shard fits. Batches that finish one such window of rows before they start the
        next (:func:`truthmap.activations.token_batches`) complete the window's chunks, which
        are then written, each once, while the held bytes stay within the hold. Batches over
        all rows instead fill every chunk a little at a time, so that each time the hold is
        full every chunk is read back and rewritten."""
        n = int(self._group_rows.sum())
        if n * self._row_bytes <= self.buffer_bytes:
            return None
        return max(1, self.buffer_bytes // (self._row_bytes * self._step)) * self._step

    def _write_complete_groups(self) -> None:
        """Write the held rows of every group of chunk rows that has now received all its rows."""
        for name, held in list(self._pending.items()):
            complete = self._received[name] >= self._group_rows
            chosen, kept = [], []
            for rows, half in held:
                done = complete[rows // self._step]
                if done.all():
                    chosen.append((rows, half))
                elif done.any():
                    chosen.append((rows[done], half[done]))
                    kept.append((rows[~done], half[~done]))
                else:
                    kept.append((rows, half))
            if chosen:
                self._write_chunks(self._file[name], chosen)
                self._pending_bytes -= sum(half.nbytes for _, half in chosen)
                if kept:
                    self._pending[name] = kept
                else:
                    del self._pending[name]

    def _flush(self) -> None:
        """Write the held blocks, dataset by dataset (a write may fill some datasets only)."""
        for name, held in self._pending.items():
            self._write_chunks(self._file[name], held)
        self._pending, self._pending_bytes = {}, 0

    def _write_chunks(self, dataset: h5py.Dataset, held: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Every chunk that the held (rows, block) pairs touch, each written once, whole.

        The chunks of a group of ``rows`` rows (one per token) are assembled side by side in
        memory, so that each is one contiguous run of bytes, and handed to HDF5 as stored bytes
        (``write_direct_chunk``: the datasets have no filters): no selection, conversion or chunk
        cache on the way. A group is read back only when an earlier write filled part of it (else
        it starts from zeros, the fill value). Until commit faa2fd5 each group went through h5py as a
        (rows, P, H) slab, which HDF5 gathered into its P chunks: 330 MB/s on a 2-core CPU, the
        bound of an extraction job on a GPU (README, Performance)."""
        step = dataset.chunks[0]
        filled = self._filled.setdefault(dataset.name, set())
        starts = np.unique(np.concatenate([rows // step for rows, _ in held])) * step
        for start in starts.tolist():
            group = _read_group(dataset, start) if start in filled else _empty_group(dataset)
            for rows, half in held:
                inside = np.flatnonzero((rows >= start) & (rows < start + step))
                if inside.size:
                    part = half if inside.size == len(rows) else half[inside]
                    group[:, rows[inside] - start] = part.swapaxes(0, 1)
            for token, chunk in enumerate(group):
                dataset.id.write_direct_chunk((start, token, 0), chunk)
            filled.add(start)

    def close(self) -> None:
        """Write what is held, mark the file complete and move it into place."""
        self._flush()
        self._file.attrs["complete"] = True
        self._file.close()
        self._ctx.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        self._file.close()
        self._ctx.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> ActivationWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is not None:
            self.abort(exc)
            return
        try:
            self.close()
        except BaseException as err:  # the held blocks failed to write (a full disk): no file
            self.abort(err)
            raise


def _empty_group(dataset: h5py.Dataset) -> np.ndarray:
    """Zeros for one group of chunks, (P, rows per chunk, H): ``group[t]`` is token t's chunk."""
    _, tokens, width = dataset.shape
    return np.zeros((tokens, dataset.chunks[0], width), dataset.dtype)


def _read_group(dataset: h5py.Dataset, start: int) -> np.ndarray:
    """The stored chunks of the group whose first row is ``start``, as :func:`_empty_group` lays them out."""
    group = _empty_group(dataset)
    for token, chunk in enumerate(group):
        chunk.reshape(-1)[:] = np.frombuffer(dataset.id.read_direct_chunk((start, token, 0))[1], dataset.dtype)
    return group


def _describe(name: str) -> tuple[str, str]:
    """(what a dataset holds, how a config leaves it out), for messages."""
    if name == dataset_name("", EMBEDDINGS_LAYER):
        return "the embeddings (layer -1)", "set config key 'activations.embeddings' to false"
    _, site, layer = name.split("/")
    return f"{site} of layer {layer}", f"leave layer {layer} out of config key 'layers'"


def chunk_rows(n: int, most: int = CHUNK_ROWS) -> int:
    """Rows per chunk: at most ``most``, splitting ``n`` rows into equal chunks.

    HDF5 stores every chunk at full size, so 384 rows in chunks of 256 would
    take the room of 512; two chunks of 192 take 384.
    """
    if n <= 0:
        return 1
    chunks = -(-n // most)
    return -(-n // chunks)


def nonfinite_rows(block: np.ndarray) -> np.ndarray:
    """Which rows (first axis) of ``block`` hold a NaN or an infinity.

    In float16 these are the values whose five exponent bits are all set: testing the bits runs at
    the speed of a copy, 15 times faster than ``np.isfinite``, which converts every value."""
    rows = block.reshape(len(block), -1)
    if block.dtype != np.float16 or not rows.shape[1]:
        return ~np.isfinite(rows).all(axis=1)
    return (rows.view(np.uint16) & FLOAT16_EXPONENT).max(axis=1) == FLOAT16_EXPONENT


def read_meta(path: str | os.PathLike) -> ShardMeta:
    """Index data and attributes of a shard; a missing or incomplete file is an error."""
    path = Path(path)
    f = _open(path)
    with f:
        if not f.attrs.get("complete", False):
            raise InputError(f"{path}: incomplete activation shard (the job writing it did not finish)", hint=REMAKE)
        return ShardMeta(
            path=str(path),
            ids=[s.decode() if isinstance(s, bytes) else str(s) for s in f["ids"][:]],
            labels=f["label"][:],
            valid=f["valid"][:],
            tokens=[str(t) for t in f.attrs["tokens"]],
            layers=[int(x) for x in f.attrs["layers"]],
            sites=[str(x) for x in f.attrs["sites"]],
            model=str(f.attrs["model"]),
            hidden_size=int(f.attrs["hidden_size"]),
        )


def read_layer(path: str | os.PathLike, site: str, layer: int, token_index: int | None = None) -> np.ndarray:
    """A (site, layer) block (N, P, H), or one token's slice (N, H), as float16; layer -1
    is the embeddings row whatever the site.

    The block must have the shard's shape and hold only finite numbers.
    """
    path = Path(path)
    with _open(path) as f:
        key = dataset_name(site, layer)
        what = _describe(key)[0]
        if key not in f:
            have = [f"{s} {layer_}" for s in f.get("sites", {}) for layer_ in f["sites"][s]]
            raise InputError(f"{path}: {what} was not extracted (have {', '.join(have) or 'none'}"
                             f"{', embeddings' if 'embeddings' in f else ''})", hint=REMAKE)
        dset = f[key]
        expected = (len(f["ids"]), len(f.attrs["tokens"]), _width(f, site, layer))
        if dset.shape != expected:
            raise InputError(f"{path}: {what} has shape {dset.shape}, expected {expected} "
                             "(ids x tokens x width)", hint=REMAKE)
        block = dset[:] if token_index is None else dset[:, token_index, :]
    rows = np.flatnonzero(nonfinite_rows(block))
    if rows.size:
        raise InputError(f"{path}: {what} holds NaN or infinite values in rows {rows[:5].tolist()} "
                         "(a hidden state beyond the float16 range?)", hint=REMAKE)
    return block


def _width(f: h5py.File, site: str, layer: int) -> int:
    """The H of (site, layer): the model's hidden size for the embeddings row, else the site's width."""
    if layer == EMBEDDINGS_LAYER:
        return int(f.attrs["hidden_size"])
    return int(f.attrs["site_widths"][[str(s) for s in f.attrs["sites"]].index(site)])


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise InputError(f"{path}: activation shard not found")
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as err:
        raise InputError(f"{path}: not a readable HDF5 file ({err})", hint=REMAKE) from err
