"""Tests for truthmap.results: the AUC table and the run summary."""

from __future__ import annotations

import math

import pytest

from truthmap.files import InputError, write_json
from truthmap.results import (
    AUC_COLUMNS,
    best_cells,
    exact_answer_coverage,
    gather_cells,
    honest_best_per_site,
    label_summary,
    reason_kind,
    run_summary,
)


def cell(layer: int, token: str, auc: float = 0.7, **extra) -> dict:
    row = {c: 0 for c in AUC_COLUMNS}
    row.update(site="residual", layer=layer, token=token, auc=auc, ci_low=auc - 0.1, ci_high=auc + 0.1,
               status="ok", reason="", fit_seconds=0.01)
    row.update(extra)
    return row


# --------------------------------------------------------------------------- gather_cells


def test_gather_cells_sorts_by_layer_then_canonical_token(tmp_path):
    # numeric layer order (10 after 2) and heatmap token order ("-8" before "-1") are not
    # the lexicographic orders, so a string sort would fail here
    layers, tokens = (10, 2), ("-1", "last_q", "-8", "exact_answer_first")
    paths = []
    for layer in layers:
        for token in tokens:
            path = tmp_path / f"L{layer}_{token}.json"
            write_json(path, cell(layer, token))
            paths.append(path)
    rows = gather_cells(paths)
    expected = [(layer, token) for layer in (2, 10)
                for token in ("last_q", "exact_answer_first", "-8", "-1")]
    assert [(r["layer"], r["token"]) for r in rows] == expected


def test_gather_cells_keeps_skipped_cells_with_null_auc(tmp_path):
    path = tmp_path / "cell.json"
    write_json(path, cell(0, "last_q", auc=float("nan"), status="skipped"))
    (row,) = gather_cells([path])
    assert row["auc"] is None and row["status"] == "skipped"


