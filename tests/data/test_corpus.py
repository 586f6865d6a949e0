"""Tests for transduce.data.corpus: every bad input names its file and line."""

from __future__ import annotations

import gzip
import logging
import os
import pickle
from pathlib import Path

import pytest

from transduce.data.corpus import (
    DataError,
    Parallel,
    ReadReport,
    read_line_pairs,
    read_lines,
    read_tsv,
)
from transduce.data.splits import split_by_source, split_tail

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("TRANSDUCE_DATA", REPO.parent / "shared" / "data"))
ELL = DATA / "tatoeba" / "ell.txt"
FRA = DATA / "tatoeba" / "fra.txt.gz"


def write(path: Path, content: bytes, *, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(content) if gz else content)
    return path


# --------------------------------------------------------------------------- bad lines

GOOD = b"Go.\t\xce\xa0\xce\xac\xce\xbc\xce\xb5.\tCC-BY\n"  # "Go.<TAB>Πάμε.<TAB>CC-BY"

BAD_TSV = [
    # (line 2 content, expected problem text)
    (b"no tab here\n", "no tab (expected 2–3 tab-separated columns, found 1)"),
    (b"a\tb\tc\td\te\n", "wrong column count: expected 2–3, found 5"),
    (b"ok\tbad \xff byte\n", "invalid UTF-8 at byte 8: invalid start byte"),
    (b"  \ttarget\n", "empty source"),
    (b"source\t \t attribution\n", "empty target"),
    (b"\n", "blank line"),
    (b"   \r\n", "blank line"),
]


@pytest.mark.parametrize(("line", "problem"), BAD_TSV)
def test_tsv_error_names_file_line_and_problem(tmp_path: Path, line: bytes, problem: str) -> None:
    path = write(tmp_path / "corpus.tsv", GOOD + line + GOOD)
    with pytest.raises(DataError) as info:
        read_tsv(path)
    err = info.value
    assert (err.path, err.line) == (str(path), 2)
    assert err.problem.startswith(problem)
    assert str(err).startswith(f"{path}:2: {problem}")


def test_invalid_utf8_message_shows_the_bytes_and_what_came_before(tmp_path: Path) -> None:
    path = write(tmp_path / "c.tsv", b"caf\xc3\tx\n")
    with pytest.raises(DataError, match=r"c\.tsv:1: invalid UTF-8 at byte 4: .*0xc3.*'caf'"):
        read_tsv(path)


def test_column_bounds_are_configurable(tmp_path: Path) -> None:
    path = write(tmp_path / "c.tsv", b"a\tb\n" + GOOD)
    with pytest.raises(DataError, match=r":2: wrong column count: expected 2, found 3"):
        read_tsv(path, max_columns=2)
    assert read_tsv(path, min_columns=2, max_columns=3).src == ["a", "Go."]


def test_missing_file_is_a_data_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.tsv"
    present = write(tmp_path / "here.txt", b"x\n")
    for call in (
        lambda: read_tsv(missing),
        lambda: read_lines(missing),
        lambda: read_line_pairs(missing, present),
        lambda: read_line_pairs(present, missing),
    ):
        with pytest.raises(DataError) as info:
            call()
        assert (info.value.path, info.value.line) == (str(missing), None)
        assert str(info.value) == f"{missing}: file not found"


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty file"):
        read_tsv(write(tmp_path / "e.tsv", b""))


def test_data_error_is_a_value_error_and_pickles() -> None:
    err = DataError("a.tsv", 3, "empty target")
    assert isinstance(err, ValueError)
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.line, back.problem, str(back)) == ("a.tsv", 3, "empty target", str(err))


# --------------------------------------------------------------------------- skip policy


