"""Reading a source's rows: a file by its extension, an aclImdb folder, or ``hf:``.

:func:`read_rows` gives (row number, row) pairs; what a row number means per file type is
described in :mod:`truthmap.loaders`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from truthmap.files import InputError
from truthmap.load_options import LoadOptions


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
