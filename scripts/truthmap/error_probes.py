"""Can the greedy answer's hidden state tell which *kind* of error a question invites?

The paper's error types (Orgad et al. 2024, section 5) come from resampling each
question: is the right answer the largest cluster, are there many different
answers, does the model refuse ... (``resampling/error_types.tsv``). Here one
probe per type is trained, at the cell chosen honestly for the error probe
(``selection["probe_best_cell"]``), on the greedy answers' hidden states of the
split's training questions, and scored by AUC on its test questions. A fine
type (a 0/1 column) is its own positive class; a coarse type (``coarse_type``,
one label per question) is one-vs-rest. Each type's prevalence in the test
questions is reported too: an AUC means little for a type that is nearly
never, or nearly always, present.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from truthmap.error_types import FINE_TYPES
from truthmap.files import InputError
from truthmap.generalise import Group, cell_group
from truthmap.probes import make_probe
from truthmap.results import Cell
from truthmap.settings import ProbeSettings
from truthmap.stats import bootstrap_auc, roc_auc

COARSE_COLUMN = "coarse_type"
"""The column of ``error_types.tsv`` holding the mutually exclusive type; the fine types
(:data:`truthmap.error_types.FINE_TYPES`) are 0/1 columns of their own."""

ERROR_PROBE_COLUMNS = (
    "type", "kind", "site", "layer", "token", "n_train", "n_train_pos", "n_test", "n_test_pos", "prevalence",
    "auc", "ci_low", "ci_high", "status", "reason",
)


@dataclass(frozen=True)
class TypeProbe:
    """One error type's probe at the chosen cell."""

    type: str
    kind: str
    """fine (a 0/1 column) or coarse (one coarse type against the rest)."""
    site: str
    layer: int
    token: str
    n_train: int
    n_train_pos: int
    n_test: int
    n_test_pos: int
    prevalence: float
    """Share of the test questions of this type: the base rate to read the AUC against."""
    auc: float
    """Test AUC, positive class = the question is of this type; NaN when skipped."""
    ci_low: float
    ci_high: float
    status: str
    """ok or skipped."""
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def type_targets(error_rows: Sequence[Mapping]) -> dict[tuple[str, str], dict[str, int]]:
    """Per (type, kind), the 0/1 target of every question id in ``error_rows``.

    Every fine type, then every coarse type present (sorted by name), one-vs-rest.
    """
    missing = [c for c in (*FINE_TYPES, COARSE_COLUMN) if error_rows and c not in error_rows[0]]
    if missing:
        raise InputError(f"the error-type table lacks column(s) {missing}")
    targets: dict[tuple[str, str], dict[str, int]] = {
        (name, "fine"): {str(r["id"]): int(float(r[name])) for r in error_rows} for name in FINE_TYPES
    }
    for coarse in sorted({str(r[COARSE_COLUMN]) for r in error_rows}):
        targets[coarse, "coarse"] = {str(r["id"]): int(str(r[COARSE_COLUMN]) == coarse) for r in error_rows}
    return targets


def type_shortfall(y_train: np.ndarray, y_test: np.ndarray, min_per_class: int) -> str:
    """Why a type cannot be fitted or scored (too few of either class in train or test), or ""."""
    short = [f"{part} has {int((y == k).sum())} {'of' if k else 'not of'} this type"
             for part, y in (("train", y_train), ("test", y_test)) for k in (1, 0) if (y == k).sum() < min_per_class]
    return f"too few questions of a class (min_per_class={min_per_class}): " + "; ".join(short) if short else ""


def probe_type(name: str, kind: str, group: Group, target: Mapping[str, int], cell: Cell,
               cfg: ProbeSettings) -> TypeProbe:
    """Fit on the group's training questions that have a target, score its test questions."""
    has = np.array([q in target for q in group.ids], dtype=bool)
    y = np.array([target.get(q, 0) for q in group.ids], dtype=int)
    train, test = has & ~group.is_test, has & group.is_test
    y_train, y_test = y[train], y[test]
    base = dict(type=name, kind=kind, **cell._asdict(), n_train=int(train.sum()), n_train_pos=int(y_train.sum()),
                n_test=int(test.sum()), n_test_pos=int(y_test.sum()),
                prevalence=float(y_test.mean()) if len(y_test) else float("nan"))
    short = type_shortfall(y_train, y_test, cfg.min_per_class)
    nan = float("nan")
    if short:
        return TypeProbe(**base, auc=nan, ci_low=nan, ci_high=nan, status="skipped", reason=short)
    probe = make_probe(cfg).fit(group.X[train].astype(np.float32), y_train)
    scores = probe.decision_function(group.X[test].astype(np.float32))
    low, high = bootstrap_auc(y_test, scores, cfg.bootstrap, cfg.ci_level, cfg.seed)
    return TypeProbe(**base, auc=roc_auc(y_test, scores), ci_low=low, ci_high=high, status="ok", reason="")


def skipped_types(error_rows: Sequence[Mapping], reason: str) -> list[TypeProbe]:
    """Every type as a skip with one reason (no chosen cell)."""
    nan = float("nan")
    return [TypeProbe(name, kind, "", -1, "", 0, 0, 0, 0, nan, nan, nan, nan, "skipped", reason)
            for name, kind in type_targets(error_rows)]


def probe_error_types(split_rows: list[dict], shard_paths: list[str], tokens: list[str], cell: Mapping | None,
                      error_rows: Sequence[Mapping], cfg: ProbeSettings) -> list[TypeProbe]:
    """Every error type's probe at the chosen cell (``selection["probe_best_cell"]``; None: all skipped).

    The questions are those the chosen cell's probe uses (:func:`truthmap.probes.cell_rows`: valid at
    the cell's token, and common to every token unless ``probe.examples`` is ``per_cell``) that
    have an error-type row; the split's train/test membership is kept.
    """
    if cell is None:
        return skipped_types(error_rows, "no probe cell could be fitted (selection probe_best_cell is None)")
    at = Cell.of(cell)
    group = cell_group(split_rows, shard_paths, tokens, at, cfg)
    return [probe_type(name, kind, group, target, at, cfg) for (name, kind), target in type_targets(error_rows).items()]
