"""Corpus readers: Anki/Tatoeba TSV files and line-aligned file pairs, strictly validated.

Every problem with the input is reported as a `DataError` whose message reads
``path:line: problem``, with a 1-based physical line number. Files are read as bytes and
decoded line by line, so invalid UTF-8 names its line instead of failing the whole file.

A bad line is either fatal (``on_bad_line="error"``, the default) or dropped and counted
(``on_bad_line="skip"``); in both cases ``report.lines == report.kept + skipped``, so
nothing disappears without a trace.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import BinaryIO, TypeVar

from transduce.data.lines import (
    _BadLine,
    _decode,
    _numbered_lines,
    _open_bytes,
)
from transduce.errors import DataError  # defined there; still importable from here

T = TypeVar("T")  # one raw line, or an aligned pair of them
A = TypeVar("A")  # the two fields a line parses into
B = TypeVar("B")
logger = logging.getLogger("transduce.data")

POLICIES = ("error", "skip")
MAX_EXAMPLES = 5

PathLike = str | os.PathLike[str]


# --------------------------------------------------------------------------- reports


@dataclass
class ReadReport:
    """What a reader looked at, kept and skipped (by kind, with the first few examples)."""

    path: str
    lines: int = 0
    kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[int, str]] = field(default_factory=list)
    unit: str = "lines"  # what `lines` counts ("conversations" for chatterbot files)

    @property
    def n_skipped(self) -> int:
        """Total number of skipped lines."""
        return sum(self.skipped.values())

    def skip(self, line: int, kind: str, problem: str) -> None:
        """Count a dropped line under `kind`; remember it if it is among the first few."""
        self.skipped[kind] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append((line, problem))

    def skipped_text(self) -> str:
        """E.g. ``"no tab: 1, empty target: 1; first at line 17"``."""
        kinds = ", ".join(f"{kind}: {count:,}" for kind, count in self.skipped.most_common())
        first = f"; first at line {self.examples[0][0]}" if self.examples else ""
        return kinds + first

    def summary(self) -> str:
        """One line for the log, e.g. ``"ell.txt: kept 9,998 of 10,000 lines; skipped 2 (...)"``."""
        text = f"{self.path}: kept {self.kept:,} of {self.lines:,} {self.unit}"
        if self.skipped:
            text += f"; skipped {self.n_skipped:,} ({self.skipped_text()})"
        return text


@dataclass
class Parallel:
    """Aligned source and target texts, with the report of how they were read."""

    src: list[str]
    tgt: list[str]
    report: ReadReport

    def __post_init__(self) -> None:
        if len(self.src) != len(self.tgt):
            raise ValueError(f"src has {len(self.src)} texts but tgt has {len(self.tgt)}")

    def __len__(self) -> int:
        return len(self.src)


# --------------------------------------------------------------------------- policy


def _check_options(on_bad_line: str, limit: int | None) -> None:
    if on_bad_line not in POLICIES:
        allowed = ", ".join(repr(p) for p in POLICIES)
        raise ValueError(f"on_bad_line must be one of {allowed}; got {on_bad_line!r}")
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None; got {limit!r}")


def _reject(bad: _BadLine, path: PathLike, number: int, report: ReadReport, policy: str) -> None:
    """Apply the policy to a bad line: raise at once, or count it and go on."""
    if policy == "error":
        raise DataError(bad.path or path, number, bad.message) from None
    report.skip(number, bad.kind, bad.message)


def _finish(report: ReadReport, path: PathLike) -> None:
    """Refuse an empty result; log the skips once."""
    if report.lines == 0:
        raise DataError(path, None, "empty file")
    if report.kept == 0:
        raise DataError(path, None, f"every line was skipped ({report.skipped_text()})")
    if report.skipped:
        logger.warning("%s", report.summary())


def _non_empty(source: str, target: str) -> tuple[str, str]:
    source, target = source.strip(), target.strip()
    if not source:
        raise _BadLine("empty source")
    if not target:
        raise _BadLine("empty target")
    return source, target


# --------------------------------------------------------------------------- readers


def _check_columns(src_col: int, tgt_col: int, min_columns: int, max_columns: int) -> None:
    if not 1 <= min_columns <= max_columns:
        raise ValueError(f"need 1 <= min_columns <= max_columns; got {min_columns}, {max_columns}")
    for name, col in (("src_col", src_col), ("tgt_col", tgt_col)):
        if not 0 <= col < min_columns:
            raise ValueError(f"{name}={col} must be in [0, min_columns={min_columns})")
    if src_col == tgt_col:
        raise ValueError(f"src_col and tgt_col must differ; both are {src_col}")


def _split_tsv(
    text: str, src_col: int, tgt_col: int, min_columns: int, max_columns: int
) -> tuple[str, str]:
    """Pick (source, target) out of one TSV line, or raise _BadLine saying what is wrong."""
    if "\t" not in text and not text.strip():
        raise _BadLine("blank line")
    fields = text.split("\t")
    span = f"{min_columns}" if min_columns == max_columns else f"{min_columns}–{max_columns}"
    if len(fields) == 1:
        raise _BadLine("no tab", f"no tab (expected {span} tab-separated columns, found 1)")
    if not min_columns <= len(fields) <= max_columns:
        found = len(fields)
        raise _BadLine("wrong column count", f"wrong column count: expected {span}, found {found}")
    return _non_empty(fields[src_col], fields[tgt_col])


def read_tsv(
    path: PathLike,
    src_col: int = 0,
    tgt_col: int = 1,
    *,
    on_bad_line: str = "error",
    limit: int | None = None,
    min_columns: int = 2,
    max_columns: int = 3,
) -> Parallel:
    """Read an Anki/Tatoeba file: ``source<TAB>target[<TAB>attribution]`` per line.

    `src_col` / `tgt_col` pick the direction (1, 0 reads the file backwards); `limit` reads
    only the first N physical lines; the file may be gzipped.
    """
    _check_options(on_bad_line, limit)
    _check_columns(src_col, tgt_col, min_columns, max_columns)

    def parse(raw: bytes, number: int) -> tuple[str, str]:
        text = _decode(raw, number)
        return _split_tsv(text, src_col, tgt_col, min_columns, max_columns)

    with _open_bytes(path) as f:
        return collect_pairs(_numbered_lines(f, path, limit), parse, path, on_bad_line)


def collect_pairs(
    lines: Iterable[tuple[int, T]],
    parse: Callable[[T, int], tuple[str, str]],
    path: PathLike,
    on_bad_line: str,
    name: str | None = None,
) -> Parallel:
    """Read numbered lines into (source, target) pairs with :func:`collect_records`; the
    summary is reported once, under ``name`` (default ``path``)."""
    report = ReadReport(name or os.fspath(path))
    src, tgt = collect_records(lines, parse, path, on_bad_line, report)
    _finish(report, report.path)
    return Parallel(src, tgt, report)


def collect_records(
    lines: Iterable[tuple[int, T]],
    parse: Callable[[T, int], tuple[A, B]],
    path: PathLike,
    on_bad_line: str,
    report: ReadReport,
) -> tuple[list[A], list[B]]:
    """The loop every line reader shares: ``parse`` each numbered line into a pair of
    fields; a :class:`_BadLine` it raises fails the read (``on_bad_line: error``, naming its
    own file or ``path``, and the line) or is skipped and counted in ``report``."""
    firsts: list[A] = []
    seconds: list[B] = []
    for first, second in iter_records(lines, parse, path, on_bad_line, report):
        firsts.append(first)
        seconds.append(second)
    return firsts, seconds


def iter_records(
    lines: Iterable[tuple[int, T]],
    parse: Callable[[T, int], tuple[A, B]],
    path: PathLike,
    on_bad_line: str,
    report: ReadReport,
) -> Iterator[tuple[A, B]]:
    """:func:`collect_records` one pair at a time, so a corpus larger than memory can be
    read in chunks (:mod:`transduce.data.prepare`) with exactly the same counts."""
    for number, raw in lines:
        report.lines += 1
        try:
            pair = parse(raw, number)
        except _BadLine as bad:
            _reject(bad, path, number, report, on_bad_line)
            continue
        report.kept += 1
        yield pair


def _aligned(
    src_lines: Iterator[tuple[int, bytes]],
    tgt_lines: Iterator[tuple[int, bytes]],
    src_path: PathLike,
    tgt_path: PathLike,
) -> Iterator[tuple[int, bytes, bytes]]:
    """Zip two numbered line streams; files of different lengths are always an error."""
    number = 0
    for src_item, tgt_item in zip_longest(src_lines, tgt_lines):
        if src_item is None or tgt_item is None:
            short, long = (src_path, tgt_path) if src_item is None else (tgt_path, src_path)
            ends = f"ends after line {number}" if number else "is empty"
            problem = (
                f"line-aligned files differ in length: {os.fspath(short)} {ends} but "
                f"{os.fspath(long)} goes on (its line {number + 1} has no partner)"
            )
            raise DataError(short, number or None, problem)
        number = src_item[0]
        yield number, src_item[1], tgt_item[1]


def _decode_pair(
    raw_src: bytes, raw_tgt: bytes, number: int, src_path: PathLike, tgt_path: PathLike
) -> tuple[str, str]:
    """Decode both sides; a decoding problem names the file it is in."""
    texts = []
    for raw, path in ((raw_src, src_path), (raw_tgt, tgt_path)):
        try:
            texts.append(_decode(raw, number))
        except _BadLine as bad:
            bad.path = path
            raise
    source, target = texts
    try:
        return _non_empty(source, target)
    except _BadLine as bad:
        bad.path = src_path if bad.kind == "empty source" else tgt_path
        raise


def read_line_pairs(
    src_path: PathLike,
    tgt_path: PathLike,
    *,
    on_bad_line: str = "error",
    limit: int | None = None,
) -> Parallel:
    """Read two line-aligned files (plain or gzip): line i of one translates line i of the other.

    Files of different lengths are an error whatever the policy.
    """
    _check_options(on_bad_line, limit)

    def parse(raws: tuple[bytes, bytes], number: int) -> tuple[str, str]:
        return _decode_pair(*raws, number, src_path, tgt_path)

    with _open_bytes(src_path) as fs, _open_bytes(tgt_path) as ft:
        src_lines = _numbered_lines(fs, src_path, limit)
        tgt_lines = _numbered_lines(ft, tgt_path, limit)
        pairs = _aligned(src_lines, tgt_lines, src_path, tgt_path)
        lines = ((number, (raw_src, raw_tgt)) for number, raw_src, raw_tgt in pairs)
        name = f"{os.fspath(src_path)} + {os.fspath(tgt_path)}"
        return collect_pairs(lines, parse, src_path, on_bad_line, name)


def read_lines(path: PathLike, strip: bool = True) -> list[str]:
    """One stripped text per line, for translate/evaluate input; empty lines are kept as "".
    ``-`` reads standard input under the same rules (strict UTF-8, errors name the line).
    ``strip=False``: only the line end goes (a leading tab may be a column)."""
    if os.fspath(path) == "-":
        import sys

        return _text_lines(sys.stdin.buffer, "<stdin>", strip)
    with _open_bytes(path) as f:
        return _text_lines(f, path, strip)


def _text_lines(f: BinaryIO, path: PathLike, strip: bool = True) -> list[str]:
    texts: list[str] = []
    for number, raw in _numbered_lines(f, path):
        try:
            text = _decode(raw, number)
            texts.append(text.strip() if strip else text.rstrip("\r\n"))
        except _BadLine as bad:
            raise DataError(path, number, bad.message) from None
    return texts
