import re
import time
from collections import defaultdict
from datetime import date, timedelta

import pytest
from babel import Locale
from babel.dates import format_date, tokenize_pattern

from transduce.data.tasks import (
    CLDR_FORMATS,
    DEFAULT_LOCALES,
    _format_table,
    _is_unambiguous,
    _sample,
    date_formats,
    date_pairs,
)

START, END = date(1950, 1, 1), date(2049, 12, 31)


def _names(locale: Locale, char: str, count: int) -> dict[int, str]:
    """CLDR month (M/L) or weekday (E, 0 = Monday) names for one pattern field."""
    width = "wide" if count == 4 else "abbreviated"
    if char == "E":
        return dict(locale.days["format"][width])
    return dict(locale.months["format" if char == "M" else "stand-alone"][width])


def _parse(source: str, pattern: str, locale: Locale) -> date:
    """Read ``source`` back by its own pattern from CLDR name data, not Babel's formatter."""
    regex, names = [], {}
    for kind, value in tokenize_pattern(pattern):
        char, count = value if kind == "field" else ("", 0)
        if kind == "chars":
            regex.append(re.escape(value))
        elif char == "d":
            regex.append(r"(?P<d>\d{1,2})")
        elif char == "y":
            regex.append(r"(?P<yy>\d{2})" if count == 2 else r"(?P<y>\d{4})")
        elif char in "ML" and count <= 2:
            regex.append(r"(?P<M>\d{1,2})")
        else:  # month or weekday name
            group = "E" if char == "E" else "name"
            names[group] = _names(locale, char, count)
            alternatives = "|".join(re.escape(n) for n in names[group].values())
            regex.append(f"(?P<{group}>{alternatives})")
    match = re.fullmatch("".join(regex), source)
    assert match, (source, pattern)
    found = match.groupdict()
    if found.get("yy"):
        year = int(found["yy"]) + (1900 if int(found["yy"]) >= 50 else 2000)  # 1950-2049
    else:
        year = int(found["y"])
    if found.get("M"):
        month = int(found["M"])
    else:
        (month,) = [m for m, name in names["name"].items() if name == found["name"]]
    day = date(year, month, int(found["d"]))
    if found.get("E"):
        assert names["E"][day.weekday()] == found["E"], (source, day)
    return day


def test_same_seed_same_pairs():
    assert date_pairs(300, seed=7) == date_pairs(300, seed=7)


def test_different_seeds_differ():
    assert date_pairs(300, seed=1) != date_pairs(300, seed=2)


def test_sample_covers_every_locale_and_format():
    triples = _sample(6000, 0, DEFAULT_LOCALES, START, END)
    used = {(fmt.locale, fmt.spec) for _, _, fmt in triples}
    assert used == set(date_formats(DEFAULT_LOCALES))
    assert {locale for locale, _ in used} == set(DEFAULT_LOCALES)
    assert {spec for _, spec in used} >= set(CLDR_FORMATS)
    # custom (non-CLDR-name) patterns occur too
    assert len({spec for _, spec in used} - set(CLDR_FORMATS)) >= 3


def test_targets_are_iso_dates_in_range():
    start, end = date(1999, 12, 1), date(2000, 3, 1)
    sources, targets = date_pairs(2000, seed=3, start=start, end=end)
    assert len(sources) == len(targets) == 2000
    for target in targets:
        day = date.fromisoformat(target)
        assert start <= day <= end and day.isoformat() == target


def test_source_parses_back_to_target():
    for source, target, fmt in _sample(3000, 11, DEFAULT_LOCALES, START, END):
        locale = Locale.parse(fmt.locale)
        pattern = fmt.pattern.pattern
        day = date.fromisoformat(target)
        assert _parse(source, pattern, locale) == day, (source, fmt)
        assert format_date(day, fmt.spec, locale=locale) == source


def test_text_is_kept_as_babel_renders_it():
    sources, _ = date_pairs(2000, seed=5)
    assert any(re.search("[\u0370-\u03ff]", s) for s in sources)  # Greek
    assert any(re.search("[A-Z]", s) for s in sources)  # capitals kept
    assert any("é" in s or "ü" in s or "ä" in s for s in sources)  # accents kept


def test_no_source_has_two_targets_in_a_large_sample():
    sources, targets = date_pairs(200_000, seed=0)
    seen: dict[str, set[str]] = defaultdict(set)
    for source, target in zip(sources, targets, strict=True):
        seen[source].add(target)
    clashes = {s: t for s, t in seen.items() if len(t) > 1}
    assert not clashes
    assert len(seen) > 100_000  # the sample really is large and varied


def test_no_source_has_two_targets_exhaustively_2001_to_2012():
    # Two-digit years 01-12 are also valid days and months, so any format that read its
    # numbers in another order than the others would collide somewhere in these years.
    # (Every date 1950-2049 in every format was also checked once: 1.24M distinct sources,
    # no clash, but it takes ~15 s.)
    days = [date(2001, 1, 1) + timedelta(i) for i in range(4383)]
    assert days[-1] == date(2012, 12, 31)
    owner: dict[str, date] = {}
    for fmt in _format_table(DEFAULT_LOCALES, True):
        locale = Locale.parse(fmt.locale)
        for day in days:
            source = format_date(day, fmt.pattern, locale=locale)
            assert owner.setdefault(source, day) == day, (source, fmt, day)


def test_month_first_numeric_formats_are_dropped():
    assert not _is_unambiguous("M/d/yy", True)  # en short: "1/2/75" would be 2 January
    assert not _is_unambiguous("y-MM-dd", True)  # ISO itself: too trivial, other order
    assert not _is_unambiguous("dMy", True)  # touching fields
    assert not _is_unambiguous("MMMMM d, y", True)  # narrow month "J"
    assert _is_unambiguous("d/M/yy", True)
    assert not _is_unambiguous("d/M/yy", False)
    assert _is_unambiguous("MMMM d, y", True)
    formats = dict.fromkeys(date_formats(["en"]))
    assert ("en", "short") not in formats and ("en", "long") in formats


def test_long_range_drops_two_digit_years():
    # Over 100 years or more, "75" could be 1975 or 2075: no two-digit years then.
    patterns = [fmt.pattern.pattern for fmt in _format_table(DEFAULT_LOCALES, False)]
    assert patterns and not any(re.search(r"(?<!y)yy(?!y)", p) for p in patterns)
    sources, targets = date_pairs(20_000, seed=1, start=date(1900, 1, 1), end=date(2099, 12, 31))
    seen: dict[str, set[str]] = defaultdict(set)
    for source, target in zip(sources, targets, strict=True):
        seen[source].add(target)
    assert all(len(t) == 1 for t in seen.values())


def test_clashing_month_names_are_refused():
    # pl "listopad" is November, hr "listopad" October.
    with pytest.raises(ValueError, match="listopad"):
        date_formats(["pl", "hr"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": -1}, "n must be"),
        ({"n": 1, "start": date(2000, 1, 2), "end": date(2000, 1, 1)}, "start <= end"),
        ({"n": 1, "start": date(999, 1, 1)}, "start <= end"),
        ({"n": 1, "locales": ()}, "locales"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        date_pairs(**kwargs)


def test_fifty_thousand_pairs_are_quick():
    began = time.perf_counter()
    sources, _ = date_pairs(50_000, seed=2)
    assert len(sources) == 50_000
    assert time.perf_counter() - began < 5.0