def test_skip_counts_every_dropped_line_by_kind(tmp_path: Path, caplog) -> None:
    lines = [GOOD, b"no tab\n", GOOD, b"\n", b"x\t\n", b"no tab either\n", b"\xff\tx\n", GOOD]
    path = write(tmp_path / "c.tsv", b"".join(lines))
    with caplog.at_level(logging.WARNING, logger="transduce.data"):
        data = read_tsv(path, on_bad_line="skip")
    report = data.report
    assert len(data) == 3 and data.src == ["Go."] * 3
    assert report.lines == 8 and report.kept == 3
    assert report.skipped == {"no tab": 2, "blank line": 1, "empty target": 1, "invalid UTF-8": 1}
    assert report.lines == report.kept + sum(report.skipped.values())
    assert [line for line, _ in report.examples] == [2, 4, 5, 6, 7]
    assert report.examples[0][1].startswith("no tab (expected")
    records = [r for r in caplog.records if r.name == "transduce.data"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].getMessage() == report.summary()
    assert "kept 3 of 8 lines; skipped 5 (no tab: 2," in report.summary()
    assert report.summary().endswith("; first at line 2)")


def test_skip_keeps_at_most_five_examples(tmp_path: Path) -> None:
    path = write(tmp_path / "c.tsv", GOOD + b"bad\n" * 9)
    report = read_tsv(path, on_bad_line="skip").report
    assert report.skipped == {"no tab": 9}
    assert [line for line, _ in report.examples] == [2, 3, 4, 5, 6]


def test_clean_read_logs_nothing(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="transduce.data"):
        data = read_tsv(write(tmp_path / "c.tsv", GOOD * 3), on_bad_line="skip")
    assert data.report.skipped == {} and data.report.kept == 3
    assert not [r for r in caplog.records if r.name == "transduce.data"]


def test_all_lines_skipped_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"every line was skipped \(no tab: 2"):
        read_tsv(write(tmp_path / "c.tsv", b"a\nb\n"), on_bad_line="skip")


def test_unknown_policy_names_the_allowed_ones(tmp_path: Path) -> None:
    path = write(tmp_path / "c.tsv", GOOD)
    with pytest.raises(ValueError, match=r"'error', 'skip'.*'warn'") as info:
        read_tsv(path, on_bad_line="warn")
    assert not isinstance(info.value, DataError)
    with pytest.raises(ValueError, match="'error', 'skip'"):
        read_line_pairs(path, path, on_bad_line="ignore")


def test_summary_format() -> None:
    report = ReadReport("ell.txt", lines=10_000, kept=9_998)
    report.skip(17, "no tab", "no tab (expected 2–3 tab-separated columns, found 1)")
    report.skip(40, "empty target", "empty target")
    expected = (
        "ell.txt: kept 9,998 of 10,000 lines; skipped 2 (no tab: 1, empty target: 1; "
        "first at line 17)"
    )
    assert report.summary() == expected
    assert ReadReport("x.tsv", lines=2, kept=2).summary() == "x.tsv: kept 2 of 2 lines"


# --------------------------------------------------------------------------- TSV reading


def test_bom_crlf_lone_cr_and_missing_final_newline(tmp_path: Path) -> None:
    content = b"\xef\xbb\xbfHi.\tGeia.\r\n Bye. \t Adio \r" + b"\nlast\tone"
    data = read_tsv(write(tmp_path / "c.tsv", content))
    assert data.src == ["Hi.", "Bye.", "last"]
    assert data.tgt == ["Geia.", "Adio", "one"]
    assert data.report.lines == data.report.kept == 3


def test_direction_switch(tmp_path: Path) -> None:
    path = write(tmp_path / "c.tsv", b"one\tena\tattr\ntwo\tdyo\tattr\n")
    forward = read_tsv(path)
    backward = read_tsv(path, src_col=1, tgt_col=0)
    assert (forward.src, forward.tgt) == (["one", "two"], ["ena", "dyo"])
    assert (backward.src, backward.tgt) == (forward.tgt, forward.src)


@pytest.mark.parametrize(
    "kwargs", [{"src_col": 0, "tgt_col": 0}, {"src_col": 2}, {"min_columns": 3, "max_columns": 2}]
)
def test_bad_column_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        read_tsv(write(tmp_path / "c.tsv", GOOD), **kwargs)


def test_limit_counts_physical_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "c.tsv", GOOD * 3 + b"broken\n" + GOOD)
    data = read_tsv(path, limit=3)
    assert len(data) == 3 and data.report.lines == 3
    skipped = read_tsv(path, limit=4, on_bad_line="skip").report
    assert (skipped.lines, skipped.kept, skipped.skipped) == (4, 3, {"no tab": 1})
    with pytest.raises(ValueError, match="limit"):
        read_tsv(path, limit=0)


