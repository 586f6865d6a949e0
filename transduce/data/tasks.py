"""Built-in demo task: normalise dates written in many languages to ISO 8601.

A source is a random date rendered by Babel (CLDR data) in a random locale and format,
e.g. ``"Σάββατο 1 Φεβρουαρίου 1975"`` or ``"1/2/75"``; its target is ``"1975-02-01"``.

The task is well defined by construction: no source string can come from two dates.
Every pattern in use obeys three rules, checked when the format table is built:

* the day comes before the year, and a numeric month sits between them (``d``, ``M``,
  ``y``), so the numbers of any string read the same way whatever pattern made it.
  This drops en ``M/d/yy``, which would make "1/2/75" mean both 2 January (en) and
  1 February (es, el);
* no two fields touch (``dMy`` would make "1275" ambiguous), and two-digit years
  are used only while the date range spans under 100 years;
* a month name (any width used) means one month in every locale used; some locale
  sets break this (pl "listopad" is November, hr "listopad" October) and are refused.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache
from itertools import pairwise

from babel import Locale
from babel.dates import DateTimePattern, format_date, parse_pattern, tokenize_pattern

DEFAULT_LOCALES = ("en", "de", "fr", "es", "el")
CLDR_FORMATS = ("full", "long", "medium", "short")
# Resolved per locale, so "yMMMEd" is "E, MMM d, y" in en and "E, d. MMM y" in de.
SKELETONS = ("yMMMEd", "yMEd", "yMd")
CUSTOM_PATTERNS = ("d MMMM y", "EEE d MMM y", "dd.MM.y")

_ALLOWED_FIELDS = frozenset("yMLdE")
_READING_ORDER = ["d", "M", "y"]


@dataclass(frozen=True)
class _DateFormat:
    locale: str
    spec: str  # a CLDR format name ("full", ...) or an LDML pattern
    pattern: DateTimePattern


@cache
def _locale(code: str) -> Locale:
    return Locale.parse(code)


def _fields(pattern: str) -> list[tuple[str, int]]:
    return [value for kind, value in tokenize_pattern(pattern) if kind == "field"]


def _is_unambiguous(pattern: str, two_digit_years: bool) -> bool:
    """Whether ``pattern`` obeys the reading rules in the module docstring."""
    tokens = tokenize_pattern(pattern)
    if any(a[0] == b[0] == "field" for a, b in pairwise(tokens)):
        return False
    fields = _fields(pattern)
    letters = {char for char, _ in fields}
    if not letters <= _ALLOWED_FIELDS or not {"d", "y"} <= letters or not letters & {"M", "L"}:
        return False
    if any(char in "ML" and count > 4 for char, count in fields):
        return False  # narrow month names ("J") repeat within a locale
    if not two_digit_years and ("y", 2) in fields:
        return False
    order = [char.replace("L", "M") for char, _ in fields if char in "dMLy"]
    if any(char in "ML" and count <= 2 for char, count in fields):
        return order == _READING_ORDER  # numeric month: day, month, year
    return order.count("M") == 1 and [char for char in order if char != "M"] == ["d", "y"]


def _candidates(locale: Locale) -> list[tuple[str, str]]:
    """(spec, resolved pattern) pairs for one locale, first spelling of each pattern kept."""
    found = [(name, locale.date_formats[name].pattern) for name in CLDR_FORMATS]
    skeletons = locale.datetime_skeletons
    found += [(skeletons[s].pattern,) * 2 for s in SKELETONS if s in skeletons]
    found += [(pattern, pattern) for pattern in CUSTOM_PATTERNS]
    seen: set[str] = set()
    unique = []
    for spec, pattern in found:
        if pattern not in seen:
            seen.add(pattern)
            unique.append((spec, pattern))
    return unique


def _check_month_names(formats: list[_DateFormat]) -> None:
    """Raise if one rendered month name stands for two months across ``formats``."""
    owner: dict[str, tuple[int, str]] = {}
    for fmt in formats:
        for char, count in _fields(fmt.pattern.pattern):
            if char not in "ML" or count < 3:
                continue
            for month in range(1, 13):
                name = format_date(date(2000, month, 1), char * count, locale=_locale(fmt.locale))
                month0, locale0 = owner.setdefault(name, (month, fmt.locale))
                if month0 != month:
                    raise ValueError(
                        f"month name {name!r} is month {month0} in {locale0!r} but month "
                        f"{month} in {fmt.locale!r}; dates would be ambiguous, drop a locale"
                    )


@lru_cache(maxsize=32)
def _format_table(locales: tuple[str, ...], two_digit_years: bool) -> tuple[_DateFormat, ...]:
    if not locales:
        raise ValueError("locales must not be empty")
    table = []
    for code in locales:
        kept = [
            _DateFormat(code, spec, parse_pattern(pattern))
            for spec, pattern in _candidates(_locale(code))
            if _is_unambiguous(pattern, two_digit_years)
        ]
        if not kept:
            raise ValueError(f"locale {code!r} has no unambiguous date format")
        table += kept
    _check_month_names(table)
    return tuple(table)


def date_formats(
    locales: Sequence[str] = DEFAULT_LOCALES, two_digit_years: bool = True
) -> list[tuple[str, str]]:
    """The (locale, CLDR format name or LDML pattern) pairs the date task draws from."""
    return [(f.locale, f.spec) for f in _format_table(tuple(locales), two_digit_years)]


def _sample(
    n: int, seed: int, locales: Sequence[str], start: date, end: date
) -> list[tuple[str, str, _DateFormat]]:
    """(source, target, format) triples; see ``date_pairs``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if not 1000 <= start.year <= end.year or start > end:
        raise ValueError(f"need 1000-01-01 <= start <= end, got {start} and {end}")
    table = _format_table(tuple(locales), end.year - start.year < 100)
    by_locale: dict[str, list[_DateFormat]] = {}
    for fmt in table:
        by_locale.setdefault(fmt.locale, []).append(fmt)
    choices = list(by_locale.values())
    rng = random.Random(seed)
    lo, hi = start.toordinal(), end.toordinal()
    triples = []
    for _ in range(n):
        day = date.fromordinal(rng.randint(lo, hi))
        fmt = rng.choice(rng.choice(choices))  # uniform locale, then uniform format
        source = format_date(day, fmt.pattern, locale=_locale(fmt.locale))
        triples.append((source, day.isoformat(), fmt))
    return triples


def date_pairs(
    n: int,
    seed: int = 0,
    locales: Sequence[str] = DEFAULT_LOCALES,
    start: date = date(1950, 1, 1),
    end: date = date(2049, 12, 31),
) -> tuple[list[str], list[str]]:
    """``n`` (sources, targets): dates in [start, end] as Babel renders them, and ISO dates.

    Deterministic for a seed. Locale and format are drawn uniformly per pair, from
    ``date_formats(locales)``; sources keep Babel's text as is (case, accents, script).
    """
    triples = _sample(n, seed, locales, start, end)
    return [s for s, _, _ in triples], [t for _, t, _ in triples]
