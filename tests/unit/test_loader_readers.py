"""Tests for truthmap.loaders.readers: each file type, aclImdb folders and hf: sources."""

from __future__ import annotations

import json
import re
import sys
import types
from pathlib import Path

import pytest

from fixture_data import FIXTURES, load_error, load_fixture
from truthmap.files import InputError
from truthmap.loaders import Skipped, load_source



# --------------------------------------------------------------------------- files


@pytest.mark.parametrize("kind", ["parquet", "arrow-stream", "arrow-file"])
def test_parquet_and_arrow_round_trip(tmp_path: Path, kind: str) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.ipc
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in (FIXTURES / "triviaqa-hf.jsonl").read_text().splitlines()]
    table = pa.Table.from_pylist(rows)
    path = tmp_path / ("data.parquet" if kind == "parquet" else "data.arrow")
    if kind == "parquet":
        pq.write_table(table, path)
    else:
        new = pyarrow.ipc.new_stream if kind == "arrow-stream" else pyarrow.ipc.new_file
        with pa.OSFile(str(path), "wb") as sink, new(sink, table.schema) as writer:
            writer.write_table(table)
    expected = load_fixture("triviaqa-hf.jsonl", format="triviaqa")
    assert load_source("ds", str(path), {"format": "triviaqa"}) == expected


def test_unreadable_arrow_file(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "broken.arrow"
    path.write_bytes(b"not arrow at all")
    with pytest.raises(InputError, match=rf"^{re.escape(str(path))}: not a readable Arrow IPC"):
        load_source("ds", str(path), {"format": "imdb"})


def test_multinli_tsv_is_read_without_quoting(tmp_path: Path) -> None:
    path = tmp_path / "dev_matched.tsv"
    path.write_text(
        "gold_label\tsentence1\tsentence2\tpairID\n"
        'neutral\t"Yes," he said, "we will go."\tThey went by car.\t7n\n'
        "-\tThe sky is blue.\tThe sky is green.\t8c\n"
    )
    loaded = load_source("ds", str(path), {"format": "mnli", "skip_malformed": True})
    assert [r["id"] for r in loaded.records] == ["7n"]
    assert 'Premise: "Yes," he said, "we will go."' in loaded.records[0]["question"]
    assert loaded.skipped == [
        Skipped(2, "gold_label", "'-': the annotators did not agree on a gold label")
    ]


def test_row_numbers_per_file_type(tmp_path: Path) -> None:
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"question": "Q1?", "answer": ["A"]}\n\n{"question": "Q2?", "answer": []}\n')
    assert load_error(jsonl, format="natural_questions").startswith(f"{jsonl}, row 3: field 'answer'")
    csv_path = tmp_path / "q.csv"
    csv_path.write_text('Question,Answer\n"Q1,\nspanning lines?",A\nQ2?,\n')
    assert load_error(csv_path, format="movies").startswith(f"{csv_path}, row 2: field 'Answer': empty")
    as_json = tmp_path / "q.json"
    as_json.write_text(json.dumps([{"question": "Q1?", "answer": "A"}, {"question": "Q2?"}]))
    assert load_error(as_json, format="natural_questions").startswith(
        f"{as_json}, row 2: field 'answer'"
    )


def test_non_utf8_names_file_and_line(tmp_path: Path) -> None:
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_bytes(
        b'{"question": "Q?", "answer": ["A"]}\n{"question": "caf\xe9?", "answer": ["B"]}\n'
    )
    assert load_error(jsonl, format="natural_questions").startswith(f"{jsonl}, row 2: not valid UTF-8")
    csv_path = tmp_path / "q.csv"
    csv_path.write_bytes(b"Question,Answer\nQ?,A\nQ2?,caf\xe9\n")
    assert load_error(csv_path, format="movies").startswith(f"{csv_path}, line 3: not valid UTF-8")


def test_unreadable_files(tmp_path: Path) -> None:
    bad_json = tmp_path / "q.jsonl"
    bad_json.write_text('{"question": "Q?"\n')
    assert load_error(bad_json, format="natural_questions").startswith(
        f"{bad_json}, row 1: not valid JSON"
    )
    scalar = tmp_path / "q.json"
    scalar.write_text('{"Version": 1}')
    assert "expected a JSON list" in load_error(scalar, format="triviaqa")
    text = tmp_path / "q.txt"
    text.write_text("Q? A")
    assert "cannot read a .txt file" in load_error(text, format="movies")
    assert load_error(tmp_path / "missing.csv", format="movies").endswith("missing.csv: file not found")


