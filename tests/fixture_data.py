"""Test data shared by unit and workflow tests: dataset fixtures, question records, test configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from truthmap.files import InputError
from truthmap.loaders import Loaded, load_source

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures" / "datasets"
TEST_CONFIG = TESTS / "e2e" / "config.yaml"


def load_fixture(file: str | Path, **options) -> Loaded:
    """A dataset fixture read as dataset ``ds`` with loader ``options``."""
    return load_source("ds", str(FIXTURES / file), options)


def load_error(file: str | Path, **options) -> str:
    """The error message of loading a fixture that must fail."""
    with pytest.raises(InputError) as err:
        load_fixture(file, **options)
    return str(err.value)


def question(qid: str = "q1", **changes: object) -> dict:
    """A valid question record of our schema, with ``changes``."""
    record = {
        "id": qid,
        "question": "What is 1 + 1?",
        "aliases": ["2"],
        "dataset": "toy",
        "meta": {"domain": "arithmetic"},
    }
    record.update(changes)
    return record


def config_with(key: str, value, base: Path = TEST_CONFIG) -> dict:
    """The test config with dotted ``key`` set to ``value`` (missing sections are created)."""
    config = yaml.safe_load(base.read_text())
    node = config
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return config
