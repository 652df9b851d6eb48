"""Per-cell probes: a shared train/test split, L2 logistic regression, AUC with a bootstrap CI.

Positive class: **the answer is wrong** (label 1). An AUC above 0.5 means the
probe ranks wrong answers above right ones, i.e. it detects errors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from truthmap.files import InputError
from truthmap.logistic import Fits, fit_many, sigmoid
from truthmap.settings import EMBEDDINGS_LAYER, ProbeSettings, SplitSettings
from truthmap.splits import held_out_count, held_out_rows, stratified_folds
from truthmap.stats import bootstrap_auc, roc_auc

STALE_SHARD = "the shard was not made from this run's labels: delete it and the next run extracts it again"


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
    n_test = held_out_count(len(y), test_fraction)
    stratify = bool(counts.min() >= 2 and 2 <= n_test <= len(y) - 2)
    is_test = np.zeros(len(y), dtype=bool)
    if len(y) >= 2 and 1 <= n_test < len(y):
        is_test[held_out_rows(y if stratify else None, len(y), test_fraction, seed)] = True
    return Split(ids=ids_sorted, labels=y, is_test=is_test, stratified=stratify)


class Probe:
    """Standardised features into an L2 logistic regression (:mod:`truthmap.logistic`), with
    scikit-learn's ``fit`` and ``decision_function``: one probe where a stage fits one."""

    def __init__(self, cfg: ProbeSettings) -> None:
        self.C, self.max_iter = cfg.C, cfg.max_iter

    def fit(self, X: np.ndarray, y: np.ndarray) -> Probe:
        self.fits_ = fit_many(X, np.asarray(y), np.ones((1, len(y)), dtype=bool), self.C, self.max_iter)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.fits_.decision_function(X, 0)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(N, 2): probabilities of label 0 and of label 1."""
        p = sigmoid(self.decision_function(X))
        return np.stack([1 - p, p], axis=1)


def make_probe(cfg: ProbeSettings) -> Probe:
    """An unfitted probe with the run's settings."""
    return Probe(cfg)


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
    """Seconds of the cell's fits together (primary, folds, further splits: one batch); with the
    torch backend, the cell's share, by its number of fits, of its layer's batch."""
    cv_auc: float = float("nan")
    """Mean AUC over stratified folds of the training rows only: what chooses a cell."""
    cv_folds: int = 0
    test_ids: list[str] = field(default_factory=list)
    """The held-out questions, in the order of ``test_scores``."""
    test_scores: list[float] = field(default_factory=list)
    """The probe's decision function on them (higher = more likely wrong)."""
    split_aucs: list[float] = field(default_factory=list)
    """Test AUC on each seeded split, the primary first (``probe.split_seeds``); NaN where a
    split leaves too few of a class."""
    auc_split_mean: float = float("nan")
    auc_split_std: float = float("nan")
    """Sample standard deviation of ``split_aucs`` (NaN below two finite ones)."""
    site: str = "residual"
    """Where in the block the features were read (``activations.sites``)."""
    backend: str = ""
    """The solver that fitted the cell (``probe.backend`` resolved): numpy, sklearn, torch:cpu or
    torch:cuda; empty for a skipped cell."""

    def to_dict(self) -> dict:
        return asdict(self)


def class_shortfall(parts: dict[str, np.ndarray], min_per_class: int) -> str:
    """Why labels are too few to fit or score (e.g. "test has 2 wrong answers"), or ""."""
    short = [
        f"{part} has {int((y == k).sum())} {'wrong' if k else 'right'} answers"
        for part, y in parts.items() for k in (0, 1) if (y == k).sum() < min_per_class
    ]
    if not short:
        return ""
    return f"too few examples of a class (min_per_class={min_per_class}): " + "; ".join(short)


