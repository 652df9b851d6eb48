"""Error detectors side by side, on the probes' own test questions.

Every detector gives each held-out question a score where *higher means more
likely wrong* (the positive class), so all AUCs read the same way:

- ``logprob_<agg>_<span>`` / ``logit_<agg>_<span>``: minus the mean, min, max
  or last log-probability (or logit) of the chosen tokens, over the whole
  answer (``answer``: every generated token but a final end-of-sequence or
  stop token) or over the exact answer's tokens only (``exact``). Low
  confidence scores high.
- ``p_true``: minus the log-odds the model gives "True" when asked whether its
  own answer is true (Kadavath et al.), in the option order chosen on
  training questions.
- ``probe_best_cell``, ``probe_best_exact_cell``, ``probe_last_token``: the
  probe of the (layer, token) cell chosen by cross-validation on the training
  questions among all cells, among exact-answer cells, or among the layers at
  the last token. The test split never chooses a cell.
- ``samples_disagreement``, ``samples_distinct_answers``, ``semantic_entropy``
  (with ``resampling.n`` > 0): from the question's resampled answers, clustered
  by their exact answers without looking at correctness
  (:mod:`truthmap.error_types`): the share of samples *outside* the greedy
  answer's cluster, the number of clusters, and the discrete semantic entropy
  over the clusters (Farquhar et al., Nature 2024). Training-free: scored on
  the training questions too, like the probability baselines.
- ``group_prior`` (a control): the error rate, on the training questions, of
  the question's group (``meta.domain`` by default). It knows nothing of the
  answer; whatever AUC it reaches is what "which kind of question is this"
  alone gives.

Each row has a stratified bootstrap interval and a paired bootstrap p-value
against ``probe_best_cell`` on the same resamples, and, where the questions
have groups, the within-group AUC (the size-weighted mean of per-group AUCs,
:func:`truthmap.stats.within_group_auc`) with its own interval: a detector
that only tells groups apart scores 0.5 there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from truthmap.settings import EMBEDDINGS_LAYER, EXACT_TOKENS, TOKEN_NAMES, ProbeSettings
from truthmap.stats import bootstrap_auc, paired_bootstrap_pvalue, roc_auc, within_group_summary

AGGREGATES: dict[str, Callable[[np.ndarray], float]] = {
    "mean": lambda v: float(np.mean(v)),
    "min": lambda v: float(np.min(v)),
    "max": lambda v: float(np.max(v)),
    "last": lambda v: float(v[-1]),
}
QUANTITIES = {"logprob": "logprobs", "logit": "logits"}
SPANS = ("answer", "exact")
BEST_PROBE = "probe_best_cell"

#: Which cells each probe detector may choose from.
PROBE_FAMILIES: dict[str, Callable[[str], bool]] = {
    BEST_PROBE: lambda token: True,
    "probe_best_exact_cell": lambda token: token in EXACT_TOKENS,
    "probe_last_token": lambda token: token == "-1",
}


def token_spans(generation: Mapping, position_row: Mapping) -> dict[str, slice]:
    """Generated-token ranges of the whole answer and of the exact answer."""
    n = len(generation["gen_ids"])
    if generation["finish_reason"] in ("eos", "stop"):
        n -= 1
    spans = {"answer": slice(0, n)}
    first, last = int(position_row["answer_first"]), int(position_row["answer_last"])
    if first >= 0:
        spans["exact"] = slice(first, last + 1)
    return spans


def baseline_scores(generation: Mapping, position_row: Mapping) -> dict[str, float]:
    """Every probability/logit baseline of one answer (NaN where a span is empty)."""
    spans = token_spans(generation, position_row)
    out = {}
    for quantity, key in QUANTITIES.items():
        values = np.asarray(generation[key], dtype=float)
        for span in SPANS:
            part = values[spans[span]] if span in spans else values[:0]
            for agg, fn in AGGREGATES.items():
                out[f"{quantity}_{agg}_{span}"] = -fn(part) if len(part) else float("nan")
    return out


#: Sample-based detectors: each reads one column of a question's ``error_types.tsv`` row.
SAMPLE_DETECTORS: dict[str, Callable[[Mapping], float]] = {
    "samples_disagreement": lambda row: 1.0 - float(row["sample_agreement"]),
    "samples_distinct_answers": lambda row: float(row["distinct_answers"]),
    "semantic_entropy": lambda row: float(row["semantic_entropy"]),
}


def sample_scores(error_rows: Sequence[Mapping]) -> dict[str, dict[str, float]]:
    """scores[method][id] of every sample-based detector (higher: more likely wrong)."""
    return {method: {str(r["id"]): fn(r) for r in error_rows} for method, fn in SAMPLE_DETECTORS.items()}


def select_cells(cells: Sequence[Mapping]) -> dict[str, dict | None]:
    """Per probe family, the cell with the best cross-validated training AUC.

    Candidates are every site's cells. Ties go to the earlier layer, then the
    earlier token in heatmap order, then the site listed first. A family with
    no fitted cell gets None. The embeddings row is a control,
    never a candidate.
    """
    order = {name: i for i, name in enumerate(TOKEN_NAMES)}
    sites = {site: i for i, site in enumerate(dict.fromkeys(str(c["site"]) for c in cells))}
    chosen: dict[str, dict | None] = {}
    for family, allowed in PROBE_FAMILIES.items():
        candidates = [
            c for c in cells
            if allowed(str(c["token"])) and c["status"] == "ok" and _finite(c.get("cv_auc"))
            and int(c["layer"]) != EMBEDDINGS_LAYER
        ]
        best = min(
            candidates,
            key=lambda c: (-float(c["cv_auc"]), int(c["layer"]), order[str(c["token"])], sites[str(c["site"])]),
            default=None,
        )
        chosen[family] = None if best is None else {
            k: best[k] for k in ("site", "layer", "token", "cv_auc", "cv_folds", "auc", "ci_low", "ci_high")
        }
    return chosen


def _finite(value) -> bool:
    try:
        return bool(np.isfinite(float(value)))
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class DetectorRow:
    """One detector on the test questions."""

    method: str
    auc: float
    ci_low: float
    ci_high: float
    p_vs_best_probe: float
    """Paired bootstrap p-value of AUC(method) = AUC(probe_best_cell); NaN for the probe itself."""
    n: int
    n_wrong: int
    detail: str
    auc_within_group: float = float("nan")
    """Size-weighted mean of the AUCs within groups that hold both classes; NaN without groups."""
    within_ci_low: float = float("nan")
    within_ci_high: float = float("nan")
    groups: int = 0
    """Groups the within-group AUC averages over."""
    train_auc: float = float("nan")
    """A baseline's AUC on the training questions (P(True): its training sample); NaN for probes and
    the group control."""

    def to_dict(self) -> dict:
        return asdict(self)


DETECTOR_COLUMNS = ("method", "auc", "ci_low", "ci_high", "p_vs_best_probe", "n", "n_wrong",
                    "auc_within_group", "within_ci_low", "within_ci_high", "groups", "train_auc", "detail")
GROUP_PRIOR = "group_prior"


def compare_detectors(
    test_ids: Sequence[str],
    labels: np.ndarray,
    scores: Mapping[str, Mapping[str, float]],
    details: Mapping[str, str],
    cfg: ProbeSettings,
    groups: Sequence[str] | None = None,
    train_aucs: Mapping[str, float] | None = None,
) -> list[DetectorRow]:
    """AUC, interval and paired p-value of every method on the same test questions.

    ``scores[method][id]`` is the method's score of a question; a method that
    lacks some question, or gives NaN, is reported with NaN and says why (a
    method with no score at all, only its detail). ``groups``, aligned with
    ``test_ids``, adds each method's within-group AUC and interval; ``train_aucs``
    the baselines' training AUCs.
    """
    y = np.asarray(labels).astype(int)
    best = scores.get(BEST_PROBE)
    best = None if best is None else np.array([best.get(q, np.nan) for q in test_ids], dtype=float)
    rows = []
    nan = float("nan")
    g = None if groups is None else np.asarray(groups, dtype=object)
    for method, by_id in scores.items():
        values = np.array([by_id.get(q, np.nan) for q in test_ids], dtype=float)
        missing = int(np.isnan(values).sum())
        detail = details.get(method, "")
        if missing:
            note = "" if detail.startswith("omitted") else f"no score for {missing} of {len(values)} test questions"
            rows.append(DetectorRow(method, nan, nan, nan, nan, len(values), int(y.sum()),
                                    "; ".join(filter(None, (detail, note)))))
            continue
        low, high = bootstrap_auc(y, values, cfg.bootstrap, cfg.ci_level, cfg.seed)
        p = nan
        if best is not None and method != BEST_PROBE and not np.isnan(best).any():
            p = paired_bootstrap_pvalue(y, values, best, cfg.bootstrap, cfg.seed)
        within = (nan, nan, nan, 0) if g is None else within_group_summary(
            y, values, g, cfg.bootstrap, cfg.ci_level, cfg.seed)
        rows.append(DetectorRow(method, roc_auc(y, values), low, high, p, len(values), int(y.sum()), detail,
                                *within, (train_aucs or {}).get(method, nan)))
    return sorted(rows, key=lambda r: (np.isnan(r.auc), -np.nan_to_num(r.auc)))


def question_groups(questions: Sequence[Mapping], field: str) -> dict[str, str]:
    """{id: group}: the value of ``meta[field]`` of every question that has one."""
    out = {}
    for q in questions:
        value = (q.get("meta") or {}).get(field)
        if value is not None and str(value) != "":
            out[q["id"]] = str(value)
    return out


def group_prior(split_rows: Sequence[Mapping], groups: Mapping[str, str], field: str
                ) -> tuple[dict[str, float], str, list[str] | None]:
    """The ``group_prior`` control: (scores of the test questions, detail, the test questions' groups
    aligned with the split's common test rows, or None without groups).

    A test question scores its group's error rate among the probes' training
    questions (the common ones); a group no training question has gets the
    overall training rate. Fewer than two groups on the test questions, or a
    test question without a group: no control and no within-group AUCs, and
    the detail says why.
    """
    common = [r for r in split_rows if int(r["common"]) == 1]
    train = [r for r in common if r["split"] == "train"]
    test = [r for r in common if r["split"] == "test"]
    aligned, why = groups_of_test_questions(split_rows, groups, field)
    if aligned is None:
        return {}, f"omitted: {why}", None
    wrong: dict[str, list[int]] = {}
    for r in train:
        if r["id"] in groups:
            wrong.setdefault(groups[r["id"]], []).append(int(r["label"]))
    overall = float(np.mean([int(r["label"]) for r in train])) if train else 0.5
    rate = {g: float(np.mean(v)) for g, v in wrong.items()}
    distinct = sorted(set(aligned))
    unseen = sorted(set(distinct) - set(rate))
    detail = (f"training error rate of the question's meta.{field} ({len(distinct)} groups on the test "
              f"questions" + (f"; {len(unseen)} unseen in training get the overall rate {overall:.3f}" if unseen
                              else "") + ")")
    scores = {r["id"]: rate.get(groups[r["id"]], overall) for r in test}
    return scores, detail, aligned


def groups_of_test_questions(split_rows: Sequence[Mapping], groups: Mapping[str, str], field: str
                ) -> tuple[list[str] | None, str]:
    """(the groups of the probes' test questions, in split order, or None; why None).

    Groups need every test question to have one, and at least two of them.
    """
    test = [r for r in split_rows if int(r["common"]) == 1 and r["split"] == "test"]
    lacking = [r["id"] for r in test if r["id"] not in groups]
    if lacking:
        return None, f"{len(lacking)} of {len(test)} test questions have no meta.{field}"
    aligned = [groups[r["id"]] for r in test]
    if len(set(aligned)) < 2:
        return None, f"the test questions have {len(set(aligned))} value(s) of meta.{field}; a control needs two"
    return aligned, ""


def choose_p_true_order(rows: Sequence[Mapping], labels: Mapping[str, int]) -> tuple[str, str]:
    """The option order whose log-odds detect errors best on the training questions: (order, detail)."""
    train = [r for r in rows if r["split"] == "train"]
    y = np.array([labels[r["id"]] for r in train])
    aucs = {
        order: roc_auc(y, -np.array([float(r[f"logodds_true_{order}"]) for r in train]))
        for order in ("ab", "ba")
    }
    if all(np.isnan(v) for v in aucs.values()):
        return "ab", "order (A) True (B) False by default: the training sample has one class"
    order = max(aucs, key=lambda o: -np.inf if np.isnan(aucs[o]) else aucs[o])
    names = {"ab": "(A) True (B) False", "ba": "(A) False (B) True"}
    return order, (
        f"order {names[order]} chosen on {len(train)} training questions "
        f"(train AUC {aucs['ab']:.3f} vs {aucs['ba']:.3f})"
    )


@dataclass(frozen=True)
class DetectorInputs:
    """Every detector's scores on the probes' common test questions, and what goes with them."""

    test_ids: list[str]
    labels: np.ndarray
    scores: dict[str, dict[str, float]]
    """scores[method][id]: higher means more likely wrong."""
    details: dict[str, str]
    test_groups: list[str] | None
    """The test questions' groups, aligned with ``test_ids``; None without groups."""
    train_aucs: dict[str, float]
    """AUC of each training-free baseline on the training questions: what chooses the baseline
    the difference map compares with (:func:`best_baseline`)."""


def detector_scores(
    split_rows: Sequence[Mapping],
    generations: Sequence[Mapping],
    position_rows: Sequence[Mapping],
    chosen_cells: Mapping[str, Mapping | None],
    p_true_rows: Sequence[Mapping] | None,
    groups: Mapping[str, str] | None = None,
    group_field: str = "domain",
    error_rows: Sequence[Mapping] | None = None,
) -> DetectorInputs:
    """Every detector's scores on the probes' common test questions.

    ``chosen_cells[family]`` is the chosen cell's result (with ``test_ids`` and
    ``test_scores``) or None. ``groups`` ({id: group}, see :func:`question_groups`)
    adds the ``group_prior`` control; ``error_rows`` (``error_types.tsv``) the
    sample-based detectors. The probability, logit and sample-based baselines are
    also scored on the common training questions, P(True) on its training
    sample, for their training AUCs.
    """
    common = [r for r in split_rows if int(r["common"]) == 1]
    test = [r for r in common if r["split"] == "test"]
    train = [r for r in common if r["split"] == "train"]
    test_ids = [r["id"] for r in test]
    labels = np.array([int(r["label"]) for r in test])
    label_of = {r["id"]: int(r["label"]) for r in split_rows}
    gen_of = {g["id"]: g for g in generations}
    pos_of = {str(p["id"]): p for p in position_rows}
    scores: dict[str, dict[str, float]] = {}
    details: dict[str, str] = {}
    for family, cell in chosen_cells.items():
        if cell is None:
            scores[family], details[family] = {}, "no cell could be fitted"
            continue
        scores[family] = dict(zip(cell["test_ids"], map(float, cell["test_scores"])))
        details[family] = (f"{cell['site']}, layer {cell['layer']}, token {cell['token']} "
                           f"(cv AUC {float(cell['cv_auc']):.3f})")
    train_scores: dict[str, list[float]] = {}
    for r in common:
        for method, value in baseline_scores(gen_of[r["id"]], pos_of[r["id"]]).items():
            if r["split"] == "test":
                scores.setdefault(method, {})[r["id"]] = value
            else:
                train_scores.setdefault(method, []).append(value)
    if error_rows is not None:
        for method, by_id in sample_scores(error_rows).items():
            scores[method] = {r["id"]: by_id[r["id"]] for r in test if r["id"] in by_id}
            train_scores[method] = [by_id.get(r["id"], np.nan) for r in train]
            details[method] = "from the resampled answers (error_types.tsv)"
    y_train = np.array([int(r["label"]) for r in train])
    train_aucs = {m: _auc_or_nan(y_train, np.array(v)) for m, v in train_scores.items()}
    if p_true_rows is not None:
        order, details["p_true"] = choose_p_true_order(p_true_rows, label_of)
        scores["p_true"] = {r["id"]: -float(r[f"logodds_true_{order}"]) for r in p_true_rows}
        sample = [r for r in p_true_rows if r["split"] == "train"]
        train_aucs["p_true"] = _auc_or_nan(np.array([label_of[r["id"]] for r in sample]),
                                           np.array([scores["p_true"][r["id"]] for r in sample]))
    test_groups = None
    if groups is not None:
        scores[GROUP_PRIOR], details[GROUP_PRIOR], test_groups = group_prior(split_rows, groups, group_field)
    return DetectorInputs(test_ids, labels, scores, details, test_groups, train_aucs)


def _auc_or_nan(y: np.ndarray, scores: np.ndarray) -> float:
    """The AUC, NaN when a score is missing (a baseline of an empty span)."""
    return float("nan") if np.isnan(scores).any() else roc_auc(y, scores)


def best_baseline(rows: Sequence[Mapping]) -> Mapping | None:
    """The training-free baseline with the highest AUC on the training questions (``train_auc``),
    never chosen by its test AUC; None when no baseline has one. Probes and the group control are
    not baselines."""
    candidates = [r for r in rows if _finite(r.get("train_auc")) and _finite(r.get("auc"))
                  and not str(r["method"]).startswith("probe") and r["method"] != GROUP_PRIOR]
    return max(candidates, key=lambda r: (float(r["train_auc"]), str(r["method"])), default=None)
