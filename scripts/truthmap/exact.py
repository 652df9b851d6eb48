"""Correctness labels and exact answers of a shard's generations.

Correct answers: the exact answer is the span of the matched alias in the
generated text. Incorrect answers: an instruct model is prompted (few-shot) to
copy the short answer out of the long one, or to say NO ANSWER; its reply is
accepted only if it occurs in the generated text. Every outcome is recorded,
never raised: an example without an exact answer is kept, with a reason, and
masked out of the exact-answer positions later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Literal

from truthmap.labels import find_span, match_alias
from truthmap.prompts import parse_extraction

Method = Literal["alias", "number", "extracted", "none"]


@dataclass(frozen=True)
class AnswerLabel:
    """Correctness and exact answer of one generation."""

    id: str
    correct: bool
    exact_answer: str | None
    """The exact answer as it appears in the generated text."""
    exact_start: int | None
    """Character span of the exact answer in the generated text, end exclusive."""
    exact_end: int | None
    exact_method: Method
    """alias / number: matched a gold alias; extracted: the extractor's reply; none."""
    matched_alias: str | None
    extractor_reply: str | None
    """The extractor's raw reply, for incorrect answers."""
    no_answer: bool
    """The extractor said NO ANSWER (or nothing)."""
    reason: str
    """Why there is no exact answer; empty when there is one."""

    def to_dict(self) -> dict:
        return asdict(self)


def label_by_alias(qid: str, text: str, aliases: Sequence[str]) -> AnswerLabel:
    """Correctness by alias match; the matched span is the exact answer."""
    match = match_alias(text, aliases)
    if match is None:
        return AnswerLabel(
            id=qid, correct=False, exact_answer=None, exact_start=None, exact_end=None,
            exact_method="none", matched_alias=None, extractor_reply=None, no_answer=False,
            reason="awaiting extraction",
        )
    return AnswerLabel(
        id=qid, correct=True, exact_answer=text[match.start : match.end], exact_start=match.start,
        exact_end=match.end, exact_method=match.kind, matched_alias=match.alias,
        extractor_reply=None, no_answer=False, reason="",
    )


def apply_extraction(label: AnswerLabel, text: str, reply: str, max_words: int | None) -> AnswerLabel:
    """Accept the extractor's reply only if it occurs in the generated text and is short."""
    short = parse_extraction(reply)
    if short is None:
        return replace(label, extractor_reply=reply, no_answer=True, reason="extractor said NO ANSWER")
    span = find_span(text, short)
    if span is None:
        return replace(
            label, extractor_reply=reply, reason=f"extracted answer {short!r} is not in the generated text"
        )
    start, end = span
    words = len(text[start:end].split())
    if max_words is not None and words > max_words:
        return replace(
            label, extractor_reply=reply,
            reason=f"extracted answer has {words} words (max_words={max_words}): not a short answer",
        )
    return replace(
        label, exact_answer=text[start:end], exact_start=start, exact_end=end,
        exact_method="extracted", extractor_reply=reply, reason="",
    )


def shard_items(questions: Sequence[dict], generations: Sequence[dict]) -> list[tuple[str, str, str, list[str]]]:
    """(id, question, generated text, aliases) per generation, joined by id."""
    aliases = {q["id"]: q["aliases"] for q in questions}
    missing = [g["id"] for g in generations if g["id"] not in aliases]
    if missing:
        raise ValueError(f"{len(missing)} generations have no question in the shard, e.g. {missing[:3]}")
    return [(g["id"], g["question"], g["text"], aliases[g["id"]]) for g in generations]


def label_shard(
    items: Sequence[tuple[str, str, str, Sequence[str]]],
    extract: Callable[[list[tuple[str, str]]], list[str]],
    max_words: int | None = None,
) -> list[AnswerLabel]:
    """Label ``(id, question, generated text, aliases)`` items.

    ``extract`` gets the (question, generated text) pairs of the incorrect
    answers in one call (so that it can batch them) and returns the raw replies.
    """
    labels = [label_by_alias(qid, text, aliases) for qid, _, text, aliases in items]
    todo = [i for i, label in enumerate(labels) if not label.correct]
    empty = [i for i in todo if not items[i][2].strip()]
    for i in empty:
        labels[i] = replace(labels[i], reason="empty generation")
    todo = [i for i in todo if items[i][2].strip()]
    replies = extract([(items[i][1], items[i][2]) for i in todo]) if todo else []
    for i, reply in zip(todo, replies, strict=True):
        labels[i] = apply_extraction(labels[i], items[i][2], reply, max_words)
    return labels