def test_gather_cells_rejects_duplicate_cells(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_json(a, cell(3, "-1"))
    write_json(b, cell(3, "-1", auc=0.9))
    with pytest.raises(InputError, match=r"duplicate cells \[\('residual', 3, '-1'\)\]"):
        gather_cells([a, b])


def test_gather_cells_orders_sites_as_listed_then_layers_then_tokens(tmp_path):
    cells = [cell(1, "-1", site="mlp_output"), cell(0, "last_q", site="mlp_output"), cell(0, "-1", site="residual"),
             cell(0, "last_q", site="residual")]
    paths = []
    for i, c in enumerate(cells):
        paths.append(tmp_path / f"{i}.json")
        write_json(paths[-1], c)
    rows = gather_cells(paths)
    assert [(r["site"], r["layer"], r["token"]) for r in rows] == [
        ("mlp_output", 0, "last_q"), ("mlp_output", 1, "-1"), ("residual", 0, "last_q"), ("residual", 0, "-1")]


def test_best_cells_count_the_embeddings_row_once():
    rows = [cell(-1, "-1", 0.9, site="residual"), cell(-1, "-1", 0.9, site="mlp_output"), cell(3, "-1", 0.8, site="mlp_output")]
    assert [(r["site"], r["layer"]) for r in best_cells(rows)] == [("residual", -1), ("mlp_output", 3)]


def test_gather_cells_names_the_file_missing_a_column(tmp_path):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    write_json(good, cell(0, "last_q"))
    incomplete = cell(0, "-1")
    del incomplete["ci_high"], incomplete["n_test"]
    write_json(bad, incomplete)
    with pytest.raises(InputError) as err:
        gather_cells([good, bad])
    assert str(bad) in str(err.value)
    assert "ci_high" in str(err.value) and "n_test" in str(err.value)


def test_gather_cells_of_nothing_is_empty():
    assert gather_cells([]) == []


# --------------------------------------------------------------------------- best_cells


def test_best_cells_ranks_by_auc_and_skips_missing_values():
    rows = [
        {"site": "residual", "layer": 0, "token": "a", "auc": 0.61},
        {"site": "residual", "layer": 1, "token": "b", "auc": float("nan")},
        {"site": "residual", "layer": 2, "token": "c", "auc": None},
        {"site": "residual", "layer": 3, "token": "d", "auc": "NaN"},  # as read back from auc.tsv
        {"site": "residual", "layer": 4, "token": "e", "auc": "0.900000"},
        {"site": "residual", "layer": 5, "token": "f", "auc": 0.75},
        {"site": "residual", "layer": 6, "token": "g"},
    ]
    assert [r["layer"] for r in best_cells(rows)] == [4, 5, 0]
    assert [r["layer"] for r in best_cells(rows, k=2)] == [4, 5]
    assert best_cells([{"auc": None}, {"auc": float("nan")}]) == []


# --------------------------------------------------------------------------- reason_kind


@pytest.mark.parametrize(
    "reason, kind",
    [
        ("extractor said NO ANSWER for 'Who wrote X?'", "NO ANSWER"),
        ("'Paris' is not in the generated text", "not in the generated text"),
        ("'the whole sentence here' is not a short answer (9 words)", "not a short answer"),
        ("empty generation", "empty generation"),
        ("extractor's reply is empty", "reply is empty"),
        ("extraction prompt does not fit the extractor's context (skipped: ...)",
         "does not fit the extractor's context"),
        ("something else entirely", "something else entirely"),
        ("", ""),
    ],
)
def test_reason_kind(reason, kind):
    assert reason_kind(reason) == kind


# --------------------------------------------------------------------------- label_summary


def labels_and_generations():
    labels = [
        {"id": qid, "correct": correct, "exact_method": method, "reason": reason,
         "no_answer": "NO ANSWER" in reason}
        for qid, correct, method, reason in [
            ("a", True, "alias", ""),
            ("b", False, "extractor", ""),
            ("c", False, "none", "extractor said NO ANSWER (x)"),
            ("d", True, "none", "'y' is not in the generated text"),
            ("e", False, "none", "extractor said NO ANSWER (z)"),
        ]
    ]
    generations = [
        {"id": "a", "domain": "geo", "finish_reason": "eos", "gen_ids": [1, 2]},
        {"id": "b", "domain": "geo", "finish_reason": "length", "gen_ids": [1, 2, 3, 4]},
        {"id": "c", "domain": "math", "finish_reason": "eos", "gen_ids": [1]},
        {"id": "d", "domain": "", "finish_reason": "eos", "gen_ids": [1, 2, 3]},
        {"id": "e", "finish_reason": "newline", "gen_ids": []},
    ]
    return labels, generations


def test_label_summary_counts():
    labels, generations = labels_and_generations()
    s = label_summary(labels, generations)
    assert s["n_questions"] == 5
    assert s["n_correct"] == 2
    assert s["accuracy"] == pytest.approx(0.4)
    assert s["accuracy_by_domain"] == {"all": 0.5, "geo": 0.5, "math": 0.0}
    assert s["exact_answer_methods"] == {"alias": 1, "extractor": 1, "none": 3}
    assert s["n_no_exact_answer"] == 3
    assert s["n_wrong_no_exact_answer"] == 2
    assert s["n_no_answer"] == 2 and s["no_answer_rate"] == pytest.approx(0.4)
    assert s["no_exact_answer_reasons"] == {"NO ANSWER": 2, "not in the generated text": 1}
    assert s["finish_reasons"] == {"eos": 3, "length": 1, "newline": 1}
    assert s["mean_generated_tokens"] == pytest.approx(2.0)


def test_exact_answer_coverage_before_and_after_retries():
    not_in = "extracted answer 'x' is not in the generated text"
    too_long = "extracted answer has 9 words (max_words=8): not a short answer"
    labels = [
        {"correct": True, "exact_method": "text", "reason": ""},
        {"correct": False, "exact_method": "extracted", "reason": "", "extraction_tries": 1, "extraction_failures": []},
        {"correct": False, "exact_method": "extracted", "reason": "", "extraction_tries": 3,
         "extraction_failures": [not_in, too_long]},
        {"correct": False, "exact_method": "choice", "reason": ""},
        {"correct": False, "exact_method": "none", "reason": not_in, "extraction_tries": 5,
         "extraction_failures": [too_long] + [not_in] * 4},
        {"correct": False, "exact_method": "none", "reason": "extractor said NO ANSWER", "extraction_tries": 1,
         "extraction_failures": ["extractor said NO ANSWER"]},
        {"correct": False, "exact_method": "none", "reason": "empty generation"},
    ]
    c = exact_answer_coverage(labels)
    assert (c["n_wrong"], c["n_found_first_try"], c["n_found"]) == (6, 2, 3)
    assert c["share_first_try"] == pytest.approx(2 / 6) and c["share_after_retries"] == pytest.approx(3 / 6)
    assert c["tries_of_found"] == {"0": 1, "1": 1, "3": 1}
    assert c["first_try_failures"] == {"NO ANSWER": 1, "not a short answer": 1, "not in the generated text": 1}
    assert c["not_found_reasons"] == {"NO ANSWER": 1, "empty generation": 1, "not in the generated text": 1}
    assert math.isnan(exact_answer_coverage(labels[:1])["share_after_retries"])


def test_label_summary_of_nothing():
    s = label_summary([], [])
    assert s["n_questions"] == 0
    assert math.isnan(s["accuracy"]) and math.isnan(s["mean_generated_tokens"])
    assert s["accuracy_by_domain"] == {} and s["n_no_exact_answer"] == 0


# --------------------------------------------------------------------------- run_summary


def test_run_summary_aligns_labels_with_generations_and_counts_the_probe_set():
    labels, generations = labels_and_generations()
    split = [  # as read back from split.tsv: every value a string
        {"id": "a", "label": "0", "split": "test", "common": "1", "reason": ""},
        {"id": "b", "label": "1", "split": "test", "common": "1", "reason": ""},
        {"id": "c", "label": "1", "split": "train", "common": "0",
         "reason": "no exact answer (extractor said NO ANSWER (x))"},
        {"id": "d", "label": "0", "split": "train", "common": "1", "reason": ""},
        {"id": "e", "label": "1", "split": "test", "common": "0",
         "reason": "masked position(s): exact_answer_first, -1"},
    ]
    columns = ("site", "layer", "token", "auc", "ci_low", "ci_high", "status", "cv_auc", "cv_folds")
    auc = [
        dict(zip(columns, ("residual", *values)))
        for values in [
            ("0", "last_q", "0.600000", "0.500000", "0.700000", "ok", "0.900000", "5"),
            ("1", "-1", "NaN", "NaN", "NaN", "skipped", "NaN", "0"),
            ("1", "last_q", "0.800000", "0.650000", "0.900000", "ok", "0.700000", "5"),
        ]
    ]
    s = run_summary(generations, labels[::-1], split, auc)  # labels in another order
    assert s["accuracy_by_domain"] == {"all": 0.5, "geo": 0.5, "math": 0.0}
    assert s["n_correct"] == 2
    assert s["positive_class"] == "wrong answer (label 1)"
    assert s["dtype"] == "unrecorded"  # generations of a version that did not record it
    assert run_summary([{**g, "dtype": "bfloat16"} for g in generations], labels, split, auc)["dtype"] == "bfloat16"
    assert s["n_probe_examples"] == 3
    assert s["n_left_out_of_cells"] == 2
    assert s["left_out_reasons"] == {
        "no exact answer": 1, "masked position(s): exact_answer_first, -1": 1,
    }
    assert s["n_probe_test"] == 2
    assert s["n_probe_test_wrong"] == 1
    assert s["best_cells_on_test_grid"] == [
        {"site": "residual", "layer": 1, "token": "last_q", "auc": 0.8, "ci_low": 0.65, "ci_high": 0.9},
        {"site": "residual", "layer": 0, "token": "last_q", "auc": 0.6, "ci_low": 0.5, "ci_high": 0.7},
    ]
    assert "optimistic" in s["best_cells_note"]
    # chosen by cross-validation on training questions, not by the test AUC
    assert s["best_cell_per_site"] == {"residual": {"layer": 0, "token": "last_q", "cv_auc": 0.9, "auc": 0.6,
                                                    "ci_low": 0.5, "ci_high": 0.7}}


def test_honest_best_per_site_chooses_within_each_site():
    rows = [cell(3, "-1", 0.9, cv_auc=0.7), cell(4, "-1", 0.6, cv_auc=0.8),
            cell(3, "-1", 0.7, site="mlp_output", cv_auc=0.75), cell(-1, "-1", 0.99, site="mlp_output", cv_auc=0.99),
            cell(2, "-1", 0.5, site="attention_output", status="skipped", cv_auc=float("nan"))]
    best = honest_best_per_site(rows)
    assert (best["residual"]["layer"], best["residual"]["auc"]) == (4, 0.6)
    assert (best["mlp_output"]["layer"], best["mlp_output"]["cv_auc"]) == (3, 0.75)  # never the embeddings row
    assert best["attention_output"] is None


# --------------------------------------------------------------------------- within_group_cells


def test_within_group_cells_match_per_group_sklearn_from_the_cells_test_scores():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from truthmap.results import within_group_cells

    rng = np.random.default_rng(0)
    ids = [f"q{i}" for i in range(90)]
    split = [{"id": q, "label": "1" if i % 3 == 0 else "0"} for i, q in enumerate(ids)]
    groups = {q: "abc"[i // 30] for i, q in enumerate(ids)}  # three groups of 30
    y = np.array([int(r["label"]) for r in split])
    scores = (y + rng.normal(size=90)).tolist()
    rows = [cell(0, "last_q", test_ids=ids, test_scores=scores),
            cell(1, "last_q", status="skipped", test_ids=[], test_scores=[])]
    done = within_group_cells(rows, split, groups, 500, 0.95, 0)
    per = [roc_auc_score(y[k * 30:(k + 1) * 30], scores[k * 30:(k + 1) * 30]) for k in range(3)]
    assert done[0]["auc_within_group"] == pytest.approx(np.mean(per)) and done[0]["groups"] == 3
    assert done[0]["within_ci_low"] < done[0]["within_ci_high"]
    assert math.isnan(done[1]["auc_within_group"]) and done[1]["groups"] == 0
    assert done[0]["auc"] == rows[0]["auc"]  # the pooled columns stay
    none = within_group_cells(rows, split, None, 500, 0.95, 0)
    assert math.isnan(none[0]["auc_within_group"]) and none[0]["groups"] == 0
