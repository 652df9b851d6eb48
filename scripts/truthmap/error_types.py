"""Types of errors from a question's resampled answers (Orgad et al. 2024, section 5).

Each question's ``n`` resampled answers are split as the reference code does
(technion-cs-nlp/LLMsKnow, ``src/resamples_utils.py``: ``get_error_stats``,
``get_types_of_mistakes``, ``get_is_largest_no_answer``):

- the samples judged correct form the correct cluster (``correct_size``);
- the wrong samples with an exact answer are clustered by it (:func:`cluster_answers`); the
  extractor's NO ANSWER is an answer of its own, the cluster ``"NO ANSWER"``;
- wrong samples without an exact answer (extraction failed) are not clustered, only counted
  (``n_without_exact``).

From these stats come the eight overlapping *fine* types, with the reference's definitions and
thresholds unchanged (:func:`fine_types`), and one *coarse* type per question, the first of a
decision list that matches (:data:`COARSE_RULES`).

Beside them, label-free answer clusters of every sample (correct or not, since a detector cannot
see the gold answer) give the sample-based detectors: the greedy answer's agreement with the
samples, the number of distinct answers and the discrete semantic entropy (Farquhar et al.,
Nature 2024), and the majority-vote sample (:func:`label_free_stats`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from truthmap.files import InputError
from truthmap.matching import normalize
from truthmap.prompts import NO_ANSWER

FINE_TYPES: tuple[str, ...] = (
    "no_answer_is_largest",
    "wrong_is_largest_1",
    "wrong_is_largest_2",
    "right_is_largest_1",
    "right_is_largest_2",
    "many_different_answers_1",
    "many_different_answers_2",
    "closely_competing_answers",
)
"""The reference's types of mistakes (they overlap; the reference's catch-all ``all`` is left out)."""

ERROR_TYPE_COLUMNS: tuple[str, ...] = (
    "id", "greedy_correct", "n_samples", "correct_size", "largest_wrong_size", "n_wrong_answers",
    "no_answer_size", "n_without_exact", *FINE_TYPES, "coarse_type", "wrong_answers",
    "sample_agreement", "distinct_answers", "semantic_entropy", "majority_sample", "majority_correct",
    "reason",
)
"""Columns of ``error_types.tsv``, one row per question (:func:`error_type_rows`)."""

SUMMARY_COLUMNS: tuple[str, ...] = (
    "type", "kind", "count", "share", "count_greedy_wrong", "share_greedy_wrong", "n", "n_greedy_wrong",
)
"""Columns of ``error_type_summary.tsv`` (:func:`type_summary`)."""


# --------------------------------------------------------------------------------------------
# Clustering answers
# --------------------------------------------------------------------------------------------


def same_answer(answer: str, key: str) -> bool:
    """Whether ``answer`` joins the cluster named ``key``: equal raw strings, or normalised forms
    (:func:`truthmap.matching.normalize`) of which one contains the other, as the reference's
    case-insensitive containment. NO ANSWER joins only NO ANSWER, and an answer whose normalised
    form is empty joins only an identical string (the empty string is in every string)."""
    if answer == key:
        return True
    if NO_ANSWER in (answer, key):
        return False
    a, k = normalize(answer), normalize(key)
    return bool(a) and bool(k) and (a in k or k in a)


def assign_clusters(answers: Sequence[str | None]) -> list[int]:
    """Each answer's cluster, numbered in order of first appearance.

    An answer joins the *first* cluster whose first answer it matches (:func:`same_answer`), or
    starts a new one. None (no answer to compare) always starts a cluster of its own.
    """
    keys: list[str | None] = []
    out = []
    for answer in answers:
        index = None if answer is None else next(
            (i for i, key in enumerate(keys) if key is not None and same_answer(answer, key)), None
        )
        if index is None:
            keys.append(answer)
            index = len(keys) - 1
        out.append(index)
    return out


def cluster_answers(answers: Sequence[str]) -> dict[str, int]:
    """Answer clusters, each named by its first answer, with their sizes, in order of appearance.

    As the reference's ``get_error_stats``, an answer joins a cluster when it is equal to the
    cluster's first answer or when one contains the other case-insensitively, with two deliberate
    differences:

    (a) an answer joins only the *first* cluster it matches (the reference adds it to every
        containing cluster, so that its sizes can sum to more than the samples);
    (b) NO ANSWER never merges with another answer by containment, and an empty answer (after
        normalisation) matches no other answer.

    Containment is tested on the normalised forms (case, accents, punctuation and articles
    folded), where the reference only lower-cases; it is plain substring containment, as the
    reference's, not at word boundaries ("Rome" joins "Romeo").
    """
    sizes: dict[str, int] = {}
    names: list[str] = []
    for answer, index in zip(answers, assign_clusters(answers), strict=True):
        if index == len(names):
            names.append(answer)
        sizes[names[index]] = sizes.get(names[index], 0) + 1
    return sizes


def sample_answer(label: Mapping) -> str | None:
    """What a sample answered, for clustering: NO ANSWER, its exact answer, or None (neither)."""
    if label.get("no_answer"):
        return NO_ANSWER
    return label.get("exact_answer")


# --------------------------------------------------------------------------------------------
# Stats and types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorStats:
    """A question's resampled answers, as the reference's ``get_error_stats`` counts them."""

    n_samples: int
    """Samples of the question (the ``n`` of the thresholds)."""
    correct_size: int
    """Samples judged correct."""
    largest_wrong_size: int
    """Size of the largest wrong cluster (NO ANSWER included); 0 when there is none."""
    n_wrong_answers: int
    """Number of wrong clusters (NO ANSWER included)."""
    no_answer_size: int
    """Size of the NO ANSWER cluster; 0 when there is none."""
    n_without_exact: int = 0
    """Wrong samples without an exact answer (failed extraction): not clustered."""
    wrong_answers: dict[str, int] = field(default_factory=dict)
    """The wrong clusters: first answer -> size."""


def error_stats(labels: Sequence[Mapping]) -> ErrorStats:
    """The stats of one question from its samples' label dicts (:class:`truthmap.labels.AnswerLabel`)."""
    wrong = [sample_answer(label) for label in labels if not label.get("correct")]
    clusters = cluster_answers([a for a in wrong if a is not None])
    return ErrorStats(
        n_samples=len(labels),
        correct_size=sum(bool(label.get("correct")) for label in labels),
        largest_wrong_size=max(clusters.values(), default=0),
        n_wrong_answers=len(clusters),
        no_answer_size=clusters.get(NO_ANSWER, 0),
        n_without_exact=sum(a is None for a in wrong),
        wrong_answers=clusters,
    )


