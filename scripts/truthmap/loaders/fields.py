"""One field of a source row, read and checked: text, lists, ids, answers, numbers, labels.

Each helper takes a row (a mapping) and the key of its field and raises
:class:`~truthmap.questions.BadField` naming that field when it is missing or malformed.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from truthmap.questions import BadField, unique_aliases


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


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
