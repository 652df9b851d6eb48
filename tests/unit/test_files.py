"""Tests for truthmap.files: atomic writes, round trips, errors naming file and row."""

from __future__ import annotations

import json
import math
import os

import pytest

from truthmap.files import (
    InputError,
    atomic_path,
    read_json,
    read_jsonl,
    read_tsv,
    write_json,
    write_jsonl,
    write_text,
    write_tsv,
)

# --------------------------------------------------------------------------- atomic_path


def test_atomic_path_writes_on_success_and_creates_folders(tmp_path):
    target = tmp_path / "a" / "b" / "out.txt"
    with atomic_path(target, suffix=".part") as tmp:
        assert tmp.parent == target.parent and tmp != target
        assert tmp.name.endswith(".part")
        tmp.write_text("done", encoding="utf-8")
        assert not target.exists()  # nothing under the final name before the body finishes
    assert target.read_text(encoding="utf-8") == "done"
    assert os.listdir(target.parent) == ["out.txt"]


def test_atomic_path_keeps_the_old_file_when_the_body_raises(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError, match="half-way"):
        with atomic_path(target) as tmp:
            tmp.write_text("new but truncated", encoding="utf-8")
            raise RuntimeError("half-way")
    assert target.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_atomic_path_creates_nothing_when_the_body_raises(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "out.txt"):
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_atomic_path_when_the_body_removes_the_temporary_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "out.txt") as tmp:
            tmp.unlink()
    assert os.listdir(tmp_path) == []


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_atomic_path_gives_the_permissions_of_an_ordinary_file(tmp_path, umask_022):
    ordinary = tmp_path / "ordinary.txt"
    ordinary.write_text("x", encoding="utf-8")  # 0644 under umask 022
    write_text(tmp_path / "atomic.txt", "x")
    mode = (tmp_path / "atomic.txt").stat().st_mode & 0o777
    assert oct(mode) == oct(ordinary.stat().st_mode & 0o777)


def test_write_text_replaces(tmp_path):
    target = tmp_path / "t.txt"
    write_text(target, "one")
    write_text(target, "zwei – ü")
    assert target.read_text(encoding="utf-8") == "zwei – ü"
    assert os.listdir(tmp_path) == ["t.txt"]


# --------------------------------------------------------------------------- JSON


def test_write_json_turns_nan_into_null(tmp_path):
    path = tmp_path / "x.json"
    nan = float("nan")
    write_json(path, {"b": nan, "a": [1.5, nan, {"c": nan}], "t": (nan, 2)})
    text = path.read_text(encoding="utf-8")
    assert "NaN" not in text
    assert json.loads(text) == {"a": [1.5, None, {"c": None}], "b": None, "t": [None, 2]}
    assert text.index('"a"') < text.index('"b"') < text.index('"t"')  # keys sorted
    assert read_json(path) == json.loads(text)


def test_read_json_errors_name_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON") as err:
        read_json(path)
    assert str(path) in str(err.value)
    with pytest.raises(InputError, match="file not found"):
        read_json(tmp_path / "missing.json")


# --------------------------------------------------------------------------- JSONL


def test_jsonl_round_trip(tmp_path):
    records = [
        {"id": "a", "text": "Zürich, 東京 🙂", "n": 1},
        {"id": "b", "x": float("nan"), "l": [1, 2]},
    ]
    path = tmp_path / "r.jsonl"
    assert write_jsonl(path, iter(records)) == 2
    assert read_jsonl(path) == [records[0], {"id": "b", "x": None, "l": [1, 2]}]
    assert "東京" in path.read_text(encoding="utf-8")  # written as UTF-8, not escaped


def test_jsonl_round_trip_of_awkward_characters(tmp_path):
    records = [{"text": "tab\tnewline\ncr\rform\x0cvt\x0bfs\x1cquote\"backslash\\"}]
    path = tmp_path / "r.jsonl"
    write_jsonl(path, records)
    assert read_jsonl(path) == records


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85"])
def test_jsonl_round_trip_of_unicode_line_separators(tmp_path, char):
    records = [{"text": f"first{char}second"}, {"text": "next"}]
    path = tmp_path / "r.jsonl"
    write_jsonl(path, records)
    assert read_jsonl(path) == records


