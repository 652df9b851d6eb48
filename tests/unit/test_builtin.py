"""Tests for truthmap.builtin: the builtin factual QA set."""

from __future__ import annotations

import json
import operator
import re
from collections import Counter

import pytest

from truthmap.builtin import CITIES_PER_COUNTRY, DOMAINS, build_builtin, country_phrase
from truthmap.questions import validate_questions

SAFE_ID = re.compile(r"^[A-Za-z0-9_.+-]+$")


@pytest.fixture(scope="module")
def by_id(builtin: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in builtin}


def _domain(records: list[dict], domain: str) -> list[dict]:
    return [r for r in records if r["meta"]["domain"] == domain]


def _accepts(record: dict, answer: str) -> bool:
    return answer.casefold() in {a.casefold() for a in record["aliases"]}


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
