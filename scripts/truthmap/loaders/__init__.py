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

The package (its options are checked by :mod:`truthmap.load_options`):
:mod:`~truthmap.loaders.readers` reads a source's rows and :mod:`~truthmap.loaders.formats`
converts each (with the field helpers of :mod:`~truthmap.loaders.fields`); this module puts
the steps together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from truthmap.builtin import build_builtin
from truthmap.files import InputError
from truthmap.loaders.formats import _FORMATS, IMDB_CHOICES, MNLI_CHOICES
from truthmap.load_options import (
    _GENERIC,
    FORMATS,
    LoadOptions,
    _check_mapped_columns,
    parse_options,
)
from truthmap.loaders.readers import parse_hf_source, read_rows
from truthmap.questions import BadField, check_record

__all__ = [
    "FORMATS",
    "IMDB_CHOICES",
    "MNLI_CHOICES",
    "LoadOptions",
    "Loaded",
    "Skipped",
    "convert_row",
    "load_source",
    "parse_hf_source",
    "parse_options",
    "read_rows",
]

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


def load_source(name: str, source: str, options: LoadOptions | Mapping[str, Any]) -> Loaded:
    """Read dataset ``name`` from ``source`` as described by ``options``.

    ``options`` are checked :class:`LoadOptions` (the workflow checks them once, before the
    first job), or a mapping of their keys, all optional, to check here. Every record's
    ``dataset`` is ``name``. Errors are :class:`~truthmap.files.InputError` naming the source,
    and the row and field where there is one.
    """
    opts = options if isinstance(options, LoadOptions) else parse_options(name, source, options)
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
