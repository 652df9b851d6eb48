"""Match free-text answers against gold aliases: does one occur, and where is the match?

An answer is correct when one of the gold aliases occurs in it:

* A **text** alias matches when its normalised form occurs in the normalised answer at word
  boundaries (so "Rome" is not found in "Romeo"). Normalisation folds accents (NFKD, combining
  marks dropped), case-folds, turns punctuation and symbols into spaces, drops the articles
  "a", "an", "the" as whole words and collapses whitespace. Each CJK ideograph and kana counts
  as a word of its own, since those scripts do not separate words with spaces.
* A **numeric** alias ("42", "-7", "3.5", "1,234", "forty-two", "1.5 million") matches a number
  of equal value in the answer ("42.0", "1234", "Forty two", "1,500,000"), never a substring of
  a longer number or token ("15" is not in "150", "4" is not in "A4").

The match also gives the exact answer's character span in the original answer text, found by
mapping the normalised match back through per-character offsets (:func:`normalize_with_offsets`).
Spans never start or end with whitespace or punctuation, except a bracket that closes one
opened inside the span and the sign of a number. Articles that the alias itself starts or ends
with are kept in the span ("The Hague", "U.S.A.") although the normalisation drops them.

Known limits of the normalisation (shared with SQuAD/TriviaQA evaluation): the article rule
also removes a lone "a" ("U.S.A." and "Vitamin A" normalise to "u s" and "vitamin"), and
scripts without spaces other than CJK (Thai, ...) are matched only on whole space-separated runs.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, get_args

__all__ = [
    "ARTICLES",
    "AliasMatch",
    "MatchKind",
    "find_numbers",
    "find_span",
    "is_correct",
    "match_alias",
    "normalize",
    "normalize_with_offsets",
    "parse_number",
]

MatchKind = Literal["text", "number"]

ARTICLES = frozenset({"a", "an", "the"})
"""English articles removed as whole words by :func:`normalize`."""


@dataclass(frozen=True)
class AliasMatch:
    """A gold alias found in an answer; ``answer[start:end]`` is the exact answer."""

    alias: str
    """The alias, exactly as given, that matched."""
    start: int
    """First character of the matched span in the original answer."""
    end: int
    """End of the matched span in the original answer (exclusive)."""
    kind: MatchKind
    """``"text"`` for a normalised word-boundary match, ``"number"`` for a numeric one."""

    def __post_init__(self) -> None:
        if self.kind not in get_args(MatchKind):
            raise ValueError(f"AliasMatch.kind must be 'text' or 'number', got {self.kind!r}")
        if not 0 <= self.start < self.end:
            raise ValueError(
                f"AliasMatch span must satisfy 0 <= start < end, got start={self.start}, "
                f"end={self.end} (alias {self.alias!r})"
            )


# --------------------------------------------------------------------------------------------
# Normalisation with offsets
# --------------------------------------------------------------------------------------------

_DROPPED_CATEGORIES = frozenset({"Mn", "Me", "Cf"})  # combining marks, zero-width format chars
_OWN_WORD_RANGES = (  # scripts written without spaces: each character is a word
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0x20000, 0x2FA1F),  # CJK extensions B.. and compatibility supplement
)


def _is_own_word(char: str) -> bool:
    code = ord(char)
    return any(low <= code <= high for low, high in _OWN_WORD_RANGES)


def _fold_decomposed(char: str) -> str:
    """Fold one already decomposed, case-folded character: '', a space, or characters."""
    category = unicodedata.category(char)
    if category in _DROPPED_CATEGORIES:
        return ""
    if char.isspace() or category[0] in "PSZ" or category == "Cc":
        return " "
    if _is_own_word(char):
        return f" {char} "
    return char


@lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    """Fold one source character; the result may be empty or longer ("ß" -> "ss")."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", char).casefold())
    return "".join(_fold_decomposed(c) for c in decomposed)


def _fold_with_offsets(text: str) -> tuple[str, list[int]]:
    """Fold every character of ``text``; separators become spaces, nothing is collapsed yet."""
    pieces: list[str] = []
    offsets: list[int] = []
    for index, char in enumerate(text):
        folded = _fold_char(char)
        pieces.append(folded)
        offsets.extend([index] * len(folded))
    return "".join(pieces), offsets