def fine_types(stats: ErrorStats) -> dict[str, bool]:
    """The reference's eight types of mistakes, thresholds unchanged (they overlap).

    With ``half, third, sixth = n // 2, n // 3, n // 6``, C the correct cluster's size, W the
    largest wrong cluster's, K the number of wrong clusters and A the NO ANSWER cluster's size:

    - no_answer_is_largest: A is the largest wrong cluster (ties count) and A > C;
    - wrong_is_largest_1 / _2: W >= half, not no_answer_is_largest, and C > 0 / C == 0;
    - right_is_largest_1: C >= half and K > 0; right_is_largest_2: C == n;
    - many_different_answers_1: K >= third - 1 and C > 0; _2: K >= third and C == 0;
    - closely_competing_answers: |C - W| <= sixth, C > sixth and W > sixth.

    ``n`` is the question's own number of samples. A question without samples has no type.
    """
    n = stats.n_samples
    if n == 0:
        return dict.fromkeys(FINE_TYPES, False)
    half, third, sixth = n // 2, n // 3, n // 6
    c, w, k = stats.correct_size, stats.largest_wrong_size, stats.n_wrong_answers
    no_answer = stats.no_answer_size == w and stats.no_answer_size > c
    return {
        "no_answer_is_largest": no_answer,
        "wrong_is_largest_1": w >= half and not no_answer and c > 0,
        "wrong_is_largest_2": w >= half and not no_answer and c == 0,
        "right_is_largest_1": c >= half and k > 0,
        "right_is_largest_2": c == n,
        "many_different_answers_1": k >= third - 1 and c > 0,
        "many_different_answers_2": k >= third and c == 0,
        "closely_competing_answers": abs(c - w) <= sixth and c > sixth and w > sixth,
    }