def test_read_jsonl_skips_blank_lines(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"a": 2}\n', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]


def test_read_jsonl_bad_json_names_file_and_row(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2,\n{"a": 3}\n', encoding="utf-8")
    with pytest.raises(InputError, match="not valid JSON") as err:
        read_jsonl(path)
    assert f"{path}, row 3:" in str(err.value)


@pytest.mark.parametrize(
    "line, kind", [("[1, 2]", "list"), ('"text"', "str"), ("3", "int"), ("null", "NoneType")]
)
def test_read_jsonl_non_object_names_file_row_and_type(tmp_path, line, kind):
    path = tmp_path / "r.jsonl"
    path.write_text(f'{{"a": 1}}\n{line}\n', encoding="utf-8")
    with pytest.raises(InputError, match=f"expected a JSON object, got {kind}") as err:
        read_jsonl(path)
    assert f"{path}, row 2:" in str(err.value)


def test_read_jsonl_non_utf8_names_file_and_row(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes('{"a": "é"}\n{"a": 2}\n{"a": "'.encode() + b"\xff\xfe" + b'"}\n{"a": 4}\n')
    with pytest.raises(InputError, match="not valid UTF-8") as err:
        read_jsonl(path)
    assert f"{path}, row 3:" in str(err.value)
    assert "0xff" in str(err.value)


def test_read_jsonl_missing_file(tmp_path):
    path = tmp_path / "none.jsonl"
    with pytest.raises(InputError, match="file not found") as err:
        read_jsonl(path)
    assert str(path) in str(err.value)


def test_write_jsonl_is_atomic(tmp_path):
    path = tmp_path / "r.jsonl"
    write_jsonl(path, [{"a": 1}])

    def records():
        yield {"a": 2}
        raise RuntimeError("generator failed")

    with pytest.raises(RuntimeError):
        write_jsonl(path, records())
    assert read_jsonl(path) == [{"a": 1}]
    assert os.listdir(tmp_path) == ["r.jsonl"]


# --------------------------------------------------------------------------- TSV


def test_tsv_round_trip_with_nan(tmp_path):
    path = tmp_path / "t.tsv"
    rows = [
        {"layer": 0, "token": "last_q", "auc": 0.123456789, "reason": ""},
        {"layer": 1, "token": "-1", "auc": float("nan"), "reason": 'has\ttab and "quotes"'},
        {"layer": 2, "token": "-2", "auc": None},  # reason missing
    ]
    write_tsv(path, rows, ["layer", "token", "auc", "reason"])
    back = read_tsv(path)
    assert [list(r) for r in back] == [["layer", "token", "auc", "reason"]] * 3
    assert [r["layer"] for r in back] == ["0", "1", "2"]
    assert float(back[0]["auc"]) == pytest.approx(0.123457, abs=1e-9)
    assert math.isnan(float(back[1]["auc"])) and math.isnan(float(back[2]["auc"]))
    assert back[1]["reason"] == 'has\ttab and "quotes"'
    assert back[0]["reason"] == "" and back[2]["reason"] == "NaN"


def test_write_tsv_header_only(tmp_path):
    path = tmp_path / "t.tsv"
    write_tsv(path, [], ["a", "b"])
    assert path.read_text(encoding="utf-8") == "a\tb\n"
    assert read_tsv(path) == []


def test_read_tsv_missing_file(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_tsv(tmp_path / "none.tsv")


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)


def test_atomic_path_removes_what_a_killed_writer_left(tmp_path):
    target = tmp_path / "0[1].h5"
    left = tmp_path / ".0[1].h5.abc123.h5.tmp"
    other = tmp_path / ".1.h5.abc123.h5.tmp"
    left.write_bytes(b"half")
    other.write_bytes(b"another output's")
    with atomic_path(target, suffix=".h5.tmp") as tmp:
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole"
    assert not left.exists() and other.exists()
