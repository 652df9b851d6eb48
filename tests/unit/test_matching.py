"""Tests for truthmap.matching: normalisation offsets, alias matching, numbers and find_span."""

from __future__ import annotations

import os
import random
import string
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from truthmap.matching import (
    AliasMatch,
    find_numbers,
    find_span,
    is_correct,
    match_alias,
    normalize,
    normalize_with_offsets,
    parse_number,
)

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ModuleNotFoundError:  # the property is also checked below on seeded random strings
    given = None


def matched(answer: str, aliases: list[str]) -> str | None:
    """The exact-answer text of the best match, read back from the original answer."""
    match = match_alias(answer, aliases)
    return None if match is None else answer[match.start : match.end]


def reference_normalize(text: str) -> str:
    """SQuAD-style normaliser written independently, valid for text without CJK or symbols
    that decompose into several words."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = "".join(" " if unicodedata.category(c)[0] in "PSZ" or c.isspace() else c for c in text)
    return " ".join(word for word in text.split() if word not in {"a", "an", "the"})


def check_offsets(text: str) -> None:
    normalized, offsets = normalize_with_offsets(text)
    assert normalized == normalize(text)
    assert len(offsets) == len(normalized)
    assert offsets == sorted(offsets)
    assert all(0 <= offset < len(text) for offset in offsets)
    assert normalized == normalized.strip() and "  " not in normalized
    for char, offset in zip(normalized, offsets):
        if char != " ":  # each kept character comes from the source character it points at
            source = unicodedata.normalize("NFKD", text[offset]).casefold()
            assert char in unicodedata.normalize("NFKD", source)


# ------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("São Tomé", "sao tome"),
        ("Guinea-Bissau", "guinea bissau"),
        ("  The   Hague!  ", "hague"),
        ("An apple, a pear and the plum", "apple pear and plum"),
        ("theatre Anthem", "theatre anthem"),
        ("İstanbul", "istanbul"),
        ("ZÜRICH", "zurich"),
        ("Straße", "strasse"),
        ("\ufb01sh", "fish"),  # the "fi" ligature
        ("Sa\u0303o Tome\u0301", "sao tome"),  # already decomposed input
        ("tab\tnew\nline", "tab new line"),
        ("", ""),
        ("The", ""),
        ("!!", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_normalize_punctuation_is_a_separator_on_both_sides() -> None:
    assert normalize("U.S.A.") == normalize("u s a")
    assert normalize("Guinea-Bissau") == normalize("guinea bissau")


def test_offsets_point_at_source_characters() -> None:
    assert normalize_with_offsets("São Tomé") == ("sao tome", list(range(8)))
    assert normalize_with_offsets("Guinea-Bissau")[1][6] == 6  # the space comes from "-"
    assert normalize_with_offsets("The Hague") == ("hague", [4, 5, 6, 7, 8])
    assert normalize_with_offsets("Straße") == ("strasse", [0, 1, 2, 3, 4, 4, 5])
    assert normalize_with_offsets("Sa\u0303o") == ("sao", [0, 1, 3])


def test_offsets_after_emoji_and_cjk() -> None:
    text = "🎉 答案是东京。"
    normalized, offsets = normalize_with_offsets(text)
    assert normalized == "答 案 是 东 京"  # ideographs are words of their own
    assert [text[o] for o, c in zip(offsets, normalized) if c != " "] == list("答案是东京")


# Characters chosen to exercise folding, articles, separators and multi-character folds.
_ALPHABET = string.ascii_letters[:8] + "thenTHEN" + "  -.,!'()" + "éÉüÜßİñ" + "\u0301🎉"


def test_offsets_property_on_seeded_random_strings() -> None:
    rng = random.Random(20241003)
    for _ in range(2000):
        check_offsets("".join(rng.choices(_ALPHABET, k=rng.randint(0, 30))))
    for _ in range(1000):  # any code point outside the surrogates
        codes = (rng.randint(0, 0x10FFFF) for _ in range(rng.randint(0, 20)))
        check_offsets("".join(chr(c) for c in codes if not 0xD800 <= c <= 0xDFFF))


def test_normalize_agrees_with_reference_on_random_strings() -> None:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.punctuation + "  \téüÖñ" + "the an a "
    for _ in range(2000):
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 40)))
        assert normalize(text) == reference_normalize(text), text


def test_span_of_random_substring_normalises_like_the_alias() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        answer = "".join(rng.choices(_ALPHABET, k=rng.randint(1, 30)))
        i, j = sorted(rng.sample(range(len(answer) + 1), 2))
        alias = answer[i:j]
        if parse_number(alias) is not None:
            continue
        match = match_alias(answer, [alias])
        if match is not None:
            assert normalize(answer[match.start : match.end]) == normalize(alias)


if given is not None:

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=40))
    def test_offsets_property_hypothesis(text: str) -> None:
        check_offsets(text)

else:

    @pytest.mark.skip(reason="hypothesis is not installed; seeded random test covers it")
    def test_offsets_property_hypothesis() -> None: ...


# ------------------------------------------------------------------------- text aliases


@pytest.mark.parametrize(
    ("answer", "alias", "expected"),
    [
        # accents, both ways, composed and decomposed
        ("The capital is São Tomé.", "Sao Tome", "São Tomé"),
        ("The capital is Sao Tome.", "São Tomé", "Sao Tome"),
        ("Sa\u0303o Tome\u0301.", "Sao Tome", "Sa\u0303o Tome\u0301"),
        # punctuation and hyphens
        ("The capital is Paris.", "Paris", "Paris"),
        ("It is Guinea-Bissau.", "Guinea Bissau", "Guinea-Bissau"),
        ("It is guinea bissau", "Guinea-Bissau", "guinea bissau"),
        ('He said "Paris"!', "Paris", "Paris"),
        ("It is Paris (France).", "Paris (France)", "Paris (France)"),
        # articles: the alias's own article stays in the span
        ("the capital is The Hague.", "The Hague", "The Hague"),
        ("the capital is The Hague.", "Hague", "Hague"),
        ("It is in Hague, I think.", "The Hague", "Hague"),
        ("He lives in the U.S.A. now", "U.S.A.", "U.S.A"),
        # case and unicode around the answer
        ("🎉🎉 The answer is Zürich!", "Zurich", "Zürich"),
        ("İSTANBUL, of course", "istanbul", "İSTANBUL"),
        ("Answer: İstanbul", "Istanbul", "İstanbul"),
        ("首都は東京です。", "東京", "東京"),
        ("The capital of Japan is 東京 (Tokyo).", "Tokyo", "Tokyo"),
        ("Die Straße", "strasse", "Straße"),
    ],
)
def test_text_alias_span(answer: str, alias: str, expected: str) -> None:
    match = match_alias(answer, [alias])
    assert match is not None
    assert match.kind == "text" and match.alias == alias
    assert answer[match.start : match.end] == expected


@pytest.mark.parametrize(
    ("answer", "alias"),
    [
        ("Romeo and Juliet", "Rome"),
        ("It is Nigeria.", "Niger"),
        ("It is Niger.", "Nigeria"),
        ("the capital is Paris", "Lyon"),
        ("Parisian cafes", "Paris"),
    ],
)
def test_text_alias_needs_word_boundaries(answer: str, alias: str) -> None:
    assert match_alias(answer, [alias]) is None
    assert not is_correct(answer, [alias])


def test_niger_and_nigeria_each_find_their_own_word() -> None:
    answer = "Not Nigeria but Niger."
    assert matched(answer, ["Niger"]) == "Niger"
    assert match_alias(answer, ["Niger"]).start == 16
    assert match_alias(answer, ["Nigeria"]).start == 4


def test_earliest_match_wins_then_longest() -> None:
    answer = "New York is big; York is small"
    assert matched(answer, ["York", "New York"]) == "New York"
    assert matched("York and New York", ["New York", "York"]) == "York"
    tie = match_alias("New York City", ["New", "New York"])
    assert tie == AliasMatch(alias="New York", start=0, end=8, kind="text")


def test_equal_spans_keep_the_first_alias_given() -> None:
    assert match_alias("Paris", ["paris", "PARIS"]).alias == "paris"


def test_a_later_alias_can_match_when_earlier_ones_do_not() -> None:
    assert match_alias("I think it is Lyon", ["Paris", "Lyon"]).alias == "Lyon"


# ------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42.0),
        (" 42 ", 42.0),
        ("-7", -7.0),
        ("\u22127", -7.0),
        ("+3", 3.0),
        ("3.5", 3.5),
        ("0.25", 0.25),
        (".5", 0.5),
        ("1,234", 1234.0),
        ("1,234,567.5", 1234567.5),
        ("zero", 0.0),
        ("seventeen", 17.0),
        ("forty-two", 42.0),
        ("Forty Two", 42.0),
        ("ninety-nine", 99.0),
        ("1.5 million", 1.5e6),
        ("two hundred thousand", 2e5),
    ],
)
def test_parse_number(text: str, value: float) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize(
    "text",
    ["", "   ", "abc", "42 apples", "1 234", "1,23", "A4", "4.2.1", "42.", "forty-two-two", "Rome"],
)
def test_parse_number_rejects(text: str) -> None:
    assert parse_number(text) is None


def test_find_numbers_values_and_spans() -> None:
    text = "17 + 25 = 42; A4, 3.5x, 42nd; 1,234 and -7 or forty two."
    found = find_numbers(text)
    assert [value for value, _, _ in found] == [17, 25, 42, 1234, -7, 42]
    assert [text[start:end] for _, start, end in found] == [
        "17", "25", "42", "1,234", "-7", "forty two",
    ]


def test_find_numbers_ranges_and_sentence_end() -> None:
    assert find_numbers("1990-1995.") == [(1990.0, 0, 4), (1995.0, 5, 9)]
    assert find_numbers("") == []


@pytest.mark.parametrize(
    ("answer", "alias", "expected"),
    [
        ("The answer is 42.0.", "42", "42.0"),
        ("The answer is 42.", "42.0", "42"),
        ("It costs 1,234 dollars", "1234", "1,234"),
        ("It costs 1234 dollars", "1,234", "1234"),
        ("The answer is forty-two.", "42", "forty-two"),
        ("Forty two, I believe", "42", "Forty two"),
        ("The answer is 42", "forty-two", "42"),
        ("17 + 25 = 42", "42", "42"),
        ("17 + 25 = 42", "25", "25"),
        ("It was -7 degrees", "-7", "-7"),
        ("It was \u22127 degrees", "-7", "\u22127"),
        ("About 1.5 million people", "1500000", "1.5 million"),
        ("Agent 007", "7", "007"),
        ("🎉 It is 56!", "56", "56"),
    ],
)
def test_numeric_alias_span(answer: str, alias: str, expected: str) -> None:
    match = match_alias(answer, [alias])
    assert match is not None and match.kind == "number"
    assert answer[match.start : match.end] == expected


@pytest.mark.parametrize(
    ("answer", "alias"),
    [
        ("The answer is 54.", "56"),
        ("There are 15 of them.", "5"),
        ("There are 150 of them.", "15"),
        ("Use A4 paper", "4"),
        ("It was -7 degrees", "7"),
        ("one hundred", "1"),
        ("It is 3.5 metres", "3"),
    ],
)
def test_numeric_alias_is_not_a_substring_match(answer: str, alias: str) -> None:
    assert match_alias(answer, [alias]) is None
    assert not is_correct(answer, [alias])


def test_numbers_and_text_aliases_compete_on_position() -> None:
    answer = "In 1969 Apollo 11 landed"
    assert match_alias(answer, ["Apollo 11", "1969"]).alias == "1969"
    assert match_alias(answer, ["Apollo 11", "11"]) == AliasMatch("Apollo 11", 8, 17, "text")


# ------------------------------------------------------------------------- empty and bad input


def test_empty_answer_and_empty_aliases() -> None:
    assert match_alias("", ["Paris"]) is None
    assert match_alias("Paris", []) is None
    assert match_alias("", []) is None
    assert not is_correct("", ["", "42"])


def test_aliases_that_normalise_to_nothing_are_ignored() -> None:
    assert match_alias("The answer is the!!", ["The", "!!", "", "   "]) is None
    assert matched("The answer is Paris", ["The", "Paris"]) == "Paris"


def test_bad_input_types_raise_clear_errors() -> None:
    with pytest.raises(TypeError, match="single str"):
        match_alias("Paris", "Paris")
    with pytest.raises(TypeError, match="every alias must be a str"):
        match_alias("Paris", ["Paris", None])
    with pytest.raises(TypeError, match="answer must be a str"):
        is_correct(None, ["Paris"])


def test_alias_match_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="start=3, end=3"):
        AliasMatch("x", 3, 3, "text")
    with pytest.raises(ValueError, match="'word'"):
        AliasMatch("x", 0, 1, "word")


# ------------------------------------------------------------------------- find_span


@pytest.mark.parametrize(
    ("haystack", "needle", "expected"),
    [
        ("I think Paris, France.", "Paris", "Paris"),  # exact
        ("I think Paris, France.", "paris", "Paris"),  # case-insensitive
        ("I think Paris, France.", " Paris, France. ", "Paris, France"),  # trimmed
        ("Rome, then Rome again", "Rome", "Rome"),
        ("The capital is São Tomé.", "sao tome", "São Tomé"),  # normalised
        ("It is Guinea-Bissau!", "guinea bissau", "Guinea-Bissau"),
        ("It is   the Hague", "The  Hague", "the Hague"),
        ("He said (Paris).", "(Paris)", "Paris"),
        ("It was -7 degrees", "-7", "-7"),
        ("🎉 答案是东京。", "东京", "东京"),
    ],
)
def test_find_span_finds(haystack: str, needle: str, expected: str) -> None:
    span = find_span(haystack, needle)
    assert span is not None
    assert haystack[span[0] : span[1]] == expected


def test_find_span_returns_the_earliest_occurrence() -> None:
    assert find_span("Rome, then Rome again", "Rome") == (0, 4)
    assert find_span("ROME then rome", "rome") == (10, 14)  # exact beats case-insensitive


@pytest.mark.parametrize(
    ("haystack", "needle"),
    [
        ("I think Paris", "Lyon"),
        ("I think Paris", ""),
        ("I think Paris", "   "),
        ("I think Paris", "The"),
        ("", "Paris"),
        ("Wow!!", "!!"),
    ],
)
def test_find_span_absent(haystack: str, needle: str) -> None:
    assert find_span(haystack, needle) is None


def test_find_span_exact_search_is_a_plain_substring_search() -> None:
    # Spec: an extracted answer is accepted when it is a substring of the generation.
    assert find_span("Romeo and Juliet", "Rome") == (0, 4)
    # ...but the normalised fallback respects word boundaries.
    assert find_span("Romeo and Juliet", "ROMÉ") is None


def test_module_imports_no_heavy_packages() -> None:
    code = (
        "import sys, truthmap.matching; "
        "print(sorted({'torch', 'transformers', 'snakemake'} & set(sys.modules)))"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "scripts")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert result.stdout.strip() == "[]"
