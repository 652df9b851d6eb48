"""The config's JSON schema and the key tables of config/README.md, generated from the typed settings.

:mod:`truthmap.settings` is the one source of every key's type, default, bounds
and description. This module turns it into

- ``workflow/schemas/config.schema.yaml``, which Snakemake validates the config
  against (and fills defaults from) before anything runs, and
- the tables between ``<!-- keys: <section> -->`` and ``<!-- /keys -->`` in
  ``config/README.md``.

``python -m truthmap.schema`` rewrites both; ``python -m truthmap.schema --check``
says which keys differ and exits 1 (a test runs the same check).
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import json
import re
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from truthmap.files import InputError
from truthmap.sections import Section, field_types
from truthmap.settings import RunSettings

REPO = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
README_PATH = REPO / "config" / "README.md"
BLOCK = re.compile(r"(<!-- keys: (?P<name>[\w.]+) -->\n)(?P<body>.*?)(<!-- /keys -->)", re.S)
HEADER = "# Generated from scripts/truthmap/settings.py by `python -m truthmap.schema`: edit the settings, not this file.\n"


@functools.lru_cache(maxsize=None)
def docstrings(cls: type) -> dict[str, str]:
    """Each field's docstring (the string right after it), whitespace collapsed."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for stmt, nxt in zip(body, body[1:]):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            docs[stmt.target.id] = " ".join(nxt.value.value.split())
    return docs


def summary(cls: type) -> str:
    """A class docstring as one line."""
    return " ".join((cls.__doc__ or "").split())


def default_of(f: dataclasses.Field) -> Any:
    """A field's default as plain data; ``MISSING`` when the key is required."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        return {} if isinstance(value, Section) else value
    return dataclasses.MISSING


def type_schema(hint: Any) -> dict:
    """The JSON schema of a settings type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (typing.Union, types.UnionType):
        nullable = type(None) in args
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1:
            inner = type_schema(rest[0])
            if nullable and "enum" in inner:
                return {"enum": [*inner["enum"], None]}
            if nullable and "type" in inner:
                return {**inner, "type": [inner["type"], "null"]}
            return inner if not nullable else {"oneOf": [inner, {"type": "null"}]}
        if all(a in (str, int, float, bool) for a in rest):
            return {"type": [_json_type(a) for a in rest] + (["null"] if nullable else [])}
        return {"oneOf": [_const_or(type_schema(a)) for a in rest] + ([{"type": "null"}] if nullable else [])}
    if origin in (list, tuple):
        return {"type": "array", "items": type_schema(args[0])}
    if origin is dict:
        value = args[1]
        if isinstance(value, type) and issubclass(value, Section):
            return {"type": "object", "additionalProperties": section_schema(value)}
        return {"type": "object", "additionalProperties": type_schema(value)}
    if isinstance(hint, type) and issubclass(hint, Section):
        return section_schema(hint)
    return {"type": _json_type(hint)}


def _const_or(schema: dict) -> dict:
    return {"const": schema["enum"][0]} if len(schema.get("enum", ())) == 1 else schema


def _json_type(hint: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string"}[hint]


def field_schema(f: dataclasses.Field, hint: Any, doc: str | None) -> dict:
    """The schema of one key: description, type, bounds, extras, default."""
    out: dict[str, Any] = {"description": doc} if doc else {}
    out.update(type_schema(hint))
    out.update(f.metadata.get("bounds", {}))
    extra = dict(f.metadata.get("schema", {}))
    if "name_pattern" in extra:
        names: dict[str, Any] = {"pattern": extra.pop("name_pattern")}
        for name in extra.pop("not_names", []):
            names["not"] = {"const": name}
        out["propertyNames"] = names
    if "items_minimum" in extra:
        minimum = extra.pop("items_minimum")
        for option in out.get("oneOf", [out]):
            if option.get("type") == "array":
                option["items"]["minimum"] = minimum
                option["minItems"] = extra.pop("minItems", 1)
    out.update(extra)
    default = default_of(f)
    if default is not dataclasses.MISSING:
        out["default"] = default
    if isinstance(hint, type) and issubclass(hint, Section):
        out = {"description": summary(hint), **out, "default": {}}
    return out


def section_schema(cls: type[Section]) -> dict:
    """An object schema for a section: its keys, nothing else."""
    hints, docs = field_types(cls), docstrings(cls)
    props = {f.name: field_schema(f, hints[f.name], docs.get(f.name)) for f in dataclasses.fields(cls)}
    required = [f.name for f in dataclasses.fields(cls) if default_of(f) is dataclasses.MISSING]
    out: dict[str, Any] = {"type": "object", "additionalProperties": False}
    if required:
        out["required"] = required
    out["properties"] = props
    return out


def config_schema() -> dict:
    """The whole config's JSON schema (draft 2020-12)."""
    body = section_schema(RunSettings)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "truthmap workflow configuration",
        "description": summary(RunSettings),
        **body,
    }


