"""Answers chosen by the probe, on a constructed run where every choice is known in advance."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from truthmap.candidates import CandidateInputs, check_labels_match, write_candidates
from truthmap.choose import (
    CHOICE_COLUMNS,
    SELECTION_COLUMNS,
    choose_answers,
    probe_picks,
    random_picks,
)
from truthmap.candidates import Candidates
from truthmap.error_types import FINE_TYPES
from truthmap.files import InputError, read_tsv, write_tsv
from truthmap.h5io import ActivationWriter
from truthmap.results import Cell
from truthmap.settings import ProbeSettings
from truthmap.stats import bootstrap_accuracy, mcnemar_exact

TOKENS = ["exact_answer_first"]
CELL = {"site": "residual", "layer": 1, "token": "exact_answer_first", "cv_auc": 0.9}
H = 4

# Per test group: (greedy correct, samples as (correct, has an exact answer, hidden dim 0), majority_correct).
# Dimension 0 is where the greedy probe reads "wrong" (high) against "right" (low).
GROUPS = {
    "A": (0, [(0, 1, 2.0), (1, 1, -3.0), (0, 1, 2.5), (1, 1, -2.0), (1, 1, -3.0)], 1),  # probe fixes greedy
    "B": (1, [(1, 1, -2.0), (0, 1, 2.0)], 1),  # probe keeps the right answer
    "C": (1, [(0, 1, 1.0), (0, 0, 0.0), (0, 1, 3.0)], 0),  # only wrong answers: probe breaks greedy
    "D": (0, [(0, 0, 0.0), (0, 0, 0.0)], 0),  # nothing scorable: counted wrong
    "E": (0, [(0, 1, 2.0), (0, 1, 1.0)], 1),  # only wrong answers, greedy wrong too
}
SIZES = {"A": 5, "B": 5, "C": 3, "D": 2, "E": 5}
EXPECTED_SAMPLE = {"A": 1, "B": 0, "C": 0, "D": -1, "E": 1}


def make_run(tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    split, error_rows, labels, greedy_x = [], [], [], []
    ids_c, sample_c, samples_c, pos_c, reasons_c, X_c = [], [], [], [], [], []
    for i in range(60):  # training questions: only their greedy answers matter
        wrong = i % 2
        split.append({"id": f"t{i:02d}", "label": str(wrong), "split": "train", "common": "1", "reason": ""})
        greedy_x.append(2.0 if wrong else -2.0)
    for group, (greedy_ok, samples, majority) in GROUPS.items():
        for j in range(SIZES[group]):
            qid = f"{group}{j}"
            split.append({"id": qid, "label": str(1 - greedy_ok), "split": "test", "common": "1", "reason": ""})
            greedy_x.append(-2.0 if greedy_ok else 2.0)
            row = {"id": qid, "greedy_correct": str(greedy_ok), "n_samples": str(len(samples)), "coarse_type": group,
                   "majority_sample": "0", "majority_correct": str(majority)}
            row.update({t: "0" for t in FINE_TYPES})
            row["right_is_largest_1"] = "1" if group in "AB" else "0"
            error_rows.append(row)
            labels.append({"id": qid, "labels": [
                {"correct": bool(ok), "exact_answer": f"ans{k}" if exact else None, "exact_start": 0 if exact else None,
                 "exact_end": 4 if exact else None, "no_answer": not exact, "reason": "" if exact else "refused"}
                for k, (ok, exact, _) in enumerate(samples)]})
            seen: dict[float, int] = {}
            for k, (_, exact, x) in enumerate(samples):
                if group == "A" and k == 4:  # the same answer as sample 1: one candidate of both
                    samples_c[seen[x]].append(k)
                    continue
                seen.setdefault(x, len(ids_c))
                ids_c.append(qid)
                sample_c.append(k)
                samples_c.append([k])
                pos_c.append(5 if exact else -1)
                reasons_c.append("" if exact else "no exact answer for token exact_answer_first (refused)")
                X_c.append([x, *rng.normal(0, 0.1, H - 1)])
    X = rng.normal(0, 0.3, size=(len(split), 1, H)).astype(np.float32)
    X[:, 0, 0] += np.array(greedy_x)
    shard = tmp_path / "act.h5"
    with ActivationWriter(shard, ids=[r["id"] for r in split], labels=np.array([int(r["label"]) for r in split]),
                          positions=np.ones((len(split), 1), int), tokens=TOKENS, layers=[1], hidden_size=H,
                          widths={"residual": H}, model="m") as w:
        w.write(np.arange(len(split)), {"sites/residual/1": X})
    cand = tmp_path / "cand.h5"
    inputs = CandidateInputs(ids_c, sample_c, samples_c, [[]] * len(ids_c), np.array(pos_c), reasons_c)
    write_candidates(cand, inputs, Cell.of(CELL), np.array(X_c, dtype=np.float32))
    return split, [str(shard)], [str(cand)], labels, error_rows


def run(tmp_path, cell=CELL, seed=3, **cfg):
    split, shards, cands, labels, errors = make_run(tmp_path)
    return choose_answers(split, shards, TOKENS, cell, cands, labels, errors, ProbeSettings(bootstrap=300, **cfg),
                          seed)


def test_the_probe_chooses_the_answer_it_finds_least_likely_wrong(tmp_path):
    table, choices = run(tmp_path)
    assert set(choices[0]) == set(CHOICE_COLUMNS)
    assert [c["id"] for c in choices] == [f"{g}{j}" for g in GROUPS for j in range(SIZES[g])]
    for c in choices:
        group = c["id"][0]
        assert c["probe_sample"] == EXPECTED_SAMPLE[group], c
        assert c["probe_correct"] == (1 if group in "AB" else 0)
        assert c["greedy_correct"] == GROUPS[group][0] and c["majority_correct"] == GROUPS[group][2]
        if group == "D":
            assert c["n_candidates"] == 0 and "no scorable candidate" in c["reason"] and "refused" in c["reason"]
        else:
            assert c["probe_text"] == f"ans{EXPECTED_SAMPLE[group]}" and 0 <= c["probe_p_wrong"] <= 1
    assert {c["n_candidates"] for c in choices if c["id"][0] == "A"} == {4}  # samples 1 and 4 are one candidate


def test_accuracies_gains_losses_and_mcnemar(tmp_path):
    table, _ = run(tmp_path)
    assert set(table[0]) == set(SELECTION_COLUMNS)
    at = {(r["type"], r["strategy"]): r for r in table}
    greedy, probe, majority = at["all", "greedy"], at["all", "probe"], at["all", "majority"]
    assert greedy["n"] == 20 and greedy["accuracy"] == pytest.approx(8 / 20) and np.isnan(greedy["p_vs_greedy"])
    assert probe["accuracy"] == pytest.approx(10 / 20) and (probe["gains"], probe["losses"]) == (5, 3)
    assert probe["p_vs_greedy"] == pytest.approx(186 / 256)  # 2 * (C(8,0)+C(8,1)+C(8,2)+C(8,3)) / 2^8
    assert probe["p_vs_greedy"] == pytest.approx(binomtest(5, 8).pvalue)
    assert majority["accuracy"] == pytest.approx(15 / 20) and (majority["gains"], majority["losses"]) == (10, 3)
    assert probe["ci_low"] <= probe["accuracy"] <= probe["ci_high"]
    assert at["A", "probe"]["accuracy"] == 1.0 and at["A", "greedy"]["accuracy"] == 0.0 and at["A", "probe"]["n"] == 5
    assert at["right_is_largest_1", "probe"]["n"] == 10 and at["right_is_largest_1", "greedy"]["accuracy"] == 0.5
    assert at["no_answer_is_largest", "probe"]["n"] == 0 and np.isnan(at["no_answer_is_largest", "probe"]["accuracy"])
    assert {r["kind"] for r in table} == {"all", "fine", "coarse"}


def test_random_picks_only_samples_with_an_exact_answer_and_is_seeded(tmp_path):
    _, choices = run(tmp_path)
    for c in choices:
        if c["id"][0] in "CDE":  # no right sample with an exact answer (D: none at all)
            assert c["random_correct"] == 0
    labels = {"q1": [{"exact_start": None}, {"exact_start": 0, "exact_end": 1}, {"exact_start": 2, "exact_end": 3}],
              "q2": [{"exact_start": None}]}
    picks = [random_picks(["q2", "q1"], labels, seed)["q1"] for seed in range(200)]
    assert set(picks) == {1, 2} and 70 < picks.count(1) < 130
    assert random_picks(["q1", "q2"], labels, 7) == random_picks(["q2", "q1"], labels, 7)
    assert random_picks(["q2"], labels, 7)["q2"] is None


def test_ties_go_to_the_earliest_sample():
    cands = Candidates(ids=["q", "q", "q"], sample=np.array([3, 0, 2]), samples=[[3], [0], [2]],
                       X=np.zeros((3, 1)), valid=np.array([True, True, False]), reasons=["", "", "x"], cell=None)
    assert probe_picks(cands, np.array([0.2, 0.2])) == {"q": (0, 0.2, 2)}


def test_mcnemar_against_scipy_and_the_bootstrap_interval():
    for gains, losses in [(0, 0), (1, 0), (5, 3), (12, 2), (0, 9), (30, 31)]:
        expected = 1.0 if gains + losses == 0 else binomtest(gains, gains + losses).pvalue
        assert mcnemar_exact(gains, losses) == pytest.approx(expected)
    low, high = bootstrap_accuracy(np.r_[np.ones(60), np.zeros(40)], 2000, 0.95, 0)
    assert low == pytest.approx(0.5, abs=0.03) and high == pytest.approx(0.7, abs=0.03)  # 0.6 +- 1.96 * 0.049
    assert np.isnan(bootstrap_accuracy(np.zeros(0), 10, 0.95, 0)[0])


def test_without_a_cell_the_probe_is_left_out_and_stale_candidates_are_refused(tmp_path):
    table, choices = run(tmp_path, cell=None)
    assert {r["strategy"] for r in table} == {"greedy", "random", "majority"}
    assert all("no probe cell" in c["reason"] for c in choices)
    with pytest.raises(InputError, match="the chosen cell is"):
        run(tmp_path, cell={**CELL, "layer": 2})


def test_labels_must_belong_to_the_samples():
    samples = [{"id": "q", "samples": [{}, {}]}]
    check_labels_match(samples, [{"id": "q", "labels": [{}, {}]}])
    with pytest.raises(InputError, match="2 samples but 1 sample labels"):
        check_labels_match(samples, [{"id": "q", "labels": [{}]}])
    with pytest.raises(InputError, match="2 samples but no sample labels"):
        check_labels_match(samples, [])


def test_greedy_correctness_must_agree_with_the_split(tmp_path):
    split, shards, cands, labels, errors = make_run(tmp_path)
    errors[0]["greedy_correct"] = "1"
    with pytest.raises(InputError, match="greedy_correct"):
        choose_answers(split, shards, TOKENS, CELL, cands, labels, errors, ProbeSettings(), 0)


def test_figure_renders(tmp_path):
    from truthmap.plot_resampling import plot_answer_selection

    table, _ = run(tmp_path)
    write_tsv(tmp_path / "sel.tsv", table, SELECTION_COLUMNS)  # as the plot rule reads it: strings
    paths = [tmp_path / "sel.png", tmp_path / "sel.pdf"]
    plot_answer_selection(read_tsv(tmp_path / "sel.tsv"), "Answer selection: tiny on synthetic", paths)
    assert all(p.stat().st_size > 1000 for p in paths)
