"""Tests for truthmap.questions: the question schema, its validation and questions files."""

from __future__ import annotations

import json
import re

import pytest

from fixture_data import question
from truthmap.files import InputError, write_jsonl
from truthmap.questions import BadField, load_questions, unique_aliases, validate_questions

# --------------------------------------------------------------------------- validation


def _without(record: dict, key: str) -> dict:
    return {k: v for k, v in record.items() if k != key}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (_without(question("q2"), "question"), "'question'"),
        (_without(question("q2"), "id"), "'id'"),
        (_without(question("q2"), "dataset"), "'dataset'"),
        (_without(question("q2"), "aliases"), "'aliases'"),
        (question("q2", question="   "), "'question'"),
        (question("q2", question=7), "'question'"),
        (question(7), "'id'"),
        (question("q2", aliases=[]), "'aliases'"),
        (question("q2", aliases="2"), "'aliases'"),
        (question("q2", aliases=["2", ""]), "'aliases'"),
        (question("q2", aliases=["2", 2]), "'aliases'"),
        (question("q2", meta=["arithmetic"]), "'meta'"),
        (question("q2", meta={"domain": 3}), "'meta.domain'"),
    ],
)
def test_validation_names_source_row_and_field(bad: dict, field: str) -> None:
    with pytest.raises(InputError) as err:
        validate_questions([question("q1"), bad, question("q3")], "data/q.jsonl")
    message = str(err.value)
    assert message.startswith("data/q.jsonl, row 2: ")
    assert field in message


def _choice_q(qid: str = "c1", **changes: object) -> dict:
    record = {
        "id": qid,
        "question": "The trophy did not fit in the case because the _ was too big.",
        "aliases": ["trophy"],
        "dataset": "toy",
        "meta": {},
        "task": "choice",
        "choices": {"trophy": ["trophy"], "case": ["case", "suitcase"]},
        "answer": "trophy",
    }
    record.update(changes)
    return record


@pytest.mark.parametrize(
    ("bad", "field", "why"),
    [
        (question("q2", task="yesno"), "task", "must be one of ['qa', 'choice']"),
        (
            question("q2", choices={"a": ["a"], "b": ["b"]}),
            "choices",
            "only allowed when 'task' is 'choice'",
        ),
        (question("q2", context=""), "context", "non-empty string"),
        (question("q2", context=["a passage"]), "context", "non-empty string"),
        (question("q2", plain_question="  "), "plain_question", "non-empty string"),
        (_without(_choice_q("q2"), "choices"), "choices", "at least 2 labels"),
        (_choice_q("q2", choices={"trophy": ["trophy"]}), "choices", "at least 2 labels"),
        (_choice_q("q2", choices=[["trophy"], ["case"]]), "choices", "at least 2 labels"),
        (_choice_q("q2", choices={"trophy": ["trophy"], "case": []}), "choices", "'case' must be"),
        (
            _choice_q("q2", choices={"trophy": ["trophy"], "case": "case"}),
            "choices",
            "'case' must be",
        ),
        (
            _choice_q("q2", choices={"trophy": ["trophy"], "case": ["", "x"]}),
            "choices",
            "'case' must be",
        ),
        (
            _choice_q("q2", choices={"trophy": ["trophy"], "": ["case"]}),
            "choices",
            "labels must be",
        ),
        (
            _choice_q("q2", choices={"trophy": ["trophy", "it"], "case": ["case", "It"]}),
            "choices",
            "'It' is a surface form of both 'trophy' and 'case'",
        ),
        (_without(_choice_q("q2"), "answer"), "answer", "must be one of the labels"),
        (_choice_q("q2", answer="cup"), "answer", "must be one of the labels ['trophy', 'case']"),
        (_choice_q("q2", answer=["trophy"]), "answer", "must be one of the labels"),
        (_choice_q("q2", aliases=["case"]), "aliases", "must equal choices['trophy']"),
        (_choice_q("q2", aliases=["trophy", "cup"]), "aliases", "must equal choices['trophy']"),
    ],
)
def test_validation_of_the_optional_fields(bad: dict, field: str, why: str) -> None:
    with pytest.raises(InputError) as err:
        validate_questions([question("q1"), bad], "x.jsonl")
    assert str(err.value).startswith(f"x.jsonl, row 2: field {field!r}: ")
    assert why in str(err.value)


