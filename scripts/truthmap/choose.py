"""Answers chosen by the error probe among the model's own samples (Orgad et al. 2024, section 6).

The probe of the chosen cell is trained, as in the probe stage, on the greedy
answers of the training questions (1 = wrong). On each test question it scores
every distinct sampled answer (``resampling/candidates``) and picks the one it
finds least likely wrong. That is compared, question by question, with three
other ways to answer:

- ``greedy``: the greedy answer (correct = 1 - the split's label);
- ``random``: a uniformly random sample among those with an exact answer
  (seeded by ``resampling.seed``); a question with none counts as wrong;
- ``majority``: the sample of the largest label-free answer cluster
  (``majority_correct`` of ``error_types.tsv``);
- ``probe``: the candidate with the lowest P(wrong) (ties: the earliest sample);
  a question with no scorable candidate counts as wrong, with a reason.

Accuracy is reported over all test questions and within each error type, with a
percentile bootstrap interval over questions and an exact McNemar test against
greedy on the same questions (``gains``: greedy wrong, strategy right;
``losses``: the reverse).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from truthmap.candidates import Candidates, exact_span, read_candidates
from truthmap.error_probes import COARSE_COLUMN
from truthmap.error_types import FINE_TYPES
from truthmap.files import InputError
from truthmap.generalise import cell_group
from truthmap.probes import class_shortfall, make_probe
from truthmap.results import Cell
from truthmap.settings import ProbeSettings
from truthmap.stats import bootstrap_accuracy, mcnemar_exact

STRATEGIES = ("greedy", "random", "majority", "probe")
SELECTION_COLUMNS = ("type", "kind", "strategy", "n", "accuracy", "ci_low", "ci_high", "p_vs_greedy", "gains", "losses")
CHOICE_COLUMNS = (
    "id", "coarse_type", "greedy_correct", "random_correct", "majority_correct", "probe_correct", "probe_sample",
    "probe_text", "probe_p_wrong", "n_candidates", "reason",
)
STALE = "the candidates were not extracted at this run's chosen cell: delete them and run again"


def probe_picks(candidates: Candidates, p_wrong: np.ndarray) -> dict[str, tuple[int, float, int]]:
    """Per question, (chosen sample, its P(wrong), candidates scored): the scored candidate with the
    lowest P(wrong), ties to the earliest sample. ``p_wrong`` is aligned with the valid rows."""
    best: dict[str, tuple[float, int]] = {}
    scored: dict[str, int] = {}
    for row, p in zip(np.flatnonzero(candidates.valid), p_wrong):
        qid, key = candidates.ids[row], (float(p), int(candidates.sample[row]))
        scored[qid] = scored.get(qid, 0) + 1
        if qid not in best or key < best[qid]:
            best[qid] = key
    return {qid: (sample, p, scored[qid]) for qid, (p, sample) in best.items()}


def random_picks(ids: Sequence[str], labels_of: Mapping[str, Sequence[Mapping]], seed: int) -> dict[str, int | None]:
    """Per question (in sorted id order, one seeded generator), a uniformly random sample with an
    exact answer; None when no sample has one."""
    rng = np.random.default_rng(seed)
    out: dict[str, int | None] = {}
    for qid in sorted(ids):
        options = [k for k, label in enumerate(labels_of.get(qid, [])) if exact_span(label) is not None]
        out[qid] = options[int(rng.integers(len(options)))] if options else None
    return out


def fit_greedy_probe(split_rows: list[dict], shard_paths: list[str], tokens: list[str], cell: Cell,
                     cfg: ProbeSettings):
    """(the probe fitted on the training questions' greedy answers at ``cell``, or None; why not)."""
    group = cell_group(split_rows, shard_paths, tokens, cell, cfg)
    y = group.y[~group.is_test]
    short = class_shortfall({"train": y}, cfg.min_per_class)
    if short:
        return None, f"the probe could not be fitted: {short}"
    return make_probe(cfg).fit(group.X[~group.is_test].astype(np.float32), y), ""


def choice_rows(test_ids: Sequence[str], greedy_correct: Mapping[str, int], error_of: Mapping[str, Mapping],
                labels_of: Mapping[str, Sequence[Mapping]], picks: Mapping[str, tuple[int, float, int]] | None,
                randoms: Mapping[str, int | None], unscored: Mapping[str, list[str]]) -> list[dict]:
    """One row per test question with every strategy's correctness (``picks`` None: no probe)."""
    rows = []
    for qid in test_ids:
        labels = labels_of.get(qid, [])
        row = {"id": qid, "coarse_type": error_of[qid][COARSE_COLUMN], "greedy_correct": greedy_correct[qid],
               "majority_correct": int(float(error_of[qid]["majority_correct"])), "reason": ""}
        k = randoms.get(qid)
        row["random_correct"] = int(bool(labels[k]["correct"])) if k is not None else 0
        if picks is None:
            row.update(probe_correct=float("nan"), probe_sample=-1, probe_text="", probe_p_wrong=float("nan"),
                       n_candidates=0, reason="no probe")
        elif qid in picks:
            sample, p, n = picks[qid]
            row.update(probe_correct=int(bool(labels[sample]["correct"])), probe_sample=sample,
                       probe_text=labels[sample].get("exact_answer") or "", probe_p_wrong=p, n_candidates=n)
        else:
            why = "; ".join(dict.fromkeys(unscored.get(qid, []))) or "no sampled answers"
            row.update(probe_correct=0, probe_sample=-1, probe_text="", probe_p_wrong=float("nan"), n_candidates=0,
                       reason=f"no scorable candidate, counted wrong: {why}")
        rows.append(row)
    return rows


def type_masks(rows: Sequence[Mapping], error_of: Mapping[str, Mapping]) -> list[tuple[str, str, np.ndarray]]:
    """(type, kind, which rows) for all questions, each fine type where it is 1, each coarse type."""
    ids = [r["id"] for r in rows]
    out = [("all", "all", np.ones(len(ids), dtype=bool))]
    out += [(t, "fine", np.array([int(float(error_of[q][t])) == 1 for q in ids], dtype=bool)) for t in FINE_TYPES]
    coarse = np.array([str(r["coarse_type"]) for r in rows])
    out += [(c, "coarse", coarse == c) for c in sorted(set(coarse.tolist()))]
    return out


def selection_rows(rows: Sequence[Mapping], error_of: Mapping[str, Mapping], cfg: ProbeSettings,
                   strategies: Sequence[str] = STRATEGIES) -> list[dict]:
    """Accuracy of each strategy per error type, with its interval and McNemar test against greedy."""
    correct = {s: np.array([float(r[f"{s}_correct"]) for r in rows]) for s in strategies}
    out = []
    for name, kind, mask in type_masks(rows, error_of):
        greedy = correct["greedy"][mask]
        for s in strategies:
            c = correct[s][mask]
            low, high = bootstrap_accuracy(c, cfg.bootstrap, cfg.ci_level, cfg.seed)
            gains, losses = int(((c == 1) & (greedy == 0)).sum()), int(((c == 0) & (greedy == 1)).sum())
            out.append({"type": name, "kind": kind, "strategy": s, "n": int(mask.sum()),
                        "accuracy": float(c.mean()) if len(c) else float("nan"), "ci_low": low, "ci_high": high,
                        "p_vs_greedy": float("nan") if s == "greedy" else mcnemar_exact(gains, losses),
                        "gains": gains, "losses": losses})
    return out


def greedy_outcomes(split_rows: Sequence[Mapping], error_of: Mapping[str, Mapping]) -> tuple[list[str], dict[str, int]]:
    """(test question ids with an error-type row, in split order; greedy correctness from the split
    label), checked against ``greedy_correct`` of the error-type table."""
    ids, correct = [], {}
    for r in split_rows:
        if r["split"] != "test" or r["id"] not in error_of:
            continue
        c = 1 - int(r["label"])
        if int(float(error_of[r["id"]]["greedy_correct"])) != c:
            raise InputError(f"question {r['id']!r}: the error-type table says greedy_correct="
                             f"{error_of[r['id']]['greedy_correct']}, the split's label says {c}",
                             hint="the error types were not made from this run's labels: delete them and run again")
        ids.append(r["id"])
        correct[r["id"]] = c
    return ids, correct


def choose_answers(split_rows: list[dict], shard_paths: list[str], tokens: list[str], cell: Mapping | None,
                   candidate_paths: Sequence[str], label_records: Sequence[Mapping], error_rows: Sequence[Mapping],
                   cfg: ProbeSettings, seed: int) -> tuple[list[dict], list[dict]]:
    """(``answer_selection.tsv`` rows, ``answer_choices.tsv`` rows) of one (model, dataset).

    ``cell`` is ``selection["probe_best_cell"]``; None (or a probe that cannot be fitted) leaves
    the probe strategy out of the table and says so in every choice row.
    """
    error_of = {str(r["id"]): r for r in error_rows}
    labels_of = {str(r["id"]): r["labels"] for r in label_records}
    test_ids, greedy = greedy_outcomes(split_rows, error_of)
    randoms = random_picks(test_ids, labels_of, seed)
    picks, why_not = None, "no probe cell could be fitted (selection probe_best_cell is None)"
    unscored: dict[str, list[str]] = {}
    if cell is not None:
        at = Cell.of(cell)
        candidates = read_candidates(candidate_paths)
        if candidates.cell != at:
            raise InputError(f"candidates were read at {candidates.cell}, the chosen cell is {at}", hint=STALE)
        probe, why_not = fit_greedy_probe(split_rows, shard_paths, tokens, at, cfg)
        if probe is not None:
            X = candidates.X[candidates.valid]
            p_wrong = probe.predict_proba(X)[:, 1] if len(X) else np.zeros(0)
            picks = probe_picks(candidates, p_wrong)
            for qid, valid, reason in zip(candidates.ids, candidates.valid, candidates.reasons):
                if not valid:
                    unscored.setdefault(qid, []).append(reason)
    rows = choice_rows(test_ids, greedy, error_of, labels_of, picks, randoms, unscored)
    if picks is None:
        for r in rows:
            r["reason"] = why_not
    strategies = STRATEGIES if picks is not None else STRATEGIES[:-1]
    return selection_rows(rows, error_of, cfg, strategies), rows