def normalize_with_offsets(text: str) -> tuple[str, list[int]]:
    """Normalise ``text`` for matching and map each normalised character to its source.

    Returns the normalised string and, for each of its characters, the index in ``text`` of the
    character it came from. Characters produced by one source character share its index; the
    single space between two words maps to the first separator after the earlier word. The
    offsets are therefore non-decreasing.
    """
    _require_str(text, "text")
    folded, folded_offsets = _fold_with_offsets(text)
    chars: list[str] = []
    offsets: list[int] = []
    gap_offset = 0
    for word in re.finditer(r"[^ ]+", folded):
        if word.group() in ARTICLES:
            continue
        if chars:
            chars.append(" ")
            offsets.append(gap_offset)
        chars.append(word.group())
        offsets.extend(folded_offsets[word.start() : word.end()])
        if word.end() < len(folded):
            gap_offset = folded_offsets[word.end()]
    return "".join(chars), offsets


def normalize(text: str) -> str:
    """Normalise ``text`` for matching: see :func:`normalize_with_offsets`."""
    return normalize_with_offsets(text)[0]


@lru_cache(maxsize=65536)
def _normalized_needle(needle: str) -> str:
    """Cached :func:`normalize` for aliases, which recur for every answer to a question."""
    return normalize(needle)


# --------------------------------------------------------------------------------------------
# Spans in the original text
# --------------------------------------------------------------------------------------------

_OPEN_TO_CLOSE = {"(": ")", "[": "]", "{": "}"}
_CLOSE_TO_OPEN = {close: open_ for open_, close in _OPEN_TO_CLOSE.items()}
_SIGNS = frozenset("+-\u2212")


def _is_edge_junk(char: str) -> bool:
    """Whitespace, punctuation or an invisible control/format character."""
    category = unicodedata.category(char)
    return char.isspace() or category[0] == "P" or category in ("Cc", "Cf")


def _bracket_depth(text: str, start: int, end: int, opener: str) -> int:
    """Openers minus closers of ``opener``'s kind in ``text[start:end]``."""
    segment = text[start:end]
    return segment.count(opener) - segment.count(_OPEN_TO_CLOSE[opener])


def _closing_index(text: str, start: int, end: int) -> int | None:
    """Index of the bracket closing the opener at ``text[start]``, searched before ``end``."""
    opener, closer = text[start], _OPEN_TO_CLOSE[text[start]]
    depth = 0
    for index in range(start, end):
        depth += (text[index] == opener) - (text[index] == closer)
        if depth == 0:
            return index
    return None


