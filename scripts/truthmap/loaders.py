"""Dataset loaders: the files people have, turned into question records.

:func:`load_source` reads a source and converts every row with the converter of one format
into a record of truthmap's question schema (see :mod:`truthmap.questions`), checked by
:func:`truthmap.questions.check_record`. A source is ``builtin``, a local file or folder, or
``hf:<dataset id>[:<config>]:<split>`` (read from the local Hugging Face cache with the
optional ``datasets`` package). Files are read by their extension: ``.json`` (a list, or an
object whose ``Data`` or ``data`` key holds the list), ``.jsonl``, ``.csv``, ``.tsv`` (tab
separated, no quoting, as GLUE and MultiNLI write it), ``.parquet`` and ``.arrow`` (Arrow IPC,
stream or file format; Hugging Face cache files are streams). A folder is read only by the
``imdb`` format (the aclImdb layout).

Formats (the layouts each accepts; a multi-layout format decides per row from its keys):

- ``builtin``: the builtin set (:func:`truthmap.builtin.build_builtin`).
- ``truthmap``: records already in our schema; the default for a ``.jsonl`` file.
- ``triviaqa``: the original JSON (``Question``, ``QuestionId``, ``Answer.Value/Aliases/
  NormalizedAliases``) and the Hugging Face layout (``question``, ``question_id``,
  ``answer.value/aliases/normalized_aliases``).
- ``natural_questions``: NQ-open (``question``, ``answer`` list) and a CSV with ``Question``,
  ``Answer`` and optionally ``Context``.
- ``hotpotqa``: the original JSON (``_id``, ``context`` as [title, sentences] pairs) and the
  Hugging Face layout (``id``, ``context.sentences``); closed-book unless ``with_context``.
- ``gsm8k``: ``question`` and an ``answer`` ending in ``#### <number>``, or an ``answer`` that
  is a number or a list of numbers such as ``[21.0]`` (AnswerableMath).
- ``winogrande``: the original layout (``sentence`` with one ``_``, ``option1``, ``option2``,
  ``answer`` 1 or 2) and a CSV with ``Question``, ``Answer``, ``Wrong_Answer``. A choice task.
- ``winobias``: a CSV with ``sentence``, ``answer``, ``incorrect_answer``, ``q``,
  ``q_instruct`` (and ``type``, ``stereotype``, ``pronoun`` kept in ``meta``). A choice task.
- ``mnli``: GLUE (``premise``, ``hypothesis``, ``label`` 0/1/2), MultiNLI (``sentence1``,
  ``sentence2``, ``gold_label``, ``pairID``) and a CSV with ``Question`` and an ``Answer``
  label word. A choice task over :data:`MNLI_CHOICES`.
- ``imdb``: ``text`` and ``label`` (0 negative, 1 positive) or an aclImdb folder
  (``<folder>/<split>/pos/*.txt`` and ``neg``, or ``<folder>/pos`` and ``neg``). A choice task.
- ``movies``: a CSV with ``Question`` and ``Answer``.
- ``csv``, ``jsonl``, ``json``: any table, its columns named by the ``columns`` option. The
  three names are one converter; the file is still read by its extension.

Ids are the source's own id when it has one, else ``row-000001`` (the row number); characters
outside ``[A-Za-z0-9._+-]`` become ``_`` (the original is kept in ``meta.source_id``), and two
rows with the same id are an error. Records of the ``truthmap`` format keep their ids as they are.

What "row" means in messages and in :class:`Skipped`, counted from 1:

- ``.jsonl``: the line number (blank lines are skipped but counted), which is also where a
  line that is not JSON or not UTF-8 is reported;
- ``.json``: the position in the list (a file that is not JSON or not UTF-8 is reported by
  *line*);
- ``.csv``, ``.tsv``: the data row, header excluded (a quoted field may span several lines;
  a file that is not valid CSV or not UTF-8 is reported by *line*);
- ``.parquet``, ``.arrow`` and ``hf:``: the position in the table;
- an aclImdb folder: the position in the sorted list of files (``neg/...`` before ``pos/...``).

A malformed row (a missing, empty or mistyped field, an answer that cannot be parsed, a label
outside the known set, two identical options, a duplicate id) stops the load with an
:class:`~truthmap.files.InputError` naming the source, the row and the field; with
``skip_malformed`` it is skipped and listed in :attr:`Loaded.skipped` instead. A file that
cannot be read at all (not UTF-8, not JSON) always stops the load, as does a source that
yields no questions.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from truthmap.builtin import build_builtin
from truthmap.files import InputError
from truthmap.questions import BadField, check_record, unique_aliases

# --------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class Skipped:
    """A malformed row left out of a dataset (``skip_malformed``)."""

    row: int
    """The row's number, counted from 1 (what a row is depends on the file type)."""
    field: str
    """The field at fault, as the source names it; empty when the row as a whole is."""
    reason: str
    """What is wrong with it."""