COARSE_RULES: tuple[tuple[str, Callable[[ErrorStats, dict[str, bool]], bool]], ...] = (
    ("unclustered", lambda s, t: s.n_without_exact == s.n_samples),
    ("consistently_correct", lambda s, t: t["right_is_largest_2"]),
    ("no_answer", lambda s, t: t["no_answer_is_largest"]),
    ("consistently_wrong", lambda s, t: t["wrong_is_largest_2"]),
    ("closely_competing", lambda s, t: t["closely_competing_answers"]),
    ("mostly_right", lambda s, t: t["right_is_largest_1"]),
    ("mostly_wrong", lambda s, t: t["wrong_is_largest_1"]),
    ("many_answers", lambda s, t: t["many_different_answers_1"] or t["many_different_answers_2"]),
    ("other", lambda s, t: True),
)
"""The coarse type's decision list: the first rule that holds names the question's one type.

The order, and why:

1. ``unclustered``: no sample has an answer to cluster (no samples, or every extraction
   failed); nothing is known of the answers' spread, and lumping these into ``other`` would
   hide extraction failures.
2. ``consistently_correct`` (right_is_largest_2, every sample correct).
3. ``no_answer`` (no_answer_is_largest): abstaining is the model's most common behaviour; a
   behaviour of its own (the reference's type A), disjoint from 2 (A > C) and 4 (by definition).
4. ``consistently_wrong`` (wrong_is_largest_2): one wrong answer holds at least half the
   samples and none is correct.
5. ``closely_competing`` before ``mostly_right`` / ``mostly_wrong``: a near tie between the
   correct answer and a wrong one (5 against 5 of 10) satisfies both of those, and the tie is
   the more telling description.
6. ``mostly_right`` (right_is_largest_1) before 7. ``mostly_wrong`` (wrong_is_largest_1): once
   the ties are taken by 5, both hold together only for tiny ``n`` (``n < 6``, no sixth).
8. ``many_answers`` (many_different_answers_1 or _2) after the majority types: a question
   whose answers hold a clear majority is described by it before the scatter of the rest.
9. ``other``: whatever is left (always holds, so every question gets exactly one type).
"""

COARSE_TYPES: tuple[str, ...] = tuple(name for name, _ in COARSE_RULES)


def coarse_type(stats: ErrorStats, types: dict[str, bool] | None = None) -> str:
    """The first coarse type of :data:`COARSE_RULES` that holds."""
    types = fine_types(stats) if types is None else types
    return next(name for name, rule in COARSE_RULES if rule(stats, types))


def stats_reason(stats: ErrorStats) -> str:
    """Why a question's types say little: no samples, or no sample with an answer to cluster."""
    if stats.n_samples == 0:
        return "no samples"
    if stats.n_without_exact == stats.n_samples:
        return f"no sample to cluster: all {stats.n_samples} are wrong without an exact answer (extraction failed)"
    return ""


# --------------------------------------------------------------------------------------------
# Label-free clusters: the sample-based detectors
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelFreeStats:
    """A question's samples clustered by their answers alone, without correctness."""

    sample_agreement: float
    """Share of samples in the cluster of the greedy answer's exact answer (0 when the greedy
    answer has none, NO ANSWER included; NaN without samples)."""
    distinct_answers: int
    """Number of clusters (each sample without an answer is a cluster of its own)."""
    semantic_entropy: float
    """Discrete semantic entropy, -sum_c p_c ln p_c with p_c = cluster size / n (NaN without samples)."""
    majority_sample: int
    """Index of the first sample of the largest cluster (ties: the first cluster); -1 without samples."""


def label_free_stats(sample_answers: Sequence[str | None], greedy_answer: str | None) -> LabelFreeStats:
    """Cluster all samples' answers (:func:`sample_answer`; None: a cluster of its own) with the
    rule of :func:`cluster_answers`, and measure how the greedy answer and the samples agree.

    The greedy answer is compared with the clusters' first answers and belongs to the first it
    matches; when it has no exact answer (failed extraction or NO ANSWER) its agreement is 0:
    there is no answer to be consistent about."""
    n = len(sample_answers)
    if n == 0:
        return LabelFreeStats(math.nan, 0, math.nan, -1)
    clusters = assign_clusters(sample_answers)
    sizes = [clusters.count(c) for c in range(max(clusters) + 1)]
    firsts = [clusters.index(c) for c in range(len(sizes))]
    agreement = 0.0
    if greedy_answer is not None and greedy_answer != NO_ANSWER:
        joined = next((c for c, i in enumerate(firsts)
                       if sample_answers[i] is not None and same_answer(greedy_answer, sample_answers[i])), None)
        agreement = 0.0 if joined is None else sizes[joined] / n
    largest = max(range(len(sizes)), key=lambda c: (sizes[c], -c))
    return LabelFreeStats(
        sample_agreement=agreement,
        distinct_answers=len(sizes),
        semantic_entropy=discrete_entropy(sizes),
        majority_sample=firsts[largest],
    )


