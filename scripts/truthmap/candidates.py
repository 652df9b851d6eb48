"""Hidden states of the sampled answers of the test questions, at the chosen cell only.

Every test question was answered ``n`` more times by sampling
(``resampling/samples``). Each *distinct* sampled answer (distinct generated ids)
is a candidate the probe may choose: it is fed as ``prompt_ids + gen_ids``, and
the hidden state at the cell chosen for the greedy probe (site, layer, token) is
kept. The token's position comes from the sample's own exact answer
(:func:`truthmap.positions.find_positions`); a candidate whose position is
masked (no exact answer, for an exact-answer token) is kept as a row with
``valid`` false and a reason, and never runs through the model.

One HDF5 file per shard::

    /ids      (R,)    utf-8 strings, the question of each candidate
    /sample   (R,)    int32, the first sample index giving this answer
    /samples  (R,)    utf-8 JSON lists, every sample index giving it
    /X        (R, H)  float32 hidden state at the cell (zeros where not valid)
    /valid    (R,)    bool, the candidate was scored
    /reason   (R,)    utf-8, why a candidate is not valid ("" when it is)

Attributes: ``site``, ``layer``, ``token`` (the cell; "" / -1 / "" when no cell
could be fitted, and then ``R`` = 0), ``model``, ``complete`` (set last, before
the file is renamed into place). Torch is imported only by :func:`extract_candidates`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from truthmap.files import InputError, atomic_path
from truthmap.placement import input_device
from truthmap.results import Cell

REMAKE = "delete the file: the next run extracts the candidates again"


@dataclass(frozen=True)
class CandidateInputs:
    """The distinct sampled answers of a shard's test questions, ready to feed."""

    ids: list[str]
    sample: list[int]
    """First sample index giving each answer."""
    samples: list[list[int]]
    """Every sample index giving it."""
    seqs: list[list[int]]
    """prompt_ids + gen_ids."""
    positions: np.ndarray
    """(R,) index of the cell's token in ``seqs``; -1 = masked."""
    reasons: list[str]


def distinct_answers(samples: Sequence[Mapping]) -> list[list[int]]:
    """Sample indices grouped by identical ``gen_ids``; groups in order of their first sample."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for k, sample in enumerate(samples):
        groups.setdefault(tuple(sample["gen_ids"]), []).append(k)
    return list(groups.values())


def exact_span(label: Mapping) -> tuple[int, int] | None:
    """The exact answer's character span in the sample's text, or None."""
    if label.get("exact_start") is None or label.get("exact_end") is None:
        return None
    return int(label["exact_start"]), int(label["exact_end"])


def candidate_inputs(tokenizer, sample_records: Sequence[Mapping], label_records: Sequence[Mapping],
                     test_ids: set[str], token: str) -> CandidateInputs:
    """One candidate per distinct sampled answer of every test question in ``sample_records``."""
    from truthmap.positions import find_positions

    check_labels_match(sample_records, label_records)
    labels_of = {str(r["id"]): r["labels"] for r in label_records}
    ids, firsts, groups, seqs, positions, reasons = [], [], [], [], [], []
    for record in sample_records:
        qid = str(record["id"])
        if qid not in test_ids:
            continue
        labels = labels_of[qid]
        for group in distinct_answers(record["samples"]):
            first = group[0]
            gen_ids = list(record["samples"][first]["gen_ids"])
            pos = find_positions(tokenizer, record["prompt_ids"], gen_ids, exact_span(labels[first]))[token]
            ids.append(qid)
            firsts.append(first)
            groups.append(group)
            seqs.append(list(record["prompt_ids"]) + gen_ids)
            positions.append(pos)
            reasons.append("" if pos >= 0 else masked_reason(token, labels[first]))
    return CandidateInputs(ids, firsts, groups, seqs, np.asarray(positions, dtype=np.int64), reasons)


def check_labels_match(sample_records: Sequence[Mapping], label_records: Sequence[Mapping]) -> None:
    """Every question's samples have one label each (the labels were made from these samples)."""
    counts = {str(r["id"]): len(r["labels"]) for r in label_records}
    for r in sample_records:
        if counts.get(str(r["id"])) != len(r["samples"]):
            raise InputError(f"question {r['id']!r}: {len(r['samples'])} samples but "
                             f"{counts.get(str(r['id']), 'no')} sample labels",
                             hint="the sample labels were not made from these samples: delete them and run again")


def masked_reason(token: str, label: Mapping) -> str:
    if exact_span(label) is None:
        return f"no exact answer for token {token} ({label.get('reason') or 'none found'})"
    return f"token {token} does not exist in this sample"


def with_positions(inputs: CandidateInputs, seqs: list[list[int]], positions: np.ndarray) -> CandidateInputs:
    """The same candidates fed as ``seqs`` (cut to the context) at ``positions``; a position the
    cut removed gets a reason."""
    reasons = [r or ("" if p >= 0 else "the position fell in the part cut to fit the context")
               for r, p in zip(inputs.reasons, positions)]
    return CandidateInputs(inputs.ids, inputs.sample, inputs.samples, seqs, positions, reasons)


