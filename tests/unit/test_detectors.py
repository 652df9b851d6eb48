"""Detectors: baselines on hand-computed answers, honest cell choice, the comparison table."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from truthmap.settings import ProbeSettings
from truthmap.detectors import (
    BEST_PROBE,
    baseline_scores,
    choose_p_true_order,
    compare_detectors,
    detector_scores,
    select_cells,
    token_spans,
)
from truthmap.probes import evaluate_cell

GEN = {"gen_ids": [10, 11, 12, 2], "finish_reason": "eos",
       "logprobs": [-0.1, -2.0, -0.5, -0.01], "logits": [9.0, 3.0, 6.0, 12.0]}
POS = {"answer_first": "1", "answer_last": "2"}


def test_token_spans_drop_the_final_eos_and_find_the_exact_answer():
    spans = token_spans(GEN, POS)
    assert spans["answer"] == slice(0, 3) and spans["exact"] == slice(1, 3)
    assert token_spans({**GEN, "finish_reason": "length"}, POS)["answer"] == slice(0, 4)
    assert "exact" not in token_spans(GEN, {"answer_first": "-1", "answer_last": "-1"})


def test_baselines_by_hand():
    s = baseline_scores(GEN, POS)
    assert s["logprob_mean_answer"] == pytest.approx((0.1 + 2.0 + 0.5) / 3)
    assert s["logprob_min_answer"] == pytest.approx(2.0)  # minus the least likely token
    assert s["logprob_max_answer"] == pytest.approx(0.1)
    assert s["logprob_last_answer"] == pytest.approx(0.5)
    assert s["logprob_mean_exact"] == pytest.approx(1.25)
    assert s["logprob_min_exact"] == pytest.approx(2.0)
    assert s["logprob_last_exact"] == pytest.approx(0.5)
    assert s["logit_mean_answer"] == pytest.approx(-6.0)
    assert s["logit_min_exact"] == pytest.approx(-3.0)
    assert s["logit_max_exact"] == pytest.approx(-6.0)
    assert len(s) == 2 * 4 * 2
    no_exact = baseline_scores(GEN, {"answer_first": "-1", "answer_last": "-1"})
    assert np.isnan(no_exact["logprob_mean_exact"]) and not np.isnan(no_exact["logprob_mean_answer"])


def cell(layer, token, cv, auc, status="ok", site="residual"):
    return {"site": site, "layer": layer, "token": token, "cv_auc": cv, "cv_folds": 5, "auc": auc, "ci_low": 0.0,
            "ci_high": 1.0, "status": status}


def test_cells_are_chosen_by_training_cross_validation_not_by_test_auc():
    cells = [
        cell(3, "last_q", 0.70, 0.99),  # best on the test split: must not win
        cell(5, "exact_answer_last", 0.90, 0.80),
        cell(7, "-1", 0.60, 0.95),
        cell(9, "-1", 0.65, 0.50),
        cell(2, "exact_answer_first", 0.95, float("nan"), status="skipped"),
    ]
    chosen = select_cells(cells)
    assert (chosen[BEST_PROBE]["layer"], chosen[BEST_PROBE]["token"]) == (5, "exact_answer_last")
    assert chosen["probe_best_exact_cell"]["layer"] == 5
    assert (chosen["probe_last_token"]["layer"], chosen["probe_last_token"]["token"]) == (9, "-1")
    assert select_cells([cell(1, "last_q", float("nan"), 0.9)])[BEST_PROBE] is None


def test_cross_validation_never_sees_the_test_rows():
    """Whatever the test rows hold, a cell's cross-validated AUC (its choice score) is the same."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6)).astype(np.float32)
    y = (X[:, 0] + 0.5 * rng.normal(size=200) > 0).astype(int)
    is_test = np.arange(200) % 5 == 0
    cfg = ProbeSettings()
    first = evaluate_cell(0, "last_q", X, y, is_test, 0, cfg)
    X2, y2 = X.copy(), y.copy()
    X2[is_test] = rng.normal(size=(is_test.sum(), 6))
    y2[is_test] = 1 - y2[is_test]
    second = evaluate_cell(0, "last_q", X2, y2, is_test, 0, cfg)
    assert first.cv_auc == second.cv_auc
    assert first.auc != second.auc


