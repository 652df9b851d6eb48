"""Tests for truthmap.error_types: clustering, the reference's types at their thresholds, the
coarse decision list, the label-free detectors and the tables."""

from __future__ import annotations

import math
import random

import pytest

from truthmap.error_types import (
    COARSE_TYPES,
    ERROR_TYPE_COLUMNS,
    FINE_TYPES,
    SUMMARY_COLUMNS,
    ErrorStats,
    cluster_answers,
    coarse_type,
    discrete_entropy,
    error_stats,
    error_type_rows,
    fine_types,
    label_free_stats,
    type_summary,
)
from truthmap.files import InputError, read_tsv, write_tsv

NO = "NO ANSWER"


def label(qid="q", correct=False, exact=None, no_answer=False) -> dict:
    """An AnswerLabel.to_dict() with what error_types reads."""
    return {"id": qid, "correct": correct, "exact_answer": exact, "exact_start": None, "exact_end": None,
            "exact_method": "none" if exact is None else "extracted", "matched_alias": None, "choice": None,
            "extractor_reply": None, "no_answer": no_answer, "reason": "" if exact else "failed"}


def wrong_name(i: int) -> str:
    """Distinct wrong answers, none containing another ("x1y" is not in "x11y")."""
    return f"x{i}y"


def sample_set(n: int, correct: int = 0, wrong=(), no_answer: int = 0) -> list[dict]:
    """n samples: ``correct`` correct ones, wrong clusters of the given sizes, a NO ANSWER cluster,
    and failed extractions (which change no type) for the rest."""
    failed = n - correct - sum(wrong) - no_answer
    assert failed >= 0, "the composition has more than n samples"
    labels = [label(correct=True, exact="gold") for _ in range(correct)]
    labels += [label(exact=wrong_name(i)) for i, size in enumerate(wrong) for _ in range(size)]
    labels += [label(no_answer=True) for _ in range(no_answer)]
    labels += [label() for _ in range(failed)]
    return labels


# --------------------------------------------------------------------------- clustering


def test_equal_answers_share_a_cluster():
    assert cluster_answers(["Paris", "Paris", "Rome"]) == {"Paris": 2, "Rome": 1}


def test_case_accents_articles_and_punctuation_are_folded():
    assert cluster_answers(["paris", "PARIS", "Paris."]) == {"paris": 3}
    assert cluster_answers(["Zürich", "zurich"]) == {"Zürich": 2}
    assert cluster_answers(["The Beatles", "beatles"]) == {"The Beatles": 2}


def test_a_contained_answer_joins_the_containing_cluster():
    assert cluster_answers(["Paris, France", "Paris"]) == {"Paris, France": 2}


def test_a_containing_answer_joins_the_contained_cluster():
    assert cluster_answers(["Paris", "Paris, France"]) == {"Paris": 2}


def test_containment_is_a_plain_substring_as_the_reference():
    assert cluster_answers(["Rome", "Romeo"]) == {"Rome": 2}


def test_an_answer_joins_only_the_first_cluster_it_matches():
    # the reference would add "Paris France" to both clusters: {"Paris": 2, "France": 2}
    clusters = cluster_answers(["Paris", "France", "Paris France"])
    assert clusters == {"Paris": 2, "France": 1}
    assert sum(clusters.values()) == 3


def test_clusters_are_compared_with_their_first_answer_only():
    # "France" is inside a member of "Paris", not inside "Paris" itself: a cluster of its own
    assert cluster_answers(["Paris", "Paris France", "France"]) == {"Paris": 2, "France": 1}


def test_no_answer_never_merges_by_containment():
    assert cluster_answers([NO, "no", "answer", NO, "No answer"]) == {NO: 2, "no": 2, "answer": 1}


def test_empty_answers_match_nothing_but_themselves():
    assert cluster_answers(["Paris", "", ".", "", "the"]) == {"Paris": 1, "": 2, ".": 1, "the": 1}


def test_cluster_sizes_always_sum_to_the_answers():
    rng = random.Random(0)
    vocab = ["Paris", "paris france", "France", "Rome", "Romeo", "rome italy", NO, "", "the", "Italy"]
    for _ in range(300):
        answers = [rng.choice(vocab) for _ in range(rng.randint(0, 30))]
        assert sum(cluster_answers(answers).values()) == len(answers)


