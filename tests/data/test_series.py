"""Series readers (M4 wide, long): layouts, bad lines, hostile timestamps."""

from __future__ import annotations

import numpy as np
import pytest

from transduce.data.corpus import DataError
from transduce.data.series import read_long, read_m4_wide, read_series


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_m4_wide_reads_ragged_rows(tmp_path):
    p = _write(tmp_path / "w.csv", '"V1","V2","V3","V4"\n"A","1","2","3"\n"B","4","5",""\n')
    s = read_m4_wide(p)
    assert s.ids == ["A", "B"]
    np.testing.assert_array_equal(s.values[1], [4.0, 5.0])
    assert read_series(p).ids == ["A", "B"]  # auto-detected


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ('"C","x","1",""', "not a number"),
        ('"C","1","","3"', "empty cell"),
        ('"C","","",""', "no values"),
        ('"C","1","inf",""', "finite"),
        ('"C","1_000","2",""', "not a number"),  # Python's float() took it for 1000
        ('"A","4","5",""', "series 'A' again"),  # two series under one id, both kept
        ('"","4","5",""', "empty series id"),  # a series without a name, kept
    ],
)
def test_m4_wide_bad_lines_name_file_and_line(tmp_path, row, problem):
    p = _write(tmp_path / "w.csv", f'"V1","V2","V3","V4"\n"A","1","2","3"\n{row}\n')
    with pytest.raises(DataError, match=rf"w\.csv:3: .*{problem}"):
        read_m4_wide(p)
    skipped = read_m4_wide(p, on_bad_line="skip")
    assert skipped.ids == ["A"] and skipped.report.n_skipped == 1


def test_an_id_with_a_line_break_is_two_bad_lines_not_a_new_series(tmp_path):
    # RFC 4180 allows it, a one-record-per-line reader cannot: its second half read as a
    # series of its own ('D"'), kept under --on-bad-line skip
    p = _write(tmp_path / "w.csv", '"V1","V2","V3","V4"\n"A","1","2","3"\n"C\nD","1","2",""\n')
    with pytest.raises(DataError, match=r"w\.csv:3: .*unbalanced quote"):
        read_m4_wide(p)
    skipped = read_m4_wide(p, on_bad_line="skip")
    assert skipped.ids == ["A"] and skipped.report.n_skipped == 2


def test_m4_wide_needs_the_header(tmp_path):
    with pytest.raises(DataError, match=r"w\.csv:1"):
        read_m4_wide(_write(tmp_path / "w.csv", '"A","1","2"\n'))
    for text in ("", '"V1","V2"\n'):  # empty, or a header and no series
        with pytest.raises(DataError, match="no series"):
            read_m4_wide(_write(tmp_path / "e.csv", text))


def test_long_format_orders_by_timestamp(tmp_path):
    text = "id,timestamp,value\nb,2020-01-02,5\na,2020-01-02,2\na,2020-01-01,1\nb,2020-01-01,4\n"
    s = read_long(_write(tmp_path / "l.csv", text))
    assert s.ids == ["b", "a"]
    np.testing.assert_array_equal(s.values[0], [4, 5])
    np.testing.assert_array_equal(s.values[1], [1, 2])


def test_long_format_bad_lines(tmp_path):
    text = "id,timestamp,value\na,1,1\na,1,2\na,2,zz\na,3\na,4,4\n"
    p = _write(tmp_path / "l.csv", text)
    with pytest.raises(DataError, match=r"l\.csv:3: .*twice"):
        read_long(p)
    s = read_long(p, on_bad_line="skip")
    assert s.report.n_skipped == 3
    np.testing.assert_array_equal(s.values[0], [1, 4])


# ----------------------------------------------------------------- hostile timestamps


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("a,3,1\na,2,1\n", "numeric timestamps must increase"),
        ("a,1,1\na,1.0,1\n", r"appears twice \(as 1\)"),
        ("a,2020-01-01T00:00,1\na,2020-01-01T01:00+02:00,1\n", "after 2020-01-01T00:00"),
        ("a,2020-01-01T02:00+02:00,1\na,2020-01-01T00:00Z,1\n", "appears twice"),
        ("a,1,1\na,2020-01-01,1\n", "a time \\(no zone\\) timestamp"),
        ("a,1,1e308\n", "beyond"),
        ("a,1,-1e16\n", "beyond"),
        ("a,9999-12-31T23:30-01:00,1\n", "out of the range of dates"),
        ("a,0001-01-01T00:10+01:00,1\n", "out of the range of dates"),
    ],
)
def test_long_series_hostile_timestamps_and_values_name_the_series(tmp_path, rows, problem):
    p = _write(tmp_path / "l.csv", "id,timestamp,value\n" + rows)
    with pytest.raises(DataError, match=problem):
        read_long(p)


def test_numeric_timestamps_sort_as_numbers_and_zones_as_instants(tmp_path):
    p = _write(
        tmp_path / "l.csv",
        "id,timestamp,value\na,9,1\na,10,2\n"
        "b,2020-03-29T01:00+01:00,1\nb,2020-03-29T03:00+02:00,2\n",
    )
    data = read_long(p)
    assert data.timestamps[0] == ["9", "10"] and list(data.values[0]) == [1.0, 2.0]
    assert len(data.timestamps[1]) == 2
