"""Atomic file writing and JSONL reading with errors that name the file and row.

Every output of the workflow is written through :func:`atomic_path`: the data
goes to a temporary file in the same folder, which is renamed over the target
only once it is complete. A job killed half-way therefore never leaves a
truncated file under the final name.
"""

from __future__ import annotations

import contextlib
import csv
import glob
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any


class InputError(ValueError):
    """Bad input the user can fix: the message names the file, row or key at fault.

    A rule script stops on it with that one line (and the ``hint``, when there
    is one) instead of a traceback: see :func:`truthmap.logs.setup`.
    """

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``, for the body to create; rename it onto ``path`` on
    success.

    On an exception the temporary file is removed and ``path`` is left as it was.
    Temporary files that an earlier, killed writer of ``path`` left behind are
    removed first (one job writes an output at a time).

    The name is reserved by ``mkstemp`` and its empty file removed again, so the body creates
    the file (with the mode an ordinary ``open`` gives it) instead of truncating one: ext4, like
    XFS, writes a file that was truncated back to disk when it is closed, so that a crash never
    shows it empty. For a 766 MB activation shard that was 0.15-0.25 s inside the job.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{glob.escape(target.name)}.*{glob.escape(suffix or '.tmp')}"):
        with contextlib.suppress(FileNotFoundError):
            stale.unlink()
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.unlink()
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write one JSON document atomically, keys sorted, NaN written as null."""
    write_text(path, json.dumps(_nan_to_none(obj), indent=2, sort_keys=True) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[dict]) -> int:
    """Write records as JSON Lines atomically; return how many were written."""
    n = 0
    with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(_nan_to_none(record), ensure_ascii=False) + "\n")
            n += 1
    return n


def read_json(path: str | os.PathLike) -> Any:
    """Read one JSON document; a parse error names the file."""
    path = Path(path)
    try:
        return json.loads(_read_utf8(path))
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: not valid JSON ({err})") from err


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON Lines file; errors name the file and 1-based row."""
    path = Path(path)
    records = []
    # Split on "\n" only: str.splitlines() also breaks at U+2028/U+2029/U+0085,
    # which json.dumps(ensure_ascii=False) leaves unescaped inside strings.
    for lineno, line in enumerate(_read_utf8(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{path}, row {lineno}: not valid JSON ({err.msg})") from err
        if not isinstance(record, dict):
            raise InputError(f"{path}, row {lineno}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    return records


def _read_utf8(path: Path) -> str:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InputError(
            f"{path}, row {line}: not valid UTF-8 (byte {data[err.start]:#04x} at offset {err.start})"
        ) from err


def _nan_to_none(obj: Any) -> Any:
    """JSON has no NaN: write missing numbers as null."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_nan_to_none(v) for v in obj]
    return obj


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def write_tsv(path: str | os.PathLike, rows: Sequence[dict], columns: Sequence[str]) -> None:
    """A tab-separated table, written atomically; missing numbers as NaN."""
    with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_fmt(row.get(c)) for c in columns])


def read_tsv(path: str | os.PathLike) -> list[dict[str, str]]:
    """A tab-separated table as a list of dicts (values as strings)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))