# --------------------------------------------------------------------------- aclImdb folders


def test_imdb_folder_and_split() -> None:
    test = load_fixture("aclImdb", format="imdb").records
    assert [r["id"] for r in test] == [
        "neg-0_1",
        "neg-1_3",
        "neg-2_2",
        "pos-0_10",
        "pos-1_9",
        "pos-2_8",
    ]
    assert [r["answer"] for r in test] == ["negative"] * 3 + ["positive"] * 3
    assert test[4]["meta"] == {"rating": 9}
    assert "told with care.\n\nThe final scene" in test[4]["question"]
    assert load_fixture("aclImdb", format="imdb", split="test") == load_fixture("aclImdb", format="imdb")
    train = load_fixture("aclImdb", format="imdb", split="train").records
    assert [r["id"] for r in train] == ["neg-0_2", "pos-0_9"]
    direct = load_fixture("aclImdb/test", format="imdb")  # pos/ and neg/ directly inside
    assert direct == load_fixture("aclImdb", format="imdb")
    assert "'split' is 'dev'" in load_error("aclImdb", format="imdb", split="dev")


def test_imdb_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not an aclImdb folder"):
        load_source("ds", str(tmp_path), {"format": "imdb"})
    with pytest.raises(InputError, match="only format 'imdb' reads one"):
        load_source("ds", str(FIXTURES / "aclImdb"), {"format": "movies"})
    (tmp_path / "pos").mkdir()
    (tmp_path / "pos" / "0_9.txt").write_bytes(b"Great film \xe9 truly")
    with pytest.raises(InputError, match=r", row 1 \(pos/0_9\.txt\): not valid UTF-8"):
        load_source("ds", str(tmp_path), {"format": "imdb"})


# --------------------------------------------------------------------------- hf: sources


def test_hf_source_without_datasets_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(InputError, match=r"^hf:stanfordnlp/imdb:test: .*pip install datasets"):
        load_source("ds", "hf:stanfordnlp/imdb:test", {"format": "imdb"})


def _fake_datasets(monkeypatch: pytest.MonkeyPatch, load_dataset) -> list:
    calls: list = []

    def recording(*args, **kwargs):
        calls.append((args, kwargs))
        return load_dataset(*args, **kwargs)

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=recording))
    return calls


def test_hf_source_not_in_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hugging Face Hub (offline mode is enabled)")

    _fake_datasets(monkeypatch, offline)
    with pytest.raises(InputError) as err:
        load_source(
            "ds", "hf:mandarjoshi/trivia_qa:rc.nocontext:validation", {"format": "triviaqa"}
        )
    message = str(err.value)
    assert message.startswith("hf:mandarjoshi/trivia_qa:rc.nocontext:validation: cannot load it")
    assert "local Hugging Face cache" in message and "offline mode" in message


def test_hf_source_rows_go_through_the_converter(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"text": "Loved it.", "label": 1}, {"text": "Hated it.", "label": 0}]
    calls = _fake_datasets(monkeypatch, lambda *a, **k: rows)
    loaded = load_source("ds", "hf:stanfordnlp/imdb:test", {"format": "imdb"})
    assert calls == [(("stanfordnlp/imdb", None), {"split": "test"})]
    assert [(r["id"], r["answer"]) for r in loaded.records] == [
        ("row-000001", "positive"), ("row-000002", "negative"),
    ]  # fmt: skip
    _fake_datasets(monkeypatch, lambda *a, **k: [{"text": "Loved it.", "label": 1}])
    with_config = load_source("ds", "hf:imdb:plain_text:test", {"format": "imdb"})
    assert len(with_config.records) == 1


@pytest.mark.parametrize("source", ["hf:imdb", "hf::test", "hf:a:b:c:d", "hf:imdb: "])
def test_bad_hf_source(source: str) -> None:
    with pytest.raises(InputError, match=r"expected 'hf:<dataset id>\[:<config>\]:<split>'"):
        load_source("ds", source, {"format": "imdb"})