def test_gzipped_tsv(tmp_path: Path) -> None:
    data = read_tsv(write(tmp_path / "c.tsv.gz", b"a\tb\nc\td\n", gz=True))
    assert (data.src, data.tgt) == (["a", "c"], ["b", "d"])


def test_corrupt_gzip_is_a_data_error(tmp_path: Path) -> None:
    truncated = gzip.compress(b"a\tb\n" * 1000)[:-30]
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_tsv(write(tmp_path / "c.tsv.gz", truncated))


# --------------------------------------------------------------------------- line pairs


@pytest.mark.parametrize(("src_gz", "tgt_name"), [(True, "t.el.gz"), (False, "t.el"), (True, "t")])
def test_gzip_pairs(tmp_path: Path, src_gz: bool, tgt_name: str) -> None:
    # "t" (no suffix) is gzipped too: detected by its magic bytes
    src = write(
        tmp_path / ("s.en.gz" if src_gz else "s.en"), b"\xef\xbb\xbfHello\r\nBye\n", gz=src_gz
    )
    tgt = write(tmp_path / tgt_name, "Γεια\r\nΑντίο".encode(), gz=tgt_name != "t.el")
    data = read_line_pairs(src, tgt)
    assert isinstance(data, Parallel)
    assert (data.src, data.tgt) == (["Hello", "Bye"], ["Γεια", "Αντίο"])
    assert data.report.path == f"{src} + {tgt}"
    assert (data.report.lines, data.report.kept) == (2, 2)


@pytest.mark.parametrize("policy", ["error", "skip"])
@pytest.mark.parametrize("longer", ["src", "tgt"])
def test_pairs_of_different_lengths_always_fail(tmp_path: Path, policy: str, longer: str) -> None:
    long_file = write(tmp_path / "long.txt", b"a\nb\nc\nd\n")
    short_file = write(tmp_path / "short.txt.gz", b"a\nb\nc\n", gz=True)
    pair = (long_file, short_file) if longer == "src" else (short_file, long_file)
    with pytest.raises(DataError) as info:
        read_line_pairs(*pair, on_bad_line=policy)
    err = info.value
    assert (err.path, err.line) == (str(short_file), 3)
    assert str(short_file) in str(err) and str(long_file) in str(err)
    assert "ends after line 3" in str(err)


def test_empty_pair_file_against_a_non_empty_one(tmp_path: Path) -> None:
    empty = write(tmp_path / "empty.txt", b"")
    full = write(tmp_path / "full.txt", b"a\n")
    with pytest.raises(DataError, match=r"empty\.txt is empty but .*full\.txt goes on") as info:
        read_line_pairs(full, empty)
    assert info.value.line is None


def test_pair_problems_name_the_file_they_are_in(tmp_path: Path) -> None:
    src = write(tmp_path / "s.txt", b"one\ntwo\n\nfour\n")
    tgt = write(tmp_path / "t.txt", b"ena\ndyo \xff\ntria\n \n")
    with pytest.raises(DataError) as info:
        read_line_pairs(src, tgt)
    assert (info.value.path, info.value.line) == (str(tgt), 2)
    assert "invalid UTF-8 at byte 5" in str(info.value)
    with pytest.raises(DataError, match=r"s\.txt:3: empty source"):
        read_line_pairs(src, src)
    data = read_line_pairs(src, tgt, on_bad_line="skip")
    assert (data.src, data.tgt) == (["one"], ["ena"])
    assert data.report.skipped == {"invalid UTF-8": 1, "empty source": 1, "empty target": 1}
    assert data.report.lines == data.report.kept + sum(data.report.skipped.values())


def test_pairs_limit(tmp_path: Path) -> None:
    src = write(tmp_path / "s.txt", b"a\nb\nc\n")
    tgt = write(tmp_path / "t.txt", b"x\ny\n")
    data = read_line_pairs(src, tgt, limit=2)  # the length mismatch lies beyond the limit
    assert (data.src, data.tgt) == (["a", "b"], ["x", "y"])