# --------------------------------------------------------------------------- stats


def test_stats_count_correct_wrong_clusters_no_answer_and_failures():
    labels = [label(correct=True, exact="Paris"), label(correct=True, exact="paris"),
              label(exact="Lyon"), label(exact="lyon city"), label(exact="Nice"),
              label(no_answer=True), label(no_answer=True), label(no_answer=True), label(), label()]
    stats = error_stats(labels)
    assert stats == ErrorStats(n_samples=10, correct_size=2, largest_wrong_size=3, n_wrong_answers=3,
                               no_answer_size=3, n_without_exact=2,
                               wrong_answers={"Lyon": 2, "Nice": 1, NO: 3})


# --------------------------------------------------------------------------- thresholds


def threshold_cases(n: int) -> list[tuple[str, dict, str, bool]]:
    """(case, composition, type, expected) at and just below each type's threshold for n samples."""
    h, t, s = n // 2, n // 3, n // 6
    return [
        ("no answer > correct", dict(correct=2, wrong=[3], no_answer=3), "no_answer_is_largest", True),
        ("no answer == correct", dict(correct=3, wrong=[2], no_answer=3), "no_answer_is_largest", False),
        ("no answer ties largest", dict(correct=1, wrong=[3], no_answer=3), "no_answer_is_largest", True),
        ("no answer below largest", dict(correct=1, wrong=[4], no_answer=3), "no_answer_is_largest", False),
        ("wrong == half", dict(correct=1, wrong=[h]), "wrong_is_largest_1", True),
        ("wrong == half - 1", dict(correct=1, wrong=[h - 1]), "wrong_is_largest_1", False),
        ("wrong == half, no answer", dict(correct=1, no_answer=h), "wrong_is_largest_1", False),
        ("wrong == half, none correct", dict(correct=0, wrong=[h]), "wrong_is_largest_1", False),
        ("wrong2 == half", dict(correct=0, wrong=[h]), "wrong_is_largest_2", True),
        ("wrong2 == half - 1", dict(correct=0, wrong=[h - 1]), "wrong_is_largest_2", False),
        ("wrong2 == half, no answer", dict(correct=0, no_answer=h), "wrong_is_largest_2", False),
        ("right == half", dict(correct=h, wrong=[1]), "right_is_largest_1", True),
        ("right == half - 1", dict(correct=h - 1, wrong=[1]), "right_is_largest_1", False),
        ("right == half, no wrong cluster", dict(correct=h), "right_is_largest_1", False),
        ("right == n", dict(correct=n), "right_is_largest_2", True),
        ("right == n - 1", dict(correct=n - 1, wrong=[1]), "right_is_largest_2", False),
        ("right == n - 1, one failed", dict(correct=n - 1), "right_is_largest_2", False),
        ("wrong answers == third - 1", dict(correct=1, wrong=[1] * (t - 1)), "many_different_answers_1", True),
        ("wrong answers == third - 2", dict(correct=1, wrong=[1] * (t - 2)), "many_different_answers_1", False),
        ("many, none correct", dict(correct=0, wrong=[1] * t), "many_different_answers_1", False),
        ("wrong answers2 == third", dict(correct=0, wrong=[1] * t), "many_different_answers_2", True),
        ("wrong answers2 == third - 1", dict(correct=0, wrong=[1] * (t - 1)), "many_different_answers_2", False),
        ("many2, one correct", dict(correct=1, wrong=[1] * t), "many_different_answers_2", False),
        ("both sixth + 1", dict(correct=s + 1, wrong=[s + 1]), "closely_competing_answers", True),
        ("correct == sixth", dict(correct=s, wrong=[s + 1]), "closely_competing_answers", False),
        ("wrong == sixth", dict(correct=s + 1, wrong=[s]), "closely_competing_answers", False),
        ("gap == sixth", dict(correct=2 * s + 1, wrong=[s + 1]), "closely_competing_answers", True),
        ("gap == sixth + 1", dict(correct=2 * s + 2, wrong=[s + 1]), "closely_competing_answers", False),
        ("gap == sixth, wrong larger", dict(correct=s + 1, wrong=[2 * s + 1]), "closely_competing_answers", True),
    ]


