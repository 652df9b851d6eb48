"""Tests for truthmap.datasets: the builtin QA set, subsampling and sharding."""

from __future__ import annotations

import json
import operator
import re
from collections import Counter

import pytest

from truthmap.datasets import (
    CITIES_PER_COUNTRY,
    DOMAINS,
    build_builtin,
    country_phrase,
    shard_records,
    subsample,
)
from truthmap.files import InputError
from truthmap.questions import validate_questions

SAFE_ID = re.compile(r"^[A-Za-z0-9_.+-]+$")


@pytest.fixture(scope="module")
def by_id(builtin: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in builtin}


def _domain(records: list[dict], domain: str) -> list[dict]:
    return [r for r in records if r["meta"]["domain"] == domain]


def _accepts(record: dict, answer: str) -> bool:
    return answer.casefold() in {a.casefold() for a in record["aliases"]}


# --------------------------------------------------------------------------- builtin dataset


def test_build_is_deterministic(builtin: list[dict]) -> None:
    again = build_builtin()
    assert json.dumps(again) == json.dumps(builtin)


def test_build_names_the_dataset() -> None:
    assert {r["dataset"] for r in build_builtin("facts")} == {"facts"}


def test_size_and_unique_safe_ids(builtin: list[dict]) -> None:
    assert len(builtin) >= 1500
    ids = [r["id"] for r in builtin]
    assert len(set(ids)) == len(ids)
    assert all(SAFE_ID.match(i) for i in ids), [i for i in ids if not SAFE_ID.match(i)]


def test_every_domain_has_a_sensible_count(builtin: list[dict]) -> None:
    counts = Counter(r["meta"]["domain"] for r in builtin)
    assert set(counts) == set(DOMAINS)
    assert 200 <= counts["capitals"] <= 260
    assert 400 <= counts["city_country"] <= 500
    assert 230 <= counts["continents"] <= 260
    assert 230 <= counts["currencies"] <= 260
    assert counts["element_symbols"] == counts["element_names"] == counts["atomic_numbers"] == 118
    assert counts["arithmetic"] == 300


def test_records_are_grouped_by_domain_and_sorted_by_id(builtin: list[dict]) -> None:
    domains = [r["meta"]["domain"] for r in builtin]
    assert sorted(domains, key=DOMAINS.index) == domains
    for domain in DOMAINS:
        ids = [r["id"] for r in _domain(builtin, domain)]
        assert ids == sorted(ids)


def test_builtin_passes_validation(builtin: list[dict]) -> None:
    assert validate_questions(builtin, "builtin") == builtin


def test_aliases_are_clean(builtin: list[dict]) -> None:
    for record in builtin:
        aliases = record["aliases"]
        assert aliases, record["id"]
        assert all(a and a == a.strip() for a in aliases), record["id"]
        folded = [a.casefold() for a in aliases]
        assert len(set(folded)) == len(folded), record["id"]


@pytest.mark.parametrize(
    ("qid", "answer"),
    [
        ("capitals-FR", "Paris"),
        ("capitals-JP", "Tokyo"),
        ("capitals-US", "Washington"),
        ("capitals-BR", "Brasília"),  # the city table's spelling joins the country table's
        ("capitals-BR", "Brasilia"),
        ("capitals-KZ", "Astana"),  # country table says Nur-Sultan, city table Astana
        ("continents-PE", "South America"),
        ("continents-AU", "Oceania"),
        ("continents-FR", "Europe"),
        ("currencies-JP", "Yen"),
        ("currencies-JP", "JPY"),
        ("currencies-DE", "Euro"),
        ("currencies-CN", "Renminbi"),
        ("element_symbols-Fe", "Fe"),
        ("element_names-W", "Tungsten"),
        ("element_names-Fe", "iron"),
        ("element_names-Al", "Aluminium"),
        ("element_names-Al", "Aluminum"),
        ("element_names-S", "Sulphur"),
        ("atomic_numbers-C", "6"),
        ("atomic_numbers-Au", "79"),
        ("atomic_numbers-Og", "118"),
    ],
)
def test_spot_facts(by_id: dict[str, dict], qid: str, answer: str) -> None:
    assert _accepts(by_id[qid], answer), by_id[qid]


def test_spot_questions(by_id: dict[str, dict]) -> None:
    assert by_id["capitals-FR"]["question"] == "What is the capital of France?"
    assert by_id["capitals-US"]["question"] == "What is the capital of the United States?"
    assert by_id["element_symbols-Fe"]["question"] == "What is the chemical symbol of iron?"
    assert by_id["element_names-W"]["question"] == "Which chemical element has the symbol W?"
    assert by_id["atomic_numbers-C"]["question"] == "What is the atomic number of carbon?"
    assert by_id["continents-PE"]["question"] == "On which continent is Peru?"