@dataclass(frozen=True)
class Loaded:
    """What :func:`load_source` read."""

    records: list[dict]
    """Validated question records, in the source's order."""
    skipped: list[Skipped]
    """Malformed rows that were skipped (only with ``skip_malformed``)."""


@dataclass(frozen=True)
class LoadOptions:
    """How to read a source; built from the config by :func:`parse_options`."""

    format: str
    """One of :data:`FORMATS`."""
    with_context: bool = False
    """Show the passage with the question (``natural_questions``, ``hotpotqa``, generic)."""
    columns: Mapping[str, str] = field(default_factory=dict)
    """Generic formats: our field (``question``, ``answer``, ``id``, ``context``,
    ``aliases``) -> the source's column."""
    answer_separator: str | None = None
    """Generic formats: split answer (and aliases) text on this string."""
    split: str | None = None
    """Folder layouts (aclImdb): the split folder to read; ``test`` when it exists."""
    skip_malformed: bool = False
    """Skip malformed rows (listed in :attr:`Loaded.skipped`) instead of stopping."""


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


def load_source(name: str, source: str, options: Mapping[str, Any]) -> Loaded:
    """Read dataset ``name`` from ``source`` as described by ``options``.

    ``options`` keys (all optional): ``format``, ``with_context``, ``columns``,
    ``answer_separator``, ``split``, ``skip_malformed`` (see :class:`LoadOptions`). Every
    record's ``dataset`` is ``name``. Errors are :class:`~truthmap.files.InputError` naming the
    source, and the row and field where there is one.
    """
    opts = parse_options(name, source, options)
    if opts.format == "builtin":
        return Loaded(build_builtin(name), [])
    spec = _FORMATS.get(opts.format)  # None for truthmap: our own schema, every column
    rows = read_rows(source, opts, spec.reads(opts) if spec else None)
    if opts.format in _GENERIC:
        _check_mapped_columns(rows, opts, source)
    return _convert_rows(name, source, rows, opts)


def convert_row(name: str, row: Any, n: int, options: LoadOptions) -> dict:
    """Row ``n`` of a source as a checked question record of dataset ``name``.

    Raises :class:`~truthmap.questions.BadField` naming the field when the row is malformed.
    Ids are made file-name safe here; uniqueness is the caller's business.
    """
    if not isinstance(row, Mapping):
        raise BadField("", f"expected a JSON object, got {type(row).__name__}")
    if options.format == "truthmap":
        return check_record({**row, "dataset": name})
    if options.format not in _FORMATS:
        raise ValueError(f"format {options.format!r} has no rows to convert")
    record = _FORMATS[options.format].convert(row, n, options)
    return check_record(_with_dataset(_safe_id(record), name))


def parse_options(name: str, source: str, options: Mapping[str, Any] | None) -> LoadOptions:
    """Check a dataset's loader options; errors name the dataset and the option's key."""
    where = f"dataset {name!r}"
    options = {} if options is None else options
    if not isinstance(options, Mapping):
        raise InputError(f"{where}: options must be a mapping, got {type(options).__name__}")
    unknown = [str(key) for key in options if key not in _OPTION_KEYS]
    if unknown:
        raise InputError(
            f"{where}: unknown option {unknown[0]!r} (known: {', '.join(_OPTION_KEYS)})"
        )
    fmt = options.get("format") or _default_format(source)
    if fmt is None:
        raise InputError(
            f"{where}: option 'format' is required for source {source!r} "
            f"(one of: {', '.join(FORMATS)})"
        )
    if fmt not in FORMATS:
        raise InputError(
            f"{where}: option 'format': unknown format {fmt!r} (one of: {', '.join(FORMATS)})"
        )
    if (fmt == "builtin") != (source == "builtin"):
        raise InputError(
            f"{where}: option 'format': 'builtin' goes with source 'builtin' and only with it "
            f"(format {fmt!r}, source {source!r})"
        )
    opts = LoadOptions(
        format=fmt,
        with_context=_flag(options, "with_context", where),
        columns=_columns(options.get("columns"), fmt, where),
        answer_separator=_optional_text(options, "answer_separator", where),
        split=_optional_text(options, "split", where),
        skip_malformed=_flag(options, "skip_malformed", where),
    )
    for key, formats in _ONLY_FOR.items():
        if getattr(opts, key) != getattr(LoadOptions(fmt), key) and fmt not in formats:
            raise InputError(
                f"{where}: option {key!r} does not apply to format {fmt!r} "
                f"(only to {', '.join(formats)})"
            )
    if opts.with_context and fmt in _GENERIC and "context" not in opts.columns:
        raise InputError(f"{where}: option 'with_context' needs 'columns.context'")
    if opts.split is not None and not Path(source).expanduser().is_dir():
        raise InputError(f"{where}: option 'split' applies only to a folder source (aclImdb)")
    return opts


