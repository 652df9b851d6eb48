"""The converters: one row of each dataset format as a question record.

A converter takes one row (a mapping), its number and the options, and returns a record
without ``dataset``; a malformed row raises :class:`~truthmap.questions.BadField` naming the
source's own field. :data:`_FORMATS` maps each format name to its converter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from truthmap.loaders.fields import (
    _answers,
    _label_key,
    _mapping,
    _maybe_text,
    _number_or_fail,
    _number_text,
    _row_id,
    _row_number_id,
    _short,
    _text,
    _text_list,
    _value,
)
from truthmap.load_options import LoadOptions
from truthmap.questions import BadField, unique_aliases

MNLI_CHOICES: dict[str, tuple[str, ...]] = {
    "entailment": ("entailment", "entail", "entails", "entailed"),
    "neutral": ("neutral", "neutrality"),
    "contradiction": (
        "contradiction",
        "contradict",
        "contradicts",
        "contradicted",
        "contradictory",
    ),
}
"""MNLI's three labels and the words that name each in an answer."""

IMDB_CHOICES: dict[str, tuple[str, ...]] = {"negative": ("negative",), "positive": ("positive",)}
"""IMDb's two labels (label 0 and 1) and the words that name each in an answer."""


def _qa(
    qid: str,
    question: str,
    aliases: list[str],
    answer_field: str,
    meta: dict,
    context: str | None = None,
) -> dict:
    aliases = unique_aliases(aliases)
    if not aliases:
        raise BadField(answer_field, "no answer")
    record = {"id": qid, "question": question, "aliases": aliases, "meta": meta}
    if context is not None:
        record["context"] = context
    return record


def _choice(
    qid: str,
    question: str,
    choices: Mapping[str, Sequence[str]],
    answer: str,
    meta: dict,
    plain_question: str | None = None,
) -> dict:
    forms = {label: list(words) for label, words in choices.items()}
    record = {
        "id": qid,
        "question": question,
        "aliases": list(forms[answer]),
        "meta": meta,
        "task": "choice",
        "choices": forms,
        "answer": answer,
    }
    if plain_question is not None:
        record["plain_question"] = plain_question
    return record


def _pair(
    qid: str,
    question: str,
    options: tuple[str, str],
    gold: str,
    meta: dict,
    second_field: str,
    plain_question: str | None = None,
) -> dict:
    """A two-way choice whose labels are the option texts themselves."""
    if options[0].casefold() == options[1].casefold():
        raise BadField(second_field, f"the same option as the other one ({options[0]!r})")
    return _choice(qid, question, {o: [o] for o in options}, gold, meta, plain_question)


# --------------------------------------------------------------------------- converters
# Each takes one row (a mapping), its number and the options, and returns a record without
# ``dataset``; a malformed row raises BadField naming the source's own field.


_TRIVIAQA_LAYOUTS = {
    "original": ("Question", "QuestionId", "Answer", ("Value", "Aliases", "NormalizedAliases")),
    "hf": ("question", "question_id", "answer", ("value", "aliases", "normalized_aliases")),
}
"""Field names of TriviaQA's two layouts: question, id, answer object, its alias fields."""


def _triviaqa(row: Mapping[str, Any], n: int, opts: LoadOptions) -> dict:
    q, i, a, keys = _TRIVIAQA_LAYOUTS["original" if "Question" in row else "hf"]
    answer = _mapping(row, a)
    value = _maybe_text(answer, keys[0], f"{a}.{keys[0]}")
    aliases = [
        *([value] if value else []),
        *_text_list(answer, keys[1], f"{a}.{keys[1]}"),
        *_text_list(answer, keys[2], f"{a}.{keys[2]}"),
    ]
    meta = {"answer_value": value} if value else {}
    return _qa(_row_id(row, i, n), _text(row, q), aliases, a, meta)


def _natural_questions(row: Mapping[str, Any], n: int, opts: LoadOptions) -> dict:
    q, a, c = (
        ("Question", "Answer", "Context")
        if "Question" in row
        else ("question", "answer", "context")
    )
    context = _text(row, c) if opts.with_context else None
    return _qa(_row_id(row, "id", n), _text(row, q), _answers(row, a), a, {}, context)


def _hotpotqa(row: Mapping[str, Any], n: int, opts: LoadOptions) -> dict:
    meta = {k: row[k] for k in ("type", "level") if isinstance(row.get(k), str) and row[k]}
    context = _hotpot_context(_value(row, "context")) if opts.with_context else None
    qid = _row_id(row, "_id" if "_id" in row else "id", n)
    return _qa(qid, _text(row, "question"), [_text(row, "answer")], "answer", meta, context)


def _gsm8k(row: Mapping[str, Any], n: int, opts: LoadOptions) -> dict:
    answer = _value(row, "answer")
    meta = {}
    if isinstance(answer, str) and "####" in answer:
        reasoning, _, final = answer.rpartition("####")
        number = _number_text(final)
        if number is None:
            raise BadField("answer", f"no number after '####': {final.strip()!r}")
        numbers = [number]
        if reasoning.strip():
            meta["reasoning"] = reasoning.strip()
    else:
        numbers = [_number_or_fail(item, "answer") for item in _answers(row, "answer")]
    origin = _maybe_text(row, "source")
    if origin:
        meta["origin"] = origin
    return _qa(_row_id(row, "id", n), _text(row, "question"), numbers, "answer", meta)