def test_wrong_answers_are_not_accepted(by_id: dict[str, dict]) -> None:
    assert not _accepts(by_id["capitals-AU"], "Sydney")
    assert not _accepts(by_id["continents-PE"], "North America")
    assert not _accepts(by_id["element_symbols-Fe"], "Ir")
    assert not _accepts(by_id["atomic_numbers-C"], "12")
    # Alternate names are not taken wholesale: no IATA codes, no other languages.
    assert not _accepts(by_id["capitals-DE"], "BER")
    assert not _accepts(by_id["capitals-IT"], "Roma")


def test_element_numbers_match_their_symbols(builtin: list[dict]) -> None:
    numbers = {
        r["meta"]["symbol"]: r["meta"]["atomic_number"] for r in _domain(builtin, "atomic_numbers")
    }
    assert sorted(numbers.values()) == list(range(1, 119))
    assert {"H": 1, "He": 2, "O": 8, "Na": 11, "U": 92}.items() <= numbers.items()
    assert "n" not in numbers  # periodictable's neutron is not an element


def test_city_questions(builtin: list[dict]) -> None:
    cities = {r["meta"]["city"]: r for r in _domain(builtin, "city_country")}
    assert _accepts(cities["Osaka"], "Japan")
    assert _accepts(cities["Chicago"], "USA")
    assert _accepts(cities["London"], "United Kingdom")
    assert cities["Osaka"]["question"] == "In which country is the city of Osaka?"
    assert cities["Osaka"]["id"] == f"city_country-{cities['Osaka']['meta']['geonameid']}"
    # Ambiguous across countries (India/Pakistan, Spain/Venezuela), named after the country,
    # or containing the country's name: all skipped.
    skipped = ("Hyderabad", "Valencia", "Singapore", "Hong Kong", "Mexico City", "Kuwait City")
    assert not set(skipped) & set(cities)
    per_country = Counter(r["meta"]["country_iso"] for r in cities.values())
    assert max(per_country.values()) <= CITIES_PER_COUNTRY
    assert len(per_country) >= 80


def test_arithmetic_answers_recompute(builtin: list[dict]) -> None:
    ops = {"+": operator.add, "-": operator.sub, "*": operator.mul}
    words = {"+": "+", "-": "-", "times": "*"}
    seen = set()
    for record in _domain(builtin, "arithmetic"):
        meta = record["meta"]
        a, b, op = meta["a"], meta["b"], meta["op"]
        assert record["aliases"] == [str(ops[op](a, b))]
        # The question text says the same thing as meta.
        match = re.fullmatch(r"What is (\d+) (\+|-|times) (\d+)\?", record["question"])
        assert match, record["question"]
        assert (int(match[1]), words[match[2]], int(match[3])) == (a, op, b)
        if op == "*":
            assert 2 <= a <= 99 and 2 <= b <= 9
        else:
            assert 10 <= a <= 99 and 10 <= b <= 99
        if op == "-":
            assert a > b
        key = (op, a, b) if op == "-" else (op, *sorted((a, b)))
        assert key not in seen
        seen.add(key)
    assert Counter(op for op, *_ in seen) == {"+": 100, "-": 100, "*": 100}


@pytest.mark.parametrize(
    ("name", "phrase"),
    [
        ("France", "France"),
        ("United States", "the United States"),
        ("The Netherlands", "the Netherlands"),
        ("Cayman Islands", "the Cayman Islands"),
        ("Democratic Republic of the Congo", "the Democratic Republic of the Congo"),
        ("Bahamas", "the Bahamas"),
        ("Saint Vincent and the Grenadines", "Saint Vincent and the Grenadines"),
    ],
)
def test_country_phrase(name: str, phrase: str) -> None:
    assert country_phrase(name) == phrase


# --------------------------------------------------------------------------- subsample


def _q(qid: str = "q1", **changes: object) -> dict:
    record = {
        "id": qid,
        "question": "What is 1 + 1?",
        "aliases": ["2"],
        "dataset": "toy",
        "meta": {"domain": "arithmetic"},
    }
    record.update(changes)
    return record


def _toy(sizes: dict[str, int]) -> list[dict]:
    """Records of several domains, interleaved so that original order is not domain order."""
    records = [_q(f"{d}-{i}", meta={"domain": d}) for d, n in sizes.items() for i in range(n)]
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
    records = [_q(f"q{i}") for i in range(n_records)]
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
    records = [_q(f"q{i}") for i in range(3)]
    with pytest.raises(InputError, match="cannot split 3 questions into 4 shards"):
        shard_records(records, 4)


@pytest.mark.parametrize("n_shards", [0, -1])
def test_non_positive_shards(n_shards: int) -> None:
    with pytest.raises(ValueError, match=rf"3 questions into {n_shards} shards"):
        shard_records([_q(f"q{i}") for i in range(3)], n_shards)


def test_dataset_source_is_checked_with_its_config_key(tmp_path):
    from truthmap.datasets import check_source

    check_source("datasets.builtin.source", "builtin")
    with pytest.raises(InputError, match=r"'datasets\.mine\.source'"):
        check_source("datasets.mine.source", str(tmp_path / "nope.jsonl"))