def discrete_entropy(sizes: Sequence[int]) -> float:
    """-sum p ln p over clusters of the given sizes (natural log; empty clusters add nothing)."""
    total = sum(sizes)
    if not total:
        return math.nan
    return 0.0 - sum(s / total * math.log(s / total) for s in sizes if s)  # 0.0 - ...: never -0.0


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def question_row(qid: str, labels: Sequence[Mapping], greedy: Mapping) -> dict:
    """One row of ``error_types.tsv`` (:data:`ERROR_TYPE_COLUMNS`)."""
    stats = error_stats(labels)
    types = fine_types(stats)
    free = label_free_stats([sample_answer(label) for label in labels], greedy.get("exact_answer"))
    majority = free.majority_sample
    return {
        "id": qid,
        "greedy_correct": int(bool(greedy.get("correct"))),
        "n_samples": stats.n_samples,
        "correct_size": stats.correct_size,
        "largest_wrong_size": stats.largest_wrong_size,
        "n_wrong_answers": stats.n_wrong_answers,
        "no_answer_size": stats.no_answer_size,
        "n_without_exact": stats.n_without_exact,
        **{name: int(value) for name, value in types.items()},
        "coarse_type": coarse_type(stats, types),
        "wrong_answers": json.dumps(stats.wrong_answers, ensure_ascii=False),
        "sample_agreement": free.sample_agreement,
        "distinct_answers": free.distinct_answers,
        "semantic_entropy": free.semantic_entropy,
        "majority_sample": majority,
        "majority_correct": int(bool(labels[majority].get("correct"))) if majority >= 0 else None,
        "reason": stats_reason(stats),
    }


def error_type_rows(sample_records: Sequence[Mapping], greedy_labels: Sequence[Mapping]) -> list[dict]:
    """One row per question of ``sample_records`` (``{"id", "labels": [label dict, ...]}``), in
    their order, with the greedy answer's label found by id in ``greedy_labels``.

    Raises :class:`~truthmap.files.InputError` when a question has no greedy label or appears
    twice among the samples."""
    greedy = {label["id"]: label for label in greedy_labels}
    ids = [record["id"] for record in sample_records]
    missing = [qid for qid in ids if qid not in greedy]
    if missing:
        raise InputError(f"{len(missing)} questions with samples have no greedy label, e.g. {missing[:3]}",
                         hint="the sample labels and the greedy labels must come from the same run")
    repeated = sorted(qid for qid, count in Counter(ids).items() if count > 1)
    if repeated:
        raise InputError(f"{len(repeated)} questions have more than one sample record, e.g. {repeated[:3]}")
    return [question_row(record["id"], record["labels"], greedy[record["id"]]) for record in sample_records]


def type_summary(rows: Sequence[Mapping]) -> list[dict]:
    """How many questions have each fine type and each coarse type, among all questions and among
    those whose greedy answer is wrong (:data:`SUMMARY_COLUMNS`; a share is NaN over no questions)."""
    wrong = [r for r in rows if not int(r["greedy_correct"])]

    def summary(name: str, kind: str, has: Callable[[Mapping], bool]) -> dict:
        count, count_wrong = sum(map(has, rows)), sum(map(has, wrong))
        return {
            "type": name, "kind": kind, "count": count, "share": count / len(rows) if rows else math.nan,
            "count_greedy_wrong": count_wrong,
            "share_greedy_wrong": count_wrong / len(wrong) if wrong else math.nan,
            "n": len(rows), "n_greedy_wrong": len(wrong),
        }

    return [
        *(summary(name, "fine", lambda r, name=name: bool(int(r[name]))) for name in FINE_TYPES),
        *(summary(name, "coarse", lambda r, name=name: r["coarse_type"] == name) for name in COARSE_TYPES),
    ]