def _winogrande(row: Mapping[str, Any], n: int, opts: LoadOptions) -> dict:
    if "sentence" not in row:  # the reference's CSV: the question is already written
        gold, wrong = _text(row, "Answer"), _text(row, "Wrong_Answer")
        options = tuple(sorted((gold, wrong), key=str.casefold))
        return _pair(
            _row_id(row, "id", n), _text(row, "Question"), options, gold, {}, "Wrong_Answer"
        )
    sentence = _text(row, "sentence")
    if sentence.count("_") != 1:
        raise BadField("sentence", f"must contain exactly one blank '_', got {sentence!r}")
    option1, option2 = _text(row, "option1"), _text(row, "option2")
    label = _label_key(_value(row, "answer"))
    if label in (None, ""):
        raise BadField("answer", "empty: the row is unlabelled (as in the test split)")
    if label not in ("1", "2"):
        raise BadField("answer", f"must be 1 or 2, got {_value(row, 'answer')!r}")
    gold = option1 if label == "1" else option2
    question = f"{sentence} Which of the two fills the blank (_): {option1} or {option2}?"
    return _pair(_row_id(row, "qID", n), question, (option1, option2), gold, {}, "option2")


def _winobias(row: Mapping[str, Any], n: int, opts: LoadOptions) -> dict:
    sentence = _text(row, "sentence")
    gold, wrong = _text(row, "answer"), _text(row, "incorrect_answer")
    meta = {}
    for key in ("type", "stereotype", "pronoun"):
        value = _value(row, key)
        if isinstance(value, str) and value.strip():
            meta[key] = int(value) if value.strip().isdigit() else value.strip()
        elif isinstance(value, int) and not isinstance(value, bool):
            meta[key] = value
    options = tuple(sorted((gold, wrong), key=str.casefold))
    question = f"{sentence} {_text(row, 'q_instruct')}"
    plain = f"{sentence} {_text(row, 'q')}"
    return _pair(_row_id(row, "id", n), question, options, gold, meta, "incorrect_answer", plain)


def _mnli(row: Mapping[str, Any], n: int, opts: LoadOptions) -> dict:
    meta = {}
    for key, name in (("genre", "genre"), ("Origin", "origin")):
        value = _maybe_text(row, key)
        if value:
            meta[name] = value
    if "sentence1" in row:
        premise, hypothesis = _text(row, "sentence1"), _text(row, "sentence2")
        gold, qid = _mnli_label(row, "gold_label"), _row_id(row, "pairID", n)
    elif "premise" in row:
        premise, hypothesis = _text(row, "premise"), _text(row, "hypothesis")
        gold, qid = (
            _mnli_label(row, "label"),
            _row_id(row, "pairID" if "pairID" in row else "idx", n),
        )
    else:  # the reference's CSV: the question is already written
        return _choice(
            _row_id(row, "id", n),
            _text(row, "Question"),
            MNLI_CHOICES,
            _mnli_label(row, "Answer"),
            meta,
        )
    question = (
        f"Premise: {premise}\nHypothesis: {hypothesis}\n"
        "Does the premise entail the hypothesis, contradict it, or neither? "
        "Answer with entailment, contradiction or neutral."
    )
    plain = f"{_MNLI_SHOTS}Premise: {premise}\nHypothesis: {hypothesis}\nRelation:"
    return _choice(qid, question, MNLI_CHOICES, gold, meta, plain)


_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)

# Base models do not follow instructions: they get a few demonstrations to
# continue instead (their plain_question), one per label.
_MNLI_SHOTS = (
    "Premise: A woman is slicing vegetables in a kitchen.\n"
    "Hypothesis: Someone is preparing food.\nRelation: entailment\n\n"
    "Premise: Two boys are playing football in the park.\n"
    "Hypothesis: The boys are asleep in their beds.\nRelation: contradiction\n\n"
    "Premise: A man is reading a newspaper on a bench.\n"
    "Hypothesis: The man is waiting for his wife.\nRelation: neutral\n\n"
)
_IMDB_SHOTS = (
    "Review: A moving story with wonderful performances; I smiled all the way home.\n"
    "Sentiment: positive\n\n"
    "Review: Dull, far too long, and the ending makes no sense.\nSentiment: negative\n\n"
)


def _imdb(row: Mapping[str, Any], n: int, opts: LoadOptions) -> dict:
    review = _BR.sub("\n", _text(row, "text")).strip()
    label = _imdb_label(row, "label")
    meta = {"rating": row["rating"]} if isinstance(row.get("rating"), int) else {}
    question = f"Is the following movie review positive or negative?\n\nReview: {review}"
    plain = f"{_IMDB_SHOTS}Review: {review}\nSentiment:"
    return _choice(_row_id(row, "id", n), question, IMDB_CHOICES, label, meta, plain)