def test_comparison_table():
    rng = np.random.default_rng(1)
    ids = [f"q{i}" for i in range(80)]
    y = np.array([i % 2 for i in range(80)])
    good = y + rng.normal(scale=0.5, size=80)
    noise = rng.normal(size=80)
    scores = {
        BEST_PROBE: dict(zip(ids, good)),
        "same_as_probe": dict(zip(ids, good)),
        "noise": dict(zip(ids, noise)),
        "partial": dict(zip(ids[:70], noise[:70])),
    }
    rows = {r.method: r for r in compare_detectors(ids, y, scores, {"noise": "random"}, ProbeSettings())}
    assert rows[BEST_PROBE].auc == pytest.approx(roc_auc_score(y, good))
    assert np.isnan(rows[BEST_PROBE].p_vs_best_probe)
    assert rows["same_as_probe"].p_vs_best_probe == 1.0
    assert rows["noise"].p_vs_best_probe < 0.01 and rows["noise"].detail == "random"
    assert rows["noise"].ci_low < rows["noise"].auc < rows["noise"].ci_high
    assert np.isnan(rows["partial"].auc) and "no score for 10 of 80" in rows["partial"].detail
    assert rows[BEST_PROBE].n == 80 and rows[BEST_PROBE].n_wrong == 40


def test_p_true_order_is_chosen_on_training_questions_only():
    labels = {"a": 1, "b": 0, "c": 1, "d": 0, "t1": 1, "t2": 0}
    rows = [
        # training questions: order "ba" separates (low log-odds of True for wrong answers)
        {"id": "a", "split": "train", "logodds_true_ab": "1.0", "logodds_true_ba": "-2.0"},
        {"id": "b", "split": "train", "logodds_true_ab": "-1.0", "logodds_true_ba": "2.0"},
        {"id": "c", "split": "train", "logodds_true_ab": "0.5", "logodds_true_ba": "-1.0"},
        {"id": "d", "split": "train", "logodds_true_ab": "-0.5", "logodds_true_ba": "1.0"},
        # test questions say the opposite, and must not matter
        {"id": "t1", "split": "test", "logodds_true_ab": "-9.0", "logodds_true_ba": "9.0"},
        {"id": "t2", "split": "test", "logodds_true_ab": "9.0", "logodds_true_ba": "-9.0"},
    ]
    order, detail = choose_p_true_order(rows, labels)
    assert order == "ba" and "4 training questions" in detail


def test_detector_scores_assemble_on_the_common_test_questions():
    split = [
        {"id": "a", "label": "1", "split": "test", "common": "1"},
        {"id": "b", "label": "0", "split": "test", "common": "1"},
        {"id": "c", "label": "0", "split": "test", "common": "0"},
        {"id": "d", "label": "1", "split": "train", "common": "1"},
    ]
    gens = [{**GEN, "id": q} for q in "abcd"]
    pos = [{**POS, "id": q} for q in "abcd"]
    best = {"site": "residual", "layer": 4, "token": "last_q", "cv_auc": 0.8, "test_ids": ["a", "b"], "test_scores": [2.0, -1.0]}
    chosen = {BEST_PROBE: best, "probe_last_token": None}
    p_true = [{"id": q, "split": s, "logodds_true_ab": "1", "logodds_true_ba": "0"}
              for q, s in (("a", "test"), ("b", "test"), ("d", "train"))]
    inputs = detector_scores(split, gens, pos, chosen, p_true)
    test_ids, labels, scores, details = inputs.test_ids, inputs.labels, inputs.scores, inputs.details
    assert inputs.test_groups is None and "group_prior" not in scores
    assert test_ids == ["a", "b"] and labels.tolist() == [1, 0]
    assert scores[BEST_PROBE] == {"a": 2.0, "b": -1.0}
    assert scores["probe_last_token"] == {} and "no cell" in details["probe_last_token"]
    assert set(scores["logprob_mean_answer"]) == {"a", "b"}
    assert "layer 4, token last_q" in details[BEST_PROBE]
    assert scores["p_true"]["a"] == -1.0