def test_validation_accepts_the_optional_fields() -> None:
    qa = question("q2", task="qa", context="One and one make two.", plain_question="1 + 1 =")
    choice = _choice_q("c1")
    assert validate_questions([qa, choice], "x.jsonl") == [qa, choice]


def test_validation_fills_a_choice_records_aliases() -> None:
    choice = _without(_choice_q("c1", answer="case"), "aliases")
    (out,) = validate_questions([choice], "x.jsonl")
    assert out["aliases"] == ["case", "suitcase"]
    assert out == {**choice, "aliases": ["case", "suitcase"]}
    assert "aliases" not in choice  # the input is not modified


def test_bad_field_errors_carry_field_and_reason() -> None:
    with pytest.raises(BadField) as err:
        validate_questions([question("q1", aliases=[])], "x.jsonl")
    assert (err.value.field, err.value.where) == ("aliases", "x.jsonl, row 1")
    assert err.value.reason.startswith("must be a non-empty list")
    assert isinstance(err.value, InputError)


def test_validation_rejects_non_objects() -> None:
    with pytest.raises(InputError, match=r"^data/q\.jsonl, row 1: expected a JSON object"):
        validate_questions(["q1"], "data/q.jsonl")  # type: ignore[list-item]


def test_validation_names_both_rows_of_a_duplicate_id() -> None:
    records = [question("a"), question("b"), question("a")]
    with pytest.raises(InputError, match=r"^data/q\.jsonl, rows 1 and 3: duplicate id 'a'"):
        validate_questions(records, "data/q.jsonl")


def test_validation_rejects_no_questions() -> None:
    with pytest.raises(InputError, match=r"^data/q\.jsonl: no questions$"):
        validate_questions([], "data/q.jsonl")


def test_validation_keeps_records_and_defaults_meta() -> None:
    with_extra = question("a", source="trivia")
    without_meta = _without(question("b"), "meta")
    out = validate_questions([with_extra, without_meta], "q.jsonl")
    assert out[0] is with_extra
    assert out[1] == {**without_meta, "meta": {}}
    assert "meta" not in without_meta  # the input is not modified


def test_load_questions_roundtrip(tmp_path, builtin: list[dict]) -> None:
    path = tmp_path / "q.jsonl"
    write_jsonl(path, builtin[:50])
    assert load_questions(path) == builtin[:50]


def test_load_questions_names_file_row_and_field(tmp_path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(question("a")) + "\n" + json.dumps(question("b", aliases=[])) + "\n")
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}, row 2: field 'aliases'"):
        load_questions(path)


def test_load_questions_empty_file(tmp_path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text("\n")
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: no questions$"):
        load_questions(path)


def test_load_questions_non_utf8(tmp_path) -> None:
    path = tmp_path / "q.jsonl"
    latin1_row = '{"id": "caf\u00e9"}'.encode("latin-1")
    path.write_bytes(json.dumps(question("a")).encode() + b"\n" + latin1_row)
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}, row 2: not valid UTF-8"):
        load_questions(path)


def test_load_questions_bad_json(tmp_path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(json.dumps(question("a")) + "\n{not json\n")
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}, row 2: not valid JSON"):
        load_questions(path)


# --------------------------------------------------------------------------- aliases


def test_unique_aliases() -> None:
    raw = [" Paris ", "paris", "", "  ", "PARIS", "Lutetia"]
    assert unique_aliases(raw) == ["Paris", "Lutetia"]