def _trim_start(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop one leading junk character (or a bracket pair around the whole span) if there is one."""
    char = text[start]
    if not _is_edge_junk(char):
        return start, end
    if char in _SIGNS and start + 1 < end and text[start + 1].isdigit():
        return start, end
    if char in _OPEN_TO_CLOSE:
        closing = _closing_index(text, start, end)
        if closing == end - 1:
            return start + 1, end - 1
        if closing is not None:
            return start, end
    return start + 1, end


def _trim_end(text: str, start: int, end: int) -> int:
    """Drop one trailing junk character unless it closes a bracket opened inside the span."""
    char = text[end - 1]
    if not _is_edge_junk(char):
        return end
    if char in _CLOSE_TO_OPEN and _bracket_depth(text, start, end - 1, _CLOSE_TO_OPEN[char]) > 0:
        return end
    return end - 1


def _tidy_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Trim whitespace and punctuation off both ends; None when nothing is left."""
    while start < end:
        new_start, new_end = _trim_start(text, start, end)
        if new_start < new_end:
            new_end = _trim_end(text, new_start, new_end)
        if (new_start, new_end) == (start, end):
            break
        start, end = new_start, new_end
    return (start, end) if start < end else None


def _extend_end(text: str, start: int, end: int) -> int:
    """Extend ``end`` over combining marks of its last character and over closing brackets
    that close brackets opened inside the span ("Paris (France" -> "Paris (France)")."""
    while end < len(text):
        char = text[end]
        if unicodedata.category(char)[0] == "M":
            end += 1
        elif char in _CLOSE_TO_OPEN and _bracket_depth(text, start, end, _CLOSE_TO_OPEN[char]) > 0:
            end += 1
        else:
            break
    return end


def _folded_words(text: str) -> list[tuple[str, int, int]]:
    """Words of the folded ``text`` (articles kept) as ``(word, first, last)`` source indices."""
    folded, offsets = _fold_with_offsets(text)
    return [
        (word.group(), offsets[word.start()], offsets[word.end() - 1])
        for word in re.finditer(r"[^ ]+", folded)
    ]


@lru_cache(maxsize=65536)
def _edge_articles(needle: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The articles a needle starts with and those it ends with ("The U.S.A." -> the / a)."""
    words = [word for word, _, _ in _folded_words(needle)]
    content = [index for index, word in enumerate(words) if word not in ARTICLES]
    if not content:
        return (), ()
    return tuple(words[: content[0]]), tuple(words[content[-1] + 1 :])


def _extend_over_articles(text: str, start: int, last: int, needle: str) -> tuple[int, int]:
    """Widen the span of source indices ``start..last`` over the articles that the needle
    itself starts or ends with, when the text has the same articles right there.

    Articles are dropped by the normalisation, so alias "The Hague" matches "The Hague" only
    from "Hague"; the exact answer should still read "The Hague" (and "U.S.A." not "U.S").
    """
    leading, trailing = _edge_articles(needle)
    if not (leading or trailing):
        return start, last
    words = _folded_words(text)
    first_word = next(k for k, (_, first, _) in enumerate(words) if first >= start)
    last_word = max(k for k, (_, _, end) in enumerate(words) if end <= last)
    for article in reversed(leading):
        if first_word == 0 or words[first_word - 1][0] != article:
            break
        first_word -= 1
    for article in trailing:
        if last_word + 1 == len(words) or words[last_word + 1][0] != article:
            break
        last_word += 1
    return min(start, words[first_word][1]), max(last, words[last_word][2])


def _find_at_word_boundary(haystack: str, needle: str) -> int | None:
    """Index of the first occurrence of ``needle`` in the normalised ``haystack`` that starts
    and ends at a word boundary (string edge or a space)."""
    position = haystack.find(needle)
    while position != -1:
        after = position + len(needle)
        if (position == 0 or haystack[position - 1] == " ") and (
            after == len(haystack) or haystack[after] == " "
        ):
            return position
        position = haystack.find(needle, position + 1)
    return None


def _normalized_span(
    text: str, normalized: str, offsets: list[int], needle: str
) -> tuple[int, int] | None:
    """Span in ``text`` of the first word-boundary match of the normalised ``needle``."""
    target = _normalized_needle(needle)
    if not target:
        return None
    position = _find_at_word_boundary(normalized, target)
    if position is None:
        return None
    start, last = _extend_over_articles(
        text, offsets[position], offsets[position + len(target) - 1], needle
    )
    return _tidy_span(text, start, _extend_end(text, start, last + 1))


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------

_UNIT_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS_WORDS = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_NUMBER_WORDS = {word: value for value, word in enumerate(_UNIT_WORDS)} | {
    word: 10 * value for value, word in enumerate(_TENS_WORDS, start=2)
}
_SCALE_WORDS = {
    "hundred": 100,
    "thousand": 10**3,
    "million": 10**6,
    "billion": 10**9,
    "trillion": 10**12,
}


def _alternation(words: Sequence[str]) -> str:
    """Regex alternation trying longer words first ("seventeen" before "seven")."""
    return "|".join(sorted(words, key=len, reverse=True))


_DIGITS_PATTERN = r"[+\-\u2212]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
_WORDS_PATTERN = (
    rf"(?:{_alternation(_TENS_WORDS)})(?:(?:-|\s+)(?:{_alternation(_UNIT_WORDS[1:10])}))?"
    rf"|{_alternation(_UNIT_WORDS)}"
)
_NUMBER_RE = re.compile(
    rf"(?<![\w.])(?:(?P<digits>{_DIGITS_PATTERN})|(?P<words>{_WORDS_PATTERN}))"
    rf"(?P<scale>(?:\s+(?:{_alternation(list(_SCALE_WORDS))}))*)"
    r"(?!\w|\.\d)",
    re.IGNORECASE,
)


def _number_value(match: re.Match[str]) -> float:
    """Value of a :data:`_NUMBER_RE` match."""
    if match["digits"]:
        value = float(match["digits"].replace(",", "").replace("\u2212", "-"))
    else:
        value = float(sum(_NUMBER_WORDS[w] for w in re.split(r"[-\s]+", match["words"].casefold())))
    for scale in match["scale"].split():
        value *= _SCALE_WORDS[scale.casefold()]
    return value


def parse_number(text: str) -> float | None:
    """The value of ``text`` if the whole of it (surrounding whitespace aside) is one number.

    Accepts optionally signed integers and decimals with optional thousands commas ("-7",
    "3.5", "1,234", "−7" with a Unicode minus), English number words from zero to ninety-nine
    ("forty-two", "Forty two"), either followed by scale words ("1.5 million", "two hundred").
    """
    _require_str(text, "text")
    match = _NUMBER_RE.fullmatch(text.strip())
    return _number_value(match) if match else None


def find_numbers(text: str) -> list[tuple[float, int, int]]:
    """All numbers in ``text`` as ``(value, start, end)``, in order of position.

    A number is one that :func:`parse_number` accepts and that is not part of a larger
    alphanumeric token: "A4", "42nd" and "3.5x" contain none.
    """
    _require_str(text, "text")
    return [(_number_value(m), m.start(), m.end()) for m in _NUMBER_RE.finditer(text)]


def _same_number(a: float, b: float) -> bool:
    """Equal up to a relative tolerance of 1e-9 (absolute below 1)."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


# --------------------------------------------------------------------------------------------
# Public matching API
# --------------------------------------------------------------------------------------------


def _require_str(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}: {value!r}")


def _require_aliases(aliases: Sequence[str]) -> None:
    if isinstance(aliases, str):
        raise TypeError(f"aliases must be a sequence of str, not a single str: {aliases!r}")
    for alias in aliases:
        _require_str(alias, "every alias")


def _match_one(
    answer: str,
    normalized: str,
    offsets: list[int],
    numbers: list[tuple[float, int, int]],
    alias: str,
) -> AliasMatch | None:
    """Match one alias: by value when it is a number, else by normalised text."""
    value = parse_number(alias)
    if value is not None:
        spans = [(start, end) for number, start, end in numbers if _same_number(number, value)]
        return AliasMatch(alias, *spans[0], kind="number") if spans else None
    span = _normalized_span(answer, normalized, offsets, alias)
    return AliasMatch(alias, *span, kind="text") if span else None


def match_alias(answer: str, aliases: Sequence[str]) -> AliasMatch | None:
    """The alias found earliest in ``answer`` (ties: the longest span, then the first given).

    Numeric aliases match numbers of the same value; other aliases match their normalised text
    at word boundaries. Aliases that normalise to nothing ("The", "!!") never match.
    """
    _require_str(answer, "answer")
    _require_aliases(aliases)
    normalized, offsets = normalize_with_offsets(answer)
    numbers = find_numbers(answer)
    best: AliasMatch | None = None
    for alias in aliases:
        match = _match_one(answer, normalized, offsets, numbers, alias)
        if match and (best is None or _rank(match) < _rank(best)):
            best = match
    return best


def _rank(match: AliasMatch) -> tuple[int, int]:
    return match.start, match.start - match.end


def is_correct(answer: str, aliases: Sequence[str]) -> bool:
    """Whether any alias matches ``answer`` (see :func:`match_alias`)."""
    return match_alias(answer, aliases) is not None


def find_span(haystack: str, needle: str) -> tuple[int, int] | None:
    """Span of the earliest occurrence of ``needle`` in ``haystack``, or None.

    Used to accept an LLM-extracted short answer only if it occurs in the generated text. Tries,
    in order: an exact substring search, a case-insensitive one, and the normalised word-boundary
    search used for aliases. Surrounding whitespace of the needle is ignored, and the span is
    trimmed of whitespace and punctuation at both ends.
    """
    _require_str(haystack, "haystack")
    _require_str(needle, "needle")
    target = needle.strip()
    if not target:
        return None
    for pattern in (re.escape(target), f"(?i:{re.escape(target)})"):
        hit = re.search(pattern, haystack)
        if hit:
            span = _tidy_span(haystack, hit.start(), _extend_end(haystack, *hit.span()))
            if span:
                return span
    normalized, offsets = normalize_with_offsets(haystack)
    return _normalized_span(haystack, normalized, offsets, target)
