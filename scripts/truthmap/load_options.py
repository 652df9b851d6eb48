"""Loader options: how the config says a dataset source is read, checked.

:func:`parse_options` turns a dataset's options from the config into :class:`LoadOptions`;
errors name the dataset and the option's key. Kept outside the :mod:`truthmap.loaders`
package so that the typed settings (imported by every rule script, the per-layer probe jobs
included) can check options without importing file readers and format converters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from truthmap.files import InputError

FORMATS: tuple[str, ...] = (
    "builtin", "truthmap", "triviaqa", "natural_questions", "hotpotqa", "gsm8k", "winogrande",
    "winobias", "mnli", "imdb", "movies", "csv", "jsonl", "json",
)  # fmt: skip
"""Every format name :func:`~truthmap.loaders.load_source` knows: ``builtin``, ``truthmap``
and, in the same order, the formats with a converter in :mod:`truthmap.loaders.formats` (a
test checks that the two agree). Listed here so that checking the options does not need the
converters."""


@dataclass(frozen=True)
class LoadOptions:
    """How to read a source, checked by :func:`parse_options`: the ``datasets.<name>`` keys of
    the same names (described, with their defaults, in :class:`truthmap.settings.DatasetSettings`),
    with the format resolved to one of :data:`FORMATS`."""

    format: str
    with_context: bool
    columns: Mapping[str, str]
    answer_separator: str | None
    split: str | None
    skip_malformed: bool


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
        if getattr(opts, key) and fmt not in formats:  # set, for a format that has no use for it
            raise InputError(
                f"{where}: option {key!r} does not apply to format {fmt!r} "
                f"(only to {', '.join(formats)})"
            )
    if opts.with_context and fmt in _GENERIC and "context" not in opts.columns:
        raise InputError(f"{where}: option 'with_context' needs 'columns.context'")
    if opts.split is not None and not Path(source).expanduser().is_dir():
        raise InputError(f"{where}: option 'split' applies only to a folder source (aclImdb)")
    return opts


_GENERIC = ("csv", "jsonl", "json")
_OPTION_KEYS = tuple(f.name for f in fields(LoadOptions))
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