def test_sample_based_detectors_score_test_and_training_questions_from_the_error_types():
    split = [
        {"id": "a", "label": "1", "split": "test", "common": "1"},
        {"id": "b", "label": "0", "split": "test", "common": "1"},
        {"id": "d", "label": "1", "split": "train", "common": "1"},
        {"id": "e", "label": "0", "split": "train", "common": "1"},
    ]
    gens = [{**GEN, "id": q} for q in "abde"]
    pos = [{**POS, "id": q} for q in "abde"]
    # a and d (wrong): samples scattered; b and e (right): samples agree with the greedy answer
    error_rows = [
        {"id": "a", "sample_agreement": "0.2", "distinct_answers": "6", "semantic_entropy": "1.6"},
        {"id": "b", "sample_agreement": "0.9", "distinct_answers": "2", "semantic_entropy": "0.3"},
        {"id": "d", "sample_agreement": "0.4", "distinct_answers": "4", "semantic_entropy": "1.2"},
        {"id": "e", "sample_agreement": "1.0", "distinct_answers": "1", "semantic_entropy": "0.0"},
    ]
    inputs = detector_scores(split, gens, pos, {}, None, error_rows=error_rows)
    assert inputs.scores["samples_disagreement"] == pytest.approx({"a": 0.8, "b": 0.1})
    assert inputs.scores["samples_distinct_answers"] == {"a": 6.0, "b": 2.0}
    assert inputs.scores["semantic_entropy"] == {"a": 1.6, "b": 0.3}
    for method in ("samples_disagreement", "samples_distinct_answers", "semantic_entropy"):
        assert inputs.train_aucs[method] == 1.0
        assert "resampled" in inputs.details[method]
    assert "semantic_entropy" not in detector_scores(split, gens, pos, {}, None).scores


# --------------------------------------------------------------------------- group_prior and within-group AUCs


def _grouped_split(seed: int = 0) -> tuple[list[dict], dict[str, str]]:
    """A split of 300 common questions in 3 groups with error rates 0.1 / 0.5 / 0.8, 10 not common."""
    rng = np.random.default_rng(seed)
    rate = {"easy": 0.1, "mid": 0.5, "hard": 0.8}
    rows, groups = [], {}
    for i in range(310):
        g = list(rate)[i % 3]
        rows.append({"id": f"q{i:03d}", "label": str(int(rng.random() < rate[g])),
                     "split": "test" if i % 4 == 0 else "train", "common": "1" if i < 300 else "0"})
        groups[f"q{i:03d}"] = g
    return rows, groups


def test_group_prior_scores_each_test_question_by_its_groups_training_error_rate():
    from truthmap.detectors import group_prior

    split, groups = _grouped_split()
    scores, detail, test_groups = group_prior(split, groups, "domain")
    test = [r for r in split if r["common"] == "1" and r["split"] == "test"]
    train = [r for r in split if r["common"] == "1" and r["split"] == "train"]
    assert list(scores) == [r["id"] for r in test] and test_groups == [groups[r["id"]] for r in test]
    for g in ("easy", "mid", "hard"):
        expected = np.mean([int(r["label"]) for r in train if groups[r["id"]] == g])  # training rows only
        assert [scores[r["id"]] for r in test if groups[r["id"]] == g] == pytest.approx([expected] * 25)
    assert detail == "training error rate of the question's meta.domain (3 groups on the test questions)"


def test_group_prior_gives_unseen_groups_the_overall_rate_and_needs_two_groups():
    from truthmap.detectors import group_prior

    split, groups = _grouped_split()
    lone = next(r["id"] for r in split if r["split"] == "test" and r["common"] == "1")
    scores, detail, _ = group_prior(split, {**groups, lone: "new"}, "domain")
    overall = np.mean([int(r["label"]) for r in split if r["common"] == "1" and r["split"] == "train"])
    assert scores[lone] == pytest.approx(overall) and "1 unseen in training" in detail
    one = {q: "all" for q in groups}
    assert group_prior(split, one, "domain") == (
        {}, "omitted: the test questions have 1 value(s) of meta.domain; a control needs two", None)
    partial = {q: g for q, g in groups.items() if q != lone}
    assert group_prior(split, partial, "type")[1] == "omitted: 1 of 75 test questions have no meta.type"


def test_the_group_prior_is_a_detector_pooled_and_chance_within_groups():
    """The confound the control exposes: a score that knows only the question's group."""
    split, groups = _grouped_split()
    gens = [{**GEN, "id": r["id"]} for r in split]
    pos = [{**POS, "id": r["id"]} for r in split]
    inputs = detector_scores(split, gens, pos, {}, None, groups)
    test_ids, labels, scores = inputs.test_ids, inputs.labels, inputs.scores
    rows = {r.method: r for r in compare_detectors(test_ids, labels, scores, inputs.details, ProbeSettings(),
                                                   inputs.test_groups)}
    prior = rows["group_prior"]
    assert prior.auc == pytest.approx(roc_auc_score(labels, [scores["group_prior"][q] for q in test_ids]))
    assert prior.auc > 0.7 and prior.groups == 3
    assert prior.auc_within_group == 0.5 and prior.within_ci_low == prior.within_ci_high == 0.5