def parse_hf_source(source: str) -> tuple[str, str | None, str]:
    """``hf:<dataset id>[:<config>]:<split>`` -> (dataset id, config or None, split)."""
    parts = source.removeprefix("hf:").split(":")
    if (
        not source.startswith("hf:")
        or len(parts) not in (2, 3)
        or not all(p.strip() for p in parts)
    ):
        raise InputError(f"{source}: expected 'hf:<dataset id>[:<config>]:<split>'")
    return parts[0], parts[1] if len(parts) == 3 else None, parts[-1]


# --------------------------------------------------------------------------- converting rows


def _convert_rows(
    name: str, source: str, rows: Sequence[tuple[int, Any]], opts: LoadOptions
) -> Loaded:
    records: list[dict] = []
    skipped: list[Skipped] = []
    first: dict[str, tuple[int, dict]] = {}
    for n, row in rows:
        try:
            record = convert_row(name, row, n, opts)
            qid = record["id"]
            if qid in first:
                other_row, other = first[qid]
                raise BadField(
                    "id",
                    f"duplicate id {qid!r}{_id_origin(record)}: row {other_row}{_id_origin(other)} "
                    "has it too",
                )
        except BadField as err:
            if not opts.skip_malformed:
                raise err.at(f"{source}, row {n}") from None
            skipped.append(Skipped(n, err.field, err.reason))
            continue
        first[qid] = (n, record)
        records.append(record)
    if not records:
        why = ""
        if skipped:
            one = skipped[0]
            why = (
                f" ({len(skipped)} malformed rows skipped; the first: row {one.row}, "
                f"field {one.field!r}: {one.reason})"
            )
        raise InputError(f"{source}: no questions{why}")
    return Loaded(records, skipped)


def _id_origin(record: dict) -> str:
    """' (from 'x/1')' when the record's id was made file-name safe, else ''."""
    source_id = record["meta"].get("source_id") if isinstance(record["meta"], dict) else None
    return f" (from {source_id!r})" if source_id else ""


_UNSAFE_ID = re.compile(r"[^A-Za-z0-9._+-]")


def _safe_id(record: dict) -> dict:
    """The record with a file-name safe id; a changed id's original goes to ``meta.source_id``."""
    safe = _UNSAFE_ID.sub("_", record["id"])
    if safe == record["id"]:
        return record
    return {**record, "id": safe, "meta": {**record["meta"], "source_id": record["id"]}}


def _with_dataset(record: dict, name: str) -> dict:
    """The record with ``dataset`` set, keys in the schema's order."""
    head = ("id", "question", "aliases")
    return {
        **{k: record[k] for k in head},
        "dataset": name,
        **{k: v for k, v in record.items() if k not in head},
    }


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


# --------------------------------------------------------------------------- field helpers


def _value(row: Mapping[str, Any], key: str) -> Any:
    """``row[key]``, with a missing key and a float NaN (pandas' missing value) as None."""
    value = row.get(key)
    return None if isinstance(value, float) and math.isnan(value) else value


def _text(row: Mapping[str, Any], key: str, name: str | None = None) -> str:
    """A required text field, stripped."""
    value = _value(row, key)
    if value is None:
        raise BadField(name or key, "missing")
    if not isinstance(value, str):
        raise BadField(name or key, f"must be text, got {_short(value)}")
    if not value.strip():
        raise BadField(name or key, "empty")
    return value.strip()


def _maybe_text(row: Mapping[str, Any], key: str, name: str | None = None) -> str | None:
    """An optional text field, stripped; None when missing or empty."""
    value = _value(row, key)
    if value is None or value == "":
        return None
    return _text(row, key, name)