def _movies(row: Mapping[str, Any], n: int, opts: LoadOptions) -> dict:
    return _qa(_row_id(row, "id", n), _text(row, "Question"), [_text(row, "Answer")], "Answer", {})


def _generic(row: Mapping[str, Any], n: int, opts: LoadOptions) -> dict:
    cols = opts.columns
    aliases = _answers(row, cols["answer"], opts.answer_separator)
    if "aliases" in cols and _value(row, cols["aliases"]) not in (None, ""):
        aliases += _answers(row, cols["aliases"], opts.answer_separator)
    qid = _row_id(row, cols["id"], n) if "id" in cols else _row_number_id(n)
    context = _text(row, cols["context"]) if opts.with_context else None
    return _qa(qid, _text(row, cols["question"]), aliases, cols["answer"], {}, context)


# --------------------------------------------------------------------------- labels and passages


def _mnli_label(row: Mapping[str, Any], key: str) -> str:
    value = _value(row, key)
    label = _label_key(value)
    if label is None or label == "":
        raise BadField(key, "missing")
    if label == "-1":
        raise BadField(key, "-1: the pair has no gold label (as in the test split)")
    if label == "-":
        raise BadField(key, "'-': the annotators did not agree on a gold label")
    if label in ("0", "1", "2"):
        return tuple(MNLI_CHOICES)[int(label)]
    for name, words in MNLI_CHOICES.items():
        if label.casefold() in words:
            return name
    raise BadField(
        key, f"must be 0, 1, 2 or a label word {list(MNLI_CHOICES)}, got {_short(value)}"
    )


def _imdb_label(row: Mapping[str, Any], key: str) -> str:
    value = _value(row, key)
    label = _label_key(value)
    if label is None or label == "":
        raise BadField(key, "missing")
    if label == "-1":
        raise BadField(key, "-1: the review is unlabelled (as in the 'unsupervised' split)")
    names = {"0": "negative", "1": "positive", "neg": "negative", "pos": "positive"}
    name = names.get(label.casefold(), label.casefold())
    if name not in IMDB_CHOICES:
        raise BadField(key, f"must be 0 (negative) or 1 (positive), got {_short(value)}")
    return name


def _hotpot_context(value: Any) -> str:
    """All sentences of all paragraphs, one per line, titles left out."""
    if isinstance(value, Mapping):  # Hugging Face: {"title": [...], "sentences": [[...], ...]}
        paragraphs = value.get("sentences")
    elif isinstance(value, list):  # original: [[title, [sentence, ...]], ...]
        if not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
            raise BadField("context", "must be a list of [title, sentences] pairs")
        paragraphs = [p[1] for p in value]
    else:
        raise BadField("context", f"must be a list or an object, got {_short(value)}")
    if not isinstance(paragraphs, list) or not all(
        isinstance(p, (list, tuple)) and all(isinstance(s, str) for s in p) for p in paragraphs
    ):
        raise BadField("context", "each paragraph must be a list of sentences")
    sentences = [s.strip() for p in paragraphs for s in p if s.strip()]
    if not sentences:
        raise BadField("context", "no sentences")
    return "\n".join(sentences)


# --------------------------------------------------------------------------- formats


@dataclass(frozen=True)
class _Format:
    convert: Callable[[Mapping[str, Any], int, LoadOptions], dict]
    columns: tuple[str, ...] | None
    """Top-level columns the converter reads (the others are not loaded from Parquet, Arrow
    or ``hf:``); None: all."""

    def reads(self, opts: LoadOptions) -> tuple[str, ...] | None:
        if self.convert is _generic:
            return tuple(opts.columns.values())
        return self.columns


_FORMATS: dict[str, _Format] = {
    "triviaqa": _Format(
        _triviaqa, ("Question", "QuestionId", "Answer", "question", "question_id", "answer")
    ),
    "natural_questions": _Format(
        _natural_questions, ("Question", "Answer", "Context", "question", "answer", "context", "id")
    ),
    "hotpotqa": _Format(_hotpotqa, ("_id", "id", "question", "answer", "context", "type", "level")),
    "gsm8k": _Format(_gsm8k, ("id", "question", "answer", "source")),
    "winogrande": _Format(
        _winogrande,
        (
            "qID",
            "sentence",
            "option1",
            "option2",
            "answer",
            "Question",
            "Answer",
            "Wrong_Answer",
            "id",
        ),
    ),
    "winobias": _Format(
        _winobias,
        (
            "id",
            "sentence",
            "answer",
            "incorrect_answer",
            "q",
            "q_instruct",
            "type",
            "stereotype",
            "pronoun",
        ),
    ),
    "mnli": _Format(
        _mnli,
        (
            "premise",
            "hypothesis",
            "label",
            "idx",
            "sentence1",
            "sentence2",
            "gold_label",
            "pairID",
            "genre",
            "Question",
            "Answer",
            "Origin",
            "id",
        ),
    ),
    "imdb": _Format(_imdb, ("id", "text", "label", "rating")),
    "movies": _Format(_movies, ("id", "Question", "Answer")),
    "csv": _Format(_generic, None),
    "jsonl": _Format(_generic, None),
    "json": _Format(_generic, None),
}