@pytest.mark.parametrize("n", [10, 30])
def test_every_type_at_and_just_below_its_threshold(n):
    for case, composition, name, expected in threshold_cases(n):
        types = fine_types(error_stats(sample_set(n, **composition)))
        assert types[name] is expected, f"n={n}, {case}: {name} should be {expected}"


def test_thresholds_are_the_ones_of_n_10_and_30():
    # the threshold cases above rest on these
    assert [(n // 2, n // 3, n // 6) for n in (10, 30)] == [(5, 3, 1), (15, 10, 5)]


def test_no_samples_have_no_type():
    assert not any(fine_types(error_stats([])).values())


def reference_types(correct: int, wrong: dict[str, int], n: int) -> dict[str, bool]:
    """The reference's get_types_of_mistakes and get_is_largest_no_answer, restated literally on
    its per-question record (correct size and the wrong-answer dict)."""
    largest = max(wrong.values()) if len(wrong) > 0 else 0
    k = len(wrong.keys())
    no_answer = (NO in wrong) and (wrong[NO] == max(wrong.values()) and (wrong[NO] > correct))
    half, third, sixth = n // 2, n // 3, n // 6
    return {
        "no_answer_is_largest": no_answer,
        "wrong_is_largest_1": (largest >= half) & (no_answer == 0) & (correct > 0),
        "wrong_is_largest_2": (largest >= half) & (no_answer == 0) & (correct == 0),
        "right_is_largest_1": (correct >= half) & (k > 0),
        "right_is_largest_2": correct == n,
        "many_different_answers_1": (k >= (third - 1)) & (correct > 0),
        "many_different_answers_2": (k >= third) & (correct == 0),
        "closely_competing_answers": (abs(correct - largest) <= sixth) & (correct > sixth) & (largest > sixth),
    }


def random_composition(rng: random.Random) -> tuple[int, int, list[int], int]:
    n = rng.randint(1, 40)
    correct = rng.choice([0, n, rng.randint(0, n)])
    left = n - correct
    wrong = []
    while left and rng.random() < 0.8:
        wrong.append(rng.randint(1, left))
        left -= wrong[-1]
    no_answer = rng.randint(0, left)
    return n, correct, wrong, no_answer


def test_types_agree_with_the_reference_formulas_on_random_questions():
    rng = random.Random(15)
    seen = dict.fromkeys(FINE_TYPES, 0)
    for _ in range(3000):
        n, correct, wrong, no_answer = random_composition(rng)
        clusters = {wrong_name(i): size for i, size in enumerate(wrong)} | ({NO: no_answer} if no_answer else {})
        ours = fine_types(error_stats(sample_set(n, correct, wrong, no_answer)))
        assert ours == reference_types(correct, clusters, n), (n, correct, clusters)
        for name, value in ours.items():
            seen[name] += value
    assert all(seen.values()), f"some type never held: {seen}"


# --------------------------------------------------------------------------- coarse type

ORDER = ["unclustered", "consistently_correct", "no_answer", "consistently_wrong", "closely_competing",
         "mostly_right", "mostly_wrong", "many_answers", "other"]


def test_coarse_types_are_the_documented_list():
    assert list(COARSE_TYPES) == ORDER


def expected_coarse(stats: ErrorStats, t: dict[str, bool]) -> str:
    holds = {
        "unclustered": stats.n_without_exact == stats.n_samples,
        "consistently_correct": t["right_is_largest_2"],
        "no_answer": t["no_answer_is_largest"],
        "consistently_wrong": t["wrong_is_largest_2"],
        "closely_competing": t["closely_competing_answers"],
        "mostly_right": t["right_is_largest_1"],
        "mostly_wrong": t["wrong_is_largest_1"],
        "many_answers": t["many_different_answers_1"] or t["many_different_answers_2"],
        "other": True,
    }
    return next(name for name in ORDER if holds[name])


def test_every_question_gets_the_first_coarse_type_that_holds():
    rng = random.Random(1)
    seen = set()
    for _ in range(3000):
        n, correct, wrong, no_answer = random_composition(rng)
        stats = error_stats(sample_set(n, correct, wrong, no_answer))
        got = coarse_type(stats)
        assert got in COARSE_TYPES
        assert got == expected_coarse(stats, fine_types(stats))
        seen.add(got)
    assert seen == set(COARSE_TYPES)


@pytest.mark.parametrize(("composition", "expected"), [
    (dict(correct=10), "consistently_correct"),
    (dict(correct=2, wrong=[3], no_answer=3), "no_answer"),
    (dict(correct=0, wrong=[6, 2]), "consistently_wrong"),
    (dict(correct=5, wrong=[5]), "closely_competing"),  # also mostly_right and mostly_wrong
    (dict(correct=7, wrong=[1, 1, 1]), "mostly_right"),  # also many_different_answers_1
    (dict(correct=1, wrong=[6, 1]), "mostly_wrong"),
    (dict(correct=1, wrong=[2, 2, 2]), "many_answers"),
    (dict(correct=0, wrong=[1, 1, 1]), "many_answers"),
    (dict(correct=1, wrong=[1]), "other"),
    (dict(), "unclustered"),
])
def test_coarse_type_of_hand_made_questions(composition, expected):
    assert coarse_type(error_stats(sample_set(10, **composition))) == expected


# --------------------------------------------------------------------------- label-free detectors


def test_label_free_stats_against_a_hand_computation():
    answers = ["B", "A", "A", "C", "A", "B", "A", "C", "B", "A"]  # A: 5 (first at 1), B: 3, C: 2
    free = label_free_stats(answers, "A")
    assert free.sample_agreement == 0.5
    assert free.distinct_answers == 3
    assert free.semantic_entropy == pytest.approx(-(0.5 * math.log(0.5) + 0.3 * math.log(0.3)
                                                    + 0.2 * math.log(0.2)))
    assert free.majority_sample == 1


def test_label_free_stats_ignore_correctness():
    answers = ["Paris", "Lyon", "Paris", "paris", NO]
    rows = [error_type_rows([{"id": "q", "labels": [label(correct=c, exact=a if a != NO else None,
                                                          no_answer=a == NO) for a, c in zip(answers, flags)]}],
                            [label(correct=True, exact="Paris")])[0]
            for flags in ([True, False, True, True, False], [False] * 5)]
    for column in ("sample_agreement", "distinct_answers", "semantic_entropy", "majority_sample"):
        assert rows[0][column] == rows[1][column]
    assert rows[0]["sample_agreement"] == 0.6
    assert (rows[0]["majority_correct"], rows[1]["majority_correct"]) == (1, 0)


def test_the_greedy_answer_joins_by_containment():
    assert label_free_stats(["Paris, France", "Paris", "Lyon"], "paris").sample_agreement == pytest.approx(2 / 3)


def test_agreement_is_zero_without_a_greedy_exact_answer_or_a_match():
    answers = [NO, NO, "Paris"]
    assert label_free_stats(answers, None).sample_agreement == 0
    assert label_free_stats(answers, NO).sample_agreement == 0
    assert label_free_stats(answers, "Rome").sample_agreement == 0


def test_samples_without_an_answer_are_clusters_of_their_own():
    free = label_free_stats(["A", None, "A", None], "A")
    assert free.distinct_answers == 3
    assert free.semantic_entropy == pytest.approx(discrete_entropy([2, 1, 1]))
    assert free.sample_agreement == 0.5


def test_majority_ties_go_to_the_first_cluster():
    assert label_free_stats(["B", "A", "A", "B"], "A").majority_sample == 0
    assert label_free_stats([None, None, "A"], None).majority_sample == 0


def test_entropy_is_zero_for_one_answer_and_log_n_for_all_different():
    assert math.copysign(1, label_free_stats(["A"] * 4, "A").semantic_entropy) == 1  # 0.0, not -0.0 in the table
    assert label_free_stats(["A", "B", "C", "D"], "A").semantic_entropy == pytest.approx(math.log(4))


# --------------------------------------------------------------------------- rows and summary


def test_rows_have_every_column_and_the_values_of_a_hand_made_question():
    labels = sample_set(10, correct=2, wrong=[3], no_answer=3)
    row = error_type_rows([{"id": "q", "labels": labels}], [label(correct=False, no_answer=True)])[0]
    assert tuple(row) == ERROR_TYPE_COLUMNS
    assert {k: row[k] for k in ("greedy_correct", "n_samples", "correct_size", "largest_wrong_size",
                                "n_wrong_answers", "no_answer_size", "n_without_exact", "coarse_type",
                                "wrong_answers", "sample_agreement", "distinct_answers", "majority_sample",
                                "majority_correct", "reason")} == {
        "greedy_correct": 0, "n_samples": 10, "correct_size": 2, "largest_wrong_size": 3, "n_wrong_answers": 2,
        "no_answer_size": 3, "n_without_exact": 2, "coarse_type": "no_answer",
        "wrong_answers": '{"x0y": 3, "NO ANSWER": 3}', "sample_agreement": 0.0, "distinct_answers": 5,
        "majority_sample": 2, "majority_correct": 0, "reason": ""}
    # 3 against 2 is also a close competition (|2 - 3| <= 10 // 6, both above it)
    assert [row[name] for name in FINE_TYPES] == [1, 0, 0, 0, 0, 1, 0, 1]


def test_a_question_whose_extractions_all_failed_gets_a_reason_not_a_crash():
    row = error_type_rows([{"id": "q", "labels": [label() for _ in range(10)]}], [label()])[0]
    assert row["coarse_type"] == "unclustered"
    assert row["n_without_exact"] == 10
    assert "all 10 are wrong without an exact answer" in row["reason"]
    assert not any(row[name] for name in FINE_TYPES)
    assert (row["distinct_answers"], row["sample_agreement"], row["majority_sample"]) == (10, 0.0, 0)


def test_a_question_without_samples_gets_a_reason():
    row = error_type_rows([{"id": "q", "labels": []}], [label()])[0]
    assert (row["reason"], row["coarse_type"], row["majority_sample"], row["majority_correct"]) == (
        "no samples", "unclustered", -1, None)
    assert math.isnan(row["semantic_entropy"]) and math.isnan(row["sample_agreement"])


def test_a_question_without_a_greedy_label_is_an_input_error():
    with pytest.raises(InputError, match="no greedy label.*'b'"):
        error_type_rows([{"id": "a", "labels": []}, {"id": "b", "labels": []}], [label("a")])


def test_a_question_sampled_twice_is_an_input_error():
    with pytest.raises(InputError, match="more than one sample record"):
        error_type_rows([{"id": "a", "labels": []}, {"id": "a", "labels": []}], [label("a")])


def test_summary_counts_and_shares_read_back_from_the_table(tmp_path):
    records = [
        {"id": "a", "labels": sample_set(10, correct=10)},
        {"id": "b", "labels": sample_set(10, correct=5, wrong=[5])},
        {"id": "c", "labels": sample_set(10, correct=0, wrong=[6, 2])},
        {"id": "d", "labels": sample_set(10, correct=0, wrong=[7])},
    ]
    greedy = [label("a", True, "gold"), label("b", False, "x0y"), label("c", False, "x0y"), label("d", True, "gold")]
    path = tmp_path / "error_types.tsv"
    write_tsv(path, error_type_rows(records, greedy), ERROR_TYPE_COLUMNS)
    summary = {(r["type"], r["kind"]): r for r in type_summary(read_tsv(path))}
    assert all(tuple(r) == SUMMARY_COLUMNS for r in summary.values())
    assert len(summary) == len(FINE_TYPES) + len(COARSE_TYPES)
    wrong2 = summary["wrong_is_largest_2", "fine"]
    assert (wrong2["count"], wrong2["share"], wrong2["count_greedy_wrong"], wrong2["share_greedy_wrong"],
            wrong2["n"], wrong2["n_greedy_wrong"]) == (2, 0.5, 1, 0.5, 4, 2)
    assert summary["closely_competing", "coarse"]["count_greedy_wrong"] == 1
    assert sum(r["count"] for r in summary.values() if r["kind"] == "coarse") == 4


def test_summary_shares_are_nan_over_no_questions():
    summary = type_summary([])
    assert all(math.isnan(r["share"]) and math.isnan(r["share_greedy_wrong"]) for r in summary)