# --------------------------------------------------------------------------- read_lines


def test_read_lines(tmp_path: Path) -> None:
    path = write(tmp_path / "in.txt.gz", b"\xef\xbb\xbfone\r\n\n  two  \r\n \nthree", gz=True)
    assert read_lines(path) == ["one", "", "two", "", "three"]
    assert read_lines(write(tmp_path / "empty.txt", b"")) == []
    with pytest.raises(DataError, match=r"bad\.txt:2: invalid UTF-8 at byte 1"):
        read_lines(write(tmp_path / "bad.txt", b"fine\n\x80oops\n"))


# --------------------------------------------------------------------------- splits


def test_split_by_source_has_no_leakage() -> None:
    src = [f"s{i % 37}" for i in range(200)]  # every source repeated, like Tatoeba
    train, valid = split_by_source(src, 0.2, seed=1)
    assert sorted(train + valid) == list(range(200))
    assert train == sorted(train) and valid == sorted(valid)
    assert not {src[i] for i in train} & {src[i] for i in valid}
    assert len({src[i] for i in valid}) == round(0.2 * 37)


def test_split_by_source_is_deterministic_and_depends_on_seed() -> None:
    src = [f"sentence {i // 3}" for i in range(300)]
    first = split_by_source(src, 0.1, seed=7)
    assert split_by_source(src, 0.1, seed=7) == first
    assert split_by_source(src, 0.1, seed=8) != first


def test_split_by_source_edges() -> None:
    assert split_by_source(["a", "b", "a"], 0.0, seed=0) == ([0, 1, 2], [])
    src = ["a", "b", "a", "b", "c", "c", "c"]
    train, valid = split_by_source(src, 0.01, seed=0)
    assert len({src[i] for i in valid}) == 1  # round(0.03) == 0, but at least one source
    train, valid = split_by_source(["a", "b"], 0.9, seed=0)
    assert len(train) == 1 and len(valid) == 1  # never all of them
    assert split_by_source(["a", "a"], 0.5, seed=0) == ([0, 1], [])
    for bad in (-0.1, 1.0, float("nan")):
        with pytest.raises(ValueError, match="valid_fraction"):
            split_by_source(["a", "b"], bad, seed=0)


def test_split_tail_matches_keras_validation_split() -> None:
    assert split_tail(10, 0.2) == (list(range(8)), [8, 9])
    assert split_tail(10, 0.25) == (list(range(7)), [7, 8, 9])  # int(7.5) == 7, as in Keras
    assert split_tail(5, 0.0) == ([0, 1, 2, 3, 4], [])
    with pytest.raises(ValueError, match="cannot be split"):
        split_tail(1, 0.5)
    with pytest.raises(ValueError, match="valid_fraction"):
        split_tail(10, 1.0)


# --------------------------------------------------------------------------- the real corpus


@pytest.mark.skipif(not ELL.exists(), reason=f"{ELL} not found (set TRANSDUCE_DATA)")
def test_first_10000_lines_of_ell_txt() -> None:
    data = read_tsv(ELL, limit=10_000)
    assert len(data) == 10_000
    assert data.report.lines == data.report.kept == 10_000 and not data.report.skipped
    assert (data.src[0], data.tgt[0]) == ("Go.", "Πάμε.")
    greek_first = read_tsv(ELL, src_col=1, tgt_col=0, limit=10_000)
    assert (greek_first.src, greek_first.tgt) == (data.tgt, data.src)
    train, valid = split_by_source(data.src, 0.1, seed=0)
    assert not {data.src[i] for i in train} & {data.src[i] for i in valid}
    with pytest.raises(DataError, match=r"ell\.txt:1: wrong column count: expected 2, found 3"):
        read_tsv(ELL, max_columns=2)


@pytest.mark.skipif(not FRA.exists(), reason=f"{FRA} not found (set TRANSDUCE_DATA)")
def test_gzipped_real_corpus() -> None:
    data = read_tsv(FRA, limit=10_000)
    assert len(data) == data.report.lines == 10_000 and not data.report.skipped