def extract_candidates(model, out_path: str | os.PathLike, inputs: CandidateInputs, cell: Cell | None, *,
                       model_name: str, pad_id: int, batch_tokens: int,
                       progress: Callable[[int, int], None] | None = None) -> None:
    """Run every valid candidate through the model up to the cell's layer, batch by batch, writing
    its hidden state at the cell's site and position; the file is written atomically."""
    from truthmap.activations import PositionCapture, extract_batch, token_batches
    from truthmap.h5io import dataset_name
    from truthmap.models import decoder_body

    if cell is None:
        inputs = CandidateInputs([], [], [], [], np.zeros(0, dtype=np.int64), [])
        with _CandidateFile(out_path, inputs, cell, int(model.config.get_text_config().hidden_size), model_name):
            return
    capture = PositionCapture(model, [cell.layer], [cell.site], model_name)
    body, device = decoder_body(model), input_device(model)
    valid = np.flatnonzero(inputs.positions >= 0)
    try:
        with _CandidateFile(out_path, inputs, cell, capture.widths[cell.site], model_name) as f:
            done = 0
            for batch in token_batches([len(inputs.seqs[i]) for i in valid], batch_tokens):
                rows = valid[batch]
                blocks = extract_batch(body, capture, [inputs.seqs[i] for i in rows], inputs.positions[rows, None],
                                       pad_id, device)
                f.write(rows, blocks[dataset_name(cell.site, cell.layer)][:, 0])
                done += len(rows)
                if progress:
                    progress(done, len(valid))
    finally:
        capture.remove()


def write_candidates(path: str | os.PathLike, inputs: CandidateInputs, cell: Cell | None, X: np.ndarray,
                     model_name: str = "") -> None:
    """Write candidates whose hidden states (R, H) are already at hand (rows not valid stay zero)."""
    with _CandidateFile(path, inputs, cell, X.shape[1], model_name) as f:
        rows = np.flatnonzero(inputs.positions >= 0)
        if len(rows):
            f.write(rows, np.asarray(X)[rows])


class _CandidateFile:
    """The HDF5 file of one shard's candidates, renamed into place when complete."""

    def __init__(self, path, inputs: CandidateInputs, cell: Cell | None, width: int, model_name: str) -> None:
        self._ctx = atomic_path(path, suffix=".h5.tmp")
        self._file = h5py.File(self._ctx.__enter__(), "w")
        try:
            self._create(inputs, cell, width, model_name)
        except BaseException as err:
            self.__exit__(type(err), err, err.__traceback__)
            raise

    def _create(self, inputs: CandidateInputs, cell: Cell | None, width: int, model_name: str) -> None:
        strings = h5py.string_dtype()
        n = len(inputs.ids)
        f = self._file
        f.create_dataset("ids", data=np.array(inputs.ids, dtype=object), dtype=strings)
        f.create_dataset("sample", data=np.asarray(inputs.sample, dtype=np.int32))
        f.create_dataset("samples", data=np.array([json.dumps(s) for s in inputs.samples], dtype=object),
                         dtype=strings)
        f.create_dataset("X", shape=(n, width), dtype=np.float32, fillvalue=0.0)
        f.create_dataset("valid", data=np.asarray(inputs.positions >= 0, dtype=bool))
        f.create_dataset("reason", data=np.array(inputs.reasons, dtype=object), dtype=strings)
        site, layer, token = cell if cell is not None else ("", -1, "")
        f.attrs.update(site=site, layer=layer, token=token, model=model_name, complete=False)

    def write(self, rows: np.ndarray, block: np.ndarray) -> None:
        order = np.argsort(rows)
        self._file["X"][np.asarray(rows)[order]] = block[order].astype(np.float32)

    def __enter__(self) -> _CandidateFile:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            self._file.attrs["complete"] = True
        self._file.close()
        self._ctx.__exit__(exc_type, exc, tb)


@dataclass(frozen=True)
class Candidates:
    """Candidates of every shard, read back: one row per distinct sampled answer."""

    ids: list[str]
    sample: np.ndarray
    samples: list[list[int]]
    X: np.ndarray
    """(R, H) float32."""
    valid: np.ndarray
    reasons: list[str]
    cell: Cell | None
    """The cell they were read at; None when no cell could be fitted."""


def read_candidates(paths: Sequence[str | os.PathLike]) -> Candidates:
    """Every shard's candidates in order; the shards must agree on the cell."""
    parts, cells = [], set()
    for path in map(Path, paths):
        if not path.exists():
            raise InputError(f"{path}: candidates file not found")
        with h5py.File(path, "r", locking=False) as f:
            if not f.attrs.get("complete", False):
                raise InputError(f"{path}: incomplete candidates file (the job writing it did not finish)",
                                 hint=REMAKE)
            layer = int(f.attrs["layer"])
            cells.add(None if str(f.attrs["site"]) == "" else Cell(str(f.attrs["site"]), layer, str(f.attrs["token"])))
            parts.append((
                [_str(s) for s in f["ids"][:]], f["sample"][:].astype(int), [json.loads(_str(s)) for s in f["samples"][:]],
                f["X"][:], f["valid"][:].astype(bool), [_str(s) for s in f["reason"][:]],
            ))
    if len(cells) > 1:
        raise InputError(f"candidate files were read at different cells: {sorted(map(str, cells))}", hint=REMAKE)
    width = max((p[3].shape[1] for p in parts), default=0)
    return Candidates(
        ids=[q for p in parts for q in p[0]],
        sample=np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, int),
        samples=[s for p in parts for s in p[2]],
        X=np.concatenate([p[3] for p in parts]) if parts else np.zeros((0, width), np.float32),
        valid=np.concatenate([p[4] for p in parts]) if parts else np.zeros(0, bool),
        reasons=[r for p in parts for r in p[5]],
        cell=cells.pop() if cells else None,
    )


def _str(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