def _mapping(row: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = _value(row, key)
    if value is None:
        raise BadField(key, "missing")
    if not isinstance(value, Mapping):
        raise BadField(key, f"must be an object, got {_short(value)}")
    return value


def _text_list(row: Mapping[str, Any], key: str, name: str) -> list[str]:
    """An optional list of strings; [] when missing."""
    value = _value(row, key)
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise BadField(name, f"must be a list of strings, got {_short(value)}")
    return list(value)


def _row_id(row: Mapping[str, Any], key: str, n: int) -> str:
    """The source's id (text or an integer), or ``row-<n>`` when the row has none."""
    value = _value(row, key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return _row_number_id(n)
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise BadField(key, f"must be text or an integer, got {_short(value)}")


def _row_number_id(n: int) -> str:
    return f"row-{n:06d}"


def _answers(row: Mapping[str, Any], key: str, separator: str | None = None) -> list[str]:
    """Accepted answers: a list, a list written as JSON or Python (``["a", "b"]``), text
    split on ``separator``, or a single text or number."""
    value = _value(row, key)
    if value is None:
        raise BadField(key, "missing")
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("[") and text.endswith("]"):
            items = _parse_list(text, key)
        elif separator:
            items = text.split(separator)
        else:
            items = [text]
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    answers = []
    for item in items:
        if isinstance(item, str):
            answers.append(item)
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            answers.append(_number_or_fail(item, key))
        else:
            raise BadField(key, f"answers must be text or numbers, got {_short(item)}")
    answers = unique_aliases(answers)
    if not answers:
        raise BadField(key, f"no answer in {_short(value)}")
    return answers


def _parse_list(text: str, key: str) -> list:
    try:
        items = json.loads(text)
    except ValueError:
        try:
            items = ast.literal_eval(text)  # a Python list as pandas writes one: ['a', 'b']
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise BadField(key, f"looks like a list but cannot be parsed: {_short(text)}") from None
    if not isinstance(items, list):
        raise BadField(key, f"looks like a list but is not one: {_short(text)}")
    return items


_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")


def _number_text(value: Any) -> str | None:
    """A number as an answer: '1,234' -> '1234', 72.0 -> '72', '6.50' -> '6.5'; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        value = repr(value)
    if not isinstance(value, str):
        return None
    text = value.strip().replace(",", "")
    if not _NUMBER.fullmatch(text):
        return None
    number = Decimal(text)
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")


def _number_or_fail(value: Any, key: str) -> str:
    number = _number_text(value)
    if number is None:
        raise BadField(key, f"not a number: {_short(value)}")
    return number


def _label_key(value: Any) -> str | None:
    """A class label as text: 1, 1.0 and ' 1 ' -> '1'; None stays None."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


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


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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

FORMATS: tuple[str, ...] = ("builtin", "truthmap", *_FORMATS)
"""Every format name :func:`load_source` knows."""

_GENERIC = ("csv", "jsonl", "json")
_OPTION_KEYS = ("format", "with_context", "columns", "answer_separator", "split", "skip_malformed")
_COLUMN_FIELDS = ("question", "answer", "id", "context", "aliases")
_ONLY_FOR: dict[str, tuple[str, ...]] = {
    "with_context": ("natural_questions", "hotpotqa", *_GENERIC),
    "columns": _GENERIC,
    "answer_separator": _GENERIC,
    "split": ("imdb",),
}
"""Options that only some formats use; setting one for another format is an error."""


def _default_format(source: str) -> str | None:
    if source == "builtin":
        return "builtin"
    if not source.startswith("hf:") and Path(source).suffix.lower() == ".jsonl":
        return "truthmap"
    return None


def _flag(options: Mapping[str, Any], key: str, where: str) -> bool:
    value = options.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InputError(f"{where}: option {key!r} must be true or false, got {value!r}")
    return value


def _optional_text(options: Mapping[str, Any], key: str, where: str) -> str | None:
    value = options.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise InputError(f"{where}: option {key!r} must be a non-empty string, got {value!r}")
    return value


def _columns(value: Any, fmt: str, where: str) -> dict[str, str]:
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise InputError(f"{where}: option 'columns' must be a mapping, got {value!r}")
    for key, column in value.items():
        if key not in _COLUMN_FIELDS:
            raise InputError(
                f"{where}: option 'columns.{key}': unknown field "
                f"(known: {', '.join(_COLUMN_FIELDS)})"
            )
        if not isinstance(column, str) or not column:
            raise InputError(f"{where}: option 'columns.{key}' must name a column, got {column!r}")
    if fmt in _GENERIC:
        for key in ("question", "answer"):
            if key not in value:
                raise InputError(
                    f"{where}: option 'columns.{key}' is required for format {fmt!r} "
                    f"(the source's {key} column)"
                )
    return dict(value)


def _check_mapped_columns(rows: Sequence[tuple[int, Any]], opts: LoadOptions, source: str) -> None:
    """Each column named in ``columns`` must occur in the source (in some row at least)."""
    present: set[str] = set()
    for _, row in rows:
        if isinstance(row, Mapping):
            present.update(k for k in row if isinstance(k, str))
    if not present:
        return  # no rows, or none an object: reported row by row
    for key, column in opts.columns.items():
        if column not in present:
            raise InputError(
                f"{source}: option 'columns.{key}' names column {column!r}, which the source "
                f"does not have (it has: {', '.join(sorted(present))})"
            )


# --------------------------------------------------------------------------- readers


def read_rows(
    source: str, opts: LoadOptions, columns: Sequence[str] | None = None
) -> list[tuple[int, Any]]:
    """The rows of a source as (row number, row) pairs, in order.

    ``columns`` limits what is read from Parquet, Arrow and ``hf:`` sources (to the names the
    source has; all of them when it has none).
    """
    if source.startswith("hf:"):
        return _hf_rows(source, columns)
    path = Path(source).expanduser()
    if path.is_dir():
        if opts.format != "imdb":
            raise InputError(
                f"{source}: a folder; only format 'imdb' reads one (the aclImdb layout)"
            )
        return _aclimdb_rows(path, source, opts.split)
    if not path.is_file():
        raise InputError(f"{source}: file not found")
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise InputError(
            f"{source}: cannot read a {suffix or 'extension-less'!s} file "
            f"(readable: {', '.join(_READERS)}, an aclImdb folder, or an 'hf:' source)"
        )
    return _READERS[suffix](path, columns)


def _decode(data: bytes, where: str, unit: str | None = "line") -> str:
    """UTF-8 text without a byte-order mark; an error names ``where`` and the line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        at = f", {unit} {line}" if unit else ""
        raise InputError(
            f"{where}{at}: not valid UTF-8 (byte {data[err.start]:#04x} at offset {err.start})"
        ) from None
    return text.removeprefix("\ufeff")


def _read_jsonl(path: Path, columns: Sequence[str] | None) -> list[tuple[int, Any]]:
    rows = []
    # Split on "\n" only: str.splitlines() also breaks at U+2028 and U+2029 inside strings.
    for n, line in enumerate(_decode(path.read_bytes(), str(path), "row").split("\n"), start=1):
        if line.strip():
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError as err:
                raise InputError(f"{path}, row {n}: not valid JSON ({err.msg})") from None
    return rows


def _read_json(path: Path, columns: Sequence[str] | None) -> list[tuple[int, Any]]:
    text = _decode(path.read_bytes(), str(path))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}, line {err.lineno}: not valid JSON ({err.msg})") from None
    if isinstance(data, dict):
        key = next((k for k in ("Data", "data") if isinstance(data.get(k), list)), None)
        data = data[key] if key else None
    if not isinstance(data, list):
        raise InputError(
            f"{path}: expected a JSON list, or an object whose 'Data' or 'data' is one"
        )
    return list(enumerate(data, start=1))


def _read_table(path: Path, columns: Sequence[str] | None) -> list[tuple[int, Any]]:
    """CSV (quoted as Excel and pandas write it) or TSV (no quoting, as GLUE writes it)."""
    text = _decode(path.read_bytes(), str(path))
    tsv = path.suffix.lower() == ".tsv"
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))  # whole passages per cell
    reader = csv.DictReader(
        io.StringIO(text, newline=""),
        delimiter="\t" if tsv else ",",
        quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL,
    )
    try:
        if reader.fieldnames:
            reader.fieldnames = [name.strip() for name in reader.fieldnames]
        return list(enumerate(reader, start=1))
    except csv.Error as err:
        raise InputError(f"{path}, line {reader.line_num}: not valid CSV ({err})") from None


def _pyarrow(path: Path):
    try:
        import pyarrow
    except ImportError:
        raise InputError(f"{path}: reading this file needs pyarrow (pip install pyarrow)") from None
    return pyarrow


def _select(names: Sequence[str], columns: Sequence[str] | None) -> list[str] | None:
    if columns is None:
        return None
    wanted = [name for name in names if name in columns]
    return wanted or None


def _read_parquet(path: Path, columns: Sequence[str] | None) -> list[tuple[int, Any]]:
    pa = _pyarrow(path)
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        table = pq.read_table(path, columns=_select(names, columns))
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"{path}: not a readable Parquet file ({err})") from None
    return list(enumerate(table.to_pylist(), start=1))


def _read_arrow(path: Path, columns: Sequence[str] | None) -> list[tuple[int, Any]]:
    """An Arrow IPC file: stream format (Hugging Face's cache) first, then file format."""
    pa = _pyarrow(path)
    import pyarrow.ipc

    problems = []
    for open_ipc in (pyarrow.ipc.open_stream, pyarrow.ipc.open_file):
        try:
            with pa.memory_map(str(path)) as source:
                table = open_ipc(source).read_all()
                chosen = _select(table.column_names, columns)
                return list(enumerate((table.select(chosen) if chosen else table).to_pylist(), 1))
        except (pa.ArrowException, OSError) as err:
            problems.append(str(err))
    raise InputError(f"{path}: not a readable Arrow IPC file ({'; '.join(problems)})")


_READERS: dict[str, Callable[[Path, Sequence[str] | None], list[tuple[int, Any]]]] = {
    ".json": _read_json,
    ".jsonl": _read_jsonl,
    ".csv": _read_table,
    ".tsv": _read_table,
    ".parquet": _read_parquet,
    ".arrow": _read_arrow,
}


def _hf_rows(source: str, columns: Sequence[str] | None) -> list[tuple[int, Any]]:
    dataset_id, config, split = parse_hf_source(source)
    try:
        import datasets as hf_datasets  # optional: only hf: sources need it
    except ImportError:
        raise InputError(
            f"{source}: 'hf:' sources need the Hugging Face datasets package: pip install datasets"
        ) from None
    try:
        data = hf_datasets.load_dataset(dataset_id, config, split=split)
    except Exception as err:  # noqa: BLE001 - offline, not cached, no such split: all alike here
        raise InputError(
            f"{source}: cannot load it ({type(err).__name__}: {err}). The pipeline runs offline "
            "(HF_HUB_OFFLINE=1), so the data must be in the local Hugging Face cache: run "
            f"datasets.load_dataset({dataset_id!r}, {config!r}, split={split!r}) once with "
            "internet access, or point the source at a local file"
        ) from None
    chosen = _select(getattr(data, "column_names", None) or [], columns)
    if chosen and hasattr(data, "select_columns"):
        data = data.select_columns(chosen)
    return list(enumerate(data, start=1))


def _aclimdb_rows(folder: Path, source: str, split: str | None) -> list[tuple[int, Any]]:
    """Reviews of an aclImdb split: ``<split>/neg/*.txt`` then ``<split>/pos/*.txt``, sorted.

    A file ``pos/123_9.txt`` becomes the row ``{"id": "pos-123_9", "text": ...,
    "label": "pos", "rating": 9}``.
    """
    base = _aclimdb_split(folder, source, split)
    files = sorted(
        (p for label in ("neg", "pos") for p in (base / label).glob("*.txt") if p.is_file()),
        key=lambda p: p.relative_to(base).as_posix(),
    )
    rows = []
    for n, file in enumerate(files, start=1):
        label = file.parent.name
        rel = file.relative_to(base).as_posix()
        row: dict[str, Any] = {
            "id": f"{label}-{file.stem}",
            "text": _decode(file.read_bytes(), f"{source}, row {n} ({rel})", None),
            "label": label,
        }
        rating = file.stem.rpartition("_")[2]
        if rating.isdigit():
            row["rating"] = int(rating)
        rows.append((n, row))
    if not rows:
        raise InputError(f"{source}: no reviews (*.txt) in {base / 'neg'} or {base / 'pos'}")
    return rows


def _aclimdb_split(folder: Path, source: str, split: str | None) -> Path:
    def has_labels(path: Path) -> bool:
        return (path / "neg").is_dir() or (path / "pos").is_dir()

    if split is not None:
        if not has_labels(folder / split):
            raise InputError(
                f"{source}: option 'split' is {split!r}, "
                f"but neither {folder / split / 'neg'} nor {folder / split / 'pos'} exists"
            )
        return folder / split
    for base in (folder / "test", folder):
        if has_labels(base):
            return base
    raise InputError(
        f"{source}: not an aclImdb folder: expected test/neg and test/pos, or neg and pos, in it"
    )
