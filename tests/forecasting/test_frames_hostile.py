"""Long tables read through pandas get the checks of the CSV readers: each bad table is one
DataError naming the row (and the file and line for a file), never a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from transduce.errors import DataError

pd = pytest.importorskip("pandas")

from transduce.forecasting.frames import frame_to_series, future_ds, read_table  # noqa: E402


def _df(ds, y=None, ids=None) -> pd.DataFrame:
    n = len(ds)
    return pd.DataFrame(
        {
            "unique_id": ids or ["a"] * n,
            "ds": ds,
            "y": y if y is not None else np.arange(1.0, n + 1),
        }
    )


Z = pd.Timestamp
BAD_FRAMES = {
    "decreasing numbers": (_df([1, 3, 2]), r"row 2: series 'a': ds 2 after 3: numeric"),
    "repeated numbers": (_df([1, 2, 2]), r"row 2: series 'a' at 2 appears twice"),
    "repeated dates": (_df(["2024-01-01", "2024-01-02", "2024-01-01"]), "row 2: .* twice"),
    "mixed zones in a series": (
        _df([Z("2024-01-01", tz="UTC"), Z("2024-01-01 01:00"), Z("2024-01-01 02:00")]),
        r"row 1: series 'a': 2024-01-01 01:00:00 is a date without a zone",
    ),
    "mixed zone text": (
        _df(["2024-01-01T00:00+01:00", "2024-01-01T01:00", "2024-01-01T02:00+01:00"]),
        "row 1: series 'a': .* without a zone",
    ),
    "numbers among dates": (_df(["2024-01-01", 5, "2024-01-03"]), "row 1: .* a number among"),
    "value beyond 1e15": (_df([1, 2, 3], y=[1.0, 1e16, 2.0]), r"row 1: column 'y': .* ±1e15"),
    "value 1e308": (_df([1, 2, 3], y=[1.0, 2.0, 1e308]), r"row 2: column 'y'.*±1e15"),
    "nan": (_df([1, 2, 3], y=[1.0, np.nan, 2.0]), "row 1: column 'y': 'nan' is not a finite"),
    "inf": (_df([1, 2, 3], y=[np.inf, 1, 2.0]), "row 0: column 'y': 'inf' is not a finite"),
    "text values": (_df([1, 2, 3], y=["1", "x", "2"]), "row 1: column 'y': 'x'"),
    "boolean values": (_df([1, 2, 3], y=[True, False, True]), "booleans"),
    "nan timestamp": (_df([1.0, np.nan, 3.0]), "row 1: series 'a': column 'ds': 'nan'"),
    "boolean timestamps": (_df([True, False, True]), "'ds' holds booleans"),
    "empty table": (_df([]), "no observations"),
    "missing ds": (_df([1, 2]).drop(columns="ds"), "no column 'ds'"),
    "empty id": (_df([1, 2], ids=["a", None]), "row 1: column 'unique_id' is empty"),
    "not a frame": ([1, 2, 3], "expected a pandas DataFrame, got list"),
    "a missing hour": (
        _df(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 03:00", "2024-01-01 04:00"]),
        r"row 2: series 'a': ds 2024-01-01T03:00:00 comes 2:00:00 after the one "
        r"before, where the step is 1:00:00: a gap",
    ),
    "a missing number": (_df([10, 20, 30, 50, 60]), r"row 3: series 'a': ds 50 comes 20 after"),
    "an irregular step": (_df([0, 2, 3, 4, 5]), r"row 1: series 'a': ds 2 comes 2 after"),
    "a missing month": (
        _df(list(pd.date_range("2024-01-01", periods=6, freq="MS").delete(3))),
        r"row 3: series 'a': ds 2024-05-01T00:00:00 comes 2 month\(s\) after the one before, "
        r"where the step is 1 month\(s\)",
    ),
    "a missing business day": (
        _df(list(pd.date_range("2024-01-01", periods=12, freq="B").delete(7))),
        r"row 7: series 'a': ds 2024-01-11T00:00:00 comes 2 business day\(s\) after the one "
        r"before, where the step is 1 business day\(s\)",
    ),
    "a gap in the second series": (
        _df([1, 2, 3, 1, 2, 4, 5], ids=["a"] * 3 + ["b"] * 4),
        r"row 5: series 'b': ds 4 comes 2 after .* step is 1",
    ),
    # each was a TypeError traceback, or a cast: y's real part, durations as nanoseconds
    "a column twice": (pd.concat([_df([1, 2, 3]), _df([1, 2, 3])[["y"]]], axis=1), "'y' appears"),
    "lists as ids": (_df([1, 2, 3], ids=[[1], [1], [1]]), "'unique_id' holds lists, not ids"),
    "complex values": (_df([1, 2, 3], y=np.array([1, 2, 3]) + 1j), "'y' holds complex numbers"),
    "durations as values": (
        _df([1, 2, 3], y=pd.to_timedelta([1, 2, 3], unit="s")),
        "'y' holds durations",
    ),
    "text among a column's numbers": (
        _df([1, 2, 3]).assign(price=["1.5", "x", "2"]),
        r"row 1: column 'price': 'x' is not a finite number",
    ),
}


def test_a_column_of_text_is_not_a_covariate_and_is_ignored_with_a_warning(caplog):
    frame = _df([1, 2, 3]).assign(city=["Oslo", "Oslo", "Oslo"], kind=pd.Categorical(["x"] * 3))
    series = frame_to_series(frame)  # it was refused: 'Oslo' is not a finite number
    assert list(series.columns) == [] and list(series.values[0]) == [1.0, 2.0, 3.0]
    assert "column 'city' holds text" in caplog.text and "column 'kind'" in caplog.text


@pytest.mark.parametrize("name", BAD_FRAMES)
def test_a_bad_frame_is_one_error_naming_the_row(name):
    frame, message = BAD_FRAMES[name]
    with pytest.raises(DataError, match=message) as err:
        frame_to_series(frame)
    assert "\n" not in str(err.value)


def test_zoned_dates_in_different_zones_are_compared_as_instants():
    s = frame_to_series(_df(["2024-01-01T02:00+02:00", "2024-01-01T01:00+00:00"]))
    assert s.values[0].tolist() == [1.0, 2.0]  # 00:00 UTC, then 01:00 UTC
    assert str(s.timestamps[0][0].tz) == "UTC"


BAD_FILES = {
    "year 10000": ("unique_id,ds,y\na,9999-12-31,1\na,10000-01-01,2\n", r"t.csv:3: row 1: .*9999"),
    "decreasing": ("unique_id,ds,y\na,5,1\na,4,2\n", r"t.csv:3: row 1: series 'a': ds 4 after 5"),
    "mixed zones": (
        "unique_id,ds,y\na,2024-01-01T00:00+01:00,1\na,2024-01-01T01:00,2\n",
        r"t.csv:3: row 1: series 'a'.* without a zone",
    ),
    "header only": ("unique_id,ds,y\n", r"t.csv: no observations"),
    "huge value": ("unique_id,ds,y\na,1,1\na,2,1e300\n", r"t.csv:3: row 1: column 'y'"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_a_bad_table_file_names_file_and_line(tmp_path, name):
    text, message = BAD_FILES[name]
    (tmp_path / "t.csv").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_table(tmp_path / "t.csv")


def test_a_folder_or_fifo_as_table_is_refused_without_reading(tmp_path):
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(DataError, match="not a regular file"):
        read_table(tmp_path / "d.csv")
    import os

    os.mkfifo(tmp_path / "f.csv")
    with pytest.raises(DataError, match="not a regular file"):  # pandas would block forever
        read_table(tmp_path / "f.csv")


def test_forecasting_past_the_last_date_is_one_error():
    stamps = list(pd.date_range("9999-12-20", periods=3, freq="D"))
    with pytest.raises(DataError, match="pass the last date"):
        future_ds(stamps, 48)


def test_numeric_timestamps_continue_by_their_step():
    assert future_ds([1.0, 3.0, 5.0], 2) == [7.0, 9.0]


REGULAR = {
    "hours": pd.date_range("2024-01-01", periods=50, freq="h"),
    "month starts": pd.date_range("2024-01-01", periods=30, freq="MS"),
    "month ends": pd.date_range("2024-01-31", periods=30, freq="ME"),
    "business days": pd.date_range("2024-01-01", periods=40, freq="B"),
    "quarters": pd.date_range("2020-01-01", periods=12, freq="QS"),
    "zoned hours across a DST change": pd.date_range(
        "2024-03-30", periods=72, freq="h", tz="Europe/Berlin"
    ),
    "zoned days across a DST change": pd.date_range(
        "2024-03-25", periods=14, freq="D", tz="Europe/Berlin"
    ),
    "the 28th, February's included": pd.date_range(
        "2022-11-28", periods=8, freq=pd.DateOffset(months=1)
    ),
    "the 30th, February's last day included": pd.to_datetime(
        ["2022-11-30", "2022-12-30", "2023-01-30", "2023-02-28", "2023-03-30", "2023-04-30"]
    ),
}


@pytest.mark.parametrize("name", REGULAR)
def test_calendar_frequencies_are_regular_steps(name):
    """A step that varies with the calendar (months, business days) is still one step."""
    stamps = list(REGULAR[name])
    frame = pd.DataFrame(
        {"unique_id": ["a"] * len(stamps) + ["b"] * 2, "ds": stamps + stamps[:2], "y": 1.0}
    )
    s = frame_to_series(frame)
    assert [len(v) for v in s.values] == [len(stamps), 2]  # two values: no step to check


def test_decimal_steps_are_regular():
    assert len(frame_to_series(_df([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])).values[0]) == 6


def _written(times) -> list[str]:
    return [t.isoformat() for t in times]  # text: each date with its own offset, as a CSV has


@pytest.mark.parametrize(
    ("freq", "start", "periods"),
    [("D", "2024-03-01", 40), ("ME", "2023-12-31", 12), ("h", "2024-03-30", 72)],
)
def test_dates_written_with_daylight_saving_offsets_keep_their_calendar(freq, start, periods):
    """A CSV of New York days or month ends (``-05:00`` in winter, ``-04:00`` in summer): as
    UTC instants a day was 23 hours, so the table was refused as irregular; now the wall
    clock is read and the forecast's dates go on in the last offset written."""
    zone = "America/New_York"
    stamps = pd.date_range(start, periods=periods, freq=freq, tz=zone)
    s = frame_to_series(_df(_written(stamps)))
    assert len(s.values[0]) == periods
    assert [t.isoformat() for t in s.timestamps[0]] == _written(stamps)
    ahead = pd.date_range(stamps[-1], periods=4, freq=freq, tz=zone)[1:]
    assert [t.isoformat() for t in future_ds(s.timestamps[0], 3)] == _written(ahead)


def test_a_gap_in_dates_with_daylight_saving_offsets_is_still_found():
    stamps = list(pd.date_range("2024-03-01", periods=20, freq="D", tz="America/New_York"))
    with pytest.raises(DataError, match="row 12: series 'a'"):
        frame_to_series(_df(_written(stamps[:12] + stamps[13:])))


@pytest.mark.parametrize("day", [15, 28, 30])
def test_months_on_one_day_continue_on_that_day(day):
    """No pandas frequency fits the 15th or the 28th of each month: the most common step
    (31 days) was taken, and the forecast's dates drifted (10-16, 11-16, ..., 07-22)."""
    stamps = [Z(2022 + (m - 1) // 12, (m - 1) % 12 + 1, 1) for m in range(1, 31)]
    days = [t.replace(day=min(day, t.days_in_month)) for t in stamps]
    ahead = [
        t.replace(day=min(day, t.days_in_month))
        for t in pd.date_range(stamps[-1], periods=13, freq="MS")[1:]
    ]
    assert future_ds(days, 12) == ahead


def test_decimal_steps_continue_without_float_noise():
    assert future_ds([4.7, 4.8, 4.9, 5.0], 3) == [5.1, 5.2, 5.3]
