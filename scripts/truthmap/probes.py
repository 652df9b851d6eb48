"""Per-cell probes: a shared train/test split, L2 logistic regression, AUC with a bootstrap CI.

Positive class: **the answer is wrong** (label 1). An AUC above 0.5 means the
probe ranks wrong answers above right ones, i.e. it detects errors.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from truthmap.config import ProbeConfig


@dataclass(frozen=True)
class Split:
    """Which questions are held out, decided once for every cell."""

    ids: list[str]
    labels: np.ndarray
    """1 = wrong answer, 0 = right."""
    is_test: np.ndarray
    stratified: bool
    """False when a class was too small to stratify on."""


def make_split(ids: list[str], labels: np.ndarray, test_fraction: float, seed: int) -> Split:
    """A seeded split by question id, stratified by label when both classes allow it.

    The result depends only on the set of (id, label) pairs, not on their order.
    """
    order = np.argsort(np.asarray(ids, dtype=object), kind="stable")
    ids_sorted = [ids[i] for i in order]
    y = np.asarray(labels)[order]
    counts = np.bincount(y, minlength=2) if len(y) else np.zeros(2, int)
    n_test = int(np.ceil(test_fraction * len(y)))
    stratify = bool(counts.min() >= 2 and 2 <= n_test <= len(y) - 2)
    is_test = np.zeros(len(y), dtype=bool)
    if len(y) >= 2 and 1 <= n_test < len(y):
        _, test_idx = train_test_split(
            np.arange(len(y)), test_size=test_fraction, random_state=seed,
            stratify=y if stratify else None,
        )
        is_test[test_idx] = True
    return Split(ids=ids_sorted, labels=y, is_test=is_test, stratified=stratify)


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (Mann-Whitney U with mid-ranks for ties); NaN when a class is absent."""
    y = np.asarray(y).astype(bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_auc(
    y: np.ndarray, scores: np.ndarray, n_boot: int, level: float, seed: int
) -> tuple[float, float]:
    """Percentile interval of the AUC over stratified bootstrap resamples of the test set.

    Positives and negatives are resampled separately, so every resample keeps
    the test set's class counts (and a defined AUC).
    """
    y = np.asarray(y).astype(bool)
    scores = np.asarray(scores, dtype=float)
    pos, neg = scores[y], scores[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    boot_pos = pos[rng.integers(0, len(pos), size=(n_boot, len(pos)))]
    boot_neg = neg[rng.integers(0, len(neg), size=(n_boot, len(neg)))]
    ranks = rankdata(np.concatenate([boot_pos, boot_neg], axis=1), axis=1)
    n_pos, n_neg = len(pos), len(neg)
    aucs = (ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    alpha = (1 - level) / 2
    low, high = np.quantile(aucs, [alpha, 1 - alpha])
    return float(low), float(high)


def make_probe(cfg: ProbeConfig) -> Pipeline:
    """Standardised features into an L2 logistic regression."""
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=cfg.C, max_iter=cfg.max_iter, random_state=cfg.seed),
    )


@dataclass(frozen=True)
class CellResult:
    """The evaluation of one (layer, token) probe."""

    layer: int
    token: str
    auc: float
    """Test-set ROC AUC, positive class = wrong answer; NaN when skipped."""
    ci_low: float
    ci_high: float
    n_train: int
    n_test: int
    n_train_wrong: int
    n_test_wrong: int
    train_auc: float
    n_excluded: int
    """Labelled questions this cell could not use (no valid position, or not common)."""
    status: str
    """ok or skipped."""
    reason: str
    fit_seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_cell(
    layer: int,
    token: str,
    X: np.ndarray,
    y: np.ndarray,
    is_test: np.ndarray,
    n_excluded: int,
    cfg: ProbeConfig,
) -> CellResult:
    """Fit on the training rows, score the test rows; too few of a class gives NaN and a reason."""
    y = np.asarray(y).astype(int)
    train, test = ~is_test, is_test
    counts = {
        "train": np.bincount(y[train], minlength=2),
        "test": np.bincount(y[test], minlength=2),
    }
    base = dict(
        layer=layer, token=token, n_train=int(train.sum()), n_test=int(test.sum()),
        n_train_wrong=int(counts["train"][1]), n_test_wrong=int(counts["test"][1]),
        n_excluded=int(n_excluded),
    )
    short = [
        f"{part} has {int(c[k])} {'wrong' if k else 'right'} answers"
        for part, c in counts.items() for k in (0, 1) if c[k] < cfg.min_per_class
    ]
    if short:
        nan = float("nan")
        return CellResult(
            **base, auc=nan, ci_low=nan, ci_high=nan, train_auc=nan, status="skipped",
            reason=f"too few examples of a class (min_per_class={cfg.min_per_class}): " + "; ".join(short),
            fit_seconds=0.0,
        )
    start = time.perf_counter()
    probe = make_probe(cfg).fit(X[train].astype(np.float32), y[train])
    fit_seconds = time.perf_counter() - start
    scores = probe.decision_function(X[test].astype(np.float32))
    train_scores = probe.decision_function(X[train].astype(np.float32))
    low, high = bootstrap_auc(y[test], scores, cfg.bootstrap, cfg.ci_level, cfg.seed)
    return CellResult(
        **base, auc=roc_auc(y[test], scores), ci_low=low, ci_high=high,
        train_auc=roc_auc(y[train], train_scores), status="ok", reason="", fit_seconds=fit_seconds,
    )


def assign_splits(
    ids: list[str], labels: np.ndarray, common: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, bool]:
    """Test-set membership for every labelled question.

    The questions every cell shares (``common``) are split stratified by label;
    the rest (used only with ``examples: per_cell``) are split the same way on
    their own. Returns (is_test aligned with ``ids``, whether the common part was
    stratified).
    """
    ids = list(ids)
    labels = np.asarray(labels).astype(int)
    common = np.asarray(common, dtype=bool)
    is_test = np.zeros(len(ids), dtype=bool)
    position = {qid: i for i, qid in enumerate(ids)}
    stratified = False
    for part, mask in enumerate((common, ~common)):
        idx = np.flatnonzero(mask)
        split = make_split([ids[i] for i in idx], labels[idx], test_fraction, seed)
        for qid, test in zip(split.ids, split.is_test):
            is_test[position[qid]] = test
        if part == 0:
            stratified = split.stratified
    return is_test, stratified


def probe_layer(
    layer: int,
    tokens: list[str],
    X: np.ndarray,
    valid: np.ndarray,
    labels: np.ndarray,
    is_test: np.ndarray,
    common: np.ndarray,
    cfg: ProbeConfig,
) -> list[CellResult]:
    """Evaluate every token cell of one layer; ``X`` is (N, P, H) aligned with the other arrays."""
    results = []
    for p, token in enumerate(tokens):
        use = common if cfg.examples == "common" else valid[:, p]
        use = use & valid[:, p]
        results.append(
            evaluate_cell(layer, token, X[use, p], labels[use], is_test[use], int((~use).sum()), cfg)
        )
    return results


SPLIT_COLUMNS = ("id", "label", "split", "common", "reason")


def split_table(
    labels: list[dict], position_rows: list[dict], tokens: list[str], cfg: ProbeConfig
) -> list[dict]:
    """The shared split: one row per labelled question (label 1 = wrong answer).

    ``common`` marks the questions valid at every chosen token (the default
    probe set); ``reason`` says why a question is not common.
    """
    label_by_id: dict[str, dict] = {}
    for label in labels:
        if label["id"] in label_by_id:
            raise ValueError(f"question {label['id']!r} is labelled twice (in two shards?)")
        label_by_id[label["id"]] = label
    pos_by_id = {str(r["id"]): r for r in position_rows}
    missing = sorted(set(label_by_id) - set(pos_by_id))
    if missing:
        raise ValueError(f"{len(missing)} labelled questions have no positions, e.g. {missing[:3]}")
    ids = sorted(label_by_id)
    y = np.array([0 if label_by_id[q]["correct"] else 1 for q in ids], dtype=int)
    reasons = []
    for qid in ids:
        masked = [t for t in tokens if int(pos_by_id[qid][t]) < 0]
        if not masked:
            reasons.append("")
        elif label_by_id[qid]["exact_method"] == "none":
            reasons.append(f"no exact answer ({label_by_id[qid]['reason']})")
        else:
            reasons.append(f"masked position(s): {', '.join(masked)}")
    common = np.array([r == "" for r in reasons])
    is_test, _ = assign_splits(ids, y, common, cfg.test_fraction, cfg.seed)
    return [
        {"id": q, "label": int(label), "split": "test" if t else "train", "common": int(c), "reason": r}
        for q, label, t, c, r in zip(ids, y, is_test, common, reasons)
    ]


def train_layer(
    split_rows: list[dict], shard_paths: list[str], layer: int, tokens: list[str], cfg: ProbeConfig
) -> list[CellResult]:
    """Read one layer from every shard, align it with the split, and probe each token cell."""
    from truthmap.h5io import read_layer, read_meta

    row_of = {r["id"]: i for i, r in enumerate(split_rows)}
    n = len(split_rows)
    X = None
    valid = np.zeros((n, len(tokens)), dtype=bool)
    seen = np.zeros(n, dtype=bool)
    for path in shard_paths:
        meta = read_meta(path)
        if meta.tokens != list(tokens):
            raise ValueError(f"{path}: holds tokens {meta.tokens}, expected {list(tokens)}")
        block = read_layer(path, layer)
        if X is None:
            X = np.zeros((n, len(tokens), block.shape[2]), dtype=np.float16)
        for j, qid in enumerate(meta.ids):
            i = row_of.get(qid)
            if i is None:
                raise ValueError(f"{path}: question {qid!r} is not in the split table")
            if seen[i]:
                raise ValueError(f"{path}: question {qid!r} appears in two shards")
            if int(meta.labels[j]) != int(split_rows[i]["label"]):
                raise ValueError(f"{path}: label of {qid!r} disagrees with the split table")
            seen[i] = True
            X[i] = block[j]
            valid[i] = meta.valid[j]
    if not seen.all():
        lost = [split_rows[i]["id"] for i in np.flatnonzero(~seen)[:3]]
        raise ValueError(f"{int((~seen).sum())} questions of the split are in no shard, e.g. {lost}")
    labels = np.array([int(r["label"]) for r in split_rows])
    is_test = np.array([r["split"] == "test" for r in split_rows])
    common = np.array([int(r["common"]) == 1 for r in split_rows])
    return probe_layer(layer, list(tokens), X, valid, labels, is_test, common, cfg)
