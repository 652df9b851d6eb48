"""The HDF5 layout of one activation shard, written atomically and read per cell.

One file per shard::

    /ids        (N,)        utf-8 strings, the question ids
    /label      (N,)        int8: 1 = the answer is wrong, 0 = right
    /positions  (N, P)      int32 index into prompt + generation, -1 = masked
    /valid      (N, P)      bool, positions >= 0
    /layers/<l> (N, P, H)   float16 hidden states of layer l at the P positions

File attributes: ``tokens`` (the P names, in order), ``layers``, ``site``,
``model``, ``hidden_size`` (the site's width), ``layer_widths`` (each layer's H,
aligned with ``layers``: the embeddings row, layer -1, is the model's hidden size
whatever the site), ``complete`` (set last, just before the file is renamed
into place). Layer datasets are chunked ``(rows, 1, H)`` so that reading
one (layer, token) cell touches only that cell's chunks; ``rows`` (at most
:data:`CHUNK_ROWS`) divides the shard evenly, so the last chunk is not mostly
empty space.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from truthmap.files import InputError, atomic_path

CHUNK_ROWS = 256

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
    site: str
    model: str
    hidden_size: int


class ActivationWriter:
    """Write one shard: create with the index arrays, then fill layer blocks by rows."""

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
        site: str,
        model: str,
        widths: dict[int, int] | None = None,
    ) -> None:
        self.path = Path(path)
        self.layers = list(layers)
        self.widths = [int((widths or {}).get(layer, hidden_size)) for layer in self.layers]
        n, p = positions.shape
        if len(ids) != n or len(labels) != n or p != len(tokens):
            raise ValueError("ids, labels, positions and tokens disagree in size")
        self._ctx = atomic_path(self.path, suffix=".h5.tmp")
        tmp = self._ctx.__enter__()
        try:
            self._file = h5py.File(tmp, "w")
            self._create(ids, labels, positions, tokens, hidden_size, site, model)
        except BaseException as err:
            if getattr(self, "_file", None) is not None:
                self._file.close()
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise

    def _create(self, ids, labels, positions, tokens, hidden_size, site, model) -> None:
        f = self._file
        n, p = positions.shape
        f.create_dataset("ids", data=np.array(list(ids), dtype=object), dtype=h5py.string_dtype())
        f.create_dataset("label", data=np.asarray(labels, dtype=np.int8))
        f.create_dataset("positions", data=positions.astype(np.int32))
        f.create_dataset("valid", data=positions >= 0)
        group = f.create_group("layers")
        for layer, width in zip(self.layers, self.widths):
            group.create_dataset(str(layer), shape=(n, p, width), dtype=np.float16, chunks=(chunk_rows(n), 1, width))
        f.attrs.update(
            tokens=list(tokens), layers=self.layers, site=site, model=model,
            hidden_size=hidden_size, layer_widths=self.widths, complete=False,
        )

    def write(self, rows: np.ndarray, blocks: dict[int, np.ndarray]) -> None:
        """Store ``blocks[layer]`` (len(rows), P, H) at ``rows`` (any order).

        A value that is not finite in float16 (NaN, or beyond +-65504) stops the
        write with the layer and the rows: a probe could not use it.
        """
        order = np.argsort(rows)
        sorted_rows = np.asarray(rows)[order]
        for layer, block in blocks.items():
            with np.errstate(over="ignore"):  # an overflow becomes inf, reported just below
                half = block[order].astype(np.float16)
            bad = sorted_rows[nonfinite_rows(half)]
            if bad.size:
                raise InputError(f"{self.path}: layer {layer}, rows {bad[:5].tolist()}: hidden states are NaN "
                                 "or beyond the float16 range",
                                 hint=f"leave layer {layer} out of config key 'layers', or check the model's "
                                      "weights and dtype")
            self._file["layers"][str(layer)][sorted_rows] = half

    def close(self) -> None:
        """Mark the file complete and move it into place."""
        self._file.attrs["complete"] = True
        self._file.close()
        self._ctx.__exit__(None, None, None)

    def abort(self, exc: BaseException) -> None:
        self._file.close()
        self._ctx.__exit__(type(exc), exc, exc.__traceback__)

    def __enter__(self) -> ActivationWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self.close()
        else:
            self.abort(exc)


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
    """Which rows (first axis) of ``block`` hold a NaN or an infinity."""
    return ~np.isfinite(block.reshape(len(block), -1)).all(axis=1)


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
            site=str(f.attrs["site"]),
            model=str(f.attrs["model"]),
            hidden_size=int(f.attrs["hidden_size"]),
        )


def read_layer(path: str | os.PathLike, layer: int, token_index: int | None = None) -> np.ndarray:
    """A layer's block (N, P, H), or one token's slice (N, H), as float16.

    The block must have the shard's shape and hold only finite numbers.
    """
    path = Path(path)
    with _open(path) as f:
        key = f"layers/{layer}"
        if key not in f:
            raise InputError(f"{path}: layer {layer} was not extracted (have {list(f['layers'])})")
        dset = f[key]
        expected = (len(f["ids"]), len(f.attrs["tokens"]), _width(f, layer))
        if dset.shape != expected:
            raise InputError(f"{path}: layer {layer} has shape {dset.shape}, expected {expected} "
                             "(ids x tokens x hidden size)", hint=REMAKE)
        block = dset[:] if token_index is None else dset[:, token_index, :]
    rows = np.flatnonzero(nonfinite_rows(block))
    if rows.size:
        raise InputError(f"{path}: layer {layer} holds NaN or infinite values in rows {rows[:5].tolist()} "
                         "(a hidden state beyond the float16 range?)", hint=REMAKE)
    return block


def _width(f: h5py.File, layer: int) -> int:
    """A layer's H: its entry of ``layer_widths`` (files written before it existed: ``hidden_size``)."""
    if "layer_widths" in f.attrs:
        layers = [int(x) for x in f.attrs["layers"]]
        if layer in layers:
            return int(f.attrs["layer_widths"][layers.index(layer)])
    return int(f.attrs["hidden_size"])


def _open(path: Path) -> h5py.File:
    if not path.exists():
        raise InputError(f"{path}: activation shard not found")
    try:
        return h5py.File(path, "r", locking=False)
    except OSError as err:
        raise InputError(f"{path}: not a readable HDF5 file ({err})", hint=REMAKE) from err
