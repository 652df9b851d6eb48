"""Tests for truthmap.datasets: subsampling, sharding and a configured dataset's source."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from fixture_data import FIXTURES, question
from truthmap.builtin import DOMAINS
from truthmap.datasets import check_source, make_dataset, shard_records, subsample
from truthmap.files import InputError
from truthmap.loaders import Loaded


# --------------------------------------------------------------------------- subsample


def _toy(sizes: dict[str, int]) -> list[dict]:
    """Records of several domains, interleaved so that original order is not domain order."""
    records = [question(f"{d}-{i}", meta={"domain": d}) for d, n in sizes.items() for i in range(n)]
    return sorted(records, key=lambda r: (int(r["id"].split("-")[1]), r["id"]))


@pytest.mark.parametrize("limit", [None, 105, 1000])
def test_subsample_keeps_everything_when_no_limit_bites(limit: int | None) -> None:
    records = _toy({"a": 50, "b": 50, "c": 5})
    assert subsample(records, limit, seed=0) == records


@pytest.mark.parametrize("limit", [0, -3])
def test_subsample_rejects_non_positive_limits(limit: int) -> None:
    with pytest.raises(ValueError, match=str(limit)):
        subsample(_toy({"a": 5}), limit, seed=0)


def test_subsample_balances_domains() -> None:
    records = _toy({"a": 50, "b": 50, "c": 5})
    chosen = subsample(records, 30, seed=0)
    counts = Counter(r["meta"]["domain"] for r in chosen)
    assert len(chosen) == 30
    assert counts["c"] == 5  # the small domain runs out first
    assert abs(counts["a"] - counts["b"]) <= 1
    positions = [records.index(r) for r in chosen]
    assert positions == sorted(positions)  # original order
    assert len({r["id"] for r in chosen}) == 30


def test_subsample_is_deterministic_and_seeded() -> None:
    records = _toy({"a": 50, "b": 50})
    ids = lambda seed: [r["id"] for r in subsample(records, 10, seed)]  # noqa: E731
    assert ids(1) == ids(1)
    assert ids(1) != ids(2)


def test_subsample_of_builtin_is_even(builtin: list[dict]) -> None:
    chosen = subsample(builtin, 8 * len(DOMAINS), seed=0)
    assert Counter(r["meta"]["domain"] for r in chosen) == {d: 8 for d in DOMAINS}


# --------------------------------------------------------------------------- shards


@pytest.mark.parametrize(("n_records", "n_shards"), [(1, 1), (10, 3), (10, 10), (1847, 7)])
def test_shards_partition_the_records(n_records: int, n_shards: int) -> None:
    records = [question(f"q{i}") for i in range(n_records)]
    shards = shard_records(records, n_shards)
    assert len(shards) == n_shards
    ids = [r["id"] for shard in shards for r in shard]
    assert sorted(ids) == sorted(r["id"] for r in records)
    assert len(set(ids)) == n_records
    sizes = [len(s) for s in shards]
    assert max(sizes) - min(sizes) <= 1
    for i, record in enumerate(records):
        assert record in shards[i % n_shards]


def test_too_many_shards() -> None:
    records = [question(f"q{i}") for i in range(3)]
    with pytest.raises(InputError, match="cannot split 3 questions into 4 shards"):
        shard_records(records, 4)


@pytest.mark.parametrize("n_shards", [0, -1])
def test_non_positive_shards(n_shards: int) -> None:
    with pytest.raises(ValueError, match=rf"3 questions into {n_shards} shards"):
        shard_records([question(f"q{i}") for i in range(3)], n_shards)


# --------------------------------------------------------------------------- a configured dataset


def test_make_dataset_subsamples_and_passes_skipped_rows_on() -> None:
    source = str(FIXTURES / "malformed" / "nq-bad.jsonl")
    loaded = make_dataset(
        "nq",
        source,
        limit=2,
        seed=0,
        options={"format": "natural_questions", "skip_malformed": True},
    )
    assert isinstance(loaded, Loaded)
    assert len(loaded.records) == 2 and len(loaded.skipped) == 3
    assert make_dataset("b", "builtin", limit=8, seed=0).records[0]["dataset"] == "b"


def test_check_source_accepts_files_folders_and_hf(tmp_path: Path) -> None:
    check_source("datasets.a.source", str(FIXTURES / "movie-qa.csv"))
    check_source("datasets.a.source", str(FIXTURES / "aclImdb"))
    check_source("datasets.a.source", "hf:stanfordnlp/imdb:test")  # not looked up
    with pytest.raises(InputError, match=r"^config key 'datasets\.a\.source': hf:imdb: expected"):
        check_source("datasets.a.source", "hf:imdb")
    with pytest.raises(InputError, match=r"'datasets\.a\.source'"):
        check_source("datasets.a.source", str(tmp_path / "missing"))


def test_dataset_source_is_checked_with_its_config_key(tmp_path):
    check_source("datasets.builtin.source", "builtin")
    with pytest.raises(InputError, match=r"'datasets\.mine\.source'"):
        check_source("datasets.mine.source", str(tmp_path / "nope.jsonl"))