def test_within_group_columns_and_an_omitted_control():
    rng = np.random.default_rng(3)
    ids = [f"q{i}" for i in range(120)]
    y = np.array([i % 2 for i in range(120)])
    groups = ["a" if i < 60 else "b" for i in range(120)]
    signal = {q: float(y[i] + rng.normal()) for i, q in enumerate(ids)}
    scores = {"signal": signal, "group_prior": {}}
    details = {"group_prior": "omitted: the test questions have 1 value(s) of meta.domain; a control needs two"}
    rows = {r.method: r for r in compare_detectors(ids, y, scores, details, ProbeSettings(), groups)}
    per_group = [roc_auc_score(y[:60], [signal[q] for q in ids[:60]]),
                 roc_auc_score(y[60:], [signal[q] for q in ids[60:]])]
    assert rows["signal"].auc_within_group == pytest.approx(np.mean(per_group)) and rows["signal"].groups == 2
    assert rows["signal"].within_ci_low < rows["signal"].auc_within_group < rows["signal"].within_ci_high
    assert np.isnan(rows["group_prior"].auc) and rows["group_prior"].detail == details["group_prior"]
    without = compare_detectors(ids, y, {"signal": signal}, {}, ProbeSettings())[0]
    assert np.isnan(without.auc_within_group) and without.groups == 0


def test_baselines_are_scored_on_training_questions_and_the_best_one_is_chosen_there():
    from truthmap.detectors import best_baseline

    rng = np.random.default_rng(5)
    split, gens, pos = [], [], []
    for i in range(200):
        wrong = i % 2
        split.append({"id": f"q{i}", "label": str(wrong), "split": "test" if i % 5 == 0 else "train",
                      "common": "1"})
        lp = [float(-abs(rng.normal()) - 2.0 * wrong), float(rng.normal())]  # the first token knows
        gens.append({**GEN, "id": f"q{i}", "gen_ids": [5, 6], "logprobs": lp, "logits": [0.0, 0.0],
                     "finish_reason": "length"})
        pos.append({**POS, "id": f"q{i}"})
    inputs = detector_scores(split, gens, pos, {}, None)
    train = [r for r in split if r["split"] == "train"]
    y = [int(r["label"]) for r in train]
    by_id = {g["id"]: g for g in gens}
    expected = roc_auc_score(y, [-min(by_id[r["id"]]["logprobs"]) for r in train])
    assert inputs.train_aucs["logprob_min_answer"] == pytest.approx(expected)
    rows = compare_detectors(inputs.test_ids, inputs.labels, inputs.scores, inputs.details, ProbeSettings(),
                             None, inputs.train_aucs)
    chosen = best_baseline([r.to_dict() for r in rows])
    assert chosen["train_auc"] == max(r.train_auc for r in rows if np.isfinite(r.train_auc))
    assert chosen["method"].startswith("logprob_")
    rows = [{"method": "probe_best_cell", "auc": 0.9, "train_auc": float("nan")},
            {"method": "group_prior", "auc": 0.7, "train_auc": 0.99},
            {"method": "a", "auc": 0.6, "train_auc": 0.7}, {"method": "b", "auc": 0.8, "train_auc": 0.65}]
    assert best_baseline(rows)["method"] == "a"  # chosen on training questions, not the test AUC
    assert best_baseline(rows[:2]) is None


def test_cells_of_every_site_compete_and_the_choice_names_its_site():
    cells = [cell(3, "-1", 0.7, 0.9), cell(3, "-1", 0.8, 0.6, site="mlp_output"), cell(2, "last_q", 0.75, 0.95)]
    chosen = select_cells(cells)
    assert (chosen[BEST_PROBE]["site"], chosen[BEST_PROBE]["layer"]) == ("mlp_output", 3)
    tie = select_cells([cell(3, "-1", 0.8, 0.9, site="attention_output"), cell(3, "-1", 0.8, 0.6)])
    assert tie[BEST_PROBE]["site"] == "attention_output"  # a tie goes to the site listed first


def test_the_embeddings_row_is_never_a_chosen_cell():
    cells = [{"site": "residual", "layer": -1, "token": "-1", "status": "ok", "cv_auc": 0.99, "cv_folds": 5, "auc": 0.9,
              "ci_low": 0.8, "ci_high": 0.95},
             {"site": "residual", "layer": 3, "token": "-1", "status": "ok", "cv_auc": 0.7, "cv_folds": 5, "auc": 0.7,
              "ci_low": 0.6, "ci_high": 0.8}]
    chosen = select_cells(cells)
    assert chosen[BEST_PROBE]["layer"] == 3 and chosen["probe_last_token"]["layer"] == 3