def check_config(config: dict, schema_path: Path = SCHEMA_PATH) -> None:
    """Raise an :class:`InputError` naming the key of the worst way ``config`` breaks the schema.

    Snakemake's own validation (which also fills the defaults) prints the whole
    schema of the offending key; this says it in one line first.
    """
    from jsonschema import validators
    from jsonschema.exceptions import best_match

    schema = yaml.safe_load(schema_path.read_text(encoding="utf-8"))
    error = best_match(validators.validator_for(schema)(schema).iter_errors(config))
    if error is not None:
        where = ".".join(str(part) for part in error.absolute_path)
        raise InputError(f"config key {where!r}: {error.message}" if where else f"config: {error.message}",
                         hint=_unknown_key_hint(error, where))


#: Keys of an earlier layout and where they live now.
MOVED = {"probe.test_fraction": "split.test_fraction"}


def _unknown_key_hint(error, where: str) -> str | None:
    """For an unknown key: where it moved, or the keys its section takes."""
    if error.validator != "additionalProperties" or not isinstance(error.instance, dict):
        return None
    known = set(error.schema.get("properties", {}))
    unknown = [f"{where}.{key}" if where else key for key in sorted(set(error.instance) - known)]
    moves = [f"{key} is now {MOVED[key]}" for key in unknown if key in MOVED]
    return "; ".join(moves) if moves else f"the keys {where or 'the config'} takes: {', '.join(sorted(known))}"


def schema_text() -> str:
    return HEADER + yaml.safe_dump(config_schema(), sort_keys=False, width=100, allow_unicode=True)


# --------------------------------------------------------------------------- README tables


def sections() -> dict[str, type[Section] | None]:
    """The documented blocks: ``run`` (top-level scalar keys) and one per section or entry."""
    out: dict[str, type[Section] | None] = {"run": None}
    for f in dataclasses.fields(RunSettings):
        hint = field_types(RunSettings)[f.name]
        if typing.get_origin(hint) is dict:
            out[f.name] = typing.get_args(hint)[1]
        elif isinstance(hint, type) and issubclass(hint, Section):
            out[f.name] = hint
    return out


def show(value: Any) -> str:
    """A default as the README shows it."""
    if value is dataclasses.MISSING:
        return "required"
    return f"`{json.dumps(value, ensure_ascii=False)}`".replace("|", "\\|")


def key_table(name: str) -> str:
    """The markdown table of one block's keys."""
    cls = sections()[name]
    rows = ["| key | default | meaning |", "| --- | --- | --- |"]
    if cls is None:
        hints, docs = field_types(RunSettings), docstrings(RunSettings)
        chosen = [f for f in dataclasses.fields(RunSettings) if f.name not in sections()]
    else:
        hints, docs = field_types(cls), docstrings(cls)
        chosen = list(dataclasses.fields(cls))
    for f in chosen:
        assert hints[f.name] is not None
        rows.append(f"| `{f.name}` | {show(default_of(f))} | {docs.get(f.name, '')} |")
    return "\n".join(rows) + "\n"


def readme_text(text: str) -> str:
    """``text`` (config/README.md) with every generated block replaced by its table."""
    unknown = [m["name"] for m in BLOCK.finditer(text) if m["name"] not in sections()]
    if unknown:
        raise ValueError(f"config/README.md: no settings for block(s) {unknown}")
    missing = sorted(set(sections()) - {m["name"] for m in BLOCK.finditer(text)})
    if missing:
        raise ValueError(f"config/README.md: no <!-- keys: NAME --> block for {missing}")
    return BLOCK.sub(lambda m: m.group(1) + key_table(m["name"]) + m.group(4), text)


# --------------------------------------------------------------------------- check and write


def schema_differences(written: dict, generated: dict, where: str = "") -> list[str]:
    """Key paths where the written schema differs from the generated one."""
    if isinstance(written, dict) and isinstance(generated, dict):
        out = []
        for key in sorted(set(written) | set(generated), key=str):
            path = f"{where}.{key}" if where else str(key)
            if key not in generated:
                out.append(f"{path}: in the file, not in the settings")
            elif key not in written:
                out.append(f"{path}: in the settings, not in the file")
            else:
                out += schema_differences(written[key], generated[key], path)
        return out
    return [] if written == generated else [f"{where}: file {written!r} != settings {generated!r}"]


def check() -> list[str]:
    """Every difference between the written files and what the settings generate."""
    problems = [f"{SCHEMA_PATH.name}: {d}" for d in
                schema_differences(yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8")), config_schema())]
    text = README_PATH.read_text(encoding="utf-8")
    written = {m["name"]: m["body"] for m in BLOCK.finditer(text)}
    for name in sections():
        if written.get(name) != key_table(name):
            problems.append(f"config/README.md: the keys table of {name!r} differs from the settings")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="report differences instead of writing")
    args = parser.parse_args(argv)
    if args.check:
        problems = check()
        print("\n".join(problems) or "schema and config/README.md agree with the settings")
        return 1 if problems else 0
    SCHEMA_PATH.write_text(schema_text(), encoding="utf-8")
    README_PATH.write_text(readme_text(README_PATH.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"wrote {SCHEMA_PATH.relative_to(REPO)} and {README_PATH.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
