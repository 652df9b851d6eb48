"""Correctness labels and exact answers of a shard's generations.

Two tasks:

- ``qa`` (open answers). Correct when a gold alias matches (see
  :mod:`truthmap.matching`); the exact answer is the matched span. For an
  incorrect answer an instruct model is prompted (few-shot) to copy the short
  answer out of the long one, or to say NO ANSWER; its reply is accepted only
  if it occurs in the generated text and is short. A failed try (an empty
  reply, one not in the text, one too long) is tried again by seeded sampling,
  up to ``tries`` in all, as the reference code does; NO ANSWER is final.
- ``choice`` (Winogrande, Winobias, MNLI, IMDB): the first choice named in the
  answer (any of its surface forms, at word boundaries) is the model's pick and
  its span the exact answer; correct when it is the gold choice. No choice
  named: incorrect, NO ANSWER, no exact answer.

Every outcome is recorded, never raised: an example without an exact answer is
kept, with a reason, and masked out of the exact-answer positions later.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

from truthmap.matching import find_span, match_alias
from truthmap.prompts import NO_ANSWER, parse_extraction

Method = Literal["text", "number", "choice", "extracted", "none"]

#: The extractor's reply for each (question, generated text) pair, and what its prompt lost to fit;
#: the second argument is None for the greedy first try, else one sampling seed per pair.
Extract = Callable[[list[tuple[str, str]], list[int] | None], list[tuple[str | None, str]]]

#: Failures worth another try: the reply was empty, not in the text, or too long. NO ANSWER is the
#: extractor's judgement and is final (the reference stops on it too); a prompt that does not fit
#: would not fit again.
RETRIED = ("reply is empty", "not in the generated text", "not a short answer")


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
    """The extractor said NO ANSWER (or no choice was named)."""
    reason: str
    """Why there is no exact answer; empty when there is one."""
    extractor_prompt_cut: str = ""
    """What the extraction prompt lost to fit the extractor's context (demonstrations, the
    question's start), or why it was skipped; empty when it fitted whole."""
    extraction_tries: int = 0
    """Extraction tries made: 0 without extraction, 1 for the greedy try alone, more with retries."""
    extraction_failures: list[str] = field(default_factory=list)
    """Why each failed try failed, in order (the last is ``reason`` when no try succeeded)."""

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
    if short is None and NO_ANSWER.lower() in reply.lower():
        return replace(label, extractor_reply=reply, no_answer=True, reason="extractor said NO ANSWER")
    if short is None:
        return replace(label, extractor_reply=reply, reason="extractor's reply is empty")
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


def try_seed(seed: int, qid: str, attempt: int) -> int:
    """The sampling seed of one question's try: a stable hash of the run's seed, the id and the try."""
    digest = hashlib.blake2b(f"{seed}\0{qid}\0{attempt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def retried(label: AnswerLabel) -> bool:
    """Whether a failed extraction is worth another try (see :data:`RETRIED`)."""
    return label.exact_method == "none" and any(kind in label.reason for kind in RETRIED)


def extract_with_retries(
    items: Sequence[Item], labels: Sequence[AnswerLabel], extract: Extract, max_words: int | None,
    tries: int = 1, seed: int = 0,
) -> list[AnswerLabel]:
    """Each label with the outcome of its extraction: a greedy try, then up to ``tries - 1`` sampled
    ones while it fails in a way worth retrying.

    The greedy tries go to ``extract`` in one call, then every sampled try of the answers whose
    greedy try failed in one more, an answer's tries side by side (the extractor runs their shared
    prompt once). A try's seed depends only on ``seed``, the question id and the try
    (:func:`try_seed`), and the tries are read in order up to the first that needs no other, so an
    answer gets what trying one at a time gives it."""
    out = list(labels)
    if not items:
        return out
    replies = extract([(it.question, it.text) for it in items], None)
    for i, reply in enumerate(replies):
        out[i] = tried(labels[i], [], items[i], reply, max_words, 1)
    todo = [i for i in range(len(items)) if retried(out[i])]
    later = range(1, tries)
    if not todo or not later:
        return out
    replies = extract([(items[i].question, items[i].text) for i in todo for _ in later],
                      [try_seed(seed, items[i].id, attempt) for i in todo for attempt in later])
    for k, i in enumerate(todo):
        own = replies[k * len(later) : (k + 1) * len(later)]
        for attempt, reply in zip(later, own, strict=True):
            out[i] = tried(labels[i], out[i].extraction_failures, items[i], reply, max_words, attempt + 1)
            if not retried(out[i]):
                break
    return out


def tried(label: AnswerLabel, failed: list[str], item: Item, reply: tuple[str | None, str],
          max_words: int | None, tries: int) -> AnswerLabel:
    """``label`` after its ``tries``-th extraction try gave ``reply`` (the reply, what its prompt
    lost), behind the reasons its earlier tries ``failed``."""
    text, cut = reply
    if text is None:
        done = replace(label, reason=f"extraction prompt does not fit the extractor's context ({cut})")
    else:
        done = apply_extraction(label, item.text, text, max_words)
    failures = failed + ([done.reason] if done.reason else [])
    return replace(done, extractor_prompt_cut=cut, extraction_tries=tries, extraction_failures=failures)


def label_shard(
    items: Sequence[Item], extract: Extract, max_words: int | None = None, tries: int = 1, seed: int = 0,
) -> list[AnswerLabel]:
    """Label every item; open questions answered wrongly go to the extractor.

    ``extract`` gets the (question, generated text) pairs of the incorrect
    open answers of a round in one call (so that it can batch them), with None
    for the greedy first try or one sampling seed per pair for a retry, and
    returns, per pair, the raw reply (None when the prompt could not fit the
    extractor's context) and what its prompt lost to fit (empty when nothing).
    It is not called when there are none.
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
    done = extract_with_retries([items[i] for i in todo], [labels[i] for i in todo], extract, max_words, tries, seed)
    for i, label in zip(todo, done, strict=True):
        labels[i] = label
    return labels
