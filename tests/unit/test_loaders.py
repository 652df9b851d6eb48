"""Tests for truthmap.loaders: every format from a hand-written fixture, errors, skipping."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixture_data import FIXTURES, load_error, load_fixture
from truthmap.files import InputError
from truthmap.loaders import (
    FORMATS,
    MNLI_CHOICES,
    Loaded,
    Skipped,
    convert_row,
    load_source,
    parse_options,
)
from truthmap.loaders.formats import _FORMATS
from truthmap.questions import BadField, check_record

SAFE_ID = re.compile(r"^[A-Za-z0-9_.+-]+$")
GENERIC_COLUMNS = {"id": "item", "question": "prompt", "answer": "gold", "context": "passage"}


def _by_id(loaded: Loaded) -> dict[str, dict]:
    return {r["id"]: r for r in loaded.records}


# --------------------------------------------------------------------------- every format


@pytest.mark.parametrize(
    ("file", "options", "count"),
    [
        ("triviaqa-web-dev.json", {"format": "triviaqa"}, 7),
        ("triviaqa-hf.jsonl", {"format": "triviaqa"}, 6),
        ("nq-open.jsonl", {"format": "natural_questions"}, 7),
        ("nq-with-context.csv", {"format": "natural_questions"}, 5),
        ("hotpotqa-dev.json", {"format": "hotpotqa"}, 5),
        ("gsm8k.jsonl", {"format": "gsm8k"}, 7),
        ("answerable-math.csv", {"format": "gsm8k"}, 5),
        ("winogrande.jsonl", {"format": "winogrande"}, 6),
        ("winogrande.csv", {"format": "winogrande"}, 5),
        ("winobias.csv", {"format": "winobias"}, 6),
        ("mnli-glue.jsonl", {"format": "mnli"}, 6),
        ("multinli-dev.jsonl", {"format": "mnli"}, 5),
        ("mnli-reference.csv", {"format": "mnli"}, 5),
        ("imdb.jsonl", {"format": "imdb"}, 6),
        ("aclImdb", {"format": "imdb"}, 6),
        ("movie-qa.csv", {"format": "movies"}, 6),
        ("generic-quiz.csv", {"format": "csv", "columns": GENERIC_COLUMNS}, 5),
    ],
)
def test_every_fixture_loads(file: str, options: dict, count: int) -> None:
    loaded = load_fixture(file, **options)
    assert len(loaded.records) == count
    assert loaded.skipped == []
    ids = [r["id"] for r in loaded.records]
    assert len(set(ids)) == count and all(SAFE_ID.match(i) for i in ids), ids
    assert {r["dataset"] for r in loaded.records} == {"ds"}
    for record in loaded.records:
        assert check_record(record) is record
        assert list(record)[:5] == ["id", "question", "aliases", "dataset", "meta"]
    assert load_fixture(file, **options) == loaded  # deterministic, ids stable


def test_formats_are_all_listed() -> None:
    assert FORMATS == (
        "builtin", "truthmap", "triviaqa", "natural_questions", "hotpotqa", "gsm8k", "winogrande",
        "winobias", "mnli", "imdb", "movies", "csv", "jsonl", "json",
    )  # fmt: skip


def test_every_listed_format_has_a_converter() -> None:
    # FORMATS is spelled out in load_options, so that checking options needs no converters.
    assert FORMATS == ("builtin", "truthmap", *_FORMATS)


def test_triviaqa_original_layout() -> None:
    records = _by_id(load_fixture("triviaqa-web-dev.json", format="triviaqa"))
    mars = records["tc_101"]
    assert mars["question"] == "Which planet is known as the Red Planet?"
    assert mars["aliases"] == ["Mars", "Planet Mars", "Fourth planet"]  # normalised ones fold in
    assert mars["meta"] == {"answer_value": "Mars"}
    assert records["qw_607"]["aliases"] == ["6", "six"]  # Value first
    assert records["odql_506"]["aliases"] == ["Pacific Ocean", "Pacific", "The Pacific"]


def test_both_triviaqa_layouts_agree() -> None:
    original = _by_id(load_fixture("triviaqa-web-dev.json", format="triviaqa"))
    hf = _by_id(load_fixture("triviaqa-hf.jsonl", format="triviaqa"))
    shared = set(original) & set(hf)
    assert shared == {"tc_101", "tc_102", "sfq_304", "qw_607"}
    for qid in shared:
        assert hf[qid] == original[qid]
    assert hf["bt_809"]["aliases"] == ["France", "French Republic", "République française"]


def test_natural_questions_open() -> None:
    records = load_fixture("nq-open.jsonl", format="natural_questions").records
    assert records[0] == {
        "id": "row-000001",
        "question": "who wrote the declaration of independence",
        "aliases": ["Thomas Jefferson"],
        "dataset": "ds",
        "meta": {},
    }
    assert records[4]["aliases"] == ["15 April 1912", "April 15, 1912", "1912"]


def test_natural_questions_with_and_without_context() -> None:
    closed = load_fixture("nq-with-context.csv", format="natural_questions").records
    assert all("context" not in r for r in closed)
    opened = load_fixture("nq-with-context.csv", format="natural_questions", with_context=True).records
    assert opened[0]["context"].startswith("General relativity is the geometric theory")
    assert opened[0]["aliases"] == ["Albert Einstein"]
    assert [{k: v for k, v in r.items() if k != "context"} for r in opened] == closed
    assert closed[4]["aliases"] == ["Mount Everest", "Everest"]  # a Python list in a cell
    message = load_error("nq-open.jsonl", format="natural_questions", with_context=True)
    assert message.startswith(f"{FIXTURES / 'nq-open.jsonl'}, row 1: field 'context': missing")


def test_hotpotqa_is_closed_book_unless_asked() -> None:
    closed = _by_id(load_fixture("hotpotqa-dev.json", format="hotpotqa"))
    taj = closed["5ac4a8b7554299076e296d5c"]
    assert taj["aliases"] == ["New Delhi"] and "context" not in taj
    assert taj["meta"] == {"type": "bridge", "level": "hard"}
    assert closed["5ab2d0f05542991669774c0e"]["aliases"] == ["yes"]
    opened = _by_id(load_fixture("hotpotqa-dev.json", format="hotpotqa", with_context=True))
    assert opened["5ac4a8b7554299076e296d5c"]["context"] == (
        "The Taj Mahal is an ivory-white marble mausoleum in Agra, India.\n"
        "India is a country in South Asia.\n"
        "Its capital is New Delhi."
    )


def test_hotpotqa_hugging_face_layout(tmp_path: Path) -> None:
    original = json.loads((FIXTURES / "hotpotqa-dev.json").read_text())
    hf_rows = [
        {
            "id": row["_id"],
            "question": row["question"],
            "answer": row["answer"],
            "type": row["type"],
            "level": row["level"],
            "context": {
                "title": [title for title, _ in row["context"]],
                "sentences": [sentences for _, sentences in row["context"]],
            },
        }
        for row in original
    ]
    path = tmp_path / "hotpot.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in hf_rows))
    for with_context in (False, True):
        expected = load_fixture("hotpotqa-dev.json", format="hotpotqa", with_context=with_context)
        loaded = load_source("ds", str(path), {"format": "hotpotqa", "with_context": with_context})
        assert loaded == expected


def test_gsm8k_numbers() -> None:
    records = load_fixture("gsm8k.jsonl", format="gsm8k").records
    assert [r["aliases"] for r in records] == [
        ["26"],
        ["1250"],
        ["12"],
        ["15"],
        ["150"],
        ["-5"],
        ["1234"],
    ]
    assert records[0]["meta"]["reasoning"].startswith("Tom has 3 * 12 = <<3*12=36>>36 apples.")
    assert records[0]["question"].startswith("Tom has 3 boxes with 12 apples")


def test_answerable_math_csv() -> None:
    records = _by_id(load_fixture("answerable-math.csv", format="gsm8k"))
    assert set(records) == {"11", "12", "13", "14", "15"}  # the file's own ids
    assert records["11"]["question"] == (
        "Sam has 7 bags with 3 marbles in each bag. How many marbles does Sam have?"
    )
    assert records["11"]["aliases"] == ["21"]
    assert records["14"]["aliases"] == ["72"]  # [72.0]
    assert records["15"]["aliases"] == ["6.5"]
    assert records["12"]["meta"] == {"origin": "GSM8K"}


def test_winogrande_original_layout() -> None:
    records = _by_id(load_fixture("winogrande.jsonl", format="winogrande"))
    glass = records["39ZSFO5CA8V1-1"]
    assert glass["task"] == "choice"
    assert glass["choices"] == {"glass": ["glass"], "pillow": ["pillow"]}
    assert glass["answer"] == "pillow" and glass["aliases"] == ["pillow"]
    assert glass["question"].startswith("The glass fell onto the pillow and did not break, because")
    assert "glass or pillow" in glass["question"]
    assert records["39ZSFO5CA8V1-2"]["answer"] == "glass"


def test_winogrande_reference_csv() -> None:
    records = load_fixture("winogrande.csv", format="winogrande").records
    daniel = records[1]
    assert daniel["question"].endswith("Who does the blank refer to in the sentence?")
    assert daniel["choices"] == {"Daniel": ["Daniel"], "Robert": ["Robert"]}  # sorted: no leak
    assert daniel["answer"] == "Robert"
    assert records[0]["choices"] == {"cat": ["cat"], "mouse": ["mouse"]}


def test_winobias() -> None:
    records = load_fixture("winobias.csv", format="winobias").records
    anti = records[1]
    sentence = (
        "The mover helped the librarian because she was strong enough to lift the heavy boxes."
    )
    assert anti["question"] == f"{sentence} Who does the pronoun 'she' refer to?"
    assert anti["plain_question"] == f"{sentence} The pronoun 'she' refers to the"
    assert anti["choices"] == {"librarian": ["librarian"], "mover": ["mover"]}
    assert anti["answer"] == "mover" and anti["aliases"] == ["mover"]
    assert anti["meta"] == {"type": 1, "stereotype": "anti", "pronoun": "she"}
    assert [r["answer"] for r in records] == [
        "librarian", "mover", "lawyer", "cleaner", "sheriff", "sheriff",
    ]  # fmt: skip


def test_mnli_integer_labels() -> None:
    records = load_fixture("mnli-glue.jsonl", format="mnli").records
    assert [r["answer"] for r in records] == [
        "entailment", "contradiction", "neutral", "contradiction", "entailment", "neutral",
    ]  # fmt: skip
    first = records[0]
    assert first["id"] == "0"
    assert "A man is playing a guitar on a stage" in first["question"]
    assert "A man is performing music." in first["question"]
    assert all(word in first["question"] for word in ("entailment", "contradiction", "neutral"))
    assert first["choices"] == {label: list(words) for label, words in MNLI_CHOICES.items()}
    assert first["aliases"] == list(MNLI_CHOICES["entailment"])


def test_mnli_string_labels() -> None:
    multi = _by_id(load_fixture("multinli-dev.jsonl", format="mnli"))
    assert {qid: r["answer"] for qid, r in multi.items()} == {
        "10001e": "entailment",
        "10002c": "contradiction",
        "10003n": "neutral",
        "10004e": "entailment",
        "10005c": "contradiction",
    }
    assert multi["10004e"]["meta"] == {"genre": "telephone"}
    reference = load_fixture("mnli-reference.csv", format="mnli").records
    assert [r["answer"] for r in reference] == [
        "entailment", "contradiction", "neutral", "entailment", "contradiction",
    ]  # fmt: skip
    assert reference[0]["question"].startswith('Premise: "The bakery sells bread')


def test_imdb_rows() -> None:
    records = load_fixture("imdb.jsonl", format="imdb").records
    assert [r["answer"] for r in records] == ["positive", "negative"] * 3
    bad = records[1]
    assert bad["choices"] == {"negative": ["negative"], "positive": ["positive"]}
    assert "positive or negative" in bad["question"]
    assert "painful.\n\nI checked my watch" in bad["question"]  # <br /> -> newline
    assert "<br" not in bad["question"]


def test_movies() -> None:
    records = load_fixture("movie-qa.csv", format="movies").records
    assert records[2]["question"] == "Who acted as Vito Corleone in the movie 'The Godfather'?"
    assert records[2]["aliases"] == ["Marlon Brando"]
    assert records[2]["id"] == "row-000003"


# --------------------------------------------------------------------------- generic formats


def test_generic_csv_mapping() -> None:
    loaded = load_fixture("generic-quiz.csv", format="csv", columns=GENERIC_COLUMNS, answer_separator="|")
    records = _by_id(loaded)
    assert list(records) == ["geo_1", "geo_2", "sci_3", "sci_4", "hist-5"]
    assert records["geo_1"]["aliases"] == ["Lisbon", "Lisboa"]
    assert records["geo_1"]["meta"] == {"source_id": "geo/1"}
    assert records["geo_2"]["aliases"] == ["Tokyo", "Tokio"]  # a JSON list in a cell
    assert records["sci_4"]["aliases"] == ["8", "eight"]
    assert records["hist-5"]["aliases"] == ["1989"]
    assert all("context" not in r for r in loaded.records)
    without = _by_id(load_fixture("generic-quiz.csv", format="csv", columns=GENERIC_COLUMNS))
    assert without["geo_1"]["aliases"] == ["Lisbon|Lisboa"]
    assert without["geo_2"]["aliases"] == ["Tokyo", "Tokio"]
    opened = _by_id(
        load_fixture("generic-quiz.csv", format="csv", columns=GENERIC_COLUMNS, with_context=True)
    )
    assert opened["hist-5"]["context"] == "The Berlin Wall fell on 9 November 1989."


def test_generic_jsonl_and_json(tmp_path: Path) -> None:
    rows = [
        {
            "q": "What is the largest planet in the Solar System?",
            "a": ["Jupiter"],
            "alt": '["Planet Jupiter"]',
        },
        {"q": "How many continents are there?", "a": 7, "alt": None},
    ]
    jsonl = tmp_path / "quiz.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    options = {"format": "jsonl", "columns": {"question": "q", "answer": "a", "aliases": "alt"}}
    records = load_source("ds", str(jsonl), options).records
    assert records[0]["aliases"] == ["Jupiter", "Planet Jupiter"]
    assert records[1]["aliases"] == ["7"]
    as_json = tmp_path / "quiz.json"
    as_json.write_text(json.dumps({"data": rows}))
    assert load_source("ds", str(as_json), {**options, "format": "json"}).records == records


def test_id_collision_after_making_ids_safe(tmp_path: Path) -> None:
    path = tmp_path / "quiz.csv"
    path.write_text("id,q,a\nx/1,What is 2 + 2?,4\nx_1,What is 3 + 3?,6\n")
    options = {"format": "csv", "columns": {"id": "id", "question": "q", "answer": "a"}}
    expected = f"{path}, row 2: field 'id': duplicate id 'x_1': row 1 (from 'x/1') has it too"
    with pytest.raises(InputError, match=f"^{re.escape(expected)}$"):
        load_source("ds", str(path), options)


# --------------------------------------------------------------------------- malformed rows


@pytest.mark.parametrize(
    ("file", "fmt", "row", "field", "why"),
    [
        ("malformed/nq-bad.jsonl", "natural_questions", 2, "answer", "no answer"),
        ("malformed/mnli-bad.jsonl", "mnli", 2, "label", "no gold label"),
        ("malformed/winogrande-bad.jsonl", "winogrande", 2, "answer", "unlabelled"),
        ("malformed/gsm8k-bad.jsonl", "gsm8k", 2, "answer", "not a number"),
    ],
)
def test_malformed_row_names_file_row_and_field(
    file: str, fmt: str, row: int, field: str, why: str
) -> None:
    message = load_error(file, format=fmt)
    assert message.startswith(f"{FIXTURES / file}, row {row}: field {field!r}: ")
    assert why in message


@pytest.mark.parametrize(
    ("file", "fmt", "kept", "skipped"),
    [
        (
            "malformed/nq-bad.jsonl",
            "natural_questions",
            ["row-000001", "row-000003", "row-000005"],
            [(2, "answer"), (4, "question"), (6, "question")],
        ),
        ("malformed/mnli-bad.jsonl", "mnli", ["0", "3", "4"], [(2, "label"), (3, "label")]),
        (
            "malformed/winogrande-bad.jsonl",
            "winogrande",
            ["W1-1", "W4-1"],
            [(2, "answer"), (3, "option2"), (4, "answer")],
        ),
        (
            "malformed/gsm8k-bad.jsonl",
            "gsm8k",
            ["row-000001", "row-000005"],
            [(2, "answer"), (3, "answer"), (4, "question")],
        ),
    ],
)
def test_skip_malformed_keeps_the_good_rows(
    file: str, fmt: str, kept: list[str], skipped: list[tuple[int, str]]
) -> None:
    loaded = load_fixture(file, format=fmt, skip_malformed=True)
    assert [r["id"] for r in loaded.records] == kept
    assert [(s.row, s.field) for s in loaded.skipped] == skipped
    assert all(s.reason for s in loaded.skipped)


def test_skipped_reasons_say_what_is_wrong() -> None:
    skipped = load_fixture(
        "malformed/nq-bad.jsonl", format="natural_questions", skip_malformed=True
    ).skipped
    assert skipped[1] == Skipped(4, "question", "missing")
    assert skipped[2] == Skipped(6, "question", "must be text, got 42")
    mnli = load_fixture("malformed/mnli-bad.jsonl", format="mnli", skip_malformed=True).skipped
    assert "got 7" in mnli[1].reason
    wino = load_fixture("malformed/winogrande-bad.jsonl", format="winogrande", skip_malformed=True).skipped
    assert "same option" in wino[1].reason and "'3'" in wino[2].reason


@pytest.mark.parametrize(
    ("content", "fmt", "field", "why"),
    [
        ('["a question"]', "natural_questions", "", "expected a JSON object, got list"),
        (
            '{"Question": "Q?", "QuestionId": "t1", "Answer": "Paris"}',
            "triviaqa",
            "Answer",
            "must be an object",
        ),
        (
            '{"Question": "Q?", "Answer": {"Aliases": "Paris"}}',
            "triviaqa",
            "Answer.Aliases",
            "list of strings",
        ),
        (
            '{"question": "Q?", "answer": "[\\"A\\", null]"}',
            "natural_questions",
            "answer",
            "got None",
        ),
        (
            '{"question": "Q?", "answer": "[1, 2]]"}',
            "natural_questions",
            "answer",
            "cannot be parsed",
        ),
        (
            '{"question": "Q?", "answer": "A", "context": 3, "_id": "h"}',
            {"format": "hotpotqa", "with_context": True},
            "context",
            "list",
        ),
        (
            '{"sentence": "No blank here.", "option1": "a", "option2": "b", "answer": "1"}',
            "winogrande",
            "sentence",
            "one blank",
        ),
        ('{"text": "Fine film.", "label": -1}', "imdb", "label", "unlabelled"),
        ('{"text": "Fine film.", "label": 2}', "imdb", "label", "got 2"),
        ('{"text": "  ", "label": 1}', "imdb", "text", "empty"),
        ('{"premise": "P.", "hypothesis": "H.", "label": "maybe"}', "mnli", "label", "'maybe'"),
        ('{"question": "Q?", "answer": "#### 1.2.3"}', "gsm8k", "answer", "no number after '####'"),
        (
            '{"question": "Q?", "answer": {"x": 1}}',
            "natural_questions",
            "answer",
            "text or numbers",
        ),
        (
            '{"question": "Q?", "answer": ["A"], "id": [1]}',
            "natural_questions",
            "id",
            "text or an integer",
        ),
    ],
)
def test_odd_rows_are_reported_not_crashed_on(
    tmp_path: Path, content: str, fmt: str | dict, field: str, why: str
) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(content + "\n")
    with pytest.raises(InputError) as err:
        load_source("ds", str(path), fmt if isinstance(fmt, dict) else {"format": fmt})
    assert isinstance(err.value, BadField)
    assert (err.value.field, err.value.where) == (field, f"{path}, row 1")
    assert why in err.value.reason
    prefix = f"{path}, row 1: field {field!r}: " if field else f"{path}, row 1: "
    assert str(err.value).startswith(prefix)


@pytest.mark.parametrize(
    ("content", "name"),
    [
        ("", "empty.jsonl"),
        ("\n\n", "blank.jsonl"),
        ("Question,Answer\n", "header.csv"),
        ("[]", "list.json"),
    ],
)
def test_empty_dataset_is_an_error(tmp_path: Path, content: str, name: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    fmt = "movies" if name.endswith(".csv") else "natural_questions"
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: no questions$"):
        load_source("ds", str(path), {"format": fmt})


def test_all_rows_skipped_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "Q?", "answer": []}\n{"answer": ["A"]}\n')
    message = load_error(path, format="natural_questions", skip_malformed=True)
    assert message.startswith(f"{path}: no questions (2 malformed rows skipped; the first: row 1")


# --------------------------------------------------------------------------- builtin source


def test_builtin_source() -> None:
    loaded = load_source("facts", "builtin", {})
    assert len(loaded.records) > 1500 and loaded.skipped == []
    assert {r["dataset"] for r in loaded.records} == {"facts"}


# --------------------------------------------------------------------------- any row at all

_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.floats(allow_nan=True)
    | st.sampled_from(
        [
            "",
            " ",
            "1",
            "-1",
            "0",
            "2",
            "-",
            "a_b",
            "[1]",
            "['x']",
            "[",
            "#### 7",
            "entailment",
            "pos",
            "x/y",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["value", "aliases", "title", "sentences", "Value", "Aliases"]),
            inner,
            max_size=3,
        )
    ),
    max_leaves=6,
)
_KEYS = sorted({
    "id", "_id", "qID", "idx", "pairID", "question", "Question", "answer", "Answer", "aliases",
    "Aliases", "context", "Context", "sentence", "option1", "option2", "Wrong_Answer",
    "incorrect_answer", "q", "q_instruct", "type", "premise", "hypothesis", "label", "gold_label",
    "sentence1", "sentence2", "text", "rating", "QuestionId", "question_id", "source",
})  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from([f for f in FORMATS if f != "builtin"]),
    row=st.dictionaries(st.sampled_from(_KEYS), _JSON_VALUES, max_size=8),
    with_context=st.booleans(),
)
def test_any_row_gives_a_record_or_a_bad_field(fmt: str, row: dict, with_context: bool) -> None:
    generic = fmt in ("csv", "jsonl", "json")
    options = parse_options("ds", "x.jsonl", {
        "format": fmt,
        "with_context": with_context and (generic or fmt in ("natural_questions", "hotpotqa")),
        "columns": {"question": "question", "answer": "answer", "id": "id", "context": "context",
                    "aliases": "aliases"} if generic else None,
    })  # fmt: skip
    try:
        record = convert_row("ds", row, 1, options)
    except BadField as err:
        assert isinstance(err.field, str) and err.reason
    else:
        assert check_record(record) is record
        assert fmt == "truthmap" or SAFE_ID.match(record["id"])


def test_fixture_folder_is_plain_text() -> None:
    # Fixtures are small hand-written text files; binary variants are built inside the tests.
    for path in FIXTURES.rglob("*"):
        if path.is_file():
            assert path.stat().st_size < 20_000, path
            path.read_text(encoding="utf-8")


def test_mnli_and_imdb_give_base_models_a_completion_prompt() -> None:
    mnli = load_fixture("mnli-glue.jsonl", format="mnli").records[0]
    assert mnli["plain_question"].count("Relation:") == 4 and mnli["plain_question"].endswith("\nRelation:")
    assert mnli["question"].split("\n")[0] in mnli["plain_question"]
    imdb = load_fixture("imdb.jsonl", format="imdb").records[0]
    assert imdb["plain_question"].count("Sentiment:") == 3 and imdb["plain_question"].endswith("\nSentiment:")