def cv_folds(y: np.ndarray, cfg: ProbeSettings) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, seeded folds of the training rows ``y``: (fit rows, held-out rows) per fold;
    fewer folds than configured when a class is small, none below two."""
    folds = min(cfg.cv_folds, int(np.bincount(y, minlength=2).min()))
    if folds < 2:
        return []
    return stratified_folds(y, folds, cfg.seed)


@dataclass(frozen=True)
class FitPlan:
    """The fits of one cell, as :func:`truthmap.logistic.fit_many` takes them."""

    masks: np.ndarray
    """(K, N): the primary split's training rows, then each fold's, then each fitted split's."""
    bases: list[int]
    """Whose rows precondition each fit: the training rows for the primary fit and the folds
    (folds are parts of them), its own rows for a further split."""
    folds: list[tuple[np.ndarray, np.ndarray]]
    """(fit rows, held-out rows) of each fold; fit 1 + f is fold f."""
    split_fit: dict[int, int]
    """Index into ``other_splits`` -> its fit; a split short of a class has none (its AUC is NaN)."""


def plan_fits(y: np.ndarray, is_test: np.ndarray, other_splits: Sequence[np.ndarray], cfg: ProbeSettings) -> FitPlan:
    """Every fit a cell needs, none of which holds a row it is tested on."""
    train_rows = np.flatnonzero(~is_test)
    folds = [(train_rows[fit], train_rows[val]) for fit, val in cv_folds(y[~is_test], cfg)]
    fitted = [i for i, other in enumerate(other_splits)
              if not class_shortfall({"train": y[~other], "test": y[other]}, cfg.min_per_class)]
    masks = [~is_test] + [np.isin(np.arange(len(y)), fit) for fit, _ in folds] + [~other_splits[i] for i in fitted]
    return FitPlan(
        masks=np.array(masks), bases=[0] * (1 + len(folds)) + list(range(1 + len(folds), len(masks))), folds=folds,
        split_fit={i: 1 + len(folds) + j for j, i in enumerate(fitted)},
    )


@dataclass(frozen=True)
class CellData:
    """One cell's rows, as every backend fits and scores them."""

    layer: int
    token: str
    X: np.ndarray
    """(N, H) float32 features of the cell's questions."""
    y: np.ndarray
    """1 = wrong answer, 0 = right."""
    is_test: np.ndarray
    n_excluded: int
    ids: list[str]
    other_splits: Sequence[np.ndarray] = ()
    """Test masks of further seeded splits, aligned with the rows."""
    site: str = "residual"


