"""The question record schema: what one question is, and checking it.

A question is one JSON object per JSONL line::

    {"id": "capitals-FR", "question": "What is the capital of France?",
     "aliases": ["Paris"], "dataset": "builtin", "meta": {"domain": "capitals", ...}}

``id`` is stable and unique, ``question`` non-empty, ``aliases`` a non-empty list of every
accepted answer spelling, ``dataset`` the dataset name and ``meta`` a dict (at least ``domain``
for the builtin set). Optional: ``task`` (``"qa"``, the default, or ``"choice"``: then
``choices`` maps each label to its surface forms, ``answer`` is the gold label and ``aliases``
are ``choices[answer]``), ``context`` (a passage shown with the question) and
``plain_question`` (the wording for plain-style prompts). Extra keys are allowed; see
:func:`check_record`. :mod:`truthmap.loaders` turns other datasets' files into this schema.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from truthmap.files import InputError, read_jsonl

_STRING_FIELDS = ("id", "question", "dataset")

TASKS: tuple[str, ...] = ("qa", "choice")
"""Values of a record's optional ``task`` field; absent means ``qa``."""


class BadField(InputError):
    """One record's field is missing or invalid.

    ``field`` names it (``""`` when the record as a whole is at fault) and ``reason`` says
    what is wrong; :meth:`at` gives the same error prefixed with where it happened.
    """

    def __init__(self, field: str, reason: str, where: str = "") -> None:
        self.field = field
        self.reason = reason
        self.where = where
        what = f"field {field!r}: {reason}" if field else reason
        super().__init__(f"{where}: {what}" if where else what)

    def at(self, where: str) -> BadField:
        """The same error, its message starting with ``where`` (a source and row)."""
        return BadField(self.field, self.reason, where)


def validate_questions(records: list[dict], source: str) -> list[dict]:
    """Check records against the question schema; return them completed (see :func:`check_record`).

    Errors are :class:`~truthmap.files.InputError` naming ``source``, the 1-based row (the
    position among the records) and the field. Unknown extra keys are allowed.
    """
    if not records:
        raise InputError(f"{source}: no questions")
    first_row: dict[str, int] = {}
    out = []
    for row, record in enumerate(records, start=1):
        try:
            record = check_record(record)
        except BadField as err:
            raise err.at(f"{source}, row {row}") from None
        qid = record["id"]
        if qid in first_row:
            raise InputError(f"{source}, rows {first_row[qid]} and {row}: duplicate id {qid!r}")
        first_row[qid] = row
        out.append(record)
    return out


def check_record(record: Any) -> dict:
    """Check one question record; return it, completed, or raise :class:`BadField`.

    Required: ``id``, ``question``, ``dataset`` (non-empty strings) and ``aliases`` (a
    non-empty list of non-empty strings). Optional: ``meta`` (an object, default ``{}``;
    ``meta.domain`` a string), ``task`` (one of :data:`TASKS`), ``context`` and
    ``plain_question`` (non-empty strings). A ``choice`` record also needs ``choices``
    (label -> surface forms, at least two labels, no surface form under two labels) and
    ``answer`` (the gold label); its ``aliases`` must equal ``choices[answer]`` and are filled
    from there when absent. The input is returned as it is when nothing needs filling in,
    otherwise as a new dict; it is never modified.
    """
    if not isinstance(record, dict):
        raise BadField("", f"expected a JSON object, got {type(record).__name__}")
    record = _completed(record)
    for field in _STRING_FIELDS:
        _check_text(record, field)
    task = record.get("task", "qa")
    if task not in TASKS:
        raise BadField("task", f"must be one of {list(TASKS)}, got {_short(task)}")
    if task == "choice":
        _check_choices(record)
    elif "choices" in record:
        raise BadField("choices", "only allowed when 'task' is 'choice'")
    if "aliases" not in record:
        raise BadField("aliases", "missing")
    aliases = record["aliases"]
    if not _is_text_list(aliases):
        raise BadField(
            "aliases", f"must be a non-empty list of non-empty strings, got {_short(aliases)}"
        )
    if task == "choice" and aliases != record["choices"][record["answer"]]:
        gold = record["choices"][record["answer"]]
        raise BadField(
            "aliases", f"must equal choices[{record['answer']!r}] {gold!r}, got {_short(aliases)}"
        )
    meta = record["meta"]
    if not isinstance(meta, dict):
        raise BadField("meta", f"must be an object, got {_short(meta)}")
    if not isinstance(meta.get("domain", ""), str):
        raise BadField("meta.domain", f"must be a string, got {_short(meta['domain'])}")
    for field in ("context", "plain_question"):
        if field in record:
            _check_text(record, field)
    return record


def _completed(record: dict) -> dict:
    """``record`` with ``meta`` defaulted and a choice record's ``aliases`` filled in."""
    extra: dict[str, Any] = {}
    if "meta" not in record:
        extra["meta"] = {}
    if record.get("task") == "choice" and "aliases" not in record:
        choices, answer = record.get("choices"), record.get("answer")
        if isinstance(choices, dict) and isinstance(answer, str) and answer in choices:
            extra["aliases"] = choices[answer]
    return {**record, **extra} if extra else record


def _check_text(record: dict, field: str) -> None:
    if field not in record:
        raise BadField(field, "missing")
    value = record[field]
    if not isinstance(value, str) or not value.strip():
        raise BadField(field, f"must be a non-empty string, got {_short(value)}")


def _check_choices(record: dict) -> None:
    """A choice record's ``choices`` and ``answer`` (see :func:`check_record`)."""
    choices = record.get("choices")
    if not isinstance(choices, dict) or len(choices) < 2:
        raise BadField(
            "choices", f"must be an object with at least 2 labels, got {_short(choices)}"
        )
    owner: dict[str, str] = {}
    for label, forms in choices.items():
        if not isinstance(label, str) or not label.strip():
            raise BadField("choices", f"labels must be non-empty strings, got {label!r}")
        if not _is_text_list(forms):
            raise BadField(
                "choices",
                f"{label!r} must be a non-empty list of non-empty strings, got {_short(forms)}",
            )
        for form in forms:
            key = form.strip().casefold()
            if owner.setdefault(key, label) != label:
                raise BadField(
                    "choices", f"{form!r} is a surface form of both {owner[key]!r} and {label!r}"
                )
    answer = record.get("answer")
    if not isinstance(answer, str) or answer not in choices:
        raise BadField("answer", f"must be one of the labels {list(choices)}, got {_short(answer)}")


def _is_text_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, str) and item.strip() for item in value)
    )


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: a whole review must not flood a message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_questions(path: str | os.PathLike) -> list[dict]:
    """Read and validate a questions JSONL file; errors name the file, row and field."""
    return validate_questions(read_jsonl(path), source=str(path))


def unique_aliases(aliases: Iterable[str]) -> list[str]:
    """Strip aliases, drop empty ones and duplicates (ignoring case); keep the first spelling."""
    seen: set[str] = set()
    out = []
    for alias in aliases:
        alias = alias.strip()
        if alias and alias.casefold() not in seen:
            seen.add(alias.casefold())
            out.append(alias)
    return out

