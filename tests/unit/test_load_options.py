"""Tests for truthmap.load_options: a dataset's loader options, checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixture_data import FIXTURES, load_error, load_fixture
from truthmap.files import InputError
from truthmap.loaders import load_source
from truthmap.load_options import FORMATS, parse_options

GENERIC_COLUMNS = {"id": "item", "question": "prompt", "answer": "gold", "context": "passage"}


@pytest.mark.parametrize(
    ("source", "options", "pattern"),
    [
        ("movie-qa.csv", {"format": "movie"}, r"option 'format': unknown format 'movie'"),
        ("movie-qa.csv", {}, r"option 'format' is required"),
        ("movie-qa.csv", {"format": "movies", "limit": 3}, r"unknown option 'limit'"),
        ("movie-qa.csv", {"format": "builtin"}, r"option 'format': 'builtin' goes with source"),
        (
            "movie-qa.csv",
            {"format": "movies", "with_context": True},
            r"option 'with_context' does not apply",
        ),
        (
            "movie-qa.csv",
            {"format": "movies", "with_context": "yes"},
            r"option 'with_context' must be true or false",
        ),
        (
            "movie-qa.csv",
            {"format": "movies", "columns": {"question": "Q"}},
            r"option 'columns' does not apply",
        ),
        ("movie-qa.csv", {"format": "movies", "split": "test"}, r"option 'split' does not apply"),
        (
            "imdb.jsonl",
            {"format": "imdb", "split": "test"},
            r"option 'split' applies only to a folder",
        ),
        (
            "movie-qa.csv",
            {"format": "csv", "columns": ["Question"]},
            r"option 'columns' must be a mapping",
        ),
        (
            "movie-qa.csv",
            {
                "format": "csv",
                "answer_separator": "",
                "columns": {"question": "Question", "answer": "Answer"},
            },
            r"option 'answer_separator' must be",
        ),
    ],
)
def test_bad_options_name_the_key(source: str, options: dict, pattern: str) -> None:
    with pytest.raises(InputError, match=r"^dataset 'ds': " + pattern):
        load_fixture(source, **options)


def test_default_options_of_every_format_are_accepted() -> None:
    # The workflow passes with_context and skip_malformed (false) for every dataset.
    for fmt in FORMATS:
        source = "builtin" if fmt == "builtin" else "x.jsonl"
        columns = {"question": "q", "answer": "a"} if fmt in ("csv", "jsonl", "json") else None
        opts = parse_options(
            "ds",
            source,
            {"format": fmt, "with_context": False, "skip_malformed": False, "columns": columns},
        )
        assert opts.format == fmt


def test_truthmap_is_the_default_for_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    rows = [
        {"id": "a", "question": "What is 2 + 2?", "aliases": ["4"], "dataset": "old", "meta": {}},
        {
            "id": "b/c",
            "question": "Cat or dog: which one barks?",
            "dataset": "old",
            "task": "choice",
            "choices": {"cat": ["cat"], "dog": ["dog"]},
            "answer": "dog",
        },
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = load_source("mine", str(path), {}).records
    assert records[0] == {**rows[0], "dataset": "mine"}
    assert records[1]["id"] == "b/c"  # our own schema: ids are kept as they are
    assert records[1]["aliases"] == ["dog"] and records[1]["meta"] == {}


def test_generic_mapping_errors() -> None:
    columns = {**GENERIC_COLUMNS, "question": "text"}
    message = load_error("generic-quiz.csv", format="csv", columns=columns)
    assert message.startswith(f"{FIXTURES / 'generic-quiz.csv'}: option 'columns.question'")
    assert "'text'" in message and "item, passage, prompt, gold" not in message
    assert "'columns.answer'" in load_error(
        "generic-quiz.csv", format="csv", columns={"question": "prompt"}
    )
    assert "'columns.prompt'" in load_error(
        "generic-quiz.csv", format="csv", columns={**GENERIC_COLUMNS, "prompt": "prompt"}
    )
    no_context = {"question": "prompt", "answer": "gold"}
    assert "'columns.context'" in load_error(
        "generic-quiz.csv", format="csv", columns=no_context, with_context=True
    )
