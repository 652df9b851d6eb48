"""Correctness labels and exact answers of a shard's generations.

Two tasks:

- ``qa`` (open answers). Correct when a gold alias matches (see
  :mod:`truthmap.matching`); the exact answer is the matched span. For an
  incorrect answer an instruct model is prompted (few-shot) to copy the short
  answer out of the long one, or to say NO ANSWER; its reply is accepted only
  if it occurs in the generated text and is short.
- ``choice`` (Winogrande, Winobias, MNLI, IMDB): the first choice named in the
  answer (any of its surface forms, at word boundaries) is the model's pick and
  its span the exact answer; correct when it is the gold choice. No choice
  named: incorrect, NO ANSWER, no exact answer.

Every outcome is recorded, never raised: an example without an exact answer is
kept, with a reason, and masked out of the exact-answer positions later.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Literal

from truthmap.matching import find_span, match_alias
from truthmap.prompts import parse_extraction

Method = Literal["text", "number", "choice", "extracted", "none"]


@dataclass(frozen=True)
class Item:
    """What labelling needs of one question and its generation."""

    id: str
    question: str
    text: str
    """The generated answer."""
    aliases: list[str]
    task: Literal["qa", "choice"] = "qa"
    choices: dict[str, list[str]] | None = None
    answer: str | None = None
    """The gold choice (choice task)."""


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
    """text / number: matched a gold alias; choice: the first choice named;
    extracted: the extractor's reply; none."""
    matched_alias: str | None
    choice: str | None
    """The choice the answer named first (choice task)."""
    extractor_reply: str | None
    """The extractor's raw reply, for incorrect answers."""
    no_answer: bool
    """The extractor said NO ANSWER (or nothing)."""
    reason: str
    """Why there is no exact answer; empty when there is one."""
    extractor_prompt_cut: str = ""
    """What the extraction prompt lost to fit the extractor's context (demonstrations, the
    question's start), or why it was skipped; empty when it fitted whole."""

    def to_dict(self) -> dict:
        return asdict(self)


def label_by_alias(qid: str, text: str, aliases: Sequence[str]) -> AnswerLabel:
    """Correctness by alias match; the matched span is the exact answer."""
    match = match_alias(text, aliases)
    if match is None:
        return AnswerLabel(
            id=qid, correct=False, exact_answer=None, exact_start=None, exact_end=None,
            exact_method="none", matched_alias=None, choice=None, extractor_reply=None,
            no_answer=False, reason="awaiting extraction",
        )
    return AnswerLabel(
        id=qid, correct=True, exact_answer=text[match.start : match.end], exact_start=match.start,
        exact_end=match.end, exact_method=match.kind, matched_alias=match.alias, choice=None,
        extractor_reply=None, no_answer=False, reason="",
    )


def label_by_choice(qid: str, text: str, choices: dict[str, list[str]], answer: str) -> AnswerLabel:
    """The first choice named decides; its span is the exact answer."""
    named = [
        (match.start, match.start - match.end, label, match)
        for label, forms in choices.items()
        if (match := match_alias(text, forms)) is not None
    ]
    first = min(named, key=lambda n: n[:2])[2:] if named else None  # earliest, then longest
    if first is None:
        return AnswerLabel(
            id=qid, correct=False, exact_answer=None, exact_start=None, exact_end=None,
            exact_method="none", matched_alias=None, choice=None, extractor_reply=None,
            no_answer=True, reason="no choice named (NO ANSWER)",
        )
    label, match = first
    return AnswerLabel(
        id=qid, correct=label == answer, exact_answer=text[match.start : match.end],
        exact_start=match.start, exact_end=match.end, exact_method="choice",
        matched_alias=match.alias, choice=label, extractor_reply=None, no_answer=False, reason="",
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


def shard_items(questions: Sequence[dict], generations: Sequence[dict]) -> list[Item]:
    """One :class:`Item` per generation, joined with its question by id."""
    by_id = {q["id"]: q for q in questions}
    missing = [g["id"] for g in generations if g["id"] not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} generations have no question in the shard, e.g. {missing[:3]}")
    return [
        Item(
            id=g["id"], question=by_id[g["id"]]["question"], text=g["text"],
            aliases=list(by_id[g["id"]]["aliases"]), task=by_id[g["id"]].get("task", "qa"),
            choices=by_id[g["id"]].get("choices"), answer=by_id[g["id"]].get("answer"),
        )
        for g in generations
    ]


def label_shard(
    items: Sequence[Item],
    extract: Callable[[list[tuple[str, str]]], list[tuple[str | None, str]]],
    max_words: int | None = None,
) -> list[AnswerLabel]:
    """Label every item; open questions answered wrongly go to the extractor.

    ``extract`` gets the (question, generated text) pairs of the incorrect
    open answers in one call (so that it can batch them) and returns, per
    pair, the raw reply (None when the prompt could not fit the extractor's
    context) and what its prompt lost to fit (empty when nothing). It is not
    called when there are none.
    """
    labels = [
        label_by_choice(it.id, it.text, it.choices or {}, it.answer or "") if it.task == "choice"
        else label_by_alias(it.id, it.text, it.aliases)
        for it in items
    ]
    todo = [i for i, (it, label) in enumerate(zip(items, labels)) if it.task == "qa" and not label.correct]
    for i in [i for i in todo if not items[i].text.strip()]:
        labels[i] = replace(labels[i], reason="empty generation")
    todo = [i for i in todo if items[i].text.strip()]
    replies = extract([(items[i].question, items[i].text) for i in todo]) if todo else []
    for i, (reply, cut) in zip(todo, replies, strict=True):
        if reply is None:
            labels[i] = replace(labels[i], reason=f"extraction prompt does not fit the extractor's context ({cut})",
                                extractor_prompt_cut=cut)
        else:
            labels[i] = replace(apply_extraction(labels[i], items[i].text, reply, max_words), extractor_prompt_cut=cut)
    return labels