def resolve_backend(name: str) -> str:
    """The solver ``probe.backend`` names: ``auto`` is ``torch`` where CUDA is available, else
    ``numpy``. Without an NVIDIA driver that is decided without importing torch (2.5 s a job)."""
    if name != "auto":
        return name
    if not any(Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/dxg")):
        return "numpy"
    import torch

    return "torch" if torch.cuda.is_available() else "numpy"


def reference_fits(X: np.ndarray, y: np.ndarray, masks: np.ndarray, C: float, max_iter: int) -> Fits:
    """scikit-learn's ``make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))``,
    one fit per row of ``masks`` (in float64), as :class:`truthmap.logistic.Fits`: the reference
    backend, slow, for checking."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = np.asarray(X, dtype=np.float64)
    fitted = [make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter)).fit(X[m], y[m])
              for m in np.asarray(masks, dtype=bool)]
    scalers, models = [p[0] for p in fitted], [p[1] for p in fitted]
    n_iter = np.array([int(m.n_iter_[0]) for m in models])
    return Fits(mean=np.array([s.mean_ for s in scalers]), scale=np.array([s.scale_ for s in scalers]),
                coef=np.array([m.coef_[0] for m in models]), intercept=np.array([m.intercept_[0] for m in models]),
                n_iter=n_iter, converged=n_iter < max_iter)


def evaluate_cell(
    layer: int,
    token: str,
    X: np.ndarray,
    y: np.ndarray,
    is_test: np.ndarray,
    n_excluded: int,
    cfg: ProbeSettings,
    ids: list[str] | None = None,
    other_splits: Sequence[np.ndarray] = (),
    site: str = "residual",
) -> CellResult:
    """Fit on the training rows, score the test rows; too few of a class gives NaN and a reason.

    The training rows alone also give a cross-validated AUC, which is what a
    cell is chosen by: the test rows never decide which cell is reported.
    ``other_splits`` (test masks of further seeded splits) each get a fit on
    their own training rows and a test AUC. Every fit of the cell runs in one
    batch (:func:`truthmap.logistic.fit_many`, or the ``probe.backend`` named);
    the folds' steps are preconditioned from the training rows' features, each
    further split's from its own training rows, so no fit depends on rows it may
    not see.
    """
    ids = list(ids) if ids is not None else [str(i) for i in range(len(y))]
    cell = CellData(layer, token, np.asarray(X, dtype=np.float32), np.asarray(y).astype(int),
                    np.asarray(is_test, dtype=bool), int(n_excluded), ids, other_splits, site)
    return evaluate_cells([cell], cfg)[0]


def evaluate_cells(cells: Sequence[CellData], cfg: ProbeSettings) -> list[CellResult]:
    """Every cell's result: the fits of each cell in one batch (``numpy``), one at a time
    (``sklearn``), or those of all the cells in one batch (``torch``); the same bookkeeping after."""
    backend = resolve_backend(cfg.backend)
    shortfalls = [class_shortfall({"train": c.y[~c.is_test], "test": c.y[c.is_test]}, cfg.min_per_class)
                  for c in cells]
    fitted = [c for c, short in zip(cells, shortfalls) if not short]
    plans = [plan_fits(c.y, c.is_test, c.other_splits, cfg) for c in fitted]
    fits, seconds, label = fit_cells(fitted, plans, cfg, backend)
    done = iter(zip(fitted, plans, fits, seconds))
    results = []
    for cell, short in zip(cells, shortfalls):
        if short:
            results.append(skipped_cell(cell, short))
        else:
            _, plan, cell_fits, fit_seconds = next(done)
            results.append(score_cell(cell, plan, cell_fits, fit_seconds, cfg, label))
    return results


def fit_cells(cells: Sequence[CellData], plans: Sequence[FitPlan], cfg: ProbeSettings, backend: str,
              device: str | None = None) -> tuple[list[Fits], list[float], str]:
    """Each cell's fits, the seconds they took (a cell's share of a batch of cells, by its fits)
    and the backend's label (torch's names its device: ``device``, default cuda where present)."""
    if backend == "torch":
        from truthmap.torch_logistic import CellFits, default_device
        from truthmap.torch_logistic import fit_cells as fit_batch

        device = device or default_device()
        start = time.perf_counter()
        fits = fit_batch([CellFits(c.X, c.y, p.masks, p.bases) for c, p in zip(cells, plans)], cfg.C,
                         cfg.max_iter, device=device) if cells else []
        total, n_fits = time.perf_counter() - start, sum(len(p.masks) for p in plans)
        return fits, [total * len(p.masks) / n_fits for p in plans], f"torch:{device}"
    fits, seconds = [], []
    for cell, plan in zip(cells, plans):
        start = time.perf_counter()
        if backend == "sklearn":
            fits.append(reference_fits(cell.X, cell.y, plan.masks, cfg.C, cfg.max_iter))
        else:
            fits.append(fit_many(cell.X, cell.y, plan.masks, cfg.C, cfg.max_iter, bases=plan.bases))
        seconds.append(time.perf_counter() - start)
    return fits, seconds, backend


def cell_counts(cell: CellData) -> dict:
    """The fields every result of ``cell`` has, fitted or not."""
    train, test = ~cell.is_test, cell.is_test
    return dict(
        site=cell.site, layer=cell.layer, token=cell.token, n_train=int(train.sum()), n_test=int(test.sum()),
        n_train_wrong=int(cell.y[train].sum()), n_test_wrong=int(cell.y[test].sum()), n_excluded=cell.n_excluded,
    )


def skipped_cell(cell: CellData, reason: str) -> CellResult:
    nan = float("nan")
    return CellResult(**cell_counts(cell), auc=nan, ci_low=nan, ci_high=nan, train_auc=nan, status="skipped",
                      reason=reason, fit_seconds=0.0)


def score_cell(cell: CellData, plan: FitPlan, fits: Fits, fit_seconds: float, cfg: ProbeSettings,
               backend: str) -> CellResult:
    """A fitted cell's result: the primary fit's test AUC and interval, the folds' mean AUC, each
    seeded split's test AUC."""
    X, y, test, train = cell.X, cell.y, cell.is_test, ~cell.is_test
    scores = fits.decision_function(X[test], 0)
    low, high = bootstrap_auc(y[test], scores, cfg.bootstrap, cfg.ci_level, cfg.seed)
    cv = [roc_auc(y[val], fits.decision_function(X[val], k)) for k, (_, val) in enumerate(plan.folds, start=1)]
    auc = roc_auc(y[test], scores)
    spread = [auc, *(roc_auc(y[other], fits.decision_function(X[other], plan.split_fit[i]))
                     if i in plan.split_fit else float("nan") for i, other in enumerate(cell.other_splits))]
    finite = [a for a in spread if np.isfinite(a)]
    return CellResult(
        **cell_counts(cell), auc=auc, ci_low=low, ci_high=high,
        train_auc=roc_auc(y[train], fits.decision_function(X[train], 0)), status="ok", reason="",
        fit_seconds=fit_seconds, cv_auc=float(np.mean(cv)) if cv else float("nan"), cv_folds=len(plan.folds),
        test_ids=[cell.ids[i] for i in np.flatnonzero(test)], test_scores=[float(v) for v in scores],
        split_aucs=spread, auc_split_mean=float(np.mean(finite)) if finite else float("nan"),
        auc_split_std=float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan"), backend=backend,
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


def probe_layer(layer: int, tokens: list[str], data: SplitFeatures, cfg: ProbeSettings,
                other_splits: Sequence[np.ndarray] = (), site: str = "residual") -> list[CellResult]:
    """Evaluate every token cell of one layer at one site (``data.X`` is (N, P, H)); ``other_splits``
    are test masks of further seeded splits, aligned with ``data``'s rows."""
    cells = []
    for p, token in enumerate(tokens):
        use = cell_rows(data, p, cfg)
        cells.append(CellData(layer, token, data.X[use, p].astype(np.float32), data.labels[use].astype(int),
                              data.is_test[use], int((~use).sum()), [data.ids[i] for i in np.flatnonzero(use)],
                              [other[use] for other in other_splits], site))
    return evaluate_cells(cells, cfg)


def seeded_test_masks(data: SplitFeatures, split: SplitSettings, n_splits: int) -> list[np.ndarray]:
    """Test masks of the seeded splits after the primary one (seeds ``split.seed + 1`` ...), drawn
    as the primary split is (:func:`assign_splits`) from the same questions."""
    return [
        assign_splits(data.ids, data.labels, data.common, split.test_fraction, split.seed + k)[0]
        for k in range(1, n_splits)
    ]


def cell_rows(data: SplitFeatures, p: int, cfg: ProbeSettings) -> np.ndarray:
    """The questions a cell at position index ``p`` uses."""
    use = data.common if cfg.examples == "common" else data.valid[:, p]
    return use & data.valid[:, p]


SPLIT_COLUMNS = ("id", "label", "split", "common", "reason")


def split_table(
    labels: list[dict], position_rows: list[dict], tokens: list[str], cfg: SplitSettings
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


@dataclass(frozen=True)
class SplitFeatures:
    """Hidden states of one layer aligned with the split table's rows."""

    ids: list[str]
    X: np.ndarray
    """(N, P, H), or (N, 1, H) when one token was read."""
    valid: np.ndarray
    labels: np.ndarray
    is_test: np.ndarray
    common: np.ndarray


def load_split_features(
    split_rows: list[dict], shard_paths: list[str], layer: int, tokens: list[str],
    token: str | None = None, site: str = "residual",
) -> SplitFeatures:
    """Read one layer at one site (every token, or only ``token``) from every shard, aligned with
    the split.

    Checks that every question of the split is in exactly one shard, with the
    same label.
    """
    from truthmap.h5io import read_layer, read_meta

    row_of = {r["id"]: i for i, r in enumerate(split_rows)}
    n = len(split_rows)
    columns = list(tokens) if token is None else [token]
    X = None
    valid = np.zeros((n, len(columns)), dtype=bool)
    seen = np.zeros(n, dtype=bool)
    for path in shard_paths:
        meta = read_meta(path)
        if meta.tokens != list(tokens):
            raise InputError(f"{path}: holds tokens {meta.tokens}, expected {list(tokens)}", hint=STALE_SHARD)
        if token is None:
            block, shard_valid = read_layer(path, site, layer), meta.valid
        else:
            p = meta.tokens.index(token)
            block, shard_valid = read_layer(path, site, layer, p)[:, None, :], meta.valid[:, p : p + 1]
        if X is None:
            X = np.zeros((n, len(columns), block.shape[2]), dtype=np.float16)
        for j, qid in enumerate(meta.ids):
            i = row_of.get(qid)
            if i is None:
                raise InputError(f"{path}: question {qid!r} is not in the split table", hint=STALE_SHARD)
            if seen[i]:
                raise InputError(f"{path}: question {qid!r} appears in two shards", hint=STALE_SHARD)
            if int(meta.labels[j]) != int(split_rows[i]["label"]):
                raise InputError(f"{path}: label of {qid!r} disagrees with the split table", hint=STALE_SHARD)
            seen[i] = True
            X[i] = block[j]
            valid[i] = shard_valid[j]
    if not seen.all():
        lost = [split_rows[i]["id"] for i in np.flatnonzero(~seen)[:3]]
        raise InputError(f"{int((~seen).sum())} questions of the split are in no shard, e.g. {lost}",
                         hint=STALE_SHARD)
    return SplitFeatures(
        ids=[r["id"] for r in split_rows],
        X=X,
        valid=valid,
        labels=np.array([int(r["label"]) for r in split_rows]),
        is_test=np.array([r["split"] == "test" for r in split_rows]),
        common=np.array([int(r["common"]) == 1 for r in split_rows]),
    )


def train_layer(
    split_rows: list[dict], shard_paths: list[str], layer: int, tokens: list[str], cfg: ProbeSettings,
    timings: dict[str, float] | None = None,
    split: SplitSettings | None = None,
    site: str = "residual",
) -> list[CellResult]:
    """Probe every token cell of one layer at one site; ``timings`` (when given) gets the seconds
    spent reading and evaluating, and the bytes of the layer's features (what ``make bench`` reports).

    With ``split`` (the primary split's settings), every cell is also trained and
    tested on ``cfg.split_seeds - 1`` further seeded splits.
    """
    start = time.perf_counter()
    data = load_split_features(split_rows, shard_paths, layer, tokens, site=site)
    read = time.perf_counter()
    others = seeded_test_masks(data, split, cfg.split_seeds) if split is not None else []
    results = probe_layer(layer, list(tokens), data, cfg, others, site)
    if timings is not None:
        timings.update(read_s=read - start, evaluate_s=time.perf_counter() - read, layer_bytes=float(data.X.nbytes))
    return results


def train_sites(
    split_rows: list[dict], shard_paths: list[str], layer: int, tokens: list[str], sites: Sequence[str],
    cfg: ProbeSettings, split: SplitSettings | None = None,
) -> list[CellResult]:
    """Every (site, token) cell of one layer, site by site. The embeddings row is the same
    whatever the site: it is fitted once and reported under each site."""
    if layer == EMBEDDINGS_LAYER:
        once = train_layer(split_rows, shard_paths, layer, tokens, cfg, split=split, site=sites[0])
        return [replace(result, site=site) for site in sites for result in once]
    return [result for site in sites
            for result in train_layer(split_rows, shard_paths, layer, tokens, cfg, split=split, site=site)]
